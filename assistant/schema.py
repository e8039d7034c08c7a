"""Data shapes shared by ingest, the assistant and the UI.

Chunks travel as LangChain ``Document`` objects whose metadata carries the
keys in ``CHUNK_METADATA_KEYS`` (Chroma accepts only str/int/float/bool, so
missing values are stored as "" rather than None).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

CHUNK_METADATA_KEYS: tuple[str, ...] = (
    "doc_id",  # stable id of the source document (hash of its file name)
    "file",  # file name, e.g. 中国共产党纪律处分条例_2023.md
    "title",
    "issuer",
    "date",
    "status",  # 现行 / 已修正 / 已废止
    "superseded_by",
    "kind",  # 讲话 for speeches, "" for rules
    "article",  # 第八条, or "" for documents without articles
    "heading_path",  # e.g. 第二编 分则 / 第八章 对违反群众纪律行为的处分
    "start",  # character offset of the chunk text in the document body
    "end",
    "part",  # index of the piece when an article was split at 款 boundaries (0 if not)
    "chunk_index",  # position of the chunk in its document
    "content_hash",  # sha256 of the whole document body (change detection)
    "embedding_model",  # name@hash of the embedding model that made the vector
)

STATUS_CURRENT = "现行"
STATUS_AMENDED = "已修正"
STATUS_REPEALED = "已废止"

AnswerMode = Literal["extractive", "generative", "generative→extractive"]


class Citation(BaseModel):
    file: str
    title: str
    article: str = ""
    quote: str  # verbatim substring of the chunk text
    chunk_id: str
    start: int  # character span of the quote in the document body
    end: int
    status: str = STATUS_CURRENT
    heading_path: str = ""


class Answer(BaseModel):
    text: str
    citations: list[Citation] = Field(default_factory=list)
    declined: bool = False
    # "answer": answered from the sources; "related": the library does not answer it directly
    # and the citations are the nearest articles (declined); "refusal": declined outright.
    outcome: Literal["answer", "related", "refusal"] = "answer"
    mode: AnswerMode = "extractive"
    notices: list[str] = Field(default_factory=list)
