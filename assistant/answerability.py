"""Answerability: does the evidence answer the question, or only touch its topic?

Most questions the library cannot answer are near misses: the library names the topic
(脱密期, 地区附加津贴, 诫勉) but not what is asked (how long, how much, who). One
logistic regression (``assistant.linear.LinearModel``, ``corpus/models/answerability.json``)
weighs features of the question and the evidence (``FEATURES``) into the probability
that the question is answerable from the library. ``policy-assistant calibrate`` fits it
on ``train.jsonl`` (answerable vs ``unanswerable`` items, k-fold cross-validated) and
picks the decision threshold that keeps cross-validated false refusals within
``answer.max_false_refusal``.

The hard rules stay in front of it (``assistant.decline``): injection, a document the
catalogue lists as not held, and retrieval with nothing near the question.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from langchain_core.documents import Document

from assistant import facts
from assistant.library import Library
from assistant.rerank import cover, term_weights

FEATURES: tuple[str, ...] = (
    "top_dense",  # best cosine of the question with a whole retrieved chunk
    "top_view",  # best view-aware dense score (sentence views)
    "top_fused",  # fused score of the first chunk
    "fused_margin",  # first minus second fused score: a clear winner or a crowd
    "evidence_cover",  # IDF-weighted share of the question's words the quoted chunks hold
    "asks_fact",  # the question asks for a figure, a date, a person, a contact …
    "fact_missing",  # … and the relevant evidence sentences state none
    "defers",  # a relevant evidence sentence leaves the matter to another regulation (按照国家规定 …)
    "agreement",  # the best dense and the best BM25 chunk of the top k are the same
    "followup",  # the question carries context from earlier turns
    # Left out after measuring on train (k-fold): question length, the share of words the
    # library never uses, the best single chunk's cover and the number of documents in the
    # top k. They fitted train's style (long colloquial questions) with signs that made no
    # sense (a shorter question looked less answerable) and added no cross-validated recall.
)


@dataclass
class Inputs:
    """What the decision looks at for one question."""

    library: Library
    question: str  # the user's question (or the standalone one of a follow-up)
    weights: dict[str, float]  # its content words and their IDF (``term_weights``)
    docs: Sequence[Document]  # retrieved, best first
    evidence: Sequence[Document]  # the chunks that would be quoted
    followup: bool
    relevant_share: float
    k: int


def _meta(doc: Document, key: str) -> float:
    value = doc.metadata.get(key)
    return float(value) if isinstance(value, int | float) else 0.0


def features(inputs: Inputs) -> list[float]:
    """One row of ``FEATURES``."""
    top = list(inputs.docs[: inputs.k])
    weights = inputs.weights
    question = inputs.question
    kinds = facts.asked_kinds(question)
    texts = [d.page_content for d in inputs.evidence]
    missing = facts.unsupported_kinds(
        question,
        texts,
        [str(d.metadata.get("article") or "") for d in inputs.evidence],
        weights=weights,
        relevant_share=inputs.relevant_share,
    )
    fused = [_meta(d, "fused_score") or _meta(d, "score") for d in top]
    agreement = 0.0
    if top:
        best_dense = max(range(len(top)), key=lambda i: _meta(top[i], "view_score"))
        best_bm25 = max(range(len(top)), key=lambda i: _meta(top[i], "bm25_score"))
        agreement = float(best_dense == best_bm25)
    return [
        max((_meta(d, "dense_score") for d in top), default=0.0),
        max((_meta(d, "view_score") for d in top), default=0.0),
        fused[0] if fused else 0.0,
        fused[0] - fused[1] if len(fused) > 1 else 0.0,
        cover(weights, "\n".join(d.page_content for d in inputs.evidence)),
        float(bool(kinds)),
        float(bool(missing)),
        float(facts.defers_elsewhere(texts, weights, inputs.relevant_share)),
        agreement,
        float(inputs.followup),
    ]


def question_weights(library: Library, question: str) -> dict[str, float]:
    """The content words of the question, without the words that ask for a kind of fact."""
    return term_weights(library, facts.strip_kind_words(question))
