"""Safety at the edge: question length, per-client rate limit, origin allow-list.

Shared by the HTTP API, the Gradio chat and the embed page so that every way
in obeys the same rules and gives the same Chinese messages.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

from assistant.config import ServerSettings

MSG_EMPTY = "请输入问题。"
MSG_RATE_LIMITED = "提问太频繁了，请稍等一分钟后再试。"
MSG_ORIGIN_DENIED = "该来源网站未获授权调用本服务。"
MSG_INTERNAL_ERROR = "抱歉，处理问题时出错了，请稍后再试。如果问题持续出现，请联系管理员。"


def question_too_long(limit: int) -> str:
    return f"问题太长了：最多 {limit} 个字，请精简后再问。"


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


def user_of(headers: Mapping[str, str], settings: ServerSettings) -> str:
    """The user name set by the trusted reverse proxy ("" when absent)."""
    name = settings.user_header
    value = headers.get(name) or headers.get(name.lower()) or ""
    return value.strip()[:200]


def client_key(headers: Mapping[str, str], client_host: str | None, settings: ServerSettings) -> str:
    """Rate-limit key: the trusted user header, else the client IP."""
    user = user_of(headers, settings)
    return f"user:{user}" if user else f"ip:{client_host or 'unknown'}"


def normalise_origin(origin: str) -> str:
    return origin.strip().rstrip("/").lower()


class OriginPolicy:
    """Which web origins may frame the chat and call the API."""

    def __init__(self, allowed: list[str]) -> None:
        self.allowed = [normalise_origin(o) for o in allowed if o.strip()]
        self._set = set(self.allowed)

    def allows(self, origin: str, own_host: str | None = None) -> bool:
        """Allowed if on the list, or same-origin (its host:port is the server's own Host)."""
        o = normalise_origin(origin)
        if o in self._set:
            return True
        return bool(own_host) and urlsplit(o).netloc == (own_host or "").lower()

    def frame_ancestors(self) -> str:
        return " ".join(["'self'", *self.allowed])
