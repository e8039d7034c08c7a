"""The Chroma vector store: client, collection, model check, statistics.

Chroma never embeds anything itself here: collections are opened with
``embedding_function=None`` and vectors always come from our ``Embeddings``.
The collection's metadata records ``embedding_model`` (name@hash) so an index
built by another model is refused instead of silently returning nonsense.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings

from assistant.config import Settings

if TYPE_CHECKING:
    from chromadb.api import ClientAPI
    from chromadb.api.models.Collection import Collection
    from langchain_chroma import Chroma

logger = logging.getLogger(__name__)

MODEL_KEY = "embedding_model"
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
        return chromadb.PersistentClient(path=str(persist), settings=_chroma_settings())
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


def record_model(collection: Collection, model_name: str) -> None:
    """Write ``embedding_model`` into the collection metadata (keeping the other keys)."""
    meta = {k: v for k, v in (collection.metadata or {}).items() if not k.startswith("hnsw:")}
    meta[MODEL_KEY] = model_name
    collection.modify(metadata=meta)


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
        yield from zip(ids, metadatas, documents, strict=True)
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
    for _id, meta, _doc in _iter_records(collection, ["metadatas"]):
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
    for chunk_id, meta, text in _iter_records(collection, ["metadatas", "documents"]):
        if is_view(meta):
            continue
        metadata = dict(meta or {})
        metadata["chunk_id"] = chunk_id
        docs.append(Document(page_content=text or "", metadata=metadata, id=chunk_id))
    docs.sort(key=lambda d: (str(d.metadata.get("file", "")), int(d.metadata.get("chunk_index", 0) or 0)))
    return docs
