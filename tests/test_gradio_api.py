"""Gradio API hygiene: ``gradio_client`` sees one documented endpoint, /ask, returning plain text
and a citations list; the chat page's own handlers (which return rendered HTML) are not an API.

A real uvicorn server on a free port with the real assistant over a store ingested with the
hashing embedder; the real ``gradio_client``.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import free_port

QUESTION = "组织处理的方式有哪些？"
DOC = "中国共产党组织处理规定_试行.md"


@pytest.fixture(scope="module")
def url(
    tmp_path_factory: pytest.TempPathFactory, make_settings: Any, hashing_embeddings: Any, library_dir: Path
) -> Iterator[str]:
    from test_browser import _Uvicorn

    from assistant.service import build_assistant
    from ingest.indexer import run_ingest
    from ui.app import create_app

    tmp = tmp_path_factory.mktemp("gradio-api")
    lib = tmp / "lib"
    lib.mkdir()
    shutil.copy(library_dir / DOC, lib)
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    settings = make_settings(
        tmp,
        ingest={"library_dirs": [lib]},
        retrieval={"decline_threshold": -1.0},
        server={"port": port, "allowed_origins": [origin], "public_origins": [origin]},
    )
    run_ingest(settings, hashing_embeddings, progress=False)
    app = create_app(settings, build_assistant(settings, embeddings=hashing_embeddings))
    with _Uvicorn(app, port) as server:
        yield server.url


def test_view_api_lists_only_ask(url: str) -> None:
    from gradio_client import Client

    info = Client(url, verbose=False).view_api(return_format="dict", print_info=False)
    assert isinstance(info, dict)
    assert set(info["named_endpoints"]) == {"/ask"}
    assert not info["unnamed_endpoints"]
    params = [p["parameter_name"] for p in info["named_endpoints"]["/ask"]["parameters"]]
    assert params == ["question", "history"]


def test_ask_returns_plain_text_and_citations(url: str) -> None:
    from gradio_client import Client

    client = Client(url, verbose=False)
    text, citations = client.predict(QUESTION, [], api_name="/ask")
    assert isinstance(text, str) and text and "<" not in text
    assert citations and {"file", "title", "article", "quote", "chunk_id"} <= set(citations[0])
    assert all(c["file"] == DOC and c["quote"] in text for c in citations)
    follow, _ = client.predict("第一种是什么？", [[QUESTION, text]], api_name="/ask")
    assert isinstance(follow, str) and follow


def test_ask_refuses_with_a_chinese_reason(url: str) -> None:
    from gradio_client import Client

    with pytest.raises(Exception, match="请输入问题"):
        Client(url, verbose=False).predict("", [], api_name="/ask")
