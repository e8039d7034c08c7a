"""The library manifest: one small record per stored document, kept by the indexer.

Each entry says what the store holds for one document: file, content hash, chunker
fingerprint, primary chunk and record counts, and a ``stamp`` that changes on every write
of the document. The indexer reads it instead of scanning every record's metadata, and the
library index compares stamps with its snapshot's to fetch only the documents that changed.

It lives in a Chroma collection of its own named after the library collection's *id*
(``manifest-<id>``): a rebuild's new collection gets a new manifest, and renaming a collection
(``ingest.rebuild``) keeps it. The indexer writes an entry only after all of the document's
records are written and its stale ones deleted, and drops it only after the records; so the
entries' record counts sum to the collection's count exactly when the manifest explains the
store (``explains``), and readers fall back to reading everything when it does not.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chromadb.api import ClientAPI
    from chromadb.api.models.Collection import Collection

MANIFEST_PREFIX = "manifest-"
_PAGE = 5000


@dataclass(frozen=True)
class DocEntry:
    """What the store holds for one document (see the module docstring)."""

    doc_id: str
    file: str
    content_hash: str
    chunker: str
    chunks: int  # primary records
    records: int  # chunks + views
    stamp: str  # new on every write of the document


def manifest_name(collection_id: Any) -> str:
    return f"{MANIFEST_PREFIX}{collection_id}"


def _manifest(client: ClientAPI, collection: Collection, *, create: bool) -> Collection | None:
    from chromadb.errors import NotFoundError

    name = manifest_name(collection.id)
    if create:
        return client.get_or_create_collection(name, embedding_function=None)
    try:
        return client.get_collection(name, embedding_function=None)
    except (NotFoundError, ValueError):
        return None


def read_manifest(client: ClientAPI, collection: Collection) -> dict[str, DocEntry] | None:
    """doc_id -> entry, or None when the collection has no manifest (a store from before it)."""
    manifest = _manifest(client, collection, create=False)
    if manifest is None:
        return None
    entries: dict[str, DocEntry] = {}
    total = manifest.count()
    offset = 0
    while offset < total:  # a few thousand small records: offset paging is cheap here
        page = manifest.get(include=["metadatas"], limit=_PAGE, offset=offset)  # type: ignore[list-item]
        if not page["ids"]:
            break
        for meta in page["metadatas"] or []:
            entry = _entry(meta or {})
            if entry is not None:
                entries[entry.doc_id] = entry
        offset += len(page["ids"])
    return entries


def _entry(meta: Any) -> DocEntry | None:
    try:
        return DocEntry(
            doc_id=str(meta["doc_id"]),
            file=str(meta.get("file", "")),
            content_hash=str(meta.get("content_hash", "")),
            chunker=str(meta.get("chunker", "")),
            chunks=int(meta["chunks"]),
            records=int(meta["records"]),
            stamp=str(meta["stamp"]),
        )
    except (KeyError, TypeError, ValueError):
        return None


def explains(entries: dict[str, DocEntry] | None, count: int) -> bool:
    """True when the manifest accounts for every record of a collection holding ``count``."""
    return entries is not None and sum(e.records for e in entries.values()) == count


def write_entries(client: ClientAPI, collection: Collection, entries: list[DocEntry]) -> None:
    if not entries:
        return
    manifest = _manifest(client, collection, create=True)
    assert manifest is not None
    for start in range(0, len(entries), _PAGE):
        batch = entries[start : start + _PAGE]
        manifest.upsert(
            ids=[e.doc_id for e in batch],
            embeddings=[[1.0] for _ in batch],  # type: ignore[arg-type]  # records need a vector
            metadatas=[asdict(e) for e in batch],  # type: ignore[misc]
        )


def delete_entries(client: ClientAPI, collection: Collection, doc_ids: list[str]) -> None:
    manifest = _manifest(client, collection, create=False)
    if manifest is not None and doc_ids:
        for start in range(0, len(doc_ids), _PAGE):
            manifest.delete(ids=doc_ids[start : start + _PAGE])


def reset_manifest(client: ClientAPI, collection: Collection, entries: list[DocEntry]) -> None:
    """Replace the whole manifest by ``entries`` (after a full scan of the collection)."""
    from chromadb.errors import NotFoundError

    try:
        client.delete_collection(manifest_name(collection.id))
    except (NotFoundError, ValueError):
        pass
    _manifest(client, collection, create=True)
    write_entries(client, collection, entries)


def drop_orphan_manifests(client: ClientAPI) -> None:
    """Drop the manifests of collections that no longer exist (after a rebuild's switch)."""
    from chromadb.errors import NotFoundError

    collections = list(client.list_collections())
    names = {c if isinstance(c, str) else c.name for c in collections}
    ids = set()
    for name in names:
        if not name.startswith(MANIFEST_PREFIX):
            try:
                ids.add(str(client.get_collection(name, embedding_function=None).id))
            except (NotFoundError, ValueError):
                continue
    for name in names:
        if name.startswith(MANIFEST_PREFIX) and name[len(MANIFEST_PREFIX) :] not in ids:
            try:
                client.delete_collection(name)
            except (NotFoundError, ValueError):
                pass
