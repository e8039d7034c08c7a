"""Wiring: build the ``Assistant`` once (embeddings, store, retriever, chat model).

The UI, the HTTP API, the CLI and the evaluation harness all call
``build_assistant(settings)`` and then reuse the returned object.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from assistant.answering import Assistant
from assistant.config import Settings

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings

logger = logging.getLogger(__name__)


def build_assistant(settings: Settings, embeddings: Embeddings | None = None) -> Assistant:
    """Embeddings (unless given), the Chroma store, the hybrid retriever and, in
    generative mode, the chat model; raises ``StoreError`` / ``ModelError`` /
    ``ValueError`` with Chinese messages when a part cannot be built."""
    from assistant.retrieval import build_retriever
    from assistant.store import all_chunks, open_vectorstore

    if embeddings is None:
        from assistant.embeddings import build_embeddings

        embeddings = build_embeddings(settings)
    vectorstore = open_vectorstore(settings, embeddings)
    collection = vectorstore._collection
    retriever = build_retriever(settings, embeddings, vectorstore)
    chat_model = None
    if settings.llm.mode == "generative":
        from assistant.llm import build_chat_model

        chat_model = build_chat_model(settings)
    _warm_up_tokenizer()
    chunks = all_chunks(collection)
    if not chunks:
        logger.warning("向量库为空：请先运行 policy-assistant ingest 导入资料库")
    else:
        retriever.refresh()  # build the BM25/vector index now, not during the first question
    return Assistant(
        settings,
        retriever,
        chat_model=chat_model,
        embeddings=embeddings,
        collection=collection,
        library_chunks=chunks,
    )


def _warm_up_tokenizer() -> None:
    """Load jieba's dictionary now rather than during the first question (~1 s)."""
    import jieba

    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
