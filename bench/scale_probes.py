"""Probes of one library for ``bench/bench_scale.py``: BM25 time, Chroma's HNSW query (time and
recall against the exact scan), and adding one document until it is answered."""

from __future__ import annotations

import logging
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from assistant.library import Library

SHARED_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
K = 30  # candidates compared: the retriever's dense candidate count


def bm25_seconds(lib: Library, question: str) -> float:
    """Time of one BM25 scoring of ``question`` over the whole library."""
    tokens = lib.tokenizer.tokenize(question)
    started = time.perf_counter()
    if lib.bm25 is not None and tokens:
        lib.bm25.get_scores(tokens)
    return time.perf_counter() - started


def _exact_parents(lib: Library, qvec: np.ndarray, k: int) -> set[str]:
    """Parent chunk ids of the ``k`` nearest records (chunks and views) by exact cosine."""
    scores = np.concatenate([lib.vectors @ qvec, lib.view_vectors @ qvec])
    top = np.argpartition(-scores, k - 1)[:k]
    n = len(lib.chunks)
    parents = [int(i) if i < n else int(lib.view_parent[i - n]) for i in top]
    return {str(lib.chunks[p].id) for p in parents}


def _original(record_id: str) -> str:
    """The real record a synthetic copy was made from (``s{c}-<id>``; real ids unchanged)."""
    head, sep, rest = record_id.partition("-")
    return rest if sep and head[:1] == "s" and head[1:].isdigit() else record_id


def chroma_probe(assistant: Any, lib: Library, qvecs: list[np.ndarray]) -> dict[str, Any]:
    """Chroma's own query: p50 time and recall@K of parent chunks against the exact scan, at the
    collection's ef_search and at a raised one (4x)."""
    collection = assistant.index.store.collection()
    out: dict[str, Any] = {}
    hnsw = dict((collection.configuration or {}).get("hnsw") or {})
    base_ef = int(hnsw.get("ef_search") or 100)
    for label, ef in (("", base_ef), ("_ef4x", base_ef * 4)):
        try:
            collection.modify(configuration={"hnsw": {"ef_search": ef}})
        except Exception as exc:  # a store that does not allow it: say so in the row
            out[f"chroma_error{label}"] = str(exc)[:200]
            continue
        times: list[float] = []
        recalls: list[float] = []
        content: list[float] = []
        for q in qvecs:
            q = q / (np.linalg.norm(q) or 1.0)
            started = time.perf_counter()
            got = collection.query(query_embeddings=[q.tolist()], n_results=K, include=["metadatas"])
            times.append(time.perf_counter() - started)
            metas = (got.get("metadatas") or [[]])[0]
            found = {str(m.get("parent_id") or rid) for rid, m in zip(got["ids"][0], metas, strict=True)}
            exact = _exact_parents(lib, q.astype(np.float32), K)
            recalls.append(len(found & exact) / max(1, len(exact)))
            # Synthetic copies of one chunk are near-duplicates: also count a hit on any copy.
            originals = {_original(i) for i in exact}
            content.append(len({_original(i) for i in found} & originals) / max(1, len(originals)))
        out[f"chroma_p50{label}"] = statistics.median(times) * 1000
        out[f"hnsw_recall{label}"] = statistics.mean(recalls)
        out[f"hnsw_recall_content{label}"] = statistics.mean(content)
        out[f"ef_search{label}"] = ef
    collection.modify(configuration={"hnsw": {"ef_search": base_ef}})
    return out


class _BuildCounter(logging.Handler):
    """Counts full snapshot builds (the library index logs each one)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.builds = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "资料库索引已建立" in record.getMessage():
            self.builds += 1


def add_one_document(settings: Any, assistant: Any, embeddings: Any, store: Path) -> dict[str, Any]:
    """Ingest one new document into the store while the assistant serves it; seconds of the ingest,
    then seconds until a question about it is answered from it, and full rebuilds meanwhile."""
    from ingest.indexer import run_ingest

    # The smallest document of the library (SOURCES.md lists sources, it is not one).
    source = min(
        (p for p in SHARED_CORPUS.glob("*.md") if p.name != "SOURCES.md"), key=lambda p: p.stat().st_size
    )
    stamp = time.strftime("%H%M%S")
    title = f"规模测试新增文件{stamp}"
    text = source.read_text(encoding="utf-8")
    body = text.split("\n---", 2)[-1] if text.startswith("---") else text
    folder = store.parent / f"added-{store.name}"
    folder.mkdir(exist_ok=True)
    path = folder / f"{title}.md"
    path.write_text(
        f"---\ntitle: {title}\nissuer: 测试\ndate: 2026-11-29\nstatus: 现行\n---\n{body}", "utf-8"
    )
    counter = _BuildCounter()
    logging.getLogger("assistant.library").addHandler(counter)
    logging.getLogger("assistant.library").setLevel(logging.INFO)
    started = time.perf_counter()
    run_ingest(settings, embeddings, [path], progress=False)
    ingested = time.perf_counter()
    question = f"《{title}》第一条是怎么规定的？"
    visible = None
    while time.perf_counter() - ingested < 120:
        answer = assistant.ask(question)
        if any(title in str(getattr(c, "title", "")) for c in answer.citations):
            visible = time.perf_counter() - ingested
            break
        time.sleep(0.05)
    logging.getLogger("assistant.library").removeHandler(counter)
    return {
        "add_ingest_s": round(ingested - started, 1),
        "add_visible_s": round(visible, 2) if visible is not None else "未出现",
        "full_rebuilds": counter.builds,
    }
