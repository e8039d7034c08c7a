"""Load: N concurrent clients for D seconds on POST /api/ask and streamed /v1/chat/completions.

Each client alternates the two endpoints (even clients start with /api/ask) and asks the
next question of the pool: the single-turn eval questions (train, speech_dev, rules_dev,
deduplicated), cycled; with ``--distinct`` every question is asked at most once and the
run ends early when they are used up.

Prints requests, errors, throughput, latency p50/p95/p99 per endpoint, the streamed
time to the first chunk carrying answer text, the server's peak RSS, and whether every
concurrent answer (text + citations) equals the same question asked alone: by default
every question is first asked once, sequentially (``--reference first``; those figures
are printed too). That pass also fills the server's query-vector cache: the load then
runs on repeats only. ``--reference last`` asks them after the load instead, so the load
starts cold; requests are split into first asks of a question and repeats either way,
so the cache's share is visible (start the server with
``POLICY_EMBEDDING__QUERY_CACHE_SIZE=0`` for a run without the cache).

The server is ``--url`` (its RSS needs ``--pid``) or, by default, a subprocess started
here: ``python -m policy_cli serve`` from ``--checkout`` (default: this checkout; point it
at another checkout to measure that code), with the POLICY_* environment of this
command. Its store is the configured one: an embedded Chroma folder admits one process,
so give it a copy (``POLICY_CHROMA__PERSIST_DIR=/tmp/copy/chroma``).

    .venv/bin/python bench/bench_load.py [--clients 32] [--duration 60] [--checkout DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from bench_api import ROOT, pct, single_turn_questions
from load_server import RssWatch, subprocess_server

Key = tuple[str, str]  # (answer text, citations as JSON)


@dataclass
class Result:
    question: str
    endpoint: str  # "ask" | "stream"
    ok: bool
    seconds: float
    first_chunk: float | None = None
    key: Key | None = None
    repeat: bool = False
    error: str = ""


@dataclass
class Run:
    results: list[Result] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    next_index: int = 0


def eval_questions() -> list[str]:
    names = ("train.jsonl", "speech_dev.jsonl", "rules_dev.jsonl")
    return list(dict.fromkeys(q for name in names for q in single_turn_questions(name)))


def answer_key(text: str, citations: list[Any]) -> Key:
    return text, json.dumps(citations, ensure_ascii=False, sort_keys=True)


async def ask(client: httpx.AsyncClient, question: str, user: str) -> Result:
    t0 = time.perf_counter()
    try:
        r = await client.post("/api/ask", json={"question": question}, headers={"X-Remote-User": user})
        if r.status_code != 200:
            return Result(question, "ask", False, time.perf_counter() - t0, error=f"HTTP {r.status_code}")
        body = r.json()
        key = answer_key(body["text"], body["citations"])
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        return Result(question, "ask", False, time.perf_counter() - t0, error=type(exc).__name__)
    return Result(question, "ask", True, time.perf_counter() - t0, key=key)


async def stream(client: httpx.AsyncClient, question: str, user: str) -> Result:
    body = {"messages": [{"role": "user", "content": question}], "stream": True}
    t0 = time.perf_counter()
    first: float | None = None
    key: Key | None = None
    try:
        async with client.stream(
            "POST", "/v1/chat/completions", json=body, headers={"X-Remote-User": user}
        ) as r:
            if r.status_code != 200:
                return Result(
                    question, "stream", False, time.perf_counter() - t0, error=f"HTTP {r.status_code}"
                )
            async for line in r.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                obj = json.loads(line[6:])
                choice = obj["choices"][0]
                if first is None and choice["delta"].get("content"):
                    first = time.perf_counter() - t0
                if choice["finish_reason"] == "error":
                    return Result(question, "stream", False, time.perf_counter() - t0, error="stream error")
                if choice["finish_reason"] == "stop":
                    key = answer_key(obj["policy_answer"]["text"], obj["citations"])
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        return Result(question, "stream", False, time.perf_counter() - t0, error=type(exc).__name__)
    seconds = time.perf_counter() - t0
    if key is None:
        return Result(question, "stream", False, seconds, error="no final chunk")
    return Result(
        question, "stream", True, seconds, first_chunk=first if first is not None else seconds, key=key
    )


async def reference(url: str, questions: list[str]) -> tuple[dict[str, Key], list[float]]:
    """Every question asked once, alone: its answer key and the latencies."""
    answers: dict[str, Key] = {}
    latencies: list[float] = []
    async with httpx.AsyncClient(base_url=url, timeout=300) as client:
        for i, q in enumerate(questions):
            res = await ask(client, q, f"ref-{i}")
            if res.ok and res.key is not None:
                answers[q] = res.key
                latencies.append(res.seconds)
            else:
                print(f"reference failed ({res.error}): {q}", flush=True)
    return answers, latencies


async def load(url: str, pool: list[str], clients: int, duration: float, distinct: bool, run: Run) -> float:
    end = time.perf_counter() + duration
    limits = httpx.Limits(max_connections=clients + 4, max_keepalive_connections=clients + 4)

    async def client_loop(n: int, client: httpx.AsyncClient) -> None:
        turn = n % 2
        while time.perf_counter() < end:
            if distinct and run.next_index >= len(pool):
                return
            q = pool[run.next_index % len(pool)]
            run.next_index += 1
            repeat = q in run.seen
            run.seen.add(q)
            call = ask if turn == 0 else stream
            res = await call(client, q, f"load-{n}")
            res.repeat = repeat
            run.results.append(res)
            turn ^= 1

    t0 = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as client:
        await asyncio.gather(*(client_loop(n, client) for n in range(clients)))
    return time.perf_counter() - t0


def figures(name: str, values: list[float]) -> str:
    if not values:
        return f"{name:<34} n=  0"
    ms = [v * 1000 for v in values]
    return f"{name:<34} n={len(ms):>5}  p50={pct(ms, 0.5):7.0f} ms  p95={pct(ms, 0.95):7.0f} ms  p99={pct(ms, 0.99):7.0f} ms"


def report(
    run: Run, wall: float, refs: dict[str, Key], ref_lat: list[float], watch: RssWatch, clients: int
) -> None:
    res = run.results
    ok = [r for r in res if r.ok]
    errors = [r for r in res if not r.ok]
    print(f"clients {clients}   wall {wall:.1f} s   cpu threads {os.cpu_count()}")
    print(f"requests {len(res)}   errors {len(errors)}   throughput {len(ok) / wall:.1f} req/s (ok answers)")
    if errors:
        kinds: dict[str, int] = {}
        for r in errors:
            kinds[r.error] = kinds.get(r.error, 0) + 1
        print(f"error kinds: {kinds}")
    if ref_lat:
        print(figures("alone (reference pass) /api/ask", ref_lat))
    print(figures("/api/ask", [r.seconds for r in ok if r.endpoint == "ask"]))
    print(
        figures(
            "stream: first answer chunk", [r.first_chunk or r.seconds for r in ok if r.endpoint == "stream"]
        )
    )
    print(figures("stream: complete", [r.seconds for r in ok if r.endpoint == "stream"]))
    repeats = [r for r in ok if r.repeat]
    firsts = [r for r in ok if not r.repeat]
    print(f"repeats: {len(repeats)} of {len(ok)} ok requests asked a question the bench had asked before")
    print(figures("first asks (cold) /api/ask", [r.seconds for r in firsts if r.endpoint == "ask"]))
    print(
        figures(
            "first asks (cold) stream first chunk",
            [r.first_chunk or 0.0 for r in firsts if r.endpoint == "stream"],
        )
    )
    print(figures("repeats /api/ask", [r.seconds for r in repeats if r.endpoint == "ask"]))
    print(
        figures(
            "repeats stream first chunk", [r.first_chunk or 0.0 for r in repeats if r.endpoint == "stream"]
        )
    )
    compared = [r for r in ok if r.question in refs]
    differ = [r for r in compared if r.key != refs[r.question]]
    print(f"identical to the question asked alone: {len(compared) - len(differ)} of {len(compared)} compared")
    for r in differ[:3]:
        print(f"  DIFFERS ({r.endpoint}): {r.question}")
    if watch.proc is not None:
        mb = 1024 * 1024
        print(
            f"server RSS: peak during run {watch.peak / mb:.0f} MB, lifetime peak (VmHWM) {watch.high_water() / mb:.0f} MB"
        )


async def bench(url: str, pid: int | None, args: argparse.Namespace) -> None:
    pool = eval_questions()
    print(f"{len(pool)} distinct single-turn questions; mode {'distinct' if args.distinct else 'cycled'}")
    async with httpx.AsyncClient(base_url=url, timeout=300) as client:
        await ask(client, "政务处分的种类有哪些？", "warmup")  # model and snapshot warm
    run = Run()
    refs: dict[str, Key] = {}
    ref_lat: list[float] = []
    if args.reference == "first":
        refs, ref_lat = await reference(url, pool)
        run.seen.update(refs)
    with RssWatch(pid) as watch:
        wall = await load(url, pool, args.clients, args.duration, args.distinct, run)
    if args.reference == "last":
        refs, ref_lat = await reference(url, sorted({r.question for r in run.results}))
    report(run, wall, refs, ref_lat, watch, args.clients)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--url", help="a running server; default: start one from --checkout")
    parser.add_argument("--pid", type=int, help="with --url: the server's process id (for its RSS)")
    parser.add_argument("--checkout", type=Path, default=ROOT, help="the code the started server runs")
    parser.add_argument("--port", type=int, default=7871)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    parser.add_argument("--distinct", action="store_true", help="ask every question at most once")
    parser.add_argument("--reference", choices=("first", "last", "none"), default="first")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    if args.url:
        asyncio.run(bench(args.url.rstrip("/"), args.pid, args))
    else:
        with subprocess_server(args.checkout.resolve(), args.port) as (url, pid):
            asyncio.run(bench(url, pid, args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
