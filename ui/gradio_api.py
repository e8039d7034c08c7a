"""The one documented Gradio endpoint, ``/ask``, for ``gradio_client``.

``Client(url).predict(question, history, api_name="/ask")`` returns ``(answer, citations)``:
the answer as plain text (no HTML) and the citations as a list of dicts (``file``, ``title``,
``article``, ``quote``, ``chunk_id``, ``start``, ``end``, ``status``, ``heading_path``). The
same limits as ``POST /api/ask`` apply (question length, history, rate limit per user or
address); a refused or failed question raises a ``gr.Error`` with the Chinese reason. The
chat page's own event handlers are registered with ``api_visibility="private"`` (``ui.chat``),
so ``view_api()`` lists only this endpoint.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any

import gradio as gr

from .context import UIContext
from .guard import MSG_INTERNAL_ERROR, MSG_RATE_LIMITED, check_question
from .workers import report_failure

log = logging.getLogger(__name__)


def register_ask_api(ctx: UIContext) -> None:
    """Register ``/ask`` on the Blocks being built (call inside ``with gr.Blocks()``)."""

    async def ask(
        question: str, history: list[list[str]] | None = None, request: gr.Request | None = None
    ) -> tuple[str, list[dict[str, Any]]]:
        """政策问答：输入问题（及此前的对话 [[问题, 回答], ...]），返回纯文本回答和引用列表（文件、标题、条、原文）。"""
        question = (question or "").strip()
        reason = check_question(question, ctx.settings.server)
        if reason is not None:
            raise gr.Error(reason)
        headers = {str(k).lower(): str(v) for k, v in dict(request.headers).items()} if request else {}
        peer = request.client.host if request is not None and request.client else None
        who = ctx.identity.resolve(headers, peer)
        if not ctx.limiter.allow(who.key):
            log.warning("rate limited gradio /ask key=%s", who.key)
            raise gr.Error(MSG_RATE_LIMITED)
        turns = ctx.history(history or [])
        log.info("gradio /ask user=%s key=%s chars=%d", who.user or "-", who.key, len(question))
        try:
            answer = await ctx.workers.call(ctx.assistant.ask, question, turns)
        except Exception as exc:
            raise gr.Error(report_failure(exc, "gradio-ask") or MSG_INTERNAL_ERROR) from None
        return answer.text, [c.model_dump() for c in answer.citations]

    # Gradio reads the return type from the signature: give it real types, not strings.
    ask.__signature__ = inspect.signature(ask, eval_str=True)  # type: ignore[attr-defined]
    gr.api(ask, api_name="ask", concurrency_limit=None)
