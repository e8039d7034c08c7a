"""HTTP API: /api/ask, /v1/chat/completions (OpenAI-compatible, SSE), /v1/models, /api/chunks.

Every assistant call runs in ``ctx.workers`` (bounded threads, ``server.answer_timeout_s``),
never on the event loop. A store that times out or refuses connections, a busy
pool or a deadline gives a Chinese 503 with ``Retry-After``; the server goes on.

Citations travel in extra fields that OpenAI clients ignore:

* non-streaming ``/v1/chat/completions``: top-level ``citations`` (list of
  ``Citation``) and ``policy_answer`` (``text``, ``declined``, ``outcome``, ``mode``, ``notices``);
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
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import ConfigDict, Field

from assistant.schema import Answer

from .context import History, UIContext
from .edge import CleanModel
from .guard import MSG_INTERNAL_ERROR, MSG_RATE_LIMITED, check_question
from .identity import Identity
from .workers import report_failure

log = logging.getLogger(__name__)

MODEL_NAME = "policy-assistant"
T = TypeVar("T")


class AskRequest(CleanModel):
    question: str = Field(description="用户的问题")
    history: list[Any] = Field(default_factory=list, description="此前的对话：[[问题, 回答], ...]")


class ChatMessage(CleanModel):
    model_config = ConfigDict(extra="allow")
    role: str
    content: str | list[dict[str, Any]] | None = None


class ChatCompletionRequest(CleanModel):
    model_config = ConfigDict(extra="allow")
    model: str | None = None
    messages: list[ChatMessage]
    stream: bool = False


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


def identify(ctx: UIContext, request: Request) -> Identity:
    """The caller's identity (trusted header / forwarded address only from trusted proxies)."""
    return ctx.identity.resolve(request.headers, request.client.host if request.client else None)


def rate_limit(ctx: UIContext, who: Identity, route: str, bucket: str = "") -> None:
    """429 (Chinese, Retry-After: 60) when ``who`` is over the per-minute budget of ``bucket``."""
    if not ctx.limiter.allow(bucket + who.key):
        log.warning("rate limited %s key=%s", route, who.key)
        raise HTTPException(429, detail=MSG_RATE_LIMITED, headers={"Retry-After": "60"})


def _admit(ctx: UIContext, request: Request, question: str, history: History, route: str) -> Identity:
    """Apply the edge rules to a question and its (already bounded) history."""
    reason = check_question(question, ctx.settings.server)
    if reason is not None:
        raise HTTPException(422, detail=reason)
    who = identify(ctx, request)
    rate_limit(ctx, who, route)
    log.info(
        "%s user=%s key=%s chars=%d history_turns=%d history_chars=%d",
        route,
        who.user or "-",
        who.key,
        len(question),
        len(history),
        sum(len(q) + len(a) for q, a in history),
    )
    return who


def unavailable(exc: BaseException, route: str) -> JSONResponse:
    """The Chinese 503 (busy, deadline, store down) or 500 for a failed assistant call."""
    message = report_failure(exc, route)
    if message is None:
        return JSONResponse({"detail": MSG_INTERNAL_ERROR}, status_code=500)
    return JSONResponse({"detail": message}, status_code=503, headers={"Retry-After": "30"})


def _answer_extra(answer: Answer, replace: bool = False) -> dict[str, Any]:
    return {
        "citations": [c.model_dump() for c in answer.citations],
        "policy_answer": {
            "text": answer.text,
            "declined": answer.declined,
            "outcome": answer.outcome,
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

    async def run(route: str, fn: Callable[..., T], *args: Any) -> T | JSONResponse:
        try:
            return await ctx.workers.call(fn, *args)
        except Exception as exc:
            return unavailable(exc, route)

    @router.get("/api/library", tags=["资料库"], summary="资料库中的文件（与“资料库”标签页相同）")
    def library() -> dict[str, Any]:
        return ctx.assistant.library()

    @router.post("/api/ask", tags=["问答"], summary="提问，返回完整回答与引用", response_model=Answer)
    async def ask(body: AskRequest, request: Request) -> Answer | JSONResponse:
        history = ctx.history(body.history)
        _admit(ctx, request, body.question, history, "api.ask")
        return await run("api.ask", ctx.assistant.ask, body.question, history)

    @router.post("/v1/chat/completions", tags=["问答"], summary="OpenAI 兼容的对话接口（支持 stream）")
    async def chat_completions(body: ChatCompletionRequest, request: Request) -> Any:
        question, history = messages_to_turns(body.messages)
        history = ctx.bound(history)
        _admit(ctx, request, question, history, "v1.chat")
        cid = f"chatcmpl-{uuid.uuid4().hex}"
        created = int(time.time())
        if not body.stream:
            answer = await run("v1.chat", ctx.assistant.ask, question, history)
            if isinstance(answer, JSONResponse):
                return answer
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

        pieces = ctx.workers.stream(lambda: ctx.assistant.stream(question, history))
        # The first piece is awaited before the response starts, so that a store that
        # is down (or a full pool) still gets a proper 503 instead of a 200 stream.
        try:
            first: str | Answer | None = await anext(pieces)
        except StopAsyncIteration:
            first = None
        except Exception as exc:
            await pieces.aclose()
            return unavailable(exc, "v1.chat")

        async def events() -> AsyncIterator[str]:
            yield _sse(_chunk(cid, created, {"role": "assistant", "content": ""}))
            streamed = ""
            try:
                piece = first
                while piece is not None:
                    if isinstance(piece, Answer):
                        replace = not piece.text.startswith(streamed)
                        rest = "" if replace else piece.text[len(streamed) :]
                        if rest:
                            yield _sse(_chunk(cid, created, {"content": rest}))
                        yield _sse({**_chunk(cid, created, {}, "stop"), **_answer_extra(piece, replace)})
                        break
                    streamed += piece
                    yield _sse(_chunk(cid, created, {"content": piece}))
                    piece = await anext(pieces, None)
            except Exception as exc:
                message = report_failure(exc, "v1.chat stream")
                err = Answer(text=message or MSG_INTERNAL_ERROR, declined=True, outcome="refusal")
                yield _sse({**_chunk(cid, created, {}, "error"), **_answer_extra(err, replace=True)})
            finally:
                await pieces.aclose()
            yield "data: [DONE]\n\n"

        return StreamingResponse(
            events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )

    @router.get("/v1/models", tags=["问答"], summary="OpenAI 兼容的模型列表")
    def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": MODEL_NAME, "object": "model", "owned_by": "local"}]}

    @router.get("/api/chunks/{chunk_id}", tags=["问答"], summary="按片段 id 取条文原文", response_model=None)
    async def chunk(chunk_id: str) -> dict[str, str] | JSONResponse:
        if len(chunk_id) > 200:
            raise HTTPException(404, detail="找不到该片段。")
        text = await run("api.chunks", ctx.chunk_text, chunk_id)
        if isinstance(text, JSONResponse):
            return text
        if text is None:
            raise HTTPException(404, detail="找不到该片段。")
        return {"chunk_id": chunk_id, "text": text}

    return router
