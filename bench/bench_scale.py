"""How the assistant scales with the library: startup, memory, retrieval and answer latency,
adding one document, and Chroma's own (HNSW) query, on synthetic libraries of N chunks.

    .venv/bin/python bench/bench_scale.py [--sizes 10000,50000,200000] [--work /tmp/pa-scale]
        [--questions 60] [--no-views]

The real library (the configured store, ``policy-assistant ingest`` first) is measured as the
baseline row of the same run. Every other row is a synthetic library built once into
``--work`` by copying the real records with new ids and noised vectors
(``bench/synthetic_library.py``), and measured in a fresh process of its own (so that
startup and RSS are that process's): ``bench_scale.py measure --store DIR``.

Latencies use the eval questions (single-turn, ``../shared/eval``) with query vectors embedded
before the clock starts, so they show the library's cost, not the model's (one query
embedding is ~70 ms with native bf16, ~250 ms in float32 on a 2-core AVX2 machine; see
``bench/bench_load.py`` for batching). A size whose estimated memory exceeds what this
machine has is skipped with the estimate.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

T0 = time.perf_counter()
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.scale_measure import measure  # noqa: E402

# ---------------------------------------------------------------- the run


def _estimate_mb(rows: list[dict[str, Any]], chunks: int) -> float:
    """RSS extrapolated linearly from the two largest libraries measured (0 before there are two)."""
    if len(rows) < 2:
        return 0.0
    (a, b) = rows[-2:]
    rss_a, rss_b = (float(str(r["rss_mb"]).split()[0]) for r in (a, b))
    per_chunk = (rss_b - rss_a) / max(1, b["chunks"] - a["chunks"])
    return rss_b + per_chunk * (chunks - b["chunks"])


def _start_chroma(store: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A ``chroma run`` serving ``store`` on a free port; returns once its heartbeat answers."""
    import socket
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    exe = Path(sys.executable).with_name("chroma")
    log = (store.parent / f"{store.name}-server.log").open("wb")
    proc = subprocess.Popen(
        [str(exe), "run", "--path", str(store), "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=os.environ | {"ANONYMIZED_TELEMETRY": "False"},
    )
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=2):
                return proc, f"127.0.0.1:{port}"
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit(f"chroma run 未能启动（{store}）：见 {log.name}")


def _rss_of(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _run_measure(
    store: Path, args: argparse.Namespace, questions: int | None = None, server: str = ""
) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__)), "measure", "--store", str(store)]
    n = args.questions if questions is None else questions
    cmd += ["--questions", str(n), "--cache", str(args.work / "qvec.pkl")]
    if server:
        cmd += ["--server", server]
    env = os.environ | {"HF_HUB_OFFLINE": "1", "ANONYMIZED_TELEMETRY": "False"}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    if out.returncode != 0:
        print(out.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"测量失败：{store}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def _measure_store(store: Path, args: argparse.Namespace) -> dict[str, Any]:
    """One library: the measured run (a first start), then a restart (the saved library index).
    With ``--chroma-server`` both talk to one ``chroma run``, started here: the restart is the
    assistant's, against a Chroma server that keeps running (the server's own cold start, loading
    its HNSW index on the first read, is in the first run's startup)."""
    server = None
    address = ""
    if args.chroma_server:
        server, address = _start_chroma(store)
    try:
        row = _run_measure(store, args, server=address)
        again = _run_measure(store, args, questions=0, server=address)
        server_rss = _rss_of(server.pid) if server is not None else 0.0
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=60)
    row["restart_s"] = f"{again['startup_s']} ({again['model_load_s']} / {again['index_load_s']})"
    row["restart_rss_mb"] = again["rss_mb"]
    if server is not None:
        row["rss_mb"] = f"{row['rss_mb']} + 服务 {server_rss:.0f}"
    return row


