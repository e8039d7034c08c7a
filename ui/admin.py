"""Administration over HTTP: re-ingest the library inside the running server.

With embedded Chroma only the serving process may touch the store, so a re-ingest
must run here, not in a second process. ``POST /api/admin/reindex`` starts one in a
background thread (one at a time; a change made while one runs queues one more run);
``GET /api/admin/reindex`` reports its state, its progress and, when done, the ingest
report. The served library follows by its own refresh rule (``assistant.library``): the
next question is answered from the new library, and the old one keeps serving until the
new one is complete.

Access: an administrator (``ui.admin_auth``: ``server.admin_users`` or ``server.admin_token``).
Without either configured the admin API is off (403), never open.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse

from .admin_auth import MSG_ADMIN_DENIED as MSG_ADMIN_DENIED  # re-exported
from .admin_auth import MSG_ADMIN_OFF as MSG_ADMIN_OFF  # re-exported
from .admin_auth import AdminGate
from .audit import AuditLog

log = logging.getLogger(__name__)

# Runs one ingest of the configured library and returns its report as a dict.
IngestRunner = Callable[[], dict[str, Any]]
# The same, reporting (records done, records to embed) as it goes.
ProgressRunner = Callable[[Callable[[int, int], None]], dict[str, Any]]

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
    done: int = 0  # records embedded so far in this run
    total: int = 0  # records to embed in this run (0 until known, or when nothing changed)
    queued: bool = False  # another run will follow this one (a change arrived meanwhile)


class Reindexer:
    """One background ingest at a time, with its state for the admin API."""

    def __init__(
        self, runner: IngestRunner | None = None, progress_runner: ProgressRunner | None = None
    ) -> None:
        if runner is None and progress_runner is None:
            raise ValueError("Reindexer needs a runner")
        self.runner = runner
        self.progress_runner = progress_runner
        self._lock = threading.Lock()
        self._again = False
        self.status = ReindexState()

    def start(self) -> bool:
        """Start an ingest in the background; False when one is already running."""
        with self._lock:
            if self.status.state == "running":
                return False
            self.status = ReindexState("running", time.time(), runs=self.status.runs + 1)
        threading.Thread(target=self._run, name="reindex", daemon=True).start()
        return True

    def request(self) -> None:
        """Start an ingest, or, when one is running, queue exactly one more after it
        (so a file changed during a run is picked up)."""
        while not self.start():
            with self._lock:
                if self.status.state == "running":
                    self._again = True
                    self.status.queued = True
                    return
            # the run ended between the two checks: try to start again

    def _progress(self, done: int, total: int) -> None:
        self.status.done, self.status.total = done, total

    def _once(self) -> dict[str, Any]:
        if self.progress_runner is not None:
            return self.progress_runner(self._progress)
        assert self.runner is not None
        return self.runner()

    def _run(self) -> None:
        while True:
            try:
                report = self._once()
            except Exception as exc:  # the old library keeps serving; the admin sees why
                log.exception("后台导入失败")
                final = ReindexState(
                    "failed", self.status.started_at, time.time(), None, f"{exc}", self.status.runs
                )
            else:
                log.info("后台导入完成：%s", report.get("summary", ""))
                final = ReindexState(
                    "done", self.status.started_at, time.time(), report, "", self.status.runs
                )
                final.done, final.total = self.status.done, self.status.total
            with self._lock:
                if not self._again:
                    self.status = final
                    return
                self._again = False
                self.status = ReindexState("running", time.time(), runs=self.status.runs + 1)


def build_admin_router(
    gate: AdminGate, reindexer: Reindexer | None, audit: AuditLog | None = None
) -> APIRouter:
    router = APIRouter(prefix="/api/admin", tags=["管理"], dependencies=[Depends(gate.check)])

    @router.post("/reindex", summary="在服务内重新导入文件库", status_code=202)
    def reindex(request: Request) -> JSONResponse:
        who = gate.require(request)
        if reindexer is None:
            raise HTTPException(status_code=404, detail=MSG_NO_RUNNER)
        if not reindexer.start():
            raise HTTPException(status_code=409, detail=MSG_BUSY)
        if audit is not None:
            audit.record(who, "reindex", "重新导入文件库", request.client.host if request.client else "")
        return JSONResponse(asdict(reindexer.status), status_code=202)

    @router.get("/reindex", summary="导入进度与结果")
    def reindex_status(request: Request) -> dict[str, Any]:
        gate.require(request)
        if reindexer is None:
            raise HTTPException(status_code=404, detail=MSG_NO_RUNNER)
        return asdict(reindexer.status)

    return router
