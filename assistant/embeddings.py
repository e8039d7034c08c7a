"""Embedding backends behind LangChain's ``Embeddings`` interface.

``build_embeddings(settings)`` is the only entry point; heavy libraries
(torch, sentence-transformers) are imported lazily inside it.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any

from langchain_core.embeddings import Embeddings

from assistant.config import Settings

logger = logging.getLogger(__name__)


def limit_blas_threads() -> None:
    """Pin numpy's BLAS to one thread: it competes with torch for the cores.

    Measured on this machine, a threaded BLAS next to torch tripled query latency.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl ships with the venv
        for var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):
            os.environ.setdefault(var, "1")
        return
    threadpool_limits(limits=1, user_api="blas")


def native_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """The CPU computes bfloat16 natively (AVX512-BF16 or AMX); unknown (no /proc) counts as yes."""
    try:
        flags = cpuinfo.read_text(errors="replace")
    except OSError:
        return True
    return "avx512_bf16" in flags or "amx_bf16" in flags


class SentenceTransformerEmbeddings(Embeddings):
    """A local sentence-transformers folder on CPU, with normalised vectors.

    Uses the model's ``query`` / ``document`` prompts (EmbeddingGemma) when it
    has them, plain ``encode`` otherwise (e.g. bge folders).
    """

    def __init__(
        self,
        path: Path,
        *,
        model_name: str,
        dtype: str = "float32",
        batch_size: int = 16,
        threads: int = 2,
    ) -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(max(1, threads))
        limit_blas_threads()
        torch_dtype = torch.bfloat16 if dtype == "bfloat16" else torch.float32
        if dtype == "bfloat16" and not native_bf16():
            logger.warning(
                "本机 CPU 不支持原生 bfloat16（无 avx512_bf16 / amx_bf16），向量化会慢约 5 倍："
                '建议设 embedding.dtype = "float32"，然后重新导入（ingest --rebuild）并运行 calibrate。'
            )
        self.path = Path(path)
        self.model_name = model_name
        self.batch_size = batch_size
        self._model: Any = SentenceTransformer(
            str(path), device="cpu", model_kwargs={"torch_dtype": torch_dtype}, local_files_only=True
        )
        self._lock = threading.Lock()
        prompts = getattr(self._model, "prompts", {}) or {}
        self._has_prompts = bool(prompts.get("query")) and bool(prompts.get("document"))
        dim = self._model.get_embedding_dimension()
        self.dimension: int = int(dim) if dim is not None else len(self.embed_query("维度"))

    def _encode(self, texts: list[str], *, kind: str) -> list[list[float]]:
        if not texts:
            return []
        with self._lock:  # one model, many threads (questions and a server-side re-index)
            return self._encode_locked(texts, kind=kind)

    def _encode_locked(self, texts: list[str], *, kind: str) -> list[list[float]]:
        kwargs: dict[str, Any] = {
            "batch_size": self.batch_size,
            "normalize_embeddings": True,
            "show_progress_bar": False,
            "convert_to_numpy": True,
        }
        if self._has_prompts:
            fn = self._model.encode_query if kind == "query" else self._model.encode_document
            vectors = fn(texts, **kwargs)
        else:
            vectors = self._model.encode(texts, **kwargs)
        result: list[list[float]] = vectors.astype("float32").tolist()
        return result

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self._encode(list(texts), kind="document")

    def embed_query(self, text: str) -> list[float]:
        return self._encode([text], kind="query")[0]

    def embed_queries(self, texts: list[str]) -> list[list[float]]:
        """Several queries in one forward pass (``QueryBatcher`` batches concurrent questions)."""
        return self._encode(list(texts), kind="query")


def build_embeddings(settings: Settings) -> Embeddings:
    """The configured embedding backend, behind the query batcher and cache (``QueryBatcher``).

    Raises ``ModelError`` with a Chinese hint on problems."""
    from assistant.model_files import ModelError, model_fingerprint, resolve_model_path
    from assistant.query_batch import QueryBatcher

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    cfg = settings.embedding
    model: Embeddings
    match cfg.backend:
        case "sentence-transformers":
            path = resolve_model_path(settings)
            model = SentenceTransformerEmbeddings(
                path,
                # The dtype is part of the name: bf16 and fp32 vectors of the same weights
                # rank differently enough that one index must not mix them.
                model_name=f"{model_fingerprint(path)}/{settings.embedding.dtype}",
                dtype=settings.embedding.dtype,
                batch_size=settings.embedding.batch_size,
                threads=settings.embedding.threads,
            )
        case other:
            raise ModelError(f"未知的嵌入后端：{other}")
    return QueryBatcher(
        model, max_batch=cfg.query_batch_max, wait_ms=cfg.batch_wait_ms, cache_size=cfg.query_cache_size
    )
