"""The extractive answerer (default, no LLM): quote the best evidence verbatim, with its source.

Each chosen chunk (``assistant.evidence``, plus its version twins, ``assistant.versions``)
contributes a block: whole sentences or enumerated items in 「」, labelled with its
source (《标题》第X条, or the speech's section heading). A chunk within its quote budget
(``answer.quote_budgets``) is quoted whole; a longer one by its best sentences. List
questions get every item of the list with its introducing sentence; "哪几项工作"
questions get the sub-headings of the section. Every quote is a slice of a retrieved
chunk and every article named is the label of one, by construction.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings

from assistant.citations import citation, source_label
from assistant.config import AnswerSettings
from assistant.conversation import Condensed
from assistant.evidence import Candidate, EvidenceSelector
from assistant.library import Library
from assistant.messages import short_title
from assistant.question import Analysis
from assistant.schema import Answer, Citation
from assistant.text import ENUM_ITEM_RE
from assistant.units import Span, Unit, merge_spans
from assistant.verify import extract_quotes
from assistant.versions import status_notice, with_versions


@dataclass
class Block:
    """What one source contributes to an answer."""

    doc: Document
    spans: list[Span] = field(default_factory=list)  # in text order


class ExtractiveAnswerer:
    """Answers by quoting the selected chunks (see the module docstring)."""

    def __init__(
        self, settings: AnswerSettings, selector: EvidenceSelector, embeddings: Embeddings | None = None
    ) -> None:
        self.settings = settings
        self.selector = selector
        self.embeddings = embeddings

    def answer(
        self, library: Library, condensed: Condensed, analysis: Analysis, selected: list[Candidate]
    ) -> Answer:
        """Quote ``selected`` (``EvidenceSelector.select`` of the retrieved chunks) and their version twins."""
        cfg = self.settings
        question = condensed.original
        chosen = with_versions(
            library,
            selected,
            lambda doc: self.selector.candidate(doc, question),
            cfg.version_overlap_min,
            cfg.max_blocks + 1,
        )
        blocks: list[Block] = []
        budgets = cfg.quote_budgets or [420]
        for rank, cand in enumerate(chosen):
            if not cand.units:
                continue
            budget = budgets[min(rank, len(budgets) - 1)]
            long = sum(len(u.text) for u in cand.units) > budget
            if long and analysis.english:
                # Lexical overlap is useless across languages: every sentence scores by meaning, from
                # its sentence view's cosine, or (a chunk without view spans) by embedding it now.
                if not self._view_scores(cand, cfg.english_embed_weight) and self.embeddings is not None:
                    self._embed_scores(question, cand.units)
            elif long and not cand.doc.metadata.get("article"):
                self._view_scores(cand, cfg.prose_meaning_weight)
            blocks.append(self._block(cand, budget, analysis.list_mode, condensed.ordinal))
        heading_line = self._sibling_headings(library, chosen[0].doc) if chosen and analysis.structure else ""
        return self._compose(library, blocks, english=analysis.english, heading_line=heading_line)

    def _embed_scores(self, question: str, units: list[Unit]) -> None:
        assert self.embeddings is not None
        q = self.embeddings.embed_query(question)
        vecs = self.embeddings.embed_documents([u.text for u in units])
        for u, v in zip(units, vecs, strict=True):
            u.score += self.settings.english_embed_weight * sum(a * b for a, b in zip(q, v, strict=True))

    def _view_scores(self, cand: Candidate, weight: float) -> bool:
        """Add ``weight`` x the cosine of each sentence's view with the question (computed in
        retrieval) to its score; False when the chunk has no view spans (nothing added).

        Used for English questions, and for prose chunks (speech, 意见) too long to quote whole, so
        that an everyday question quotes the sentence that answers it, not the one sharing its words.
        Measured on train / dev: speech paraphrase items improve; rule articles do not (their
        sentences already share the question's terms), so for Chinese questions they keep word scoring."""
        hits = cand.doc.metadata.get("view_hits") or []
        if weight <= 0 or not hits:
            return False
        for u in cand.units:
            u.score += weight * max((c for a, b, c in hits if a < u.end and u.start < b), default=0.0)
        return True

    def _block(self, cand: Candidate, budget: int, list_mode: bool, ordinal: int | None) -> Block:
        cfg = self.settings
        units = cand.units
        items = [u for u in units if u.item]
        if list_mode and len(items) >= 2:
            first, last = units.index(items[0]), units.index(items[-1])
            if ordinal is not None and 1 <= ordinal <= len(items):
                chosen = [*units[max(0, first - 1) : first], items[ordinal - 1]]
            else:
                # the introducing sentence, every item (and sub-list intros), one relevant tail sentence
                chosen = units[max(0, first - 1) : last + 1]
                chosen += [u for u in units[last + 1 :] if u.score > cfg.list_tail_min_score][:1]
        elif sum(len(u.text) for u in units) <= budget:
            chosen = list(units)
        else:
            ranked = sorted(units, key=lambda u: (-u.score, u.start))
            best = ranked[0]
            chosen = [best]
            used = len(best.text)
            for u in ranked[1:]:
                if u.score <= 0 or u.score < cfg.unit_keep_share * best.score:
                    break
                if used + len(u.text) > budget:
                    continue
                chosen.append(u)
                used += len(u.text)
            # An enumerated item needs the sentence that introduces the list.
            if any(u.item for u in chosen) and items:
                intro = units[: units.index(items[0])][-1:]
                chosen.extend(u for u in intro if u not in chosen)
        return Block(cand.doc, spans=merge_spans(cand.doc, sorted(chosen, key=lambda u: u.start)))

    @staticmethod
    def _sibling_headings(library: Library, doc: Document) -> str:
        """For "哪几项工作" questions: the sub-headings of the section the top chunk is in."""
        path = str(doc.metadata.get("heading_path") or "")
        parent = path.split(" / ")[0] if path else ""
        if not parent:
            return ""
        subs: list[str] = []
        for chunk in library.document_chunks(str(doc.metadata.get("file") or "")):
            hp = str(chunk.metadata.get("heading_path") or "").split(" / ")
            if len(hp) >= 2 and hp[0] == parent and hp[1] not in subs and hp[1] in chunk.page_content:
                subs.append(hp[1])
        if len(subs) < 2:
            return ""
        title = short_title(str(doc.metadata.get("title") or ""))
        listed = "".join(f"\n（{i}）「{s}」" for i, s in enumerate(subs, start=1))
        return f"《{title}》“{parent}”部分分为{len(subs)}项：{listed}"

    def _compose(self, library: Library, blocks: list[Block], *, english: bool, heading_line: str) -> Answer:
        lines: list[str] = [heading_line] if heading_line else []
        citations: list[Citation] = []
        notices: list[str] = []
        for block in blocks:
            meta = block.doc.metadata
            label = source_label(meta)
            spans = list(block.spans)
            head_spans: list[Span] = []
            while spans and not spans[0].item:
                head_spans.append(spans.pop(0))
                if spans and spans[0].item:
                    break
            lead_quotes = "".join(f"「{s.text}」" for s in head_spans)
            lines.append(f"According to {label}: {lead_quotes}" if english else f"{label}：{lead_quotes}")
            for s in spans:
                m = ENUM_ITEM_RE.match(s.text)
                lines.append(f"{m.group(0)}「{s.text[m.end() :]}」" if m and s.item else f"「{s.text}」")
            citations.extend(citation(s) for s in block.spans)
            notice = status_notice(library, meta)
            if notice and notice not in notices:
                notices.append(notice)
        if heading_line and blocks:
            citations.extend(_heading_citations(library, heading_line, blocks[0].doc))
        text = "\n".join(lines + notices)
        return Answer(text=text, citations=citations, declined=False, mode="extractive", notices=notices)


def _heading_citations(library: Library, heading_line: str, top: Document) -> list[Citation]:
    """Citations of the sub-headings listed in ``heading_line`` (each from its own chunk)."""
    out: list[Citation] = []
    chunks = library.document_chunks(str(top.metadata.get("file") or ""))
    for quote in extract_quotes(heading_line):
        for chunk in chunks:
            pos = chunk.page_content.find(quote)
            if pos >= 0:
                out.append(citation(Span(chunk, pos, pos + len(quote))))
                break
    return out
