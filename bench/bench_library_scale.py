"""The library index on a large synthetic store: load time, memory per chunk, one-document update.

Usage:
  .venv/bin/python bench/bench_library_scale.py build --source /tmp/copy-of-chroma --target /tmp/scale --chunks 50000
  .venv/bin/python bench/bench_library_scale.py measure --target /tmp/scale [--snapshots /tmp/scale-snap]

``build`` copies the source store's records (chunks and views) under new ids and doc_ids until
the target holds ``--chunks`` primary chunks, with slightly noised vectors, and writes the
manifest (``assistant.manifest``) when this checkout has one. ``measure`` (run it in a fresh
process) loads the library index from the store and prints the time and the RSS growth per chunk;
with a manifest it also times a one-document change (refresh), saving the snapshot, and a
restart from the saved snapshot; ``--offset-paging`` times the old offset-paged read of every record.
"""

from __future__ import annotations

import argparse
import gc
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from assistant.config import Settings
from assistant.library import LibraryIndex
from assistant.library_store import LibraryStore
from assistant.store import mark_changed, open_client, open_collection
from assistant.tokenizer import DomainTokenizer

REPO = Path(__file__).resolve().parents[1]


def _settings(persist: Path) -> Settings:
    base = Settings()
    return base.model_copy(update={"chroma": base.chroma.model_copy(update={"persist_dir": persist})})


def _rss_mb() -> float:
    gc.collect()
    return psutil.Process().memory_info().rss / 2**20


def build(source: Path, target: Path, chunks: int) -> None:
    src = open_collection(open_client(_settings(source)), _settings(source), None)
    got = src.get(include=["metadatas", "documents", "embeddings"])  # type: ignore[list-item]
    records = list(
        zip(got["ids"], got["metadatas"] or [], got["documents"] or [], got["embeddings"], strict=True)
    )
    per_copy = sum(1 for _, m, _, _ in records if (m or {}).get("view") != "window")
    client = open_client(_settings(target))
    dst = open_collection(client, _settings(target), str((src.metadata or {}).get("embedding_model") or ""))
    rng = np.random.default_rng(0)
    copies = -(-chunks // per_copy)
    by_doc: dict[str, dict[str, Any]] = {}
    for k in range(copies):
        ids, metas, texts, vecs = [], [], [], []
        for rid, meta, text, vec in records:
            meta = dict(meta or {})
            doc_id = f"c{k}-{meta.get('doc_id', '')}"
            meta.update(doc_id=doc_id, file=f"c{k}-{meta.get('file', '')}")
            if meta.get("parent_id"):
                meta["parent_id"] = f"c{k}-{meta['parent_id']}"
            ids.append(f"c{k}-{rid}")
            metas.append(meta)
            texts.append(text)
            vecs.append((np.asarray(vec) + rng.normal(0, 0.01, len(vec))).tolist())
            entry = by_doc.setdefault(doc_id, {"meta": meta, "chunks": 0, "records": 0})
            entry["records"] += 1
            entry["chunks"] += meta.get("view") != "window"
        for start in range(0, len(ids), 2000):
            dst.add(
                ids=ids[start : start + 2000],
                metadatas=metas[start : start + 2000],  # type: ignore[arg-type]
                documents=texts[start : start + 2000],
                embeddings=vecs[start : start + 2000],  # type: ignore[arg-type]
            )
        print(f"copy {k + 1}/{copies}: {dst.count()} records", flush=True)
    try:
        from assistant.manifest import DocEntry, reset_manifest
    except ImportError:
        pass
    else:
        entries = [
            DocEntry(d, str(e["meta"].get("file", "")), str(e["meta"].get("content_hash", "")),
                     str(e["meta"].get("chunker", "")), e["chunks"], e["records"], uuid.uuid4().hex)
            for d, e in by_doc.items()
        ]  # fmt: skip
        reset_manifest(client, dst, entries)
    mark_changed(dst)


def measure(target: Path, snapshots: Path | None, offset_paging: bool) -> None:
    settings = _settings(target)
    tokenizer = DomainTokenizer(REPO / "corpus" / "userdict.txt")
    tokenizer.warm_up()
    client = open_client(settings)
    store = LibraryStore(client, settings.chroma.collection)
    if offset_paging and hasattr(store, "all_records"):
        t = time.perf_counter()
        store.all_records()
        print(f"offset-paged read of every record: {time.perf_counter() - t:.1f} s")
    before = _rss_mb()
    index = LibraryIndex(store, settings.library, tokenizer, *([snapshots] if snapshots else []))
    t = time.perf_counter()
    lib = index.refresh()
    loaded = time.perf_counter() - t
    after = _rss_mb()
    n = len(lib.chunks)
    print(f"load: {n} chunks, {len(lib.view_parent)} views in {loaded:.1f} s")
    print(f"RSS +{after - before:.0f} MB = {1024 * (after - before) / max(n, 1):.1f} KB per chunk")
    if not hasattr(store, "manifest"):
        return
    if snapshots is not None:
        t = time.perf_counter()
        index.wait_saved(timeout=600)
        print(f"snapshot saved in the background (waited {time.perf_counter() - t:.1f} s)")
    # One document changes: its chunks get a new text, the manifest a new stamp.
    from assistant.manifest import write_entries

    collection = store.collection()
    entries = store.manifest() or {}
    doc_id, entry = sorted(entries.items())[len(entries) // 2]
    got = collection.get(where={"doc_id": doc_id}, include=["metadatas", "documents", "embeddings"])  # type: ignore[list-item]
    collection.upsert(
        ids=got["ids"],
        metadatas=got["metadatas"],  # type: ignore[arg-type]
        documents=[f"{d}（修订）" for d in got["documents"] or []],
        embeddings=got["embeddings"],  # type: ignore[arg-type]
    )
    write_entries(client, collection, [type(entry)(**{**entry.__dict__, "stamp": uuid.uuid4().hex})])
    mark_changed(collection)
    t = time.perf_counter()
    lib = index.refresh()
    print(f"one document changed ({entry.chunks} chunks): refresh {time.perf_counter() - t:.2f} s")
    if snapshots is not None:
        index.wait_saved(timeout=600)
        restarted = LibraryIndex(store, settings.library, tokenizer, snapshots)
        t = time.perf_counter()
        again = restarted.refresh()
        print(
            f"restart from the saved snapshot: {time.perf_counter() - t:.1f} s ({len(again.chunks)} chunks)"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=("build", "measure"))
    parser.add_argument("--source", type=Path)
    parser.add_argument("--target", type=Path, required=True)
    parser.add_argument("--chunks", type=int, default=50_000)
    parser.add_argument("--snapshots", type=Path)
    parser.add_argument("--offset-paging", action="store_true")
    args = parser.parse_args()
    if args.command == "build":
        build(args.source, args.target, args.chunks)
    else:
        measure(args.target, args.snapshots, args.offset_paging)


if __name__ == "__main__":
    main()
