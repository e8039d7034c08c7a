"""Counting the chunks that contain a term (``Library.doc_freq``, the re-ranker's IDF weights).

A count searches the chunk texts joined in one string (``joined``): one ``find`` per chunk that
holds the term, but also one pass over the whole string (~35 ms at 200k chunks). A large library
(``library.doc_freq_sample_chunks``) counts in an evenly strided sample of its chunks instead and
scales the count; a term the sample misses is either absent, which ``BigramFilter`` usually
proves at once, or rare, and then counted exactly.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

SEP = "\x00"  # between chunk texts in joined strings: no term or quote contains it
_CHAR_BITS = 13  # each UTF-16 code unit hashed to 13 bits: 2**26 pairs, a 64 MB table
_MASK = (1 << _CHAR_BITS) - 1
_SLICE = 1 << 22  # characters hashed at a time (bounds the temporary arrays)


def join(texts: Iterable[str]) -> tuple[str, list[int]]:
    """``texts`` joined by ``SEP``, and where each one starts in the joined string."""
    starts: list[int] = []
    parts: list[str] = []
    at = 0
    for text in texts:
        starts.append(at)
        parts.append(text)
        at += len(text) + 1
    return SEP.join(parts), starts


def count_containing(joined: str, starts: list[int], term: str) -> int:
    """How many of the texts joined in ``joined`` (starting at ``starts``) contain ``term``."""
    count = 0
    at = joined.find(term)
    while at >= 0:
        count += 1
        i = bisect.bisect_right(starts, at)  # the text after the one holding the match
        if i >= len(starts):
            break
        at = joined.find(term, starts[i])
    return count


def _pairs(text: str) -> np.ndarray:
    """Hashes of the adjacent UTF-16 code unit pairs of ``text``."""
    codes = np.frombuffer(text.encode("utf-16-le"), dtype=np.uint16).astype(np.uint32) & _MASK
    return (codes[:-1] << _CHAR_BITS) | codes[1:]


class BigramFilter:
    """Which pairs of adjacent characters occur anywhere in a text (hashed): a term with a pair
    that never occurs is certainly absent; otherwise it may be present."""

    def __init__(self, seen: np.ndarray | None = None) -> None:
        self.seen = seen if seen is not None else np.zeros(1 << (2 * _CHAR_BITS), dtype=bool)

    @classmethod
    def of(cls, texts: Sequence[str]) -> BigramFilter:
        return cls().extended(texts, copy=False)

    def extended(self, texts: Iterable[str], *, copy: bool = True) -> BigramFilter:
        """A filter that also knows ``texts`` (removed texts leave their pairs: still a valid filter)."""
        out = BigramFilter(self.seen.copy()) if copy else self
        for text in texts:
            for start in range(0, max(1, len(text) - 1), _SLICE):
                out.seen[_pairs(text[start : start + _SLICE + 1])] = True
        return out

    def may_contain(self, term: str) -> bool:
        if len(term) < 2:
            return True
        return bool(self.seen[_pairs(term)].all())


def estimate(sample: tuple[str, list[int]], n: int, term: str) -> int:
    """The number of ``n`` chunks containing ``term``, scaled from its count in ``sample``
    (0 when the sample has no chunk holding it)."""
    joined, starts = sample
    hits = count_containing(joined, starts, term)
    return round(hits * n / len(starts)) if hits else 0


def stride_sample(items: Sequence[Any], size: int) -> Sequence[Any]:
    """Every k-th of ``items``: about ``size`` of them, evenly spread."""
    return items[:: -(-len(items) // max(1, size))]
