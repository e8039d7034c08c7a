"""Embedding: /embed (compact chat page), /widget.js, /embed-help, the offline /docs page,
and the edge middleware that enforces the origin allow-list.

* Every response carries ``Content-Security-Policy: frame-ancestors 'self' <allowed>``,
  so only allow-listed host pages can frame the chat (main page and /embed).
* State-changing requests (POST, ...) whose ``Origin`` is neither one of the
  service's own origins (``server.public_origins`` and its bind address, never the
  ``Host`` header) nor on the allow-list get 403 before reaching any handler (CORS headers for
  allowed origins are added by Starlette's ``CORSMiddleware`` in ``app.py``).
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .context import UIContext
from .guard import MSG_ORIGIN_DENIED, OriginPolicy

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}

# Pages we write ourselves: only our own scripts and styles, only our own server.
STRICT_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'"
)
# The Gradio page needs inline scripts and eval, but still nothing from other hosts.
GRADIO_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; media-src 'self' data: blob:; "
    "worker-src 'self' blob:; object-src 'none'; base-uri 'self'"
)


STATIC_DIR = Path(__file__).resolve().parent / "static"


def static_text(name: str) -> str:
    return (STATIC_DIR / name).read_text(encoding="utf-8")


def _own_origin(request: Request) -> str:
    return str(request.base_url).rstrip("/")


class EdgeMiddleware:
    """Origin check for unsafe methods and security headers on every response."""

    def __init__(self, app: ASGIApp, policy: OriginPolicy) -> None:
        self.app = app
        self.policy = policy
        self.frame_ancestors = f"frame-ancestors {policy.frame_ancestors()}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        origin = headers.get("origin")
        if scope["method"] not in SAFE_METHODS and origin is not None:
            if not self.policy.allows(origin):
                body = json.dumps({"detail": MSG_ORIGIN_DENIED}, ensure_ascii=False).encode()
                await send(
                    {
                        "type": "http.response.start",
                        "status": 403,
                        "headers": [
                            (b"content-type", b"application/json; charset=utf-8"),
                            (b"content-length", str(len(body)).encode()),
                            (b"vary", b"Origin"),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                raw: list[tuple[bytes, bytes]] = list(message.get("headers", []))
                names = {k.lower() for k, _ in raw}
                ctype = next((v for k, v in raw if k.lower() == b"content-type"), b"")
                if b"content-security-policy" not in names:
                    csp = self.frame_ancestors
                    if ctype.startswith(b"text/html"):
                        csp = f"{GRADIO_CSP}; {self.frame_ancestors}"
                    raw.append((b"content-security-policy", csp.encode("latin-1")))
                if b"x-content-type-options" not in names:
                    raw.append((b"x-content-type-options", b"nosniff"))
                if b"referrer-policy" not in names:
                    raw.append((b"referrer-policy", b"strict-origin-when-cross-origin"))
                message = {**message, "headers": raw}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def build_embed_router(ctx: UIContext) -> APIRouter:
    router = APIRouter()
    server = ctx.settings.server
    strict = f"{STRICT_CSP}; frame-ancestors {ctx.origins.frame_ancestors()}"

    def page(text: str) -> HTMLResponse:
        return HTMLResponse(text, headers={"Content-Security-Policy": strict, "Cache-Control": "no-cache"})

    @router.get("/embed", include_in_schema=False)
    def embed() -> HTMLResponse:
        return page(static_text("embed.html").replace("{{MAX_CHARS}}", str(server.max_question_chars)))

    @router.get("/widget.js", include_in_schema=False)
    def widget() -> Response:
        return Response(
            static_text("widget.js"),
            media_type="text/javascript; charset=utf-8",
            headers={"Cache-Control": "public, max-age=300"},
        )

    @router.get("/embed-help", include_in_schema=False)
    def embed_help(request: Request) -> HTMLResponse:
        values: dict[str, Any] = {
            "{{ORIGIN}}": html.escape(_own_origin(request)),
            "{{ALLOWED}}": "".join(f"<li><code>{html.escape(o)}</code></li>" for o in ctx.origins.allowed)
            or "<li>（无：只能在本服务自己的页面中使用）</li>",
            "{{USER_HEADER}}": html.escape(server.user_header),
            "{{RATE}}": str(server.rate_limit_per_minute),
            "{{MAX_CHARS}}": str(server.max_question_chars),
        }
        text = static_text("help.html")
        for key, value in values.items():
            text = text.replace(key, value)
        return page(text)

    @router.get("/help", include_in_schema=False)
    def help_alias(request: Request) -> HTMLResponse:
        return embed_help(request)

    @router.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return page(static_text("apidocs.html"))

    return router
