"""The admin console over HTTP, in process: real Chroma, real ingest, the hashing embedder.

Who gets in (admin_users from the trusted header, the token as Bearer or login cookie) and
403 for everyone else on every admin route; uploads with their checks; status changes and
removal followed by the background ingest; feedback review, CSV; associated questions; the
audit log. The real model, Chromium and the chat are in ``test_admin_browser.py``.
"""

from __future__ import annotations

import csv
import io
import shutil
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import stored_files
from fastapi.testclient import TestClient

from assistant.config import Settings
from assistant.text import article_number

TOKEN = "admin-test-token"
ADMIN = {"X-Remote-User": "alice"}
OTHER = {"X-Remote-User": "bob"}
BEARER = {"Authorization": f"Bearer {TOKEN}"}
BASE_DOC = "中国共产党组织处理规定_试行.md"
PEER = "127.0.0.1"  # the tests play the trusted reverse proxy


def docx_bytes(paragraphs: list[str], title: str = "") -> bytes:
    import docx

    document = docx.Document()
    if title:
        document.core_properties.title = title
    for text in paragraphs:
        document.add_paragraph(text)
    buf = io.BytesIO()
    document.save(buf)
    return buf.getvalue()


RULE = [
    "第一条　为了规范测试单位无人机飞行管理，制定本办法。",
    "第二条　无人机飞行须提前三个工作日报测试单位安全保卫处审批。",
    "第三条　本办法自发布之日起施行。",
]


class Env:
    def __init__(self, client: TestClient, settings: Settings, lib: Path, tmp: Path) -> None:
        self.client = client
        self.settings = settings
        self.lib = lib
        self.tmp = tmp

    def wait_ingest(self) -> dict[str, Any]:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            status = self.client.get("/api/admin/reindex", headers=ADMIN).json()
            if status["state"] in ("done", "failed") and not status["queued"]:
                assert status["state"] == "done", status
                return dict(status)
            time.sleep(0.1)
        pytest.fail("ingest did not finish")

    def library_files(self) -> dict[str, dict[str, Any]]:
        return {d["file"]: d for d in self.client.get("/api/library").json()["documents_detail"]}

    def stored(self) -> set[str]:
        return stored_files(self.tmp)


@pytest.fixture(scope="module")
def env(
    tmp_path_factory: pytest.TempPathFactory, make_settings: Any, hashing_embeddings: Any, library_dir: Path
) -> Iterator[Env]:
    from assistant.service import build_assistant
    from ingest.indexer import run_ingest
    from ingest.library_admin import AdminLibrary
    from ui.app import create_app

    tmp = tmp_path_factory.mktemp("admin")
    lib = tmp / "lib"
    lib.mkdir()
    shutil.copy(library_dir / BASE_DOC, lib)
    settings = make_settings(
        tmp,
        ingest={"library_dirs": [lib]},
        retrieval={"decline_threshold": -1.0},
        server={
            "admin_token": TOKEN,
            "admin_users": ["alice"],
            "trusted_proxies": [PEER],
            "public_origins": ["http://testserver"],
            "rate_limit_per_minute": 1000,
        },
    )
    run_ingest(settings, hashing_embeddings, progress=False)
    assistant = build_assistant(settings, embeddings=hashing_embeddings)
    library = AdminLibrary(settings, hashing_embeddings)
    app = create_app(settings, assistant, library.reindex, library)
    with TestClient(app, client=(PEER, 50000)) as client:
        yield Env(client, settings, lib, tmp)


def admin_routes(client: TestClient) -> list[tuple[str, str]]:
    """Every admin API (from the OpenAPI schema) and the page."""
    schema = client.app.openapi()  # type: ignore[attr-defined]
    out = [("GET", "/admin")]
    for path, methods in schema["paths"].items():
        if path.startswith("/api/admin"):
            path = path.replace("{row_id}", "1").replace("{qid}", "1")
            out += [(m.upper(), path) for m in methods]
    return out


