"""Wiring: build the ``Assistant`` once from the settings (one factory per swappable part).

The UI, the HTTP API, the CLI and the evaluation harness all call
``build_assistant(settings)`` and then reuse the returned object.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from assistant.catalogue import CatalogueError, load_catalogue
from assistant.config import Settings
from assistant.pipeline import Assistant

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings

    from assistant.library import LibraryIndex
    from assistant.linear import LinearModel

logger = logging.getLogger(__name__)


def build_assistant(settings: Settings, embeddings: Embeddings | None = None) -> Assistant:
    """Embeddings (unless given), the library index over the Chroma store, the retriever, the
    decline policy and the answerers (the generative one only in generative mode).

    Raises ``CatalogueError`` / ``StoreError`` / ``ModelError`` / ``ValueError`` with Chinese
    messages when a part cannot be built.
    """
    from assistant.decline import DeclinePolicy
    from assistant.evidence import EvidenceSelector
    from assistant.extractive import ExtractiveAnswerer
    from assistant.retrieval import build_retriever

    catalogue = load_catalogue(Path(settings.retrieval.catalogue), list(settings.ingest.library_dirs))
    if embeddings is None:
        from assistant.embeddings import build_embeddings

        embeddings = build_embeddings(settings)
    index = open_library(settings, embeddings)
    if not len(index.current()):  # builds the snapshot now, not during the first question
        logger.warning("向量库为空：请先运行 policy-assistant ingest 导入资料库")
    retriever = build_retriever(settings.retrieval, embeddings, index)
    from assistant.rerank import FEATURES as RERANK_FEATURES

    reranker = load_model(settings.retrieval.reranker, RERANK_FEATURES)
    retriever.reranker = fitted_for(reranker, embeddings, "retrieval.reranker")
    selector = EvidenceSelector(settings.answer, index.tokenizer, settings.retrieval.k, catalogue.regimes)
    generative = None
    if settings.llm.mode == "generative":
        from assistant.generative import GenerativeAnswerer
        from assistant.llm import build_chat_model

        generative = GenerativeAnswerer(build_chat_model(settings), settings.retrieval.k)
    return Assistant(
        settings,
        index,
        retriever,
        DeclinePolicy(settings, catalogue.missing, _answerability_model(settings, embeddings)),
        ExtractiveAnswerer(settings.answer, selector, embeddings),
        generative,
    )


def _answerability_model(settings: Settings, embeddings: Embeddings) -> LinearModel | None:
    from assistant.answerability import FEATURES

    path = settings.answer.answerability
    return fitted_for(load_model(path, FEATURES), embeddings, "answer.answerability")


def load_model(path: Path | None, features: tuple[str, ...]) -> LinearModel | None:
    """The stored model at ``path``; a file that does not fit the code is logged (with what to
    do) and skipped, so the assistant still starts (on the hand rules / the fused order)."""
    from assistant.linear import LinearModel, ModelFileError

    if not path:
        return None
    try:
        return LinearModel.load(Path(path), features)
    except ModelFileError as exc:
        logger.error("%s", exc)
        return None


def fitted_for(model: LinearModel | None, embeddings: Embeddings, setting: str) -> LinearModel | None:
    """``model`` when it was fitted with this embedding model (its scores are in the features),
    else None with a warning: the hand rules / the fused order serve instead."""
    if model is None:
        return None
    fitted = str(model.meta.get("embedding_model", ""))
    current = str(getattr(embeddings, "model_name", "") or "")
    if fitted and fitted == current:
        return model
    logger.warning(
        "%s 的模型是用嵌入模型 %s 拟合的，当前是 %s：不启用它。请运行 policy-assistant calibrate。",
        setting,
        fitted or "（未记录）",
        current or "（未知）",
    )
    return None


def open_library(settings: Settings, embeddings: Embeddings) -> LibraryIndex:
    """The library index over the configured collection (created when absent), with the domain
    tokenizer loaded. Refuses an index built by another embedding model (``StoreModelMismatch``)."""
    from assistant.library import LibraryIndex
    from assistant.library_store import LibraryStore
    from assistant.store import check_model, open_client, open_collection
    from assistant.tokenizer import DomainTokenizer

    dictionary = Path(settings.retrieval.dictionary)
    if not dictionary.is_file():
        raise CatalogueError(
            f"找不到领域词典 {dictionary}：没有它，检索会把“容错纠错”等术语切碎。"
            "请检查配置项 retrieval.dictionary（或环境变量 POLICY_RETRIEVAL__DICTIONARY）。"
        )
    model_name = str(getattr(embeddings, "model_name", "") or "")
    client = open_client(settings)
    collection = open_collection(client, settings, model_name or None)
    if model_name:
        check_model(collection, model_name)
    tokenizer = DomainTokenizer(dictionary)
    tokenizer.warm_up()
    snapshot_dir = None
    if settings.library.save_snapshot:
        snapshot_dir = (
            settings.library.snapshot_dir or Path(settings.chroma.persist_dir).parent / "library_index"
        )
    store = LibraryStore(client, settings.chroma.collection)
    return LibraryIndex(
        store, settings.library, tokenizer, Path(snapshot_dir).expanduser() if snapshot_dir else None
    )
