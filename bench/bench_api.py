"""Latency of the HTTP API: time to first streamed token and time to a full answer.

Runs ~20 questions through

* ``POST /v1/chat/completions`` with ``stream: true``: time until the first
  chunk that carries answer text (time to first token), and until ``[DONE]``;
* ``POST /api/ask``: time until the whole JSON answer has arrived.

Against a running server (``--url http://127.0.0.1:7860``) or, by default, an
in-process server on a free loopback port built from the configured settings
(``policy.toml`` / ``POLICY_*``; run ``policy-assistant ingest`` first).

    .venv/bin/python bench/bench_api.py [--url URL] [--questions N] [--config policy.toml]

Each request carries its own ``X-Remote-User`` (bench-N) so that the per-user
rate limit does not turn the run into a measurement of 429s.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
EVAL_DIR = ROOT.parent / "shared" / "eval"
FALLBACK_QUESTIONS = [
    "政务处分的种类有哪些？",
    "公务员辞去公职需要经过什么程序？",
    "监察机关在调查中可以采取哪些措施？",
    "问责条例规定了哪些问责方式？",
    "讲话对激励干部担当作为提出了哪些要求？",
    "党员受到留党察看处分期间有哪些权利受限？",
    "检举控告应当向哪个机关提出？",
    "组织处理有哪些方式？",
    "公务员考核分为哪几个等次？",
    "监督执纪工作规则对谈话函询有什么规定？",
]


def single_turn_questions(name: str) -> list[str]:
    """The questions without history of one eval file (``EVAL_DIR/name``); [] when it is absent."""
    path = EVAL_DIR / name
    if not path.is_file():
        return []
    items = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [str(i["question"]) for i in items if not i.get("history")]


def load_questions(n: int) -> list[str]:
    """n single-turn questions: rules and speech dev questions interleaved, else a built-in list."""
    sets = [qs for qs in map(single_turn_questions, ("rules_dev.jsonl", "speech_dev.jsonl")) if qs]
    mixed = [q for group in zip(*sets, strict=False) for q in group] if sets else []
    pool = mixed or FALLBACK_QUESTIONS
    return [pool[i % len(pool)] for i in range(n)]


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * p
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def describe(name: str, values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return (
        f"{name:<42} n={len(ms):>3}  p50={pct(ms, 0.5):8.0f} ms  p95={pct(ms, 0.95):8.0f} ms  "
        f"mean={statistics.fmean(ms):8.0f} ms  max={max(ms):8.0f} ms"
    )


def stream_once(client: httpx.Client, url: str, question: str, user: str) -> tuple[float, float, int]:
    """(time to first text chunk, time to [DONE], number of text chunks)."""
    body = {"messages": [{"role": "user", "content": question}], "stream": True}
    t0 = time.perf_counter()
    first: float | None = None
    pieces = 0
    with client.stream("POST", url + "/v1/chat/completions", json=body, headers={"X-Remote-User": user}) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if not line.startswith("data: "):
                continue
            data = line[6:]
            if data == "[DONE]":
                break
            obj = json.loads(data)
            if obj["choices"][0]["delta"].get("content"):
                pieces += 1
                if first is None:
                    first = time.perf_counter() - t0
    total = time.perf_counter() - t0
    return (first if first is not None else total), total, pieces


def ask_once(client: httpx.Client, url: str, question: str, user: str) -> float:
    t0 = time.perf_counter()
    r = client.post(url + "/api/ask", json={"question": question}, headers={"X-Remote-User": user})
    r.raise_for_status()
    r.json()
    return time.perf_counter() - t0


@contextmanager
def local_server(config: str | None) -> Iterator[str]:
    import uvicorn

    from assistant.config import load_settings
    from assistant.service import build_assistant
    from ui.app import create_app

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    settings = load_settings(config)
    server_cfg = settings.server.model_copy(update={"port": port, "host": "127.0.0.1"})
    settings = settings.model_copy(update={"server": server_cfg})
    t0 = time.perf_counter()
    app = create_app(settings, build_assistant(settings))
    print(f"in-process server built in {time.perf_counter() - t0:.1f} s", flush=True)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def run(url: str, questions: list[str]) -> None:
    with httpx.Client(timeout=300) as client:
        stream_once(client, url, questions[0], "bench-warmup")  # model and caches warm
        ttft, stream_total, asks = [], [], []
        chunk_counts = []
        for i, q in enumerate(questions):
            first, total, pieces = stream_once(client, url, q, f"bench-s{i}")
            ttft.append(first)
            stream_total.append(total)
            chunk_counts.append(pieces)
        for i, q in enumerate(questions):
            asks.append(ask_once(client, url, q, f"bench-a{i}"))
    print(f"server: {url}   questions: {len(questions)}   cpu threads: {os.cpu_count()}")
    print(describe("/v1/chat/completions stream: first token", ttft))
    print(describe("/v1/chat/completions stream: [DONE]", stream_total))
    print(describe("/api/ask: full answer", asks))
    print(f"text chunks per streamed answer: median {statistics.median(chunk_counts):.0f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--url", help="a running server; default: start one in process")
    parser.add_argument("--questions", type=int, default=20)
    parser.add_argument("--config", help="TOML settings file for the in-process server")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    questions = load_questions(args.questions)
    if args.url:
        run(args.url.rstrip("/"), questions)
    else:
        sys.path.insert(0, str(ROOT))
        with local_server(args.config) as url:
            run(url, questions)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
