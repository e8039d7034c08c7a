"""The library as the assistant sees it: one in-memory snapshot of the store, one refresh rule.

The snapshot is ``assistant.snapshot.Library`` (re-exported here, with ``DocInfo`` from
``assistant.library_parts``): the primary chunks, their vectors and views' vectors, the BM25
index, per-document info, version links, document frequencies and the normalised text used
for quote checks.

``LibraryIndex`` holds the current snapshot and applies the one refresh rule:
at most every ``library.refresh_interval_s`` it reads the store's fingerprint
(collection id, record count and the generation the indexer writes before and
after every change, ``LibraryStore.fingerprint``) within ``library.store_timeout_s``;
when it differs from the snapshot's, and no ingest is still writing, a new snapshot
is built and swapped in. While one thread builds, the others keep answering from
the old snapshot. Above ``library.inline_check_max_chunks`` chunks (where one fingerprint
read costs tens of ms) questions never wait on the store: a background thread applies the
rule every ``library.poll_interval_s`` and questions take the snapshot being served. A store that does not answer in time, or fails during a build,
leaves the old snapshot serving and is reported by ``health()``.

Building is per document whenever the manifest (``assistant.manifest``) explains the store:
only the documents whose stamp changed are read (``doc_id`` filters) and tokenised, the others'
parts are carried over (``LibraryIndex._update``). Otherwise (no snapshot yet, a rebuilt
collection, a store without manifest) everything is read. At start-up the snapshot saved in
``library.snapshot_dir`` (``assistant.snapshot_files``) is the starting point: served as is when
its fingerprint is the store's, else updated per document; every new snapshot is saved again
in the background.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant import snapshot_files
from assistant.bm25 import Vocabulary
from assistant.config import LibrarySettings
from assistant.library_parts import DocInfo as DocInfo  # re-exported: part of this module's interface
from assistant.library_parts import DocPart, parts_of, read_parts
from assistant.library_poll import start_poller
from assistant.library_store import StoreFingerprint
from assistant.manifest import DocEntry, explains
from assistant.snapshot import Library as Library
from assistant.snapshot_files import SnapshotSaver
from assistant.store import StoreError
from assistant.tokenizer import DomainTokenizer

if TYPE_CHECKING:
    from assistant.library_store import LibraryStore

logger = logging.getLogger(__name__)


@dataclass
class StoreState:
    ok: bool = True
    detail: str = ""
    checked_at: float = 0.0


class LibraryIndex:
    """The current ``Library`` snapshot of a store, refreshed by one rule (module docstring)."""

    def __init__(
        self,
        store: LibraryStore,
        settings: LibrarySettings,
        tokenizer: DomainTokenizer,
        snapshot_dir: Path | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.tokenizer = tokenizer
        # Where this collection's snapshot is saved (None: never saved nor loaded).
        self.snapshot_path = snapshot_dir / store.name if snapshot_dir is not None else None
        self._saver = SnapshotSaver(self.snapshot_path) if self.snapshot_path is not None else None
        self._library: Library | None = None
        self._build_lock = threading.Lock()
        self._last_check = 0.0
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-check")
        self._pending: Future[StoreFingerprint] | None = None
        self._check_lock = threading.Lock()
        self._poller: threading.Thread | None = None
        self._stop = threading.Event()
        self.state = StoreState()

    def current(self) -> Library:
        """The snapshot to answer from. A small library is first compared with the store (at most
        every ``refresh_interval_s``) and rebuilt when it changed; a large one (above
        ``library.inline_check_max_chunks``) is returned at once: a background thread checks."""
        lib = self._library
        if lib is not None:
            if self.in_background(lib):
                self._start_poller()
                return lib
            if time.monotonic() - self._last_check < self.settings.refresh_interval_s:
                return lib
        return self._check()

    def refresh(self) -> Library:
        """Check the store now (whatever the interval or the library's size) and return the
        current snapshot."""
        return self._check()

    def poll(self) -> Library:
        """One round of the background check (the record count re-read at most every
        ``library.poll_count_max_age_s`` while the generation is unchanged)."""
        return self._check(self.settings.poll_count_max_age_s)

    def _check(self, count_max_age_s: float = 0.0) -> Library:
        """Read the store's fingerprint and rebuild when it differs (the refresh rule)."""
        lib = self._library
        # Nothing to serve yet: wait longer for a slow store rather than fail the start.
        timeout = self.settings.store_timeout_s
        if lib is None:
            timeout = max(timeout, self.settings.first_load_timeout_s)
        fingerprint = self._read_fingerprint(count_max_age_s, timeout)
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
                lib = self._build(fingerprint)
                lib.df_sample = self.settings.doc_freq_sample_chunks
                if current is not None:  # an update: the old snapshot serves until this one is whole
                    lib.warm_rest()
                self._library = lib.warm()
                if lib.sampled and current is None:  # a large first load: served now, the rest after
                    threading.Thread(target=lib.warm_rest, name="library-warm", daemon=True).start()
            except Exception as exc:  # e.g. the collection swapped by a rebuild during the load
                if current is None:
                    raise StoreError(f"无法读取向量库：{exc}。请稍后再试。") from exc
                logger.exception("资料库索引重建失败，继续使用上一份索引")
                self._set_state(False, f"读取失败：{exc}")
                return current
            return self._library
        finally:
            self._build_lock.release()

    # ------------------------------------------------------------ background check

    def in_background(self, lib: Library) -> bool:
        """Whether the store is checked by the background thread rather than by questions."""
        cfg = self.settings
        return cfg.poll_interval_s > 0 and len(lib.chunks) > cfg.inline_check_max_chunks

    def _start_poller(self) -> None:
        if self._poller is not None:
            return
        with self._check_lock:
            if self._poller is None:
                self._poller = start_poller(self, self._stop)

    @property
    def served(self) -> Library | None:
        """The snapshot being served (None before the first build), without any check."""
        return self._library

    def close(self) -> None:
        """Stop the background check (the served snapshot stays usable)."""
        self._stop.set()

    def _read_fingerprint(
        self, count_max_age_s: float = 0.0, timeout: float | None = None
    ) -> StoreFingerprint | None:
        """The store's fingerprint, or None when it does not answer within ``timeout`` (default
        ``store_timeout_s``). Concurrent callers share one check; a check that still hangs is not
        queued again."""
        timeout = self.settings.store_timeout_s if timeout is None else timeout
        with self._check_lock:
            future = self._pending
            if future is None or future.done():
                future = self._pending = self._pool.submit(self.store.fingerprint, count_max_age_s)
        try:
            fingerprint = future.result(timeout=timeout)
        except FutureTimeout:
            self._set_state(False, f"{timeout:g} 秒内没有响应")
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
        old = self._library
        if old is None and self.snapshot_path is not None:
            old = snapshot_files.load(self.snapshot_path, self.tokenizer, self.settings.in_memory_max_vectors)
            if old is not None and old.fingerprint == fingerprint:
                self._log("已载入保存的资料库索引", old, started)
                return old
        lib = self._update(old, fingerprint) if old is not None else None
        if lib is None:
            lib = self._load_everything(fingerprint)
            self._log("资料库索引已建立", lib, started)
        else:
            self._log("资料库索引已按文件更新", lib, started)
        if self._saver is not None:
            self._saver.save_later(lib)  # in the background: only the newest pending one
        return lib

    def _update(self, old: Library, fingerprint: StoreFingerprint) -> Library | None:
        """``old`` with only the changed documents re-read, or None when the manifest cannot
        say which documents changed (another collection, no manifest, an unexplained count)."""
        if old.fingerprint.collection_id != fingerprint.collection_id:
            return None
        if any(not p.stamp for p in old.parts.values()):
            return None  # read from a store without manifest: stamps unknown
        entries = self.store.manifest()
        if entries is None or not explains(entries, fingerprint.count):
            return None
        changed = [
            e for d, e in sorted(entries.items()) if d not in old.parts or old.parts[d].stamp != e.stamp
        ]
        gone = [p for d, p in old.parts.items() if d not in entries or entries[d].stamp != old.parts[d].stamp]
        fresh = read_parts(self.store, changed, self.tokenizer, old.vocabulary)
        parts = [p for d, p in old.parts.items() if d in entries and entries[d].stamp == p.stamp]
        df = {
            term: n - _containing(gone, term) + _containing(fresh, term)
            for term, n in old.known_doc_freqs().items()
        }
        removed = sum(1 for d in old.parts if d not in entries)
        logger.info("资料库有 %d 份文件新增或变更、%d 份移除：只读取这些文件", len(changed), removed)
        lib = Library.assemble(
            fingerprint,
            parts + fresh,
            self.tokenizer,
            old.vocabulary,
            df=df,
            max_in_memory=self.settings.in_memory_max_vectors,
        )
        if old.terms_seen is not None:  # only the new documents' character pairs are added
            lib.terms_seen = old.terms_seen.extended(c.page_content for p in fresh for c in p.chunks)
        return lib

    def _load_everything(self, fingerprint: StoreFingerprint) -> Library:
        vocabulary = Vocabulary()
        entries = self.store.manifest()  # read before the records: a later change shows as a new stamp
        if entries is not None and explains(entries, fingerprint.count):
            listed = [entries[d] for d in sorted(entries)]
            parts = read_parts(self.store, listed, self.tokenizer, vocabulary)
        else:
            records = self.store.all_records()
            unknown = [DocEntry(d, "", "", "", 0, 0, "") for d in sorted(records)]
            parts = parts_of(unknown, records, self.tokenizer, vocabulary)
        return Library.assemble(
            fingerprint, parts, self.tokenizer, vocabulary, max_in_memory=self.settings.in_memory_max_vectors
        )

    def _log(self, what: str, lib: Library, started: float) -> None:
        logger.info(
            "%s：%d 份文件，%d 个文本块（另有 %d 个句窗向量），用时 %.1f 秒",
            what,
            len(lib.docs),
            len(lib.chunks),
            len(lib.view_parent),
            time.perf_counter() - started,
        )

    def wait_saved(self, timeout: float = 60.0) -> None:
        """Block until the pending snapshot saves are written (tests, shutdown)."""
        if self._saver is not None:
            self._saver.wait(timeout)

    def health(self) -> dict[str, Any]:
        """Store state and what the served snapshot holds (for /healthz and /readyz)."""
        lib = self._library
        return {
            "ok": self.state.ok and lib is not None,
            "store": {"ok": self.state.ok, "detail": self.state.detail},
            "documents": len(lib.docs) if lib is not None else 0,
            "chunks": len(lib.chunks) if lib is not None else 0,
        }


def _containing(parts: list[DocPart], term: str) -> int:
    return sum(1 for p in parts for c in p.chunks if term in c.page_content)
