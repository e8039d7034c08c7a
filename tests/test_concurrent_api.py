"""The HTTP API under concurrent questions: each answer equals the same question asked alone.

The library is ingested with the hashing embedder; the served assistant's query vectors go
through a ``QueryBatcher`` without cache, so concurrent questions share model calls.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from hashing_embeddings import HashingEmbeddings

from assistant.config import Settings
from assistant.query_batch import QueryBatcher

PROXY = "127.0.0.1"
QUESTIONS = [
    "政务处分的种类有哪些？",
    "新录用的公务员要试用多长时间？",
    "党员受到的纪律处分有哪几种？",
    "纪检监察机关可以通过哪些渠道接收检举控告？",
    "问责条例规定对党组织的问责方式有哪些？",
    "监察法第四十条讲的是什么？",
    "红烧肉怎么做才好吃？",
    "容错纠错机制启动后，一般多少天内要作出认定结论？",
]


class BatchedHashing(HashingEmbeddings):
    """The hashing vectors, with the batched query call the batcher uses; records batch sizes."""

    def __init__(self, inner: HashingEmbeddings) -> None:
        super().__init__(dim=inner.dim)
        self.sizes: list[int] = []

    def embed_queries(self, texts: list[str]) -> list[list[float]]:
        self.sizes.append(len(texts))
        return [self._vector(t) for t in texts]


def _answer(client: TestClient, question: str, stream: bool) -> tuple[str, str]:
    if not stream:
        r = client.post("/api/ask", json={"question": question})
        assert r.status_code == 200, r.text
        body = r.json()
        return body["text"], json.dumps(body["citations"], ensure_ascii=False)
    r = client.post(
        "/v1/chat/completions", json={"messages": [{"role": "user", "content": question}], "stream": True}
    )
    assert r.status_code == 200, r.text
    final = [
        json.loads(line[6:])
        for line in r.text.splitlines()
        if line.startswith("data: {") and '"finish_reason": "stop"' in line
    ]
    assert len(final) == 1
    return final[0]["policy_answer"]["text"], json.dumps(final[0]["citations"], ensure_ascii=False)


def _served(hashed_settings: Settings, tmp_path: Path) -> Settings:
    server = hashed_settings.server.model_copy(
        update={
            "feedback_db": tmp_path / "feedback.sqlite3",
            "admin_db": tmp_path / "admin.sqlite3",
            "rate_limit_per_minute": 10_000,
            "trusted_proxies": [PROXY],
            "public_origins": ["http://testserver"],
            "worker_threads": 8,
        }
    )
    return hashed_settings.model_copy(update={"server": server})


def test_concurrent_answers_equal_the_answers_given_alone(
    hashed_settings: Settings, hashing_embeddings: Any, tmp_path: Path
) -> None:
    from assistant.service import build_assistant
    from ui.app import create_app

    model = BatchedHashing(hashing_embeddings)
    batcher = QueryBatcher(model, max_batch=8, cache_size=0)
    settings = _served(hashed_settings, tmp_path)
    app = create_app(settings, build_assistant(settings, embeddings=batcher))
    with TestClient(app, client=(PROXY, 50000)) as client:
        alone = {q: _answer(client, q, stream=False) for q in QUESTIONS}
        jobs = [(q, stream) for stream in (False, True) for q in QUESTIONS] * 2
        with ThreadPoolExecutor(max_workers=16) as pool:
            together = list(pool.map(lambda job: (job[0], _answer(client, *job)), jobs))
    assert len(together) == len(jobs)
    for question, answer in together:
        assert answer == alone[question], question
    assert sum(model.sizes) >= len(QUESTIONS) * 2  # no cache: asked alone, then again under load


def test_chat_questions_are_not_run_one_at_a_time(
    hashed_settings: Settings, hashing_embeddings: Any, tmp_path: Path
) -> None:
    """Gradio runs an event one at a time by default; the chat's questions get the worker count."""
    from assistant.service import build_assistant
    from ui.chat import build_chat
    from ui.context import UIContext

    settings = _served(hashed_settings, tmp_path)
    demo = build_chat(UIContext.build(settings, build_assistant(settings, embeddings=hashing_embeddings)))
    answering = [fn for fn in demo.fns.values() if getattr(fn.fn, "__name__", "") == "respond"]
    assert len(answering) == 2  # Enter in the box and the send button
    for fn in answering:
        assert fn.concurrency_limit == settings.server.worker_threads == 8
        assert fn.concurrency_id == "pa-answer"