def test_everyone_but_an_admin_gets_403(env: Env) -> None:
    routes = admin_routes(env.client)
    paths = {p for _, p in routes}
    assert {"/admin", "/api/admin/documents", "/api/admin/retrieval-test", "/api/admin/feedback"} <= paths
    assert {"/api/admin/audit", "/api/admin/reindex", "/api/admin/feedback/1/associate"} <= paths
    before = env.stored()
    for headers in ({}, OTHER, {"Authorization": "Bearer wrong"}, {"Cookie": "pa_admin=forged"}):
        for method, path in routes:
            r = env.client.request(method, path, headers=headers, json={"file": BASE_DOC, "question": "x"})
            assert r.status_code == 403, (method, path, headers, r.status_code)
            if path == "/admin":
                assert "没有管理权限" in r.text and 'name="token"' in r.text
            else:
                assert "管理" in r.json()["detail"]
        # A direct multipart POST with a valid file: refused before anything is read or stored.
        files = {"file": ("x.md", "# 标题\n\n第一条　内容。".encode(), "text/markdown")}
        assert env.client.post("/api/admin/documents", headers=headers, files=files).status_code == 403
    assert env.stored() == before
    # The identity header only counts from a trusted proxy.
    with TestClient(env.client.app, client=("10.9.9.9", 1)) as outsider:
        assert outsider.get("/admin", headers=ADMIN).status_code == 403
        assert outsider.get("/api/admin/documents", headers=ADMIN).status_code == 403


def test_admins_by_user_header_token_and_login_cookie(env: Env) -> None:
    assert env.client.get("/admin", headers=ADMIN).status_code == 200
    assert "alice" in env.client.get("/admin", headers=ADMIN).text
    assert env.client.get("/api/admin/documents", headers=BEARER).status_code == 200
    with TestClient(env.client.app, client=(PEER, 50001)) as browser:
        r = browser.post("/admin/login", data={"token": "nope"}, follow_redirects=False)
        assert r.status_code == 403 and "管理令牌不正确" in r.text
        r = browser.post("/admin/login", data={"token": TOKEN}, follow_redirects=False)
        assert r.status_code == 303 and TOKEN not in r.headers["set-cookie"]
        assert browser.get("/admin").status_code == 200
        assert browser.get("/api/admin/audit").status_code == 200
        browser.post("/admin/logout", follow_redirects=False)
        assert browser.get("/admin").status_code == 403
    page = env.client.get("/admin", headers=ADMIN)
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    # The chat and the embed page stay open to everyone.
    assert env.client.get("/embed").status_code == 200


