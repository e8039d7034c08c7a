"""Extra representations ("views") of a chunk, embedded next to it at ingest time.

A long chunk's vector averages several ideas; a question phrased in everyday
words about one sentence of it often lands far from that average. A view is a
short window of the chunk (a sentence or two of a speech / 意见 chunk, one 款 or
sentence of a rule article), embedded with the chunk's own header
(``title / heading_path / article``) so it keeps its context. The retriever
scores a chunk by the best of its own and its views' cosines and always
returns the parent chunk, never the view.

Views are stored as extra Chroma records ``f"{chunk_id}#v{n}"`` with the
parent's metadata plus ``view="window"`` and ``parent_id``; primary records
carry ``view="chunk"``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from assistant.store import PARENT_KEY, VIEW_CHUNK, VIEW_ID_MARK, VIEW_KEY, VIEW_WINDOW
from assistant.text import normalise, split_sentences
from ingest.chunking import Chunk

if TYPE_CHECKING:
    from assistant.associated import AssociatedQuestion
    from assistant.config import Settings

log = logging.getLogger(__name__)

__all__ = [
    "PARENT_KEY",
    "VIEW_CHUNK",
    "VIEW_KEY",
    "VIEW_WINDOW",
    "ViewSpec",
    "associated_views",
    "chunk_views",
    "load_associated",
    "view_id",
]


@dataclass(frozen=True)
class ViewSpec:
    """Which views to make. Part of the chunker fingerprint: changing it re-indexes."""

    # Sentence window sizes (stride 1) for chunks without an article (speech, 意见). Single
    # sentences: on the dev sets 1 and 1+2 gave the same figures, 2 alone a lower MRR.
    prose_windows: tuple[int, ...] = (1,)
    # The same for rule articles with more than one sentence. On: a colloquial question usually
    # matches one sentence of an article, not its average. Measured on train.jsonl (independent
    # scorer): paraphrase coverage 0.43 -> 0.49, article accuracy 0.41 -> 0.48, multi-part
    # coverage 0.56 -> 0.59; dev unchanged but for 1 item each way. Cost: 1,787 more vectors
    # (1,894 views in all for 689 chunks), so embedding the whole library takes ~3.4x as long.
    article_windows: tuple[int, ...] = (1,)
    min_chars: int = 12  # shorter windows carry too little to be worth a vector

    def fingerprint(self) -> str:
        return f"p{','.join(map(str, self.prose_windows))}a{','.join(map(str, self.article_windows))}m{self.min_chars}"


DEFAULT_VIEWS = ViewSpec()


def view_id(parent_id: str, n: int) -> str:
    return f"{parent_id}{VIEW_ID_MARK}{n}"


def chunk_views(chunk: Chunk, spec: ViewSpec = DEFAULT_VIEWS) -> list[tuple[str, str]]:
    """``(text, embed_text)`` of each view of ``chunk``; ``text`` is a verbatim slice of ``chunk.text``.

    Sliding windows of ``n`` consecutive sentences (stride 1) for every size in
    the spec; windows equal to the whole chunk, shorter than ``min_chars`` or
    repeated are left out.
    """
    sizes = spec.article_windows if chunk.metadata.get("article") else spec.prose_windows
    if not sizes:
        return []
    text = chunk.text
    header = chunk.embed_text[: len(chunk.embed_text) - len(text)].rstrip("\n")
    sentences = split_sentences(text, 0, len(text))
    if len(sentences) < 2:
        return []
    seen: set[str] = {text}
    views: list[tuple[str, str]] = []
    for size in sizes:
        if size >= len(sentences):
            continue
        for first in range(len(sentences) - size + 1):
            start, end = sentences[first][0], sentences[first + size - 1][1]
            piece = text[start:end]
            if len(piece) < spec.min_chars or piece in seen:
                continue
            seen.add(piece)
            views.append((piece, f"{header}\n{piece}" if header else piece))
    return views


def associated_views(chunk: Chunk, unplaced: list[AssociatedQuestion]) -> list[tuple[str, str]]:
    """Views of ``chunk`` from the associated questions (``assistant.associated``) aimed at it.

    A question goes to the first chunk of its article (or, without an article, of its
    heading) that holds its ``quote``, if it has one; placed questions are removed from
    ``unplaced``. The view's text is the
    question, embedded under the chunk's own header like the sentence views.
    """
    article = str(chunk.metadata.get("article", "") or "")
    heading = str(chunk.metadata.get("heading_path", "") or "")
    header = chunk.embed_text[: len(chunk.embed_text) - len(chunk.text)].rstrip("\n")
    views: list[tuple[str, str]] = []
    text = normalise(chunk.text)
    for q in list(unplaced):
        if q.article:
            aimed = q.article == article
        else:  # by heading ("" is the part before the first heading), narrowed by the quote if any
            aimed = q.heading == heading and bool(q.heading or q.quote)
        if aimed and (not q.quote or normalise(q.quote) in text):
            unplaced.remove(q)
            views.append((q.question, f"{header}\n{q.question}" if header else q.question))
    return views


@dataclass
class LoadedQuestions:
    """The associated questions an ingest uses, and what could not be read."""

    questions: list[AssociatedQuestion]
    problems: list[tuple[str, str]]  # (where, Chinese reason), for the ingest report
    # Stems of generated-question files that could not be read: the documents of the same name
    # keep their stored index (and its questions) until the file is mended.
    held: set[str]


def load_associated(settings: Settings) -> LoadedQuestions:
    """Every associated question (curated file, generated folder, admin database). A source that
    cannot be read is reported; the library is still indexed, without that source's questions,
    except that a broken generated file holds its own document back (see ``held``)."""
    from assistant.associated import AssociatedError, AssociatedStore

    store = AssociatedStore(
        settings.server.admin_db,
        settings.ingest.associated_questions,
        generated=settings.ingest.generated_questions,
        create=False,
    )
    try:
        questions, broken = store.read()
    except AssociatedError as exc:
        return LoadedQuestions([], [(str(settings.ingest.associated_questions), str(exc))], set())
    except Exception as exc:  # sqlite3.Error, OSError
        log.exception("无法读取关联问题")
        reason = f"无法读取关联问题（{type(exc).__name__}），本次导入不含关联问题。"
        return LoadedQuestions([], [(str(settings.server.admin_db), reason)], set())
    problems = [(str(path), f"{reason}该文件对应的文件保留原有索引。") for path, reason in broken]
    return LoadedQuestions(questions, problems, {path.stem for path, _ in broken})
