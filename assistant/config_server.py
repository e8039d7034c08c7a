"""``server.*`` settings: the HTTP service, its limits and its admin console (split from
``assistant.config``, which re-exports it; each limit says what it trades)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from assistant.paths import PROJECT_ROOT


class ServerSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 7860
    allowed_origins: list[str] = ["http://127.0.0.1:7860", "http://localhost:7860"]
    user_header: str = "X-Remote-User"
    max_question_chars: int = 500
    rate_limit_per_minute: int = 30
    feedback_db: Path = PROJECT_ROOT / ".data" / "feedback.sqlite3"
    # Bearer token of the admin API (/api/admin/*). Empty: the admin API is off (403).
    admin_token: str = ""
    # Users (from the trusted identity header, user_header) who may use /admin; empty: token only.
    admin_users: list[str] = []
    # SQLite file of the admin console: audit log, feedback review marks, admin-attached 关联问题.
    admin_db: Path = PROJECT_ROOT / ".data" / "admin.sqlite3"
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
