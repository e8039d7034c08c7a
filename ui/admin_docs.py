"""Documents in the admin console: list, upload, replace, mark 已废止, remove; ingest in the background.

Thin: the file work is done by the ``LibraryService`` the entry point hands in (``ingest``'s
``AdminLibrary``; the UI never imports ``ingest``), which raises ``ValueError`` with a Chinese
reason for anything it refuses, having stored nothing. Each change is written to the audit
log and followed by a background ingest (``ui.admin.Reindexer``); the served library
switches when that ingest is complete.

* ``GET  /api/admin/documents``: files on disk merged with what the served library holds
  (title, status, article and chunk counts) and the last ingest's problems per file.
* ``POST /api/admin/documents``: multipart ``file`` + ``title``, ``issuer``, ``date``,
  ``status``, ``superseded_by`` (+ ``replace``: the file this is a new version of). The body is
  capped (``ingest.max_upload_bytes``) by the edge middleware before it is read whole.
* ``POST /api/admin/documents/status`` ``{"file", "status", "superseded_by"}``.
* ``POST /api/admin/documents/remove`` ``{"file"}``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict
from typing import Any, Protocol

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException

from .admin import Reindexer
from .admin_auth import AdminGate
from .audit import AuditLog
from .context import UIContext
from .edge import CleanModel

log = logging.getLogger(__name__)

FORM_FIELDS = ("title", "issuer", "date", "status", "superseded_by")
MSG_NO_LIBRARY = "本服务没有配置文件管理功能（请用 policy-assistant serve 启动）。"
MSG_NO_FILE = "请选择要上传的文件。"
MSG_BAD_FORM = "上传内容格式错误（应为 multipart/form-data，一次一个文件）。请在管理页面重新选择文件上传。"


class Change(Protocol):
    @property
    def file(self) -> str: ...  # the document's file name after the change

    @property
    def action(self) -> str: ...  # upload | replace | status | remove

    @property
    def detail(self) -> str: ...  # Chinese, for the audit log and the page


class LibraryService(Protocol):
    """What the admin console needs from the library folder (``ingest.library_admin.AdminLibrary``)."""

    max_bytes: int

    def listing(self) -> list[dict[str, Any]]: ...

    def upload(self, name: str, data: bytes, form: dict[str, Any], replace: str = "") -> Change: ...

    def set_status(self, file: str, status: str, superseded_by: str = "") -> Change: ...

    def remove(self, file: str) -> Change: ...

    def reindex(self, on_progress: Callable[[int, int], None] | None = None) -> dict[str, Any]: ...


class StatusRequest(CleanModel):
    file: str
    status: str
    superseded_by: str = ""


class RemoveRequest(CleanModel):
    file: str


def _ip(request: Request) -> str:
    return request.client.host if request.client else ""


def document_rows(
    served: dict[str, Any], disk: list[dict[str, Any]], report: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """One row per document file on disk or in the served library."""
    by_file: dict[str, dict[str, Any]] = {}
    for d in served.get("documents_detail", []):
        by_file[d["file"]] = {**d, "served": True, "on_disk": False, "problem": ""}
    for d in disk:
        row = by_file.setdefault(d["file"], {"file": d["file"], "served": False, "articles": 0, "chunks": 0})
        meta = d.get("metadata") or {}
        row.update(on_disk=True, size=d["size"], modified=d["modified"], problem="")
        for key in ("title", "issuer", "date", "status"):
            row[key] = row.get(key) or meta.get(key, "")
        row["written_status"] = meta.get("status", "")
    for key in ("skipped", "errors"):
        for item in (report or {}).get(key, []):
            if item.get("file") in by_file:
                by_file[item["file"]]["problem"] = item.get("reason", "")
    return sorted(by_file.values(), key=lambda r: r["file"])


def build_admin_docs_router(
    ctx: UIContext,
    gate: AdminGate,
    audit: AuditLog,
    library: LibraryService | None,
    reindexer: Reindexer | None,
) -> APIRouter:
    router = APIRouter(prefix="/api/admin/documents", tags=["管理"], dependencies=[Depends(gate.check)])

    def need() -> tuple[LibraryService, Reindexer]:
        if library is None or reindexer is None:
            raise HTTPException(404, detail=MSG_NO_LIBRARY)
        return library, reindexer

    def changed(who: str, request: Request, change: Change, runner: Reindexer) -> JSONResponse:
        audit.record(who, change.action, change.detail, _ip(request))
        log.info("admin %s: %s", who, change.detail)
        runner.request()
        return JSONResponse(
            {"file": change.file, "detail": change.detail, "ingest": asdict(runner.status)}, 202
        )

    @router.get("", summary="文件列表（状态、条数、导入问题）")
    def documents(request: Request) -> dict[str, Any]:
        gate.require(request)
        lib, runner = need()
        try:
            served = ctx.assistant.library()
        except Exception:  # the store is down: still list the files on disk
            log.exception("library stats failed")
            served = {}
        disk = lib.listing()
        return {
            "documents": document_rows(served, disk, runner.status.report),
            "ingest": asdict(runner.status),
            "max_bytes": lib.max_bytes,
        }

    @router.post("", summary="上传文件或替换为新版本（multipart）", status_code=202)
    async def upload(request: Request) -> JSONResponse:
        who = gate.require(request)
        lib, runner = need()
        try:
            form = await request.form(max_files=1, max_fields=len(FORM_FIELDS) + 2)
        except (StarletteHTTPException, MultiPartException) as exc:  # malformed, too many parts: English
            raise HTTPException(400, detail=MSG_BAD_FORM) from exc
        try:
            item = form.get("file")
            if not isinstance(item, UploadFile):
                raise HTTPException(422, detail=MSG_NO_FILE)
            data = await item.read(lib.max_bytes + 1)
            if len(data) > lib.max_bytes:
                raise HTTPException(413, detail=f"文件太大：上限 {lib.max_bytes / 1e6:.1f} MB，已拒收。")
            fields = {k: v for k in FORM_FIELDS if isinstance(v := form.get(k), str)}
            replace = form.get("replace")
            name = item.filename or ""
            try:
                change = await run_in_threadpool(
                    lib.upload, name, data, fields, replace if isinstance(replace, str) else ""
                )
            except ValueError as exc:
                audit.record(who, "upload-refused", f"拒收 {name[:200]}：{exc}", _ip(request))
                raise HTTPException(422, detail=str(exc)) from exc
        finally:
            await form.close()
        return changed(who, request, change, runner)

    @router.post("/status", summary="标记文件状态（现行、已修正、已废止）", status_code=202)
    def set_status(body: StatusRequest, request: Request) -> JSONResponse:
        who = gate.require(request)
        lib, runner = need()
        try:
            change = lib.set_status(body.file, body.status, body.superseded_by)
        except ValueError as exc:
            raise HTTPException(422, detail=str(exc)) from exc
        return changed(who, request, change, runner)

    @router.post("/remove", summary="从文件库移除文件", status_code=202)
    def remove(body: RemoveRequest, request: Request) -> JSONResponse:
        who = gate.require(request)
        lib, runner = need()
        try:
            change = lib.remove(body.file)
        except ValueError as exc:
            raise HTTPException(422, detail=str(exc)) from exc
        return changed(who, request, change, runner)

    return router
