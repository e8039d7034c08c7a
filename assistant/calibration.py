"""Eval items against the library, and the re-ranker's fit (``policy-assistant calibrate``).

Gold matching: ``holds_gold`` (a chunk is one of an item's gold places), ``candidates``
(an item's candidates, its history condensed as served) and ``first_gold_place`` (where the
served order puts the first gold chunk; ``bench/score_inprocess.py --losses``).

The re-ranker (``assistant.rerank``) is a logistic regression over the features of each
of a question's top ``retrieval.rerank_depth`` candidates; the label is whether the
candidate holds a gold quote of the item (same file, and the gold article or the quote
itself). It is judged by grouped k-fold cross-validation (every fold leaves out whole
questions) against the fused order, then refitted on all items and stored as data.

scikit-learn does the fitting only (lazy import); serving reads the stored numbers.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from assistant.conversation import condense
from assistant.linear import LinearModel
from assistant.rerank import FEATURES

if TYPE_CHECKING:
    import numpy as np
    from langchain_core.documents import Document

    from assistant.library import Library
    from assistant.pipeline import Assistant
    from assistant.retrieval import Ranked

_SPACE = re.compile(r"\s+")


def _squash(text: str) -> str:
    return _SPACE.sub("", text or "")


def holds_gold(doc: Document, gold: Sequence[dict[str, Any]]) -> bool:
    """The chunk is one of the places the item's answer is (README scoring rules)."""
    meta = doc.metadata
    text = _squash(doc.page_content)
    for g in gold:
        if meta.get("file") != g.get("doc"):
            continue
        if g.get("article") and meta.get("article") == g["article"]:
            return True
        if _squash(str(g.get("quote", ""))) in text:
            return True
    return False


@dataclass
class RankingData:
    """Feature rows of every item's re-ranked candidates, with labels and item groups."""

    x: list[list[float]] = field(default_factory=list)
    y: list[int] = field(default_factory=list)
    group: list[int] = field(default_factory=list)
    fused_rank: list[int] = field(default_factory=list)
    items: int = 0


def candidates(
    assistant: Assistant,
    library: Library,
    item: dict[str, Any],
    *,
    fused: bool = False,
    features: bool = False,
) -> Ranked | None:
    """An eval item's candidates, its history condensed as served: in served order, or in fused
    order (``fused``: no re-ranker, what the re-ranker's rows describe)."""
    history = [tuple(pair) for pair in item.get("history") or []]
    chars = assistant.settings.answer.context_chars
    query = condense(item["question"], history, chars, library.titles).query  # type: ignore[arg-type]
    return assistant.retriever.rank(query, library, rerank=not fused, features=features)


def first_gold_place(assistant: Assistant, library: Library, item: dict[str, Any]) -> int | None:
    """The 0-based place of the item's first gold chunk in the served order (references, status
    rules and a loaded re-ranker included), within ``retrieval.rerank_depth`` (None: not that deep).
    Extractive answering only: a generative condenser or a bridge re-query may retrieve more."""
    ranked = candidates(assistant, library, item)
    if ranked is None:
        return None
    depth = assistant.settings.retrieval.rerank_depth
    return next(
        (r for r, i in enumerate(ranked.order[:depth]) if holds_gold(library.chunks[i], item["gold"])), None
    )


def ranking_data(
    assistant: Assistant, items: Sequence[dict[str, Any]], progress: Callable[[int, int], None] | None = None
) -> RankingData:
    """Candidates and labels for the items that have gold places."""
    data = RankingData()
    library = assistant.index.current()
    with_gold = [it for it in items if it.get("gold")]
    for n, item in enumerate(with_gold):
        ranked = candidates(assistant, library, item, fused=True, features=True)
        if ranked is None or ranked.features is None:
            continue
        for r, (i, row) in enumerate(zip(ranked.depth, ranked.features, strict=True)):
            data.x.append([float(v) for v in row])
            data.y.append(int(holds_gold(library.chunks[i], item["gold"])))
            data.group.append(data.items)
            data.fused_rank.append(r)
        data.items += 1
        if progress is not None:
            progress(n + 1, len(with_gold))
    return data


Scorer = Callable[["np.ndarray"], "np.ndarray"]
Fit = Callable[["np.ndarray", "np.ndarray"], Scorer]


def first_gold_ranks(scores: np.ndarray, data: RankingData) -> np.ndarray:
    """Per question, the 0-based rank by ``scores`` of its first gold candidate (``inf`` when none
    holds gold): hit@k is ``mean(ranks < k)``, MRR ``mean(1 / (1 + rank))``."""
    import numpy as np

    y = np.asarray(data.y)
    groups = np.asarray(data.group)
    ranks = []
    for g in np.unique(groups):
        mask = groups == g
        ordered = y[mask][np.argsort(-scores[mask], kind="stable")]
        gold = np.flatnonzero(ordered)
        ranks.append(float(gold[0]) if len(gold) else np.inf)
    return np.asarray(ranks, dtype=np.float64)


def hit_at(ranks: np.ndarray, k: int) -> float:
    return float((ranks < k).mean()) if len(ranks) else 0.0


def linear_reranker(x: np.ndarray, y: np.ndarray, c: float = 1.0) -> LinearModel:
    """The re-ranker's learner: standardised features, logistic regression with inverse strength ``c``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x)
    model = LogisticRegression(C=c, max_iter=2000).fit(scaler.transform(x), y)
    return LinearModel(
        list(FEATURES),
        [float(m) for m in scaler.mean_],
        [float(s) if s > 0 else 1.0 for s in scaler.scale_],
        [float(w) for w in model.coef_[0]],
        float(model.intercept_[0]),
        0.5,
        {"C": c},
    )


def cross_validated(fit: Fit, data: RankingData, folds: int = 5) -> np.ndarray:
    """Every candidate's score from a model fitted without its question (grouped k-fold)."""
    import numpy as np
    from sklearn.model_selection import GroupKFold

    x, y, groups = (
        np.asarray(data.x, dtype=np.float64),
        np.asarray(data.y, dtype=np.int64),
        np.asarray(data.group),
    )
    scores = np.zeros(len(y))
    for train, test in GroupKFold(n_splits=folds).split(x, y, groups):
        scores[test] = fit(x[train], y[train])(x[test])
    return scores


def fit_reranker(data: RankingData, *, folds: int = 5, c: float = 1.0) -> tuple[LinearModel, dict[str, Any]]:
    """Cross-validated figures (fused order vs re-ranked, hit@1/3/5 on held-out questions) and
    the model refitted on every item."""
    import numpy as np

    x = np.asarray(data.x, dtype=np.float64)
    y = np.asarray(data.y, dtype=np.int64)
    fused = first_gold_ranks(-np.asarray(data.fused_rank, dtype=np.float64), data)
    cv = cross_validated(lambda xs, ys: linear_reranker(xs, ys, c).probabilities, data, folds)
    reranked = first_gold_ranks(cv, data)
    report: dict[str, Any] = {"questions": data.items, "candidates": len(y), "positives": int(y.sum())}
    for k in (1, 3, 5):
        report[f"fused hit@{k}"] = round(hit_at(fused, k), 3)
        report[f"reranked hit@{k} (cv)"] = round(hit_at(reranked, k), 3)
    fitted = linear_reranker(x, y, c)
    fitted.meta = {"fitted_on": "train.jsonl", "C": c, **report}
    return fitted, report
