"""The admin console end to end: a real `policy-assistant serve` (real model, embedded Chroma),
real Chromium for the admin and for a cadre in the chat, real HTTP for everyone else.

One server for the module; the tests run in file order on its library: 命中测试 against
`policy-assistant ask --json` (run on the same store before the server started), then 403 for
non-admins and refused uploads, then upload → answer → 已废止 badge → removal, then a 👎 in the
chat attached to an article that changes the next answer, then gradio_client's /ask.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import free_port, stored_files
from test_admin import RULE, docx_bytes
from test_browser import CHROMIUM, CHROMIUM_ARGS, _ask_in_chat, _Tab
from test_live_refresh import Server, _command, _env, _http, _ingest

pytestmark = [pytest.mark.browser, pytest.mark.model]

BASE_DOC = "中国共产党组织处理规定_试行.md"
ADMIN = {"X-Remote-User": "zhangsan"}
CADRE = {"X-Remote-User": "lisi"}
RANK_Q = "受到组织处理的干部多久以后才能再提拔？"
DOCX_TITLE = "测试单位无人机管理办法"
DOCX_Q = "测试单位的无人机飞行要提前几天报哪个部门审批？"
# Answered from 第十条 / 第十一条 of the base document; the article that should answer it is 第十二条 (申诉).
ASSOC_Q = "领导干部对免职决定有意见可以找谁？"
ASSOC_ARTICLE = "第十二条"


class Console:
    def __init__(self, server: Server, lib: Path, tmp: Path, ranked: dict[str, Any]) -> None:
        self.server = server
        self.base = server.base
        self.lib = lib
        self.tmp = tmp
        self.ranked = ranked  # `policy-assistant ask --json RANK_Q` before the server started

    def reindex_state(self) -> dict[str, Any]:
        status, body = _get(self.base + "/api/admin/reindex", ADMIN)
        assert status == 200, body
        return dict(body)

    def wait_ingest(self, after_runs: int) -> dict[str, Any]:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            state = self.reindex_state()
            if state["runs"] > after_runs and state["state"] in ("done", "failed") and not state["queued"]:
                assert state["state"] == "done", state
                return state
            time.sleep(0.5)
        pytest.fail("the background ingest did not finish")

    def stored(self) -> set[str]:
        return stored_files(self.tmp)


def _get(url: str, headers: dict[str, str]) -> tuple[int, Any]:
    req = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory, library_dir: Path) -> Iterator[Console]:
    if not CHROMIUM.exists():
        pytest.fail("Debian chromium is missing: apt-get install -y chromium")
    tmp = tmp_path_factory.mktemp("console")
    lib = tmp / "lib"
    lib.mkdir()
    (lib / BASE_DOC).write_bytes((library_dir / BASE_DOC).read_bytes())
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    q = json.dumps
    config = tmp / "policy.toml"
    config.write_text(
        "\n".join(
            [
                "[chroma]",
                f"persist_dir = {q(str(tmp / 'chroma'))}",
                "[ingest]",
                f"library_dirs = [{q(str(lib))}]",
                f"removed_dir = {q(str(tmp / 'removed'))}",
                f"associated_questions = {q(str(tmp / 'associated_questions.toml'))}",
                f"generated_questions = {q(str(tmp / 'generated_questions'))}",
                "[server]",
                f"port = {port}",
                'admin_token = "browser-admin-token"',
                f"admin_users = [{q(ADMIN['X-Remote-User'])}]",
                'trusted_proxies = ["127.0.0.1"]',
                f"feedback_db = {q(str(tmp / 'feedback.sqlite3'))}",
                f"admin_db = {q(str(tmp / 'admin.sqlite3'))}",
                f"allowed_origins = [{q(origin)}]",
                f"public_origins = [{q(origin)}]",
                "rate_limit_per_minute = 1000",
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    _ingest(config)
    done = subprocess.run(
        [_command("policy-assistant"), "ask", RANK_Q, "--json"],
        env=_env(config),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    server = Server(config, port, tmp / "serve.log")
    try:
        yield Console(server, lib, tmp, json.loads(done.stdout))
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def admin(browser: Any, console: Console) -> Iterator[_Tab]:
    tab = _Tab(browser, ADMIN)
    tab.page.goto(console.base + "/admin")
    tab.page.locator("#pa-docs tbody tr").first.wait_for(timeout=60_000)
    yield tab
    tab.context.close()


@pytest.fixture
def cadre(browser: Any) -> Iterator[_Tab]:
    tab = _Tab(browser, CADRE)
    yield tab
    tab.context.close()


def _sources(answer: Any) -> list[str]:
    return [str(s) for s in answer.locator(".pa-cite .pa-source").all_inner_texts()]


def test_retrieval_test_shows_the_ranking_of_ask_json(admin: _Tab, console: Console) -> None:
    page = admin.page
    page.get_by_role("button", name="命中测试").click()
    page.locator("#pa-hit-q").fill(RANK_Q)
    page.locator("#pa-hit-btn").click()
    table = page.locator("#pa-hit-table")
    table.wait_for(timeout=120_000)
    rows = [[c.strip() for c in r.split("\t")] for r in table.locator("tr").all_inner_texts()[1:]]
    expected = console.ranked["evidence"]
    assert [r[0] for r in rows] == [str(e["rank"]) for e in expected]
    assert [(r[1], r[2]) for r in rows] == [
        (f"{e['title']}（{e['file']}）", e["article"] or e["heading_path"]) for e in expected
    ]
    for row, e in zip(rows, expected, strict=True):
        assert row[7] == e["match"]
        for cell, key in ((row[3], "score"), (row[4], "dense_score"), (row[6], "bm25_score")):
            assert (cell == "" and e[key] is None) or abs(float(cell) - e[key]) < 2e-3, (cell, e[key])
    decision = page.locator("#pa-hit-decision").inner_text()
    assert f"（{console.ranked['decision']}）" in decision and f"（{console.ranked['reason']}）" in decision
    admin.shot("admin_hit_test")


def test_non_admins_get_403_and_hostile_uploads_store_nothing(cadre: _Tab, console: Console) -> None:
    import httpx

    cadre.page.goto(console.base + "/admin")
    assert "没有管理权限" in cadre.page.locator("#pa-admin-denied").inner_text()
    before = console.stored()
    doc = {"file": ("规定.md", "第一条　内容。".encode(), "text/markdown")}
    with httpx.Client(base_url=console.base, timeout=120) as web:
        for headers in ({}, CADRE, {"Authorization": "Bearer nope"}):
            assert web.get("/admin", headers=headers).status_code == 403
            assert web.post("/api/admin/documents", headers=headers, files=doc).status_code == 403
            for path in ("/api/admin/documents/remove", "/api/admin/documents/status", "/api/admin/reindex"):
                r = web.post(path, headers=headers, json={"file": BASE_DOC, "status": "已废止"})
                assert r.status_code == 403 and "管理" in r.json()["detail"], path
            for path in (
                "/api/admin/documents",
                "/api/admin/feedback",
                "/api/admin/audit",
                "/api/admin/feedback.csv",
            ):
                assert web.get(path, headers=headers).status_code == 403, path
        refused = [
            ({"file": ("../../x.md", "第一条　内容。".encode(), "text/markdown")}, "路径"),
            (
                {"file": ("规定.pdf", b"MZ\x90\x00\x03\x00\x00\x00" + b"\x00" * 4096, "application/pdf")},
                "不是 PDF",
            ),
        ]
        for files, words in refused:
            r = web.post("/api/admin/documents", headers=ADMIN, files=files)
            assert r.status_code == 422 and words in r.json()["detail"], r.text[:200]
    # A 50 MB upload is refused from its declared length, before a byte of the body is read
    # (the in-process test sends the whole body). Sending only the headers keeps the socket clean.
    conn = http.client.HTTPConnection("127.0.0.1", int(console.base.rsplit(":", 1)[1]), timeout=60)
    conn.putrequest("POST", "/api/admin/documents")
    for key, value in {
        **ADMIN,
        "Content-Type": "multipart/form-data; boundary=x",
        "Content-Length": str(50 << 20),
    }.items():
        conn.putheader(key, value)
    conn.endheaders()
    resp = conn.getresponse()
    assert resp.status == 413 and "文件太大" in json.loads(resp.read())["detail"]
    conn.close()
    assert console.stored() - before <= {"admin.sqlite3-journal"}
    assert not (console.tmp.parent / "x.md").exists() and not (console.lib.parent / "x.md").exists()
    assert _http(console.base + "/healthz")[0] == 200


def test_upload_answer_repeal_and_remove(admin: _Tab, cadre: _Tab, console: Console, tmp_path: Path) -> None:
    page = admin.page
    page.on("dialog", lambda d: d.accept())
    source = tmp_path / "无人机管理办法.docx"
    source.write_bytes(docx_bytes(RULE))
    runs = console.reindex_state()["runs"]
    page.set_input_files("#pa-file", str(source))
    page.locator("#pa-title").fill(DOCX_TITLE)
    page.locator("#pa-issuer").fill("测试单位")
    page.locator("#pa-date").fill("2025-03-01")
    page.locator("#pa-status").select_option("现行")
    page.locator("#pa-upload-btn").click()
    page.locator("#pa-upload-msg").get_by_text("正在后台导入").wait_for(timeout=60_000)
    progress = page.locator("#pa-ingest")
    page.wait_for_function(
        "n => { const e = document.getElementById('pa-ingest'); return e.dataset.state === 'done' && Number(e.dataset.runs) > n; }",
        arg=runs,
        timeout=600_000,
    )
    assert "导入完成" in progress.inner_text() and "新增 1" in progress.inner_text()
    assert progress.inner_text().count("导入完成") == 1
    row = page.locator('#pa-docs tr[data-file="无人机管理办法.docx"]')
    row.wait_for()
    assert DOCX_TITLE in row.inner_text() and "现行" in row.inner_text()
    admin.shot("admin_uploaded")

    answer = _ask_in_chat(cadre, console.base, DOCX_Q)
    assert any(DOCX_TITLE in s for s in _sources(answer)), answer.inner_text()
    assert "安全保卫处" in answer.inner_text()

    runs = console.reindex_state()["runs"]
    row.get_by_role("button", name="标记已废止").click()
    console.wait_ingest(runs)
    answer = _ask_in_chat(cadre, console.base, DOCX_Q)
    cite = answer.locator(".pa-cite").filter(has_text=DOCX_TITLE).first
    assert cite.locator(".pa-badge-repealed").inner_text() == "已废止"
    cadre.shot("chat_repealed_badge")

    runs = console.reindex_state()["runs"]
    page.reload()
    page.locator('#pa-docs tr[data-file="无人机管理办法.docx"]').get_by_role("button", name="移除").click()
    console.wait_ingest(runs)
    for question in (DOCX_Q, "无人机飞行审批", "测试单位无人机管理办法第二条是怎么规定的？"):
        status, body = _http(console.base + "/api/ask", {"question": question, "history": []})
        assert status == 200 and all(c["file"] != "无人机管理办法.docx" for c in body["citations"]), body
    page.reload()
    page.locator("#pa-docs tbody tr").first.wait_for()
    assert page.locator('#pa-docs tr[data-file="无人机管理办法.docx"]').count() == 0


def test_thumbs_down_attached_to_an_article_changes_the_answer(
    admin: _Tab, cadre: _Tab, console: Console
) -> None:
    answer = _ask_in_chat(cadre, console.base, ASSOC_Q)
    before = _sources(answer)
    assert before and ASSOC_ARTICLE not in before[0], before
    cadre.page.get_by_role("button", name="踩").last.click()
    cadre.page.locator("#pa-status").get_by_text("已记录您的评价").wait_for()

    page = admin.page
    page.get_by_role("button", name="反馈审阅").click()
    page.locator("#pa-fb-rating").select_option("-1")
    # The list is re-rendered by every load (the tab's own and the filter's); the row's fields
    # are filled only once no load is in flight, or a late re-render would reset them.
    with page.expect_response(lambda r: "/api/admin/feedback?" in r.url and "rating=-1" in r.url):
        page.locator("#pa-fb-go").click()
    page.wait_for_load_state("networkidle")
    item = page.locator("#pa-fb tbody tr").filter(has_text=ASSOC_Q).first
    item.wait_for(timeout=60_000)
    assert "lisi" in item.inner_text() and "👎" in item.inner_text()
    runs = console.reindex_state()["runs"]
    item.locator(".pa-assoc-file").select_option(BASE_DOC)
    item.locator(".pa-assoc-article").fill(ASSOC_ARTICLE)
    item.get_by_role("button", name="关联问题").click()
    page.locator("#pa-fb-msg").get_by_text("已把问题关联到").wait_for(timeout=60_000)
    report = console.wait_ingest(runs)["report"]
    assert report["documents_updated"] == 1 and report["chunks_embedded"] == 0

    answer = _ask_in_chat(cadre, console.base, ASSOC_Q)
    after = _sources(answer)
    assert after and ASSOC_ARTICLE in after[0], after
    page.get_by_role("button", name="关联问题", exact=True).first.click()
    attached = page.locator("#pa-assoc tbody tr").filter(has_text=ASSOC_Q).first
    attached.wait_for()
    assert ADMIN["X-Remote-User"] in attached.inner_text() and ASSOC_ARTICLE in attached.inner_text()
    page.get_by_role("button", name="操作日志").click()
    log = page.locator("#pa-audit tbody")
    log.locator("tr").first.wait_for()
    text = log.inner_text()
    for action in ("upload", "status", "remove", "associate"):
        assert action in text
    assert ADMIN["X-Remote-User"] in text
    admin.shot("admin_audit")


def test_gradio_client_ask_gets_text_and_citations(console: Console) -> None:
    from gradio_client import Client

    client = Client(console.base, verbose=False)
    info = client.view_api(return_format="dict", print_info=False)
    assert isinstance(info, dict) and set(info["named_endpoints"]) == {"/ask"}
    text, citations = client.predict(RANK_Q, [], api_name="/ask")
    assert isinstance(text, str) and "<" not in text and citations
    assert all(c["file"] == BASE_DOC and c["quote"] for c in citations)
