"""``policy-assistant questions draft``: questions per article from an LLM behind real HTTP
(the scripted ``FakeLLMServer``), written in the generated-questions format and placed by ingest."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_llm_server import FakeLLMServer

import policy_cli
from assistant.associated import AssociatedStore
from assistant.config import IngestSettings
from ingest.chunking import chunk_document
from ingest.loaders import load_file
from ingest.views import associated_views

RULES = (
    "---\ntitle: 测试考勤办法\nissuer: 测试单位\n---\n\n"
    "第一条　为了规范考勤，制定本办法。\n\n"
    "第二条　工作人员迟到三次以上的，予以批评教育。\n\n"
    "第三条　工作人员无故旷工的，给予警告处分。\n"
)
PROSE = "---\ntitle: 测试讲话\n---\n\n一、总体要求\n\n要关心关爱基层干部，落实带薪休假制度。\n\n二、工作措施\n\n要为敢于担当的干部撑腰鼓劲。\n"
REPLY = (
    "好的，以下是问题：\n1. 我上班老迟到，单位会怎么处理？\n- 旷工一天会不会挨处分？\n"
    "这一行不是问题。\n3、这个办法是管什么的？\n4. 第四个问题超过了每条的数量吗？"
)


def per_target(body: dict[str, Any]) -> str:
    """REPLY made distinct per article or passage (the drafter drops a repeated question)."""
    prompt = body["messages"][-1]["content"]
    where = prompt.split("【位置】", 1)[1].split("\n", 1)[0][:6]
    return "\n".join(
        f"{line}（{where}）？" if line.endswith("？") else line for line in REPLY.split("\n")
    ).replace("？（", "（")


@pytest.fixture
def llm() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as server:
        yield server


def _config(tmp_path: Path, base_url: str | None) -> tuple[Path, Path]:
    lib = tmp_path / "lib"
    lib.mkdir(parents=True)
    (lib / "考勤办法.md").write_text(RULES, encoding="utf-8")
    (lib / "讲话.md").write_text(PROSE, encoding="utf-8")
    lines = ["[ingest]", f"library_dirs = [{json.dumps(str(lib))}]"]
    lines += [f"generated_questions = {json.dumps(str(tmp_path / 'generated'))}"]
    if base_url:
        lines += ["[llm]", f"base_url = {json.dumps(base_url)}", "timeout_s = 10.0"]
    config = tmp_path / "policy.toml"
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return config, lib


def _placed(lib: Path, file: str, generated: Path) -> tuple[dict[str, list[str]], list[Any]]:
    """Questions per chunk as ingest places them, and those it could not place."""
    doc = load_file(lib / file, IngestSettings(library_dirs=[lib]))
    store = AssociatedStore(generated / "no.sqlite3", None, generated=generated, create=False)
    unplaced = [q for q in store.all() if q.file == file]
    placed: dict[str, list[str]] = {}
    for chunk in chunk_document(doc, IngestSettings(library_dirs=[lib])):
        key = str(chunk.metadata["article"] or chunk.metadata["chunk_index"])
        placed[key] = [q for q, _ in associated_views(chunk, unplaced)]
    return placed, unplaced


def test_draft_writes_questions_per_article_that_ingest_places(
    tmp_path: Path, llm: FakeLLMServer, capsys: pytest.CaptureFixture[str]
) -> None:
    config, lib = _config(tmp_path, llm.base_url)
    llm.script(per_target, per_target, per_target)
    assert policy_cli.main(["--config", str(config), "questions", "draft", str(lib / "考勤办法.md")]) == 0
    out = tmp_path / "generated" / "考勤办法.toml.draft"  # not read by ingest until renamed
    report = json.loads(capsys.readouterr().out)
    assert report["questions"] == 9 and report["failed"] == [] and report["written_to"] == str(out)
    assert _placed(lib, "考勤办法.md", tmp_path / "generated") == (
        {"第一条": [], "第二条": [], "第三条": []},
        [],
    )
    out.rename(out.with_suffix(""))
    placed, unplaced = _placed(lib, "考勤办法.md", tmp_path / "generated")
    assert unplaced == [] and set(placed) == {"第一条", "第二条", "第三条"}
    # The numbered and bulleted lines are kept (numbering stripped), the others dropped, 3 per article.
    assert placed["第二条"] == [
        "我上班老迟到，单位会怎么处理（第二条）？",
        "旷工一天会不会挨处分（第二条）？",
        "这个办法是管什么的（第二条）？",
    ]
    # Each request shows one article's text and no other.
    prompts = llm.prompts()
    assert len(prompts) == 3
    assert "迟到三次以上" in prompts[1] and "旷工" not in prompts[1] and "规范考勤" not in prompts[1]

    # An existing draft is not overwritten without --force.
    out.with_suffix("").rename(out)
    assert policy_cli.main(["--config", str(config), "questions", "draft", str(lib / "考勤办法.md")]) == 2
    assert "--force" in capsys.readouterr().err


def test_a_document_without_articles_gets_questions_placed_by_quote(
    tmp_path: Path, llm: FakeLLMServer
) -> None:
    config, lib = _config(tmp_path, llm.base_url)
    llm.script(*[per_target] * 5)
    out = tmp_path / "generated" / "讲话.toml"
    assert (
        policy_cli.main(
            ["--config", str(config), "questions", "draft", str(lib / "讲话.md"), "--out", str(out)]
        )
        == 0
    )
    placed, unplaced = _placed(lib, "讲话.md", tmp_path / "generated")
    assert unplaced == [] and len(llm.prompts()) == len(placed) >= 2
    assert all(len(questions) == 3 for questions in placed.values())


def test_an_article_without_usable_questions_is_reported_and_the_rest_go_on(
    tmp_path: Path, llm: FakeLLMServer, capsys: pytest.CaptureFixture[str]
) -> None:
    config, lib = _config(tmp_path, llm.base_url)
    llm.script("好的。", per_target, per_target)
    assert policy_cli.main(["--config", str(config), "questions", "draft", str(lib / "考勤办法.md")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["questions"] == 6
    assert report["failed"] == [{"target": "第一条", "reason": "回复中没有可用的问题"}]


def test_an_unreachable_endpoint_fails_each_article_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with FakeLLMServer() as gone:
        url = gone.base_url  # a port that nothing listens on once the server has stopped
    config, lib = _config(tmp_path, url)
    assert policy_cli.main(["--config", str(config), "questions", "draft", str(lib / "考勤办法.md")]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["questions"] == 0 and len(report["failed"]) == 3 and report["written_to"] is None
    assert all(f["reason"].startswith("接口调用失败") for f in report["failed"])
    assert not (tmp_path / "generated").exists()  # nothing written, so a retry is not refused


def test_draft_without_an_llm_or_with_a_missing_file_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, lib = _config(tmp_path, None)
    assert policy_cli.main(["--config", str(config), "questions", "draft", str(lib / "考勤办法.md")]) == 2
    assert "llm.base_url" in capsys.readouterr().err
    config2, lib2 = _config(tmp_path / "b", "http://127.0.0.1:9/v1")
    assert policy_cli.main(["--config", str(config2), "questions", "draft", str(lib2 / "没有这个.md")]) == 2
    assert "没有这个.md" in capsys.readouterr().err
