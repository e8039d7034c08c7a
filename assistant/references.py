"""Explicit references in a question: "第八条", "问责条例第七条", "《监察法》第15条".

``parse_references(text)`` finds every article label (Chinese or Arabic
numerals) together with the document name written right before it, if any.
``match_titles(hint, titles)`` resolves such a name ("处分条例", "监察法",
"监督执纪规则") against the titles of the library without a hand-made alias
table: the longest tail of the name that is an in-order subsequence of a
title's base name wins. ``mentioned_titles(text, titles)`` finds documents
named anywhere in a question.

Pure functions, no I/O. Numerals and article labels come from ``assistant.text``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from assistant.text import ARTICLE_RE, YEAR_RE, article_label, parse_numeral

# What a document name ends with.
DOC_TYPE_SUFFIXES: tuple[str, ...] = ("条例", "规定", "规则", "办法", "准则", "意见", "决定", "法")
# The name just before an article label: CJK (and 《》（）) up to the label, e.g. "请问《监察法》".
_NAME_BEFORE_RE = re.compile(r"[\u4e00-\u9fff《》〈〉（）()0-9]{1,40}$")
_PARENS_RE = re.compile(r"[（(][^）)]*[）)]")
_PREFIXES: tuple[str, ...] = ("中华人民共和国", "中国共产党")


@dataclass(frozen=True)
class ArticleRef:
    """One explicit article reference found in a question."""

    article: str  # normalised label, e.g. 第十五条
    number: int
    doc_hint: str | None  # the document name written before it, e.g. 监察法 (None when absent)
    year: str | None  # a year written with the name, e.g. "2018" in "2018年监察法第十五条"
    start: int  # span of the whole reference (name included) in the text
    end: int


def _doc_name_before(prefix: str) -> tuple[str | None, int]:
    """The document name ending right before an article label, and where it starts."""
    stripped = prefix.rstrip(" \u3000")
    if stripped.endswith("的"):
        stripped = stripped[:-1]
    m = _NAME_BEFORE_RE.search(stripped)
    if not m:
        return None, len(prefix)
    name = m.group(0)
    bare = _PARENS_RE.sub("", name).strip("《》〈〉 ")
    bare = bare.rstrip("0123456789年版")
    if not bare.endswith(DOC_TYPE_SUFFIXES):
        return None, len(prefix)
    return name, m.start()


def parse_references(text: str) -> list[ArticleRef]:
    """Every article label in ``text`` with the document name written before it, in order."""
    refs: list[ArticleRef] = []
    last_end = 0
    for m in ARTICLE_RE.finditer(text):
        number = parse_numeral(m.group(1))
        if number is None or number <= 0:
            continue
        # "第八条、第九条": the name before the first label applies to the rest of the list.
        hint, start = _doc_name_before(text[last_end : m.start()])
        start += last_end
        year: str | None = None
        if hint is not None:
            y = YEAR_RE.search(hint)
            year = y.group(0) if y else None
            window = text[max(0, start - 8) : start]
            if year is None:
                y = YEAR_RE.search(window)
                year = y.group(0) if y else None
        elif refs and text[last_end : m.start()].strip(" 、,，和及与或至到\u3000") == "":
            prev = refs[-1]
            hint, year, start = prev.doc_hint, prev.year, m.start()
        else:
            start = m.start()
        refs.append(ArticleRef(article_label(number), number, hint, year, start, m.end()))
        last_end = m.end()
    return refs


def base_title(title: str) -> str:
    """A title without parenthesised notes and the 中华人民共和国 / 中国共产党 prefix."""
    base = _PARENS_RE.sub("", title).strip()
    for prefix in _PREFIXES:
        if base.startswith(prefix) and len(base) > len(prefix) + 1:
            base = base[len(prefix) :]
            break
    return base


def _is_subsequence(needle: str, haystack: str) -> bool:
    it = iter(haystack)
    return all(ch in it for ch in needle)


def name_match_score(hint: str, title: str) -> int:
    """Length of the longest tail of ``hint`` that is an in-order subsequence of ``title``'s base name.

    Both must end with the same document type (条例, 法, 规则 …); 0 otherwise.
    "请问监察法" vs 中华人民共和国监察法 -> 3; "处分条例" vs 中国共产党纪律处分条例 -> 4;
    "监督执纪规则" vs 中国共产党纪律检查机关监督执纪工作规则 -> 6.
    """
    name = _PARENS_RE.sub("", hint).strip("《》〈〉 ").rstrip("0123456789年版")
    for prefix in _PREFIXES:
        if name.startswith(prefix):
            name = name[len(prefix) :]
    base = base_title(title)
    suffix = next((s for s in DOC_TYPE_SUFFIXES if name.endswith(s)), None)
    if suffix is None or not base.endswith(suffix):
        return 0
    best = 0
    for i in range(len(name) - 1, -1, -1):
        tail = name[i:]
        if not _is_subsequence(tail, base):
            break
        best = len(tail)
    return best if best > len(suffix) else 0


def match_titles(hint: str, titles: Iterable[str]) -> list[str]:
    """The titles ``hint`` names best (several when versions share a name); [] when none fits."""
    scored = [(name_match_score(hint, t), t) for t in titles]
    top = max((s for s, _ in scored), default=0)
    if top < 3:
        return []
    return [t for s, t in scored if s == top]


@lru_cache(maxsize=65536)  # every question matches every title: compute each title's names once
def title_aliases(title: str) -> tuple[str, ...]:
    """Names a question may use for ``title``: the base name and its tails (≥4 characters, or ≥3 ending in 法)."""
    base = base_title(title)
    aliases = [base]
    if base != _PARENS_RE.sub("", title).strip():
        aliases.append(_PARENS_RE.sub("", title).strip())
    if base.endswith(DOC_TYPE_SUFFIXES):
        for i in range(1, len(base)):
            tail = base[i:]
            if len(tail) >= 4 or (len(tail) == 3 and tail.endswith("法")):
                aliases.append(tail)
    return tuple(aliases)  # immutable: the cached value is shared


def mentioned_titles(text: str, titles: Iterable[str]) -> list[str]:
    """Titles whose name (or a distinctive tail of it) occurs in ``text``, in ``titles`` order."""
    return _finder(tuple(titles)).find(text)


class _TitleFinder:
    """The aliases of many titles, keyed by their first two characters: a text is read once,
    instead of once per alias (a large library has thousands of titles, tens of aliases each)."""

    def __init__(self, titles: tuple[str, ...]) -> None:
        self.titles = titles
        self.by_head: dict[str, list[tuple[str, int]]] = {}
        self.short: list[tuple[str, int]] = []  # one-character aliases (never in practice)
        for i, title in enumerate(titles):
            for alias in title_aliases(title):
                if len(alias) >= 2:
                    self.by_head.setdefault(alias[:2], []).append((alias, i))
                elif alias:
                    self.short.append((alias, i))

    def find(self, text: str) -> list[str]:
        hits = {i for alias, i in self.short if alias in text}
        for j in range(len(text) - 1):
            for alias, i in self.by_head.get(text[j : j + 2], ()):
                if i not in hits and text.startswith(alias, j):
                    hits.add(i)
        return [self.titles[i] for i in sorted(hits)]


@lru_cache(maxsize=8)  # one per title list in use (a snapshot's, a conversation's documents)
def _finder(titles: tuple[str, ...]) -> _TitleFinder:
    return _TitleFinder(titles)


def years_in(text: str) -> set[str]:
    return {m.group(0) for m in YEAR_RE.finditer(text)}
