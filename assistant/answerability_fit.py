"""Fitting the answerability decision on ``train.jsonl`` (``policy-assistant calibrate``).

Every answerable and unanswerable item runs through the pipeline with no model in place;
the features its decision would weigh (``assistant.answerability.FEATURES``) become one row.
A logistic regression is fitted on every row, and the decision threshold comes from
stratified k-fold probabilities: the highest one whose false refusals, with those of the
hard rules, stay within ``answer.max_false_refusal``. ``reliability`` bins the held-out
probabilities for the report.

scikit-learn does the fitting only (lazy import); serving reads the stored numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from assistant.linear import LinearModel

if TYPE_CHECKING:
    import numpy as np

    from assistant.pipeline import Assistant


@dataclass
class AnswerabilityData:
    """One feature row per question the model decides (hard-rule declines left out)."""

    x: list[list[float]] = field(default_factory=list)
    y: list[int] = field(default_factory=list)  # 1: answerable (has gold places)
    kinds: list[str] = field(default_factory=list)
    ruled_out: dict[str, int] = field(default_factory=dict)  # answerable items a hard rule declined


def answerability_data(
    assistant: Assistant, items: Sequence[dict[str, Any]], progress: Callable[[int, int], None] | None = None
) -> AnswerabilityData:
    """Run every answerable and unanswerable item through the pipeline and keep its features."""
    from assistant.answerability import FEATURES

    data = AnswerabilityData()
    model, assistant.decline.model = assistant.decline.model, None  # features do not depend on it
    try:
        usable = [it for it in items if it.get("gold") or it.get("type") == "unanswerable"]
        for n, item in enumerate(usable):
            history = [tuple(pair) for pair in item.get("history") or []]
            result = assistant.run(item["question"], history)  # type: ignore[arg-type]
            decision = result.decision
            if decision is None or not decision.features:
                if item.get("gold"):
                    data.ruled_out[result.reason] = data.ruled_out.get(result.reason, 0) + 1
                continue
            data.x.append([decision.features[f] for f in FEATURES])
            data.y.append(int(bool(item.get("gold"))))
            data.kinds.append(str(item.get("type", "")))
            if progress is not None:
                progress(n + 1, len(usable))
    finally:
        assistant.decline.model = model
    return data


def fit_answerability(
    data: AnswerabilityData,
    *,
    answerable_total: int,
    max_false_refusal: float,
    folds: int = 5,
    repeats: int = 10,
    c: float = 0.1,
) -> tuple[LinearModel, dict[str, Any]]:
    """Fit on every row; the threshold comes from stratified k-fold probabilities (averaged over
    ``repeats`` splits): the highest
    one whose false refusals, added to those of the hard rules, stay within ``max_false_refusal``
    of the ``answerable_total`` answerable items."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.preprocessing import StandardScaler

    from assistant.answerability import FEATURES

    x = np.asarray(data.x, dtype=np.float64)
    y = np.asarray(data.y, dtype=np.int64)
    cv = np.zeros(len(y))
    # Each row's held-out probability is averaged over ``repeats`` different fold splits: with one
    # split the threshold (an order statistic of a handful of rows) moved 0.33–0.46 between seeds.
    for seed in range(repeats):
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        for train, test in splitter.split(x, y):
            scaler = StandardScaler().fit(x[train])
            model = LogisticRegression(C=c, max_iter=2000, class_weight="balanced")
            model.fit(scaler.transform(x[train]), y[train])
            cv[test] += model.predict_proba(scaler.transform(x[test]))[:, 1] / repeats
    ruled = sum(data.ruled_out.values())
    budget = max(0, int(max_false_refusal * answerable_total) - ruled)
    answerable = np.sort(cv[y == 1])
    # The threshold just above the budget-th lowest answerable probability.
    threshold = float(answerable[budget] - 1e-6) if budget < len(answerable) else 1.0
    threshold = max(threshold, 0.0)
    declined = cv < threshold
    neg = y == 0
    report: dict[str, Any] = {
        "rows": len(y),
        "unanswerable": int(neg.sum()),
        "threshold": round(threshold, 4),
        "cv false refusal": round(float((declined & ~neg).sum() + ruled) / max(1, answerable_total), 3),
        "cv decline recall": round(float((declined & neg).sum()) / max(1, int(neg.sum())), 3),
        "cv decline precision": round(float((declined & neg).sum()) / max(1, int(declined.sum())), 3),
        "reliability": reliability(cv, y),
    }
    scaler = StandardScaler().fit(x)
    model = LogisticRegression(C=c, max_iter=2000, class_weight="balanced").fit(scaler.transform(x), y)
    fitted = LinearModel(
        list(FEATURES),
        [float(m) for m in scaler.mean_],
        [float(s) if s > 0 else 1.0 for s in scaler.scale_],
        [float(w) for w in model.coef_[0]],
        float(model.intercept_[0]),
        threshold,
        {"fitted_on": "train.jsonl", "C": c, **{k: v for k, v in report.items() if k != "reliability"}},
    )
    return fitted, report


def reliability(probabilities: np.ndarray, labels: np.ndarray, bins: int = 5) -> list[dict[str, Any]]:
    """Per probability bin: how many questions, the mean predicted and the observed answerable share."""
    import numpy as np

    rows: list[dict[str, Any]] = []
    edges = np.linspace(0.0, 1.0, bins + 1)
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        mask = (probabilities >= lo) & ((probabilities < hi) | (hi >= 1.0))
        if mask.any():
            rows.append(
                {
                    "bin": f"{lo:.1f}–{hi:.1f}",
                    "n": int(mask.sum()),
                    "predicted": round(float(probabilities[mask].mean()), 3),
                    "observed": round(float(labels[mask].mean()), 3),
                }
            )
    return rows
