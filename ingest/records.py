"""What every stored record carries, and reading the store back per document.

Besides the chunker's metadata, every record (primary chunk or view) carries
its document's ``content_hash``, ``doc_chunks`` (the document's primary chunk
count), ``doc_records`` (chunks + views) and ``chunker`` (fingerprint of the
chunking and view settings). A document counts as unchanged only when all its
stored records carry the current hash and fingerprint and their number equals
``doc_records`` (see ``is_complete``).

The indexer learns what is stored from the manifest (``assistant.manifest``: one entry per
document, written once its records are complete), not by scanning every record; a full scan
(``stored_documents``) only happens when the manifest is missing or does not explain the
collection's record count, and it rewrites the manifest.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from assistant.associated import questions_digest
from assistant.config import IngestSettings
from assistant.manifest import DocEntry, explains, read_manifest, reset_manifest
from ingest.views import DEFAULT_VIEWS, VIEW_KEY, VIEW_WINDOW, ViewSpec

if TYPE_CHECKING:
    from chromadb.api import ClientAPI
    from chromadb.api.models.Collection import Collection

    from assistant.associated import AssociatedQuestion

# Metadata keys the indexer adds on top of the chunker's.
DOC_CHUNKS_KEY = "doc_chunks"
DOC_RECORDS_KEY = "doc_records"
CHUNKER_KEY = "chunker"
# Hash of the text a record's vector was computed from: an unchanged one lets the vector be reused.
EMBED_HASH_KEY = "embed_hash"
# When the record was written (UTC, ISO 8601): the document's ingest time in the admin console.
INDEXED_AT_KEY = "indexed_at"
# Bump when chunk or view records change shape: every document is re-indexed.
RECORD_FORMAT = 2


@dataclass
class StoredDoc:
    ids: set[str] = field(default_factory=set)  # all records (full scan only; else ``record_ids``)
    records: int = 0  # chunks and views
    chunk_count: int = 0  # primary records
    hashes: set[str] = field(default_factory=set)
    chunkers: set[str] = field(default_factory=set)
    doc_chunks: set[int] = field(default_factory=set)
    doc_records: set[int] = field(default_factory=set)
    file: str = ""


def chunker_fingerprint(settings: IngestSettings, views: ViewSpec = DEFAULT_VIEWS) -> str:
    """Short hash of what shapes the records: changing it re-indexes every document."""
    keys = {
        "min_chunk_chars": settings.min_chunk_chars,
        "max_chunk_chars": settings.max_chunk_chars,
        "max_article_chars": settings.max_article_chars,
        "views": views.fingerprint(),
        "format": RECORD_FORMAT,
    }
    return hashlib.sha1(json.dumps(keys, sort_keys=True).encode()).hexdigest()[:12]


def document_fingerprint(chunker: str, questions: list[AssociatedQuestion]) -> str:
    """One document's ``chunker`` value: the chunker's fingerprint plus its associated questions',
    so attaching or removing a question re-indexes that document (and only it)."""
    digest = questions_digest(questions)
    return f"{chunker}+q{digest}" if digest else chunker


def embed_hash(embed_text: str) -> str:
    return hashlib.sha1(embed_text.encode("utf-8")).hexdigest()[:16]


def stored_vectors(
    collection: Collection, ids: list[str], metadatas: list[dict[str, Any]], stored_ids: set[str]
) -> dict[str, Any]:
    """Stored vectors of ``ids`` whose record was embedded from the same text (same
    ``embed_hash``; the collection's model is checked before any write), by id."""
    wanted = {i: m.get(EMBED_HASH_KEY) for i, m in zip(ids, metadatas, strict=True) if i in stored_ids}
    if not wanted:
        return {}
    found: dict[str, Any] = {}
    keys = sorted(wanted)
    for start, end in batches(len(keys), 500):
        page = collection.get(ids=keys[start:end], include=["metadatas", "embeddings"])  # type: ignore[list-item]
        vectors = page.get("embeddings")
        if vectors is None or not len(vectors):
            continue
        for rid, meta, vector in zip(page["ids"], page["metadatas"] or [], vectors, strict=True):
            if meta and meta.get(EMBED_HASH_KEY) == wanted.get(rid):
                found[rid] = [float(x) for x in vector]
    return found


def stored_documents(collection: Collection) -> dict[str, StoredDoc]:
    """One pass over the collection's metadata, grouped by doc_id."""
    stored: dict[str, StoredDoc] = {}
    total = collection.count()
    offset = 0
    while offset < total:
        page = collection.get(include=["metadatas"], limit=1000, offset=offset)  # type: ignore[list-item]
        ids = page["ids"]
        if not ids:
            break
        for cid, meta in zip(ids, page["metadatas"] or [{}] * len(ids), strict=True):
            meta = meta or {}
            entry = stored.setdefault(str(meta.get("doc_id", "")), StoredDoc())
            entry.ids.add(cid)
            entry.records += 1
            if meta.get(VIEW_KEY) != VIEW_WINDOW:
                entry.chunk_count += 1
            entry.hashes.add(str(meta.get("content_hash", "")))
            entry.chunkers.add(str(meta.get(CHUNKER_KEY, "")))
            entry.doc_chunks.add(_int_or(meta.get(DOC_CHUNKS_KEY)))
            entry.doc_records.add(_int_or(meta.get(DOC_RECORDS_KEY)))
            entry.file = entry.file or str(meta.get("file", ""))
        offset += len(ids)
    return stored


def _int_or(value: Any, default: int = -1) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else default


def is_complete(entry: StoredDoc, content_hash: str, chunker: str) -> bool:
    return (
        entry.hashes == {content_hash}
        and entry.chunkers == {chunker}
        and entry.doc_chunks == {entry.chunk_count}
        and entry.doc_records == {entry.records}
    )


def _from_entry(entry: DocEntry) -> StoredDoc:
    return StoredDoc(
        records=entry.records,
        chunk_count=entry.chunks,
        hashes={entry.content_hash},
        chunkers={entry.chunker},
        doc_chunks={entry.chunks},
        doc_records={entry.records},
        file=entry.file,
    )


def manifest_entry(doc_id: str, doc: StoredDoc, stamp: str) -> DocEntry | None:
    """The manifest entry of a fully scanned document, or None when its records are not one
    complete write (mixed hashes or counts: the next ingest redoes it)."""
    if len(doc.hashes) != 1 or len(doc.chunkers) != 1 or doc.doc_chunks != {doc.chunk_count}:
        return None
    if doc.doc_records != {doc.records}:
        return None
    return DocEntry(
        doc_id,
        doc.file,
        next(iter(doc.hashes)),
        next(iter(doc.chunkers)),
        doc.chunk_count,
        doc.records,
        stamp,
    )


def new_entry(doc_id: str, file: str, content_hash: str, chunker: str, is_view: list[bool]) -> DocEntry:
    """The manifest entry of a document just written (records: chunks and views), with a new stamp."""
    import uuid

    return DocEntry(doc_id, file, content_hash, chunker, is_view.count(False), len(is_view), uuid.uuid4().hex)


def stored_by_manifest(client: ClientAPI, collection: Collection) -> dict[str, StoredDoc]:
    """What the collection holds per doc_id: from the manifest when it explains the collection,
    else from one full scan, which then rewrites the manifest."""
    import uuid

    entries = read_manifest(client, collection)
    if entries is not None and explains(entries, collection.count()):
        return {doc_id: _from_entry(e) for doc_id, e in entries.items()}
    stored = stored_documents(collection)
    fresh = [manifest_entry(d, s, uuid.uuid4().hex) for d, s in sorted(stored.items())]
    reset_manifest(client, collection, [e for e in fresh if e is not None])
    return stored


def record_ids(collection: Collection, doc_id: str) -> set[str]:
    """Ids of every record (chunks and views) stored for ``doc_id`` (one filtered query)."""
    return set(collection.get(where={"doc_id": doc_id}, include=[])["ids"])


def count_records(collection: Collection) -> tuple[int, int]:
    """(primary chunks, views) stored in the collection."""
    views = 0
    total = collection.count()
    offset = 0
    while offset < total:
        page = collection.get(include=["metadatas"], limit=1000, offset=offset)  # type: ignore[list-item]
        if not page["ids"]:
            break
        views += sum(1 for m in page["metadatas"] or [] if (m or {}).get(VIEW_KEY) == VIEW_WINDOW)
        offset += len(page["ids"])
    return offset - views, views


def stored_totals(client: ClientAPI, collection: Collection) -> tuple[int, int]:
    """(primary chunks, views) stored: from the manifest, or counted when it does not explain
    the collection (e.g. a document whose new version failed mid-write)."""
    entries = read_manifest(client, collection)
    if entries is not None and explains(entries, collection.count()):
        chunks = sum(e.chunks for e in entries.values())
        return chunks, sum(e.records for e in entries.values()) - chunks
    return count_records(collection)


def clean_metadata(raw: dict[str, Any]) -> dict[str, str | int | float | bool]:
    clean: dict[str, str | int | float | bool] = {}
    for key, value in raw.items():
        if value is None:
            clean[key] = ""
        elif isinstance(value, str | int | float | bool):
            clean[key] = value
        else:
            clean[key] = str(value)
    return clean


def batches(n: int, size: int) -> Iterable[tuple[int, int]]:
    for start in range(0, n, size):
        yield start, min(n, start + size)
