"""Reading the stored library: every record in pages, per-document statistics, and
``LibraryStore``, the collection as the library index sees it (fingerprint, manifest, the
records of given documents, one-pass load).

With a manifest (``assistant.manifest``) whole documents are read by ``doc_id`` filters,
a few thousand records a call: no offset paging, whose calls get slower with the offset.

Views (``view="window"`` records, ``ingest.views``) are loaded as vectors of their
parent chunk and never counted as chunks.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from langchain_core.documents import Document

from assistant.manifest import DocEntry, explains, read_manifest
from assistant.store import GENERATION_KEY, PAGE_SIZE, PARENT_KEY, WRITING_PREFIX, is_view

if TYPE_CHECKING:
    import numpy as np
    from chromadb.api import ClientAPI
    from chromadb.api.models.Collection import Collection


Record = tuple[str, dict[str, Any], str, Any]  # id, metadata, text, vector
_FULL = ["metadatas", "documents", "embeddings"]


def _rows(page: Any) -> Any:
    ids = page["ids"]
    nothing: list[Any] = [None] * len(ids)
    metadatas: list[Any] = list(page.get("metadatas") or nothing)
    documents: list[Any] = list(page.get("documents") or nothing)
    vectors = page.get("embeddings")
    embeddings: list[Any] = list(vectors) if vectors is not None and len(vectors) else nothing
    return zip(ids, metadatas, documents, embeddings, strict=True)


def _iter_records(collection: Collection, include: list[str]) -> Any:
    total = collection.count()
    offset = 0
    while offset < total:
        page = collection.get(include=include, limit=PAGE_SIZE, offset=offset)  # type: ignore[arg-type]
        if not page["ids"]:
            break
        yield from _rows(page)
        offset += len(page["ids"])


def stats_of(metadatas: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """What a library holds, per document, from its primary chunks' metadata.

    ``{"documents": int, "chunks": int, "documents_detail": [{"file", "title",
    "status", "articles", "chunks", "issuer", "date", "indexed_at"}]}``; ``articles`` counts
    distinct non-empty article labels. Sorted by file name.
    """
    per_doc: dict[str, dict[str, Any]] = {}
    articles: dict[str, set[str]] = {}
    chunks = 0
    for meta in metadatas:
        chunks += 1
        key = str(meta.get("doc_id") or meta.get("file") or "")
        detail = per_doc.get(key)
        if detail is None:
            detail = per_doc[key] = {
                "file": str(meta.get("file", "")),
                "title": str(meta.get("title", "")),
                "status": str(meta.get("status", "")),
                "articles": 0,
                "chunks": 0,
                "issuer": str(meta.get("issuer", "")),
                "date": str(meta.get("date", "")),
                "indexed_at": str(meta.get("indexed_at", "")),  # when ingest wrote it ("" before it was kept)
            }
            articles[key] = set()
        detail["chunks"] += 1
        label = str(meta.get("article") or "")
        if label:
            articles[key].add(label)
    for key, detail in per_doc.items():
        detail["articles"] = len(articles[key])
    details = sorted(per_doc.values(), key=lambda d: d["file"])
    return {"documents": len(details), "chunks": chunks, "documents_detail": details}


def library_stats(collection: Collection) -> dict[str, Any]:
    """``stats_of`` the stored primary chunks (a metadata-only scan; views are not counted)."""
    return stats_of(
        meta or {} for _id, meta, _doc, _vec in _iter_records(collection, ["metadatas"]) if not is_view(meta)
    )


@dataclass(frozen=True)
class StoreFingerprint:
    """What identifies one state of the stored library, cheaply: see ``LibraryStore.fingerprint``."""

    collection_id: str
    count: int
    generation: str

    @property
    def writing(self) -> bool:
        """An ingest is between its first and its last write (``store.mark_changed``)."""
        return self.generation.startswith(WRITING_PREFIX)


class LibraryStore:
    """The configured collection, looked up by name on every call (a rebuild may replace it)."""

    def __init__(self, client: ClientAPI, name: str) -> None:
        self.client = client
        self.name = name
        self._count: tuple[tuple[str, str], float, int] | None = None  # (id, generation), read at, count

    def collection(self) -> Collection:
        return self.client.get_collection(self.name)

    def fingerprint(self, count_max_age_s: float = 0.0) -> StoreFingerprint:
        """Collection id, record count and the indexer's generation. The count is the one costly
        read (~70 ms at 743k records): it is reused for up to ``count_max_age_s`` seconds while the
        collection and the generation are unchanged (every ingest changes the generation)."""
        collection = self.collection()
        key = (str(collection.id), str((collection.metadata or {}).get(GENERATION_KEY) or ""))
        now = time.monotonic()
        last = self._count
        if last is not None and last[0] == key and now - last[1] < count_max_age_s:
            count = last[2]
        else:
            count = int(collection.count())
            self._count = (key, now, count)
        return StoreFingerprint(key[0], count, key[1])

    def manifest(self) -> dict[str, DocEntry] | None:
        """The collection's manifest (doc_id -> entry), None when it has none."""
        return read_manifest(self.client, self.collection())

    def document_records(self, entries: list[DocEntry]) -> dict[str, list[Record]]:
        """Every record (chunks and views) of the documents of ``entries``, by doc_id: one
        ``doc_id $in`` query per ~``PAGE_SIZE`` records."""
        collection = self.collection()
        found: dict[str, list[Record]] = {e.doc_id: [] for e in entries}
        batch: list[str] = []
        size = 0
        for i, entry in enumerate(entries):
            batch.append(entry.doc_id)
            size += entry.records
            if size >= PAGE_SIZE or i == len(entries) - 1:
                where: Any = {"doc_id": batch[0]} if len(batch) == 1 else {"doc_id": {"$in": batch}}
                for record in _rows(collection.get(where=where, include=_FULL)):  # type: ignore[arg-type]
                    found.setdefault(str((record[1] or {}).get("doc_id", "")), []).append(record)
                batch, size = [], 0
        return found

    def all_records(self) -> dict[str, list[Record]]:
        """Every record, by doc_id, in offset pages (a store without a manifest)."""
        found: dict[str, list[Record]] = {}
        for record in _iter_records(self.collection(), _FULL):
            meta = record[1] or {}
            found.setdefault(str(meta.get("doc_id") or meta.get("file") or ""), []).append(record)
        return found

    def every_record(self) -> dict[str, list[Record]]:
        """Every record by doc_id: per document when the manifest explains the collection,
        else in offset pages."""
        entries = self.manifest()
        if entries is not None and explains(entries, self.collection().count()):
            return self.document_records([entries[d] for d in sorted(entries)])
        return self.all_records()

    def load_all(self) -> tuple[list[Document], np.ndarray, np.ndarray, np.ndarray]:
        """Every primary chunk (sorted by file and position) with its L2-normalised vector, and the
        vectors of the views whose parent is stored with the position of that parent (one pass)."""
        import numpy as np

        chunks: list[Document] = []
        chunk_vecs: list[Any] = []
        view_vecs: list[Any] = []
        view_parents: list[str] = []
        seen: set[str] = set()
        every = self.every_record()
        for record_id, meta, text, vec in (r for records in every.values() for r in records):
            if record_id in seen:  # offset paging under concurrent writes may repeat a record
                continue
            seen.add(record_id)
            meta = dict(meta or {})
            if is_view(meta):
                view_vecs.append(vec)
                view_parents.append(str(meta.get(PARENT_KEY, "")))
                continue
            meta["chunk_id"] = record_id
            chunks.append(Document(page_content=text or "", metadata=meta, id=record_id))
            chunk_vecs.append(vec)
        order = sorted(
            range(len(chunks)),
            key=lambda i: (
                str(chunks[i].metadata.get("file", "")),
                int(chunks[i].metadata.get("chunk_index", 0) or 0),
            ),
        )
        chunks = [chunks[i] for i in order]
        vectors = _normalised([chunk_vecs[i] for i in order])
        pos = {str(d.metadata["chunk_id"]): i for i, d in enumerate(chunks)}
        kept = [(v, pos[p]) for v, p in zip(view_vecs, view_parents, strict=True) if p in pos]
        dim = vectors.shape[1] if len(vectors) else 0
        views = _normalised([v for v, _ in kept]) if kept else np.zeros((0, dim), dtype=np.float32)
        parents = np.asarray([p for _, p in kept], dtype=np.int64)
        return chunks, vectors, views, parents


def _normalised(rows: list[Any]) -> np.ndarray:
    import numpy as np

    if not rows:
        return np.zeros((0, 0), dtype=np.float32)
    matrix = np.asarray(rows, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    matrix /= np.where(norms == 0, 1.0, norms)
    return matrix
