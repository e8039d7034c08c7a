"""SQLite store for thumbs up/down feedback on answers.

One row per rating: the question, the answer text, the citations as JSON,
the time (UTC, ISO 8601), the user from the trusted header, the rating
(+1 / -1) and an optional comment that can be added afterwards.

Who may add the comment afterwards: ``record`` returns a random per-row token
(only its SHA-256 is stored, in ``token_hash``) and ``add_comment`` requires that
token and the same user as the row. A per-row secret rather than "same identity"
alone, because most clients have no identity: every anonymous row has user "",
and row ids are sequential, so "same identity" would let any anonymous client
overwrite any anonymous comment. Rows written before the token existed have an
empty hash and accept no comment without a user: only their identified author.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from assistant.schema import Citation

_SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time TEXT NOT NULL,
    user TEXT NOT NULL DEFAULT '',
    question TEXT NOT NULL,
    answer TEXT NOT NULL,
    citations TEXT NOT NULL DEFAULT '[]',
    rating INTEGER NOT NULL CHECK (rating IN (-1, 1)),
    comment TEXT NOT NULL DEFAULT '',
    token_hash TEXT NOT NULL DEFAULT ''
)
"""

MAX_COMMENT_CHARS = 10_000
# SQLite INTEGER range: larger ids cannot name a row.
MAX_ROW_ID = 2**63 - 1


@dataclass(frozen=True)
class Receipt:
    """What the client gets back for a stored rating: the row and the secret to comment on it."""

    id: int
    token: str


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


class FeedbackStore:
    """Append-only feedback table; safe to share between threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        with self._connect() as conn:
            conn.execute(_SCHEMA)
            columns = {str(r[1]) for r in conn.execute("PRAGMA table_info(feedback)")}
            if "token_hash" not in columns:  # a table from before per-row tokens
                conn.execute("ALTER TABLE feedback ADD COLUMN token_hash TEXT NOT NULL DEFAULT ''")

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=10)

    def record(
        self,
        *,
        question: str,
        answer: str,
        citations: Sequence[Citation | dict[str, Any]],
        rating: int,
        user: str = "",
        comment: str = "",
    ) -> Receipt:
        """Store one rating (+1 or -1); the receipt's token is needed to comment on it later."""
        if rating not in (-1, 1):
            raise ValueError("评分只能是 1（有帮助）或 -1（没有帮助）")
        cites = [c.model_dump() if isinstance(c, Citation) else dict(c) for c in citations]
        token = secrets.token_urlsafe(18)
        row = (
            datetime.now(UTC).isoformat(timespec="seconds"),
            user,
            question,
            answer,
            json.dumps(cites, ensure_ascii=False),
            rating,
            comment[:MAX_COMMENT_CHARS],
            _hash(token),
        )
        with self._lock, self._connect() as conn:
            cur = conn.execute(
                "INSERT INTO feedback (time, user, question, answer, citations, rating, comment, token_hash)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                row,
            )
            return Receipt(id=int(cur.lastrowid or 0), token=token)

    def add_comment(self, row_id: int, comment: str, user: str = "", token: str = "") -> bool:
        """Attach (or replace) the comment of an earlier rating.

        Allowed when the row was created by ``user`` and ``token`` is its receipt
        token; a row of an identified user (trusted header, never "") also accepts
        its author without the token. False otherwise, or when there is no such row.
        """
        if not 0 < row_id <= MAX_ROW_ID:
            return False
        with self._lock, self._connect() as conn:
            found = conn.execute("SELECT user, token_hash FROM feedback WHERE id = ?", (row_id,)).fetchone()
            if found is None or str(found[0]) != user:
                return False
            token_ok = bool(found[1]) and hmac.compare_digest(str(found[1]), _hash(token))
            if not (token_ok or user):
                return False
            conn.execute(
                "UPDATE feedback SET comment = ? WHERE id = ?", (comment[:MAX_COMMENT_CHARS], row_id)
            )
            return True

    def rows(self, limit: int = 100) -> list[dict[str, Any]]:
        """The latest rows, newest first (for inspection and tests)."""
        with self._connect() as conn:
            conn.row_factory = sqlite3.Row
            cur = conn.execute("SELECT * FROM feedback ORDER BY id DESC LIMIT ?", (limit,))
            return [dict(r) for r in cur.fetchall()]
