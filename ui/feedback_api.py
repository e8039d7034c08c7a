"""HTTP API for feedback: POST /api/feedback and POST /api/feedback/{id}/comment.

Both are rate-limited like questions (a budget of their own per client), every
text field is length-capped (``server.max_feedback_chars``) and the citations are
capped in number (``server.max_feedback_citations``) and must be well-formed, all
with a Chinese 422. Commenting later needs the ``token`` returned on creation
(see ``ui.feedback`` for why a per-row secret).
"""

from __future__ import annotations

import logging
from typing import Literal

from fastapi import APIRouter, HTTPException, Path, Request
from pydantic import Field

from assistant.schema import Citation

from .api import identify, rate_limit
from .context import UIContext
from .edge import CleanModel
from .feedback import MAX_ROW_ID
from .guard import MSG_FEEDBACK_NOT_FOUND, check_feedback_text

log = logging.getLogger(__name__)

BUCKET = "feedback|"


class FeedbackRequest(CleanModel):
    question: str
    answer: str
    citations: list[Citation] = Field(default_factory=list)
    rating: Literal[1, -1] = Field(description="1 = 有帮助，-1 = 没有帮助")
    comment: str = ""


class CommentRequest(CleanModel):
    comment: str
    token: str = Field(default="", max_length=200, description="提交评价时返回的 token")


def build_feedback_router(ctx: UIContext) -> APIRouter:
    router = APIRouter()
    server = ctx.settings.server

    def check(fields: dict[str, str]) -> None:
        reason = check_feedback_text(fields, server.max_feedback_chars)
        if reason is not None:
            raise HTTPException(422, detail=reason)

    @router.post("/api/feedback", tags=["反馈"], summary="对回答点赞或点踩（可附意见）")
    def feedback(body: FeedbackRequest, request: Request) -> dict[str, int | str]:
        who = identify(ctx, request)
        rate_limit(ctx, who, "feedback", BUCKET)
        check({"question": body.question, "answer": body.answer, "comment": body.comment})
        if len(body.citations) > server.max_feedback_citations:
            raise HTTPException(422, detail=f"引用太多了：最多 {server.max_feedback_citations} 条。")
        receipt = ctx.feedback.record(
            question=body.question,
            answer=body.answer,
            citations=body.citations,
            rating=body.rating,
            user=who.user,
            comment=body.comment,
        )
        log.info("feedback user=%s key=%s rating=%d id=%d", who.user or "-", who.key, body.rating, receipt.id)
        return {"id": receipt.id, "token": receipt.token}

    @router.post("/api/feedback/{row_id}/comment", tags=["反馈"], summary="为已有评分补充意见")
    def feedback_comment(
        body: CommentRequest, request: Request, row_id: int = Path(ge=1, le=MAX_ROW_ID)
    ) -> dict[str, bool]:
        who = identify(ctx, request)
        rate_limit(ctx, who, "feedback.comment", BUCKET)
        check({"comment": body.comment})
        if not ctx.feedback.add_comment(row_id, body.comment, user=who.user, token=body.token):
            raise HTTPException(404, detail=MSG_FEEDBACK_NOT_FOUND)
        return {"ok": True}

    return router
