"""Benchmark: ingest the whole library into a fresh temporary store.

Prints model load time, first ingest time and chunks/s, the time of a second
(unchanged) ingest, and peak RSS. Usage::

    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_ingest.py [--library ../shared/corpus]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))


def _peak_rss_mb() -> float:
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--library", type=Path, default=REPO_ROOT.parent / "shared" / "corpus")
    args = parser.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

    from assistant.config import ChromaSettings, IngestSettings, Settings
    from assistant.embeddings import build_embeddings
    from ingest.indexer import run_ingest

    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        settings = Settings(
            chroma=ChromaSettings(persist_dir=Path(tmp) / "chroma"),
            ingest=IngestSettings(library_dirs=[args.library]),
        )
        started = time.perf_counter()
        embeddings = build_embeddings(settings)
        load_s = time.perf_counter() - started
        rss_after_load = _peak_rss_mb()

        first = run_ingest(settings, embeddings, progress=False)
        second = run_ingest(settings, embeddings, progress=False)

    rate = first.chunks_embedded / first.seconds if first.seconds else 0.0
    print(f"model                 {getattr(embeddings, 'model_name', type(embeddings).__name__)}")
    print(f"torch threads         {settings.embedding.threads} (dtype {settings.embedding.dtype})")
    print(f"model load            {load_s:.1f} s (peak RSS {rss_after_load:.0f} MB)")
    print(
        f"first ingest          {first.seconds:.1f} s, {first.documents_added} documents, "
        f"{first.chunks_embedded} chunks, {rate:.1f} chunks/s"
    )
    print(f"second ingest         {second.seconds:.2f} s, {second.chunks_embedded} chunks re-embedded")
    print(f"peak RSS              {_peak_rss_mb():.0f} MB")
    print(f"load average (1 min)  {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    if first.errors or first.skipped:
        print(f"errors {first.errors} skipped {first.skipped}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
