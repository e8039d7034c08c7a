"""The real pages in headless Chromium (Debian /usr/bin/chromium, driven by Playwright).

A real server (uvicorn in a thread, real assistant and store) on a free
loopback port; host pages on other loopback ports, one on the allow-list and
one not. Screenshots go to ``screenshots/`` (git-ignored).
"""

from __future__ import annotations

import functools
import http.server
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from conftest import free_port

from assistant.config import Settings

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[1] / "screenshots"
QUESTION = "政务处分的种类有哪些？"
LOOPBACK = {"127.0.0.1", "localhost"}

XSS_DOC = """---
title: 测试单位加班补贴办法<script>window.__pwned=3</script>
issuer: 测试单位<img src=x onerror="window.__pwned=4">
date: 2024-01-01
status: 现行
---

第一条　为了规范测试单位加班补贴的发放，制定本办法。

第二条　工作日加班的，每小时发放加班补贴五十元。<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">

第三条　本办法自发布之日起施行。
"""
XSS_QUESTION = "工作日加班每小时发放多少加班补贴？"

HOST_PAGE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>{title}</title></head>
<body><h1>{title}</h1><p>这是一个嵌入了政策问答助手的单位网页。</p>
<script src="{app}/widget.js" defer></script></body></html>
"""


class _Uvicorn:
    """A real uvicorn server in a daemon thread."""

    def __init__(self, app: Any, port: int) -> None:
        import uvicorn

        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = f"http://127.0.0.1:{port}"

    def __enter__(self) -> _Uvicorn:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


class _StaticSite:
    """A plain http.server serving one folder on a loopback port (the "host" website)."""

    def __init__(self, folder: Path, port: int, host: str = "127.0.0.1") -> None:
        handler = functools.partial(_QuietHandler, directory=str(folder))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.url = f"http://{host}:{port}"

    def __enter__(self) -> _StaticSite:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def _server_settings(base: Settings, tmp: Path, port: int, allowed: list[str]) -> Settings:
    server = base.server.model_copy(
        update={
            "port": port,
            "allowed_origins": allowed,
            "feedback_db": tmp / "feedback.sqlite3",
            # The browser plays the user behind the reverse proxy, which connects from loopback.
            "trusted_proxies": ["127.0.0.1"],
        }
    )
    return base.model_copy(update={"server": server})


@pytest.fixture(scope="module")
def site(
    ingested_settings: Settings, embeddings: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """The app server, an allowed host site and a host site that is not on the allow-list."""
    from assistant.service import build_assistant
    from ui.app import create_app

    if not CHROMIUM.exists():
        pytest.fail("Debian chromium is missing: apt-get install -y chromium")
    tmp = tmp_path_factory.mktemp("browser")
    app_port, host_port, evil_port = free_port(), free_port(), free_port()
    app_url = f"http://127.0.0.1:{app_port}"
    host_url, evil_url = f"http://127.0.0.1:{host_port}", f"http://127.0.0.1:{evil_port}"
    settings = _server_settings(ingested_settings, tmp, app_port, [host_url])
    app = create_app(settings, build_assistant(settings, embeddings=embeddings))
    pages = tmp / "host"
    pages.mkdir()
    (pages / "index.html").write_text(
        HOST_PAGE.format(title="单位门户（已授权）", app=app_url), encoding="utf-8"
    )
    (pages / "evil.html").write_text(HOST_PAGE.format(title="未授权网站", app=app_url), encoding="utf-8")
    with (
        _Uvicorn(app, app_port),
        _StaticSite(pages, host_port) as host,
        _StaticSite(pages, evil_port) as evil,
    ):
        yield {
            "app": app_url,
            "host": host.url,
            "evil": evil.url,
            "settings": settings,
            "allowed": host_url,
            "evil_origin": evil_url,
        }


@pytest.fixture(scope="module")
def xss_site(
    make_settings: Callable[..., Settings], embeddings: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A second server over a one-document library whose text contains <script> and onerror."""
    from assistant.service import build_assistant
    from ingest.indexer import run_ingest
    from ui.app import create_app

    tmp = tmp_path_factory.mktemp("xss")
    library = tmp / "library"
    library.mkdir()
    (library / "测试单位加班补贴办法.md").write_text(XSS_DOC, encoding="utf-8")
    port = free_port()
    settings = make_settings(tmp, ingest={"library_dirs": [library]}, chroma={"collection": "xss_test"})
    settings = _server_settings(settings, tmp, port, [])
    report = run_ingest(settings, embeddings, progress=False)
    assert report is not None
    app = create_app(settings, build_assistant(settings, embeddings=embeddings))
    with _Uvicorn(app, port) as server:
        yield server.url