def test_upload_status_remove_follow_in_the_served_library(env: Env) -> None:
    data = docx_bytes(RULE)
    form = {"title": "测试单位无人机管理办法", "issuer": "测试单位", "date": "2025-03-01", "status": "现行"}
    files = {"file": ("无人机管理办法.docx", data, "application/octet-stream")}
    r = env.client.post("/api/admin/documents", headers=ADMIN, data=form, files=files)
    assert r.status_code == 202, r.text
    assert r.json()["file"] == "无人机管理办法.docx"
    report = env.wait_ingest()["report"]
    assert report["documents_added"] == 1 and report["errors"] == []
    served = env.library_files()["无人机管理办法.docx"]
    assert served["title"] == "测试单位无人机管理办法" and served["issuer"] == "测试单位"
    assert served["status"] == "现行" and served["articles"] == 3
    listed = {d["file"]: d for d in env.client.get("/api/admin/documents", headers=ADMIN).json()["documents"]}
    assert listed["无人机管理办法.docx"]["served"] and listed["无人机管理办法.docx"]["chunks"] >= 1
    assert listed["无人机管理办法.docx"]["indexed_at"] >= listed[BASE_DOC]["indexed_at"] > "2020"

    # The same name again is refused (replace is the way), nothing changes.
    r = env.client.post("/api/admin/documents", headers=ADMIN, data=form, files=files)
    assert r.status_code == 422 and "替换" in r.json()["detail"]

    r = env.client.post(
        "/api/admin/documents/status", headers=ADMIN, json={"file": "无人机管理办法.docx", "status": "已废止"}
    )
    assert r.status_code == 202, r.text
    assert env.wait_ingest()["report"]["chunks_embedded"] == 0  # same texts: vectors reused
    assert env.library_files()["无人机管理办法.docx"]["status"] == "已废止"

    # Markdown: the status goes into the front matter.
    r = env.client.post(
        "/api/admin/documents/status", headers=ADMIN, json={"file": BASE_DOC, "status": "已修正"}
    )
    assert r.status_code == 202
    env.wait_ingest()
    assert "status: 已修正" in (env.lib / BASE_DOC).read_text(encoding="utf-8")
    assert env.library_files()[BASE_DOC]["status"] == "已修正"
    env.client.post("/api/admin/documents/status", headers=ADMIN, json={"file": BASE_DOC, "status": "现行"})
    env.wait_ingest()

    # Replace with a new version: the old one is moved aside, the metadata carried over.
    new = docx_bytes(
        [*RULE[:2], "第三条　无人机飞行结束后须报告飞行情况。", "第四条　本办法自发布之日起施行。"]
    )
    files = {"file": ("新版.docx", new, "application/octet-stream")}
    r = env.client.post(
        "/api/admin/documents", headers=ADMIN, data={"replace": "无人机管理办法.docx"}, files=files
    )
    assert r.status_code == 202, r.text
    env.wait_ingest()
    served = env.library_files()["无人机管理办法.docx"]
    assert served["articles"] == 4 and served["title"] == "测试单位无人机管理办法"

    r = env.client.post("/api/admin/documents/remove", headers=ADMIN, json={"file": "无人机管理办法.docx"})
    assert r.status_code == 202
    env.wait_ingest()
    assert "无人机管理办法.docx" not in env.library_files()
    assert not (env.lib / "无人机管理办法.docx").exists()
    kept = sorted(p.name for p in env.settings.ingest.removed_dir.iterdir())
    assert (
        sum(name.endswith("-无人机管理办法.docx") for name in kept) == 2
    )  # the old version and the removed one
    r = env.client.post("/api/admin/documents/remove", headers=ADMIN, json={"file": "无人机管理办法.docx"})
    assert r.status_code == 422 and "没有文件" in r.json()["detail"]

    actions = [row["action"] for row in env.client.get("/api/admin/audit", headers=ADMIN).json()["rows"]]
    assert {"upload", "status", "replace", "remove", "upload-refused"} <= set(actions)
    who = {row["user"] for row in env.client.get("/api/admin/audit", headers=ADMIN).json()["rows"]}
    assert "alice" in who


def _zip_without_word() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("readme.txt", "not a word document")
    return buf.getvalue()


@pytest.mark.parametrize(
    ("name", "data", "expected"),
    [
        ("../../x.md", "第一条　内容。".encode(), "路径"),
        ("..\\x.md", "第一条　内容。".encode(), "路径"),
        (".hidden.md", "第一条　内容。".encode(), "隐藏"),
        ("规定.pdf", b"MZ\x90\x00\x03" + b"\x00" * 200, "不是 PDF"),
        ("规定.docx", b"MZ\x90\x00" + b"\x00" * 200, "不是 Word"),
        ("规定.docx", _zip_without_word(), "word/document.xml"),
        ("规定.exe", b"MZ\x90\x00", "不支持的文件类型"),
        ("规定.txt", "第一条　内容。".encode("gbk"), "UTF-8"),
        ("规定.md", b"", "空"),
        ("x.docx.meta.json", b"{}", ".meta.json"),
    ],
)
def test_hostile_uploads_are_refused_and_nothing_is_stored(
    env: Env, name: str, data: bytes, expected: str
) -> None:
    before = env.stored()
    r = env.client.post(
        "/api/admin/documents", headers=ADMIN, files={"file": (name, data, "application/octet-stream")}
    )
    assert r.status_code == 422, r.text
    assert expected in r.json()["detail"]
    assert env.stored() == before
    assert env.client.get("/healthz").status_code == 200


def test_the_list_shows_ingest_problems_per_file(env: Env) -> None:
    # A broken file copied into the folder by hand (not uploaded): the list says why it is not served.
    (env.lib / "坏文件.docx").write_bytes(b"PK\x03\x04 not really a zip")
    runs = env.client.get("/api/admin/reindex", headers=ADMIN).json()["runs"]
    assert env.client.post("/api/admin/reindex", headers=ADMIN).status_code == 202
    assert env.wait_ingest()["runs"] == runs + 1
    rows = {d["file"]: d for d in env.client.get("/api/admin/documents", headers=ADMIN).json()["documents"]}
    assert not rows["坏文件.docx"]["served"] and "无法打开 Word 文档" in rows["坏文件.docx"]["problem"]
    assert rows[BASE_DOC]["served"] and rows[BASE_DOC]["problem"] == ""
    assert (
        env.client.post(
            "/api/admin/documents/remove", headers=ADMIN, json={"file": "坏文件.docx"}
        ).status_code
        == 202
    )
    env.wait_ingest()
    assert not (env.lib / "坏文件.docx").exists()


