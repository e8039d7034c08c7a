"""Quote and article verification shared by the answerers and the evaluation.

An answer may only quote (「…」) text that is a verbatim substring of a
retrieved chunk, and may only name an article (第X条) that is the label of a
retrieved chunk or appears in the text of one. Comparison ignores whitespace
and treats all quote marks as equal (``assistant.text.normalise``); articles are
compared by number (第15条 is 第十五条).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from langchain_core.documents import Document

from assistant.text import article_labels, normalise, normalise_char

QUOTE_RE = re.compile(r"「([^「」]*)」")

ChunkLike = Document | str


def _text(chunk: ChunkLike) -> str:
    return chunk.page_content if isinstance(chunk, Document) else chunk


def extract_quotes(text: str) -> list[str]:
    """The contents of every 「…」 quote in ``text`` (in order, empty ones skipped)."""
    return [q for q in QUOTE_RE.findall(text) if q.strip()]


def verify_quotes(text: str, chunks: Sequence[ChunkLike]) -> tuple[list[str], list[str]]:
    """Split the 「…」 quotes of ``text`` into (verbatim, not found in any chunk)."""
    haystacks = [normalise(_text(c)) for c in chunks]
    ok: list[str] = []
    bad: list[str] = []
    for quote in extract_quotes(text):
        needle = normalise(quote)
        (ok if needle and any(needle in h for h in haystacks) else bad).append(quote)
    return ok, bad


def allowed_articles(chunks: Sequence[ChunkLike]) -> set[str]:
    """Article labels of the chunks plus every 第X条 written in their text (canonical labels)."""
    allowed: set[str] = set()
    for chunk in chunks:
        if isinstance(chunk, Document):
            allowed.update(article_labels(str(chunk.metadata.get("article") or "")))
        allowed.update(article_labels(_text(chunk)))
    return allowed


def verify_articles(text: str, chunks: Sequence[ChunkLike]) -> tuple[list[str], list[str]]:
    """Split the 第X条 mentions of ``text`` into (backed by a chunk, unknown), as canonical labels."""
    allowed = allowed_articles(chunks)
    ok: list[str] = []
    bad: list[str] = []
    for article in article_labels(text):
        (ok if article in allowed else bad).append(article)
    return ok, bad


def locate(quote: str, chunk_text: str) -> tuple[int, int] | None:
    """Offsets ``(start, end)`` of ``quote`` in ``chunk_text``, tolerant of whitespace/quote marks.

    Returns ``None`` when the quote is not in the chunk.
    """
    pos = chunk_text.find(quote)
    if pos >= 0:
        return pos, pos + len(quote)
    needle = normalise(quote)
    if not needle:
        return None
    # Map each character of the normalised chunk back to its original index.
    index: list[int] = []
    chars: list[str] = []
    for i, ch in enumerate(chunk_text):
        if ch.isspace():
            continue
        chars.append(normalise_char(ch))
        index.append(i)
    pos = "".join(chars).find(needle)
    if pos < 0:
        return None
    return index[pos], index[pos + len(needle) - 1] + 1
