"""The Gradio chat page (问答 + 资料库 tabs): translates events and delegates to the Assistant.

The conversation that is sent to the assistant lives on the server in a
``gr.State`` (one per browser session), never in what the browser sends back.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import gradio as gr

from assistant.schema import Answer

from .context import History, UIContext
from .gradio_api import register_ask_api
from .guard import MSG_INTERNAL_ERROR, MSG_RATE_LIMITED, check_feedback_text, check_question
from .identity import Identity
from .render import esc, render_answer, render_library, render_message, render_partial
from .workers import report_failure

log = logging.getLogger(__name__)

EXAMPLES = [
    "政务处分有哪几种？处分期分别是多长？",
    "公务员辞去公职需要经过什么程序？",
    "监察机关在调查中可以采取哪些措施？",
    "问责条例规定了哪些问责方式？",
    "讲话对激励干部担当作为提出了哪些要求？",
]

Message = dict[str, Any]
# One entry per assistant message in the chatbot: {"question": str, "answer": Answer dump | None}.
Turns = list[dict[str, Any]]


def _history(turns: Turns, ctx: UIContext) -> History:
    """The answered turns, cut to the server's history limits (like the API's ``history``)."""
    return ctx.bound([(t["question"], t["answer"]["text"]) for t in turns if t.get("answer")])


def _identity(request: gr.Request | None, ctx: UIContext) -> Identity:
    """The identity of a Gradio request (trusted header only from trusted proxies)."""
    if request is None:
        return Identity(user="", ip="unknown")
    headers = {str(k).lower(): str(v) for k, v in dict(request.headers).items()}
    host = request.client.host if request.client else None
    return ctx.identity.resolve(headers, host)


def build_chat(ctx: UIContext) -> gr.Blocks:
    server = ctx.settings.server
    lookup = ctx.chunk_lookup()

    def respond(
        question: str, chat: list[Message], turns: Turns, request: gr.Request
    ) -> Iterator[tuple[list[Message], Turns, str]]:
        question = (question or "").strip()
        chat = list(chat or [])
        turns = list(turns or [])
        who = _identity(request, ctx)
        user, key = who.user, who.key
        reason = check_question(question, server)
        if reason is None and not ctx.limiter.allow(key):
            reason = MSG_RATE_LIMITED
            log.warning("rate limited chat key=%s", key)
        shown = question if len(question) <= server.max_question_chars else question[:80] + "……"
        chat.append({"role": "user", "content": f"<div>{esc(shown)}</div>" if shown else "（空）"})
        if reason is not None:
            chat.append({"role": "assistant", "content": render_message(reason, "pa-warn")})
            turns.append({"question": question, "answer": None})
            yield chat, turns, question
            return
        log.info("chat user=%s key=%s chars=%d", user or "-", key, len(question))
        chat.append({"role": "assistant", "content": render_partial("")})
        yield chat, turns, ""
        text = ""
        answer: Answer | None = None
        try:
            history = _history(turns, ctx)
            for piece in ctx.workers.stream_sync(lambda: ctx.assistant.stream(question, history)):
                if isinstance(piece, Answer):
                    answer = piece
                    break
                text += piece
                chat[-1] = {"role": "assistant", "content": render_partial(text)}
                yield chat, turns, ""
        except Exception as exc:
            failure = report_failure(exc, "chat") or MSG_INTERNAL_ERROR
            answer = None
        else:
            failure = MSG_INTERNAL_ERROR
        if answer is None:
            chat[-1] = {"role": "assistant", "content": render_message(failure)}
            turns.append({"question": question, "answer": None})
        else:
            chat[-1] = {"role": "assistant", "content": render_answer(answer, lookup)}
            turns.append({"question": question, "answer": answer.model_dump()})
        yield chat, turns, ""

    def on_like(data: gr.LikeData, turns: Turns, request: gr.Request) -> tuple[dict[str, Any] | None, str]:
        idx = data.index if isinstance(data.index, int) else data.index[0]
        k = idx // 2
        if data.liked in (True, "Like"):
            rating = 1
        elif data.liked in (False, "Dislike"):
            rating = -1
        else:
            return None, ""
        if not 0 <= k < len(turns) or not turns[k].get("answer"):
            return None, "这条消息不是回答，无法评价。"
        turn = turns[k]
        who = _identity(request, ctx)
        if not ctx.limiter.allow("feedback|" + who.key):
            return None, MSG_RATE_LIMITED
        receipt = ctx.feedback.record(
            question=turn["question"],
            answer=turn["answer"]["text"],
            citations=turn["answer"]["citations"][: server.max_feedback_citations],
            rating=rating,
            user=who.user,
        )
        log.info("feedback user=%s rating=%d id=%d", who.user or "-", rating, receipt.id)
        # Kept in server-side session state: the browser never sees the token.
        return {"id": receipt.id, "token": receipt.token}, "已记录您的评价，谢谢！如愿意，可在下方补充意见。"

    def on_comment(comment: str, row: dict[str, Any] | None, request: gr.Request) -> tuple[str, str]:
        if not row:
            return comment, "请先点回答下方的“赞”或“踩”图标，再提交意见。"
        comment = (comment or "").strip()
        if not comment:
            return comment, "意见为空，未提交。"
        reason = check_feedback_text({"comment": comment}, server.max_feedback_chars)
        if reason is not None:
            return comment, reason
        who = _identity(request, ctx)
        ok = ctx.feedback.add_comment(row["id"], comment, user=who.user, token=row["token"])
        return ("", "意见已保存，谢谢！") if ok else (comment, "未找到对应的评价，请重新点“赞”或“踩”。")

    def load_library() -> str:
        try:
            return render_library(ctx.assistant.library())
        except Exception:
            log.exception("library listing failed")
            return render_message("资料库信息暂时无法读取，请稍后刷新。")

    with gr.Blocks(title="政策问答助手", analytics_enabled=False) as demo:
        turns = gr.State([])
        feedback_row = gr.State(None)
        gr.HTML(
            '<div class="pa-header"><h1>政策问答助手</h1>'
            "<p>依据本单位文件库作答，每个要点都标注出处并引用原文。回答仅供参考，以正式文件为准。</p></div>"
        )
        with gr.Tab("问答"):
            chatbot = gr.Chatbot(
                label="对话",
                height=560,
                latex_delimiters=[],
                allow_tags=False,
                buttons=["copy"],
                feedback_options=("Like", "Dislike"),
                placeholder="请在下方输入问题，或点选示例问题。",
                elem_id="pa-chatbot",
            )
            with gr.Row():
                box = gr.Textbox(
                    placeholder=f"请输入问题（最多 {server.max_question_chars} 字），按回车发送",
                    show_label=False,
                    scale=8,
                    max_lines=4,
                    elem_id="pa-question",
                )
                send = gr.Button("发送", variant="primary", scale=1, elem_id="pa-send")
            gr.Examples(examples=[[q] for q in EXAMPLES], inputs=box, label="示例问题")
            clear = gr.Button("清空对话", variant="secondary", elem_id="pa-clear")
            with gr.Accordion("对回答的意见（可选）", open=False):
                comment = gr.Textbox(label="先点回答下方的“赞”或“踩”图标，再在此补充意见", lines=2)
                comment_btn = gr.Button("提交意见")
            status = gr.Markdown(elem_id="pa-status")
        with gr.Tab("资料库"):
            library = gr.HTML(elem_id="pa-library")
            refresh = gr.Button("刷新")
        gr.HTML(
            '<div class="pa-footer"><a href="/docs">接口文档</a> · <a href="/embed-help">嵌入到其他网站</a></div>'
        )

        # The page's own handlers are not an API (they return rendered HTML): private.
        # The one documented endpoint is /ask (ui.gradio_api).
        internal: dict[str, Any] = {"api_visibility": "private"}
        # Gradio runs each event one at a time unless told otherwise (default_concurrency_limit 1):
        # questions from different users run side by side, as many as there are assistant workers
        # (more would only wait for a worker slot inside a Gradio thread); both triggers share the group.
        answering: dict[str, Any] = {
            "concurrency_limit": server.worker_threads,
            "concurrency_id": "pa-answer",
        }
        box.submit(respond, [box, chatbot, turns], [chatbot, turns, box], **internal, **answering)
        send.click(respond, [box, chatbot, turns], [chatbot, turns, box], **internal, **answering)
        clear.click(lambda: ([], [], None, ""), None, [chatbot, turns, feedback_row, status], **internal)
        chatbot.clear(lambda: ([], None, ""), None, [turns, feedback_row, status], **internal)
        chatbot.like(on_like, [turns], [feedback_row, status], **internal)
        comment_btn.click(on_comment, [comment, feedback_row], [comment, status], **internal)
        demo.load(load_library, None, library, **internal)
        refresh.click(load_library, None, library, **internal)
        register_ask_api(ctx)
    return demo
