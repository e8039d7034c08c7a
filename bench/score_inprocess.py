"""The independent scorer's figures, per split and type, without a server.

Usage: HF_HUB_OFFLINE=1 .venv/bin/python bench/score_inprocess.py [--eval-dir ../shared/eval]
    [--scorer ../shared/tools/score_answers.py] [--dump rows.json] [--cache /tmp/qvec.pkl]
    [--files corpus/calibration/answerable.jsonl corpus/calibration/unanswerable.jsonl] [--losses]

It asks ``Assistant.ask`` in this process (the same object ``POST /api/ask`` serves),
scores every answer with the acceptance scorer's own ``score`` function and prints one
table per split (train, speech_dev, rules_dev). Query vectors can be cached on disk
(``--cache``) so that a second run spends its time in the pipeline, not in the model;
the cache is keyed by text and only ever holds this model's vectors. Acceptance figures
still come from ``score_answers.py`` against a running server; this is the quick loop.

``--losses`` adds, per set, where each answerable item's answer falls short: declined (the
scorer's false refusal; with or without a gold citation), a gold citation but answer points
missing, or no gold citation, by the place of the first gold chunk in the served order
(``calibration.first_gold_place``: 1st, 2nd–3rd, 4th–10th, deeper, not within
``retrieval.rerank_depth``). "Gold citation" is the scorer's judgement (citation precision > 0);
the place uses ``calibration.holds_gold`` (gold file and article, or the whole quote). The
table tells a decision problem from evidence selection and from retrieval before anyone tunes
either.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import pickle
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from langchain_core.embeddings import Embeddings

from assistant.calibration import first_gold_place
from assistant.config import load_settings
from assistant.embeddings import build_embeddings
from assistant.service import build_assistant

KEYS = ("coverage", "citation_precision", "article_accuracy", "false_refusal", "decline_ok")
SPLITS = ("train", "speech_dev", "rules_dev")


class CachedEmbeddings(Embeddings):
    """Query vectors from a pickle cache, else from the model (and remembered)."""

    def __init__(self, inner: Embeddings, path: Path | None) -> None:
        self.inner = inner
        self.path = path
        self.model_name = getattr(inner, "model_name", "")
        self.cache: dict[str, list[float]] = {}
        if path is not None and path.is_file():
            self.cache = pickle.loads(path.read_bytes())

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.inner.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        if text not in self.cache:
            self.cache[text] = self.inner.embed_query(text)
        return self.cache[text]

    def save(self) -> None:
        if self.path is not None:
            self.path.write_bytes(pickle.dumps(self.cache))


def _load_scorer(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location("score_answers", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _agg(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"n": len(rows)}
    for key in KEYS:
        values = [float(r[key]) for r in rows if key in r]
        out[key] = round(sum(values) / len(values), 3) if values else None
    out["invented"] = sum(r["invented_quotes"] + r["uncited_articles"] for r in rows)
    return out


def _table(name: str, rows: list[tuple[str, dict[str, Any]]]) -> str:
    lines = [
        f"## {name}",
        "| type | n | " + " | ".join(KEYS) + " | invented |",
        "|---" * (len(KEYS) + 3) + "|",
    ]
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for kind, row in rows:
        groups[kind].append(row)
    for label, group in [("all", [r for _, r in rows]), *sorted(groups.items())]:
        o = _agg(group)
        lines.append(
            f"| {label} | {o['n']} | " + " | ".join(str(o[k]) for k in KEYS) + f" | {o['invented']} |"
        )
    return "\n".join(lines)


LOSSES = (
    "full coverage",
    "declined, gold quoted",
    "declined, gold not quoted",
    "gold quoted, points missing",
    "gold 1st, not quoted",
    "gold 2nd–3rd, not quoted",
    "gold 4th–10th, not quoted",
    "gold deeper, not quoted",
    "gold not in depth",
)


def _loss(row: dict[str, Any], place: Callable[[], int | None]) -> str:
    """Where one answerable item's answer falls short (``LOSSES``), from its scorer row."""
    quoted = bool(row.get("citation_precision"))
    if row.get("false_refusal"):
        return LOSSES[1] if quoted else LOSSES[2]
    if float(row.get("coverage") or 0.0) >= 1.0:
        return LOSSES[0]
    if quoted:
        return LOSSES[3]
    rank = place()
    if rank is None:
        return LOSSES[8]
    return LOSSES[4] if rank == 0 else LOSSES[5] if rank < 3 else LOSSES[6] if rank < 10 else LOSSES[7]


def _loss_table(counts: dict[str, Counter[str]]) -> str:
    names = list(counts)
    lines = ["## where answerable items fall short", "| | " + " | ".join(names) + " |"]
    lines.append("|---" * (len(names) + 1) + "|")
    for loss in LOSSES:
        lines.append(f"| {loss} | " + " | ".join(str(counts[n][loss]) for n in names) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", default=None)
    parser.add_argument("--eval-dir", type=Path, default=Path("../shared/eval"))
    parser.add_argument("--scorer", type=Path, default=Path("../shared/tools/score_answers.py"))
    parser.add_argument("--corpus", type=Path, default=Path("../shared/corpus"))
    parser.add_argument("--splits", nargs="*", default=list(SPLITS))
    parser.add_argument(
        "--files",
        nargs="*",
        type=Path,
        default=[],
        help="more sets in the same format, scored after the splits (e.g. corpus/calibration/*.jsonl)",
    )
    parser.add_argument("--dump", type=Path, default=None, help="write every item's answer and score here")
    parser.add_argument("--cache", type=Path, default=None, help="pickle of query vectors (dev loop only)")
    parser.add_argument(
        "--losses", action="store_true", help="also count where each answerable item falls short"
    )
    args = parser.parse_args()

    scorer = _load_scorer(args.scorer)
    corpus = {p.name: scorer.squash(p.read_text(encoding="utf-8")) for p in args.corpus.glob("*.md")}
    settings = load_settings(args.config)
    embeddings = CachedEmbeddings(build_embeddings(settings), args.cache)
    assistant = build_assistant(settings, embeddings)
    dump: list[dict[str, Any]] = []
    latencies: list[float] = []
    losses: dict[str, Counter[str]] = {}
    sets = [(split, args.eval_dir / f"{split}.jsonl") for split in args.splits]
    sets += [(path.stem, path) for path in args.files]
    for split, path in sets:
        rows: list[tuple[str, dict[str, Any]]] = []
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            history = [tuple(pair) for pair in item.get("history") or []]
            t0 = time.perf_counter()
            result = assistant.run(item["question"], history)  # type: ignore[arg-type]
            latencies.append(time.perf_counter() - t0)
            out = result.answer.model_dump()
            row = scorer.score(item, out, corpus)
            rows.append((item["type"], row))
            if args.losses and item.get("gold") and "coverage" in row:
                library = assistant.index.current()
                loss = _loss(row, partial(first_gold_place, assistant, library, item))
                losses.setdefault(split, Counter())[loss] += 1
            dump.append({"split": split, "item": item, "reason": result.reason, "answer": out, "score": row})
        print(_table(split, rows), flush=True)
    embeddings.save()
    if args.losses:
        print(_loss_table(losses))
    latencies.sort()
    print(f"latency p50 {latencies[len(latencies) // 2] * 1000:.0f} ms (query vectors cached: {args.cache})")
    if args.dump is not None:
        args.dump.write_text(json.dumps(dump, ensure_ascii=False, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
