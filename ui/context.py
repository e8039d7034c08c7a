"""What the API, the chat and the embed page share: the assistant and the edge rules."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from assistant.config import Settings
from assistant.schema import Answer

from .feedback import FeedbackStore
from .guard import OriginPolicy, RateLimiter
from .render import ChunkLookup

log = logging.getLogger(__name__)

History = list[tuple[str, str]]


class AssistantLike(Protocol):
    """The part of ``assistant.service.Assistant`` the UI uses."""

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

    @classmethod
    def build(cls, settings: Settings, assistant: AssistantLike) -> UIContext:
        server = settings.server
        return cls(
            settings=settings,
            assistant=assistant,
            limiter=RateLimiter(server.rate_limit_per_minute),
            origins=OriginPolicy(server.allowed_origins),
            feedback=FeedbackStore(server.feedback_db),
        )

    def chunk_lookup(self) -> ChunkLookup | None:
        """``assistant.chunk_text`` when the assistant offers it, else a read of its Chroma collection."""
        fn = getattr(self.assistant, "chunk_text", None)
        if callable(fn):
            return fn  # type: ignore[no-any-return]
        collection = getattr(self.assistant, "collection", None)
        if collection is None or not hasattr(collection, "get"):
            return None

        def from_collection(chunk_id: str) -> str | None:
            got = collection.get(ids=[chunk_id], include=["documents"])
            docs = got.get("documents") or []
            return str(docs[0]) if docs and docs[0] is not None else None

        return from_collection

    def chunk_text(self, chunk_id: str) -> str | None:
        fn = self.chunk_lookup()
        return fn(chunk_id) if fn is not None else None


def history_from_pairs(pairs: Any) -> History:
    """Accept [[q, a], ...] or [{"question":..., "answer":...}, ...]; ignore anything else."""
    out: History = []
    if not isinstance(pairs, list):
        return out
    for item in pairs:
        if isinstance(item, list | tuple) and len(item) == 2:
            out.append((str(item[0]), str(item[1])))
        elif isinstance(item, Mapping) and "question" in item:
            out.append((str(item["question"]), str(item.get("answer", ""))))
    return out
