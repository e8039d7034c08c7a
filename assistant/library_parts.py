"""One document's share of a library snapshot: its chunks, vectors, views and BM25 token ids.

A ``DocPart`` is made once from the document's stored records (``from_records``: the only
place chunks are tokenised) and then carried, unchanged, into every later snapshot until the
document itself changes (its manifest ``stamp``, ``assistant.manifest``).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from langchain_core.documents import Document

from assistant import references, term_counts
from assistant.bm25 import Vocabulary
from assistant.rows import Block
from assistant.schema import STATUS_CURRENT
from assistant.store import PAGE_SIZE, PARENT_KEY, is_view
from assistant.text import YEAR_RE, normalise
from assistant.tokenizer import DomainTokenizer

if TYPE_CHECKING:
    from assistant.library_store import LibraryStore
    from assistant.manifest import DocEntry

Record = tuple[str, dict[str, Any], str, Any]  # id, metadata, text, vector
T = TypeVar("T")


@dataclass
class DocInfo:
    """One document of the library."""

    file: str
    doc_id: str
    title: str
    issuer: str
    date: str
    status: str
    superseded_by: str
    kind: str
    year: str
    group: str  # base title shared by the versions of one text
    has_current_sibling: bool = False
    articles: dict[str, list[int]] = field(default_factory=dict)  # label -> chunk positions
    chunks: int = 0

    @classmethod
    def of(cls, meta: dict[str, Any]) -> DocInfo:
        """A document's info from one of its chunks' metadata (no chunks or articles counted yet)."""
        file = str(meta.get("file", ""))
        title = str(meta.get("title", "")) or file
        date = str(meta.get("date", ""))
        year = YEAR_RE.match(date.lstrip())
        return cls(
            file=file,
            doc_id=str(meta.get("doc_id", "")),
            title=title,
            issuer=str(meta.get("issuer", "")),
            date=date,
            status=str(meta.get("status", "")) or STATUS_CURRENT,
            superseded_by=str(meta.get("superseded_by", "")),
            kind=str(meta.get("kind", "")),
            year=year.group(0) if year else "",
            group=references.base_title(title),
        )

    @property
    def version_years(self) -> set[str]:
        """The years a reader may name this version by: the title's first year, and the years of
        its date's first clause (adopted 2018-12-29, in force 2019-06-01)."""
        first = YEAR_RE.search(self.title)
        clause = re.split(r"[；;]", self.date, maxsplit=1)[0]
        return ({first.group(0)} if first else set()) | {m.group(0) for m in YEAR_RE.finditer(clause)}


def no_spans(m: int) -> np.ndarray:
    """``m`` view spans that point nowhere (``DocPart.view_span``)."""
    return np.full((m, 2), -1, dtype=np.int32)


