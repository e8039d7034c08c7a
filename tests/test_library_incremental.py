"""The served library follows the store per document, and restarts from its saved snapshot.

Real embedded Chroma, the hashing embedder, three small library files copied into a temp folder.
A ``CountingStore`` records which documents each refresh reads from the store.
"""

from __future__ import annotations

import math
import shutil
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hashing_embeddings import HashingEmbeddings

from assistant.bm25 import Bm25, Vocabulary
from assistant.config import Settings
from assistant.library import Library, LibraryIndex
from assistant.library_store import LibraryStore
from assistant.manifest import DocEntry, read_manifest
from assistant.store import open_client, open_collection
from assistant.tokenizer import DomainTokenizer
from ingest.indexer import run_ingest
from ingest.loaders import doc_id_for

FILES = (
    "中国共产党问责条例_2016旧版.md",
    "激励干部担当作为工作会议讲话.md",
    "中国共产党组织处理规定_试行.md",
)
ADDED = "关于进一步激励广大干部新时代新担当新作为的意见.md"


class CountingStore(LibraryStore):
    """A ``LibraryStore`` that remembers what it was asked to read."""

    def __init__(self, client: Any, name: str) -> None:
        super().__init__(client, name)
        self.read_docs: list[str] = []
        self.full_reads = 0

    def document_records(self, entries: list[DocEntry]) -> dict[str, list[Any]]:
        self.read_docs += [e.doc_id for e in entries]
        return super().document_records(entries)

    def all_records(self) -> dict[str, list[Any]]:
        self.full_reads += 1
        return super().all_records()


@pytest.fixture
def library(ingest_copies: Callable[[Sequence[str]], tuple[Path, Settings]]) -> tuple[Path, Settings]:
    return ingest_copies(FILES)


def _index(settings: Settings, tokenizer: DomainTokenizer, snapshots: Path | None = None) -> LibraryIndex:
    store = CountingStore(open_client(settings), settings.chroma.collection)
    return LibraryIndex(store, settings.library, tokenizer, snapshots)


def _files(lib: Library) -> set[str]:
    return {str(c.metadata["file"]) for c in lib.chunks}


def _same_as_full_load(lib: Library, settings: Settings, tokenizer: DomainTokenizer) -> None:
    """The incrementally built snapshot equals one read from scratch."""
    fresh = _index(settings, tokenizer).refresh()
    assert [c.id for c in lib.chunks] == [c.id for c in fresh.chunks]
    assert [c.page_content for c in lib.chunks] == [c.page_content for c in fresh.chunks]
    assert np.allclose(lib.vectors, fresh.vectors) and np.allclose(lib.view_vectors, fresh.view_vectors)
    assert lib.view_parent.tolist() == fresh.view_parent.tolist()
    assert lib.view_span.tolist() == fresh.view_span.tolist()
    query = fresh.tokenizer.tokenize("问责的方式有哪些 激励干部担当作为")
    assert lib.bm25 is not None and fresh.bm25 is not None
    assert np.allclose(lib.bm25.get_scores(query), fresh.bm25.get_scores(query), atol=1e-5)
    assert {f: i.chunks for f, i in lib.docs.items()} == {f: i.chunks for f, i in fresh.docs.items()}
    # Positions and article labels, offset per part, equal a scan of every chunk.
    assert lib.pos == fresh.pos == {str(c.metadata["chunk_id"]): i for i, c in enumerate(fresh.chunks)}
    assert {f: i.articles for f, i in lib.docs.items()} == {f: i.articles for f, i in fresh.docs.items()}
    for i, c in enumerate(lib.chunks):
        if c.metadata.get("article"):
            assert i in lib.docs[c.metadata["file"]].articles[c.metadata["article"]]
    for term in ("问责", "激励"):
        assert lib.doc_freq(term) == fresh.doc_freq(term) > 0


