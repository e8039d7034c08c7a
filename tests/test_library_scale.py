"""What a large library changes, exercised on a small one with its thresholds set to 0:
the background store check (no question reads the store), vectors kept as ``Rows`` over
memory-mapped snapshot files (the same scores and rankings as one in-memory array), and the
sampled document frequency (exact below its threshold, close above, absent terms stay 0).

Real embedded Chroma, the hashing embedder, three small library files copied into a temp folder.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hashing_embeddings import HashingEmbeddings

from assistant import term_counts
from assistant.config import Settings
from assistant.dense import DenseScores
from assistant.library import Library, LibraryIndex
from assistant.library_store import LibraryStore
from assistant.retrieval import build_retriever
from assistant.rows import FileRows, Rows
from assistant.store import mark_changed, open_client
from assistant.tokenizer import DomainTokenizer
from ingest.indexer import run_ingest

FILES = ("中国共产党问责条例_2016旧版.md", "激励干部担当作为工作会议讲话.md")
ADDED = "中国共产党组织处理规定_试行.md"
QUESTIONS = ["哪些情形应当对党组织进行问责？", "干部出了差错，什么情况下可以免责？", "组织处理的方式有哪些？"]


@pytest.fixture
def library(ingest_copies: Callable[[Sequence[str]], tuple[Path, Settings]]) -> tuple[Path, Settings]:
    return ingest_copies(FILES)


def _index(
    settings: Settings, tokenizer: DomainTokenizer, snapshots: Path | None = None, **lib: Any
) -> LibraryIndex:
    cfg = settings.library.model_copy(update=lib)
    return LibraryIndex(
        LibraryStore(open_client(settings), settings.chroma.collection), cfg, tokenizer, snapshots
    )


def test_background_check_picks_up_a_new_document_without_a_question_reading_the_store(
    library: tuple[Path, Settings], tokenizer: DomainTokenizer, library_dir: Path, hashing: HashingEmbeddings
) -> None:
    folder, settings = library
    index = _index(settings, tokenizer, inline_check_max_chunks=0, poll_interval_s=0.05)
    checks: list[str] = []
    original = index._read_fingerprint

    def recorded(*args: Any) -> Any:
        checks.append(threading.current_thread().name)
        return original(*args)

    index._read_fingerprint = recorded  # type: ignore[method-assign]
    first = index.current()  # the first snapshot is built by the caller: nothing to serve yet
    assert checks == ["MainThread"]
    shutil.copyfile(library_dir / ADDED, folder / ADDED)
    run_ingest(settings, hashing, progress=False)
    deadline = time.monotonic() + 30
    served = first
    while served is first and time.monotonic() < deadline:
        served = index.current()  # never waits on the store: the snapshot being served
        time.sleep(0.02)
    assert served is not first
    assert any(c.metadata["file"] == ADDED for c in served.chunks)
    assert checks[0] == "MainThread" and set(checks[1:]) == {"library-poll"}
    index.close()


def test_background_check_rereads_the_count_only_when_the_generation_changes_or_it_is_old(
    library: tuple[Path, Settings],
) -> None:
    _folder, settings = library
    store = LibraryStore(open_client(settings), settings.chroma.collection)
    first = store.fingerprint(3600)
    collection = store.collection()
    collection.delete(ids=[collection.get(limit=1)["ids"][0]])  # a writer bypassing the indexer
    assert store.fingerprint(3600) == first  # the count is not re-read yet (the poll's cheap round)
    assert store.fingerprint(0).count == first.count - 1  # a question's check reads it
    collection.add(ids=["x"], embeddings=[[0.1] * 64], documents=["x"], metadatas=[{"doc_id": "x"}])
    mark_changed(collection)  # what every ingest does
    later = store.fingerprint(3600)
    assert later.generation != first.generation and later.count == first.count


def test_small_library_is_still_checked_by_each_question(
    library: tuple[Path, Settings], tokenizer: DomainTokenizer
) -> None:
    _folder, settings = library
    index = _index(settings, tokenizer)  # defaults: far below inline_check_max_chunks
    index.current()
    index.current()
    assert index._poller is None


def _rows_index(settings: Settings, tokenizer: DomainTokenizer, snapshots: Path) -> LibraryIndex:
    return _index(settings, tokenizer, snapshots, in_memory_max_vectors=0)


def test_rows_keep_scores_and_rankings_identical(
    library: tuple[Path, Settings], tokenizer: DomainTokenizer, hashing: HashingEmbeddings, tmp_path: Path
) -> None:
    _folder, settings = library
    plain = _index(settings, tokenizer).current()
    built = _rows_index(settings, tokenizer, tmp_path / "index")
    lib = built.current()
    built.wait_saved()
    loaded = _rows_index(settings, tokenizer, tmp_path / "index").current()  # memory-mapped files
    assert isinstance(plain.vectors, np.ndarray) and isinstance(lib.vectors, Rows)
    assert isinstance(loaded.vectors, Rows) and len(loaded.vectors.blocks) == 1  # one file, one block
    for other in (lib, loaded):
        assert isinstance(other.view_vectors, Rows)
        assert np.array_equal(np.asarray(other.vectors), plain.vectors)
        assert np.array_equal(np.asarray(other.view_vectors), plain.view_vectors)
    for q in QUESTIONS:
        qvec = np.asarray(hashing.embed_query(q), dtype=np.float32)
        want = DenseScores.exact(qvec, plain, 0.5)
        positions = list(range(0, len(plain.chunks), 3))
        want_lazy = DenseScores.lazy(qvec, plain, 0.5)
        want_lazy.ensure(positions)
        for other in (lib, loaded):
            # A full scan block by block: the same up to float rounding (BLAS sums in another order).
            got = DenseScores.exact(qvec, other, 0.5)
            assert np.allclose(got.own, want.own, atol=1e-6) and np.allclose(got.view, want.view, atol=1e-6)
            # The store path's scores of the chunks looked at: bit-identical.
            lazy = DenseScores.lazy(qvec, other, 0.5)
            lazy.ensure(positions)
            assert np.array_equal(lazy.own, want_lazy.own) and np.array_equal(lazy.view, want_lazy.view)
    for mode in ("exact", "store"):
        cfg = settings.retrieval.model_copy(update={"dense_search": mode, "reranker": None})
        a = build_retriever(cfg, hashing, _index(settings, tokenizer))
        b = build_retriever(cfg, hashing, _rows_index(settings, tokenizer, tmp_path / "index"))
        for q in QUESTIONS:
            want_docs, got_docs = a.search(q, k=10), b.search(q, k=10)
            assert [d.id for d in want_docs] == [d.id for d in got_docs]
            scores = [(d.metadata["score"], d.metadata["view_score"]) for d in got_docs]
            assert np.allclose(
                scores, [(d.metadata["score"], d.metadata["view_score"]) for d in want_docs], atol=2e-6
            )


def test_rows_after_a_per_document_update_equal_a_full_load(
    library: tuple[Path, Settings],
    tokenizer: DomainTokenizer,
    library_dir: Path,
    hashing: HashingEmbeddings,
    tmp_path: Path,
) -> None:
    folder, settings = library
    first = _rows_index(settings, tokenizer, tmp_path / "index")
    first.current()
    first.wait_saved()
    restarted = _rows_index(settings, tokenizer, tmp_path / "index")
    restarted.current()
    shutil.copyfile(library_dir / ADDED, folder / ADDED)
    run_ingest(settings, hashing, progress=False)
    updated = restarted.refresh()
    assert isinstance(updated.vectors, Rows) and len(updated.vectors.blocks) <= 3
    fresh = _index(settings, tokenizer).refresh()
    assert [c.id for c in updated.chunks] == [c.id for c in fresh.chunks]
    assert np.array_equal(np.asarray(updated.vectors), fresh.vectors)
    assert np.array_equal(np.asarray(updated.view_vectors), fresh.view_vectors)
    assert updated.view_parent.tolist() == fresh.view_parent.tolist()
    restarted.wait_saved()
    again = _rows_index(settings, tokenizer, tmp_path / "index").current()  # the update, saved
    assert np.array_equal(np.asarray(again.vectors), fresh.vectors)
    assert [c.metadata for c in again.chunks] == [c.metadata for c in fresh.chunks]


def test_sampled_doc_freq_is_exact_below_the_threshold_and_close_above(
    library: tuple[Path, Settings], tokenizer: DomainTokenizer
) -> None:
    _folder, settings = library
    exact = _index(settings, tokenizer).current()
    n = len(exact.chunks)
    sampled: Library = _index(settings, tokenizer, doc_freq_sample_chunks=(n + 1) // 2).current()
    assert 0 < n <= exact.df_sample  # the real library's size: counted exactly
    every_other = exact.chunks[::2]  # the sample: every 2nd chunk
    for term in ("问责", "干部", "党组织", "规定"):
        hits = sum(1 for c in every_other if term in c.page_content)
        assert hits > 0
        assert sampled.doc_freq(term) == round(hits * n / len(every_other))
        assert exact.doc_freq(term) / 2 <= sampled.doc_freq(term) <= exact.doc_freq(term) * 2
    assert sampled.doc_freq("量子计算机") == exact.doc_freq("量子计算机") == 0
    # A term of one chunk outside the sample: counted exactly, not estimated as 0.
    rare = exact.chunks[1].page_content[:12]
    assert not any(rare in c.page_content for c in every_other)
    assert sampled.doc_freq(rare) == exact.doc_freq(rare) >= 1


def test_bigram_filter_rules_out_absent_terms_without_a_scan(
    library: tuple[Path, Settings], tokenizer: DomainTokenizer, monkeypatch: pytest.MonkeyPatch
) -> None:
    _folder, settings = library
    n = len(_index(settings, tokenizer).current().chunks)
    lib = _index(settings, tokenizer, doc_freq_sample_chunks=(n + 1) // 2).current()
    assert lib.sampled
    lib.warm_rest()  # also run by a thread once the snapshot is served
    assert lib.terms_seen is not None
    whole = len(lib.chunks)
    scans: list[str] = []
    count = term_counts.count_containing

    def recorded(joined: str, starts: list[int], term: str) -> int:
        if len(starts) == whole:
            scans.append(term)
        return count(joined, starts, term)

    monkeypatch.setattr(term_counts, "count_containing", recorded)
    assert lib.doc_freq("量子计算机") == 0 and scans == []  # 量子: a pair no chunk holds
    text = lib.chunks[0].page_content
    assert all(lib.terms_seen.may_contain(text[i : i + 5]) for i in range(0, len(text) - 5, 7))
    assert not term_counts.BigramFilter.of(["问责条例"]).may_contain("条问")
    assert term_counts.BigramFilter.of(["问责"]).extended(["条例"]).may_contain("条例")


def test_file_rows_read_what_the_file_holds(tmp_path: Path) -> None:
    matrix = np.random.default_rng(0).standard_normal((50, 8)).astype(np.float32)
    np.save(tmp_path / "m.npy", matrix)
    rows = FileRows.open(tmp_path / "m.npy")
    assert rows.shape == (50, 8) and np.array_equal(np.asarray(rows), matrix)
    picks = [7, 3, 4, 5, 49, 3, 0]  # unsorted, repeated, runs of neighbours
    assert np.array_equal(rows[picks], matrix[picks])
    part = rows[10:20]
    assert np.array_equal(np.asarray(part), matrix[10:20]) and np.array_equal(part[[0, 9]], matrix[[10, 19]])
    q = matrix[0]
    assert np.allclose(rows @ q, matrix @ q, atol=1e-6)
    # Neighbouring slices of one file are one block again; an array between them keeps three.
    extra = np.ones((2, 8), dtype=np.float32)
    assert len(Rows([rows[:10], rows[10:30], rows[30:]], 8).blocks) == 1
    mixed = Rows([rows[:10], extra, rows[10:]], 8)
    assert len(mixed.blocks) == 3 and len(mixed) == 52
    assert np.array_equal(mixed[[9, 10, 11, 12]], np.vstack([matrix[9:10], extra, matrix[10:11]]))