def _table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| chunks | vectors | startup s (model / index) | RSS MB | retrieval p50/p95 ms | answer p50/p95 ms "
        "| dense / BM25 p50 ms | Chroma query p50 ms | HNSW recall@30 at ef, 4·ef (any copy) | add one doc: ingest / answerable s "
        "| full rebuilds | restart s (model / index) / RSS MB |"
    )
    lines = [head, "|---" * 12 + "|"]
    for r in rows:
        lines.append(
            f"| {r['chunks']} | {r['vectors']} | {r['startup_s']} ({r['model_load_s']} / {r['index_load_s']}) "
            f"| {r['rss_mb']} | {r['retrieval_p50']:.0f} / {r['retrieval_p95']:.0f} "
            f"| {r['answer_p50']:.0f} / {r['answer_p95']:.0f} | {r['dense_p50']:.1f} / {r['bm25_p50']:.1f} "
            f"| {r['chroma_p50']:.1f} | {r['hnsw_recall']:.2f} / {r.get('hnsw_recall_ef4x', 0):.2f} "
            f"({r.get('hnsw_recall_content', 0):.2f} / {r.get('hnsw_recall_content_ef4x', 0):.2f}) | {r['add_ingest_s']} / {r['add_visible_s']} "
            f"| {r['full_rebuilds']} | {r.get('restart_s', '–')} / {r.get('restart_rss_mb', '–')} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("mode", nargs="?", default="run", choices=["run", "measure"])
    parser.add_argument(
        "--sizes", default="10000,50000,200000", help="synthetic library sizes (primary chunks)"
    )
    parser.add_argument(
        "--work", type=Path, default=Path("/tmp/pa-scale"), help="scratch folder for the stores"
    )
    parser.add_argument("--questions", type=int, default=60, help="eval questions timed per library")
    parser.add_argument("--store", type=Path, help="(measure) the Chroma folder to measure")
    parser.add_argument("--cache", type=Path, help="(measure) query vector cache")
    parser.add_argument("--server", default="", help="(measure) host:port of a chroma run serving --store")
    parser.add_argument(
        "--chroma-server",
        action="store_true",
        help="measure each store through `chroma run` instead of embedded",
    )
    parser.add_argument("--max-rss-gb", type=float, default=20.0, help="skip sizes estimated above this")
    parser.add_argument(
        "--no-views",
        action="store_true",
        help="synthetic copies of the primary chunks only (a library ingested without views: ~1/5 of the records)",
    )
    args = parser.parse_args(argv)
    if args.mode == "measure":
        print(json.dumps(measure(args.store, args.questions, args.cache, args.server, started=T0)))
        return 0

    import shutil

    from assistant.config import load_settings
    from bench.synthetic_library import build_store, export_records

    args.work.mkdir(parents=True, exist_ok=True)
    settings = load_settings()
    real = Path(settings.chroma.persist_dir).expanduser()
    base = args.work / "real"  # a copy: the scale run adds a document to every store it measures
    if base.exists():
        shutil.rmtree(base)
    shutil.copytree(real, base, ignore=shutil.ignore_patterns(".policy-assistant.lock"))
    import chromadb
    import chromadb.config

    # Read before any measurement writes to the copy (a stale embedded client fails to read after).
    client = chromadb.PersistentClient(
        path=str(base), settings=chromadb.config.Settings(anonymized_telemetry=False)
    )
    records = export_records(client.get_collection(settings.chroma.collection))
    print(f"基线：真实资料库 {real}", flush=True)
    rows = [_measure_store(base, args)]
    print(_table(rows), flush=True)
    for size in [int(s) for s in args.sizes.split(",") if s.strip()]:
        estimate = _estimate_mb(rows, size)
        if estimate > args.max_rss_gb * 1024:
            print(
                f"跳过 {size}：估计内存 {estimate / 1024:.1f} GB，超过 --max-rss-gb {args.max_rss_gb}",
                flush=True,
            )
            continue
        store = args.work / (f"n{size}-noviews" if args.no_views else f"n{size}")
        marker = store / "built.json"
        if not marker.is_file():
            if store.exists():
                shutil.rmtree(store)
            print(f"生成 {size} 个文本块的合成资料库 → {store}", flush=True)
            built = build_store(records, store, size, views=not args.no_views)
            marker.write_text(json.dumps(built))
        print(f"测量 {size}…", flush=True)
        rows.append(_measure_store(store, args))
        print(_table(rows), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
