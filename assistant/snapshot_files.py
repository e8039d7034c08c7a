"""A library snapshot saved on disk, so that a restart does not re-read and re-tokenise the store.

One folder per collection (``library.snapshot_dir``/<collection name>): ``meta.json`` (format,
store fingerprint, tokenizer key, the documents with their manifest stamps and counts),
``chunks.jsonl`` (id, text and the chunk's own metadata values, under keys listed per document
in ``meta.json`` with the items all its chunks share), ``.npy`` arrays (vectors, views, BM25
token ids), ``vocabulary.json`` and ``bm25/`` (bm25s's own save format). It is written to a
temporary folder and renamed into place, so a reader sees the old folder or the new one.

The saved snapshot is only a starting point: ``LibraryIndex`` serves it as is when its
fingerprint equals the store's, updates it per document when the manifest explains the
difference, and ignores it otherwise. An unreadable one is logged and ignored.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from langchain_core.documents import Document

from assistant.bm25 import Bm25, Vocabulary
from assistant.library_parts import DocPart, shared_metadata
from assistant.library_store import StoreFingerprint
from assistant.rows import FileRows, Matrix, Rows
from assistant.snapshot import Library
from assistant.tokenizer import STOP_WORDS, DomainTokenizer

logger = logging.getLogger(__name__)

FORMAT = 4  # bump when the files change shape: older saved snapshots are ignored (4: view spans)
_ARRAYS = ("vectors", "view_vectors", "view_parent", "view_span", "tokens", "token_offsets")
_MAPPED = ("vectors", "view_vectors")  # left in their files above the budget (the bulk of a snapshot)


def tokenizer_key(tokenizer: DomainTokenizer) -> str:
    """What the saved token ids depend on: the domain dictionary, the stop words, ``min_len``."""
    digest = hashlib.sha1()
    dictionary = tokenizer.dictionary
    digest.update(dictionary.read_bytes() if dictionary is not None and dictionary.is_file() else b"")
    digest.update(" ".join(sorted(STOP_WORDS)).encode("utf-8"))
    digest.update(str(tokenizer.min_len).encode())
    return digest.hexdigest()[:16]


def save(lib: Library, folder: Path) -> None:
    """Write ``lib`` to ``folder`` atomically (a temporary sibling folder renamed into place)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f".{folder.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        tmp.mkdir()
        for name in _ARRAYS:
            _save_array(tmp / f"{name}.npy", getattr(lib, name))
        parts = []
        with (tmp / "chunks.jsonl").open("wb") as out:
            for p in lib.parts.values():
                common = _common(p.chunks)
                keys = list(dict.fromkeys(k for c in p.chunks for k in c.metadata if k not in common))
                parts.append([p.doc_id, p.file, p.stamp, len(p.chunks), len(p.view_vectors), common, keys])
                for c in p.chunks:
                    own = [c.metadata.get(k) for k in keys]  # None: absent (stored values never are)
                    out.write(orjson.dumps([c.id, c.page_content, own]) + b"\n")  # UTF-8, one line
        tokens = json.dumps(lib.vocabulary.tokens(), ensure_ascii=False)
        (tmp / "vocabulary.json").write_text(tokens, "utf-8")
        if lib.bm25 is not None:
            (tmp / "bm25").mkdir()
            lib.bm25.save(tmp / "bm25")
        meta = {
            "format": FORMAT,
            "fingerprint": [lib.fingerprint.collection_id, lib.fingerprint.count, lib.fingerprint.generation],
            "tokenizer": tokenizer_key(lib.tokenizer),
            "vocabulary": len(lib.vocabulary),
            "parts": parts,
        }
        (tmp / "meta.json").write_text(json.dumps(meta, ensure_ascii=False), "utf-8")  # written last
        old = folder.with_name(f".{folder.name}.old-{uuid.uuid4().hex[:8]}")
        if folder.exists():
            os.rename(folder, old)
        os.rename(tmp, folder)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _save_array(path: Path, array: Matrix) -> None:
    """``array`` as a ``.npy`` file; ``Rows`` are written a bounded number of rows at a time
    (never one whole copy in memory)."""
    if not isinstance(array, Rows):
        np.save(path, array, allow_pickle=False)
        return
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)), "fortran_order": False}
    with path.open("wb") as out:
        np.lib.format.write_array_header_1_0(out, header | {"shape": array.shape})
        for rows in array.chunks():
            out.write(np.ascontiguousarray(rows, dtype=np.float32).tobytes())


def load(folder: Path, tokenizer: DomainTokenizer, max_in_memory: int | None = None) -> Library | None:
    """The snapshot saved in ``folder``, or None (nothing saved, another format or tokenizer,
    or unreadable: logged). Above ``max_in_memory`` vectors they stay in their files and are read
    when needed (``assistant.rows.FileRows``), else they are read into memory."""
    if not (folder / "meta.json").is_file():
        return None
    try:
        meta = json.loads((folder / "meta.json").read_text("utf-8"))
        if meta.get("format") != FORMAT or meta.get("tokenizer") != tokenizer_key(tokenizer):
            logger.info("已保存的资料库索引格式或分词词典已变，忽略它并重新读取向量库")
            return None
        return _load(folder, meta, tokenizer, max_in_memory)
    except Exception as exc:  # a torn or corrupt folder must never stop the service
        logger.warning("已保存的资料库索引无法读取（%s），忽略它并重新读取向量库", exc)
        return None


