"""The HTTP API in process (FastAPI TestClient) against the real assistant and store."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from assistant.config import Settings
from assistant.schema import Answer

ALLOWED = "http://127.0.0.1:8123"
EVIL = "http://evil.example"
QUESTION = "政务处分的种类有哪些？"
BOOM = "触发故障的问题"
# The tests play the reverse proxy: requests come from this address, which is trusted
# to set X-Remote-User; the service is reached as http://testserver.
PROXY = "127.0.0.1"


@pytest.fixture(scope="module")
def real_assistant(ingested_settings: Settings, embeddings: Any) -> Any:
    from assistant.service import build_assistant

    return build_assistant(ingested_settings, embeddings=embeddings)


def _settings(base: Settings, tmp: Path, **server: Any) -> Settings:
    values: dict[str, Any] = {
        "feedback_db": tmp / "feedback.sqlite3",
        "admin_db": tmp / "admin.sqlite3",
        "allowed_origins": [ALLOWED],
        "rate_limit_per_minute": 1000,
        "trusted_proxies": [PROXY],
        "public_origins": ["http://testserver"],
        **server,
    }
    return base.model_copy(update={"server": base.server.model_copy(update=values)})


@pytest.fixture(scope="module")
def api_settings(ingested_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return _settings(ingested_settings, tmp_path_factory.mktemp("api"))


@pytest.fixture(scope="module")
def client(api_settings: Settings, real_assistant: Any) -> Iterator[TestClient]:
    from ui.app import create_app

    with TestClient(create_app(api_settings, real_assistant), client=(PROXY, 50000)) as c:
        yield c


def _sse(body: str) -> list[Any]:
    """Parse an SSE body into JSON objects, with the literal "[DONE]" kept as a string."""
    events: list[Any] = []
    for block in body.split("\n\n"):
        for line in block.splitlines():
            if line.startswith("data: "):
                data = line[len("data: ") :]
                events.append(data if data == "[DONE]" else json.loads(data))
    return events


def _library_files(settings: Settings) -> set[str]:
    return {p.name for d in settings.ingest.library_dirs for p in Path(d).glob("*.md")}


def test_healthz(client: TestClient) -> None:
    r = client.get("/healthz")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok"
    assert body["store"]["ok"] is True
    assert body["documents"] > 0 and body["chunks"] >= body["documents"]


def test_ask_returns_answer_with_verbatim_citations(client: TestClient, api_settings: Settings) -> None:
    r = client.post("/api/ask", json={"question": QUESTION, "history": []})
    assert r.status_code == 200, r.text
    answer = Answer.model_validate(r.json())
    assert not answer.declined
    assert answer.citations
    files = _library_files(api_settings)
    for c in answer.citations:
        assert c.file in files
        chunk = client.get(f"/api/chunks/{c.chunk_id}")
        assert chunk.status_code == 200
        assert c.quote in chunk.json()["text"]
    assert client.get("/api/chunks/no-such-chunk").status_code == 404


def test_chat_completions_non_streaming(client: TestClient) -> None:
    body = {"model": "policy-assistant", "messages": [{"role": "user", "content": QUESTION}]}
    r = client.post("/v1/chat/completions", json=body)
    assert r.status_code == 200, r.text
    data = r.json()
    assert data["object"] == "chat.completion"
    message = data["choices"][0]["message"]
    assert message["role"] == "assistant"
    assert message["content"] == data["policy_answer"]["text"]
    assert data["choices"][0]["finish_reason"] == "stop"
    assert data["citations"] and all(c["quote"] and c["chunk_id"] for c in data["citations"])


def test_chat_completions_streaming(client: TestClient) -> None:
    body = {
        "messages": [{"role": "system", "content": "忽略"}, {"role": "user", "content": QUESTION}],
        "stream": True,
    }
    with client.stream("POST", "/v1/chat/completions", json=body) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events = _sse(r.read().decode("utf-8"))
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert all(e["object"] == "chat.completion.chunk" for e in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    final = chunks[-1]
    assert final["choices"][0]["finish_reason"] == "stop"
    assert final["citations"]
    streamed = "".join(e["choices"][0]["delta"].get("content", "") for e in chunks)
    if not final["policy_answer"]["replace"]:
        assert streamed == final["policy_answer"]["text"]
    assert len([e for e in chunks if e["choices"][0]["delta"].get("content")]) >= 1


def test_follow_up_uses_history(client: TestClient) -> None:
    first = client.post("/api/ask", json={"question": QUESTION}).json()
    body = {
        "messages": [
            {"role": "user", "content": QUESTION},
            {"role": "assistant", "content": first["text"]},
            {"role": "user", "content": "其中记过的处分期是多长？"},
        ]
    }
    r = client.post("/v1/chat/completions", json=body)
    assert r.status_code == 200
    assert r.json()["policy_answer"]["text"]


def test_bad_requests_get_chinese_4xx(client: TestClient, api_settings: Settings) -> None:
    limit = api_settings.server.max_question_chars
    long_q = "请问" * limit
    r = client.post("/api/ask", json={"question": long_q})
    assert r.status_code == 422
    assert f"最多 {limit} 个字" in r.json()["detail"]
    r = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": long_q}]})
    assert r.status_code == 422
    assert "问题太长" in r.json()["detail"]
    r = client.post("/api/ask", json={"question": "   "})
    assert r.status_code == 422 and r.json()["detail"] == "请输入问题。"
    r = client.post("/api/ask", json={})
    assert r.status_code == 422 and r.json()["detail"].startswith("请求格式不正确")
    r = client.post("/v1/chat/completions", json={"messages": [{"role": "assistant", "content": "x"}]})
    assert r.status_code == 422 and "user" in r.json()["detail"]


def test_rate_limit_per_client(ingested_settings: Settings, real_assistant: Any, tmp_path: Path) -> None:
    from ui.app import create_app

    settings = _settings(ingested_settings, tmp_path, rate_limit_per_minute=2)
    with TestClient(create_app(settings, real_assistant), client=(PROXY, 50000)) as c:
        alice = {"X-Remote-User": "alice"}
        for _ in range(2):
            assert c.post("/api/ask", json={"question": QUESTION}, headers=alice).status_code == 200
        r = c.post("/api/ask", json={"question": QUESTION}, headers=alice)
        assert r.status_code == 429
        assert r.json()["detail"] == "提问太频繁了，请稍等一分钟后再试。"
        assert r.headers["retry-after"] == "60"
        r = c.post(
            "/v1/chat/completions", json={"messages": [{"role": "user", "content": QUESTION}]}, headers=alice
        )
        assert r.status_code == 429
        # Another user (key = trusted user header) has a budget of their own.
        assert (
            c.post("/api/ask", json={"question": QUESTION}, headers={"X-Remote-User": "bob"}).status_code
            == 200
        )
        # Health checks are never limited.
        assert c.get("/healthz").status_code == 200


def test_disallowed_origin_is_refused(client: TestClient) -> None:
    r = client.post("/api/ask", json={"question": QUESTION}, headers={"Origin": EVIL})
    assert r.status_code == 403
    assert r.json()["detail"] == "该来源网站未获授权调用本服务。"
    assert "access-control-allow-origin" not in r.headers
    pre = client.options(
        "/api/ask",
        headers={
            "Origin": EVIL,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert "access-control-allow-origin" not in pre.headers
    r = client.post("/v1/chat/completions", json={"messages": []}, headers={"Origin": "null"})
    assert r.status_code == 403


def test_allowed_and_same_origin_get_through(client: TestClient) -> None:
    pre = client.options(
        "/v1/chat/completions",
        headers={
            "Origin": ALLOWED,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert pre.status_code == 200
    assert pre.headers["access-control-allow-origin"] == ALLOWED
    r = client.post("/api/ask", json={"question": QUESTION}, headers={"Origin": ALLOWED})
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == ALLOWED
    # The server's own pages (Origin == one of server.public_origins) may always call it.
    r = client.post("/api/ask", json={"question": QUESTION}, headers={"Origin": "http://testserver"})
    assert r.status_code == 200


def test_frame_ancestors_on_embed_and_chat(client: TestClient) -> None:
    for path in ("/embed", "/"):
        r = client.get(path)
        assert r.status_code == 200
        csp = r.headers["content-security-policy"]
        directive = next(d.strip() for d in csp.split(";") if d.strip().startswith("frame-ancestors"))
        assert directive.split()[1:] == ["'self'", ALLOWED]
        assert "connect-src 'self'" in csp
    embed = client.get("/embed").text
    assert 'data-max-chars="500"' in embed


def test_widget_help_and_docs_are_local(client: TestClient) -> None:
    widget = client.get("/widget.js")
    assert widget.status_code == 200
    assert widget.headers["content-type"].startswith("text/javascript")
    assert "/embed" in widget.text
    help_page = client.get("/embed-help").text
    assert "http://testserver/widget.js" in help_page
    assert ALLOWED in help_page
    docs = client.get("/docs")
    assert docs.status_code == 200
    assert "/openapi.json" in docs.text
    for page in (help_page, docs.text, client.get("/embed").text):
        assert "cdn" not in page.lower() and "googleapis" not in page
    spec = client.get("/openapi.json").json()
    assert {"/api/ask", "/v1/chat/completions", "/healthz"} <= set(spec["paths"])


def test_feedback_is_stored_with_the_user(client: TestClient, api_settings: Settings) -> None:
    answer = client.post("/api/ask", json={"question": QUESTION}).json()
    r = client.post(
        "/api/feedback",
        json={"question": QUESTION, "answer": answer["text"], "citations": answer["citations"], "rating": -1},
        headers={"X-Remote-User": "zhangsan"},
    )
    assert r.status_code == 200
    row_id = r.json()["id"]
    # Only the same user may add the comment.
    assert (
        client.post(
            f"/api/feedback/{row_id}/comment", json={"comment": "x"}, headers={"X-Remote-User": "lisi"}
        ).status_code
        == 404
    )
    r = client.post(
        f"/api/feedback/{row_id}/comment", json={"comment": "引用不全"}, headers={"X-Remote-User": "zhangsan"}
    )
    assert r.status_code == 200
    with sqlite3.connect(api_settings.server.feedback_db) as conn:
        conn.row_factory = sqlite3.Row
        row = conn.execute("SELECT * FROM feedback WHERE id = ?", (row_id,)).fetchone()
    assert row["user"] == "zhangsan"
    assert row["rating"] == -1
    assert row["question"] == QUESTION
    assert row["answer"] == answer["text"]
    assert row["comment"] == "引用不全"
    assert [c["chunk_id"] for c in json.loads(row["citations"])] == [
        c["chunk_id"] for c in answer["citations"]
    ]
    assert row["time"]
    bad = client.post("/api/feedback", json={"question": "q", "answer": "a", "rating": 5})
    assert bad.status_code == 422


class _Faulty:
    """The real assistant, except that one question makes it raise (fault injection)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def ask(self, question: str, history: list[tuple[str, str]] | None = None) -> Answer:
        if question == BOOM:
            raise RuntimeError("injected failure")
        return self.inner.ask(question, history)  # type: ignore[no-any-return]

    def stream(self, question: str, history: list[tuple[str, str]] | None = None) -> Iterator[str | Answer]:
        if question == BOOM:
            yield "半句"
            raise RuntimeError("injected failure")
        yield from self.inner.stream(question, history)

    def library(self) -> dict[str, Any]:
        return self.inner.library()  # type: ignore[no-any-return]


def test_assistant_failure_does_not_kill_the_server(
    ingested_settings: Settings, real_assistant: Any, tmp_path: Path
) -> None:
    from ui.app import create_app

    settings = _settings(ingested_settings, tmp_path)
    with TestClient(
        create_app(settings, _Faulty(real_assistant)), raise_server_exceptions=False, client=(PROXY, 50000)
    ) as c:
        r = c.post("/api/ask", json={"question": BOOM})
        assert r.status_code == 500
        assert r.json()["detail"].startswith("抱歉，处理问题时出错了")
        r = c.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": BOOM}]})
        assert r.status_code == 500
        with c.stream(
            "POST",
            "/v1/chat/completions",
            json={"messages": [{"role": "user", "content": BOOM}], "stream": True},
        ) as s:
            events = _sse(s.read().decode("utf-8"))
        assert events[-1] == "[DONE]"
        assert events[-2]["choices"][0]["finish_reason"] == "error"
        assert events[-2]["policy_answer"]["replace"] is True
        # The same server keeps answering.
        r = c.post("/api/ask", json={"question": QUESTION})
        assert r.status_code == 200 and r.json()["citations"]
        assert c.get("/healthz").status_code == 200
