"""Request-level guards that run before any handler parses anything.

* ``BodyLimitMiddleware``: a body larger than ``server.max_body_bytes`` gets 413
  (Chinese) before JSON parsing: refused from ``Content-Length`` at once, or as
  soon as the streamed bytes pass the limit.
* ``MethodGuard``: a known API path called with the wrong method gets 405 with
  ``Allow`` (otherwise the Gradio app mounted at "/" would answer 404).
* ``validation_error_body``: 422 bodies that name the fields but echo at most a
  short prefix of the offending input, however large it was.
* ``CleanModel``: base of the request bodies; refuses text with lone UTF-16
  surrogates (``"\\ud800"`` is valid JSON but cannot be encoded as UTF-8, so it
  would fail later in SQLite, logging or the tokenizer) with a 422.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, model_validator
from pydantic_core import PydanticCustomError
from starlette.routing import BaseRoute, Match, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .guard import MSG_BODY_TOO_LARGE, MSG_METHOD_NOT_ALLOWED

MSG_BAD_TEXT = "文本中含有无效的字符（孤立的 UTF-16 代理项），请检查编码后再试。"
# Characters of the client's input an error body may repeat.
ECHO_CHARS = 100
# Validation errors listed in one 422 body.
MAX_ERRORS = 10


async def send_json(
    send: Send, status: int, body: dict[str, Any], headers: Iterable[tuple[str, str]] = ()
) -> None:
    data = json.dumps(body, ensure_ascii=False).encode("utf-8")
    raw = [
        (b"content-type", b"application/json; charset=utf-8"),
        (b"content-length", str(len(data)).encode()),
    ]
    raw += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": data})


class BodyLimitMiddleware:
    """Read at most ``max_bytes`` of a request body, then hand it on in one piece.

    ``overrides`` maps exact paths (e.g. the admin upload) to their own limit and 413 message."""

    def __init__(
        self, app: ASGIApp, max_bytes: int, overrides: dict[str, tuple[int, str]] | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.overrides = overrides or {}

    async def _too_large(self, send: Send, limit: int, message: str = "") -> None:
        detail = message or MSG_BODY_TOO_LARGE.format(limit=limit)
        await send_json(send, 413, {"detail": detail}, [("connection", "close")])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit, refusal = self.overrides.get(scope.get("path", ""), (self.max_bytes, ""))
        if scope["type"] != "http" or limit <= 0:
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                declared = -1
            if declared > limit:
                await self._too_large(send, limit, refusal)
                return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # disconnected: let the app see it
                chunks = []
                first: Message = message
                break
            body = message.get("body", b"")
            size += len(body)
            if size > limit:
                await self._too_large(send, limit, refusal)
                return
            chunks.append(body)
            if not message.get("more_body", False):
                first = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
                break
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return first
            return await receive()

        await self.app(scope, replay, send)


class MethodGuard:
    """405 for a path that one of ``routes`` serves, called with a method none of them accepts."""

    def __init__(self, app: ASGIApp, routes: list[BaseRoute]) -> None:
        self.app = app
        self.routes = [r for r in routes if not isinstance(r, Mount) and getattr(r, "methods", None)]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            allowed: set[str] = set()
            for route in self.routes:
                match, _ = route.matches(scope)
                if match == Match.FULL:
                    allowed = set()
                    break
                if match == Match.PARTIAL:
                    allowed |= set(getattr(route, "methods", None) or ())
            if allowed:
                allow = ", ".join(sorted(allowed))
                detail = MSG_METHOD_NOT_ALLOWED.format(method=scope["method"], allowed=allow)
                await send_json(send, 405, {"detail": detail}, [("allow", allow)])
                return
        await self.app(scope, receive, send)


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= ECHO_CHARS else text[:ECHO_CHARS] + "…"


def _short_input(value: Any) -> Any:
    """The offending input as a short string (never the whole structure)."""
    if isinstance(value, bool | int | float) or value is None:
        return value if len(repr(value)) <= ECHO_CHARS else _short(value)
    if isinstance(value, str):
        return _short(value)
    return _short(f"<{type(value).__name__}，共 {len(value) if hasattr(value, '__len__') else '?'} 项>")


def validation_error_body(exc: RequestValidationError) -> dict[str, Any]:
    """``{"detail": Chinese summary, "errors": [{"loc", "msg", "type", "input"}...]}``, all of it small."""
    errors = list(exc.errors())
    shown = []
    for err in errors[:MAX_ERRORS]:
        loc = [p if isinstance(p, int) else _short(str(p)) for p in err.get("loc", ())]
        item: dict[str, Any] = {
            "loc": loc,
            "msg": _short(str(err.get("msg", ""))),
            "type": str(err.get("type")),
        }
        if "input" in err:
            item["input"] = _short_input(err["input"])
        shown.append(item)
    fields = "、".join(dict.fromkeys(".".join(str(p) for p in e["loc"]) for e in shown))
    detail = f"请求格式不正确：{fields or '请求体'}"
    if any(e["type"] == "invalid_text" for e in shown):
        detail = f"请求格式不正确：{MSG_BAD_TEXT}"
    body: dict[str, Any] = {"detail": detail, "errors": shown}
    if len(errors) > MAX_ERRORS:
        body["more_errors"] = len(errors) - MAX_ERRORS
    return body


def _has_lone_surrogate(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return False


class CleanModel(BaseModel):
    """A request body whose every string (at any depth) is encodable as UTF-8."""

    @model_validator(mode="before")
    @classmethod
    def _no_lone_surrogates(cls, data: Any) -> Any:
        if _has_lone_surrogate(data):
            raise PydanticCustomError("invalid_text", MSG_BAD_TEXT)
        return data
