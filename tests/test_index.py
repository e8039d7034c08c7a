"""Indexing into real Chroma with the real embedding model.

Whole-library checks use the session's ingested store (embedded mode). The
change-handling tests run on two small library files copied into a temp
folder, once with an embedded store and once against a real ``chroma run``.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hashing_embeddings import HashingEmbeddings
from langchain_core.embeddings import Embeddings

from assistant.config import Settings
from assistant.library_store import LibraryStore, library_stats
from assistant.store import (
    StoreError,
    StoreModelMismatch,
    open_client,
    open_collection,
    open_vectorstore,
    record_model,
    stored_model,
)
from ingest import indexer
from ingest.chunking import chunk_document, chunk_id
from ingest.indexer import IngestReport, run_ingest
from ingest.loaders import discover_files, load_file
from ingest.views import PARENT_KEY, VIEW_KEY, VIEW_WINDOW, chunk_views

SMALL_FILES = ("中国共产党问责条例_2016旧版.md", "激励干部担当作为工作会议讲话.md")

# Distinct article labels per document, as counted by hand in the source texts.
EXPECTED_ARTICLES = {
    "中国共产党纪律处分条例_2023.md": 158,
    "中华人民共和国公务员法_2018.md": 113,
    "中华人民共和国公职人员政务处分法.md": 68,
    "中华人民共和国监察法_2018.md": 69,
    "中华人民共和国监察法_2024.md": 78,
    "中国共产党纪律检查机关监督执纪工作规则.md": 77,
    "纪检监察机关处理检举控告工作规则.md": 58,
    "中国共产党组织处理规定_试行.md": 19,
    "中国共产党问责条例_2016旧版.md": 13,
    "关于进一步激励广大干部新时代新担当新作为的意见.md": 0,
    "激励干部担当作为工作会议讲话.md": 0,
}


class RenamedEmbeddings(Embeddings):
    """An embedder under another name (as if the index came from another model)."""

    def __init__(self, inner: Any, model_name: str) -> None:
        self.inner = inner
        self.model_name = model_name

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return list(self.inner.embed_documents(texts))

    def embed_query(self, text: str) -> list[float]:
        return list(self.inner.embed_query(text))


class DyingEmbeddings(RenamedEmbeddings):
    """An embedder that "crashes" (raises) after ``calls`` embedding batches."""

    def __init__(self, inner: Any, calls: int) -> None:
        super().__init__(inner, inner.model_name)
        self.calls_left = calls

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if self.calls_left == 0:
            raise KeyboardInterrupt("simulated kill during ingest")
        self.calls_left -= 1
        return super().embed_documents(texts)


def _collection(settings: Settings) -> Any:
    return open_collection(open_client(settings), settings, None)


def _all_chunks(settings: Settings) -> list[Any]:
    return LibraryStore(open_client(settings), settings.chroma.collection).load_all()[0]


def _stored_by_doc(settings: Settings) -> dict[str, list[Any]]:
    by_file: dict[str, list[Any]] = {}
    for doc in _all_chunks(settings):
        by_file.setdefault(doc.metadata["file"], []).append(doc)
    return by_file


def _expected_chunks(path: Path, settings: Settings) -> list[str]:
    return [c.text for c in chunk_document(load_file(path, settings.ingest), settings.ingest)]


def _expected_views(path: Path, settings: Settings) -> list[str]:
    chunks = chunk_document(load_file(path, settings.ingest), settings.ingest)
    return sorted(text for c in chunks for text, _ in chunk_views(c))


def _stored_views(settings: Settings) -> list[tuple[str, dict[str, Any], str]]:
    """(id, metadata, text) of every view record."""
    got = _collection(settings).get(where={VIEW_KEY: VIEW_WINDOW}, include=["metadatas", "documents"])
    return list(zip(got["ids"], got["metadatas"] or [], got["documents"] or [], strict=True))


@pytest.fixture
def hashing() -> HashingEmbeddings:
    """Ingest mechanics (ids, hashes, upserts, pruning, crash safety) need vectors, not meaning."""
    return HashingEmbeddings(dim=64)


@pytest.fixture
def small_library(tmp_path: Path, library_dir: Path, store_settings: Settings) -> tuple[Path, Settings]:
    folder = tmp_path / "library"
    folder.mkdir()
    for name in SMALL_FILES:
        shutil.copyfile(library_dir / name, folder / name)
    settings = store_settings.model_copy(
        update={"ingest": store_settings.ingest.model_copy(update={"library_dirs": [folder]})}
    )
    return folder, settings


def _assert_store_matches_library(folder: Path, settings: Settings) -> None:
    """Every loadable file is stored exactly as the chunker splits it now; nothing else is stored."""
    stored = _stored_by_doc(settings)
    expected = {p.name: _expected_chunks(p, settings) for p in discover_files([folder], settings.ingest)}
    assert sorted(stored) == sorted(expected)
    for name, texts in expected.items():
        docs = sorted(stored[name], key=lambda d: d.metadata["chunk_index"])
        assert [d.page_content for d in docs] == texts
        assert {d.metadata["doc_chunks"] for d in docs} == {len(texts)}
    # Views: exactly the current chunks' views, each pointing at a stored chunk of its document.
    chunk_ids = {d.metadata["chunk_id"]: d for docs in stored.values() for d in docs}
    views_by_file: dict[str, list[str]] = {}
    for vid, meta, text in _stored_views(settings):
        parent = chunk_ids[meta[PARENT_KEY]]
        assert vid.startswith(f"{meta[PARENT_KEY]}#v")
        assert meta["file"] == parent.metadata["file"] and meta["article"] == parent.metadata["article"]
        assert text in parent.page_content
        views_by_file.setdefault(meta["file"], []).append(text)
    for name in expected:
        assert sorted(views_by_file.get(name, [])) == _expected_views(folder / name, settings)


# --------------------------------------------------------------------------- whole library


def test_whole_library_is_ingested_without_errors(
    ingest_report: IngestReport, ingested_settings: Settings, library_dir: Path
) -> None:
    files = discover_files([library_dir], ingested_settings.ingest)
    assert ingest_report.errors == []
    assert ingest_report.skipped == []
    assert ingest_report.documents_seen == len(files) == 11
    assert ingest_report.documents_added == 11
    collection = _collection(ingested_settings)
    assert ingest_report.chunks_embedded == ingest_report.chunks_total == library_stats(collection)["chunks"]
    assert ingest_report.views_embedded == ingest_report.views_total > 0
    assert ingest_report.chunks_total + ingest_report.views_total == collection.count()
    assert ingest_report.views_total == len(_stored_views(ingested_settings))
    assert "新增 11" in ingest_report.summary_line()
    assert json.loads(json.dumps(ingest_report.to_dict()))["documents_added"] == 11


def test_library_stats_shape_and_article_counts(ingested_settings: Settings) -> None:
    stats = library_stats(_collection(ingested_settings))
    stats = json.loads(json.dumps(stats, ensure_ascii=False))  # what `stats --json` prints
    assert set(stats) == {"documents", "chunks", "documents_detail"}
    assert stats["documents"] == len(stats["documents_detail"]) == 11
    assert stats["chunks"] == sum(d["chunks"] for d in stats["documents_detail"])
    for detail in stats["documents_detail"]:
        assert {"file", "title", "status", "articles", "chunks", "issuer", "date"} <= set(detail)
        assert detail["title"] and detail["status"] in {"现行", "已修正", "已废止"}
    assert {d["file"]: d["articles"] for d in stats["documents_detail"]} == EXPECTED_ARTICLES
    statuses = {d["file"]: d["status"] for d in stats["documents_detail"]}
    assert statuses["中国共产党问责条例_2016旧版.md"] == "已废止"


def test_stored_chunks_are_verbatim_slices_of_the_documents(
    ingested_settings: Settings, library_dir: Path
) -> None:
    docs = _all_chunks(ingested_settings)
    assert len({d.metadata["chunk_id"] for d in docs}) == len(docs)
    bodies = {
        p.name: load_file(p, ingested_settings.ingest).text
        for p in library_dir.glob("*.md")
        if p.name != "SOURCES.md"
    }
    for doc in docs:
        meta = doc.metadata
        assert bodies[meta["file"]][meta["start"] : meta["end"]] == doc.page_content
        assert meta["embedding_model"] and meta["content_hash"]
    per_doc = Counter(d.metadata["doc_id"] for d in docs)
    assert all(per_doc[d.metadata["doc_id"]] == d.metadata["doc_chunks"] for d in docs)


def test_second_ingest_of_unchanged_library_embeds_nothing(
    ingested_settings: Settings, embeddings: Any
) -> None:
    before = _collection(ingested_settings).count()
    report = run_ingest(ingested_settings, embeddings, progress=False)
    assert report.chunks_embedded == report.views_embedded == 0
    assert report.documents_unchanged == 11
    assert report.documents_added == report.documents_updated == report.documents_pruned == 0
    assert report.chunks_total + report.views_total == before


def test_vectorstore_finds_the_article_and_refuses_another_model(
    ingested_settings: Settings, embeddings: Any
) -> None:
    store = open_vectorstore(ingested_settings, embeddings)
    hits = store.similarity_search("党员在党纪处分影响期内又受到党纪处分的，影响期怎么计算", k=3)
    assert hits[0].metadata["file"] == "中国共产党纪律处分条例_2023.md"
    assert hits[0].metadata["article"] == "第二十一条"
    with pytest.raises(StoreModelMismatch, match="--rebuild"):
        open_vectorstore(ingested_settings, RenamedEmbeddings(embeddings, "bge-large-zh@000000000000"))


# --------------------------------------------------------------------------- changes (embedded + server)


def test_ingest_then_reingest_is_idempotent(small_library: tuple[Path, Settings], hashing: Any) -> None:
    folder, settings = small_library
    first = run_ingest(settings, hashing, progress=False)
    assert (first.documents_added, first.errors, first.skipped) == (2, [], [])
    _assert_store_matches_library(folder, settings)
    second = run_ingest(settings, hashing, progress=False)
    assert (second.chunks_embedded, second.documents_unchanged) == (0, 2)
    assert second.chunks_total == first.chunks_total
    assert stored_model(_collection(settings)) == hashing.model_name


def test_changed_file_replaces_its_chunks(small_library: tuple[Path, Settings], hashing: Any) -> None:
    folder, settings = small_library
    run_ingest(settings, hashing, progress=False)
    target = folder / SMALL_FILES[0]
    old_text = target.read_text(encoding="utf-8")
    old_article = "第三条　党的问责工作应当坚持的原则：依规依纪、实事求是，失责必问、问责必严，惩前毖后、治病救人，分级负责、层层落实责任。"
    assert old_article in old_text
    target.write_text(
        old_text.replace(old_article, "第三条　问责工作坚持实事求是、依规依纪。")
        + "\n第十四条　本条为测试新增条款，用于检验更新后的块替换。\n",
        encoding="utf-8",
    )
    report = run_ingest(settings, hashing, progress=False)
    assert (report.documents_updated, report.documents_unchanged, report.documents_added) == (1, 1, 0)
    # Only the changed and the added article are embedded; the others keep their stored vectors,
    # which are exactly what embedding their text again would give.
    assert report.chunks_embedded == 2 < len(_expected_chunks(target, settings))
    _assert_store_matches_library(folder, settings)
    got = _collection(settings).get(include=["embeddings", "documents", "metadatas"])
    assert all(meta["embed_hash"] for meta in got["metadatas"] or [])
    doc = load_file(target, settings.ingest)
    stored = dict(zip(got["ids"], got["embeddings"], strict=True))
    for chunk in chunk_document(doc, settings.ingest):
        vector = stored[chunk_id(doc.doc_id, int(chunk.metadata["chunk_index"]), chunk.text)]
        fresh = hashing.embed_documents([chunk.embed_text])[0]
        assert max(abs(a - b) for a, b in zip(vector, fresh, strict=True)) < 1e-5
    texts = [d.page_content for d in _stored_by_doc(settings)[target.name]]
    assert not any("惩前毖后" in t for t in texts)
    assert any("第十四条" in t for t in texts)


def test_removed_file_is_pruned_only_on_full_library_ingest(
    small_library: tuple[Path, Settings], hashing: Any
) -> None:
    folder, settings = small_library
    run_ingest(settings, hashing, progress=False)
    kept, removed = folder / SMALL_FILES[0], folder / SMALL_FILES[1]
    removed.unlink()
    partial = run_ingest(settings, hashing, [kept], progress=False)
    assert partial.documents_pruned == 0
    assert removed.name in _stored_by_doc(settings)
    full = run_ingest(settings, hashing, progress=False)
    assert full.documents_pruned == 1 and full.chunks_embedded == 0
    _assert_store_matches_library(folder, settings)


def test_views_are_pruned_with_their_document_and_not_counted(
    small_library: tuple[Path, Settings], hashing: Any
) -> None:
    folder, settings = small_library
    first = run_ingest(settings, hashing, progress=False)
    speech = folder / SMALL_FILES[1]
    speech_views = [v for v in _stored_views(settings) if v[1]["file"] == speech.name]
    assert speech_views and first.views_total == len(_stored_views(settings))
    collection = _collection(settings)
    stats = library_stats(collection)
    assert stats["chunks"] == len(_all_chunks(settings)) == first.chunks_total
    assert collection.count() == first.chunks_total + first.views_total
    assert {d["file"]: d["chunks"] for d in stats["documents_detail"]} == {
        name: len(_expected_chunks(folder / name, settings)) for name in SMALL_FILES
    }

    speech.unlink()
    report = run_ingest(settings, hashing, progress=False)
    assert report.documents_pruned == 1
    left = _collection(settings).get(where={"file": speech.name}, include=[])
    assert left["ids"] == []  # neither its chunks nor its views remain
    assert not any(v[1]["file"] == speech.name for v in _stored_views(settings))
    assert report.chunks_total + report.views_total == _collection(settings).count()
    _assert_store_matches_library(folder, settings)


def test_model_mismatch_is_refused_and_rebuild_recovers(
    small_library: tuple[Path, Settings], hashing: Any
) -> None:
    folder, settings = small_library
    run_ingest(settings, hashing, progress=False)
    record_model(_collection(settings), "bge-large-zh@0123456789ab")
    with pytest.raises(StoreModelMismatch) as info:
        run_ingest(settings, hashing, progress=False)
    assert "bge-large-zh@0123456789ab" in str(info.value) and "--rebuild" in str(info.value)
    assert _collection(settings).count() > 0  # refusing touched nothing
    report = run_ingest(settings, hashing, rebuild=True, progress=False)
    assert report.documents_added == 2
    assert stored_model(_collection(settings)) == hashing.model_name
    _assert_store_matches_library(folder, settings)


def test_bad_files_are_skipped_with_reasons_and_stored_docs_survive(
    small_library: tuple[Path, Settings], hashing: Any
) -> None:
    folder, settings = small_library
    run_ingest(settings, hashing, progress=False)
    before = _stored_by_doc(settings)
    broken = folder / SMALL_FILES[1]
    broken.write_bytes(b"")  # a stored document that became unreadable
    (folder / "空白.md").write_text("   \n", encoding="utf-8")
    (folder / "扫描件.pdf").write_bytes(b"%PDF-1.4 not really a pdf")
    (folder / "表格.xlsx").write_bytes(b"PK\x03\x04 spreadsheet")
    report = run_ingest(settings, hashing, progress=False)
    reasons = dict(report.skipped)
    assert set(reasons) == {broken.name, "空白.md", "扫描件.pdf", "表格.xlsx"}
    assert all(reasons.values())
    assert report.errors == [] and report.documents_pruned == 0
    after = _stored_by_doc(settings)
    assert [d.page_content for d in after[broken.name]] == [d.page_content for d in before[broken.name]]
    assert len(after[SMALL_FILES[0]]) == len(before[SMALL_FILES[0]])


def test_ingest_killed_mid_document_is_completed_by_the_next_run(
    small_library: tuple[Path, Settings], hashing: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, settings = small_library
    run_ingest(settings, hashing, progress=False)
    target = folder / SMALL_FILES[0]
    target.write_text(target.read_text(encoding="utf-8").replace("问责", "追责"), encoding="utf-8")
    speech = folder / SMALL_FILES[1]  # a document with views
    speech.write_text(speech.read_text(encoding="utf-8").replace("干部", "同志"), encoding="utf-8")
    monkeypatch.setattr(indexer, "BATCH_SIZE", 4)
    # Die in the second batch of the first document, then in the second batch of the speech's records.
    with pytest.raises(KeyboardInterrupt):
        run_ingest(settings, DyingEmbeddings(hashing, calls=1), progress=False)
    half = _stored_by_doc(settings)[target.name]
    assert {d.metadata["content_hash"] for d in half} != {load_file(target, settings.ingest).content_hash}
    target_records = len(_expected_chunks(target, settings)) + len(_expected_views(target, settings))
    with pytest.raises(KeyboardInterrupt):
        run_ingest(settings, DyingEmbeddings(hashing, calls=-(-target_records // 4) + 1), progress=False)
    speech_hashes = {
        meta["content_hash"] for _, meta, _ in _stored_views(settings) if meta["file"] == speech.name
    }
    speech_hashes |= {d.metadata["content_hash"] for d in _stored_by_doc(settings)[speech.name]}
    assert len(speech_hashes) == 2  # half old, half new: chunks and views mixed

    report = run_ingest(settings, hashing, progress=False)
    assert (report.documents_updated, report.documents_unchanged) == (1, 1)
    _assert_store_matches_library(folder, settings)
    assert not any("问责" in d.page_content for d in _stored_by_doc(settings)[target.name])
    assert not any("干部" in text for _, meta, text in _stored_views(settings) if meta["file"] == speech.name)


def test_unreachable_chroma_server_gives_a_clear_error(tmp_path: Path, make_settings: Any) -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = make_settings(tmp_path, chroma={"host": "127.0.0.1", "port": port})
    with pytest.raises(StoreError, match="chroma run"):
        open_client(settings)
