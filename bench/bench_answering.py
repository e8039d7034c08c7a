"""Latency of full answers (retrieval + extractive answering) on the dev questions.

Usage: HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_answering.py [--config policy.toml] [--repeat 2]

Prints p50 / p90 / max of the whole ``Assistant.ask`` and of its two parts
(retrieval, answering without retrieval). Needs an ingested store.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

from langchain_core.documents import Document

from assistant.config import load_settings
from assistant.service import build_assistant


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default=None)
    parser.add_argument("--eval-dir", default="../shared/eval")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()

    settings = load_settings(args.config)
    t0 = time.perf_counter()
    assistant = build_assistant(settings)
    print(f"build_assistant: {time.perf_counter() - t0:.1f} s")

    items = []
    for path in sorted(Path(args.eval_dir).glob("*.jsonl")):
        items += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    assistant.ask("预热：公务员试用期多长？")

    retrieve_ms: list[float] = []
    total_ms: list[float] = []
    answer_ms: list[float] = []
    real_search = assistant.retriever.search

    def timed_search(query: str, k: int | None = None, *, library: Any = None) -> list[Document]:
        start = time.perf_counter()
        docs = real_search(query, k, library=library)
        retrieve_ms.append((time.perf_counter() - start) * 1000)
        return docs

    object.__setattr__(assistant.retriever, "search", timed_search)
    for _ in range(args.repeat):
        for item in items:
            history = [tuple(h) for h in item.get("history", [])] or None
            before = len(retrieve_ms)
            start = time.perf_counter()
            assistant.ask(item["question"], history)  # type: ignore[arg-type]
            total = (time.perf_counter() - start) * 1000
            total_ms.append(total)
            answer_ms.append(total - sum(retrieve_ms[before:]))

    for name, values in (("total", total_ms), ("retrieval", retrieve_ms), ("answering", answer_ms)):
        print(
            f"{name:10s} n={len(values)} p50={statistics.median(values):.0f} ms "
            f"p90={_pct(values, 0.9):.0f} ms max={max(values):.0f} ms"
        )


if __name__ == "__main__":
    main()
