"""A library snapshot saved on disk, so that a restart does not re-read and re-tokenise the store.

One folder per collection (``library.snapshot_dir``/<collection name>): ``meta.json`` (format,
store fingerprint, tokenizer key, the documents with their manifest stamps and counts),
``chunks.jsonl`` (id, text, metadata of each chunk), ``.npy`` arrays (vectors, views, BM25
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
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.documents import Document

from assistant.bm25 import Bm25, Vocabulary
from assistant.library_parts import DocPart, shared_metadata
from assistant.library_store import StoreFingerprint
from assistant.snapshot import Library
from assistant.tokenizer import STOP_WORDS, DomainTokenizer

logger = logging.getLogger(__name__)

FORMAT = 1  # bump when the files change shape: older saved snapshots are ignored
_ARRAYS = ("vectors", "view_vectors", "view_parent", "tokens", "token_offsets")


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
            np.save(tmp / f"{name}.npy", getattr(lib, name), allow_pickle=False)
        with (tmp / "chunks.jsonl").open("w", encoding="utf-8") as out:
            for c in lib.chunks:
                out.write(json.dumps([c.id, c.page_content, c.metadata], ensure_ascii=False) + "\n")
        tokens = json.dumps(lib.vocabulary.tokens(), ensure_ascii=False)
        (tmp / "vocabulary.json").write_text(tokens, "utf-8")
        if lib.bm25 is not None:
            (tmp / "bm25").mkdir()
            lib.bm25.save(tmp / "bm25")
        parts = [[p.doc_id, p.file, p.stamp, len(p.chunks), len(p.view_vectors)] for p in lib.parts.values()]
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


def load(folder: Path, tokenizer: DomainTokenizer) -> Library | None:
    """The snapshot saved in ``folder``, or None (nothing saved, another format or tokenizer,
    or unreadable: logged)."""
    if not (folder / "meta.json").is_file():
        return None
    try:
        meta = json.loads((folder / "meta.json").read_text("utf-8"))
        if meta.get("format") != FORMAT or meta.get("tokenizer") != tokenizer_key(tokenizer):
            logger.info("已保存的资料库索引格式或分词词典已变，忽略它并重新读取向量库")
            return None
        return _load(folder, meta, tokenizer)
    except Exception as exc:  # a torn or corrupt folder must never stop the service
        logger.warning("已保存的资料库索引无法读取（%s），忽略它并重新读取向量库", exc)
        return None


def _load(folder: Path, meta: dict[str, Any], tokenizer: DomainTokenizer) -> Library:
    arrays = {name: np.load(folder / f"{name}.npy", allow_pickle=False) for name in _ARRAYS}
    chunks: list[Document] = []
    with (folder / "chunks.jsonl").open(encoding="utf-8") as lines:
        for line in lines:
            cid, text, chunk_meta = json.loads(line)
            chunks.append(Document(page_content=text, metadata=shared_metadata(chunk_meta), id=cid))
    vectors, views, parents = arrays["vectors"], arrays["view_vectors"], arrays["view_parent"]
    tokens, offsets = arrays["tokens"], arrays["token_offsets"]
    if not (len(chunks) == len(vectors) == len(offsets) - 1 and len(views) == len(parents)):
        raise ValueError("文件之间的条数不一致")
    vocabulary = Vocabulary(json.loads((folder / "vocabulary.json").read_text("utf-8")))
    if len(vocabulary) != meta["vocabulary"] or (len(tokens) and int(tokens.max()) >= len(vocabulary)):
        raise ValueError("词表不完整")
    bm25 = Bm25.load(folder / "bm25", vocabulary) if (folder / "bm25").is_dir() else None
    parts: list[DocPart] = []
    start = vstart = 0
    for doc_id, file, stamp, n, m in meta["parts"]:
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
            )
        )
        start, vstart = end, vend
    if start != len(chunks) or vstart != len(views):
        raise ValueError("文档分段与文本块数不一致")
    fingerprint = StoreFingerprint(*meta["fingerprint"])
    return Library.assemble(fingerprint, parts, tokenizer, vocabulary, bm25=bm25)
