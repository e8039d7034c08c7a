"""Synthetic large libraries for the scale bench: copies of the real records, new ids, noised vectors.

Every copy ``c`` of the real library gets new record ids (``s{c}-<id>``), its own files
(``<stem>~c{c}<suffix>``), doc ids and titles (``<title>（副本{c}）``), so that it counts as
other documents, and vectors with Gaussian noise (``sigma``) re-normalised, so that no two
copies tie. Views keep pointing at their own copy's parent. Copies are whole documents: the
library is cut at the first document boundary past the requested number of primary chunks.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from assistant.store import PARENT_KEY, is_view

BATCH = 4000  # records per Chroma add (under its max batch size)


@dataclass
class Records:
    """The real library as stored: ids, metadata, texts and vectors, grouped by document."""

    ids: list[str]
    metas: list[dict[str, Any]]
    texts: list[str]
    vectors: np.ndarray
    collection_metadata: dict[str, Any]

    @property
    def chunks(self) -> int:
        return sum(1 for m in self.metas if not is_view(m))

    def by_document(self) -> list[list[int]]:
        docs: dict[str, list[int]] = {}
        for i, meta in enumerate(self.metas):
            docs.setdefault(str(meta.get("file", "")), []).append(i)
        return [docs[k] for k in sorted(docs)]


def export_records(collection: Any) -> Records:
    """Every record of ``collection`` (a real library is small: one ``get``)."""
    got = collection.get(include=["metadatas", "documents", "embeddings"])
    return Records(
        ids=list(got["ids"]),
        metas=[dict(m or {}) for m in got["metadatas"]],
        texts=[t or "" for t in got["documents"]],
        vectors=np.asarray(got["embeddings"], dtype=np.float32),
        collection_metadata=dict(collection.metadata or {}),
    )


def _copy_meta(meta: dict[str, Any], c: int, records: int | None = None) -> dict[str, Any]:
    """``meta`` of copy ``c``; ``records``: the copy's record count when it differs from the real
    document's (a copy without views)."""
    out = dict(meta)
    if records is not None:
        out["doc_records"] = records
    for key in ("file", "superseded_by"):
        value = str(out.get(key) or "")
        if value:
            stem, dot, suffix = value.rpartition(".")
            out[key] = f"{stem}~c{c}.{suffix}" if dot else f"{value}~c{c}"
    out["doc_id"] = f"{out.get('doc_id', '')}~c{c}"
    if out.get("title"):
        out["title"] = f"{out['title']}（副本{c}）"
    if out.get(PARENT_KEY):
        out[PARENT_KEY] = f"s{c}-{out[PARENT_KEY]}"
    return out


def _copies(records: Records, target_chunks: int, views: bool) -> Iterator[tuple[list[int], int]]:
    """(positions of one document's records, copy number), whole documents, until about
    ``target_chunks`` primary chunks (``views=False``: the primary chunks only)."""
    documents = records.by_document()
    if not views:
        documents = [[i for i in d if not is_view(records.metas[i])] for d in documents]
    made = 0
    c = 0
    while made < target_chunks:
        for positions in documents:
            if made >= target_chunks:
                return
            made += sum(1 for i in positions if not is_view(records.metas[i]))
            yield positions, c
        c += 1


def synthesise(
    records: Records, target_chunks: int, *, sigma: float = 0.01, seed: int = 0, views: bool = True
) -> Iterator[tuple[list[str], list[dict[str, Any]], list[str], np.ndarray]]:
    """Batches of (ids, metadatas, texts, vectors) for about ``target_chunks`` primary chunks
    (``views=False``: the primary chunks only, a library ingested without views)."""
    rng = np.random.default_rng(seed)
    batch: list[int] = []
    batch_copy: list[int] = []
    for positions, c in _copies(records, target_chunks, views):
        batch.extend(positions)
        batch_copy.extend([c] * len(positions))
        if len(batch) >= BATCH:
            yield _batch(records, batch, batch_copy, sigma, rng, views)
            batch, batch_copy = [], []
    if batch:
        yield _batch(records, batch, batch_copy, sigma, rng, views)


