"""A running `policy-assistant serve` follows the library without a restart.

Real processes, the real model, real Chroma: the embedded store (re-ingested inside the
server through the admin API, since an embedded store admits one process) and a real
`chroma run` (re-ingested by a separate `policy-assistant ingest`, as an admin would).
After an added document is ingested, the next question cites it and /api/library (what
the 资料库 tab shows) lists it; after it is removed and the library re-ingested, it is
never cited again and is no longer listed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import free_port, stop_process

BASE_DOC = "中国共产党组织处理规定_试行.md"
ADDED_DOC = "中国共产党问责条例_2016旧版.md"
QUESTION = "问责条例第七条规定了哪些问责方式？"
TOKEN = "test-admin-token"
REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.model  # every server process here loads the real model


def _command(name: str) -> str:
    exe = Path(sys.executable).with_name(name)
    return str(exe) if exe.exists() else name


def _http(url: str, body: dict[str, Any] | None = None, token: str = "") -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(
        url, data=data, headers=headers, method="POST" if body is not None else "GET"
    )
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def _write_config(tmp: Path, library: Path, port: int, chroma: dict[str, Any]) -> Path:
    lines = [
        "[chroma]",
        *(f"{k} = {json.dumps(v)}" for k, v in chroma.items()),
        "[ingest]",
        f"library_dirs = [{json.dumps(str(library))}]",
        f"generated_questions = {json.dumps(str(tmp / 'generated_questions'))}",
        "[server]",
        f"port = {port}",
        f"admin_token = {json.dumps(TOKEN)}",
        f"feedback_db = {json.dumps(str(tmp / 'feedback.sqlite3'))}",
        f'allowed_origins = ["http://127.0.0.1:{port}"]',
    ]
    path = tmp / "policy.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _env(config: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POLICY_")}
    env.update(POLICY_CONFIG=str(config), HF_HUB_OFFLINE="1", ANONYMIZED_TELEMETRY="False")
    return env


def _ingest(config: Path) -> None:
    done = subprocess.run(
        [_command("policy-assistant"), "ingest", "--no-progress"],
        env=_env(config),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]


class Server:
    def __init__(self, config: Path, port: int, log: Path) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.log = log
        self._out = log.open("wb")
        self.proc = subprocess.Popen(
            [_command("policy-assistant"), "serve"],
            env=_env(config),
            stdout=self._out,
            stderr=subprocess.STDOUT,
            cwd="/",  # data files resolve from the package and the config, not the working directory
        )
        deadline = time.monotonic() + 240
        while True:
            if self.proc.poll() is not None:
                pytest.fail(f"serve exited: {log.read_text(errors='replace')[-3000:]}")
            try:
                if _http(self.base + "/healthz")[0] == 200:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"serve did not start: {log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.5)

    def ask(self, question: str) -> dict[str, Any]:
        status, body = _http(self.base + "/api/ask", {"question": question, "history": []})
        assert status == 200, body
        return dict(body)

    def files(self) -> set[str]:
        status, body = _http(self.base + "/api/library")
        assert status == 200, body
        return {d["file"] for d in body["documents_detail"]}

    def reindex(self) -> dict[str, Any]:
        status, body = _http(self.base + "/api/admin/reindex", {}, token=TOKEN)
        assert status == 202, body
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            status, body = _http(self.base + "/api/admin/reindex", token=TOKEN)
            assert status == 200, body
            if body["state"] in ("done", "failed"):
                assert body["state"] == "done", body
                return dict(body)
            time.sleep(0.5)
        pytest.fail("reindex did not finish within 300 s")

    def stop(self) -> None:
        stop_process(self.proc)
        self._out.close()


def _cited_files(answer: dict[str, Any]) -> set[str]:
    return {c["file"] for c in answer["citations"]}


def _library(folder: Path, library_dir: Path) -> Path:
    lib = folder / "lib"
    lib.mkdir()
    shutil.copy(library_dir / BASE_DOC, lib)
    return lib


@pytest.fixture
def library(tmp_path: Path, library_dir: Path) -> Path:
    return _library(tmp_path, library_dir)


@pytest.fixture(scope="module")
def embedded(
    tmp_path_factory: pytest.TempPathFactory, library_dir: Path
) -> Iterator[tuple[Server, Path, Path]]:
    """One embedded-store server for the module: (server, its library folder, its config).
    Tests leave the library as they found it."""
    tmp = tmp_path_factory.mktemp("embedded")
    lib = _library(tmp, library_dir)
    port = free_port()
    config = _write_config(tmp, lib, port, {"persist_dir": str(tmp / "chroma")})
    _ingest(config)
    server = Server(config, port, tmp / "serve.log")
    yield server, lib, config
    server.stop()


def _library_tab_text(base: str) -> str:
    """The 资料库 tab of the chat page as a cadre sees it, in real Chromium."""
    from playwright.sync_api import sync_playwright
    from test_browser import CHROMIUM, CHROMIUM_ARGS

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(base + "/", timeout=120_000)
            page.get_by_role("tab", name="资料库").click(timeout=120_000)
            table = page.locator("#pa-library table")
            table.wait_for(timeout=120_000)
            return str(table.inner_text())
        finally:
            browser.close()


def _check_follows(server: Server, library: Path, library_dir: Path, reindex: Any, tab: Any = None) -> None:
    assert server.files() == {BASE_DOC}
    assert ADDED_DOC not in _cited_files(server.ask(QUESTION))

    shutil.copy(library_dir / ADDED_DOC, library)
    reindex()
    assert server.files() == {BASE_DOC, ADDED_DOC}
    if tab is not None:
        assert "问责条例" in tab(server.base)
    answer = server.ask(QUESTION)
    assert not answer["declined"], answer["text"]
    assert ("第七条", ADDED_DOC) in {(c["article"], c["file"]) for c in answer["citations"]}

    (library / ADDED_DOC).unlink()
    reindex()
    assert server.files() == {BASE_DOC}
    if tab is not None:
        text = tab(server.base)
        assert "问责条例" not in text and "组织处理规定" in text
    for question in (QUESTION, "问责的方式有哪些？", "问责条例规定了哪些情形应当问责？"):
        assert ADDED_DOC not in _cited_files(server.ask(question)), question


@pytest.mark.browser
def test_embedded_server_follows_reindex(embedded: tuple[Server, Path, Path], library_dir: Path) -> None:
    server, lib, _ = embedded
    report = {}

    def reindex() -> None:
        report.update(server.reindex()["report"])

    _check_follows(server, lib, library_dir, reindex, tab=_library_tab_text)
    assert report["documents_pruned"] == 1


def test_admin_api_refuses_without_token(embedded: tuple[Server, Path, Path]) -> None:
    server = embedded[0]
    status, body = _http(server.base + "/api/admin/reindex", {})
    assert status == 403 and "管理" in body["detail"]
    status, _ = _http(server.base + "/api/admin/reindex", {}, token="wrong")
    assert status == 403


def test_second_process_on_embedded_store_is_refused(embedded: tuple[Server, Path, Path]) -> None:
    done = subprocess.run(
        [_command("policy-assistant"), "ingest", "--no-progress"],
        env=_env(embedded[2]),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2
    assert "正被另一个进程" in done.stderr and "/api/admin/reindex" in done.stderr


@pytest.mark.server
def test_server_mode_follows_cli_ingest(
    tmp_path: Path, library: Path, library_dir: Path, chroma_server: tuple[str, int]
) -> None:
    host, chroma_port = chroma_server
    port = free_port()
    config = _write_config(
        tmp_path, library, port, {"host": host, "port": chroma_port, "collection": f"live-{port}"}
    )
    _ingest(config)
    server = Server(config, port, tmp_path / "serve.log")
    try:
        _check_follows(server, library, library_dir, lambda: _ingest(config))
    finally:
        server.stop()
