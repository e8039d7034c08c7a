"""One immutable snapshot of the stored library, assembled from per-document parts.

``Library`` holds the primary chunks, their vectors and their views' vectors, the BM25 index,
one ``DocInfo`` per document (title, status, year, versions, article positions), the version
links (old file -> current file), per-term document frequencies and the normalised text used
for quote checks. The retriever, the decline policy and the version logic all read it.

A snapshot is made of ``DocPart``s, one per document (``assistant.library_parts``): a new
snapshot after a change reuses the unchanged documents' parts (their ``Document`` objects,
vectors and token ids, never re-read nor re-tokenised) and only concatenates arrays and
re-indexes BM25 from the cached token ids.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
from langchain_core.documents import Document

from assistant import term_counts
from assistant.bm25 import Bm25, Vocabulary
from assistant.library_parts import DocInfo, DocPart, no_spans
from assistant.library_store import StoreFingerprint, stats_of
from assistant.rows import Matrix, Rows
from assistant.schema import STATUS_CURRENT
from assistant.text import normalise
from assistant.tokenizer import DomainTokenizer

_SEP = term_counts.SEP


def _concat(blocks: list[Any], dim: int, dtype: Any = np.float32) -> np.ndarray:
    arrays = [np.asarray(a) for a in blocks if len(a)]
    if not arrays:
        return np.zeros((0, dim) if dim else (0,), dtype=dtype)
    return np.concatenate(arrays)


@dataclass
class Library:
    """An immutable snapshot of the stored library (see the module docstring)."""

    fingerprint: StoreFingerprint
    chunks: list[Document]  # primary chunks, sorted by (file, chunk_index)
    vectors: Matrix  # (n, dim) float32, L2-normalised (``Rows`` above the in-memory budget)
    view_vectors: Matrix  # (m, dim) float32, L2-normalised: the chunks' views (ingest.views)
    view_parent: np.ndarray  # (m,) int: position of each view's parent chunk
    bm25: Bm25 | None  # .get_scores(tokens) -> one Okapi BM25 score per chunk
    tokenizer: DomainTokenizer
    vocabulary: Vocabulary = field(default_factory=Vocabulary)
    parts: dict[str, DocPart] = field(default_factory=dict)  # doc_id -> part, in chunk order
    tokens: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))  # BM25 token ids
    token_offsets: np.ndarray = field(default_factory=lambda: np.zeros(1, dtype=np.int64))
    view_span: np.ndarray = field(default_factory=lambda: no_spans(0))  # (m, 2): ``DocPart.view_span``
    docs: dict[str, DocInfo] = field(default_factory=dict)  # file -> info
    titles: dict[str, list[str]] = field(default_factory=dict)  # title -> files
    successor: dict[str, str] = field(default_factory=dict)  # superseded file -> its current version
    predecessor: dict[str, str] = field(default_factory=dict)
    pos: dict[str, int] = field(default_factory=dict)  # chunk id -> position
    df_sample: int = 0  # above this many chunks doc_freq counts in a sample (0: always exact)
    terms_seen: term_counts.BigramFilter | None = None  # large libraries: the chunks' character pairs
    _df: dict[str, int] = field(default_factory=dict, repr=False)
    _df_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def assemble(
        cls,
        fingerprint: StoreFingerprint,
        parts: list[DocPart],
        tokenizer: DomainTokenizer,
        vocabulary: Vocabulary,
        *,
        bm25: Bm25 | None = None,
        df: dict[str, int] | None = None,
        max_in_memory: int | None = None,
    ) -> Library:
        """The snapshot of ``parts`` (any order; sorted by file). ``bm25``: an index already built
        for exactly these parts (a saved one); ``df``: document frequencies known for them.
        Above ``max_in_memory`` vectors (chunks and views) the parts' arrays are not copied into
        one: ``vectors`` and ``view_vectors`` are ``Rows`` over them (``assistant.rows``)."""
        parts = sorted(parts, key=lambda p: (p.file, p.doc_id))
        dim = next((p.vectors.shape[1] for p in parts if p.vectors.ndim == 2 and len(p.vectors)), 0)
        chunks = [c for p in parts for c in p.chunks]
        starts = np.cumsum([0] + [len(p.chunks) for p in parts])
        total = len(chunks) + sum(len(p.view_vectors) for p in parts)
        vectors: Matrix
        view_vectors: Matrix
        if max_in_memory is not None and total > max_in_memory:
            vectors = Rows([p.vectors for p in parts], dim)
            view_vectors = Rows([p.view_vectors for p in parts], dim)
        else:
            vectors = _concat([p.vectors for p in parts], dim)
            view_vectors = _concat([p.view_vectors for p in parts], dim)
        view_parent = _concat(
            [p.view_parent + int(s) for p, s in zip(parts, starts, strict=False)], 0, np.int64
        ).astype(np.int64)
        tokens = _concat([p.tokens for p in parts], 0, np.int32).astype(np.int32)
        lengths = [np.diff(p.token_offsets) for p in parts]
        token_offsets = np.zeros(len(chunks) + 1, dtype=np.int64)
        if chunks:
            np.cumsum(np.concatenate(lengths), out=token_offsets[1:])
        if bm25 is None:
            bm25 = Bm25.build(vocabulary, tokens, token_offsets)
        lib = cls(fingerprint, chunks, vectors, view_vectors, view_parent, bm25, tokenizer, vocabulary)
        lib.tokens, lib.token_offsets = tokens, token_offsets
        lib.view_span = _concat([p.view_span for p in parts], 2, np.int32)
        # The parts now point into this snapshot's arrays: an older snapshot's arrays are freed with it
        # (with Rows, the parts' own arrays are the snapshot's: they are kept as they are).
        vstart = 0
        for p, s in zip(parts, starts, strict=False):
            n, m = len(p.chunks), len(p.view_vectors)
            own = isinstance(vectors, Rows)
            lib.parts[p.doc_id] = dataclasses.replace(
                p,
                vectors=p.vectors if own else vectors[s : s + n],
                view_vectors=p.view_vectors if own else view_vectors[vstart : vstart + m],
                tokens=tokens[token_offsets[s] : token_offsets[s + n]],
            )
            vstart += m
        lib._index_documents()
        lib._df = dict(df or {})
        return lib

    def _index_documents(self) -> None:
        """Positions, documents and article labels, per part (``self.parts`` is in chunk order)."""
        self.pos = {}
        start = 0
        for part in self.parts.values():
            if not part.chunks:
                continue
            ids, labels = part.index_entries()
            self.pos.update(zip(ids, range(start, start + len(ids)), strict=True))
            meta = part.chunks[0].metadata
            file = str(meta.get("file", ""))
            info = self.docs.get(file)
            if info is None:
                info = self.docs[file] = DocInfo.of(meta)
                self.titles.setdefault(info.title, []).append(file)
            info.chunks += len(ids)
            for label, i in labels:
                info.articles.setdefault(label, []).append(start + i)
            start += len(ids)
        current_groups = {info.group for info in self.docs.values() if info.status == STATUS_CURRENT}
        for info in self.docs.values():
            info.has_current_sibling = info.status != STATUS_CURRENT and info.group in current_groups
            nxt = info.superseded_by
            if nxt in self.docs and nxt != info.file:
                self.successor[info.file] = nxt
        self.predecessor = {new: old for old, new in self.successor.items()}

    def known_doc_freqs(self) -> dict[str, int]:
        with self._df_lock:
            return dict(self._df)

    # ------------------------------------------------------------ lookups

    def __len__(self) -> int:
        return len(self.chunks)

    def chunk(self, chunk_id: str) -> Document | None:
        i = self.pos.get(chunk_id)
        return self.chunks[i] if i is not None else None

    def article(self, file: str, label: str) -> Document | None:
        """The first chunk of article ``label`` of ``file``."""
        info = self.docs.get(file)
        positions = info.articles.get(label) if info is not None else None
        return self.chunks[positions[0]] if positions else None

    def document_chunks(self, file: str) -> list[Document]:
        info = self.docs.get(file)
        part = self.parts.get(info.doc_id) if info is not None else None
        if part is not None and part.file == file:
            return list(part.chunks)
        return [d for d in self.chunks if d.metadata.get("file") == file]

    def title_list(self) -> list[str]:
        return [info.title for info in self.docs.values()]

    def title_of(self, file: str) -> str | None:
        info = self.docs.get(file)
        return info.title if info is not None else None

    @cached_property
    def _joined(self) -> tuple[str, list[int]]:
        """Every chunk text in one string, and where each chunk starts in it (from the parts'
        own joined texts: a per-document update joins only the new document's chunks)."""
        texts: list[str] = []
        starts: list[int] = []
        at = 0
        for part in self.parts.values():
            if part.chunks:
                text, own = part.joined()
                texts.append(text)
                starts += [at + s for s in own]
                at += len(text) + 1
        return term_counts.SEP.join(texts), starts

    @cached_property
    def _sample(self) -> tuple[str, list[int]]:
        """The texts of every k-th chunk (about ``df_sample`` of them) joined like ``_joined``."""
        return term_counts.join(
            c.page_content for c in term_counts.stride_sample(self.chunks, self.df_sample)
        )

    @property
    def sampled(self) -> bool:
        """Whether ``doc_freq`` estimates from a sample (a library above ``df_sample`` chunks)."""
        return 0 < self.df_sample < len(self.chunks)

    def doc_freq(self, term: str) -> int:
        """Number of chunks whose text contains ``term``, computed once per term and snapshot
        (``assistant.term_counts``): counted, or above ``df_sample`` chunks estimated from a
        sample, exact when the sample misses it (0 at once when ``terms_seen`` rules it out)."""
        df = self._df.get(term)
        if df is None:
            df = 0
            if term and _SEP not in term:
                if self.sampled:
                    df = term_counts.estimate(self._sample, len(self.chunks), term)
                seen = self.terms_seen
                if not df and (seen is None or seen.may_contain(term)):
                    df = term_counts.count_containing(*self._joined, term)
            with self._df_lock:
                self._df[term] = df
        return df

    @cached_property
    def _normalised(self) -> str:
        """``normalise`` of every chunk text, joined (each part's is computed once and kept)."""
        return _SEP.join(p.normalised() for p in self.parts.values() if p.chunks)

    @cached_property
    def views_by_parent(self) -> tuple[np.ndarray, np.ndarray]:
        """``(order, starts)``: the rows of ``view_vectors`` of chunk ``p`` are
        ``order[starts[p]:starts[p + 1]]`` (for scoring a few chunks' views, ``assistant.dense``)."""
        order = np.argsort(self.view_parent, kind="stable")
        starts = np.searchsorted(self.view_parent[order], np.arange(len(self.chunks) + 1))
        return order, starts

    def warm(self) -> Library:
        """Compute the lazily built lookups now (views by parent, joined and normalised texts), so
        that the thread building the snapshot pays for them, not the first question after it. On a
        sampled (large) library only what every question needs; ``warm_rest`` does the others."""
        _ = self.views_by_parent
        if self.sampled:
            _ = self._sample
        else:
            self.warm_rest()
        return self

    def warm_rest(self) -> None:
        """The lookups only some questions need: the joined and normalised texts, the pair filter."""
        _ = self._joined, self._normalised
        if self.sampled and self.terms_seen is None:
            self.terms_seen = term_counts.BigramFilter.of([self._joined[0]])

    def contains_quote(self, text: str) -> bool:
        needle = normalise(text)
        return bool(needle) and _SEP not in needle and needle in self._normalised

    def stats(self) -> dict[str, Any]:
        """What the library holds, per document (``assistant.library_store.stats_of``)."""
        return stats_of(c.metadata for c in self.chunks)
