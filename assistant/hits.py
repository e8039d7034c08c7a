"""What a question hit: the ranked evidence of a ``Result`` with its scores, and the decision.

One reading for every place that shows it (``policy-assistant ask --json`` and the admin
console's 命中测试), so both show the same ranking: the evidence in the order the pipeline
ranked it, each with the scores ``HybridRetriever.search`` put in its metadata. Nothing is
ranked here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from langchain_core.documents import Document

from assistant.schema import Answer

# Decision kinds: the assistant answered; it declined although related text was found above
# the dense threshold; it declined with nothing related (or the question was refused).
ANSWER, RELATED_ONLY, DECLINE = "answer", "related-only", "decline"
KIND_LABELS = {ANSWER: "作答", RELATED_ONLY: "仅有相关内容（拒答）", DECLINE: "拒答"}


class ResultLike(Protocol):
    answer: Answer
    evidence: list[Document]
    reason: str


def _score(meta: dict[str, Any], key: str) -> float | None:
    value = meta.get(key)
    return round(float(value), 4) if isinstance(value, int | float) and not isinstance(value, bool) else None


def hit_rows(evidence: Sequence[Document]) -> list[dict[str, Any]]:
    """One row per evidence chunk, in rank order: ids, place, scores and match kind."""
    rows: list[dict[str, Any]] = []
    for rank, doc in enumerate(evidence, 1):
        meta = doc.metadata
        rows.append(
            {
                "rank": rank,
                "chunk_id": str(meta.get("chunk_id", "")),
                "file": str(meta.get("file", "")),
                "title": str(meta.get("title", "")),
                "article": str(meta.get("article", "")),
                "heading_path": str(meta.get("heading_path", "")),
                "status": str(meta.get("status", "")),
                "score": _score(meta, "score"),
                "dense_score": _score(meta, "dense_score"),
                "view_score": _score(meta, "view_score"),
                "bm25_score": _score(meta, "bm25_score"),
                "match": str(meta.get("match", "")) or "cited",  # "cited": added for a citation
                "text": doc.page_content,
            }
        )
    return rows


def decision_kind(result: ResultLike) -> str:
    """The answer's outcome (``Answer.outcome``) as the console names it: ``ANSWER``;
    ``RELATED_ONLY`` when the library does not answer it directly and the nearest articles
    are quoted as such; ``DECLINE`` for a refusal (nothing close enough, a document not held,
    injection, empty or too long)."""
    outcome = result.answer.outcome
    if outcome == "answer" and not result.answer.declined:
        return ANSWER
    if outcome == "related":
        return RELATED_ONLY
    return DECLINE
