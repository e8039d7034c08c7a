"""SQLite store for thumbs up/down feedback on answers.

One row per rating: the question, the answer text, the citations as JSON,
the time (UTC, ISO 8601), the user from the trusted header, the rating
(+1 / -1) and an optional comment that can be added afterwards.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Sequence
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
    comment TEXT NOT NULL DEFAULT ''
)
"""

MAX_COMMENT_CHARS = 2000


class FeedbackStore:
    """Append-only feedback table; safe to share between threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        with self._connect() as conn:
            conn.execute(_SCHEMA)

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
    ) -> int:
        """Store one rating (+1 or -1) and return its row id."""
        if rating not in (-1, 1):
            raise ValueError("评分只能是 1（有帮助）或 -1（没有帮助）")
        cites = [c.model_dump() if isinstance(c, Citation) else dict(c) for c in citations]
        row = (
            datetime.now(UTC).isoformat(timespec="seconds"),
            user,
            question,
            answer,
            json.dumps(cites, ensure_ascii=False),
            rating,
            comment[:MAX_COMMENT_CHARS],
        )
        with self._lock, self._connect() as conn:
            cur = conn.execute(
                "INSERT INTO feedback (time, user, question, answer, citations, rating, comment)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                row,
            )
            return int(cur.lastrowid or 0)

    def add_comment(self, row_id: int, comment: str, user: str = "") -> bool:
        """Attach (or replace) the comment of an earlier rating by the same user.

        False when there is no such row for that user.
        """
        with self._lock, self._connect() as conn:
            cur = conn.execute(
                "UPDATE feedback SET comment = ? WHERE id = ? AND user = ?",
                (comment[:MAX_COMMENT_CHARS], row_id, user),
            )
            return cur.rowcount > 0

    def rows(self, limit: int = 100) -> list[dict[str, Any]]:
        """The latest rows, newest first (for inspection and tests)."""
        with self._connect() as conn:
            conn.row_factory = sqlite3.Row
            cur = conn.execute("SELECT * FROM feedback ORDER BY id DESC LIMIT ?", (limit,))
            return [dict(r) for r in cur.fetchall()]
