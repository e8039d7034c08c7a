"""One library measured in the process of ``bench_scale.py measure``: startup, RSS, retrieval,
answer, dense and BM25 latency, Chroma's HNSW query and adding one document (``bench/scale_probes.py``).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EVAL_DIR = ROOT.parent / "shared" / "eval"


def _rss_split_mb() -> dict[str, int]:
    """Anonymous and file-backed (memory-mapped snapshot files: reclaimable) parts of the RSS."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return {f"{k.lower()}_mb": int(fields[k].split()[0]) // 1024 for k in ("RssAnon", "RssFile")}


def _rss_mb() -> tuple[float, float]:
    """(current RSS, peak RSS) of this process in MB."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else 0.0


def _questions(n: int) -> list[str]:
    out: list[str] = []
    for name in ("speech_dev.jsonl", "rules_dev.jsonl", "train.jsonl"):
        path = EVAL_DIR / name
        if path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                item = json.loads(line) if line.strip() else {}
                if item and not item.get("history"):
                    out.append(str(item["question"]))
    return out[:n]


def measure(
    store: Path, n_questions: int, cache: Path, server: str = "", *, started: float
) -> dict[str, Any]:
    """One library measured in this process; ``started`` is when the process started (for ``startup_s``)."""
    import numpy as np

    from assistant.config import load_settings
    from assistant.embeddings import build_embeddings
    from assistant.service import build_assistant
    from bench.scale_probes import add_one_document, bm25_seconds, chroma_probe
    from bench.score_inprocess import CachedEmbeddings
    from bench.synthetic_library import ensure_manifest

    if not server:
        ensure_manifest(store)  # in this process: an embedded store has one writer at a time
    os.environ["POLICY_CHROMA__PERSIST_DIR"] = str(store)
    os.environ["POLICY_LIBRARY__SNAPSHOT_DIR"] = str(store.parent / f"{store.name}-index")
    if server:  # host:port of a ``chroma run`` serving ``store``
        host, _, port = server.rpartition(":")
        os.environ["POLICY_CHROMA__HOST"], os.environ["POLICY_CHROMA__PORT"] = host, port
    settings = load_settings()
    if n_questions <= 0:  # startup only, as ``serve`` starts (model, then index), each timed
        t_model = time.perf_counter()
        model = build_embeddings(settings)
        t_index = time.perf_counter()
        assistant = build_assistant(settings, model)
        ready = time.perf_counter()
        return {
            "startup_s": round(ready - started, 1),
            "model_load_s": round(t_index - t_model, 1),
            "index_load_s": round(ready - t_index, 1),
            "rss_mb": round(_rss_mb()[0]),
        } | _rss_split_mb()
    t_model = time.perf_counter()
    embeddings = CachedEmbeddings(build_embeddings(settings), cache)
    t_index = time.perf_counter()
    assistant = build_assistant(settings, embeddings)
    lib = assistant.index.current()
    ready = time.perf_counter()
    rss, _peak = _rss_mb()
    split = _rss_split_mb()
    wait_saved = getattr(assistant.index, "wait_saved", None)
    questions = _questions(n_questions)
    for q in questions:  # embed outside the clock
        embeddings.embed_query(q)
    embeddings.save()

    retrieval: list[float] = []
    answers: list[float] = []
    dense: list[float] = []
    bm25: list[float] = []
    for q in questions:
        bm25.append(bm25_seconds(lib, q))
        t = time.perf_counter()
        assistant.retriever.search(q)
        retrieval.append(time.perf_counter() - t)
        t = time.perf_counter()
        assistant.ask(q)
        answers.append(time.perf_counter() - t)
    # What serving the questions left resident (a large library's vectors are memory-mapped: only
    # the rows read count), before the exact full scans below read every vector.
    after = {
        "rss_after_questions_mb": round(_rss_mb()[0]),
        **{f"{k}_after": v for k, v in _rss_split_mb().items()},
    }
    for q in questions:
        qvec = np.asarray(embeddings.embed_query(q), dtype=np.float32)
        t = time.perf_counter()
        assistant.retriever._dense_all(qvec, lib)  # the exact scan of every vector (not the store path)
        dense.append(time.perf_counter() - t)
    row: dict[str, Any] = {
        "chunks": len(lib.chunks),
        "vectors": int(len(lib.chunks) + len(lib.view_parent)),
        "startup_s": round(ready - started, 1),
        "model_load_s": round(t_index - t_model, 1),
        "index_load_s": round(ready - t_index, 1),
        "rss_mb": round(rss),
        **split,
        "retrieval_p50": _pct(retrieval, 0.5),
        "retrieval_p95": _pct(retrieval, 0.95),
        "answer_p50": _pct(answers, 0.5),
        "answer_p95": _pct(answers, 0.95),
        "dense_p50": _pct(dense, 0.5),
        "bm25_p50": _pct(bm25, 0.5),
    }
    row |= after
    embeddings.save()  # the derived queries (thesaurus rewrites, bridges) too: the next run skips the model
    row |= chroma_probe(assistant, lib, [np.asarray(embeddings.embed_query(q)) for q in questions[:30]])
    row |= add_one_document(settings, assistant, embeddings, store)
    row["peak_rss_mb"] = round(_rss_mb()[1])
    if callable(wait_saved):  # the saved library index, for the next start
        wait_saved()
    return row
