"""Shared fixtures: real model, real Chroma, the real library, temp folders.

Fixtures (scope):

- ``repo_root`` (session): the checkout root.
- ``library_dir`` (session): the document library, ``$POLICY_TEST_LIBRARY`` or
  ``<repo>/../shared/corpus``. Read-only: copy files into ``tmp_path`` to mutate.
- ``make_settings`` (session): ``make_settings(tmp_dir, **overrides) -> Settings``
  pointing every writable path into ``tmp_dir``; ``overrides`` are keyword
  arguments of the settings sections, e.g. ``chroma={"collection": "x"}``
  (merged into the test defaults). Never reads ``policy.toml``.
- ``embeddings`` (session): the real EmbeddingGemma (``build_embeddings``), loaded once.
- ``ingested_settings`` (session): ``Settings`` whose embedded Chroma store (in a
  session temp dir) holds the whole library, ingested once. Treat as read-only.
- ``ingest_report`` (session): the ``IngestReport`` of that ingest.
- ``settings`` (function): fresh ``Settings`` with an empty embedded store in ``tmp_path``.
- ``chroma_server`` (session): a real ``chroma run`` on a free local port; yields
  ``(host, port)``. Tests using it should be marked ``server``.
- ``store_settings`` (function, parametrised "embedded" / "server"): fresh
  ``Settings`` with an empty store, embedded in ``tmp_path`` or on the shared
  ``chroma_server`` with a collection name unique to the test.

The environment is made hermetic at start-up: ``HF_HUB_OFFLINE=1``,
``ANONYMIZED_TELEMETRY=False`` and no inherited ``POLICY_*`` variables.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from assistant.config import Settings

REPO_ROOT = Path(__file__).resolve().parents[1]
SettingsFactory = Callable[..., Settings]


# Tests that use these fixtures load the real 300M embedding model: they are marked `model`,
# so `pytest -m "not model"` runs the fast part of the suite (hashing embedder, no model).
_MODEL_FIXTURES = frozenset({"embeddings", "ingested_settings", "ingest_report"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _MODEL_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.model)


def pytest_configure(config: pytest.Config) -> None:
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["ANONYMIZED_TELEMETRY"] = "False"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    for key in [k for k in os.environ if k.startswith("POLICY_") and k != "POLICY_TEST_LIBRARY"]:
        del os.environ[key]
    logging.getLogger("chromadb").setLevel(logging.WARNING)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def library_dir() -> Path:
    env = os.environ.get("POLICY_TEST_LIBRARY")
    path = Path(env) if env else REPO_ROOT.parent / "shared" / "corpus"
    if not path.is_dir():
        pytest.fail(f"document library not found: {path} (set POLICY_TEST_LIBRARY)")
    return path


def _merge(section: Any, values: dict[str, Any]) -> Any:
    return section.model_copy(update=values)


@pytest.fixture(scope="session")
def make_settings(library_dir: Path) -> SettingsFactory:
    def factory(tmp_dir: Path, **overrides: dict[str, Any]) -> Settings:
        base = Settings()
        sections: dict[str, Any] = {
            "embedding": base.embedding,
            "chroma": _merge(base.chroma, {"persist_dir": tmp_dir / "chroma"}),
            "ingest": _merge(
                base.ingest,
                {
                    "library_dirs": [library_dir],
                    "removed_dir": tmp_dir / "removed",
                    "associated_questions": tmp_dir / "associated_questions.toml",
                    "generated_questions": tmp_dir / "generated_questions",
                },
            ),
            "retrieval": _merge(
                base.retrieval,
                {
                    "dictionary": REPO_ROOT / "corpus" / "userdict.txt",
                    "catalogue": REPO_ROOT / "corpus" / "catalogue.toml",
                },
            ),
            "library": base.library,
            "answer": base.answer,
            "llm": base.llm,
            "server": _merge(
                base.server,
                {"feedback_db": tmp_dir / "feedback.sqlite3", "admin_db": tmp_dir / "admin.sqlite3"},
            ),
        }
        for name, values in overrides.items():
            sections[name] = _merge(sections[name], dict(values))
        return Settings(**sections)

    return factory


@pytest.fixture(scope="session")
def embeddings(tmp_path_factory: pytest.TempPathFactory, make_settings: SettingsFactory) -> Any:
    from assistant.embeddings import build_embeddings

    return build_embeddings(make_settings(tmp_path_factory.mktemp("model")))


@pytest.fixture(scope="session")
def _ingested(
    tmp_path_factory: pytest.TempPathFactory, make_settings: SettingsFactory, embeddings: Any
) -> tuple[Settings, Any]:
    from ingest.indexer import run_ingest

    settings = make_settings(tmp_path_factory.mktemp("ingested"))
    report = run_ingest(settings, embeddings, progress=False)
    return settings, report


@pytest.fixture(scope="session")
def hashing_embeddings() -> Any:
    """The deterministic hashing embedder (``tests/hashing_embeddings.py``): vectors, no meaning."""
    from hashing_embeddings import HashingEmbeddings

    return HashingEmbeddings(dim=256)


@pytest.fixture
def hashing() -> Any:
    """A small hashing embedder (64 dimensions) for tests that ingest a few files per test."""
    from hashing_embeddings import HashingEmbeddings

    return HashingEmbeddings(dim=64)


@pytest.fixture
def tokenizer(repo_root: Path) -> Any:
    from assistant.tokenizer import DomainTokenizer

    return DomainTokenizer(repo_root / "corpus" / "userdict.txt")


@pytest.fixture
def ingest_copies(
    tmp_path: Path, library_dir: Path, make_settings: SettingsFactory, hashing: Any
) -> Callable[[Sequence[str]], tuple[Path, Settings]]:
    """Copy some library files into a temp folder and ingest them with ``hashing``:
    ``(folder, settings)``."""
    from ingest.indexer import run_ingest

    def ingest(files: Sequence[str]) -> tuple[Path, Settings]:
        folder = tmp_path / "library"
        folder.mkdir()
        for name in files:
            shutil.copyfile(library_dir / name, folder / name)
        settings = make_settings(tmp_path, ingest={"library_dirs": [folder]})
        run_ingest(settings, hashing, progress=False)
        return folder, settings

    return ingest


@pytest.fixture(scope="session")
def hashed_settings(
    tmp_path_factory: pytest.TempPathFactory, make_settings: SettingsFactory, hashing_embeddings: Any
) -> Settings:
    """The whole library ingested with the hashing embedder, in seconds. Its cosines mean nothing,
    so the dense decline threshold (calibrated for EmbeddingGemma) is off. Treat as read-only."""
    from ingest.indexer import run_ingest

    settings = make_settings(tmp_path_factory.mktemp("hashed"), retrieval={"decline_threshold": -1.0})
    report = run_ingest(settings, hashing_embeddings, progress=False)
    assert report.errors == [] and report.documents_added > 0
    return settings


@pytest.fixture(scope="session")
def ingested_settings(_ingested: tuple[Settings, Any]) -> Settings:
    return _ingested[0]


@pytest.fixture(scope="session")
def ingest_report(_ingested: tuple[Settings, Any]) -> Any:
    return _ingested[1]


@pytest.fixture
def settings(tmp_path: Path, make_settings: SettingsFactory) -> Settings:
    return make_settings(tmp_path)


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (for the servers tests start)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stored_files(root: Path) -> set[str]:
    """Every file under ``root`` that holds what an admin stored, relative to ``root``: not the
    Chroma store, the saved library index (a copy of the store that the server rewrites in the
    background after each refresh; on a slow machine a save started by one test can land during
    the next) or the SQLite databases and their journals."""
    return {
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file()
        and "chroma" not in p.parts
        and "library_index" not in p.parts
        and not p.name.endswith((".sqlite3", "-journal"))
    }


def start_chroma(data: Path) -> subprocess.Popen[bytes]:
    """A real ``chroma run`` on a free local port, storing in ``data``; returns once its heartbeat
    answers. The port is in ``proc.args``; ``stop_process`` ends it."""
    exe = Path(sys.executable).with_name("chroma")
    command = str(exe) if exe.exists() else shutil.which("chroma")
    if command is None:
        pytest.fail("the `chroma` command is not installed")
    port = free_port()
    log = (data / "server.log").open("wb")
    proc = subprocess.Popen(
        [command, "run", "--path", str(data / "db"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
    )
    log.close()
    url = f"http://127.0.0.1:{port}/api/v2/heartbeat"
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            pytest.fail(
                f"chroma run exited early: {(data / 'server.log').read_text(errors='replace')[-2000:]}"
            )
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return proc
        except OSError:
            pass
        if time.monotonic() > deadline:
            stop_process(proc)
            pytest.fail("chroma run did not answer its heartbeat within 60 s")
        time.sleep(0.2)


def chroma_port(proc: subprocess.Popen[bytes]) -> int:
    args = list(proc.args)  # type: ignore[arg-type]
    return int(args[args.index("--port") + 1])


def stop_process(proc: subprocess.Popen[Any]) -> None:
    """Terminate a server process the tests started (kill it if it does not stop in 15 s)."""
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    proc = start_chroma(tmp_path_factory.mktemp("chroma-server"))
    try:
        yield "127.0.0.1", chroma_port(proc)
    finally:
        stop_process(proc)


@pytest.fixture(params=["embedded", pytest.param("server", marks=pytest.mark.server)])
def store_settings(
    request: pytest.FixtureRequest, tmp_path: Path, make_settings: SettingsFactory
) -> Settings:
    collection = f"t-{uuid.uuid4().hex[:12]}"
    if request.param == "server":
        host, port = request.getfixturevalue("chroma_server")
        return make_settings(tmp_path, chroma={"host": host, "port": port, "collection": collection})
    return make_settings(tmp_path, chroma={"collection": collection})