def test_added_replaced_and_removed_documents_are_read_alone(
    library: tuple[Path, Settings], library_dir: Path, tokenizer: DomainTokenizer, hashing: HashingEmbeddings
) -> None:
    folder, settings = library
    index = _index(settings, tokenizer)
    store = index.store
    assert isinstance(store, CountingStore)
    first = index.current()
    assert _files(first) == set(FILES) and first.doc_freq("问责") > 0  # a cached df is carried over
    store.read_docs.clear()
    kept = {c.id: c for c in first.chunks if c.metadata["file"] != FILES[0]}

    # Add one document: only it is read; the others' Document objects are the same objects.
    shutil.copyfile(library_dir / ADDED, folder / ADDED)
    run_ingest(settings, hashing, progress=False)
    added = index.refresh()
    assert store.read_docs == [doc_id_for(ADDED)] and store.full_reads == 0
    assert _files(added) == {*FILES, ADDED}
    assert all(added.chunk(cid) is doc for cid, doc in kept.items())
    _same_as_full_load(added, settings, tokenizer)

    # Replace one document (new text): only it is read again.
    store.read_docs.clear()
    path = folder / FILES[0]
    path.write_text(
        path.read_text("utf-8") + "\n\n第三十条 本条例自公布之日起施行，问责新增测试句。\n", "utf-8"
    )
    run_ingest(settings, hashing, progress=False)
    replaced = index.refresh()
    assert store.read_docs == [doc_id_for(FILES[0])] and store.full_reads == 0
    assert any("问责新增测试句" in c.page_content for c in replaced.chunks)
    assert all(replaced.chunk(cid) is doc for cid, doc in kept.items())
    _same_as_full_load(replaced, settings, tokenizer)

    # Remove one document: nothing is read at all.
    store.read_docs.clear()
    (folder / ADDED).unlink()
    run_ingest(settings, hashing, progress=False)
    removed = index.refresh()
    assert store.read_docs == [] and store.full_reads == 0
    assert _files(removed) == set(FILES)
    _same_as_full_load(removed, settings, tokenizer)


def test_indexer_writes_a_manifest_that_explains_the_store(library: tuple[Path, Settings]) -> None:
    _, settings = library
    client = open_client(settings)
    collection = open_collection(client, settings, None)
    entries = read_manifest(client, collection)
    assert entries is not None and set(entries) == {doc_id_for(f) for f in FILES}
    assert sum(e.records for e in entries.values()) == collection.count()
    assert len({e.stamp for e in entries.values()}) == len(FILES)


def _views_are_slices_of_their_chunks(lib: Library) -> None:
    """Each sentence view's span holds its sentence; only views that are not slices point nowhere."""
    assert len(lib.view_span) == len(lib.view_parent) > 0
    placed = 0
    for (start, end), parent in zip(lib.view_span.tolist(), lib.view_parent.tolist(), strict=True):
        text = lib.chunks[parent].page_content
        if start >= 0:
            assert 0 <= start < end <= len(text) and text[start:end].strip()
            placed += 1
    assert placed > 0


def test_saved_snapshot_is_reused_when_the_store_matches_and_updated_when_not(
    library: tuple[Path, Settings],
    library_dir: Path,
    tmp_path: Path,
    tokenizer: DomainTokenizer,
    hashing: HashingEmbeddings,
) -> None:
    folder, settings = library
    snapshots = tmp_path / "snapshots"
    first = _index(settings, tokenizer, snapshots)
    served = first.current()
    first.wait_saved()
    assert (snapshots / settings.chroma.collection / "meta.json").is_file()

    # Restart, store unchanged: the saved snapshot is served, nothing is read from the store.
    second = _index(settings, tokenizer, snapshots)
    restarted = second.current()
    store = second.store
    assert isinstance(store, CountingStore)
    assert store.read_docs == [] and store.full_reads == 0
    assert [c.id for c in restarted.chunks] == [c.id for c in served.chunks]
    assert np.allclose(restarted.vectors, served.vectors)
    assert restarted.view_span.tolist() == served.view_span.tolist()
    _views_are_slices_of_their_chunks(restarted)
    query = tokenizer.tokenize("问责方式")
    assert served.bm25 is not None and restarted.bm25 is not None
    assert np.allclose(restarted.bm25.get_scores(query), served.bm25.get_scores(query))

    # Restart after one document was added: the saved snapshot plus that document only.
    shutil.copyfile(library_dir / ADDED, folder / ADDED)
    run_ingest(settings, hashing, progress=False)
    third = _index(settings, tokenizer, snapshots)
    updated = third.current()
    store = third.store
    assert isinstance(store, CountingStore)
    assert store.read_docs == [doc_id_for(ADDED)] and store.full_reads == 0
    assert _files(updated) == {*FILES, ADDED}
    _same_as_full_load(updated, settings, tokenizer)