def test_malformed_upload_requests_get_a_chinese_reason(env: Env) -> None:
    before = env.stored()
    url = "/api/admin/documents"
    bad = {"Content-Type": "multipart/form-data; boundary=zz", **ADMIN}
    r = env.client.post(
        url, headers=bad, content=b"--zz\r\nContent-Disposition: form-data\r\n\r\nx\r\n--zz--"
    )
    assert r.status_code == 400 and "上传内容格式错误" in r.json()["detail"]
    two = [("file", ("a.md", b"x", "text/plain")), ("file", ("b.md", b"y", "text/plain"))]
    r = env.client.post(url, headers=ADMIN, files=two)
    assert r.status_code == 400 and "一次一个文件" in r.json()["detail"]
    r = env.client.post(url, headers=ADMIN, json={"file": "x"})
    assert r.status_code == 422 and "请选择要上传的文件" in r.json()["detail"]
    assert env.stored() == before


def test_an_oversized_upload_is_refused_before_it_is_read(env: Env) -> None:
    before = env.stored()
    big = b"%PDF-1.4\n" + b"0" * (50 * 1024 * 1024)
    r = env.client.post(
        "/api/admin/documents", headers=ADMIN, files={"file": ("大文件.pdf", big, "application/pdf")}
    )
    assert r.status_code == 413 and "文件太大" in r.json()["detail"]
    assert env.stored() == before
    assert env.client.get("/healthz").status_code == 200


def test_feedback_review_filter_mark_and_csv(env: Env) -> None:
    cites = [
        {
            "file": BASE_DOC,
            "title": "组织处理规定",
            "article": "第七条",
            "quote": "q",
            "chunk_id": "c",
            "start": 0,
            "end": 1,
        }
    ]
    down = env.client.post(
        "/api/feedback",
        headers=OTHER,
        json={
            "question": "=1+1 组织处理有哪些方式？",
            "answer": "答",
            "citations": cites,
            "rating": -1,
            "comment": "不对",
        },
    ).json()["id"]
    up = env.client.post("/api/feedback", json={"question": "好问题", "answer": "好", "rating": 1}).json()[
        "id"
    ]
    rows = env.client.get("/api/admin/feedback?rating=-1", headers=ADMIN).json()["rows"]
    assert down in {r["id"] for r in rows} and up not in {r["id"] for r in rows}
    row = next(r for r in rows if r["id"] == down)
    assert row["user"] == "bob" and row["citations"][0]["article"] == "第七条" and row["reviewed_at"] == ""
    today = row["time"][:10]
    assert {
        r["id"]
        for r in env.client.get(f"/api/admin/feedback?since={today}&until={today}", headers=ADMIN).json()[
            "rows"
        ]
    } >= {down, up}
    assert env.client.get("/api/admin/feedback?since=2999-01-01", headers=ADMIN).json()["rows"] == []
    assert env.client.get("/api/admin/feedback?since=昨天", headers=ADMIN).status_code == 422

    assert env.client.post(f"/api/admin/feedback/{down}/reviewed", headers=ADMIN).status_code == 200
    assert env.client.post("/api/admin/feedback/999999/reviewed", headers=ADMIN).status_code == 404
    unreviewed = {
        r["id"] for r in env.client.get("/api/admin/feedback?reviewed=0", headers=ADMIN).json()["rows"]
    }
    assert down not in unreviewed and up in unreviewed

    r = env.client.get("/api/admin/feedback.csv?rating=-1", headers=ADMIN)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(r.text.lstrip("\ufeff"))))
    exported = next(t for t in table if t["id"] == str(down))
    assert exported["question"].startswith("'=")  # never a spreadsheet formula
    assert exported["reviewed_by"] == "alice" and "第七条" in exported["citations"]


