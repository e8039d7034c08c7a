"""The domain thesaurus: everyday words for situations → the wording the rules use.

``corpus/thesaurus.toml`` (``retrieval.thesaurus``) lists entries ``term`` (verbatim library
wording) ← ``colloquial`` (how cadres say it: 被带走 → 留置, 绿卡 → 国（境）外永久居留资格).
A question that contains a colloquial phrase is searched with the library's term as well:
its tokens join the BM25 query, and the question rewritten with the term in place of the
phrase is a second dense query (``assistant.retrieval``). Entries come from the library's
vocabulary, never from evaluation questions; ``tests/test_thesaurus.py`` checks that every
term occurs in the library.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from assistant.text import normalise


class ThesaurusError(ValueError):
    """An unreadable thesaurus file; ``str(e)`` is a Chinese message."""


@dataclass(frozen=True)
class Expansion:
    terms: list[str] = field(default_factory=list)  # library terms the question points to
    rewritten: str = ""  # the question with each matched phrase replaced by its term ("" if none)


class Thesaurus:
    """Colloquial phrase → library terms, longest phrase first."""

    def __init__(self, entries: dict[str, list[str]]) -> None:
        self.entries = entries  # phrase -> terms
        self._phrases = sorted(entries, key=len, reverse=True)

    @classmethod
    def load(cls, path: Path) -> Thesaurus:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ThesaurusError(f"找不到同义词表 {path}：请检查配置项 retrieval.thesaurus。") from exc
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ThesaurusError(f"无法读取同义词表 {path}：{exc}") from exc
        entries: dict[str, list[str]] = {}
        for n, entry in enumerate(data.get("entry", []), 1):
            term = normalise(str(entry.get("term", "")))
            phrases = entry.get("colloquial", [])
            if not term or not isinstance(phrases, list):
                raise ThesaurusError(f"同义词表 {path} 第 {n} 个条目缺少 term 或 colloquial 列表。")
            for phrase in phrases:
                key = normalise(str(phrase))
                if len(key) >= 2 and term not in entries.setdefault(key, []):
                    entries[key].append(term)
        return cls(entries)

    def expand(self, question: str) -> Expansion:
        """The library terms of the colloquial phrases in ``question`` (a longer phrase wins over
        the phrases inside it) and the question rewritten with them."""
        text = normalise(question)
        rewritten = text
        terms: list[str] = []
        for phrase in self._phrases:
            if phrase not in rewritten:
                continue
            found = [t for t in self.entries[phrase] if t not in text]
            if not found:
                continue
            rewritten = rewritten.replace(phrase, "、".join(found))
            terms.extend(t for t in found if t not in terms)
        return Expansion(terms, rewritten if terms else "")
