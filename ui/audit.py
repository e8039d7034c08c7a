"""The audit log of the admin console: every admin action (who, what, when) in SQLite.

Table ``audit_log`` in ``server.admin_db``: ``id``, ``time`` (UTC, ISO 8601), ``user`` (the
administrator as ``ui.admin_auth`` names them), ``ip``, ``action`` (upload, replace, status,
remove, reindex, review, associate, …) and ``detail`` (Chinese, what was done to what).
Rows are only ever added.
"""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time TEXT NOT NULL,
    user TEXT NOT NULL,
    ip TEXT NOT NULL DEFAULT '',
    action TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT ''
)
"""
MAX_DETAIL_CHARS = 2000


class AuditLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        with self._connect() as conn:
            conn.execute(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=10)

    def record(self, user: str, action: str, detail: str = "", ip: str = "") -> None:
        now = datetime.now(UTC).isoformat(timespec="seconds")
        with self._lock, self._connect() as conn:
            conn.execute(
                "INSERT INTO audit_log (time, user, ip, action, detail) VALUES (?, ?, ?, ?, ?)",
                (now, user, ip, action, detail[:MAX_DETAIL_CHARS]),
            )

    def rows(self, limit: int = 200) -> list[dict[str, Any]]:
        """The latest entries, newest first."""
        with self._connect() as conn:
            conn.row_factory = sqlite3.Row
            cur = conn.execute(
                "SELECT * FROM audit_log ORDER BY id DESC LIMIT ?", (max(1, min(limit, 5000)),)
            )
            return [dict(r) for r in cur.fetchall()]
