"""Evidence selection: which of the retrieved chunks an answer quotes.

The top ``retrieval.k`` chunks are re-ranked by retrieval score plus lexical fit
(the best sentence score of the chunk, relative to the best chunk's, times
``answer.lexical_weight``): lexical fit only reorders chunks whose retrieval
scores are close; chunks of the regime the question names (``catalogue.Regime``: 监委 →
监察法, 政务处分法) gain ``answer.regime_bonus``. Besides the best chunk and its close
runners-up, the answer covers

* an article the question names explicitly (it comes first);
* the best chunk of a second document whose retrieval score is close (evidence
  that spans documents);
* for a question linking the speech to a rule: the best chunk of each side (the rule
  side retrieved with the rule part alone, ``bridge_evidence``);
* for a multi-part question: the chunk that fits each part best.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from langchain_core.documents import Document

from assistant.catalogue import Regime
from assistant.config import AnswerSettings
from assistant.question import Analysis, defines_kinds
from assistant.tokenizer import DomainTokenizer
from assistant.units import Unit, UnitScorer, split_units

SPEECH_KIND = "讲话"


@dataclass
class Candidate:
    doc: Document
    units: list[Unit]
    combined: float = 0.0

    @property
    def lexical(self) -> float:
        return max((u.score for u in self.units), default=0.0)


def is_speech(doc: Document) -> bool:
    return str(doc.metadata.get("kind") or "") == SPEECH_KIND


def chunk_id(doc: Document) -> str:
    return str(doc.metadata.get("chunk_id") or doc.id or "")


def retrieval_score(doc: Document) -> float:
    return float(doc.metadata.get("score") or top_score(doc))


def top_score(doc: Document) -> float:
    """The evidence strength used for declining: the dense cosine of the chunk or of its nearest
    view (an associated question, a sentence) when present, else the fused score."""
    dense = [doc.metadata.get(key) for key in ("dense_score", "view_score")]
    cosines = [float(v) for v in dense if isinstance(v, int | float)]
    if cosines:
        return max(cosines)
    value = doc.metadata.get("score")
    return float(value) if isinstance(value, int | float) else 0.0


def bridge_evidence(
    analysis: Analysis,
    docs: list[Document],
    retrieve: Callable[[str], list[Document]],
    k: int,
    threshold: float,
) -> list[Document]:
    """For a question linking the speech to a rule, make sure the top evidence holds both.

    The rule part is always retrieved on its own: a rule chunk the whole question happened to
    reach (often the 意见, close to the speech in wording) need not answer it. When its best
    chunk comes from a document none of the top ``k`` rule chunks is from, it joins the top 3,
    marked ``match="bridge"`` so that the answer's rule side quotes it
    (``EvidenceSelector.select``). The speech part is retrieved only when no speech chunk is
    among the top ``k``.
    """
    parts = analysis.bridge
    if parts is None or not docs:
        return docs
    out = list(docs)

    def best_of(query: str, speech: bool) -> Document | None:
        found = [d for d in retrieve(query) if is_speech(d) == speech]
        return found[0] if found and top_score(found[0]) >= threshold else None

    rule = best_of(parts[1], speech=False)
    if rule is not None and rule.metadata.get("file") not in {
        d.metadata.get("file") for d in out[:k] if not is_speech(d)
    }:
        # Its document is not among the top k: it joins the top 3, marked (or is marked where it
        # stands, when the evidence passed in runs past the top k and holds it).
        marked = Document(rule.page_content, metadata={**rule.metadata, "match": "bridge"}, id=rule.id)
        ids = [chunk_id(d) for d in out]
        if chunk_id(rule) in ids:
            out[ids.index(chunk_id(rule))] = marked
        else:
            out.insert(min(2, len(out)), marked)
    if not any(is_speech(d) for d in out[:k]):
        speech = best_of(parts[0], speech=True)
        if speech is not None and chunk_id(speech) not in {chunk_id(d) for d in out}:
            out.insert(min(2, len(out)), speech)
    return out


class EvidenceSelector:
    """Ranks the retrieved chunks for quoting (see the module docstring)."""

    def __init__(
        self, settings: AnswerSettings, tokenizer: DomainTokenizer, k: int, regimes: Sequence[Regime] = ()
    ) -> None:
        self.settings = settings
        self.tokenizer = tokenizer
        self.k = k
        self.regimes = list(regimes)

    def scorer(self, question: str, context: str = "") -> UnitScorer:
        cfg = self.settings
        return UnitScorer(
            self.tokenizer,
            question,
            context,
            context_weight=cfg.context_term_weight,
            bigram_weight=cfg.bigram_weight,
        )

    def candidate(self, doc: Document, question: str) -> Candidate:
        """A chunk with its units scored against ``question`` alone."""
        units = split_units(doc)
        self.scorer(question).score_all(units)
        return Candidate(doc, units)

    def select(
        self, question: str, context: str, analysis: Analysis, docs: list[Document]
    ) -> list[Candidate]:
        """The chunks to quote, best first (at most ``answer.max_blocks``)."""
        cfg = self.settings
        pool = docs[: self.k]
        if not pool:
            return []
        cands = [Candidate(d, split_units(d)) for d in pool]
        self.scorer(question, context).score_all([u for c in cands for u in c.units])
        english = analysis.english
        best_lex = max((c.lexical for c in cands), default=0.0)
        regimes = [r for r in self.regimes if r.named_by(question)]
        for rank, c in enumerate(cands):
            lex = c.lexical / best_lex if best_lex > 0 and not english else 0.0
            c.combined = retrieval_score(c.doc) + cfg.lexical_weight * lex
            if analysis.kinds and defines_kinds(c.doc.page_content):
                c.combined += cfg.kinds_bonus  # the article that lists the kinds, not one that uses them
            if any(r.holds(str(c.doc.metadata.get("title") or "")) for r in regimes):
                c.combined += cfg.regime_bonus  # the regime the question names (监委 → 监察法)
            c.combined -= 0.001 * rank  # stable for ties
        ordered = sorted(cands, key=lambda c: -c.combined)
        limit = cfg.chunks_multi if analysis.multi else cfg.chunks_single
        margin = cfg.margin_multi if analysis.multi else cfg.margin_single
        # An article the question names explicitly comes first; the rest compete among themselves
        # (its reference bonus says nothing about how close the others are).
        referenced = [c for c in ordered if c.doc.metadata.get("match") == "reference"][:1]
        if referenced and analysis.only_article:
            return referenced  # "第X条说的是什么": nothing else was asked
        others = [c for c in ordered if c not in referenced]
        if referenced:
            limit += 1
        chosen = referenced + others[:1]
        if not others:
            return chosen

        def lexical_ok(c: Candidate, share: float) -> bool:
            return english or best_lex <= 0 or c.lexical >= share * best_lex

        best = others[0].combined
        for c in others[1:]:
            if len(chosen) >= limit or c.combined < best - margin:
                break
            if lexical_ok(c, cfg.runner_up_lexical_share):
                chosen.append(c)
        # Evidence spanning documents: the best chunk of another document when it is close.
        # (Closeness by retrieval score: lexical fit says little across documents.)
        files = {c.doc.metadata.get("file") for c in chosen}
        if len(files) == 1:
            best_retrieval = max(retrieval_score(c.doc) for c in others)
            for c in others:
                if c.doc.metadata.get("file") in files:
                    continue
                close = retrieval_score(c.doc) >= best_retrieval - cfg.document_margin
                if close and lexical_ok(c, cfg.document_lexical_share):
                    chosen.append(c)
                break
        # Speech premise + rule question: both sides; the rule side is the chunk retrieved for the
        # rule part on its own (``bridge_evidence``) when there is one.
        if analysis.bridge is not None:
            asked = next((c for c in ordered if c.doc.metadata.get("match") == "bridge"), None)
            if asked is not None and asked not in chosen:
                chosen.append(asked)
            for side in (True, False):
                if not any(is_speech(c.doc) == side for c in chosen):
                    pick = next((c for c in ordered if is_speech(c.doc) == side), None)
                    if pick is not None:
                        chosen.append(pick)
        # Multi-part question: the best-fitting chunk of each part.
        all_units = [u for c in ordered for u in c.units]
        for part in analysis.parts:
            part_scores = iter(self.scorer(part).scores(all_units))
            fits = [max((next(part_scores) for _ in c.units), default=0.0) for c in ordered]
            eligible = [
                (fit, -i)
                for i, (c, fit) in enumerate(zip(ordered, fits, strict=True))
                if fit > 0 and c.combined >= best - cfg.part_margin
            ]
            if eligible:
                pick = ordered[-max(eligible)[1]]
                if pick not in chosen and len(chosen) < cfg.max_blocks:
                    chosen.append(pick)
        return chosen[: cfg.max_blocks]
