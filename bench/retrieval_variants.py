"""The retrievers ``bench_retrieval.py`` compares with the hybrid one: the naive baseline
(250-character windows, dense only, in a temporary Chroma collection), the hybrid retriever with
fewer views, and dense / BM25 / RRF ablations over our chunks; and the decline figures.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings

from assistant.config import Settings
from assistant.scoring import condensed_query

Retrieve = Callable[[str], Sequence[Document]]


# ------------------------------------------------------------------ baseline


def baseline_windows(settings: Settings, size: int = 250, overlap: int = 50) -> list[Document]:
    """The library cut into fixed windows (the naive splitter), no structure, no prefixes."""
    from ingest.loaders import LoadError, discover_files, load_file

    docs: list[Document] = []
    step = size - overlap
    for path in discover_files(list(settings.ingest.library_dirs), settings.ingest):
        try:
            loaded = load_file(path, settings.ingest)
        except LoadError as exc:
            print(f"跳过 {path.name}：{exc}")
            continue
        text = loaded.text
        for n, start in enumerate(range(0, max(len(text) - overlap, 1), step)):
            piece = text[start : start + size]
            if piece.strip():
                meta = {"file": loaded.file, "title": loaded.metadata.get("title", ""), "start": start}
                docs.append(Document(page_content=piece, metadata=meta, id=f"{loaded.doc_id}-{n}"))
    return docs


def baseline_retriever(
    settings: Settings, embeddings: Embeddings, k: int, cache: Path | None, workdir: Path
) -> Retrieve:
    import chromadb
    import numpy as np

    windows = baseline_windows(settings)
    texts = [d.page_content for d in windows]
    key = hashlib.sha256(
        ("\x00".join(texts) + str(getattr(embeddings, "model_name", ""))).encode()
    ).hexdigest()
    vectors: Any = None
    if cache is not None and cache.is_file():
        stored = np.load(cache)
        if str(stored["key"]) == key:
            vectors = stored["vectors"]
    if vectors is None:
        print(f"基线：嵌入 {len(texts)} 个 250 字窗口 …", flush=True)
        vectors = np.asarray(embeddings.embed_documents(texts), dtype=np.float32)
        if cache is not None:
            np.savez(cache, key=np.array(key), vectors=vectors)
    client = chromadb.PersistentClient(
        path=str(workdir / "baseline"), settings=chromadb.config.Settings(anonymized_telemetry=False)
    )
    collection = client.create_collection(
        "baseline", metadata={"hnsw:space": "cosine"}, embedding_function=None
    )
    for start in range(0, len(windows), 500):
        part = windows[start : start + 500]
        collection.add(
            ids=[str(d.id) for d in part],
            embeddings=vectors[start : start + 500].tolist(),
            documents=[d.page_content for d in part],
            metadatas=[d.metadata for d in part],
        )

    def retrieve(query: str) -> list[Document]:
        qvec = np.asarray([embeddings.embed_query(query)], dtype=np.float32)
        found = collection.query(query_embeddings=qvec, n_results=k, include=["documents", "metadatas"])
        docs = found["documents"] or [[]]
        metas = found["metadatas"] or [[]]
        return [
            Document(page_content=t or "", metadata=dict(m or {}))
            for t, m in zip(docs[0], metas[0], strict=True)
        ]

    return retrieve


# ------------------------------------------------------------------ ablations


def ablation(retriever: Any, mode: str, k: int) -> Retrieve:
    """dense-only / bm25-only / rrf over our chunks, from the retriever's own index."""
    import numpy as np

    def retrieve(query: str) -> list[Document]:
        index = retriever.index.current()
        qvec = np.asarray(retriever.embeddings.embed_query(query), dtype=np.float32)
        qvec /= float(np.linalg.norm(qvec)) or 1.0
        dense = index.vectors @ qvec
        tokens = index.tokenizer.tokenize(query)
        bm25 = index.bm25.get_scores(tokens) if (index.bm25 is not None and tokens) else np.zeros(len(dense))
        if mode == "dense":
            order = list(np.argsort(-dense))
        elif mode == "bm25":
            order = list(np.argsort(-bm25))
        else:
            fused: dict[int, float] = {}
            for ranking in (np.argsort(-dense)[:30], np.argsort(-bm25)[:30]):
                for rank, i in enumerate(ranking):
                    fused[int(i)] = fused.get(int(i), 0.0) + 1.0 / (60 + rank)
            order = sorted(fused, key=lambda i: -fused[i])
        return [index.chunks[int(i)] for i in order[:k]]

    return retrieve


def view_ablation(retriever: Any, scope: str, k: int) -> Retrieve:
    """The hybrid retriever with no views ("none") or only the views of chunks without an article ("prose")."""
    import numpy as np

    def retrieve(query: str) -> Sequence[Document]:
        index = retriever.index.current()
        if scope == "none":
            keep = np.zeros(len(index.view_parent), dtype=bool)
        else:
            keep = np.array(
                [not index.chunks[p].metadata.get("article") for p in index.view_parent], dtype=bool
            )
        fewer = dataclasses.replace(
            index,
            view_vectors=index.view_vectors[keep],
            view_parent=index.view_parent[keep],
            view_span=index.view_span[keep],
        )
        return list(retriever.search(query, k=k, library=fewer))

    return retrieve


def decline_figures(items: list[dict[str, Any]], retrieve: Retrieve) -> str:
    """Best dense_score (and view_score) in the top 5: answerable vs unanswerable / injection items."""
    groups: dict[str, list[tuple[float, float]]] = {"answerable": [], "unanswerable/injection": []}
    for item in items:
        docs = retrieve(condensed_query(item))
        if not docs:
            continue
        best = (
            max(float(d.metadata["dense_score"]) for d in docs),
            max(float(d.metadata.get("view_score", d.metadata["dense_score"])) for d in docs),
        )
        negative = item["type"] in ("unanswerable", "injection")
        groups["unanswerable/injection" if negative else "answerable"].append(best)
    lines = []
    for name, values in groups.items():
        if not values:
            continue
        own = sorted(v[0] for v in values)
        view = sorted(v[1] for v in values)
        lines.append(
            f"{name:24s} n={len(values):3d}  dense_score min {own[0]:.3f} p50 {own[len(own) // 2]:.3f} "
            f"max {own[-1]:.3f} | view_score min {view[0]:.3f} max {view[-1]:.3f}"
        )
    return "\n".join(lines)
