"""Retrieval benchmark: our HybridRetriever against the naive baseline, side by side.

Usage (from the repo root, after `policy-assistant ingest`):

    .venv/bin/python bench/bench_retrieval.py [--config policy.toml] [--eval-dir ../shared/eval]
        [--k 5] [--cache /tmp/baseline-vectors.npz] [--no-baseline] [--temp-ingest [--article-views]]

Prints hit@1/3/5, MRR and p50/p95 retrieval latency (query embedding included)
over the questions of the dev splits (``*_dev.jsonl``; follow-ups are asked with
their earlier questions prepended), for:

- ``hybrid``: ``assistant.retrieval.HybridRetriever`` on the ingested library;
- ``baseline``: 250-character windows with 50 characters of overlap, dense-only
  search with the same embedding model in a temporary Chroma collection;

and, reusing the hybrid run's query vectors (no latency): the hybrid retriever
without views, and with only the views of speech / 意见 chunks (``ingest.views``;
``--temp-ingest --article-views`` also stores sentence views of rule articles, so
"all views" differs from "speech views only"), then three ablations on our chunks
without views: dense only, BM25 only, and reciprocal-rank fusion (k=60) of the two.
Per-type hit@5 / MRR follow, then the best ``dense_score`` in the top 5 for
answerable vs unanswerable / injection questions (what the decline threshold
``retrieval.decline_threshold`` is compared with). Figures only: nothing is asserted.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from langchain_core.documents import Document  # noqa: E402
from langchain_core.embeddings import Embeddings  # noqa: E402

from assistant.config import load_settings  # noqa: E402
from assistant.evaluation import load_eval_file, score_retrieval  # noqa: E402
from bench.retrieval_variants import (  # noqa: E402
    Retrieve,
    ablation,
    baseline_retriever,
    decline_figures,
    view_ablation,
)


class MemoEmbeddings(Embeddings):
    """Remembers query vectors so ablations reuse the hybrid run's embeddings."""

    def __init__(self, inner: Embeddings) -> None:
        self.inner = inner
        self.model_name = str(getattr(inner, "model_name", ""))
        self.memo: dict[str, list[float]] = {}

    def embed_query(self, text: str) -> list[float]:
        if text not in self.memo:
            self.memo[text] = self.inner.embed_query(text)
        return self.memo[text]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.inner.embed_documents(texts)


def timed(retrieve: Retrieve, latencies: list[float]) -> Retrieve:
    def run(query: str) -> Sequence[Document]:
        start = time.perf_counter()
        docs = retrieve(query)
        latencies.append(time.perf_counter() - start)
        return docs

    return run


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


