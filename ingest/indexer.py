"""Index the library into Chroma: stable ids, change detection, upsert, prune.

Every chunk is stored as one primary record (``view="chunk"``) plus its
views (``ingest.views``: extra vectors of a sentence or two, ids
``f"{chunk_id}#v{n}"``, ``view="window"``, ``parent_id``).

Crash safety: a changed document's new records are upserted first (stable ids,
so a repeat never duplicates) and its stale records (old chunks and their
views) deleted afterwards, and only then is the document's manifest entry
(``assistant.manifest``) written with a new stamp. Every record carries the document's
``content_hash``, ``doc_chunks`` (its document's primary chunk count) and
``doc_records`` (chunks + views); a document counts as unchanged only when all
stored records carry the current hash and chunker fingerprint (which covers
the view settings) and their number equals ``doc_records`` (``ingest.records``). A run killed
half-way therefore leaves documents that the next run simply redoes, and
nothing stored is lost. Pruning a document drops its views with it, then its manifest entry.

What is stored is read from the manifest, and a changed document's stored record ids with
one filtered query: adding one file never scans the whole collection (``ingest.records``).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from langchain_core.embeddings import Embeddings

from assistant.associated import AssociatedQuestion
from assistant.config import Settings
from assistant.manifest import delete_entries, drop_orphan_manifests, write_entries
from assistant.store import check_model, mark_changed, open_client, open_collection
from ingest.chunking import chunk_document
from ingest.discovery import discover
from ingest.loaders import LoadError, doc_id_for, load_file
from ingest.pending import PendingDocument, pending_document
from ingest.rebuild import discard_rebuild, finish_interrupted_switch, start_rebuild, switch_over
from ingest.records import (
    CHUNKER_KEY,
    batches,
    chunker_fingerprint,
    document_fingerprint,
    is_complete,
    new_entry,
    record_ids,
    stored_by_manifest,
    stored_totals,
    stored_vectors,
)
from ingest.report import IngestReport as IngestReport  # re-exported: part of this module's interface
from ingest.views import DEFAULT_VIEWS, ViewSpec, load_associated

logger = logging.getLogger(__name__)

BATCH_SIZE = 64


def run_ingest(
    settings: Settings,
    embeddings: Embeddings,
    paths: list[Path] | None = None,
    *,
    rebuild: bool = False,
    progress: bool = True,
    views: ViewSpec = DEFAULT_VIEWS,
    on_progress: Callable[[int, int], None] | None = None,
) -> IngestReport:
    """Bring the index in line with the library (or with ``paths`` only).

    Documents whose stored chunks are complete and carry the current content
    hash are not re-embedded. Documents missing from the configured library
    are pruned, but only when the whole library is ingested (``paths`` is
    None) and never because a file failed to load this time. Raises
    ``StoreModelMismatch`` when the index was built by another model, unless
    ``rebuild``: that builds a new collection aside while the old one keeps
    serving, and switches over only when the build is complete (not when a
    library folder is missing or nothing could be indexed; ``ingest.rebuild``).
    ``views`` says which extra vectors each chunk gets (``ingest.views``); associated
    questions (``assistant.associated``) become views of their article too.
    ``on_progress(done, total)`` is called after each embedded batch (records, chunks and views).
    """
    started = time.perf_counter()
    indexed_at = datetime.now(UTC).isoformat(timespec="seconds")  # stored with every record written
    report = IngestReport()
    model_name = str(getattr(embeddings, "model_name", "") or type(embeddings).__name__)
    chunker = chunker_fingerprint(settings.ingest, views)

    client = open_client(settings)
    finish_interrupted_switch(client, settings)
    # A rebuild writes into a new collection; the serving one is untouched until the switch.
    target = start_rebuild(client, settings) if rebuild else settings
    collection = open_collection(client, target, model_name)
    check_model(collection, model_name)

    full_library = paths is None
    roots = [Path(p) for p in (settings.ingest.library_dirs if paths is None else paths)]
    missing_roots = [root for root in roots if full_library and not root.exists()]
    for root in missing_roots:
        report.errors.append(
            (str(root), f"文件库目录不存在：{root}。请检查 ingest.library_dirs；本次不移除任何已入库文件。")
        )
    may_prune = full_library and not missing_roots
    discovery = discover(roots, settings.ingest)
    report.skipped.extend(discovery.skipped)  # hidden files and folders
    stored = stored_by_manifest(client, collection)
    loaded = load_associated(settings)
    questions_of: dict[str, list[AssociatedQuestion]] = {}  # file -> its questions, grouped once
    for question in loaded.questions:
        questions_of.setdefault(question.file, []).append(question)
    report.errors.extend(loaded.problems)

    # Phase 1: load, compare, chunk (cheap).
    seen_ids: set[str] = set()
    seen_names: dict[str, Path] = {}
    first_with_content: dict[str, tuple[str, str]] = {}  # content hash -> (file, doc_id) indexed for it
    duplicates: dict[str, str] = {}  # doc_id of a duplicate -> doc_id of the document kept
    indexed: set[str] = set()  # doc_ids stored complete at the end of phase 2
    pending: list[PendingDocument] = []
    for path in discovery.files:
        doc_id = doc_id_for(path.name)
        if doc_id in seen_ids:
            report.skipped.append(
                (path.name, f"与 {seen_names[doc_id]} 同名（文档按文件名识别），已跳过。请改名后再导入。")
            )
            continue
        seen_ids.add(doc_id)  # even if it fails to load: never prune it for that
        seen_names[doc_id] = path
        kept = "（库中原有版本保留）" if doc_id in stored else ""
        try:
            doc = load_file(path, settings.ingest)
        except LoadError as exc:
            report.skipped.append((path.name, f"{exc}{kept}"))
            continue
        except Exception as exc:  # load_file raises only LoadError; a bug there must not stop the run
            logger.exception("读取失败：%s", path)
            report.skipped.append(
                (
                    path.name,
                    f"读取文件时出错（{type(exc).__name__}），已跳过{kept}。请把导入日志交给维护人员。",
                )
            )
            continue
        first_file, first_id = first_with_content.setdefault(doc.content_hash, (doc.file, doc_id))
        if first_id != doc_id:
            # The same bytes under a second name: index them once, or answers cite the same quote twice.
            duplicates[doc_id] = first_id
            report.skipped.append((doc.file, f"与 {first_file} 内容相同，已跳过（同一内容只索引一次）。"))
            logger.warning("%s 与 %s 内容相同，只索引 %s", doc.file, first_file, first_file)
            continue
        report.documents_seen += 1
        entry = stored.get(doc_id)
        questions = questions_of.get(doc.file, [])
        doc_chunker = document_fingerprint(chunker, questions)
        held = entry is not None and path.stem in loaded.held  # its questions file is broken
        if held or (entry is not None and is_complete(entry, doc.content_hash, doc_chunker)):
            report.documents_unchanged += 1
            indexed.add(doc_id)
            continue
        try:
            chunks = chunk_document(doc, settings.ingest)
        except Exception as exc:  # a chunker bug must not stop the whole library
            logger.exception("切分失败：%s", path)
            report.errors.append((doc.file, f"切分失败：{exc}（库中原有版本保留）"))
            continue
        if not chunks:
            report.skipped.append((doc.file, "没有可索引的正文段落，已跳过（库中原有版本保留）。"))
            continue
        unplaced = list(questions)
        item = pending_document(
            doc_id,
            doc,
            chunks,
            is_new=entry is None,
            model_name=model_name,
            chunker=doc_chunker,
            views=views,
            unplaced=unplaced,
        )
        if unplaced:
            logger.warning(
                "%s：%d 个关联问题找不到所指的条文或原文短语，未导入（例如“%s”）",
                doc.file,
                len(unplaced),
                unplaced[0].question[:40],
            )
        if len(set(item.ids)) != len(item.ids):
            report.errors.append((doc.file, "切分结果含重复的块编号，已跳过（库中原有版本保留）。"))
            continue
        item.stamp(indexed_at)
        pending.append(item)

    # Phase 2: embed and write, document by document (upsert first, delete stale after).
    from tqdm import tqdm

    may_remove = may_prune and any(d not in seen_ids or d in duplicates for d in stored)
    if pending or may_remove:
        mark_changed(collection, writing=True)  # readers keep their snapshot until the last write

    total = sum(len(p.ids) for p in pending)
    with tqdm(
        total=total, desc="嵌入", unit="条", disable=not progress or total == 0, file=sys.stderr
    ) as bar:
        for item in pending:
            # Every record stored for it, even without an entry (a first write killed half-way).
            old_ids = record_ids(collection, item.doc_id)
            # Records whose embedded text is unchanged (a status change, an added associated
            # question) keep their stored vector: only new texts are embedded.
            reuse = stored_vectors(collection, item.ids, item.metadatas, old_ids)
            for start, end in batches(len(item.ids), BATCH_SIZE):
                todo = [j for j in range(start, end) if item.ids[j] not in reuse]
                fresh = iter(embeddings.embed_documents([item.embed_texts[j] for j in todo]) if todo else [])
                vectors = [reuse[i] if i in reuse else next(fresh) for i in item.ids[start:end]]
                collection.upsert(
                    ids=item.ids[start:end],
                    embeddings=vectors,  # type: ignore[arg-type]
                    documents=item.texts[start:end],
                    metadatas=item.metadatas[start:end],  # type: ignore[arg-type]
                )
                n_views = sum(item.is_view[j] for j in todo)
                report.views_embedded += n_views
                report.chunks_embedded += len(todo) - n_views
                bar.update(end - start)
                if on_progress is not None:
                    on_progress(bar.n, total)
            stale = sorted(old_ids - set(item.ids))
            for start, end in batches(len(stale), 500):
                collection.delete(ids=stale[start:end])
            chunker = str(item.metadatas[0][CHUNKER_KEY])
            written = new_entry(item.doc_id, item.doc.file, item.doc.content_hash, chunker, item.is_view)
            write_entries(client, collection, [written])  # last: the document is complete
            indexed.add(item.doc_id)
            if item.is_new:
                report.documents_added += 1
            else:
                report.documents_updated += 1

    # Phase 3: prune documents that left the library, and stored duplicates of a document now indexed.
    if may_prune:
        for doc_id, entry in sorted(stored.items()):
            if doc_id in seen_ids and duplicates.get(doc_id) not in indexed:
                continue
            ids_to_drop = sorted(entry.ids or record_ids(collection, doc_id))
            for start, end in batches(len(ids_to_drop), 500):
                collection.delete(ids=ids_to_drop[start:end])
            delete_entries(client, collection, [doc_id])
            report.documents_pruned += 1
            if doc_id in duplicates:
                logger.info("已移除重复文件的索引：%s", entry.file or doc_id)
            else:
                logger.info("已移除不在文件库中的文件：%s", entry.file or doc_id)

    if pending or report.documents_pruned:
        mark_changed(collection)  # the final state: readers rebuild from it
    report.chunks_total, report.views_total = stored_totals(client, collection)
    if rebuild:
        if missing_roots or report.chunks_total == 0:
            discard_rebuild(client, settings)
            why = "文件库目录缺失，新索引不完整" if missing_roots else "没有任何文件可以索引"
            report.errors.append(
                ("--rebuild", f"重建未切换：{why}。原索引保持不变、继续使用；请检查后重新运行 --rebuild。")
            )
        else:
            switch_over(client, settings)
        drop_orphan_manifests(client)
    report.seconds = time.perf_counter() - started
    logger.info(report.summary_line())
    return report