@dataclass
class DocPart:
    """One document's chunks (by ``chunk_index``) and what the snapshot derives from them."""

    doc_id: str
    file: str
    stamp: str  # the manifest's stamp when read ("" when the store has no manifest)
    chunks: list[Document]
    vectors: Block  # (k, dim) float32, L2-normalised (FileRows: still in a saved snapshot's file)
    view_vectors: Block  # (m, dim) float32, L2-normalised
    view_parent: np.ndarray  # (m,) int64: position of each view's parent chunk in ``chunks``
    tokens: np.ndarray  # int32 BM25 token ids of all chunks, one after the other
    token_offsets: np.ndarray  # (k + 1,) int64: chunk i's tokens are tokens[o[i]:o[i + 1]]
    # (m, 2) int32: where each view's text lies in its parent's text, [start, end); (-1, -1) when
    # it is not a slice of it (an associated question). Lets the answer quote by meaning.
    view_span: np.ndarray
    # What is derived from ``chunks`` alone, computed once (``_once``). The dict itself is shared by
    # the copies ``dataclasses.replace`` makes for later snapshots, so they never recompute it.
    _derived: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_records(
        cls,
        doc_id: str,
        stamp: str,
        records: Iterable[Record],
        tokenizer: DomainTokenizer,
        vocabulary: Vocabulary,
    ) -> DocPart:
        chunks: list[Document] = []
        chunk_vecs: list[Any] = []
        views: list[tuple[str, Any, str]] = []
        seen: set[str] = set()
        for record_id, meta, text, vec in records:
            if record_id in seen:  # paging under concurrent writes may repeat a record
                continue
            seen.add(record_id)
            if is_view(meta):
                views.append((str(meta.get(PARENT_KEY, "")), vec, text or ""))
                continue
            # Interned: a document's chunks share one copy of their title, file, hashes, dates...
            meta = shared_metadata(meta or {})
            meta["chunk_id"] = record_id
            chunks.append(Document(page_content=text or "", metadata=meta, id=record_id))
            chunk_vecs.append(vec)
        order = sorted(range(len(chunks)), key=lambda i: int(chunks[i].metadata.get("chunk_index", 0) or 0))
        chunks = [chunks[i] for i in order]
        vectors = normalised_rows([chunk_vecs[i] for i in order])
        dim = vectors.shape[1] if vectors.ndim == 2 else 0
        pos = {str(d.metadata["chunk_id"]): i for i, d in enumerate(chunks)}
        kept = sorted(((pos[p], v, t) for p, v, t in views if p in pos), key=lambda pv: pv[0])
        view_vectors = normalised_rows([v for _, v, _ in kept], dim)
        view_parent = np.asarray([p for p, _, _ in kept], dtype=np.int64)
        view_span = no_spans(len(kept))
        for j, (p, _, t) in enumerate(kept):
            start = chunks[p].page_content.find(t) if t else -1
            if start >= 0:
                view_span[j] = (start, start + len(t))
        rows = [vocabulary.encode(chunk_tokens(tokenizer, d)) for d in chunks]
        token_offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum([len(r) for r in rows], out=token_offsets[1:])
        tokens = np.concatenate(rows).astype(np.int32) if rows else np.zeros(0, dtype=np.int32)
        file = str(chunks[0].metadata.get("file", "")) if chunks else ""
        return cls(
            doc_id, file, stamp, chunks, vectors, view_vectors, view_parent, tokens, token_offsets, view_span
        )

    def _once(self, key: str, make: Callable[[], T]) -> T:
        if key not in self._derived:
            self._derived[key] = make()
        value: T = self._derived[key]
        return value

    def index_entries(self) -> tuple[list[str], list[tuple[str, int]]]:
        """The chunk ids in order, and ``(article label, position)`` of each chunk that has one
        (a new snapshot offsets them instead of re-reading every chunk's metadata)."""

        def make() -> tuple[list[str], list[tuple[str, int]]]:
            ids = [str(c.metadata["chunk_id"]) for c in self.chunks]
            labels = [(str(c.metadata.get("article", "")), i) for i, c in enumerate(self.chunks)]
            return ids, [(label, i) for label, i in labels if label]

        return self._once("index", make)

    def joined(self) -> tuple[str, list[int]]:
        """The chunk texts joined by NUL and where each starts (``term_counts.join``)."""
        return self._once("joined", lambda: term_counts.join(c.page_content for c in self.chunks))

    def normalised(self) -> str:
        """``normalise`` of each chunk text joined by NUL."""
        return self._once("normalised", lambda: "\x00".join(normalise(c.page_content) for c in self.chunks))


def shared_metadata(meta: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``meta`` whose keys and short string values are interned (one copy per process)."""
    return {
        sys.intern(k): sys.intern(v) if isinstance(v, str) and len(v) <= 300 else v for k, v in meta.items()
    }


def chunk_tokens(tokenizer: DomainTokenizer, doc: Document) -> list[str]:
    """What BM25 indexes of a chunk: title, heading path and text."""
    meta = doc.metadata
    return tokenizer.tokenize(f"{meta.get('title', '')} {meta.get('heading_path', '')} " + doc.page_content)


def normalised_rows(rows: list[Any], dim: int = 0) -> np.ndarray:
    """``rows`` as a float32 matrix with unit-length rows (zero rows stay zero)."""
    if not rows:
        return np.zeros((0, dim), dtype=np.float32)
    matrix = np.asarray(rows, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    matrix /= np.where(norms == 0, 1.0, norms)
    return matrix


def read_parts(
    store: LibraryStore, entries: list[DocEntry], tokenizer: DomainTokenizer, vocabulary: Vocabulary
) -> list[DocPart]:
    """The parts of ``entries``, read from the store ~``PAGE_SIZE`` records at a time (each
    batch's raw records are dropped once made into parts: a lower peak of memory)."""
    parts: list[DocPart] = []
    batch: list[DocEntry] = []
    size = 0
    for i, entry in enumerate(entries):
        batch.append(entry)
        size += entry.records
        if size >= PAGE_SIZE or i == len(entries) - 1:
            parts += parts_of(batch, store.document_records(batch), tokenizer, vocabulary)
            batch, size = [], 0
    return parts


def parts_of(
    entries: list[DocEntry],
    records: dict[str, list[Record]],
    tokenizer: DomainTokenizer,
    vocabulary: Vocabulary,
) -> list[DocPart]:
    """The parts of ``entries`` made from their ``records`` (documents without a chunk left out)."""
    parts = []
    for entry in entries:
        part = DocPart.from_records(
            entry.doc_id, entry.stamp, records.get(entry.doc_id, []), tokenizer, vocabulary
        )
        if part.chunks:
            parts.append(part)
    return parts