# ----------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", default=None)
    parser.add_argument("--eval-dir", type=Path, default=ROOT.parent / "shared" / "eval")
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--cache", type=Path, default=None, help="npz file caching the baseline's vectors")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument(
        "--temp-ingest", action="store_true", help="ingest the library into a temporary store"
    )
    parser.add_argument(
        "--article-views",
        action="store_true",
        help="with --temp-ingest: also store sentence views of rule articles",
    )
    args = parser.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    logging.basicConfig(level=logging.WARNING)

    from assistant.embeddings import build_embeddings
    from assistant.retrieval import build_retriever
    from assistant.service import open_library

    settings = load_settings(args.config)
    files = sorted(args.eval_dir.glob("*_dev.jsonl"))
    if not files:
        sys.exit(f"没有找到评测文件：{args.eval_dir}/*_dev.jsonl")
    items = [item for f in files for item in load_eval_file(f)]

    with tempfile.TemporaryDirectory(prefix="bench-retrieval-") as tmp:
        workdir = Path(tmp)
        t0 = time.perf_counter()
        embeddings = MemoEmbeddings(build_embeddings(settings))
        print(f"模型加载 {time.perf_counter() - t0:.1f} s")
        if args.temp_ingest:
            from ingest.indexer import run_ingest

            settings = settings.model_copy(
                update={
                    "chroma": settings.chroma.model_copy(
                        update={"persist_dir": workdir / "chroma", "host": None}
                    )
                }
            )
            from ingest.views import DEFAULT_VIEWS

            spec = DEFAULT_VIEWS
            if args.article_views:
                spec = dataclasses.replace(spec, article_windows=(1,))
            print(run_ingest(settings, embeddings, progress=False, views=spec).summary_line())
        t0 = time.perf_counter()
        library_index = open_library(settings, embeddings)
        index = library_index.current()
        if not len(index):
            sys.exit("向量库为空：请先运行 policy-assistant ingest，或加 --temp-ingest")
        retriever = build_retriever(settings.retrieval, embeddings, library_index)
        print(
            f"检索索引建立 {time.perf_counter() - t0:.2f} s（{len(index.chunks)} 个文本块 + "
            f"{len(index.view_parent)} 个视图向量，其中讲话/意见 "
            f"{sum(1 for p in index.view_parent if not index.chunks[p].metadata.get('article'))} 个）"
        )
        retriever.invoke("预热")

        rows: list[tuple[str, dict[str, Any], list[float]]] = []
        lat: list[float] = []
        rows.append(
            (
                "hybrid",
                score_retrieval(items, timed(lambda q: retriever.invoke(q, k=args.k), lat), args.k),
                lat,
            )
        )
        if not args.no_baseline:
            base = baseline_retriever(settings, embeddings.inner, args.k, args.cache, workdir)
            base("预热")
            lat_b: list[float] = []
            rows.append(("baseline 250/50 dense", score_retrieval(items, timed(base, lat_b), args.k), lat_b))
        # Query vectors are memoised by now: these latencies exclude the query embedding.
        lat_cached: list[float] = []
        rows.append(
            (
                "hybrid, cached query vec",
                score_retrieval(items, timed(lambda q: retriever.invoke(q, k=args.k), lat_cached), args.k),
                lat_cached,
            )
        )
        lat_none: list[float] = []
        rows.append(
            (
                "hybrid, no views (cached)",
                score_retrieval(items, timed(view_ablation(retriever, "none", args.k), lat_none), args.k),
                lat_none,
            )
        )
        rows.append(
            (
                "hybrid, speech views only",
                score_retrieval(items, view_ablation(retriever, "prose", args.k), args.k),
                [],
            )
        )
        declines = decline_figures(items, lambda q: retriever.invoke(q, k=5))
        for mode in ("dense", "bm25", "rrf"):
            rows.append(
                (
                    f"ours: {mode} only" if mode != "rrf" else "ours: rrf(dense,bm25)",
                    score_retrieval(items, ablation(retriever, mode, args.k), args.k),
                    [],
                )
            )

    n = rows[0][1]["overall"]["n"]
    print(f"\n{n} 道有标准答案的题（{', '.join(f.name for f in files)}），k={args.k}\n")
    print(
        f"{'system':26s} {'hit@1':>6s} {'hit@3':>6s} {'hit@5':>6s} {'MRR':>6s} {'p50 ms':>7s} {'p95 ms':>7s}"
    )
    for name, result, latencies in rows:
        o = result["overall"]
        p50 = f"{percentile(latencies, 0.5) * 1000:7.0f}" if latencies else f"{'—':>7s}"
        p95 = f"{percentile(latencies, 0.95) * 1000:7.0f}" if latencies else f"{'—':>7s}"
        print(f"{name:26s} {o['hit@1']:6.3f} {o['hit@3']:6.3f} {o['hit@5']:6.3f} {o['mrr']:6.3f} {p50} {p95}")
    types = sorted(rows[0][1]["by_type"])
    print("\nper type: hit@5 / MRR")
    print(f"{'system':26s} " + " ".join(f"{t[:10]:>11s}" for t in types))
    for name, result, _ in rows:
        cells = []
        for t in types:
            s = result["by_type"].get(t)
            cells.append(f"{s['hit@5']:.2f}/{s['mrr']:.2f}".rjust(11) if s else f"{'—':>11s}")
        print(f"{name:26s} " + " ".join(cells))
    print("\nbest score in the top 5 (decline threshold: retrieval.decline_threshold on dense_score)")
    print(declines)
    if rows[0][2]:
        print(
            f"\nhybrid latency: mean {statistics.mean(rows[0][2]) * 1000:.0f} ms over {len(rows[0][2])} queries"
        )


if __name__ == "__main__":
    main()
