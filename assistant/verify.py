"""Quote and article verification shared by the extractive and generative answerers.

An answer may only quote (「…」) text that is a verbatim substring of a
retrieved chunk, and may only name an article (第X条) that is the label of a
retrieved chunk or appears in the text of one. Comparison ignores whitespace
and treats the quote marks “” "" 「」 『』 ‘’ as equal.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from langchain_core.documents import Document

_QUOTE_CHARS = "“”\"「」『』‘’'〝〞"
_QUOTE_TABLE = str.maketrans({c: '"' for c in _QUOTE_CHARS})
_WHITESPACE = re.compile(r"\s+")

QUOTE_RE = re.compile(r"「([^「」]*)」")
CN_NUMERAL = "零〇一二两三四五六七八九十百千"
ARTICLE_RE = re.compile(rf"第[{CN_NUMERAL}\d]+条")

ChunkLike = Document | str


def normalise(s: str) -> str:
    """Remove all whitespace and map every quote character to ``"``."""
    return _WHITESPACE.sub("", s).translate(_QUOTE_TABLE)


def _text(chunk: ChunkLike) -> str:
    return chunk.page_content if isinstance(chunk, Document) else chunk


def extract_quotes(text: str) -> list[str]:
    """The contents of every 「…」 quote in ``text`` (in order, empty ones skipped)."""
    return [q for q in QUOTE_RE.findall(text) if q.strip()]


def extract_articles(text: str) -> list[str]:
    """Every distinct 第X条 mention in ``text``, in order of first appearance."""
    seen: dict[str, None] = {}
    for match in ARTICLE_RE.findall(text):
        seen.setdefault(match, None)
    return list(seen)


def quote_is_verbatim(quote: str, chunks: Iterable[ChunkLike]) -> bool:
    """True when ``quote`` (normalised) is a substring of some chunk (normalised)."""
    needle = normalise(quote)
    if not needle:
        return False
    return any(needle in normalise(_text(c)) for c in chunks)


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
    """Article labels of the chunks plus every 第X条 written in their text."""
    allowed: set[str] = set()
    for chunk in chunks:
        if isinstance(chunk, Document):
            label = str(chunk.metadata.get("article") or "")
            if label:
                allowed.add(label)
        allowed.update(ARTICLE_RE.findall(_text(chunk)))
    return allowed


def verify_articles(text: str, chunks: Sequence[ChunkLike]) -> tuple[list[str], list[str]]:
    """Split the 第X条 mentions of ``text`` into (backed by a chunk, unknown)."""
    allowed = allowed_articles(chunks)
    ok: list[str] = []
    bad: list[str] = []
    for article in extract_articles(text):
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
        chars.append(ch.translate(_QUOTE_TABLE))
        index.append(i)
    flat = "".join(chars)
    pos = flat.find(needle)
    if pos < 0:
        return None
    return index[pos], index[pos + len(needle) - 1] + 1
