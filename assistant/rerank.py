"""The learned re-ranker: which of the top candidates holds the answer.

The fused retrieval score (``assistant.retrieval``) is a hand-weighted sum of a dense
and a BM25 score. On colloquial questions the governing article is usually among the
top 30 candidates but often not first. The re-ranker looks at each of the top
``retrieval.rerank_depth`` candidates through a few features that are cheap to compute
from the snapshot (``FEATURES``), and a logistic regression fitted on ``train.jsonl``
by ``policy-assistant calibrate`` (``assistant.calibration``) turns them into the
probability that the candidate contains a gold quote. Candidates are then ordered by
that probability, which becomes their ``score``.

The model is data (``corpus/models/rerank.json``, an ``assistant.linear.LinearModel``:
feature names, standardisation, coefficients), so it can be read and refitted; without
the file, retrieval keeps the fused order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from assistant.question import asks_kinds, enumerates

if TYPE_CHECKING:
    import numpy as np

    from assistant.library import Library

FEATURES: tuple[str, ...] = (
    "dense",  # cosine of the question with the whole chunk
    "view",  # the view-aware dense score (best sentence view)
    "bm25",  # saturated BM25
    "bm25_rel",  # BM25 relative to the best BM25 of the question
    "fused_gap",  # best fused score minus this one
    "view_gap",  # best view score minus this one
    "rank_fused",  # 1 / (1 + rank) by fused score
    "rank_dense",  # 1 / (1 + rank) by view score among the candidates
    "rank_bm25",  # 1 / (1 + rank) by BM25 among the candidates
    "term_cover",  # IDF-weighted share of the question's content words in the chunk
    "head_cover",  # the same, in the document title and heading path
    "thesaurus",  # share of the question's thesaurus terms the chunk holds
    "mention",  # the question names the chunk's document
    "superseded",  # a superseded text that has a current version
    "speech",  # the chunk is from the speech
    "list_fit",  # the question asks for kinds/items and the chunk enumerates them
    "log_len",  # log of the chunk's length
)


def term_weights(library: Library, query: str) -> dict[str, float]:
    """The question's content words that the library holds, weighted by IDF."""
    n = max(1, len(library))
    weights: dict[str, float] = {}
    for term in dict.fromkeys(library.tokenizer.terms(query)):
        df = library.doc_freq(term)
        if df:
            weights[term] = math.log(1 + n / df)
    return weights


def cover(weights: dict[str, float], text: str) -> float:
    """The share of the question's term weight that ``text`` holds."""
    total = sum(weights.values())
    return sum(w for t, w in weights.items() if t in text) / total if total else 0.0


def candidate_features(
    library: Library,
    query: str,
    positions: Sequence[int],
    *,
    own: np.ndarray,
    view: np.ndarray,
    bm25: np.ndarray,
    bm25_norm: np.ndarray,
    fused: dict[int, float],
    mentioned: set[str],
    asked_old: set[str],
    thesaurus_terms: Sequence[str] = (),
) -> np.ndarray:
    """One row of ``FEATURES`` per candidate position (``positions``, best fused first)."""
    import numpy as np

    weights = term_weights(library, query)
    wants_list = asks_kinds(query)
    best_fused = max((fused[i] for i in positions), default=0.0)
    best_view = max((float(view[i]) for i in positions), default=0.0)
    bm25_max = max((float(bm25[i]) for i in positions), default=0.0)
    by_view = {i: r for r, i in enumerate(sorted(positions, key=lambda i: -float(view[i])))}
    by_bm25 = {i: r for r, i in enumerate(sorted(positions, key=lambda i: -float(bm25[i])))}
    rows = np.zeros((len(positions), len(FEATURES)), dtype=np.float64)
    for r, i in enumerate(positions):
        chunk = library.chunks[i]
        meta = chunk.metadata
        text = chunk.page_content
        file = str(meta.get("file", ""))
        info = library.docs.get(file)
        head = f"{meta.get('title', '')} {meta.get('heading_path', '')}"
        thes = [t for t in thesaurus_terms if t in text]
        rows[r] = (
            float(own[i]),
            float(view[i]),
            float(bm25_norm[i]),
            float(bm25[i]) / bm25_max if bm25_max > 0 else 0.0,
            best_fused - fused[i],
            best_view - float(view[i]),
            1.0 / (1 + r),
            1.0 / (1 + by_view[i]),
            1.0 / (1 + by_bm25[i]) if bm25[i] > 0 else 0.0,
            cover(weights, text),
            cover(weights, head),
            len(thes) / len(thesaurus_terms) if thesaurus_terms else 0.0,
            float(file in mentioned),
            float(info is not None and info.has_current_sibling and file not in asked_old),
            float(str(meta.get("kind") or "") == "讲话"),
            float(wants_list and enumerates(text)),
            math.log(1 + len(text)),
        )
    return rows
