"""``library.*`` settings: how the served library follows the store, and what a large one keeps
in memory (split from ``assistant.config``, which re-exports it; each item says what it trades)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel


class LibrarySettings(BaseModel):
    # How often (seconds) the served library compares itself with the store's fingerprint.
    # 0: before every question (a re-ingest is seen at once; three cheap store reads per
    # question). Only up to inline_check_max_chunks chunks: larger libraries use poll_interval_s.
    refresh_interval_s: float = 0.0
    # Above this many chunks questions never read the fingerprint themselves (~70 ms at 200k):
    # a background thread does, every poll_interval_s. Below, a change is seen by the next question.
    inline_check_max_chunks: int = 20_000
    # The background check's period (0: none; large libraries are then checked by questions):
    # shorter sees an ingest sooner, costs one collection lookup (~1 ms) per period.
    poll_interval_s: float = 0.25
    # The background check re-reads the record count (~70 ms at 743k records) at most this often
    # while the generation is unchanged: only a writer bypassing the indexer is seen this much later.
    poll_count_max_age_s: float = 10.0
    # Up to this many chunks a term's document frequency (the re-ranker's IDF weights) is counted
    # exactly; above, in an evenly strided sample of this many chunks and scaled (a term the sample
    # misses is counted exactly): ~10x less time per new term at 200k, for an estimated IDF.
    doc_freq_sample_chunks: int = 20_000
    # Up to this many vectors (chunks + views) a snapshot copies them into one array in memory
    # (fastest exact scan); above, they stay in the saved snapshot's files (rows read on demand)
    # plus each new document's own array: no copy at start or per update, a slower exact scan.
    in_memory_max_vectors: int = 200_000
    # A store call slower than this counts as unreachable: the last snapshot keeps serving.
    store_timeout_s: float = 5.0
    # The first load, with no snapshot to serve yet, waits this long for the store instead: a
    # large store's first read is slow (a Chroma server loading a 200k-chunk HNSW took > 5 s);
    # longer lets a slow start succeed, shorter reports a dead store sooner.
    first_load_timeout_s: float = 120.0
    # Save each snapshot to disk and start from it: a restart reads only what changed, at the
    # cost of a copy of the library (vectors, texts, BM25) on disk.
    save_snapshot: bool = True
    # Where snapshots are saved (one folder per collection). Empty: "library_index" next to
    # chroma.persist_dir.
    snapshot_dir: Path | None = None
