"""Learned re-rankers against the fused order, fitted on train and shown on held-out sets.

Usage (from the repo root, after `policy-assistant ingest`):

    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_rerankers.py [--cache /tmp/qvec.pkl]
        [--held-out ../shared/eval/speech_dev.jsonl ../shared/eval/rules_dev.jsonl corpus/calibration/answerable*.jsonl]

For every item with gold places it collects the re-ranker's feature rows of the top
``retrieval.rerank_depth`` candidates (``assistant.calibration.ranking_data``, the rows
``policy-assistant calibrate`` fits on), then prints hit@1 / hit@3 / MRR of:

- ``fused``: the retriever's fused order (what serves while no ``rerank.json`` ships);
- ``logistic``: the re-ranker ``calibrate`` fits (C = 1);
- ``trees dD``: scikit-learn's gradient-boosted trees (``HistGradientBoostingClassifier``,
  depth D), the stronger learner a maintainer would try next.

Train figures are grouped 5-fold cross-validation (every fold leaves out whole questions);
held-out figures come from the model fitted on all of train. One question is 1/n of a
column, so a difference of one or two questions is noise. Figures only: nothing is asserted
and nothing is stored.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from assistant.calibration import (  # noqa: E402
    Fit,
    RankingData,
    Scorer,
    cross_validated,
    first_gold_ranks,
    hit_at,
    linear_reranker,
    ranking_data,
)
from assistant.config import load_settings  # noqa: E402
from assistant.embeddings import build_embeddings  # noqa: E402
from assistant.service import build_assistant  # noqa: E402
from bench.score_inprocess import CachedEmbeddings  # noqa: E402


def ranking_figures(scores: np.ndarray, data: RankingData) -> tuple[float, float, float]:
    """hit@1, hit@3 and MRR of the first gold candidate, over the questions of ``data``."""
    ranks = first_gold_ranks(scores, data)
    mrr = float(np.mean(1.0 / (1.0 + ranks))) if len(ranks) else 0.0
    return hit_at(ranks, 1), hit_at(ranks, 3), mrr


def logistic(x: np.ndarray, y: np.ndarray) -> Scorer:
    return linear_reranker(x, y).probabilities


def trees(depth: int) -> Fit:
    def fit(x: np.ndarray, y: np.ndarray) -> Scorer:
        from sklearn.ensemble import HistGradientBoostingClassifier

        model = HistGradientBoostingClassifier(
            max_depth=depth, max_iter=150, learning_rate=0.05, random_state=0
        )
        model.fit(x, y)
        return lambda z: model.predict_proba(z)[:, 1]

    return fit


def _items(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", default=None)
    parser.add_argument("--train", type=Path, default=Path("../shared/eval/train.jsonl"))
    parser.add_argument(
        "--held-out",
        nargs="*",
        type=Path,
        default=[Path("../shared/eval/speech_dev.jsonl"), Path("../shared/eval/rules_dev.jsonl")],
    )
    parser.add_argument("--cache", type=Path, default=None, help="pickle of query vectors (dev loop only)")
    args = parser.parse_args()

    settings = load_settings(args.config)
    embeddings = CachedEmbeddings(build_embeddings(settings), args.cache)
    assistant = build_assistant(settings, embeddings)
    assistant.retriever.reranker = None  # the rows describe the fused candidates
    train = ranking_data(assistant, _items(args.train))
    held = {path.stem: ranking_data(assistant, _items(path)) for path in args.held_out}
    embeddings.save()

    names = ["train (cv)", *held]
    print(
        "| ranker | "
        + " | ".join(f"{n} ({d.items})" for n, d in zip(names, [train, *held.values()], strict=True))
        + " |"
    )
    print("|---" * (len(names) + 1) + "|")

    def row(label: str, cells: list[tuple[float, float, float]]) -> None:
        print(
            f"| {label} | " + " | ".join(f"{a:.3f} / {b:.3f} / {m:.3f}" for a, b, m in cells) + " |",
            flush=True,
        )

    def fused(d: RankingData) -> np.ndarray:
        return -np.asarray(d.fused_rank, dtype=np.float64)

    row("fused", [ranking_figures(fused(d), d) for d in (train, *held.values())])
    for label, fit in (("logistic", logistic), ("trees d2", trees(2)), ("trees d3", trees(3))):
        model = fit(np.asarray(train.x), np.asarray(train.y))
        cells = [ranking_figures(cross_validated(fit, train), train)]
        cells += [ranking_figures(model(np.asarray(d.x)), d) for d in held.values()]
        row(label, cells)
    print("\n(hit@1 / hit@3 / MRR；训练集为按题分组的 5 折交叉验证，其余为用全部训练集拟合后的留出集)")


if __name__ == "__main__":
    main()
