"""The /admin page (administrators only), its token login, and the audit log API.

* ``GET /admin``: the console (``static/admin.html`` + ``admin.js``, our own scripts only,
  never framed) for an administrator (``ui.admin_auth``); 403 for everyone else, with a
  token form when a token is configured.
* ``POST /admin/login`` (form ``token``): a correct token sets the session cookie and
  goes to /admin; wrong ones are rate-limited like questions. ``POST /admin/logout``.
* ``GET /api/admin/audit``: the latest audit entries (``ui.audit``).
"""

from __future__ import annotations

import html
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from .admin_auth import COOKIE, MSG_ADMIN_OFF, AdminGate, session_value
from .audit import AuditLog
from .context import UIContext
from .embed import STRICT_CSP, static_text

# The console is never shown inside another site's frame.
ADMIN_CSP = f"{STRICT_CSP}; frame-ancestors 'none'"
MSG_BAD_TOKEN = "管理令牌不正确，请重新输入。"
MSG_TOO_MANY = "尝试次数太多，请一分钟后再试。"


def _page(text: str, status: int = 200) -> HTMLResponse:
    headers = {"Content-Security-Policy": ADMIN_CSP, "Cache-Control": "no-store"}
    return HTMLResponse(text, status_code=status, headers=headers)


def build_admin_page_router(ctx: UIContext, gate: AdminGate, audit: AuditLog) -> APIRouter:
    router = APIRouter()
    server = ctx.settings.server

    def denied(message: str = "") -> HTMLResponse:
        if not gate.enabled:
            form = f'<p class="pa-warn">{html.escape(MSG_ADMIN_OFF)}</p>'
        elif server.admin_token:
            form = (
                '<form method="post" action="/admin/login"><label>管理令牌 '
                '<input type="password" name="token" id="pa-admin-token" autocomplete="current-password" required>'
                '</label> <button type="submit" id="pa-admin-login">登录</button></form>'
            )
        else:
            form = "<p>请通过单位统一登录访问本页；如需开通管理权限，请联系系统管理员把您的用户名加入 server.admin_users。</p>"
        note = f'<p class="pa-warn" id="pa-admin-error">{html.escape(message)}</p>' if message else ""
        return _page(static_text("admin_denied.html").replace("{{FORM}}", note + form), 403)

    @router.get("/admin", include_in_schema=False)
    def admin(request: Request) -> HTMLResponse:
        who = gate.who(request)
        if who is None:
            return denied()
        return _page(static_text("admin.html").replace("{{USER}}", html.escape(who)))

    @router.post("/admin/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        ip = request.client.host if request.client else ""
        if not ctx.limiter.allow("admin-login|" + ip):
            return denied(MSG_TOO_MANY)
        form = await request.form(max_files=0, max_fields=2)
        token = form.get("token")
        await form.close()
        if not isinstance(token, str) or not gate.token_ok(token):
            audit.record("（未登录）", "login-failed", "管理令牌错误", ip)
            return denied(MSG_BAD_TOKEN)
        audit.record("管理令牌持有人", "login", "以管理令牌登录", ip)
        response = RedirectResponse("/admin", status_code=303)
        response.set_cookie(
            COOKIE, session_value(server.admin_token), httponly=True, samesite="strict", path="/"
        )
        return response

    @router.post("/admin/logout", include_in_schema=False)
    def logout() -> Response:
        response = RedirectResponse("/admin", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    @router.get("/api/admin/audit", tags=["管理"], summary="操作日志（最近的在前）")
    def audit_rows(request: Request, limit: int = Query(200, ge=1, le=5000)) -> dict[str, Any]:
        gate.require(request)
        return {"rows": audit.rows(limit)}

    return router
