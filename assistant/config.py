"""Typed settings: defaults < TOML file < POLICY_* environment variables.

Nothing here reads the environment or the disk at import time; call
``load_settings()`` once in an entry point and pass the result down.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from assistant.config_answer import AnswerSettings as AnswerSettings  # re-exported
from assistant.config_library import LibrarySettings as LibrarySettings  # re-exported
from assistant.config_server import ServerSettings as ServerSettings  # re-exported
from assistant.paths import CORPUS_DIR as CORPUS_DIR  # re-exported
from assistant.paths import DEFAULT_CONFIG_FILE as DEFAULT_CONFIG_FILE  # re-exported
from assistant.paths import PROJECT_ROOT as PROJECT_ROOT  # re-exported


def _default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "policy-assistant"


class EmbeddingSettings(BaseModel):
    # "sentence-transformers": any local sentence-transformers folder (model_path),
    # or the verified EmbeddingGemma fetched by `policy-assistant models fetch`.
    backend: Literal["sentence-transformers"] = "sentence-transformers"
    # A local sentence-transformers folder. Empty: the fetched EmbeddingGemma in cache_dir.
    model_path: Path | None = None
    cache_dir: Path = Field(default_factory=_default_cache_dir)
    # float32 runs everywhere at full speed; bfloat16 is faster only on CPUs with native bf16
    # (AVX512-BF16 / AMX) and ~5x slower elsewhere (AVX2: 1.1 vs 5.4 passages/s). Changing it
    # needs a re-ingest and `policy-assistant calibrate`: the fitted models are per dtype.
    dtype: Literal["bfloat16", "float32"] = "float32"
    batch_size: int = 16  # texts per forward pass at ingest: larger is faster, costs memory
    threads: int = 2  # torch threads: more than the cores only adds contention
    # Concurrent questions encoded in one forward pass (1: no batching, bit-identical vectors): bigger
    # amortises the model call (≈69 ms alone, ≈30 ms/question at 16 on 2 cores) vs. a longer wait per
    # caller; batch padding moves vectors by ≤ 2e-7 in float32, by up to 0.003 in bf16 (there 1
    # answer in 391 changed under load).
    query_batch_max: int = 16
    # How long a question arriving at an idle model waits for others to share its batch: bigger
    # batches under light load vs. that much added to a lone question's latency (0: never waits).
    batch_wait_ms: float = 0.0
    # Query vectors kept in memory (LRU by exact text and model; 0: off): repeated questions skip
    # the model vs. ~3 KB of memory each.
    query_cache_size: int = 2048


class ChromaSettings(BaseModel):
    # When host is set, talk to a Chroma server (`chroma run`) through HttpClient.
    host: str | None = None
    port: int = 8000
    ssl: bool = False
    persist_dir: Path = PROJECT_ROOT / ".data" / "chroma"
    # Seconds one HTTP call to a Chroma server may take (chromadb's own client waits forever):
    # a dead server is noticed vs. slow calls on a very large library failing.
    timeout_s: float = 30.0
    collection: str = "policy_library"


class IngestSettings(BaseModel):
    # Folders (or files) holding the document library. Relative paths in a TOML file are
    # resolved against that file's folder; the default is the checkout's sibling shared/corpus.
    library_dirs: list[Path] = [PROJECT_ROOT.parent / "shared" / "corpus"]
    max_file_bytes: int = 5_000_000
    # Files that are never documents.
    skip_names: list[str] = ["SOURCES.md", "README.md"]
    # Size bounds (characters) for chunks of documents without articles.
    min_chunk_chars: int = 80
    max_chunk_chars: int = 360
    # An article longer than this is split at 款 (paragraph) boundaries.
    max_article_chars: int = 900
    # Folder that admin uploads are written into. Empty: the first of library_dirs.
    upload_dir: Path | None = None
    # Largest upload accepted by the admin console (413 beyond, refused before the body is read
    # whole): bigger documents vs. memory and disk per request. Keep it <= max_file_bytes.
    max_upload_bytes: int = 5_000_000
    # Suffixes the admin console accepts (content is checked too): more formats vs. more parsers exposed.
    upload_types: list[str] = [".md", ".txt", ".docx", ".pdf", ".html"]
    # Where removed documents are moved (never deleted outright): recoverable mistakes vs. disk use.
    removed_dir: Path = PROJECT_ROOT / ".data" / "removed"
    # Curated associated questions (关联问题) per article, embedded as extra views of that article;
    # optional. Admin-attached ones live in server.admin_db. More phrasings found vs. more vectors.
    associated_questions: Path = CORPUS_DIR / "associated_questions.toml"
    # Generated associated questions (doc2query, ~3 everyday phrasings per article, one TOML file per
    # document); optional. Colloquial questions reach their article vs. ~1.6k more vectors to embed.
    generated_questions: Path = CORPUS_DIR / "generated_questions"


class RetrievalSettings(BaseModel):
    # The top k: chunks returned by the retriever and weighed by every later step
    # (evidence pool, decline check, LLM evidence). More recall, more noise to sort out.
    k: int = 5
    # Dense and BM25 candidates each, before fusion: more catches weak matches, costs time.
    candidates: int = 30
    # jieba domain dictionary (one term a line); required: without it BM25 splits domain terms.
    dictionary: Path = CORPUS_DIR / "userdict.txt"
    # Documents we expect and those known to be absent ([[missing]]): required, it drives the
    # "资料库未收录" declines; the assistant refuses to start without it.
    catalogue: Path = CORPUS_DIR / "catalogue.toml"
    # The assistant declines when the best chunk's dense cosine (dense_score) is below this.
    # Calibrated on the dev sets (EmbeddingGemma): answerable min 0.30, off-topic max 0.27;
    # in-library "near miss" unanswerables (0.43-0.60) are handled by the decline policy, not here.
    decline_threshold: float = 0.28
    # Fusion: score = dense + bm25_weight * bm25 / (bm25 + bm25_saturation). Higher weight helps
    # exact-term questions (multi, English) and hurts colloquial paraphrases.
    bm25_weight: float = 0.1
    bm25_saturation: float = 10.0  # how fast a BM25 score saturates: lower lets weak matches count
    mention_weight: float = 0.08  # bonus for chunks of a document the question names
    old_version_penalty: float = 0.15  # superseded text with a current version, not asked for
    asked_version_bonus: float = 0.05  # the version the question asks for, over its twin
    reference_bonus: float = 0.5  # an explicitly referenced article (第X条) goes first
    kinds_bonus: float = 0.03  # headline question (有哪几种): fused-score bonus of a chunk defining the kinds
    view_weight: float = 1.0  # how far a chunk's best sentence view lifts its dense score (0: off)
    # Where dense candidates come from (assistant.dense): "exact" scans every vector (exact, cost
    # grows with the library), "store" asks the store's HNSW index (flat time, recall < 1),
    # "auto" uses the store above exact_max_vectors.
    dense_search: Literal["exact", "store", "auto"] = "auto"
    # Vectors (chunks and views) up to which "auto" scans exactly: exactness vs. time per question.
    exact_max_vectors: int = 200_000
    # Records asked of the store per dense candidate (views share a parent): more distinct chunks vs. time.
    store_oversample: float = 4.0
    # HNSW ef_search set on the collection for the store path (0: keep its own): recall vs. query time.
    store_search_ef: int = 200
    # Everyday words → library terms (corpus/thesaurus.toml); empty: no query expansion.
    thesaurus: Path | None = CORPUS_DIR / "thesaurus.toml"
    # Weight of the thesaurus-rewritten question's dense score against the original's (max of
    # the two after weighting): higher trusts the rewrite more, lower the user's own words.
    # 0 (off, no second query embedding): on train, 1.0 moved hit@1 from 0.577 to 0.569 and
    # paraphrase coverage from 0.429 to 0.414; BM25 expansion alone changed neither.
    thesaurus_dense_weight: float = 0.0
    thesaurus_bm25: bool = True  # add the library terms' tokens to the BM25 query
    # The fitted re-ranker (``policy-assistant calibrate``); empty: keep the fused order.
    reranker: Path | None = CORPUS_DIR / "models" / "rerank.json"
    # Candidates the re-ranker reorders (by fused score): deeper finds more buried articles, costs time.
    rerank_depth: int = 30


class LLMSettings(BaseModel):
    # "extractive": no LLM; "generative": an OpenAI-compatible endpoint.
    mode: Literal["extractive", "generative"] = "extractive"
    base_url: str | None = None
    model: str = "qwen2.5-7b-instruct"
    api_key: str = "not-needed"
    timeout_s: float = 60.0
    temperature: float = 0.1
    condense_turns: int = 3  # earlier turns the LLM sees when rewriting a follow-up: context vs. prompt size


class Settings(BaseSettings):
    """All configuration of the product, in one typed object."""

    model_config = SettingsConfigDict(
        env_prefix="POLICY_",
        env_nested_delimiter="__",
        extra="ignore",
    )

    embedding: EmbeddingSettings = EmbeddingSettings()
    chroma: ChromaSettings = ChromaSettings()
    ingest: IngestSettings = IngestSettings()
    retrieval: RetrievalSettings = RetrievalSettings()
    library: LibrarySettings = LibrarySettings()
    answer: AnswerSettings = AnswerSettings()
    llm: LLMSettings = LLMSettings()
    server: ServerSettings = ServerSettings()
    log_level: str = "INFO"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = _toml_file_in_use
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml_file is not None:
            sources.append(_RelativeTomlSource(settings_cls, toml_file=toml_file))
        return tuple(sources)


# Path settings, as (section, key): a relative value in a TOML file means relative to that file.
_PATH_KEYS: tuple[tuple[str, str], ...] = (
    ("embedding", "model_path"),
    ("embedding", "cache_dir"),
    ("chroma", "persist_dir"),
    ("library", "snapshot_dir"),
    ("ingest", "library_dirs"),
    ("retrieval", "dictionary"),
    ("retrieval", "catalogue"),
    ("retrieval", "reranker"),
    ("retrieval", "thesaurus"),
    ("answer", "answerability"),
    ("answer", "decline_check"),
    ("answer", "answer_check"),
    ("server", "feedback_db"),
    ("server", "admin_db"),
    ("ingest", "upload_dir"),
    ("ingest", "removed_dir"),
    ("ingest", "associated_questions"),
    ("ingest", "generated_questions"),
)


class _RelativeTomlSource(TomlConfigSettingsSource):
    """The TOML file, with its relative paths resolved against the file's own folder."""

    def __init__(self, settings_cls: type[BaseSettings], toml_file: Path) -> None:
        self._base = Path(toml_file).resolve().parent
        super().__init__(settings_cls, toml_file=toml_file)

    def __call__(self) -> dict[str, object]:
        data = super().__call__()
        for section, key in _PATH_KEYS:
            values = data.get(section)
            if not isinstance(values, dict) or key not in values:
                continue
            values[key] = self._resolve(values[key])
        return data

    def _resolve(self, value: object) -> object:
        if isinstance(value, list):
            return [self._resolve(v) for v in value]
        if isinstance(value, str) and value and not Path(value).expanduser().is_absolute():
            return str(self._base / value)
        return value


# Set only for the duration of load_settings(); pydantic-settings asks for
# sources through a classmethod, so the chosen file is handed over here.
_toml_file_in_use: Path | None = None


def load_settings(config_file: Path | str | None = None, **overrides: object) -> Settings:
    """Build the settings: defaults < TOML file < POLICY_* env < explicit overrides.

    The TOML file is ``config_file`` if given, else ``$POLICY_CONFIG``, else
    ``policy.toml`` in the checkout (``PROJECT_ROOT``) when it exists. Relative paths in
    the TOML file are relative to that file; defaults never depend on the working directory.
    """
    global _toml_file_in_use
    path: Path | None
    if config_file is not None:
        path = Path(config_file)
        if not path.is_file():
            raise FileNotFoundError(f"找不到配置文件：{path}（请检查 --config 或 POLICY_CONFIG）")
    elif os.environ.get("POLICY_CONFIG"):
        path = Path(os.environ["POLICY_CONFIG"])
        if not path.is_file():
            raise FileNotFoundError(f"找不到配置文件：{path}（请检查环境变量 POLICY_CONFIG）")
    else:
        path = DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.is_file() else None
    _toml_file_in_use = path
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    finally:
        _toml_file_in_use = None
