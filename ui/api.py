"""HTTP API: /api/ask, /v1/chat/completions (OpenAI-compatible, SSE), feedback, /healthz.

Citations travel in extra fields that OpenAI clients ignore:

* non-streaming ``/v1/chat/completions``: top-level ``citations`` (list of
  ``Citation``) and ``policy_answer`` (``text``, ``declined``, ``mode``, ``notices``);
* streaming: the same two fields on the final chunk (the one with
  ``finish_reason: "stop"``), before ``data: [DONE]``. ``policy_answer.text``
  is the authoritative answer text; if it differs from what was streamed,
  ``policy_answer.replace`` is true and clients should show it instead.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterator
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from assistant.schema import Answer, Citation

from .context import History, UIContext, history_from_pairs
from .guard import MSG_INTERNAL_ERROR, MSG_RATE_LIMITED, check_question, client_key, user_of

log = logging.getLogger(__name__)

MODEL_NAME = "policy-assistant"


class AskRequest(BaseModel):
    question: str = Field(description="用户的问题")
    history: list[Any] = Field(default_factory=list, description="此前的对话：[[问题, 回答], ...]")


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str
    content: str | list[dict[str, Any]] | None = None


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str | None = None
    messages: list[ChatMessage]
    stream: bool = False


class FeedbackRequest(BaseModel):
    question: str
    answer: str
    citations: list[dict[str, Any]] = Field(default_factory=list)
    rating: Literal[1, -1] = Field(description="1 = 有帮助，-1 = 没有帮助")
    comment: str = ""


class CommentRequest(BaseModel):
    comment: str


def _content_text(content: str | list[dict[str, Any]] | None) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(str(p.get("text", "")) for p in content if p.get("type") == "text")


def messages_to_turns(messages: list[ChatMessage]) -> tuple[str, History]:
    """Last user message is the question; earlier user/assistant pairs are the history.

    System messages from clients are ignored: the assistant's own instructions win.
    """
    turns = [(m.role, _content_text(m.content)) for m in messages if m.role in ("user", "assistant")]
    if not turns or turns[-1][0] != "user":
        raise HTTPException(422, detail="messages 的最后一条必须是用户（user）的问题。")
    question = turns[-1][1]
    history: History = []
    pending: str | None = None
    for role, text in turns[:-1]:
        if role == "user":
            pending = text
        elif pending is not None:
            history.append((pending, text))
            pending = None
    return question, history


def _admit(ctx: UIContext, request: Request, question: str, route: str) -> str:
    """Apply the edge rules; return the user name for logging."""
    reason = check_question(question, ctx.settings.server)
    if reason is not None:
        raise HTTPException(422, detail=reason)
    key = client_key(request.headers, request.client.host if request.client else None, ctx.settings.server)
    if not ctx.limiter.allow(key):
        log.warning("rate limited %s key=%s", route, key)
        raise HTTPException(429, detail=MSG_RATE_LIMITED, headers={"Retry-After": "60"})
    user = user_of(request.headers, ctx.settings.server)
    log.info("%s user=%s key=%s chars=%d", route, user or "-", key, len(question))
    return user


def _answer_extra(answer: Answer, replace: bool = False) -> dict[str, Any]:
    return {
        "citations": [c.model_dump() for c in answer.citations],
        "policy_answer": {
            "text": answer.text,
            "declined": answer.declined,
            "mode": answer.mode,
            "notices": answer.notices,
            "replace": replace,
        },
    }


def _chunk(cid: str, created: int, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": MODEL_NAME,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def _sse(obj: dict[str, Any]) -> str:
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"


def build_api_router(ctx: UIContext) -> APIRouter:
    router = APIRouter()

    @router.get("/healthz", tags=["运维"], summary="健康检查")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/api/library", tags=["资料库"], summary="资料库中的文件（与“资料库”标签页相同）")
    def library() -> dict[str, Any]:
        return ctx.assistant.library()

    @router.post("/api/ask", tags=["问答"], summary="提问，返回完整回答与引用", response_model=Answer)
    def ask(body: AskRequest, request: Request) -> Answer | JSONResponse:
        _admit(ctx, request, body.question, "api.ask")
        try:
            return ctx.assistant.ask(body.question, history_from_pairs(body.history))
        except Exception:
            log.exception("api.ask failed")
            return JSONResponse({"detail": MSG_INTERNAL_ERROR}, status_code=500)

    @router.post("/v1/chat/completions", tags=["问答"], summary="OpenAI 兼容的对话接口（支持 stream）")
    def chat_completions(body: ChatCompletionRequest, request: Request) -> Any:
        question, history = messages_to_turns(body.messages)
        _admit(ctx, request, question, "v1.chat")
        cid = f"chatcmpl-{uuid.uuid4().hex}"
        created = int(time.time())
        if not body.stream:
            try:
                answer = ctx.assistant.ask(question, history)
            except Exception:
                log.exception("v1.chat failed")
                return JSONResponse({"detail": MSG_INTERNAL_ERROR}, status_code=500)
            return {
                "id": cid,
                "object": "chat.completion",
                "created": created,
                "model": MODEL_NAME,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": answer.text},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
                **_answer_extra(answer),
            }

        def events() -> Iterator[str]:
            yield _sse(_chunk(cid, created, {"role": "assistant", "content": ""}))
            streamed = ""
            try:
                for piece in ctx.assistant.stream(question, history):
                    if isinstance(piece, Answer):
                        replace = not piece.text.startswith(streamed)
                        rest = "" if replace else piece.text[len(streamed) :]
                        if rest:
                            yield _sse(_chunk(cid, created, {"content": rest}))
                        yield _sse({**_chunk(cid, created, {}, "stop"), **_answer_extra(piece, replace)})
                        break
                    streamed += piece
                    yield _sse(_chunk(cid, created, {"content": piece}))
            except Exception:
                log.exception("v1.chat stream failed")
                err = Answer(text=MSG_INTERNAL_ERROR, declined=True)
                yield _sse({**_chunk(cid, created, {}, "error"), **_answer_extra(err, replace=True)})
            yield "data: [DONE]\n\n"

        return StreamingResponse(
            events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )

    @router.get("/v1/models", tags=["问答"], summary="OpenAI 兼容的模型列表")
    def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": MODEL_NAME, "object": "model", "owned_by": "local"}]}

    @router.get("/api/chunks/{chunk_id}", tags=["问答"], summary="按片段 id 取条文原文")
    def chunk(chunk_id: str) -> dict[str, str]:
        text = ctx.chunk_text(chunk_id)
        if text is None:
            raise HTTPException(404, detail="找不到该片段。")
        return {"chunk_id": chunk_id, "text": text}

    @router.post("/api/feedback", tags=["反馈"], summary="对回答点赞或点踩（可附意见）")
    def feedback(body: FeedbackRequest, request: Request) -> dict[str, int]:
        user = user_of(request.headers, ctx.settings.server)
        citations = [Citation.model_validate(c) for c in body.citations]
        row = ctx.feedback.record(
            question=body.question,
            answer=body.answer,
            citations=citations,
            rating=body.rating,
            user=user,
            comment=body.comment,
        )
        log.info("feedback user=%s rating=%d id=%d", user or "-", body.rating, row)
        return {"id": row}

    @router.post("/api/feedback/{row_id}/comment", tags=["反馈"], summary="为已有评分补充意见")
    def feedback_comment(row_id: int, body: CommentRequest, request: Request) -> dict[str, bool]:
        user = user_of(request.headers, ctx.settings.server)
        if not ctx.feedback.add_comment(row_id, body.comment, user=user):
            raise HTTPException(404, detail="找不到这条反馈。")
        return {"ok": True}

    return router