@pytest.fixture(scope="module")
def limited_site(
    ingested_settings: Settings, embeddings: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A server that allows one question per minute per client."""
    from assistant.service import build_assistant
    from ui.app import create_app

    port = free_port()
    settings = _server_settings(ingested_settings, tmp_path_factory.mktemp("limited"), port, [])
    settings = settings.model_copy(
        update={"server": settings.server.model_copy(update={"rate_limit_per_minute": 1})}
    )
    with _Uvicorn(create_app(settings, build_assistant(settings, embeddings=embeddings)), port) as server:
        yield server.url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


class _Tab:
    """A fresh browser context + page that records every request it makes."""

    def __init__(self, browser: Any, headers: dict[str, str] | None = None) -> None:
        self.context = browser.new_context(
            locale="zh-CN", viewport={"width": 1200, "height": 1000}, extra_http_headers=headers or {}
        )
        self.requests: list[str] = []
        self.context.on("request", lambda r: self.requests.append(r.url))
        self.page = self.context.new_page()
        self.console: list[str] = []
        self.page.on("console", lambda m: self.console.append(m.text))

    def hosts(self) -> set[str]:
        return {urlsplit(u).hostname or u for u in self.requests if not u.startswith(("data:", "blob:"))}

    def shot(self, name: str) -> None:
        SCREENSHOTS.mkdir(exist_ok=True)
        self.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


@pytest.fixture
def tab(browser: Any) -> Iterator[_Tab]:
    t = _Tab(browser)
    yield t
    t.context.close()


def _ask_in_chat(tab: _Tab, base: str, question: str) -> Any:
    page = tab.page
    page.goto(base + "/")
    box = page.locator("#pa-question textarea")
    answers = page.locator("#pa-chatbot .pa-answer")
    box.wait_for()
    before = answers.count()  # a restored conversation may already show answers
    box.fill(question)
    box.press("Enter")
    # Wait for this question's own answer, not an earlier one still on the page ...
    page.wait_for_function(
        "n => document.querySelectorAll('#pa-chatbot .pa-answer').length > n", arg=before, timeout=120_000
    )
    bot = answers.nth(before)
    bot.locator(".pa-text").wait_for(timeout=120_000)
    # ... and for its stream to end.
    page.wait_for_function("() => !document.querySelector('#pa-chatbot .pa-cursor')", timeout=120_000)
    return bot


@pytest.fixture
def user_tab(browser: Any) -> Iterator[_Tab]:
    """A tab whose requests carry the trusted user header, as behind the reverse proxy."""
    t = _Tab(browser, {"X-Remote-User": "wangwu"})
    yield t
    t.context.close()


def test_chat_page_answers_with_citation_and_records_feedback(user_tab: _Tab, site: dict[str, Any]) -> None:
    tab = user_tab
    page = tab.page
    answer = _ask_in_chat(tab, site["app"], QUESTION)
    cites = answer.locator(".pa-cite")
    assert cites.count() >= 1
    first = cites.first
    assert first.locator(".pa-source").inner_text().startswith("《")
    assert first.locator(".pa-quote mark").count() == 1
    quote = first.locator(".pa-quote mark").inner_text()
    first.locator("details summary").click()
    full = first.locator("details .pa-article")
    assert full.is_visible()
    assert quote in full.inner_text()
    answer.evaluate("el => el.scrollIntoView({block: 'start'})")
    tab.shot("chat_answer")
    # Thumbs down is stored in SQLite with the answer.
    page.get_by_role("button", name="踩").last.click()
    page.locator("#pa-status").get_by_text("已记录您的评价").wait_for()
    page.get_by_text("对回答的意见（可选）").click()
    page.get_by_label("先点回答下方的“赞”或“踩”图标，再在此补充意见").fill("希望列出处分期")
    page.get_by_role("button", name="提交意见").click()
    page.locator("#pa-status").get_by_text("意见已保存").wait_for()
    with sqlite3.connect(site["settings"].server.feedback_db) as conn:
        rows = conn.execute("SELECT question, rating, user, comment, citations FROM feedback").fetchall()
    assert [r[:4] for r in rows] == [(QUESTION, -1, "wangwu", "希望列出处分期")]
    assert '"chunk_id"' in rows[0][4]
    # The library tab lists every document with its status.
    page.get_by_role("tab", name="资料库").click()
    table = page.locator("#pa-library table")
    table.wait_for()
    assert table.locator("tbody tr").count() >= 10
    assert table.get_by_text("已废止").count() >= 1
    tab.shot("library")
    # Over-long questions get a clear message in the chat, not an error page.
    page.get_by_role("tab", name="问答").click()
    page.locator("#pa-question textarea").fill("问" * (site["settings"].server.max_question_chars + 1))
    page.locator("#pa-send").click()
    page.locator("#pa-chatbot .pa-warn").get_by_text("问题太长了").wait_for()
    assert tab.hosts() <= LOOPBACK, tab.requests


def test_widget_on_allowed_host_answers(tab: _Tab, site: dict[str, Any]) -> None:
    page = tab.page
    page.goto(site["host"] + "/index.html")
    page.locator("#policy-assistant-button").click()
    frame = page.frame_locator("#policy-assistant-frame")
    frame.locator("#pa-input").fill(QUESTION)
    frame.locator("#pa-send").click()
    cite = frame.locator(".pa-cite").first
    cite.wait_for(timeout=120_000)
    assert frame.locator(".pa-cite .pa-quote mark").count() >= 1
    cite.locator("summary").click()
    frame.locator(".pa-article mark").first.wait_for()
    tab.shot("widget_allowed_host")
    # The host page itself may call the API too (CORS allows its origin).
    result = page.evaluate(
        """async ([url, q]) => {
            const r = await fetch(url + "/api/ask", {method: "POST", headers: {"Content-Type": "application/json"},
                                                    body: JSON.stringify({question: q})});
            return {status: r.status, citations: (await r.json()).citations.length};
        }""",
        [site["app"], QUESTION],
    )
    assert result["status"] == 200 and result["citations"] >= 1
    assert tab.hosts() <= LOOPBACK, tab.requests


def test_widget_on_host_not_on_allow_list_is_refused(tab: _Tab, site: dict[str, Any]) -> None:
    page = tab.page
    page.goto(site["evil"] + "/evil.html")
    page.locator("#policy-assistant-button").click()
    handle = page.locator("#policy-assistant-frame").element_handle()
    assert handle is not None
    page.wait_for_timeout(1500)
    frame = handle.content_frame()
    # Chromium replaces a frame refused by CSP frame-ancestors with its error page.
    assert frame is None or frame.url.startswith("chrome-error://") or frame.locator("#pa-input").count() == 0
    assert any("frame-ancestors" in line for line in tab.console), tab.console
    tab.shot("widget_refused_host")
    # Direct API calls from that origin fail in the browser (403, no CORS header).
    outcome = page.evaluate(
        """async (url) => {
            try {
                const r = await fetch(url + "/api/ask", {method: "POST", headers: {"Content-Type": "application/json"},
                                                        body: JSON.stringify({question: "x"})});
                return "status " + r.status;
            } catch (e) { return "blocked"; }
        }""",
        site["app"],
    )
    assert outcome == "blocked"
    assert tab.hosts() <= LOOPBACK, tab.requests


def test_document_markup_is_shown_as_text(tab: _Tab, xss_site: str) -> None:
    page = tab.page
    answer = _ask_in_chat(tab, xss_site, XSS_QUESTION)
    assert answer.locator(".pa-cite").count() >= 1
    for summary in answer.locator("details summary").all():
        summary.click()
    text = answer.inner_text()
    assert "<script>window.__pwned=1</script>" in text
    answer.evaluate("el => el.scrollIntoView({block: 'start'})")
    assert page.locator("#pa-chatbot script").count() == 0
    assert page.locator("#pa-chatbot img[src='x']").count() == 0
    tab.shot("markup_as_text_chat")
    # The library tab shows the title and issuer as text too.
    page.get_by_role("tab", name="资料库").click()
    page.locator("#pa-library table").wait_for()
    assert "<script>window.__pwned=3</script>" in page.locator("#pa-library").inner_text()
    assert page.locator("#pa-library script, #pa-library img").count() == 0
    # The compact embed page renders the same citation with textContent.
    page.goto(xss_site + "/embed")
    page.locator("#pa-input").fill(XSS_QUESTION)
    page.locator("#pa-send").click()
    page.locator(".pa-cite").first.wait_for(timeout=120_000)
    page.locator(".pa-cite summary").first.click()
    page.locator(".pa-article mark").first.wait_for()
    assert "<script>" in page.locator("#pa-log").inner_text()
    assert page.locator("#pa-log script, #pa-log img").count() == 0
    tab.shot("markup_as_text_embed")
    assert page.evaluate("window.__pwned") is None
    assert tab.hosts() <= LOOPBACK, tab.requests


def test_chat_says_politely_when_rate_limited(tab: _Tab, limited_site: str) -> None:
    page = tab.page
    first = _ask_in_chat(tab, limited_site, QUESTION)
    assert first.locator(".pa-cite").count() >= 1
    page.locator("#pa-question textarea").fill("其中记过的处分期是多长？")
    page.locator("#pa-send").click()
    page.locator("#pa-chatbot .pa-warn").get_by_text("提问太频繁了，请稍等一分钟后再试。").wait_for()
    # The page keeps working: the question stays in the box for a later retry.
    assert page.locator("#pa-question textarea").input_value() == "其中记过的处分期是多长？"
    tab.shot("chat_rate_limited")
    assert tab.hosts() <= LOOPBACK, tab.requests


def test_pages_load_nothing_from_outside(tab: _Tab, site: dict[str, Any]) -> None:
    page = tab.page
    page.goto(site["app"] + "/")  # Gradio keeps a connection open: no "networkidle" here
    page.get_by_role("tab", name="资料库").click()
    page.locator("#pa-library table").wait_for()
    page.wait_for_timeout(1000)
    for path in ("/embed", "/embed-help", "/docs"):
        page.goto(site["app"] + path, wait_until="networkidle")
    assert page.locator("#ops .op").count() >= 3  # /docs rendered /openapi.json locally
    tab.shot("api_docs")
    page.goto(site["app"] + "/embed-help", wait_until="networkidle")
    assert f"{site['app']}/widget.js" in page.locator("pre").first.inner_text()
    tab.shot("embed_help")
    assert tab.requests, "no requests recorded"
    assert tab.hosts() <= LOOPBACK, sorted(tab.hosts())
