"""The Chroma vector store: client, collection, model check, statistics.

Chroma never embeds anything itself here: collections are opened with
``embedding_function=None`` and vectors always come from our ``Embeddings``.
The collection's metadata records ``embedding_model`` (name@hash) so an index
built by another model is refused instead of silently returning nonsense.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings

from assistant.config import Settings

if TYPE_CHECKING:
    import numpy as np
    from chromadb.api import ClientAPI
    from chromadb.api.models.Collection import Collection
    from langchain_chroma import Chroma

logger = logging.getLogger(__name__)

MODEL_KEY = "embedding_model"
# Written by the indexer whenever it changes the collection (``mark_changed``): part of the
# store's fingerprint, so a reader notices a replaced document even when the count is unchanged.
GENERATION_KEY = "library_generation"
PAGE_SIZE = 1000
# Records are primary chunks (view="chunk"; absent in stores from before views) or extra
# vectors of a chunk (view="window", parent_id=<chunk id>, id f"{chunk_id}#v{n}"): see ingest.views.
VIEW_KEY = "view"
VIEW_CHUNK = "chunk"
VIEW_WINDOW = "window"
PARENT_KEY = "parent_id"


def is_view(meta: Any) -> bool:
    """True for the metadata of a view record (not a primary chunk)."""
    return bool(meta) and meta.get(VIEW_KEY) == VIEW_WINDOW


class StoreError(Exception):
    """A vector-store problem; ``str(e)`` is a Chinese message."""


class StoreModelMismatch(StoreError):
    """The index was built by another embedding model than the current one."""

    def __init__(self, stored: str, current: str) -> None:
        self.stored = stored
        self.current = current
        super().__init__(
            f"索引由模型 {stored or '（未知）'} 构建，当前模型为 {current}，"
            "请运行 policy-assistant ingest --rebuild"
        )


# Embedded Chroma is one process's: a second process reading while another writes sees stale
# segments and fails ("Error finding id"). Each process holds an exclusive lock on the folder.
_LOCK_NAME = ".policy-assistant.lock"
_held_locks: dict[Path, Any] = {}
_locks_guard = threading.Lock()


def _lock_folder(persist: Path) -> None:
    """Take (once per process) the exclusive lock of an embedded store folder, or raise
    ``StoreError`` naming the process that holds it."""
    import fcntl

    key = persist.resolve()
    with _locks_guard:
        if key in _held_locks:
            return
        handle = (key / _LOCK_NAME).open("a+")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "未知"
            handle.close()
            raise StoreError(
                f"向量库目录 {key} 正被另一个进程（PID {holder}）使用：嵌入式 Chroma 只能由一个进程读写。"
                "服务运行时，请通过服务的管理接口（POST /api/admin/reindex）重新导入，或先停止服务；"
                "需要多个进程共用时，请改用 Chroma 服务（chroma run，配置 chroma.host）。"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        _held_locks[key] = handle


def _chroma_settings() -> Any:
    import chromadb.config

    return chromadb.config.Settings(anonymized_telemetry=False, allow_reset=False)


def open_client(settings: Settings) -> ClientAPI:
    """An embedded ``PersistentClient`` or, when ``chroma.host`` is set, an ``HttpClient``."""
    import chromadb

    cfg = settings.chroma
    try:
        if cfg.host:
            return chromadb.HttpClient(host=cfg.host, port=cfg.port, ssl=cfg.ssl, settings=_chroma_settings())
        persist = Path(cfg.persist_dir).expanduser()
        persist.mkdir(parents=True, exist_ok=True)
        _lock_folder(persist)
        return chromadb.PersistentClient(path=str(persist), settings=_chroma_settings())
    except StoreError:
        raise
    except (ValueError, ConnectionError, OSError) as exc:
        if cfg.host:
            hint = "请确认 Chroma 服务（chroma run）已启动且 chroma.host / chroma.port 正确"
            where = f"{cfg.host}:{cfg.port}"
        else:
            hint = "请检查 chroma.persist_dir 目录是否可写"
            where = str(cfg.persist_dir)
        raise StoreError(f"无法打开向量库（{where}）：{exc}。{hint}。") from exc


def open_collection(client: ClientAPI, settings: Settings, model_name: str | None) -> Collection:
    """Get or create the configured collection (cosine space, no Chroma embedding function).

    A new collection records ``model_name``; an existing one is *not* checked
    here (see ``check_model``), except that an empty collection without a
    recorded model adopts ``model_name``.
    """
    name = settings.chroma.collection
    metadata: dict[str, Any] = {"hnsw:space": "cosine"}
    if model_name:
        metadata[MODEL_KEY] = model_name
    collection = client.get_or_create_collection(name=name, metadata=metadata, embedding_function=None)
    stored = (collection.metadata or {}).get(MODEL_KEY) or ""
    if model_name and not stored and collection.count() == 0:
        record_model(collection, model_name)
    return collection


def _update_metadata(collection: Collection, **values: str) -> None:
    """Set keys of the collection metadata, keeping the others (hnsw:* cannot be modified)."""
    meta = {k: v for k, v in (collection.metadata or {}).items() if not k.startswith("hnsw:")}
    meta.update(values)
    collection.modify(metadata=meta)


def record_model(collection: Collection, model_name: str) -> None:
    """Write ``embedding_model`` into the collection metadata (keeping the other keys)."""
    _update_metadata(collection, **{MODEL_KEY: model_name})


def mark_changed(collection: Collection) -> None:
    """Record a new generation: readers (``LibraryStore.fingerprint``) see that the library changed."""
    _update_metadata(collection, **{GENERATION_KEY: uuid.uuid4().hex})


def stored_model(collection: Collection) -> str:
    return str((collection.metadata or {}).get(MODEL_KEY) or "")


def check_model(collection: Collection, model_name: str) -> None:
    """Raise ``StoreModelMismatch`` unless the collection is empty or was built by ``model_name``."""
    stored = stored_model(collection)
    if stored == model_name:
        return
    if not stored and collection.count() == 0:
        return
    raise StoreModelMismatch(stored, model_name)


def delete_collection(client: ClientAPI, settings: Settings) -> None:
    """Drop the configured collection if it exists."""
    from chromadb.errors import NotFoundError

    try:
        client.delete_collection(settings.chroma.collection)
    except (NotFoundError, ValueError):
        pass


def open_vectorstore(settings: Settings, embeddings: Embeddings) -> Chroma:
    """A LangChain ``Chroma`` over the configured collection, for retrieval.

    Raises ``StoreModelMismatch`` when the index was built by another model.
    """
    from langchain_chroma import Chroma

    model_name = str(getattr(embeddings, "model_name", "") or "")
    client = open_client(settings)
    collection = open_collection(client, settings, model_name or None)
    if model_name:
        check_model(collection, model_name)
    return Chroma(client=client, collection_name=settings.chroma.collection, embedding_function=embeddings)


def _iter_records(collection: Collection, include: list[str]) -> Any:
    total = collection.count()
    offset = 0
    while offset < total:
        page = collection.get(include=include, limit=PAGE_SIZE, offset=offset)  # type: ignore[arg-type]
        ids = page["ids"]
        if not ids:
            break
        nothing: list[Any] = [None] * len(ids)
        metadatas: list[Any] = list(page.get("metadatas") or nothing)
        documents: list[Any] = list(page.get("documents") or nothing)
        vectors = page.get("embeddings")
        embeddings: list[Any] = list(vectors) if vectors is not None and len(vectors) else nothing
        yield from zip(ids, metadatas, documents, embeddings, strict=True)
        offset += len(ids)


def library_stats(collection: Collection) -> dict[str, Any]:
    """What the index holds, per document (primary chunks only: views are not counted).

    ``{"documents": int, "chunks": int, "documents_detail": [{"file", "title",
    "status", "articles", "chunks", "issuer", "date"}]}``; ``articles`` counts
    distinct non-empty article labels. Sorted by file name.
    """
    per_doc: dict[str, dict[str, Any]] = {}
    articles: dict[str, set[str]] = {}
    chunks = 0
    for _id, meta, _doc, _vec in _iter_records(collection, ["metadatas"]):
        meta = meta or {}
        if is_view(meta):
            continue
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


def all_chunks(collection: Collection) -> list[Document]:
    """Every stored primary chunk (views left out) as a ``Document`` (metadata plus ``chunk_id``)."""
    docs: list[Document] = []
    for chunk_id, meta, text, _vec in _iter_records(collection, ["metadatas", "documents"]):
        if is_view(meta):
            continue
        metadata = dict(meta or {})
        metadata["chunk_id"] = chunk_id
        docs.append(Document(page_content=text or "", metadata=metadata, id=chunk_id))
    docs.sort(key=lambda d: (str(d.metadata.get("file", "")), int(d.metadata.get("chunk_index", 0) or 0)))
    return docs


@dataclass(frozen=True)
class StoreFingerprint:
    """What identifies one state of the stored library, cheaply: see ``LibraryStore.fingerprint``."""

    collection_id: str
    count: int
    generation: str


class LibraryStore:
    """The configured collection, looked up by name on every call (a rebuild may replace it)."""

    def __init__(self, client: ClientAPI, name: str) -> None:
        self.client = client
        self.name = name

    def collection(self) -> Collection:
        return self.client.get_collection(self.name)

    def fingerprint(self) -> StoreFingerprint:
        """Collection id, record count and the indexer's generation: three cheap reads."""
        collection = self.collection()
        generation = str((collection.metadata or {}).get(GENERATION_KEY) or "")
        return StoreFingerprint(str(collection.id), int(collection.count()), generation)

    def load_all(self) -> tuple[list[Document], np.ndarray, np.ndarray, np.ndarray]:
        """Every primary chunk (sorted by file and position) with its L2-normalised vector, and the
        vectors of the views whose parent is stored with the position of that parent (one pass)."""
        import numpy as np

        chunks: list[Document] = []
        chunk_vecs: list[Any] = []
        view_vecs: list[Any] = []
        view_parents: list[str] = []
        for record_id, meta, text, vec in _iter_records(
            self.collection(), ["metadatas", "documents", "embeddings"]
        ):
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