def manifest_entries(records: Records, target_chunks: int, *, views: bool = True) -> list[Any]:
    """The indexer's manifest (``assistant.manifest``) of the library ``synthesise`` writes, as
    an ingest would have left it: no full scan of a large store is needed to read it per document."""
    from assistant.manifest import DocEntry

    entries = []
    for positions, c in _copies(records, target_chunks, views):
        meta = _copy_meta(records.metas[positions[0]], c)
        chunks = sum(1 for i in positions if not is_view(records.metas[i]))
        entries.append(
            DocEntry(
                str(meta.get("doc_id", "")),
                str(meta.get("file", "")),
                str(meta.get("content_hash", "")),
                str(meta.get("chunker", "")),
                chunks,
                len(positions),
                f"synthetic-{c}",
            )
        )
    return entries


def _batch(
    records: Records,
    positions: list[int],
    copies: list[int],
    sigma: float,
    rng: np.random.Generator,
    views: bool = True,
) -> tuple[list[str], list[dict[str, Any]], list[str], np.ndarray]:
    ids = [f"s{c}-{records.ids[i]}" for i, c in zip(positions, copies, strict=True)]
    # Without views a copy holds only its chunks: its record count says so (as an ingest's would).
    metas = [
        _copy_meta(records.metas[i], c, None if views else records.metas[i].get("doc_chunks"))
        for i, c in zip(positions, copies, strict=True)
    ]
    texts = [records.texts[i] for i in positions]
    vecs = records.vectors[positions] + rng.normal(0.0, sigma, (len(positions), records.vectors.shape[1]))
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    return ids, metas, texts, vecs.astype(np.float32)


def build_store(
    records: Records, folder: Path, target_chunks: int, *, views: bool = True, log: Any = print
) -> dict[str, Any]:
    """Write a synthetic library of about ``target_chunks`` primary chunks into a new embedded
    Chroma folder (the configured collection name, the real collection's metadata)."""
    import chromadb
    import chromadb.config

    from assistant.config import Settings

    folder.mkdir(parents=True, exist_ok=True)
    client = chromadb.PersistentClient(
        path=str(folder), settings=chromadb.config.Settings(anonymized_telemetry=False)
    )
    name = Settings().chroma.collection
    meta = {"hnsw:space": "cosine"} | {
        k: v for k, v in records.collection_metadata.items() if not k.startswith("hnsw:")
    }
    collection = client.get_or_create_collection(name, metadata=meta, embedding_function=None)
    started = time.perf_counter()
    written = 0
    for ids, metas, texts, vecs in synthesise(records, target_chunks, views=views):
        collection.add(ids=ids, metadatas=metas, documents=texts, embeddings=vecs)  # type: ignore[arg-type]
        written += len(ids)
        log(f"  写入 {written} 条记录（{time.perf_counter() - started:.0f} 秒）", flush=True)
    write_manifest(client, collection, records, target_chunks, views=views)
    return {"records": written, "seconds": round(time.perf_counter() - started, 1)}


def write_manifest(
    client: Any, collection: Any, records: Records, target_chunks: int, *, views: bool
) -> None:
    """Give the synthetic store the manifest its writes imply (``manifest_entries``)."""
    from assistant.manifest import reset_manifest

    reset_manifest(client, collection, manifest_entries(records, target_chunks, views=views))


def ensure_manifest(folder: Path) -> None:
    """Give a store the indexer's manifest (``assistant.manifest``) when it has none or it is
    stale, as an ingest would have: one full scan, once."""
    import chromadb
    import chromadb.config

    from assistant.config import Settings
    from ingest.records import stored_by_manifest

    client = chromadb.PersistentClient(
        path=str(folder), settings=chromadb.config.Settings(anonymized_telemetry=False)
    )
    stored_by_manifest(client, client.get_collection(Settings().chroma.collection))
