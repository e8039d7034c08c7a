"""Units and spans: the sentences and enumerated items of a chunk, and the pieces quoted from it.

``split_units(doc)`` cuts a chunk into sentences and list items (offsets into the
chunk text, so every quote is a verbatim slice). ``UnitScorer`` rates units by
their lexical fit with the question: the question's content terms (the one
domain tokenizer) weighted by IDF over the units being compared, plus shared
character bigrams. ``merge_spans`` joins adjacent chosen units into one quote.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from langchain_core.documents import Document

from assistant.text import ENUM_ITEM_RE, bigrams, split_sentences
from assistant.tokenizer import DomainTokenizer

# Units end at these (not at ；: a rule's clauses separated by ； are quoted together).
_UNIT_END = "。！？!?"
_UNIT_CLOSERS = '”’」』"'


@dataclass
class Unit:
    """A sentence or enumerated item of a chunk (offsets into the chunk text)."""

    start: int
    end: int
    text: str
    item: bool = False  # an enumerated item （一）…
    score: float = 0.0


@dataclass
class Span:
    """A contiguous quoted piece of one chunk."""

    doc: Document
    start: int  # offsets in the chunk text
    end: int
    item: bool = False

    @property
    def text(self) -> str:
        return self.doc.page_content[self.start : self.end]


def split_units(doc: Document) -> list[Unit]:
    """Sentences and enumerated items (one whole line each) of a chunk.

    The leading article label (第X条) is left out, and so are lines that only
    repeat a section heading of the chunk's ``heading_path``.
    """
    text = doc.page_content
    article = str(doc.metadata.get("article") or "")
    headings = {h.strip() for h in str(doc.metadata.get("heading_path") or "").split(" / ") if h.strip()}
    units: list[Unit] = []
    pos = 0
    for line in text.split("\n"):
        line_start, line_end = pos, pos + len(line)
        pos = line_end + 1
        s = line_start + len(line) - len(line.lstrip())
        e = line_start + len(line.rstrip())
        if e <= s:
            continue
        if article and not units and text.startswith(article, s):
            s += len(article)
            while s < e and text[s].isspace():
                s += 1
        if e <= s:
            continue
        if ENUM_ITEM_RE.match(text[s:e]):
            units.append(Unit(s, e, text[s:e], item=True))
            continue
        for a, b in split_sentences(text, s, e, ends=_UNIT_END, closers=_UNIT_CLOSERS):
            units.append(Unit(a, b, text[a:b]))
    kept = [u for u in units if u.text.rstrip("。.") not in headings]
    return kept or units


class UnitScorer:
    """Lexical relevance of units to the question (content terms weighted by IDF, plus char bigrams)."""

    def __init__(
        self,
        tokenizer: DomainTokenizer,
        question: str,
        context: str = "",
        *,
        context_weight: float = 0.3,
        bigram_weight: float = 1.5,
    ) -> None:
        self.terms: dict[str, float] = {}
        for tok in tokenizer.terms(context):
            self.terms[tok] = max(self.terms.get(tok, 0.0), context_weight)
        for tok in tokenizer.terms(question):
            self.terms[tok] = 1.0
        self.bigrams = bigrams(question)
        self.bigram_weight = bigram_weight

    def score_all(self, units: Sequence[Unit]) -> None:
        for u, score in zip(units, self.scores(units), strict=True):
            u.score = score

    def scores(self, units: Sequence[Unit]) -> list[float]:
        """The score of every unit (IDF over ``units``), without touching ``Unit.score``."""
        n = max(1, len(units))
        df = {t: sum(1 for u in units if t in u.text) for t in self.terms}
        out: list[float] = []
        for u in units:
            score = 0.0
            for term, weight in self.terms.items():
                if term in u.text:
                    score += weight * min(len(term), 4) / 2 * math.log(1 + n / max(1, df[term]))
            if self.bigrams:
                score += self.bigram_weight * len(self.bigrams & bigrams(u.text)) / len(self.bigrams)
            out.append(score)
        return out


def merge_spans(doc: Document, chosen: list[Unit]) -> list[Span]:
    """Contiguous chosen units (only whitespace between them) become one span."""
    spans: list[Span] = []
    text = doc.page_content
    for u in sorted(chosen, key=lambda x: x.start):
        if spans and not spans[-1].item and not u.item and not text[spans[-1].end : u.start].strip():
            spans[-1].end = u.end
        else:
            spans.append(Span(doc, u.start, u.end, item=u.item))
    return spans
