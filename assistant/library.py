"""The library as the assistant sees it: one in-memory snapshot of the store, one refresh rule.

``Library`` is an immutable snapshot of the Chroma collection: the primary chunks,
their vectors and their views' vectors, the BM25 index, one ``DocInfo`` per
document (title, status, year, versions, article positions), the version links
(old file -> current file), per-term document frequencies (computed once per
term) and the normalised text used for quote checks. The retriever, the decline
policy and the version logic all read the same snapshot.

``LibraryIndex`` holds the current snapshot and applies the one refresh rule:
at most every ``library.refresh_interval_s`` it reads the store's fingerprint
(collection id, record count and the generation the indexer writes before and
after every change, ``LibraryStore.fingerprint``) within ``library.store_timeout_s``;
when it differs from the snapshot's, and no ingest is still writing, a new snapshot
is built and swapped in. While one thread rebuilds, the others keep answering from
the old snapshot. A store that does not answer in time, or fails during a rebuild,
leaves the old snapshot serving and is reported by ``health()``.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from langchain_core.documents import Document

from assistant import references
from assistant.config import LibrarySettings
from assistant.library_store import StoreFingerprint, stats_of
from assistant.schema import STATUS_CURRENT
from assistant.store import StoreError
from assistant.text import YEAR_RE, normalise
from assistant.tokenizer import DomainTokenizer

if TYPE_CHECKING:
    import numpy as np
    from rank_bm25 import BM25Okapi

    from assistant.library_store import LibraryStore

logger = logging.getLogger(__name__)


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


def _year_of(date: str) -> str:
    m = YEAR_RE.match((date or "").lstrip())
    return m.group(0) if m else ""


@dataclass
class Library:
    """An immutable snapshot of the stored library (see the module docstring)."""

    fingerprint: StoreFingerprint
    chunks: list[Document]  # primary chunks, sorted by (file, chunk_index)
    vectors: np.ndarray  # (n, dim), L2-normalised
    view_vectors: np.ndarray  # (m, dim), L2-normalised: the chunks' views (ingest.views)
    view_parent: np.ndarray  # (m,) int: position of each view's parent chunk
    bm25: BM25Okapi | None
    tokenizer: DomainTokenizer
    docs: dict[str, DocInfo] = field(default_factory=dict)  # file -> info
    titles: dict[str, list[str]] = field(default_factory=dict)  # title -> files
    successor: dict[str, str] = field(default_factory=dict)  # superseded file -> its current version
    predecessor: dict[str, str] = field(default_factory=dict)
    pos: dict[str, int] = field(default_factory=dict)  # chunk id -> position
    _df: dict[str, int] = field(default_factory=dict, repr=False)
    _df_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def build(
        cls,
        fingerprint: StoreFingerprint,
        chunks: list[Document],
        vectors: np.ndarray,
        view_vectors: np.ndarray,
        view_parent: np.ndarray,
        tokenizer: DomainTokenizer,
    ) -> Library:
        from rank_bm25 import BM25Okapi

        tokens = [_chunk_tokens(tokenizer, d) for d in chunks]
        bm25 = BM25Okapi(tokens) if any(tokens) else None
        lib = cls(fingerprint, chunks, vectors, view_vectors, view_parent, bm25, tokenizer)
        lib.pos = {str(d.metadata["chunk_id"]): i for i, d in enumerate(chunks)}
        for i, d in enumerate(chunks):
            meta = d.metadata
            file = str(meta.get("file", ""))
            info = lib.docs.get(file)
            if info is None:
                title = str(meta.get("title", "")) or file
                info = lib.docs[file] = DocInfo(
                    file=file,
                    doc_id=str(meta.get("doc_id", "")),
                    title=title,
                    issuer=str(meta.get("issuer", "")),
                    date=str(meta.get("date", "")),
                    status=str(meta.get("status", "")) or STATUS_CURRENT,
                    superseded_by=str(meta.get("superseded_by", "")),
                    kind=str(meta.get("kind", "")),
                    year=_year_of(str(meta.get("date", ""))),
                    group=references.base_title(title),
                )
                lib.titles.setdefault(title, []).append(file)
            info.chunks += 1
            label = str(meta.get("article", ""))
            if label:
                info.articles.setdefault(label, []).append(i)
        current_groups = {info.group for info in lib.docs.values() if info.status == STATUS_CURRENT}
        for info in lib.docs.values():
            info.has_current_sibling = info.status != STATUS_CURRENT and info.group in current_groups
            nxt = info.superseded_by
            if nxt in lib.docs and nxt != info.file:
                lib.successor[info.file] = nxt
        lib.predecessor = {new: old for old, new in lib.successor.items()}
        return lib

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
        return [d for d in self.chunks if d.metadata.get("file") == file]

    def title_list(self) -> list[str]:
        return [info.title for info in self.docs.values()]

    def title_of(self, file: str) -> str | None:
        info = self.docs.get(file)
        return info.title if info is not None else None

    def doc_freq(self, term: str) -> int:
        """Number of chunks whose text contains ``term`` (computed once per term and snapshot)."""
        df = self._df.get(term)
        if df is None:
            df = sum(1 for c in self.chunks if term in c.page_content)
            with self._df_lock:
                self._df[term] = df
        return df

    @cached_property
    def normalised_texts(self) -> list[str]:
        """``normalise`` of every chunk text, for checks of quoted claims."""
        return [normalise(c.page_content) for c in self.chunks]

    @cached_property
    def views_by_parent(self) -> tuple[np.ndarray, np.ndarray]:
        """``(order, starts)``: the rows of ``view_vectors`` of chunk ``p`` are
        ``order[starts[p]:starts[p + 1]]`` (for scoring a few chunks' views, ``assistant.dense``)."""
        import numpy as np

        order = np.argsort(self.view_parent, kind="stable")
        starts = np.searchsorted(self.view_parent[order], np.arange(len(self.chunks) + 1))
        return order, starts

    def contains_quote(self, text: str) -> bool:
        needle = normalise(text)
        return bool(needle) and any(needle in hay for hay in self.normalised_texts)

    def stats(self) -> dict[str, Any]:
        """What the library holds, per document (``assistant.library_store.stats_of``)."""
        return stats_of(c.metadata for c in self.chunks)


def _chunk_tokens(tokenizer: DomainTokenizer, doc: Document) -> list[str]:
    meta = doc.metadata
    return tokenizer.tokenize(f"{meta.get('title', '')} {meta.get('heading_path', '')} " + doc.page_content)


@dataclass
class StoreState:
    ok: bool = True
    detail: str = ""
    checked_at: float = 0.0


class LibraryIndex:
    """The current ``Library`` snapshot of a store, refreshed by one rule (module docstring)."""

    def __init__(self, store: LibraryStore, settings: LibrarySettings, tokenizer: DomainTokenizer) -> None:
        self.store = store
        self.settings = settings
        self.tokenizer = tokenizer
        self._library: Library | None = None
        self._build_lock = threading.Lock()
        self._last_check = 0.0
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-check")
        self._pending: Future[StoreFingerprint] | None = None
        self._check_lock = threading.Lock()
        self.state = StoreState()

    def current(self) -> Library:
        """The snapshot to answer from; rebuilt first when the store changed (the refresh rule)."""
        lib = self._library
        if lib is not None and time.monotonic() - self._last_check < self.settings.refresh_interval_s:
            return lib
        fingerprint = self._read_fingerprint()
        self._last_check = time.monotonic()
        if fingerprint is None:  # store unreachable: keep serving what we have
            if lib is None:
                raise StoreError(f"向量库暂时无法访问：{self.state.detail}。请稍后再试。")
            return lib
        if lib is not None and (lib.fingerprint == fingerprint or fingerprint.writing):
            return lib  # unchanged, or an ingest is still writing: serve the complete snapshot
        if not self._build_lock.acquire(blocking=lib is None):
            return lib  # type: ignore[return-value]  # another thread is rebuilding; lib is set
        try:
            current = self._library
            if current is not None and current.fingerprint == fingerprint:
                return current
            try:
                self._library = self._build(fingerprint)
            except Exception as exc:  # e.g. the collection swapped by a rebuild during the load
                if current is None:
                    raise StoreError(f"无法读取向量库：{exc}。请稍后再试。") from exc
                logger.exception("资料库索引重建失败，继续使用上一份索引")
                self._set_state(False, f"读取失败：{exc}")
                return current
            return self._library
        finally:
            self._build_lock.release()

    def refresh(self) -> Library:
        """Check the store now (ignoring the interval) and return the current snapshot."""
        self._last_check = float("-inf")
        return self.current()

    def _read_fingerprint(self) -> StoreFingerprint | None:
        """The store's fingerprint, or None when it does not answer within ``store_timeout_s``.
        Concurrent callers share one check; a check that still hangs is not queued again."""
        with self._check_lock:
            future = self._pending
            if future is None or future.done():
                future = self._pending = self._pool.submit(self.store.fingerprint)
        try:
            fingerprint = future.result(timeout=self.settings.store_timeout_s)
        except FutureTimeout:
            self._set_state(False, f"{self.settings.store_timeout_s:g} 秒内没有响应")
            return None
        except Exception as exc:  # connection refused, collection missing, ...
            self._set_state(False, str(exc) or type(exc).__name__)
            return None
        self._set_state(True, "")
        return fingerprint

    def _set_state(self, ok: bool, detail: str) -> None:
        if ok != self.state.ok:
            (logger.info if ok else logger.error)("向量库%s%s", "已恢复" if ok else "无法访问：", detail)
        self.state = StoreState(ok, detail, time.time())

    def _build(self, fingerprint: StoreFingerprint) -> Library:
        started = time.perf_counter()
        chunks, vectors, view_vectors, view_parent = self.store.load_all()
        lib = Library.build(fingerprint, chunks, vectors, view_vectors, view_parent, self.tokenizer)
        logger.info(
            "资料库索引已建立：%d 份文件，%d 个文本块（另有 %d 个句窗向量），用时 %.1f 秒",
            len(lib.docs),
            len(chunks),
            len(view_parent),
            time.perf_counter() - started,
        )
        return lib

    def health(self) -> dict[str, Any]:
        """Store state and what the served snapshot holds (for /healthz and /readyz)."""
        lib = self._library
        return {
            "ok": self.state.ok and lib is not None,
            "store": {"ok": self.state.ok, "detail": self.state.detail},
            "documents": len(lib.docs) if lib is not None else 0,
            "chunks": len(lib.chunks) if lib is not None else 0,
        }
