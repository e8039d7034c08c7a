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
    """The synthetic library of ``bench/synthetic_library.py`` (one implementation for both
    scale benches), with the manifest an ingest would have written."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bench.synthetic_library import build_store, ensure_manifest, export_records

    src = open_collection(open_client(_settings(source)), _settings(source), None)
    build_store(export_records(src), target, chunks)
    ensure_manifest(target)


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
