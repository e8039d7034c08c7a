"""Who is an administrator: a user named in ``server.admin_users`` (from the trusted identity
header, ``ui.identity``) or the holder of ``server.admin_token``.

The token is accepted as ``Authorization: Bearer <token>`` (scripts) or as the session cookie
the /admin login form sets (browsers). The cookie holds an HMAC of the token, never the token,
is ``HttpOnly`` and ``SameSite=Strict``, and stops working when the token is changed. Everyone
else gets 403 from the page and from every admin API; with neither setting configured the
console is off (403 too), never open.
"""

from __future__ import annotations

import hashlib
import hmac

from fastapi import HTTPException, Request

from assistant.config import ServerSettings

from .identity import IdentityResolver

COOKIE = "pa_admin"
TOKEN_HOLDER = "管理令牌持有人"

MSG_ADMIN_OFF = (
    "管理功能未启用：请在配置中设置 server.admin_users（管理员用户名，来自受信任的身份头）"
    "或 server.admin_token（管理令牌，环境变量 POLICY_SERVER__ADMIN_TOKEN）。"
)
MSG_ADMIN_DENIED = (
    "没有管理权限：只有 server.admin_users 中的用户或持有管理令牌者可以使用。"
    "脚本请在请求头 Authorization 中提供管理令牌（Bearer …），浏览器请在 /admin 页面输入令牌。"
)


def session_value(token: str) -> str:
    """The cookie value for ``token``: an HMAC, so the cookie never carries the token itself."""
    return hmac.new(token.encode(), b"policy-assistant admin session", hashlib.sha256).hexdigest()


class AdminGate:
    def __init__(self, server: ServerSettings, identity: IdentityResolver) -> None:
        self.server = server
        self.identity = identity

    @property
    def enabled(self) -> bool:
        return bool(self.server.admin_token or self.server.admin_users)

    def token_ok(self, given: str) -> bool:
        token = self.server.admin_token
        return bool(token) and hmac.compare_digest(given.strip().encode(), token.encode())

    def who(self, request: Request) -> str | None:
        """The administrator's name for the audit log, or None for everyone else."""
        peer = request.client.host if request.client else None
        user = self.identity.resolve(request.headers, peer).user
        if user and user in self.server.admin_users:
            return user
        token = self.server.admin_token
        if not token:
            return None
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        cookie = request.cookies.get(COOKIE, "")
        by_header = scheme.lower() == "bearer" and self.token_ok(value)
        by_cookie = bool(cookie) and hmac.compare_digest(cookie.encode(), session_value(token).encode())
        if by_header or by_cookie:
            return f"{user}（{TOKEN_HOLDER}）" if user else TOKEN_HOLDER
        return None

    def check(self, request: Request) -> None:
        """Router dependency: 403 before the body is validated (a malformed body is still a 403)."""
        self.require(request)

    def require(self, request: Request) -> str:
        """The administrator's name, or 403 (Chinese) for everyone else."""
        who = self.who(request)
        if who is None:
            raise HTTPException(status_code=403, detail=MSG_ADMIN_DENIED if self.enabled else MSG_ADMIN_OFF)
        return who
