"""The Chroma vector store: client, collection, model check, the one-process lock of an
embedded store, the change generation; reading it is ``assistant.library_store``.

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
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant.config import Settings

if TYPE_CHECKING:
    from chromadb.api import ClientAPI
    from chromadb.api.models.Collection import Collection
    from langchain_chroma import Chroma
    from langchain_core.embeddings import Embeddings

logger = logging.getLogger(__name__)

MODEL_KEY = "embedding_model"
# Written by the indexer whenever it changes the collection (``mark_changed``): part of the
# store's fingerprint, so a reader notices a replaced document even when the count is unchanged.
GENERATION_KEY = "library_generation"
WRITING_PREFIX = "writing:"  # the generation while an ingest writes: readers keep their snapshot
PAGE_SIZE = 1000
# Records are primary chunks (view="chunk"; absent in stores from before views) or extra
# vectors of a chunk (view="window", parent_id=<chunk id>, id f"{chunk_id}#v{n}"): see ingest.views.
VIEW_KEY = "view"
VIEW_CHUNK = "chunk"
VIEW_WINDOW = "window"
PARENT_KEY = "parent_id"
VIEW_ID_MARK = "#v"  # a view's id is f"{chunk_id}{VIEW_ID_MARK}{n}"


def view_parent_id(record_id: str) -> str:
    """The chunk id a view's record id names (``f"{chunk_id}#v{n}"``); "" for any other id."""
    head, mark, tail = record_id.rpartition(VIEW_ID_MARK)
    return head if mark and tail.isdigit() else ""


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


def _bound_http_calls(client: Any, timeout_s: float) -> None:
    """chromadb 1.x's HTTP client is an ``httpx.Client(timeout=None)``: give it a timeout, so that
    a frozen server fails a call instead of holding the caller forever."""
    import httpx

    session = getattr(getattr(client, "_server", None), "_session", None)
    if isinstance(session, httpx.Client):
        session.timeout = httpx.Timeout(timeout_s)
    else:  # a chromadb release that moved it: calls stay unbounded, say so once
        logger.warning(
            "无法为 Chroma 客户端设置超时（chromadb 内部结构已变）：向量库无响应时请求可能长时间等待"
        )


def _chroma_settings() -> Any:
    import chromadb.config

    return chromadb.config.Settings(anonymized_telemetry=False, allow_reset=False)


def open_client(settings: Settings) -> ClientAPI:
    """An embedded ``PersistentClient`` or, when ``chroma.host`` is set, an ``HttpClient``."""
    import chromadb

    cfg = settings.chroma
    try:
        if cfg.host:
            client = chromadb.HttpClient(
                host=cfg.host, port=cfg.port, ssl=cfg.ssl, settings=_chroma_settings()
            )
            _bound_http_calls(client, cfg.timeout_s)
            return client
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


def mark_changed(collection: Collection, *, writing: bool = False) -> None:
    """Record a new generation: readers (``LibraryStore.fingerprint``) see that the library changed.
    ``writing=True`` before the first write of an ingest: readers keep their complete snapshot
    until the final generation (a killed ingest leaves it so until the next one completes)."""
    generation = uuid.uuid4().hex
    _update_metadata(collection, **{GENERATION_KEY: WRITING_PREFIX + generation if writing else generation})


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


def rename_collection(client: ClientAPI, name: str, new_name: str) -> bool:
    """Rename collection ``name`` to ``new_name`` (which must be free); False when ``name`` does not exist.

    Chroma addresses collections by id, so handles opened before the rename keep working.
    """
    from chromadb.errors import NotFoundError

    try:
        collection = client.get_collection(name, embedding_function=None)
    except (NotFoundError, ValueError):
        return False
    collection.modify(name=new_name)
    return True


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
