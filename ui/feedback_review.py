"""Reviewing feedback in the admin console: list and filter ratings, mark them reviewed, CSV.

Reads the ``feedback`` table (``ui.feedback``) and keeps review marks beside it, in the same
SQLite file, in ``feedback_review`` (``feedback_id``, ``time``, ``user``): the feedback rows
themselves are never changed by a review.
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback_review (
    feedback_id INTEGER PRIMARY KEY,
    time TEXT NOT NULL,
    user TEXT NOT NULL
)
"""
CSV_COLUMNS = (
    "id",
    "time",
    "user",
    "rating",
    "question",
    "answer",
    "citations",
    "comment",
    "reviewed_at",
    "reviewed_by",
)


@dataclass(frozen=True)
class ReviewFilter:
    rating: int | None = None  # 1, -1 or None for both
    since: str = ""  # "YYYY-MM-DD" (inclusive, UTC) or ""
    until: str = ""  # "YYYY-MM-DD" (inclusive, UTC) or ""
    reviewed: bool | None = None  # None: both
    limit: int = 200


class FeedbackReview:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        with self._connect() as conn:
            conn.execute(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=10)

    def rows(self, f: ReviewFilter) -> list[dict[str, Any]]:
        """Feedback rows matching ``f``, newest first, with citations parsed and review marks."""
        where: list[str] = []
        args: list[Any] = []
        if f.rating in (1, -1):
            where.append("f.rating = ?")
            args.append(f.rating)
        if f.since:
            where.append("f.time >= ?")
            args.append(f.since)
        if f.until:
            where.append("f.time < ?")
            args.append(f.until + "T99")  # every time on that day sorts below "…T99"
        if f.reviewed is not None:
            where.append("r.feedback_id IS NOT NULL" if f.reviewed else "r.feedback_id IS NULL")
        sql = (
            "SELECT f.id, f.time, f.user, f.rating, f.question, f.answer, f.citations, f.comment,"
            " COALESCE(r.time, '') AS reviewed_at, COALESCE(r.user, '') AS reviewed_by"
            " FROM feedback f LEFT JOIN feedback_review r ON r.feedback_id = f.id"
            + (" WHERE " + " AND ".join(where) if where else "")
            + " ORDER BY f.id DESC LIMIT ?"
        )
        args.append(max(1, min(f.limit, 10_000)))
        with self._connect() as conn:
            conn.row_factory = sqlite3.Row
            out = [dict(r) for r in conn.execute(sql, args).fetchall()]
        for row in out:
            try:
                row["citations"] = json.loads(row["citations"] or "[]")
            except json.JSONDecodeError:
                row["citations"] = []
        return out

    def get(self, feedback_id: int) -> dict[str, Any] | None:
        with self._connect() as conn:
            conn.row_factory = sqlite3.Row
            found = conn.execute("SELECT * FROM feedback WHERE id = ?", (feedback_id,)).fetchone()
        return dict(found) if found is not None else None

    def mark(self, feedback_id: int, user: str) -> bool:
        """Mark a row reviewed by ``user`` (again: the latest mark wins); False when there is no such row."""
        if self.get(feedback_id) is None:
            return False
        now = datetime.now(UTC).isoformat(timespec="seconds")
        with self._lock, self._connect() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO feedback_review (feedback_id, time, user) VALUES (?, ?, ?)",
                (feedback_id, now, user),
            )
        return True

    def csv(self, f: ReviewFilter) -> str:
        """The rows matching ``f`` as CSV (UTF-8 with BOM so that Excel shows Chinese correctly)."""
        buf = io.StringIO()
        buf.write("\ufeff")
        writer = csv.writer(buf)
        writer.writerow(CSV_COLUMNS)
        for row in self.rows(f):
            cites = "；".join(f"《{c.get('title', '')}》{c.get('article', '')}" for c in row["citations"])
            writer.writerow([_cell(cites if k == "citations" else row[k]) for k in CSV_COLUMNS])
        return buf.getvalue()


def _cell(value: Any) -> str:
    """A CSV cell that a spreadsheet will not run as a formula (=, +, -, @ at the start)."""
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") and text not in ("-1",) else text
