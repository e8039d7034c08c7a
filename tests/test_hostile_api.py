"""Hostile and faulty requests against the real FastAPI app (issue 11, server side).

Most tests drive ``ui.app.create_app`` with a scripted assistant (``Scripted``:
ask / stream / library / health), which is the UI layer's boundary: they check
what reaches the assistant, not how it answers. One test wraps the real
assistant, and ``test_real_server_process`` runs ``policy-assistant serve`` as a
subprocess over a copy of the ingested library and attacks it over sockets.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import free_port, stop_process
from fastapi.testclient import TestClient

from assistant.config import Settings
from assistant.schema import Answer

REPO_ROOT = Path(__file__).resolve().parents[1]
LOCAL = "127.0.0.1"
OWN = "http://127.0.0.1:7860"
FOLLOW_UP = "那第二点呢？"
HUGE = 5_000_000
STORE_DOWN = "资料库暂时无法访问"


class Scripted:
    """A fake assistant: records what it is given; some questions fail or block."""

    def __init__(self, health: dict[str, Any] | None = None, with_health: bool = True) -> None:
        self.calls: list[tuple[str, list[tuple[str, str]]]] = []
        self.release = threading.Event()
        self.running = 0
        self.max_running = 0
        self._lock = threading.Lock()
        self._health = health or {
            "ok": True,
            "store": {"ok": True, "detail": "ok"},
            "documents": 3,
            "chunks": 30,
        }
        self.library_blocks = False
        if not with_health:
            self.health = None  # type: ignore[assignment]

    def _enter(self, question: str, history: list[tuple[str, str]] | None) -> None:
        self.calls.append((question, list(history or [])))
        with self._lock:
            self.running += 1
            self.max_running = max(self.max_running, self.running)
        try:
            if question == "冻结":  # a store that does not answer
                self.release.wait(30)
            if question == "超时":
                raise httpx.ReadTimeout("timed out")
            if question == "拒绝":
                raise ConnectionRefusedError(111, "Connection refused")
            if question == "故障":
                raise RuntimeError("injected failure")
        finally:
            with self._lock:
                self.running -= 1

    def ask(self, question: str, history: list[tuple[str, str]] | None = None) -> Answer:
        self._enter(question, history)
        return Answer(text=f"回答：{question}")

    def stream(self, question: str, history: list[tuple[str, str]] | None = None) -> Iterator[str | Answer]:
        if question == "半途超时":
            yield "半句"
            raise TimeoutError("store read timed out")
        self._enter(question, history)
        yield "回答："
        yield Answer(text=f"回答：{question}")

    def library(self) -> dict[str, Any]:
        if self.library_blocks:
            self.release.wait(30)
        return {"documents": 2, "chunks": 20, "documents_detail": []}

    def health(self) -> dict[str, Any]:
        return self._health


def _settings(tmp: Path, **server: Any) -> Settings:
    base = Settings()
    values: dict[str, Any] = {
        "feedback_db": tmp / "feedback.sqlite3",
        "admin_db": tmp / "admin.sqlite3",
        "rate_limit_per_minute": 1000,
        **server,
    }
    return base.model_copy(update={"server": base.server.model_copy(update=values)})


def _client(tmp: Path, assistant: Any, peer: str = LOCAL, **server: Any) -> TestClient:
    from ui.app import create_app

    return TestClient(
        create_app(_settings(tmp, **server), assistant), raise_server_exceptions=False, client=(peer, 50000)
    )


def _ask(c: TestClient, question: str, **kw: Any) -> httpx.Response:
    return c.post("/api/ask", json={"question": question}, **kw)


# ---------------------------------------------------------------- item 1: bounded work


def test_history_is_bounded_before_it_reaches_the_assistant(tmp_path: Path) -> None:
    fake = Scripted()
    with _client(tmp_path, fake, max_body_bytes=64_000_000) as c:
        history = (
            [["x" * HUGE, "答"]]
            + [[f"问{i}", "答" * 5000] for i in range(20)]
            + [["最近的问题", "最近的回答"]]
        )
        r = c.post("/api/ask", json={"question": FOLLOW_UP, "history": history})
        assert r.status_code == 200, r.text[:300]
        messages = [{"role": "user", "content": "y" * HUGE}, {"role": "assistant", "content": "答"}]
        messages += [{"role": "user", "content": FOLLOW_UP}]
        r = c.post("/v1/chat/completions", json={"messages": messages})
        assert r.status_code == 200, r.text[:300]
    (q1, h1), (q2, h2) = fake.calls
    assert q1 == q2 == FOLLOW_UP
    assert len(h1) == 6 and h1[-1] == ("最近的问题", "最近的回答")  # the most recent turns are kept
    assert all(len(q) <= 2000 and len(a) <= 2000 for q, a in h1 + h2)
    assert sum(len(q) + len(a) for q, a in h1) <= 6 * 2 * 2000
    assert h2 == [("y" * 2000, "答")]


def test_chat_page_history_is_bounded_too(tmp_path: Path) -> None:
    from ui.chat import _history
    from ui.context import UIContext

    ctx = UIContext.build(_settings(tmp_path, max_history_turns=3, max_history_chars=50), Scripted())
    turns = [{"question": f"问{i}", "answer": {"text": "答" * 5000}} for i in range(10)]
    turns.append({"question": "被拒绝的问题", "answer": None})
    assert _history(turns, ctx) == [(f"问{i}", "答" * 50) for i in (7, 8, 9)]


def test_history_bound_with_the_real_assistant(
    ingested_settings: Settings, embeddings: Any, tmp_path: Path
) -> None:
    """A 5M-character earlier question reaches the real assistant as at most 2000 characters."""
    from assistant.service import build_assistant
    from ui.app import create_app

    real = build_assistant(ingested_settings, embeddings=embeddings)
    seen: list[int] = []

    class Recording:
        def ask(self, question: str, history: list[tuple[str, str]] | None = None) -> Answer:
            seen.append(sum(len(q) + len(a) for q, a in history or []))
            return real.ask(question, history)

        def stream(
            self, question: str, history: list[tuple[str, str]] | None = None
        ) -> Iterator[str | Answer]:
            return real.stream(question, history)

        def library(self) -> dict[str, Any]:
            return real.library()

    settings = ingested_settings.model_copy(
        update={
            "server": ingested_settings.server.model_copy(
                update={"feedback_db": tmp_path / "fb.sqlite3", "max_body_bytes": 64_000_000}
            )
        }
    )
    first = "政务处分的种类有哪些？" + "请详细说明。" * (HUGE // 6)
    with TestClient(create_app(settings, Recording())) as c:
        r = c.post("/api/ask", json={"question": FOLLOW_UP, "history": [[first, "（一）警告；（二）记过"]]})
    assert r.status_code == 200, r.text[:300]
    assert Answer.model_validate(r.json()).text
    assert seen == [2000 + len("（一）警告；（二）记过")]


def test_body_over_the_limit_is_413_before_parsing(tmp_path: Path) -> None:
    fake = Scripted()
    with _client(tmp_path, fake) as c:
        big = json.dumps({"question": "问", "history": [["x" * 300_000, "y"]]}).encode()
        r = c.post("/api/ask", content=big, headers={"content-type": "application/json"})
        assert r.status_code == 413
        assert r.json()["detail"] == f"请求内容太大了：最多 {256 * 1024} 字节，请精简后再试。"

        def chunked() -> Iterator[bytes]:  # no Content-Length: counted while streaming
            for i in range(0, len(big), 64_000):
                yield big[i : i + 64_000]

        r = c.post("/api/ask", content=chunked(), headers={"content-type": "application/json"})
        assert r.status_code == 413
        r = c.post("/api/feedback", content=big, headers={"content-type": "application/json"})
        assert r.status_code == 413
        assert _ask(c, "正常的问题").status_code == 200
    assert [q for q, _ in fake.calls] == ["正常的问题"]


# ---------------------------------------------------------------- item 4: feedback


def _feedback(c: TestClient, **fields: Any) -> httpx.Response:
    body = {"question": "问", "answer": "答", "rating": 1, **fields}
    return c.post("/api/feedback", json=body)


def test_feedback_is_capped_and_rate_limited(tmp_path: Path) -> None:
    # Every feedback request counts against the client's feedback budget, refused ones too.
    with _client(tmp_path, Scripted(), rate_limit_per_minute=6, max_feedback_chars=100) as c:
        for field, name in (("question", "问题"), ("answer", "回答"), ("comment", "意见")):
            r = _feedback(c, **{field: "字" * 101})
            assert r.status_code == 422
            assert r.json()["detail"] == f"反馈中的{name}太长了：最多 100 个字。"
        cite = {"file": "a.md", "title": "标题", "quote": "引文", "chunk_id": "c1", "start": 0, "end": 2}
        r = _feedback(c, citations=[cite] * 21)
        assert r.status_code == 422 and r.json()["detail"] == "引用太多了：最多 20 条。"
        ok = _feedback(c, citations=[cite] * 20)
        assert ok.status_code == 200
        assert _feedback(c).status_code == 200  # the 6th: the last one this minute
        r = _feedback(c)
        assert r.status_code == 429 and r.json()["detail"].startswith("提问太频繁")
        assert _ask(c, "问题").status_code == 200  # questions have a budget of their own
    from ui.feedback import FeedbackStore

    rows = FeedbackStore(tmp_path / "feedback.sqlite3").rows()
    assert len(rows) == 2 and all(len(r["question"]) <= 100 for r in rows)


def test_feedback_comment_needs_the_row_token(tmp_path: Path) -> None:
    from ui.feedback import FeedbackStore

    with _client(tmp_path, Scripted(), trusted_proxies=[LOCAL]) as c:
        mine = _feedback(c).json()
        theirs = _feedback(c).json()
        assert mine["token"] and mine["token"] != theirs["token"]
        url = f"/api/feedback/{theirs['id']}/comment"
        # Another anonymous client: no token, or my token, or a guessed one.
        for token in ("", mine["token"], "x" * 24):
            r = c.post(url, json={"comment": "篡改", "token": token})
            assert r.status_code == 404 and r.json()["detail"] == "找不到这条反馈，或您无权修改它。"
        assert c.post(url, json={"comment": "补充", "token": theirs["token"]}).status_code == 200
        # A row of an identified user: only that user (the token alone is not enough).
        zhang = {"X-Remote-User": "zhangsan"}
        row = c.post(
            "/api/feedback", json={"question": "问", "answer": "答", "rating": -1}, headers=zhang
        ).json()
        url = f"/api/feedback/{row['id']}/comment"
        assert c.post(url, json={"comment": "x", "token": row["token"]}).status_code == 404
        lisi = {"X-Remote-User": "lisi"}
        assert c.post(url, json={"comment": "x", "token": row["token"]}, headers=lisi).status_code == 404
        assert c.post(url, json={"comment": "引用不全"}, headers=zhang).status_code == 200
    comments = {
        r["id"]: (r["user"], r["comment"]) for r in FeedbackStore(tmp_path / "feedback.sqlite3").rows()
    }
    assert comments == {mine["id"]: ("", ""), theirs["id"]: ("", "补充"), row["id"]: ("zhangsan", "引用不全")}


# ---------------------------------------------------------------- item 5: trusted proxies


def test_spoofed_headers_change_nothing_without_trusted_proxies(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from ui.feedback import FeedbackStore

    caplog.set_level(logging.WARNING, logger="ui.identity")
    with _client(tmp_path, Scripted(), rate_limit_per_minute=3) as c:
        codes = [
            _ask(
                c, "问题", headers={"X-Remote-User": f"user{i}", "X-Forwarded-For": f"10.0.0.{i}"}
            ).status_code
            for i in range(5)
        ]
        assert codes == [200, 200, 200, 429, 429]
        assert _feedback(c, question="问题").status_code == 200
        r = c.post(
            "/api/feedback",
            json={"question": "q", "answer": "a", "rating": 1},
            headers={"X-Remote-User": "boss"},
        )
        assert r.status_code == 200
    assert {r["user"] for r in FeedbackStore(tmp_path / "feedback.sqlite3").rows()} == {""}
    warnings = [r.getMessage() for r in caplog.records if "ignoring" in r.getMessage()]
    assert len(warnings) == 1 and "trusted_proxies is empty" in warnings[0]


def test_identity_and_forwarded_address_from_a_trusted_proxy(tmp_path: Path) -> None:
    from ui.feedback import FeedbackStore

    with _client(
        tmp_path, Scripted(), rate_limit_per_minute=2, trusted_proxies=["127.0.0.0/8", "10.1.0.5"]
    ) as c:
        for user in ("alice", "bob"):  # one budget per trusted user
            assert [_ask(c, "问", headers={"X-Remote-User": user}).status_code for _ in range(3)] == [
                200,
                200,
                429,
            ]
        # Anonymous clients behind the proxy: keyed on the first untrusted hop from the right,
        # so rotating a forged left part changes nothing.
        codes = [
            _ask(c, "问", headers={"X-Forwarded-For": f"6.6.6.{i}, 203.0.113.7, 10.1.0.5"}).status_code
            for i in range(3)
        ]
        assert codes == [200, 200, 429]
        assert _ask(c, "问", headers={"X-Forwarded-For": "203.0.113.8"}).status_code == 200
        assert _feedback(c).status_code == 200
        r = c.post(
            "/api/feedback",
            json={"question": "q", "answer": "a", "rating": 1},
            headers={"X-Remote-User": "alice"},
        )
        assert r.status_code == 200
    assert sorted(r["user"] for r in FeedbackStore(tmp_path / "feedback.sqlite3").rows()) == ["", "alice"]
    # The same headers from a peer that is not a trusted proxy are ignored.
    with _client(
        tmp_path, Scripted(), peer="192.0.2.9", rate_limit_per_minute=2, trusted_proxies=[LOCAL]
    ) as c:
        codes = [_ask(c, "问", headers={"X-Remote-User": f"u{i}"}).status_code for i in range(3)]
        assert codes == [200, 200, 429]


def test_bad_trusted_proxy_entry_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="trusted_proxies"):
        _client(tmp_path, Scripted(), trusted_proxies=["reverse-proxy.local"])


# ---------------------------------------------------------------- items 6 and 9: no echo, no 500


def test_validation_errors_echo_only_a_short_prefix(tmp_path: Path) -> None:
    with _client(tmp_path, Scripted(), max_body_bytes=64_000_000) as c:
        for body in (
            {"question": ["x" * 10_000_000]},
            {"question": 7, "history": "h" * 10_000_000},
            {"question": {"k" * 1_000_000: "v" * 9_000_000}},
        ):
            r = c.post("/api/ask", json=body)
            assert r.status_code == 422
            assert len(r.content) < 2000, len(r.content)
            assert r.json()["detail"].startswith("请求格式不正确")
        r = c.post("/api/feedback", json={"question": "q", "answer": "a", "rating": "1" * 10_000_000})
        assert r.status_code == 422 and len(r.content) < 2000
        r = c.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": 5}] * 50_000})
        assert r.status_code == 422 and len(r.content) < 4000 and r.json()["more_errors"] > 0


def test_malformed_requests_get_4xx_not_500(tmp_path: Path) -> None:
    raw = {"content-type": "application/json"}
    with _client(tmp_path, Scripted()) as c:
        for path, body in (
            ("/api/ask", b'{"question": "\\ud800\xe9\x97\xae"}'),
            ("/api/ask", b'{"question": "ok", "history": [["\\udfff", "a"]]}'),
            ("/v1/chat/completions", b'{"messages": [{"role": "user", "content": "\\ud83d"}]}'),
            ("/api/feedback", b'{"question": "q\\ud800", "answer": "a", "rating": 1}'),
        ):
            r = c.post(path, content=body, headers=raw)
            assert r.status_code == 422, (path, r.status_code)
            assert "孤立的 UTF-16 代理项" in r.json()["detail"]
        emoji = b'{"question": "\\ud83d\\ude00 \xe5\xa4\x84\xe5\x88\x86"}'  # a valid surrogate pair
        assert c.post("/api/ask", content=emoji, headers=raw).status_code == 200
        r = _feedback(c, citations=[{"chunk_id": 5}])
        assert r.status_code == 422 and "citations" in r.json()["detail"]
        r = _feedback(c, citations="not a list")
        assert r.status_code == 422
        for row in (10**23, 0, -1):
            r = c.post(f"/api/feedback/{row}/comment", json={"comment": "x"})
            assert r.status_code == 422, row
        assert c.post("/api/feedback/12345/comment", json={"comment": "x"}).status_code == 404
        assert c.get("/api/chunks/" + "a" * 5000).status_code == 404
        for method, path, allow in (
            ("GET", "/api/ask", "POST"),
            ("PUT", "/v1/chat/completions", "POST"),
            ("GET", "/api/feedback", "POST"),
            ("DELETE", "/api/feedback/1/comment", "POST"),
            ("POST", "/healthz", "GET, HEAD"),
            ("POST", "/readyz", "GET, HEAD"),
            ("DELETE", "/api/chunks/abc", "GET"),
        ):
            r = c.request(method, path)
            assert r.status_code == 405, (method, path, r.status_code)
            assert r.headers["allow"] == allow
            assert r.json()["detail"] == f"该地址不支持 {method} 请求（支持：{allow}）。"
        assert c.get("/no-such-page-at-all").status_code == 404
        assert c.head("/readyz").status_code == 200


def test_same_origin_check_does_not_trust_host(tmp_path: Path) -> None:
    with _client(tmp_path, Scripted(), allowed_origins=["https://oa.example.gov.cn"]) as c:
        # DNS rebinding: the attacker's page controls both Origin and Host.
        for origin, host in (
            ("http://evil.example", "evil.example"),
            ("http://evil.example:7860", "evil.example:7860"),
        ):
            r = _ask(c, "问", headers={"Origin": origin, "Host": host})
            assert r.status_code == 403 and r.json()["detail"] == "该来源网站未获授权调用本服务。"
        for origin in (OWN, "http://localhost:7860", "https://oa.example.gov.cn"):
            assert _ask(c, "问", headers={"Origin": origin, "Host": "whatever"}).status_code == 200
    public = ["https://zhushou.example.gov.cn"]
    with _client(tmp_path, Scripted(), public_origins=public, allowed_origins=[], port=8080) as c:
        assert _ask(c, "问", headers={"Origin": "https://zhushou.example.gov.cn"}).status_code == 200
        assert (
            _ask(c, "问", headers={"Origin": "http://127.0.0.1:8080"}).status_code == 200
        )  # own bind address
        assert _ask(c, "问", headers={"Origin": OWN}).status_code == 403


# ---------------------------------------------------------------- item 3: store faults, health


def _sse(body: str) -> list[Any]:
    out: list[Any] = []
    for line in body.splitlines():
        if line.startswith("data: "):
            data = line[6:]
            out.append(data if data == "[DONE]" else json.loads(data))
    return out


def test_store_errors_give_a_chinese_503_and_the_server_goes_on(tmp_path: Path) -> None:
    with _client(tmp_path, Scripted()) as c:
        for question in ("超时", "拒绝"):
            r = _ask(c, question)
            assert r.status_code == 503 and r.json()["detail"].startswith(STORE_DOWN)
            assert r.headers["retry-after"] == "30"
            body = {"messages": [{"role": "user", "content": question}]}
            r = c.post("/v1/chat/completions", json=body)
            assert r.status_code == 503 and r.json()["detail"].startswith(STORE_DOWN)
            r = c.post("/v1/chat/completions", json={**body, "stream": True})
            assert r.status_code == 503 and r.json()["detail"].startswith(STORE_DOWN)
        # Fails after the stream has started: a final "error" chunk with the same message.
        body = {"messages": [{"role": "user", "content": "半途超时"}], "stream": True}
        events = _sse(c.post("/v1/chat/completions", json=body).text)
        assert events[-1] == "[DONE]"
        assert events[-2]["choices"][0]["finish_reason"] == "error"
        assert events[-2]["policy_answer"]["text"].startswith(STORE_DOWN)
        # Any other failure stays a 500, and the server keeps answering.
        assert _ask(c, "故障").status_code == 500
        assert _ask(c, "正常").json()["text"] == "回答：正常"


def test_frozen_store_times_out_and_other_clients_are_served(tmp_path: Path) -> None:
    """A frozen store holds its worker threads, never the event loop or more threads than configured."""
    fake = Scripted()
    app_settings = {"answer_timeout_s": 1.5, "worker_threads": 2}
    with _client(tmp_path, fake, **app_settings) as c, ThreadPoolExecutor(4) as pool:
        frozen = [pool.submit(_ask, c, "冻结") for _ in range(3)]
        time.sleep(0.3)
        started = time.monotonic()
        assert c.get("/healthz").json()["status"] == "ok"
        assert c.get("/v1/models").status_code == 200
        assert time.monotonic() - started < 1.0  # served while the store is frozen
        answers = [f.result(timeout=10) for f in frozen]
        assert [r.status_code for r in answers] == [503, 503, 503]
        details = sorted(r.json()["detail"] for r in answers)
        assert details[0].startswith("回答超时") and details[-1].startswith("服务繁忙")
        assert fake.max_running == 2  # worker_threads
        # The abandoned calls still hold both slots: new questions are refused, not queued forever.
        assert _ask(c, "正常").json()["detail"].startswith("服务繁忙")
        fake.release.set()
        deadline = time.monotonic() + 5
        while _ask(c, "正常").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.1)


def test_healthz_and_readyz_report_the_store(tmp_path: Path) -> None:
    with _client(tmp_path, Scripted()) as c:
        h = c.get("/healthz").json()
        assert (h["status"], h["store"], h["documents"], h["chunks"]) == (
            "ok",
            {"ok": True, "detail": "ok"},
            3,
            30,
        )
        r = c.get("/readyz")
        assert r.status_code == 200 and r.json()["status"] == "ready"
    down = {"ok": False, "store": {"ok": False, "detail": "连接被拒绝"}, "documents": 0, "chunks": 0}
    with _client(tmp_path, Scripted(health=down)) as c:
        h = c.get("/healthz")
        assert h.status_code == 200 and h.json()["status"] == "degraded"
        r = c.get("/readyz")
        assert r.status_code == 503 and r.json()["reason"] == "连接被拒绝"
    empty = {"ok": True, "store": {"ok": True, "detail": "ok"}, "documents": 0, "chunks": 0}
    with _client(tmp_path, Scripted(health=empty)) as c:
        r = c.get("/readyz")
        assert r.status_code == 503 and r.json()["reason"] == "资料库为空，尚未导入文件"
    # Without assistant.health(): library() is used, within health_timeout_s.
    fake = Scripted(with_health=False)
    with _client(tmp_path, fake, health_timeout_s=0.5) as c:
        assert c.get("/healthz").json()["documents"] == 2
        fake.library_blocks = True
        with ThreadPoolExecutor(3) as pool:
            started = time.monotonic()
            probes = list(pool.map(lambda p: c.get(p), ["/healthz", "/readyz", "/readyz"]))
            assert time.monotonic() - started < 3
        assert probes[0].status_code == 200 and probes[0].json()["store"]["ok"] is False
        assert [p.status_code for p in probes[1:]] == [503, 503]
        assert probes[1].json()["reason"] == "向量库在 0.5 秒内没有响应"
        assert _ask(c, "正常").status_code == 200
        fake.release.set()


# ---------------------------------------------------------------- the real server process


@pytest.fixture(scope="module")
def served(ingested_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """``policy-assistant serve`` over a copy of the ingested store (no trusted proxies)."""
    tmp = tmp_path_factory.mktemp("served")
    shutil.copytree(ingested_settings.chroma.persist_dir, tmp / "chroma")
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "HF_HUB_OFFLINE": "1",
        "POLICY_CHROMA__PERSIST_DIR": str(tmp / "chroma"),
        "POLICY_CHROMA__COLLECTION": ingested_settings.chroma.collection,
        "POLICY_INGEST__LIBRARY_DIRS": json.dumps([str(p) for p in ingested_settings.ingest.library_dirs]),
        "POLICY_RETRIEVAL__DICTIONARY": str(ingested_settings.retrieval.dictionary),
        "POLICY_RETRIEVAL__CATALOGUE": str(ingested_settings.retrieval.catalogue),
        "POLICY_SERVER__FEEDBACK_DB": str(tmp / "feedback.sqlite3"),
        "POLICY_SERVER__RATE_LIMIT_PER_MINUTE": "4",
        "POLICY_SERVER__MAX_BODY_BYTES": "8000000",
    }
    log_path = tmp / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "policy_cli", "serve", "--port", str(port)],
            cwd=tmp,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://{LOCAL}:{port}"
        try:
            deadline = time.monotonic() + 240
            while True:
                assert proc.poll() is None, log_path.read_text(errors="replace")[-3000:]
                try:
                    if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.5)
            yield {"url": url, "log": log_path, "db": tmp / "feedback.sqlite3"}
        finally:
            stop_process(proc)


def test_real_server_process(served: dict[str, Any]) -> None:
    from ui.feedback import FeedbackStore

    url, log_path = served["url"], served["log"]
    ready = httpx.get(url + "/readyz", timeout=10)
    assert ready.status_code == 200 and ready.json()["documents"] > 0
    # 1. A 5M-character earlier question and "那第二点呢？", while another client is served.
    history = [["政务处分的种类有哪些？" + "x" * HUGE, "（一）警告；（二）记过；（三）记大过"]]
    with ThreadPoolExecutor(2) as pool:
        big = pool.submit(
            httpx.post, url + "/api/ask", json={"question": FOLLOW_UP, "history": history}, timeout=120
        )
        other = httpx.post(url + "/api/ask", json={"question": "公务员辞去公职需要什么程序？"}, timeout=60)
        assert other.status_code == 200 and other.json()["citations"]
        assert httpx.get(url + "/healthz", timeout=10).json()["store"]["ok"] is True
        r = big.result()
    assert r.status_code == 200 and r.json()["text"]
    logged = [line for line in log_path.read_text(errors="replace").splitlines() if "api.ask" in line]
    history_chars = [int(line.rsplit("history_chars=", 1)[1].split()[0]) for line in logged]
    assert max(history_chars) <= 2000 + len(history[0][1])
    # 2. Spoofed identity and forwarded headers from 127.0.0.1 (no trusted_proxies): one budget.
    codes = []
    for i in range(4):
        spoof = {"X-Remote-User": f"spoof{i}", "X-Forwarded-For": f"198.51.100.{i}"}
        codes.append(
            httpx.post(
                url + "/api/ask", json={"question": "问责的情形有哪些？"}, headers=spoof, timeout=60
            ).status_code
        )
    assert codes == [200, 200, 429, 429]  # two asks above used half of the 4 per minute
    r = httpx.post(
        url + "/api/feedback",
        json={"question": "q", "answer": "a", "rating": 1},
        headers={"X-Remote-User": "boss"},
    )
    assert r.status_code == 200
    assert {row["user"] for row in FeedbackStore(served["db"]).rows()} == {""}
    # 3. Size limits, no echo, no 500.
    r = httpx.post(
        url + "/api/ask", content=b"{" + b" " * 9_000_000 + b"}", headers={"content-type": "application/json"}
    )
    assert r.status_code == 413 and r.json()["detail"].startswith("请求内容太大了")
    r = httpx.post(url + "/api/ask", json={"question": ["x" * 6_000_000]}, timeout=60)
    assert r.status_code == 422 and len(r.content) < 2000
    raw = {"content-type": "application/json"}
    assert (
        httpx.post(
            url + "/api/feedback", content=b'{"question":"\\ud800","answer":"a","rating":1}', headers=raw
        ).status_code
        == 422
    )
    assert httpx.post(url + f"/api/feedback/{10**23}/comment", json={"comment": "x"}).status_code == 422
    assert httpx.get(url + "/api/ask").status_code == 405
    r = httpx.post(
        url + "/api/ask",
        json={"question": "问"},
        headers={"Origin": "http://evil.example", "Host": "evil.example"},
    )
    assert r.status_code == 403
    text = log_path.read_text(errors="replace")
    assert text.count("ignoring x-remote-user / X-Forwarded-For") == 1
    assert "Traceback" not in text
