"""What the API, the chat and the embed page share: the assistant and the edge rules."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from assistant.config import Settings
from assistant.schema import Answer

from .feedback import FeedbackStore
from .guard import OriginPolicy, RateLimiter, own_origins
from .health import HealthProbe, HealthSource
from .identity import IdentityResolver
from .render import ChunkLookup
from .workers import Workers

log = logging.getLogger(__name__)

History = list[tuple[str, str]]


class AssistantLike(Protocol):
    """The part of ``assistant.service.Assistant`` the UI uses.

    An assistant may also offer ``health() -> {"ok", "store": {"ok", "detail"},
    "documents", "chunks"}``; it is looked up with ``getattr`` (``UIContext.health_source``).
    """

    def ask(self, question: str, history: History | None = None) -> Answer: ...

    def stream(self, question: str, history: History | None = None) -> Iterator[str | Answer]: ...

    def library(self) -> dict[str, Any]: ...


@dataclass
class UIContext:
    settings: Settings
    assistant: AssistantLike
    limiter: RateLimiter
    origins: OriginPolicy
    feedback: FeedbackStore
    identity: IdentityResolver
    workers: Workers
    probe: HealthProbe

    @classmethod
    def build(cls, settings: Settings, assistant: AssistantLike) -> UIContext:
        server = settings.server
        return cls(
            settings=settings,
            assistant=assistant,
            limiter=RateLimiter(server.rate_limit_per_minute),
            origins=OriginPolicy(server.allowed_origins, own_origins(server)),
            feedback=FeedbackStore(server.feedback_db),
            identity=IdentityResolver(server),
            workers=Workers(server.worker_threads, server.answer_timeout_s),
            probe=HealthProbe(health_source(assistant), server.health_timeout_s),
        )

    def history(self, pairs: Any) -> History:
        """``history_from_pairs`` with this server's limits."""
        server = self.settings.server
        return history_from_pairs(pairs, server.max_history_turns, server.max_history_chars)

    def bound(self, history: History) -> History:
        """An already parsed history, cut to this server's limits."""
        server = self.settings.server
        return bound_history(history, server.max_history_turns, server.max_history_chars)

    def chunk_lookup(self) -> ChunkLookup | None:
        """``assistant.chunk_text`` (the served library snapshot) when the assistant offers it."""
        fn = getattr(self.assistant, "chunk_text", None)
        return fn if callable(fn) else None

    def chunk_text(self, chunk_id: str) -> str | None:
        fn = self.chunk_lookup()
        return fn(chunk_id) if fn is not None else None


def health_source(assistant: AssistantLike) -> HealthSource:
    """``assistant.health`` when it exists, else a health report built from ``library()``."""
    fn = getattr(assistant, "health", None)
    if callable(fn):
        return fn  # type: ignore[no-any-return]

    def from_library() -> dict[str, Any]:
        stats = assistant.library()
        documents, chunks = int(stats.get("documents", 0)), int(stats.get("chunks", 0))
        return {
            "ok": True,
            "store": {"ok": True, "detail": "可访问（由资料库统计得出）"},
            "documents": documents,
            "chunks": chunks,
        }

    return from_library


def bound_history(history: History, max_turns: int, max_chars: int) -> History:
    """The last ``max_turns`` turns, each question and answer cut to ``max_chars`` characters."""
    if max_turns <= 0:
        return []
    return [(q[:max_chars], a[:max_chars]) for q, a in history[-max_turns:]]


def history_from_pairs(pairs: Any, max_turns: int = 6, max_chars: int = 2000) -> History:
    """Accept [[q, a], ...] or [{"question":..., "answer":...}, ...]; ignore anything else.

    Only the last ``max_turns`` usable turns are kept (most recent last), each
    question and answer cut to ``max_chars`` characters: what a client sends in
    ``history`` can never make the assistant do more than that much work.
    """
    out: History = []
    if not isinstance(pairs, list) or max_turns <= 0:
        return out
    for item in reversed(pairs):
        if isinstance(item, list | tuple) and len(item) == 2:
            q, a = item
        elif isinstance(item, Mapping) and "question" in item:
            q, a = item["question"], item.get("answer", "")
        else:
            continue
        out.append((_text(q, max_chars), _text(a, max_chars)))
        if len(out) >= max_turns:
            break
    out.reverse()
    return out


def _text(value: Any, max_chars: int) -> str:
    """A history entry as text, cut before anything costly is done with it."""
    if isinstance(value, str):
        return value[:max_chars]
    if isinstance(value, int | float | bool):
        return str(value)[:max_chars]
    return ""  # nested lists/objects are not a question or an answer
