"""A changed document's records, built from its chunks and waiting to be embedded and written.

Every chunk becomes one primary record (``view="chunk"``) followed by its views
(``ingest.views``: sentence windows, and the associated questions placed on it), with ids
``f"{chunk_id}#v{n}"``, ``view="window"`` and ``parent_id``. Every record carries the keys of
``ingest.records`` that tell a complete document from a half-written one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ingest.chunking import Chunk, chunk_id
from ingest.loaders import LoadedDocument
from ingest.records import (
    CHUNKER_KEY,
    DOC_CHUNKS_KEY,
    DOC_RECORDS_KEY,
    EMBED_HASH_KEY,
    INDEXED_AT_KEY,
    clean_metadata,
    embed_hash,
)
from ingest.views import (
    PARENT_KEY,
    VIEW_CHUNK,
    VIEW_KEY,
    VIEW_WINDOW,
    ViewSpec,
    associated_views,
    chunk_views,
    view_id,
)

if TYPE_CHECKING:
    from assistant.associated import AssociatedQuestion


@dataclass
class PendingDocument:
    doc_id: str
    doc: LoadedDocument
    ids: list[str]  # chunks and views, each chunk followed by its views
    texts: list[str]  # stored document text (the view's own text for a view)
    embed_texts: list[str]
    metadatas: list[dict[str, str | int | float | bool]]
    is_view: list[bool]
    is_new: bool

    def stamp(self, indexed_at: str) -> None:
        """Give every record the document's record count, its embedded text's hash and the run's time."""
        for meta, embed_text in zip(self.metadatas, self.embed_texts, strict=True):
            meta[DOC_RECORDS_KEY] = len(self.ids)
            meta[EMBED_HASH_KEY] = embed_hash(embed_text)
            meta[INDEXED_AT_KEY] = indexed_at


def pending_document(
    doc_id: str,
    doc: LoadedDocument,
    chunks: list[Chunk],
    *,
    is_new: bool,
    model_name: str,
    chunker: str,
    views: ViewSpec,
    unplaced: list[AssociatedQuestion],
) -> PendingDocument:
    """The records of ``doc``'s chunks and their views; questions placed on a chunk leave ``unplaced``."""
    item = PendingDocument(doc_id, doc, [], [], [], [], [], is_new=is_new)
    for index, chunk in enumerate(chunks):
        meta = clean_metadata(dict(chunk.metadata))
        chunk_index = int(meta.get("chunk_index", index))
        meta.update(
            {
                "doc_id": doc_id,
                "file": doc.file,
                "chunk_index": chunk_index,
                "content_hash": doc.content_hash,
                "embedding_model": model_name,
                DOC_CHUNKS_KEY: len(chunks),
                CHUNKER_KEY: chunker,
                VIEW_KEY: VIEW_CHUNK,
            }
        )
        cid = chunk_id(doc_id, chunk_index, chunk.text)
        item.ids.append(cid)
        item.texts.append(chunk.text)
        item.embed_texts.append(chunk.embed_text)
        item.metadatas.append(meta)
        item.is_view.append(False)
        extra = chunk_views(chunk, views) + associated_views(chunk, unplaced)
        for n, (text, embed_text) in enumerate(extra):
            item.ids.append(view_id(cid, n))
            item.texts.append(text)
            item.embed_texts.append(embed_text)
            item.metadatas.append({**meta, VIEW_KEY: VIEW_WINDOW, PARENT_KEY: cid})
            item.is_view.append(True)
    return item
