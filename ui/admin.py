"""Administration over HTTP: re-ingest the library inside the running server.

With embedded Chroma only the serving process may touch the store, so a re-ingest
must run here, not in a second process. ``POST /api/admin/reindex`` starts one in a
background thread (one at a time); ``GET /api/admin/reindex`` reports its state and,
when done, the ingest report. The served library follows by its own refresh rule
(``assistant.library``): the next question is answered from the new library, and the
old one keeps serving until the new one is complete.

Access: ``Authorization: Bearer <server.admin_token>``. Without a configured token the
admin API is off (403), never open.
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse

from .context import UIContext

log = logging.getLogger(__name__)

# Runs one ingest of the configured library and returns its report as a dict.
IngestRunner = Callable[[], dict[str, Any]]

MSG_ADMIN_OFF = "管理接口未启用：请在配置中设置 server.admin_token（或环境变量 POLICY_SERVER__ADMIN_TOKEN）。"
MSG_ADMIN_DENIED = "没有管理权限：请在请求头 Authorization 中提供正确的管理令牌（Bearer …）。"
MSG_NO_RUNNER = "本服务没有配置导入功能。"
MSG_BUSY = "已有一次导入正在进行，请等它结束后再试。"


@dataclass
class ReindexState:
    state: str = "idle"  # idle | running | done | failed
    started_at: float | None = None
    finished_at: float | None = None
    report: dict[str, Any] | None = None
    error: str = ""
    runs: int = field(default=0)


class Reindexer:
    """One background ingest at a time, with its state for the admin API."""

    def __init__(self, runner: IngestRunner) -> None:
        self.runner = runner
        self._lock = threading.Lock()
        self.status = ReindexState()

    def start(self) -> bool:
        """Start an ingest in the background; False when one is already running."""
        with self._lock:
            if self.status.state == "running":
                return False
            self.status = ReindexState("running", time.time(), runs=self.status.runs + 1)
        threading.Thread(target=self._run, name="reindex", daemon=True).start()
        return True

    def _run(self) -> None:
        try:
            report = self.runner()
        except Exception as exc:  # the old library keeps serving; the admin sees why
            log.exception("后台导入失败")
            self.status = ReindexState(
                "failed", self.status.started_at, time.time(), None, f"{exc}", self.status.runs
            )
            return
        log.info("后台导入完成：%s", report.get("summary", ""))
        self.status = ReindexState("done", self.status.started_at, time.time(), report, "", self.status.runs)


def build_admin_router(ctx: UIContext, reindexer: Reindexer | None) -> APIRouter:
    router = APIRouter(prefix="/api/admin", tags=["管理"])

    def require_admin(request: Request) -> None:
        token = ctx.settings.server.admin_token
        if not token:
            raise HTTPException(status_code=403, detail=MSG_ADMIN_OFF)
        given = request.headers.get("authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), token.encode()):
            raise HTTPException(status_code=403, detail=MSG_ADMIN_DENIED)

    @router.post("/reindex", summary="在服务内重新导入文件库", status_code=202)
    def reindex(request: Request) -> JSONResponse:
        require_admin(request)
        if reindexer is None:
            raise HTTPException(status_code=404, detail=MSG_NO_RUNNER)
        if not reindexer.start():
            raise HTTPException(status_code=409, detail=MSG_BUSY)
        return JSONResponse(asdict(reindexer.status), status_code=202)

    @router.get("/reindex", summary="导入进度与结果")
    def reindex_status(request: Request) -> dict[str, Any]:
        require_admin(request)
        if reindexer is None:
            raise HTTPException(status_code=404, detail=MSG_NO_RUNNER)
        return asdict(reindexer.status)

    return router