def test_corrupt_saved_snapshot_is_ignored(
    library: tuple[Path, Settings],
    tmp_path: Path,
    tokenizer: DomainTokenizer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _, settings = library
    snapshots = tmp_path / "snapshots"
    first = _index(settings, tokenizer, snapshots)
    expected = [c.id for c in first.current().chunks]
    first.wait_saved()
    (snapshots / settings.chroma.collection / "vectors.npy").write_bytes(b"not an array")

    second = _index(settings, tokenizer, snapshots)
    with caplog.at_level("WARNING"):
        lib = second.current()
    assert [c.id for c in lib.chunks] == expected
    assert "无法读取" in caplog.text
    store = second.store
    assert isinstance(store, CountingStore)
    assert sorted(store.read_docs) == sorted(doc_id_for(f) for f in FILES)  # read again, from the store


def _okapi(corpus: list[list[str]], query: list[str], k1: float = 1.5, b: float = 0.75) -> list[float]:
    """rank_bm25.BM25Okapi's scores, written out (the engine it replaced)."""
    n = len(corpus)
    avgdl = sum(len(d) for d in corpus) / n
    df = Counter(t for d in corpus for t in set(d))
    idf = {t: math.log(n - f + 0.5) - math.log(f + 0.5) for t, f in df.items()}
    eps = 0.25 * sum(idf.values()) / len(idf)
    idf = {t: (eps if v < 0 else v) for t, v in idf.items()}
    scores = []
    for d in corpus:
        tf = Counter(d)
        scores.append(
            sum(
                idf.get(q, 0.0) * tf[q] * (k1 + 1) / (tf[q] + k1 * (1 - b + b * len(d) / avgdl))
                for q in query
            )
        )
    return scores


def test_bm25_scores_equal_okapi_bm25() -> None:
    corpus = [
        "问责 方式 包括 检查 通报 改组".split(),
        "问责 情形 党组织 领导 不力".split(),
        "激励 干部 担当 作为 容错 纠错".split(),
        "干部 干部 考核 激励 问责".split(),
        [],
        "问责 问责 问责 党组织".split(),
    ]
    vocabulary = Vocabulary()
    rows = [vocabulary.encode(d) for d in corpus]
    offsets = np.cumsum([0] + [len(r) for r in rows])
    engine = Bm25.build(vocabulary, np.concatenate(rows), offsets)
    assert engine is not None
    for query in (["问责"], ["问责", "问责", "方式"], ["激励", "干部", "未知词"], ["党组织", "考核"]):
        got = engine.get_scores(query)
        want = _okapi(corpus, query)
        assert np.allclose(got, want, rtol=1e-5, atol=1e-6), query
        assert list(np.argsort(-got, kind="stable")) == list(np.argsort(-np.asarray(want), kind="stable"))
    assert not engine.get_scores(["未知词"]).any()


class SlowStore(LibraryStore):
    """A ``LibraryStore`` whose fingerprint takes ``delay`` seconds (a large store's first read)."""

    def __init__(self, client: Any, name: str, delay: float) -> None:
        super().__init__(client, name)
        self.delay = delay

    def fingerprint(self, count_max_age_s: float = 0.0) -> Any:
        import time

        time.sleep(self.delay)
        return super().fingerprint(count_max_age_s)


def test_the_first_load_waits_for_a_slow_store_later_checks_do_not(
    library: tuple[Path, Settings], tokenizer: DomainTokenizer
) -> None:
    _, settings = library
    limits = settings.library.model_copy(update={"store_timeout_s": 0.3, "first_load_timeout_s": 10.0})
    store = SlowStore(open_client(settings), settings.chroma.collection, delay=1.0)
    index = LibraryIndex(store, limits, tokenizer, None)
    first = index.current()  # slower than store_timeout_s, within first_load_timeout_s: loaded
    assert _files(first) == set(FILES) and index.state.ok
    # Once something is served, a check slower than store_timeout_s keeps the snapshot serving.
    assert index.refresh() is first and not index.state.ok
    assert "0.3 秒内没有响应" in index.state.detail


def test_a_store_that_stays_silent_fails_the_first_load_with_a_chinese_error(
    library: tuple[Path, Settings], tokenizer: DomainTokenizer
) -> None:
    from assistant.store import StoreError

    _, settings = library
    limits = settings.library.model_copy(update={"store_timeout_s": 0.2, "first_load_timeout_s": 0.5})
    index = LibraryIndex(
        SlowStore(open_client(settings), settings.chroma.collection, 2.0), limits, tokenizer, None
    )
    with pytest.raises(StoreError, match="向量库暂时无法访问：0.5 秒内没有响应"):
        index.current()
