"""命中测试 in the admin console: a question's ranked chunks with their scores, and the decision.

``POST /api/admin/retrieval-test`` ``{"question"}`` runs the assistant's own pipeline
(``Assistant.run``) in the worker pool and shows its evidence in rank order with the fused,
dense and BM25 scores and match kind that ``HybridRetriever.search`` computed
(``assistant.hits``: the same rows ``policy-assistant ask --json`` prints), and the decision
(作答 / 仅有相关内容 / 拒答) with its reason. Nothing is ranked here.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import Field

from assistant.hits import KIND_LABELS, decision_kind, hit_rows

from .admin_auth import AdminGate
from .api import unavailable
from .context import UIContext
from .edge import CleanModel
from .guard import check_question

MSG_NO_RUN = "当前助手不支持命中测试。"
# Why the pipeline declined or refused (Result.reason), for the console.
REASONS = {
    "answered": "检索到依据，已作答",
    "injection": "问题含有要求编造或改变指令的内容",
    "missing": "问题涉及资料库未收录的文件",
    "weak": "最相关片段的相似度低于拒答阈值（retrieval.decline_threshold）",
    "unsupported": "相关原文没有写明所问的数额、期限等",
    "related": "可回答性判断的概率低于阈值：资料库没有直接规定，只列出相关条文",
    "no_article": "问题所问的条号超出了该文件的条文范围",
    "no_item": "问题所问的项在该条中不存在",
    "empty": "问题为空",
    "too_long": "问题过长",
    "not_covered": "大模型判断原文未涉及",
}


class HitTestRequest(CleanModel):
    question: str = Field(description="要测试的问题")


def build_admin_retrieval_router(ctx: UIContext, gate: AdminGate) -> APIRouter:
    router = APIRouter(prefix="/api/admin", tags=["管理"], dependencies=[Depends(gate.check)])

    @router.post("/retrieval-test", summary="命中测试：排序后的片段与得分、作答决定")
    async def retrieval_test(body: HitTestRequest, request: Request) -> Any:
        gate.require(request)
        run = getattr(ctx.assistant, "run", None)
        if not callable(run):
            raise HTTPException(404, detail=MSG_NO_RUN)
        question = body.question.strip()
        reason = check_question(question, ctx.settings.server)
        if reason is not None:
            raise HTTPException(422, detail=reason)
        try:
            result = await ctx.workers.call(run, question, None)
        except Exception as exc:
            return unavailable(exc, "retrieval-test")
        kind = decision_kind(result)
        answer = result.answer
        return JSONResponse(
            {
                "question": question,
                "decision": kind,
                "decision_label": KIND_LABELS[kind],
                "reason": result.reason,
                "reason_label": REASONS.get(result.reason, result.reason),
                "threshold": ctx.settings.retrieval.decline_threshold,
                # The answerability decision: its probability, its threshold and its features.
                "answerability": result.decision.probability if result.decision else None,
                "answerability_features": result.decision.features if result.decision else {},
                "answer": answer.text,
                "citations": [c.model_dump() for c in answer.citations],
                "hits": hit_rows(result.evidence),
            }
        )

    return router