def test_associated_question_becomes_a_view_of_its_article(env: Env) -> None:
    question = "周末参加单位义务植树活动可以补休吗"
    before = env.client.post("/api/admin/retrieval-test", headers=ADMIN, json={"question": question}).json()
    assert before["hits"], before
    target = next(h for h in reversed(before["hits"]) if h["article"])  # not the top hit
    assert (before["hits"][0]["file"], before["hits"][0]["article"]) != (target["file"], target["article"])
    fid = env.client.post("/api/feedback", json={"question": question, "answer": "答", "rating": -1}).json()[
        "id"
    ]

    r = env.client.post(
        f"/api/admin/feedback/{fid}/associate",
        headers=ADMIN,
        json={"file": BASE_DOC, "article": "第九十九条"},
    )
    assert r.status_code == 422 and "没有这个文件或条文" in r.json()["detail"]
    r = env.client.post(
        f"/api/admin/feedback/{fid}/associate",
        headers=ADMIN,
        json={"file": target["file"], "article": f"第{article_number(target['article'])}条"},  # 第12条 too
    )
    assert r.status_code == 202, r.text
    assert r.json()["article"] == target["article"]
    report = env.wait_ingest()["report"]
    # Only the question is embedded: the article's own vectors are reused.
    assert (report["documents_updated"], report["chunks_embedded"], report["views_embedded"]) == (1, 0, 1)
    after = env.client.post("/api/admin/retrieval-test", headers=ADMIN, json={"question": question}).json()
    assert (after["hits"][0]["file"], after["hits"][0]["article"]) == (target["file"], target["article"])
    assert after["hits"][0]["view_score"] > after["hits"][0]["dense_score"]

    listed = env.client.get("/api/admin/associated", headers=ADMIN).json()["rows"]
    mine = next(q for q in listed if q["question"] == question)
    assert mine["user"] == "alice" and mine["time"] and mine["feedback_id"] == fid
    assert env.client.post(f"/api/admin/associated/{mine['id']}/remove", headers=ADMIN).status_code == 202
    env.wait_ingest()
    again = env.client.post("/api/admin/retrieval-test", headers=ADMIN, json={"question": question}).json()
    assert [(h["file"], h["article"]) for h in again["hits"]] == [
        (h["file"], h["article"]) for h in before["hits"]
    ]
    actions = [row["action"] for row in env.client.get("/api/admin/audit", headers=ADMIN).json()["rows"]]
    assert "associate" in actions and "unassociate" in actions


def test_retrieval_test_shows_scores_and_decision(env: Env) -> None:
    r = env.client.post(
        "/api/admin/retrieval-test", headers=ADMIN, json={"question": "组织处理的方式有哪些？"}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["decision"] in ("answer", "related-only", "decline") and body["reason_label"]
    scored = [h for h in body["hits"] if h["match"] != "cited"]
    assert scored and all(h["score"] is not None and h["dense_score"] is not None for h in scored)
    assert [h["score"] for h in scored] == sorted((h["score"] for h in scored), reverse=True)
    assert (
        env.client.post("/api/admin/retrieval-test", headers=ADMIN, json={"question": ""}).status_code == 422
    )


def test_a_change_during_an_ingest_queues_exactly_one_more_run() -> None:
    import threading

    from ui.admin import Reindexer

    release = [threading.Event(), threading.Event()]
    started = [threading.Event(), threading.Event()]
    calls: list[int] = []

    def runner(progress: Any) -> dict[str, Any]:
        n = len(calls)
        calls.append(n)
        started[n].set()
        progress(n + 1, 2)
        assert release[n].wait(60)
        return {"summary": f"run {n}"}

    reindexer = Reindexer(progress_runner=runner)
    reindexer.request()
    assert started[0].wait(60)
    reindexer.request()
    reindexer.request()  # two changes during the run: one more run covers both
    assert reindexer.status.queued and reindexer.status.done == 1
    release[0].set()
    assert started[1].wait(60)
    release[1].set()
    deadline = time.monotonic() + 60
    while reindexer.status.state != "done" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert calls == [0, 1] and reindexer.status.runs == 2 and not reindexer.status.queued
    assert reindexer.status.report == {"summary": "run 1"}
