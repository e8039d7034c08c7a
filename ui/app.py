"""The web application: FastAPI with the HTTP API, the embed pages and the Gradio chat.

This is the only place that wires the UI to an Assistant. ``create_app`` builds
the ASGI app; ``serve`` runs it with uvicorn (``policy-assistant serve``).
"""

from __future__ import annotations

import logging
import os

import gradio as gr
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from assistant.config import Settings

from .admin import IngestRunner, Reindexer, build_admin_router
from .api import build_api_router
from .chat import build_chat
from .context import AssistantLike, UIContext
from .embed import STATIC_DIR, EdgeMiddleware, build_embed_router
from .guard import MSG_INTERNAL_ERROR
from .render import CSS

log = logging.getLogger(__name__)

# System fonts only: nothing is fetched from a font CDN.
FONTS = ["Noto Sans CJK SC", "WenQuanYi Micro Hei", "PingFang SC", "Microsoft YaHei", "sans-serif"]
MONO_FONTS = ["DejaVu Sans Mono", "Consolas", "monospace"]

PAGE_CSS = (
    CSS
    + """
.pa-header h1 { font-size: 1.5em; margin: 0.2em 0; }
.pa-header p { color: #6b7280; margin: 0 0 0.4em 0; }
.pa-footer { text-align: center; color: #6b7280; font-size: 0.9em; }
.pa-warn { color: #92400e; }
"""
)


def create_app(settings: Settings, assistant: AssistantLike, ingest: IngestRunner | None = None) -> FastAPI:
    """FastAPI app: API + embed pages + admin API + Gradio chat mounted at "/".

    ``ingest`` runs one ingest of the configured library (the admin API's re-index);
    the UI never imports ``ingest`` itself: the entry point hands this in."""
    # Gradio's usage analytics would call out to the internet.
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    ctx = UIContext.build(settings, assistant)
    app = FastAPI(
        title="政策问答助手 API",
        description="依据本单位文件库回答政策问题，并给出逐条原文引用。",
        version="0.1.0",
        docs_url=None,  # Swagger UI would load from a CDN; /docs is a local page instead.
        redoc_url=None,
    )
    app.state.ui = ctx

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        fields = ", ".join(".".join(str(p) for p in e.get("loc", ())) for e in exc.errors())
        return JSONResponse(
            {"detail": f"请求格式不正确：{fields or '请求体'}", "errors": exc.errors()}, status_code=422
        )

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s", request.url.path)
        return JSONResponse({"detail": MSG_INTERNAL_ERROR}, status_code=500)

    app.include_router(build_api_router(ctx))
    app.include_router(build_admin_router(ctx, Reindexer(ingest) if ingest is not None else None))
    app.include_router(build_embed_router(ctx))
    app.mount("/pa-static", StaticFiles(directory=STATIC_DIR), name="pa-static")

    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(settings.server.allowed_origins),
        allow_methods=["GET", "POST", "OPTIONS"],
        allow_headers=["Content-Type", "Authorization"],
        allow_credentials=False,
        max_age=600,
    )
    app.add_middleware(EdgeMiddleware, policy=ctx.origins)

    theme = gr.themes.Default(font=FONTS, font_mono=MONO_FONTS)
    gr.mount_gradio_app(
        app,
        build_chat(ctx),
        path="/",
        server_name=settings.server.host,
        server_port=settings.server.port,
        footer_links=[],
        run_history=False,
        ssr_mode=False,
        mcp_server=False,
        pwa=False,
        theme=theme,
        css=PAGE_CSS,
    )
    return app


def serve(settings: Settings, assistant: AssistantLike, ingest: IngestRunner | None = None) -> None:
    """Run the app with uvicorn on settings.server.host:port (blocks until stopped)."""
    import uvicorn

    app = create_app(settings, assistant, ingest)
    log.info("serving on http://%s:%d", settings.server.host, settings.server.port)
    uvicorn.run(
        app,
        host=settings.server.host,
        port=settings.server.port,
        log_config=None,  # logging is configured by the CLI
        proxy_headers=True,
    )
