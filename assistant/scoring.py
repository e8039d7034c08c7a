"""Scoring one evaluation item (``../shared/eval/README.md``): retrieval hits, answer-point
coverage, article accuracy, citation precision and invented content.

Matching: all whitespace removed and quote marks made equal (``assistant.text.normalise``);
a retrieved chunk is its text plus its document title (the title is part of what the user is shown).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from langchain_core.documents import Document

from assistant.schema import Answer
from assistant.text import article_labels, normalise

UNANSWERABLE_TYPES: frozenset[str] = frozenset({"unanswerable", "injection"})
_WS_RE = re.compile(r"\s+")
_QUOTED_RE = re.compile(r"「([^」]*)」|“([^”]*)”|\"([^\"]*)\"")
_CORNER_QUOTE_RE = re.compile(r"「([^」]+)」")


def chunk_haystack(doc: Document) -> str:
    """What a gold quote is matched against: the chunk text plus its document title."""
    return normalise(f"{doc.metadata.get('title', '')}\n{doc.page_content}")


def first_hit_rank(quotes: Sequence[str], chunks: Sequence[Document]) -> int | None:
    """0-based rank of the first chunk containing any of ``quotes``; None when none does."""
    wanted = [normalise(q) for q in quotes if normalise(q)]
    for rank, doc in enumerate(chunks):
        hay = chunk_haystack(doc)
        if any(q in hay for q in wanted):
            return rank
    return None


def quotes_found(quotes: Sequence[str], chunks: Sequence[Document]) -> float:
    """Share of ``quotes`` contained in some chunk."""
    wanted = [normalise(q) for q in quotes if normalise(q)]
    if not wanted:
        return 0.0
    hays = [chunk_haystack(d) for d in chunks]
    return sum(any(q in h for h in hays) for q in wanted) / len(wanted)


def retrieval_fields(item: dict[str, Any], chunks: Sequence[Document], k: int) -> dict[str, Any]:
    quotes = [str(g.get("quote", "")) for g in item.get("gold", [])]
    top = list(chunks)[:k]
    rank = first_hit_rank(quotes, top)
    return {
        "rank": rank,
        "hit@1": rank is not None and rank < 1,
        "hit@3": rank is not None and rank < 3,
        "hit@5": rank is not None and rank < 5,
        "mrr": 0.0 if rank is None else 1.0 / (rank + 1),
        "quote_recall": quotes_found(quotes, top),
    }


def condensed_query(item: dict[str, Any]) -> str:
    """A follow-up question with the earlier questions prepended (for retrieval-only scoring)."""
    earlier = [str(turn[0]) for turn in item.get("history") or [] if turn]
    return "\n".join([*earlier, str(item["question"])])


def _article_labels_in(text: str) -> set[str]:
    return set(article_labels(text))


def invented_content(answer: Answer, evidence: Sequence[Document]) -> list[str]:
    """Article labels and 「quotes」 in the answer that no retrieved chunk supports."""
    hays = [normalise(d.page_content) for d in evidence]
    known_articles: set[str] = set()
    for d in evidence:
        label = str(d.metadata.get("article") or "")
        if label:
            known_articles.add(label)
        known_articles |= _article_labels_in(d.page_content)
    invented: list[str] = []
    for label in sorted(_article_labels_in(answer.text)):
        if label not in known_articles:
            invented.append(label)
    for m in _CORNER_QUOTE_RE.finditer(answer.text):
        quote = normalise(m.group(1)).strip('"')
        if quote and not any(quote in h for h in hays):
            invented.append(f"「{m.group(1)}」")
    by_id = {str(d.metadata.get("chunk_id") or d.id or ""): d for d in evidence}
    for c in answer.citations:
        chunk = by_id.get(c.chunk_id)
        if chunk is not None and normalise(c.quote) not in normalise(chunk.page_content):
            invented.append(f"引用:{c.quote[:20]}")
    return invented


def _quoted_segments(text: str) -> list[str]:
    compact = _WS_RE.sub("", text or "")
    return [normalise(next(g for g in m.groups() if g is not None)) for m in _QUOTED_RE.finditer(compact)]


def answer_coverage(item: dict[str, Any], answer: Answer) -> float | None:
    points = [str(p) for p in item.get("answer_points") or [] if str(p).strip()]
    if not points:
        return None
    if item.get("type") == "english":
        segments = _quoted_segments(answer.text)
        found = sum(any(normalise(p) in s for s in segments) for p in points)
    else:
        text = normalise(answer.text)
        found = sum(normalise(p) in text for p in points)
    return found / len(points)


def article_correct(item: dict[str, Any], answer: Answer) -> bool | None:
    """Rules items with a gold article: some citation names a gold (document, article)."""
    if not str(item.get("id", "")).startswith("r"):
        return None
    gold = {
        (str(g["doc"]), _canonical_article(str(g["article"])))
        for g in item.get("gold", [])
        if g.get("article")
    }
    if not gold:
        return None
    return any((c.file, _canonical_article(c.article)) in gold for c in answer.citations)


def _canonical_article(label: str) -> str:
    labels = article_labels(label)
    return labels[0] if labels else label.strip()


def citation_hits(item: dict[str, Any], answer: Answer, evidence: Sequence[Document]) -> tuple[int, int]:
    """(citations whose chunk holds a gold quote, citations) for items with gold."""
    quotes = [normalise(str(g.get("quote", ""))) for g in item.get("gold", [])]
    quotes = [q for q in quotes if q]
    if not quotes:
        return 0, 0
    by_id = {str(d.metadata.get("chunk_id") or d.id or ""): d for d in evidence}
    good = 0
    for c in answer.citations:
        chunk = by_id.get(c.chunk_id)
        if chunk is not None and any(q in chunk_haystack(chunk) for q in quotes):
            good += 1
    return good, len(answer.citations)


def score_item(
    item: dict[str, Any], answer: Answer, evidence: Sequence[Document], k: int = 5
) -> dict[str, Any]:
    """Every per-item figure for one answered question."""
    row: dict[str, Any] = {"id": item["id"], "type": item["type"], "declined": answer.declined}
    if item.get("gold"):
        row.update(retrieval_fields(item, evidence, k))
        good, total = citation_hits(item, answer, evidence)
        row["citations_good"], row["citations_total"] = good, total
    row["article_accuracy"] = article_correct(item, answer)
    row["answer_coverage"] = answer_coverage(item, answer)
    invented = invented_content(answer, evidence)
    row["invented"] = invented
    evidence_ids = {str(d.metadata.get("chunk_id") or d.id or "") for d in evidence}
    if item["type"] in UNANSWERABLE_TYPES:
        row["decline_success"] = (
            answer.declined and not invented and all(c.chunk_id in evidence_ids for c in answer.citations)
        )
    else:
        row["false_refusal"] = answer.declined
    return row
