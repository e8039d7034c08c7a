"""Feedback review in the admin console, and attaching a question to an article (关联问题).

* ``GET  /api/admin/feedback?rating=-1&since=2026-01-01&until=2026-01-31&reviewed=0``
* ``GET  /api/admin/feedback.csv`` (same filters)
* ``POST /api/admin/feedback/{id}/reviewed``
* ``POST /api/admin/feedback/{id}/associate`` ``{"file", "article", "heading", "question"}``:
  the row's question (or an edited one) becomes an associated question of that article
  (``assistant.associated``), stored with who attached it and when; a background ingest
  re-indexes that document with the question as an extra view, so the next answer to it
  changes with no restart.
* ``GET  /api/admin/associated``, ``POST /api/admin/associated/{id}/remove``
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse, Response

from assistant.associated import AssociatedError, AssociatedStore
from assistant.text import article_label, article_number

from .admin import Reindexer
from .admin_auth import AdminGate
from .audit import AuditLog
from .context import UIContext
from .edge import CleanModel
from .feedback import MAX_ROW_ID
from .feedback_review import FeedbackReview, ReviewFilter

MSG_NOT_FOUND = "找不到这条反馈。"
MSG_BAD_DATE = "日期格式应为 2026-01-31。"
MSG_NO_TARGET = "资料库中没有这个文件或条文，请从列表中选择文件并填写条号（如 第七条）。"
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class AssociateRequest(CleanModel):
    file: str
    article: str = ""
    heading: str = ""
    question: str = ""


def _filter(rating: int | None, since: str, until: str, reviewed: int | None, limit: int) -> ReviewFilter:
    for value in (since, until):
        if value and not _DATE.match(value):
            raise HTTPException(422, detail=MSG_BAD_DATE)
    return ReviewFilter(rating, since, until, None if reviewed is None else bool(reviewed), limit)


def build_admin_review_router(
    ctx: UIContext, gate: AdminGate, audit: AuditLog, associated: AssociatedStore, reindexer: Reindexer | None
) -> APIRouter:
    router = APIRouter(prefix="/api/admin", tags=["管理"], dependencies=[Depends(gate.check)])
    review = FeedbackReview(ctx.settings.server.feedback_db)

    def ip(request: Request) -> str:
        return request.client.host if request.client else ""

    def target_exists(file: str, article: str, heading: str) -> bool:
        index = getattr(ctx.assistant, "index", None)
        if index is None:  # an assistant without a library index: check the file only
            return any(d["file"] == file for d in ctx.assistant.library().get("documents_detail", []))
        library = index.current()
        if article:
            return library.article(file, article) is not None
        return any(d.metadata.get("heading_path") == heading for d in library.document_chunks(file))

    @router.get("/feedback", summary="反馈列表（按日期、评价、是否已审阅筛选）")
    def feedback(
        request: Request,
        rating: int | None = Query(None, ge=-1, le=1),
        since: str = "",
        until: str = "",
        reviewed: int | None = Query(None, ge=0, le=1),
        limit: int = Query(200, ge=1, le=5000),
    ) -> dict[str, Any]:
        gate.require(request)
        return {"rows": review.rows(_filter(rating, since, until, reviewed, limit))}

    @router.get("/feedback.csv", summary="导出反馈（CSV）")
    def feedback_csv(
        request: Request,
        rating: int | None = Query(None, ge=-1, le=1),
        since: str = "",
        until: str = "",
        reviewed: int | None = Query(None, ge=0, le=1),
    ) -> Response:
        who = gate.require(request)
        audit.record(who, "export", "导出反馈 CSV", ip(request))
        text = review.csv(_filter(rating, since, until, reviewed, 10_000))
        headers = {"Content-Disposition": 'attachment; filename="feedback.csv"'}
        return Response(text, media_type="text/csv; charset=utf-8", headers=headers)

    @router.post("/feedback/{row_id}/reviewed", summary="标记为已审阅")
    def mark_reviewed(request: Request, row_id: int = Path(ge=1, le=MAX_ROW_ID)) -> dict[str, bool]:
        who = gate.require(request)
        if not review.mark(row_id, who):
            raise HTTPException(404, detail=MSG_NOT_FOUND)
        audit.record(who, "review", f"标记反馈 #{row_id} 为已审阅", ip(request))
        return {"ok": True}

    @router.post(
        "/feedback/{row_id}/associate", summary="把反馈中的问题关联到应回答它的条文", status_code=202
    )
    def associate(
        body: AssociateRequest, request: Request, row_id: int = Path(ge=1, le=MAX_ROW_ID)
    ) -> JSONResponse:
        who = gate.require(request)
        row = review.get(row_id)
        if row is None:
            raise HTTPException(404, detail=MSG_NOT_FOUND)
        article, heading = body.article.strip(), body.heading.strip()
        number = article_number(article) if article else None
        article = article_label(number) if number is not None else article  # 第12条 -> 第十二条
        if not target_exists(body.file, article, heading):
            raise HTTPException(422, detail=MSG_NO_TARGET)
        try:
            q = associated.add(
                file=body.file,
                article=article,
                heading="" if article else heading,
                question=body.question or str(row["question"]),
                user=who,
                feedback_id=row_id,
            )
        except AssociatedError as exc:
            raise HTTPException(422, detail=str(exc)) from exc
        where = f"《{body.file}》{article or heading}"
        audit.record(
            who, "associate", f"把反馈 #{row_id} 的问题“{q.question[:100]}”关联到 {where}", ip(request)
        )
        review.mark(row_id, who)
        if reindexer is not None:
            reindexer.request()
        return JSONResponse({"id": q.id, "file": q.file, "article": q.article, "question": q.question}, 202)

    @router.get("/associated", summary="关联问题列表")
    def associated_list(request: Request) -> dict[str, Any]:
        gate.require(request)
        try:
            items = associated.all()
        except AssociatedError as exc:
            raise HTTPException(500, detail=str(exc)) from exc
        # The generated ones (about 1.6k, one folder of TOML files) are counted, not listed.
        generated = [q for q in items if q.source == "generated"]
        return {
            "rows": [q.__dict__ for q in items if q.source != "generated"],
            "generated": len(generated),
            "generated_folder": str(associated.generated or ""),
        }

    @router.post("/associated/{qid}/remove", summary="删除一个（管理员添加的）关联问题", status_code=202)
    def associated_remove(request: Request, qid: int = Path(ge=1, le=MAX_ROW_ID)) -> JSONResponse:
        who = gate.require(request)
        q = associated.remove(qid)
        if q is None:
            raise HTTPException(
                404,
                detail="找不到这个关联问题（精选的关联问题请在 corpus/associated_questions.toml 中修改）。",
            )
        audit.record(
            who,
            "unassociate",
            f"删除关联问题“{q.question[:100]}”（《{q.file}》{q.article or q.heading}）",
            ip(request),
        )
        if reindexer is not None:
            reindexer.request()
        return JSONResponse({"ok": True}, 202)

    return router
