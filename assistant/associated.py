"""Associated questions (关联问题): phrasings attached to an article, indexed as extra views of it.

Three sources, read together:

* curated ones in ``ingest.associated_questions`` (TOML in the repo's ``corpus/``, optional)::

      [[question]]
      file = "中国共产党问责条例_2016旧版.md"
      article = "第七条"          # or heading = "一、……" for a document without articles
      question = "……"
      quote = "……"                # optional: a verbatim phrase of the target chunk

* generated ones (doc2query) in ``ingest.generated_questions``: a folder of TOML files in the
  same format, one per document, written article by article from the library text alone
  (about three everyday phrasings per substantive article; never from an evaluation set).
  Colloquial questions ("老板借我车开") rarely share words or a vector neighbourhood with the
  article's legal language; a question written for the article in everyday words does.

* ones an administrator attached from a feedback item in the admin console: SQLite
  (``server.admin_db``, table ``associated_questions``) with who attached it and when.

``ingest`` reads them when it indexes a document: each question becomes one view record of
the first chunk of its article (``ingest.views``), so the retriever scores the article by the
best of its own and its questions' cosines with no change on the answering side. ``digest``
changes whenever a document's questions change, so the next ingest re-indexes that document.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

# A question longer than this is a paragraph, not a phrasing of what someone asked.
MAX_QUESTION_CHARS = 500

_SCHEMA = """
CREATE TABLE IF NOT EXISTS associated_questions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time TEXT NOT NULL,
    user TEXT NOT NULL DEFAULT '',
    file TEXT NOT NULL,
    article TEXT NOT NULL DEFAULT '',
    heading TEXT NOT NULL DEFAULT '',
    question TEXT NOT NULL,
    feedback_id INTEGER
)
"""


class AssociatedError(ValueError):
    """A question that cannot be attached; ``str(e)`` is a Chinese reason."""


@dataclass(frozen=True)
class AssociatedQuestion:
    file: str
    article: str  # 第X条; "" when the target is addressed by its heading
    heading: str  # heading_path of the target chunk (used when article is "")
    question: str
    user: str = ""  # who attached it ("" for curated ones)
    time: str = ""  # when (UTC, ISO 8601; "" for curated ones)
    id: int = 0  # row id in the admin database (0 for curated ones)
    source: str = "admin"  # "admin" | "curated" | "generated"
    feedback_id: int | None = None
    # A verbatim phrase of the target chunk (optional): places the question in the chunk holding it
    # when a heading spans several chunks (speeches, 意见).
    quote: str = ""


class AssociatedStore:
    """Curated TOML + admin-attached SQLite rows; safe to share between threads."""

    def __init__(
        self, db: Path, curated: Path | None = None, *, generated: Path | None = None, create: bool = True
    ) -> None:
        """``create=False`` (readers such as ``ingest``): a missing database means no admin rows,
        and nothing is created on disk. ``generated``: a folder of ``*.toml`` files (optional)."""
        self.db = db
        self.curated = curated
        self.generated = generated
        self._lock = threading.Lock()
        self._exists = create or db.is_file()
        if create:
            db.parent.mkdir(parents=True, exist_ok=True)
            with self._connect() as conn:
                conn.execute(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.db, timeout=10)

    def add(
        self,
        *,
        file: str,
        article: str,
        heading: str,
        question: str,
        user: str,
        feedback_id: int | None = None,
    ) -> AssociatedQuestion:
        question = " ".join(question.split())
        if not question:
            raise AssociatedError("关联问题为空，请填写问题。")
        if len(question) > MAX_QUESTION_CHARS:
            raise AssociatedError(f"关联问题太长（超过 {MAX_QUESTION_CHARS} 字），请精简后再试。")
        if not file or not (article or heading):
            raise AssociatedError("请指定要关联的文件和条文（或章节标题）。")
        now = datetime.now(UTC).isoformat(timespec="seconds")
        with self._lock, self._connect() as conn:
            cur = conn.execute(
                "INSERT INTO associated_questions (time, user, file, article, heading, question, feedback_id)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (now, user, file, article, heading, question, feedback_id),
            )
            row_id = int(cur.lastrowid or 0)
        return AssociatedQuestion(file, article, heading, question, user, now, row_id, "admin", feedback_id)

    def remove(self, row_id: int) -> AssociatedQuestion | None:
        found = [q for q in self._admin_rows() if q.id == row_id]
        if not found:
            return None
        with self._lock, self._connect() as conn:
            conn.execute("DELETE FROM associated_questions WHERE id = ?", (row_id,))
        return found[0]

    def all(self) -> list[AssociatedQuestion]:
        return self.read()[0]

    def read(self) -> tuple[list[AssociatedQuestion], list[tuple[Path, str]]]:
        """Every question, and the generated files that could not be read (path, Chinese reason):
        those are skipped, not fatal, since one broken file must not strip every document's questions."""
        generated, broken = self._generated_rows()
        return self._curated_rows() + generated + self._admin_rows(), broken

    def for_file(self, file: str) -> list[AssociatedQuestion]:
        return [q for q in self.all() if q.file == file]

    def digest(self, file: str) -> str:
        """Short hash of ``file``'s questions ("" when it has none): part of its index fingerprint."""
        return questions_digest(self.for_file(file))

    def _admin_rows(self) -> list[AssociatedQuestion]:
        if not self._exists:
            return []
        with self._connect() as conn:
            if (
                conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'associated_questions'").fetchone()
                is None
            ):
                return []
            rows = conn.execute(
                "SELECT id, time, user, file, article, heading, question, feedback_id"
                " FROM associated_questions ORDER BY id"
            ).fetchall()
        return [
            AssociatedQuestion(
                file=str(r[3]),
                article=str(r[4]),
                heading=str(r[5]),
                question=str(r[6]),
                user=str(r[2]),
                time=str(r[1]),
                id=int(r[0]),
                feedback_id=int(r[7]) if r[7] is not None else None,
            )
            for r in rows
        ]

    def _curated_rows(self) -> list[AssociatedQuestion]:
        if self.curated is None or not self.curated.is_file():
            return []
        return _read_toml(self.curated, "curated")

    def _generated_rows(self) -> tuple[list[AssociatedQuestion], list[tuple[Path, str]]]:
        if self.generated is None or not self.generated.is_dir():
            return [], []
        out: list[AssociatedQuestion] = []
        broken: list[tuple[Path, str]] = []
        for path in sorted(self.generated.glob("*.toml")):
            try:
                out.extend(_read_toml(path, "generated"))
            except AssociatedError as exc:
                broken.append((path, str(exc)))
        return out, broken


