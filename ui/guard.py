"""Safety at the edge: question length, per-client rate limit, origin allow-list, messages.

Shared by the HTTP API, the Gradio chat and the embed page so that every way
in obeys the same rules and gives the same Chinese messages.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from assistant.config import ServerSettings

MSG_EMPTY = "请输入问题。"
MSG_RATE_LIMITED = "提问太频繁了，请稍等一分钟后再试。"
MSG_ORIGIN_DENIED = "该来源网站未获授权调用本服务。"
MSG_INTERNAL_ERROR = "抱歉，处理问题时出错了，请稍后再试。如果问题持续出现，请联系管理员。"
MSG_STORE_UNAVAILABLE = "资料库暂时无法访问（向量库没有响应），请稍后再试。如果问题持续出现，请联系管理员。"
MSG_TIMEOUT = "回答超时：资料库或模型服务响应太慢，请稍后再试。"
MSG_BUSY = "服务繁忙，正在处理的问题太多，请稍后再试。"
MSG_BODY_TOO_LARGE = "请求内容太大了：最多 {limit} 字节，请精简后再试。"
MSG_METHOD_NOT_ALLOWED = "该地址不支持 {method} 请求（支持：{allowed}）。"
MSG_FEEDBACK_NOT_FOUND = "找不到这条反馈，或您无权修改它。"


def question_too_long(limit: int) -> str:
    return f"问题太长了：最多 {limit} 个字，请精简后再问。"


def check_feedback_text(fields: dict[str, str], limit: int) -> str | None:
    """A Chinese reason when a feedback field is longer than ``limit`` characters."""
    names = {"question": "问题", "answer": "回答", "comment": "意见"}
    for field, text in fields.items():
        if len(text) > limit:
            return f"反馈中的{names.get(field, field)}太长了：最多 {limit} 个字。"
    return None


def check_question(question: str, settings: ServerSettings) -> str | None:
    """Return a Chinese reason why the question is refused, or None if it is fine."""
    if not question.strip():
        return MSG_EMPTY
    if len(question) > settings.max_question_chars:
        return question_too_long(settings.max_question_chars)
    return None


class RateLimiter:
    """Sliding one-minute window per client key; thread-safe."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        """Count one request for ``key``; False when it is over the limit."""
        if self.per_minute <= 0:
            return True
        now = self._clock()
        with self._lock:
            hits = self._hits.setdefault(key, deque())
            while hits and now - hits[0] >= 60.0:
                hits.popleft()
            if len(hits) >= self.per_minute:
                return False
            hits.append(now)
            if len(self._hits) > 10_000:  # forget idle clients
                for k in [k for k, v in self._hits.items() if not v or now - v[-1] >= 60.0]:
                    del self._hits[k]
            return True


def normalise_origin(origin: str) -> str:
    return origin.strip().rstrip("/").lower()


class OriginPolicy:
    """Which web origins may frame the chat and call the API.

    Same-origin requests are recognised by comparing ``Origin`` with the origins
    the service is configured to be reached under (``server.public_origins`` plus
    its own bind address), never with the ``Host`` header: a DNS-rebinding page
    controls both ``Origin`` and ``Host``.
    """

    def __init__(self, allowed: list[str], public: list[str] | None = None) -> None:
        self.allowed = [normalise_origin(o) for o in allowed if o.strip()]
        self.public = [normalise_origin(o) for o in (public or []) if o.strip()]
        self._set = set(self.allowed) | set(self.public)

    def allows(self, origin: str) -> bool:
        return normalise_origin(origin) in self._set

    def frame_ancestors(self) -> str:
        return " ".join(["'self'", *self.allowed])


def own_origins(settings: ServerSettings) -> list[str]:
    """``public_origins`` plus the bind address (and its localhost alias) from the settings."""
    host, port = settings.host, settings.port
    origins = list(settings.public_origins)
    if host not in ("0.0.0.0", "::", ""):
        origins.append(f"http://{host}:{port}")
    if host in ("127.0.0.1", "localhost", "0.0.0.0", "::1", "::"):
        origins += [f"http://127.0.0.1:{port}", f"http://localhost:{port}"]
    return origins
