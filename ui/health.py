"""/healthz (liveness + the store's state) and /readyz (for load balancers).

* ``GET /healthz`` always answers 200 while the process serves requests, with
  ``status`` "ok" or "degraded" and the store's state, so a paused vector store
  shows up here without making an orchestrator restart a healthy process.
* ``GET /readyz`` answers 200 only when the store answered in time and holds at
  least one chunk, else 503: a load balancer sends no questions to an instance
  that could only decline them or hang.

The state comes from ``assistant.health()`` when the assistant has it, else from
``assistant.library()`` (see ``UIContext.health_source``), run in a one-thread
pool with ``server.health_timeout_s``. Probes that arrive while one is running
share its result, so a frozen store ties up one thread, not one per probe.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

log = logging.getLogger(__name__)

HealthSource = Callable[[], dict[str, Any]]


def _store_failed(detail: str) -> dict[str, Any]:
    return {"ok": False, "store": {"ok": False, "detail": detail}, "documents": 0, "chunks": 0}


class HealthProbe:
    """Single-flight, time-bounded calls of a health source."""

    def __init__(self, source: HealthSource, timeout_s: float) -> None:
        self.source = source
        self.timeout_s = timeout_s
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pa-health")
        self._lock = threading.Lock()
        self._running: Future[dict[str, Any]] | None = None

    def _future(self) -> Future[dict[str, Any]]:
        with self._lock:
            if self._running is None or self._running.done():
                self._running = self._pool.submit(self.source)
            return self._running

    async def check(self) -> dict[str, Any]:
        """``{"ok", "ready", "store": {"ok", "detail"}, "documents", "chunks", "seconds"}``."""
        started = time.monotonic()
        fut = self._future()
        try:
            result = await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(fut)), self.timeout_s)
        except TimeoutError:
            result = _store_failed(f"向量库在 {self.timeout_s:g} 秒内没有响应")
        except Exception as exc:
            log.warning("health check failed: %s: %s", type(exc).__name__, exc)
            result = _store_failed(f"向量库无法访问（{type(exc).__name__}）")
        store = result.get("store") or {}
        store_ok = bool(store.get("ok", result.get("ok")))
        chunks = int(result.get("chunks") or 0)
        ok = bool(result.get("ok", store_ok)) and store_ok
        return {
            "ok": ok,
            "ready": ok and chunks > 0,
            "store": {"ok": store_ok, "detail": str(store.get("detail", ""))},
            "documents": int(result.get("documents") or 0),
            "chunks": chunks,
            "seconds": round(time.monotonic() - started, 3),
        }

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def build_health_router(probe: HealthProbe) -> APIRouter:
    router = APIRouter()

    @router.get("/healthz", tags=["运维"], summary="健康检查（含向量库状态）")
    @router.head("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, Any]:
        state = await probe.check()
        return {"status": "ok" if state["ready"] else "degraded", **state}

    @router.get("/readyz", tags=["运维"], summary="就绪检查（未就绪时 503，供负载均衡使用）")
    @router.head("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        state = await probe.check()
        if state["ready"]:
            return JSONResponse({"status": "ready", **state})
        reason = state["store"]["detail"] if not state["store"]["ok"] else "资料库为空，尚未导入文件"
        return JSONResponse({"status": "not ready", "reason": reason, **state}, status_code=503)

    return router
