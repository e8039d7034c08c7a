"""A tests-only OpenAI-compatible chat server on a free loopback port.

``FakeLLMServer`` answers ``POST /v1/chat/completions`` (plain JSON or SSE
streaming when the request has ``"stream": true``) with replies taken in order
from a script queue, and records every request body it received. It speaks
real HTTP, so the code under test uses the real ``ChatOpenAI`` client.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Reply = str | Callable[[dict[str, Any]], str]


class FakeLLMServer:
    """Scripted replies in, recorded requests out. Use as a context manager."""

    def __init__(self, model: str = "fake-model") -> None:
        self.model = model
        self.replies: deque[Reply] = deque()
        self.requests: list[dict[str, Any]] = []
        self.default_reply = "资料库未涉及"
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    # ------------------------------------------------------------ control

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def script(self, *replies: Reply) -> None:
        """Queue replies; each request takes the next one (``default_reply`` when empty).

        A reply may be a function of the request body (e.g. to quote the evidence it got).
        """
        with self._lock:
            self.replies.extend(replies)

    def next_reply(self, body: dict[str, Any]) -> str:
        with self._lock:
            reply = self.replies.popleft() if self.replies else self.default_reply
        return reply(body) if callable(reply) else reply

    def reset(self) -> None:
        with self._lock:
            self.replies.clear()
            self.requests.clear()

    def record(self, body: dict[str, Any]) -> None:
        with self._lock:
            self.requests.append(body)

    def prompts(self) -> list[str]:
        """All message contents of all recorded requests, one string per request."""
        return [
            "\n".join(str(m.get("content", "")) for m in req.get("messages", [])) for req in self.requests
        ]

    def start(self) -> FakeLLMServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------ HTTP

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return

            def _send_json(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
                    self._send_json(404, {"error": {"message": f"no route {self.path}"}})
                    return
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(length) or b"{}")
                except json.JSONDecodeError:
                    self._send_json(400, {"error": {"message": "bad json"}})
                    return
                server.record(body)
                reply = server.next_reply(body)
                created = int(time.time())
                if body.get("stream"):
                    self._stream(reply, created)
                    return
                self._send_json(
                    200,
                    {
                        "id": "chatcmpl-fake",
                        "object": "chat.completion",
                        "created": created,
                        "model": server.model,
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": reply},
                                "finish_reason": "stop",
                            }
                        ],
                        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                    },
                )

            def _stream(self, reply: str, created: int) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Connection", "close")
                self.end_headers()
                pieces = [reply[i : i + 8] for i in range(0, len(reply), 8)] or [""]
                for i, piece in enumerate(pieces):
                    delta: dict[str, Any] = {"content": piece}
                    if i == 0:
                        delta["role"] = "assistant"
                    self._event(
                        {
                            "id": "chatcmpl-fake",
                            "object": "chat.completion.chunk",
                            "created": created,
                            "model": server.model,
                            "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
                        }
                    )
                self._event(
                    {
                        "id": "chatcmpl-fake",
                        "object": "chat.completion.chunk",
                        "created": created,
                        "model": server.model,
                        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                    }
                )
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()
                self.close_connection = True

            def _event(self, payload: dict[str, Any]) -> None:
                self.wfile.write(
                    b"data: " + json.dumps(payload, ensure_ascii=False).encode("utf-8") + b"\n\n"
                )
                self.wfile.flush()

        return Handler