def _load(
    folder: Path, meta: dict[str, Any], tokenizer: DomainTokenizer, max_in_memory: int | None
) -> Library:
    arrays: dict[str, Any] = {
        name: np.load(folder / f"{name}.npy", allow_pickle=False) for name in _ARRAYS if name not in _MAPPED
    }
    in_files = (
        max_in_memory is not None
        and len(arrays["view_parent"]) + len(arrays["token_offsets"]) - 1 > max_in_memory
    )
    for name in _MAPPED:  # above the in-memory budget the vectors stay in their files (assistant.rows)
        path = folder / f"{name}.npy"
        arrays[name] = FileRows.open(path) if in_files else np.load(path, allow_pickle=False)
    chunks = _read_chunks(folder / "chunks.jsonl", meta["parts"])
    vectors, views, parents = arrays["vectors"], arrays["view_vectors"], arrays["view_parent"]
    tokens, offsets, spans = arrays["tokens"], arrays["token_offsets"], arrays["view_span"]
    if not (len(chunks) == len(vectors) == len(offsets) - 1 and len(views) == len(parents) == len(spans)):
        raise ValueError("文件之间的条数不一致")
    vocabulary = Vocabulary(json.loads((folder / "vocabulary.json").read_text("utf-8")))
    if len(vocabulary) != meta["vocabulary"] or (len(tokens) and int(tokens.max()) >= len(vocabulary)):
        raise ValueError("词表不完整")
    bm25 = Bm25.load(folder / "bm25", vocabulary) if (folder / "bm25").is_dir() else None
    parts: list[DocPart] = []
    start = vstart = 0
    for doc_id, file, stamp, n, m, *_common in meta["parts"]:
        end, vend = start + n, vstart + m
        if end > len(chunks) or vend > len(views) or (m and int(parents[vstart:vend].min()) < start):
            raise ValueError("文档分段超出范围")
        parts.append(
            DocPart(
                doc_id,
                file,
                stamp,
                chunks[start:end],
                vectors[start:end],
                views[vstart:vend],
                parents[vstart:vend] - start,
                tokens[offsets[start] : offsets[end]],
                offsets[start : end + 1] - offsets[start],
                spans[vstart:vend],
            )
        )
        start, vstart = end, vend
    if start != len(chunks) or vstart != len(views):
        raise ValueError("文档分段与文本块数不一致")
    fingerprint = StoreFingerprint(*meta["fingerprint"])
    return Library.assemble(fingerprint, parts, tokenizer, vocabulary, bm25=bm25, max_in_memory=max_in_memory)


def _common(chunks: list[Document]) -> dict[str, Any]:
    """The metadata items every chunk of one document shares (saved once per document)."""
    if not chunks:
        return {}
    common = {k: v for k, v in chunks[0].metadata.items() if isinstance(v, str)}
    for c in chunks[1:]:
        meta = c.metadata
        common = {k: v for k, v in common.items() if meta.get(k) == v}
    return common


def _read_chunks(path: Path, parts: list[list[Any]]) -> list[Document]:
    """The chunks of ``chunks.jsonl``: each line's own values (under its part's keys) over its
    part's shared items, one copy of those per document."""
    chunks: list[Document] = []
    with path.open(encoding="utf-8") as lines:
        for part in parts:
            common = shared_metadata(part[5])
            keys = [sys.intern(k) for k in part[6]]
            for _ in range(int(part[3])):
                cid, text, own = orjson.loads(next(lines))
                meta = dict(common)
                meta.update(zip(keys, own, strict=True))
                if None in own:
                    meta = {k: v for k, v in meta.items() if v is not None}
                # Built without re-validation: these fields were validated when first read from the store.
                chunks.append(Document.model_construct(page_content=text, metadata=meta, id=cid))
        if next(lines, None) is not None:
            raise ValueError("文本块多于文档分段所列")
    return chunks


class SnapshotSaver:
    """Saves snapshots to one folder in a background thread: only the newest of several pending
    ones is written, and a failure (a full disk) is logged, never raised into the service."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="snapshot-save")
        self._lock = threading.Lock()
        self._pending: Library | None = None
        self._saving = False

    def save_later(self, lib: Library) -> None:
        with self._lock:
            self._pending = lib
            if self._saving:
                return
            self._saving = True
        self._pool.submit(self._save_pending)

    def _save_pending(self) -> None:
        _lower_priority()
        while True:
            with self._lock:
                lib, self._pending = self._pending, None
                if lib is None:
                    self._saving = False
                    return
            try:
                save(lib, self.folder)
            except Exception:  # a full disk must not stop the service: the next start reads the store
                logger.exception("保存资料库索引失败（不影响服务，下次启动将重新读取向量库）")

    def wait(self, timeout: float = 60.0) -> None:
        """Block until the pending saves are written."""
        self._pool.submit(lambda: None).result(timeout=timeout)
        deadline = time.monotonic() + timeout
        while self._saving and time.monotonic() < deadline:
            time.sleep(0.01)


def _lower_priority() -> None:
    """Run this thread at the lowest CPU priority (Linux: ``nice`` is per thread): writing a
    large snapshot (4 GB at 200k chunks) after an update must not slow the questions answered
    meanwhile. Elsewhere, or when not permitted, the thread keeps its priority."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    except (AttributeError, OSError):
        pass
