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
from starlette.routing import BaseRoute, Route

from assistant.associated import AssociatedStore
from assistant.config import Settings

from .admin import IngestRunner, Reindexer, build_admin_router
from .admin_auth import AdminGate
from .admin_docs import LibraryService, build_admin_docs_router
from .admin_page import build_admin_page_router
from .admin_retrieval import build_admin_retrieval_router
from .admin_review import build_admin_review_router
from .api import build_api_router
from .audit import AuditLog
from .chat import build_chat
from .context import AssistantLike, UIContext
from .edge import BodyLimitMiddleware, MethodGuard, validation_error_body
from .embed import STATIC_DIR, EdgeMiddleware, build_embed_router
from .feedback_api import build_feedback_router
from .guard import MSG_INTERNAL_ERROR
from .health import build_health_router
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


def create_app(
    settings: Settings,
    assistant: AssistantLike,
    ingest: IngestRunner | None = None,
    library: LibraryService | None = None,
) -> FastAPI:
    """FastAPI app: API + embed pages + admin console and API + Gradio chat mounted at "/".

    ``ingest`` runs one ingest of the configured library (the admin API's re-index);
    ``library`` changes the library folder for the admin console (upload, status, remove)
    and runs the ingest with progress. The UI never imports ``ingest`` itself: the entry
    point hands these in."""
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
        return JSONResponse(validation_error_body(exc), status_code=422)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s", request.url.path)
        return JSONResponse({"detail": MSG_INTERNAL_ERROR}, status_code=500)

    server = settings.server
    gate = AdminGate(server, ctx.identity)
    audit = AuditLog(server.admin_db)
    associated = AssociatedStore(
        server.admin_db, settings.ingest.associated_questions, generated=settings.ingest.generated_questions
    )
    reindexer: Reindexer | None = None
    if library is not None:
        reindexer = Reindexer(progress_runner=library.reindex)
    elif ingest is not None:
        reindexer = Reindexer(ingest)
    routers = [
        build_health_router(ctx.probe),
        build_api_router(ctx),
        build_feedback_router(ctx),
        build_admin_router(gate, reindexer, audit),
        build_admin_docs_router(ctx, gate, audit, library, reindexer),
        build_admin_review_router(ctx, gate, audit, associated, reindexer),
        build_admin_retrieval_router(ctx, gate),
        build_admin_page_router(ctx, gate, audit),
        build_embed_router(ctx),
    ]
    for router in routers:
        app.include_router(router)
    app.mount("/pa-static", StaticFiles(directory=STATIC_DIR), name="pa-static")
    own_routes: list[BaseRoute] = [r for r in app.router.routes if isinstance(r, Route)]  # /openapi.json
    own_routes += [r for router in routers for r in router.routes]

    # Outermost last: origin check → body limit → CORS → 405 for known paths → routes.
    app.add_middleware(MethodGuard, routes=own_routes)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(settings.server.allowed_origins),
        allow_methods=["GET", "POST", "OPTIONS"],
        allow_headers=["Content-Type", "Authorization"],
        allow_credentials=False,
        max_age=600,
    )
    # Uploads get their own cap (plus room for the multipart framing and the form fields).
    upload_cap = min(settings.ingest.max_upload_bytes, settings.ingest.max_file_bytes) + 64 * 1024
    upload_msg = (
        f"文件太大：上限 {upload_cap / 1e6:.1f} MB（ingest.max_upload_bytes），已拒收，未保存任何内容。"
    )
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.server.max_body_bytes,
        overrides={"/api/admin/documents": (upload_cap, upload_msg)},
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


def serve(
    settings: Settings,
    assistant: AssistantLike,
    ingest: IngestRunner | None = None,
    library: LibraryService | None = None,
) -> None:
    """Run the app with uvicorn on settings.server.host:port (blocks until stopped)."""
    import uvicorn

    app = create_app(settings, assistant, ingest, library)
    log.info("serving on http://%s:%d", settings.server.host, settings.server.port)
    uvicorn.run(
        app,
        host=settings.server.host,
        port=settings.server.port,
        log_config=None,  # logging is configured by the CLI
        # X-Forwarded-For is interpreted by ui.identity, only from server.trusted_proxies;
        # uvicorn's own handling would trust it from 127.0.0.1, where anyone can send it.
        proxy_headers=False,
        server_header=False,
    )
