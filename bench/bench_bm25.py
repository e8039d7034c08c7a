"""BM25 engines on the same token lists: rank_bm25 (the old one), bm25s (assistant.bm25) and
tantivy. Prints build and per-question times, and how close bm25s and tantivy rank to rank_bm25
(top-30 overlap, Spearman of the scores over the union of the top 30) on the eval questions.

Usage: POLICY_CHROMA__PERSIST_DIR=/tmp/copy .venv/bin/python bench/bench_bm25.py
    [--eval-dir ../shared/eval] [--scale 1] [--no-tantivy]
``--scale N`` repeats the library's token lists N times (timings at N x the library size).
rank_bm25 and tantivy are not project dependencies: ``pip install rank-bm25==0.2.2 tantivy==0.27.0``
into the venv to run this comparison.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from assistant.bm25 import Bm25, Vocabulary
from assistant.config import load_settings
from assistant.library_store import LibraryStore
from assistant.store import open_client
from assistant.tokenizer import DomainTokenizer


def _questions(eval_dir: Path) -> list[str]:
    out: list[str] = []
    for path in sorted(eval_dir.glob("*.jsonl")):
        out += [json.loads(line)["question"] for line in path.read_text("utf-8").splitlines() if line.strip()]
    return out


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra = np.argsort(np.argsort(a))
    rb = np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1]) if len(a) > 2 else 1.0


def _tantivy(tokens: list[list[str]]) -> Any:
    import tantivy

    builder = tantivy.SchemaBuilder()
    builder.add_text_field("body", stored=False, tokenizer_name="whitespace")
    builder.add_integer_field("pos", stored=True, fast=True)
    schema = builder.build()
    index = tantivy.Index(schema)
    writer = index.writer(heap_size=100_000_000, num_threads=1)
    for i, toks in enumerate(tokens):
        writer.add_document(tantivy.Document(body=" ".join(toks), pos=i))
    writer.commit()
    index.reload()
    return index


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--eval-dir", type=Path, default=Path("../shared/eval"))
    parser.add_argument("--scale", type=int, default=1)
    parser.add_argument("--no-tantivy", action="store_true")
    parser.add_argument("--questions", type=int, default=0, help="only the first N questions (0: all)")
    args = parser.parse_args()
    settings = load_settings()
    tokenizer = DomainTokenizer(settings.retrieval.dictionary)
    chunks = LibraryStore(open_client(settings), settings.chroma.collection).load_all()[0]
    base = [
        tokenizer.tokenize(
            f"{d.metadata.get('title', '')} {d.metadata.get('heading_path', '')} " + d.page_content
        )
        for d in chunks
    ]
    tokens = base * args.scale
    questions = [tokenizer.tokenize(q) for q in _questions(args.eval_dir)]
    if args.questions:
        questions = questions[: args.questions]
    print(f"{len(tokens)} chunks, {len(questions)} questions")

    from rank_bm25 import BM25Okapi

    t = time.perf_counter()
    okapi = BM25Okapi(tokens)
    print(f"rank_bm25 build {time.perf_counter() - t:.2f} s")
    t = time.perf_counter()
    vocab = Vocabulary()
    rows = [vocab.encode(tok) for tok in tokens]
    flat = np.concatenate(rows)
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum([len(r) for r in rows], out=offsets[1:])
    t_ids = time.perf_counter() - t
    t = time.perf_counter()
    ours = Bm25.build(vocab, flat, offsets)
    assert ours is not None
    print(f"bm25s build {time.perf_counter() - t:.2f} s (+ token ids {t_ids:.2f} s)")
    tan = None
    if not args.no_tantivy:
        t = time.perf_counter()
        tan = _tantivy(tokens)
        print(f"tantivy build {time.perf_counter() - t:.2f} s")

    times: dict[str, list[float]] = {"rank_bm25": [], "bm25s": [], "tantivy": []}
    overlap: dict[str, list[float]] = {"bm25s": [], "tantivy": []}
    rho: list[float] = []
    max_diff = 0.0
    for q in questions:
        if not q:
            continue
        t = time.perf_counter()
        ref = np.asarray(okapi.get_scores(q))
        times["rank_bm25"].append(time.perf_counter() - t)
        t = time.perf_counter()
        got = ours.get_scores(q)
        times["bm25s"].append(time.perf_counter() - t)
        max_diff = max(max_diff, float(np.max(np.abs(ref - got)) / max(float(ref.max()), 1e-9)))
        top_ref = set(np.argsort(-ref, kind="stable")[:30].tolist())
        top_got = set(np.argsort(-got, kind="stable")[:30].tolist())
        overlap["bm25s"].append(len(top_ref & top_got) / 30)
        union = sorted(top_ref | top_got)
        rho.append(_spearman(ref[union], got[union]))
        if tan is not None:
            searcher = tan.searcher()
            query = tan.parse_query(" ".join(f'"{w}"' for w in q if '"' not in w), ["body"])
            t = time.perf_counter()
            hits = searcher.search(query, 30).hits
            times["tantivy"].append(time.perf_counter() - t)
            top_tan = {searcher.doc(addr)["pos"][0] for _s, addr in hits}
            overlap["tantivy"].append(len(top_ref & top_tan) / 30)
    for name, values in times.items():
        if values:
            print(
                f"{name:10s} {1000 * float(np.mean(values)):8.2f} ms/question (p95 {1000 * float(np.percentile(values, 95)):.2f})"
            )
    for name, values in overlap.items():
        if values:
            print(
                f"top-30 overlap with rank_bm25, {name}: mean {np.mean(values):.3f}, min {np.min(values):.3f}"
            )
    print(
        f"bm25s vs rank_bm25: Spearman over top-30 union mean {np.mean(rho):.4f}; max |diff|/max {max_diff:.2e}"
    )
    with tempfile.TemporaryDirectory() as folder:
        t = time.perf_counter()
        ours.save(Path(folder))
        saved = time.perf_counter() - t
        t = time.perf_counter()
        Bm25.load(Path(folder))
        print(f"bm25s save {saved:.2f} s, load {time.perf_counter() - t:.2f} s")


if __name__ == "__main__":
    main()