def questions_digest(questions: list[AssociatedQuestion]) -> str:
    """Short hash of a document's questions ("" for none); ``ingest.records.document_fingerprint``
    adds it to the document's index fingerprint, so a changed question re-indexes the document."""
    items = sorted((q.article, q.heading, q.question, q.quote) for q in questions)
    if not items:
        return ""
    return hashlib.sha1(repr(items).encode("utf-8")).hexdigest()[:10]


def _read_toml(path: Path, source: str) -> list[AssociatedQuestion]:
    """The ``[[question]]`` rows of one TOML file (rows without a file, a target or a question,
    or longer than ``MAX_QUESTION_CHARS``, are skipped)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise AssociatedError(f"关联问题文件 {path} 无法读取（{exc}）。请修正后再导入。") from exc
    out: list[AssociatedQuestion] = []
    for item in data.get("question", []):
        if not isinstance(item, dict):
            continue
        file, question = str(item.get("file", "")), " ".join(str(item.get("question", "")).split())
        article, heading = str(item.get("article", "")), str(item.get("heading", ""))
        quote = str(item.get("quote", ""))
        if file and question and (article or heading or quote) and len(question) <= MAX_QUESTION_CHARS:
            out.append(AssociatedQuestion(file, article, heading, question, source=source, quote=quote))
    return out
