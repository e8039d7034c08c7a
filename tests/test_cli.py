"""The `policy-assistant` command, run in-process on the session's ingested library."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import policy_cli
from assistant.config import Settings


def _write_config(settings: Settings, path: Path) -> Path:
    """The same settings as a TOML file, the way an admin would write one."""
    q = json.dumps  # a JSON string literal is a valid TOML basic string
    lines = [
        "[chroma]",
        f"persist_dir = {q(str(settings.chroma.persist_dir))}",
        f"collection = {q(settings.chroma.collection)}",
        "[ingest]",
        f"library_dirs = [{', '.join(q(str(p)) for p in settings.ingest.library_dirs)}]",
        f"associated_questions = {q(str(settings.ingest.associated_questions))}",
        f"generated_questions = {q(str(settings.ingest.generated_questions))}",
        "[retrieval]",
        f"dictionary = {q(str(settings.retrieval.dictionary))}",
        f"catalogue = {q(str(settings.retrieval.catalogue))}",
        "[server]",
        f"feedback_db = {q(str(settings.server.feedback_db))}",
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def cli_config(
    ingested_settings: Settings, tmp_path: Path, embeddings: Any, monkeypatch: pytest.MonkeyPatch
) -> Path:
    # Reuse the session's already loaded (real) model instead of loading it again.
    import assistant.embeddings

    monkeypatch.setattr(assistant.embeddings, "build_embeddings", lambda settings: embeddings)
    return _write_config(ingested_settings, tmp_path / "policy.toml")


def test_help_lists_commands_in_chinese(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        policy_cli.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for command in ("ingest", "models", "stats", "ask", "eval", "serve"):
        assert command in out
    assert "政策问答助手" in out


def test_stats_json_shape_and_counts(cli_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert policy_cli.main(["--config", str(cli_config), "stats", "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["documents"] == len(stats["documents_detail"]) == 11
    assert stats["chunks"] == sum(d["chunks"] for d in stats["documents_detail"])
    by_file = {d["file"]: d for d in stats["documents_detail"]}
    assert by_file["中国共产党纪律处分条例_2023.md"]["articles"] == 158
    assert by_file["中国共产党问责条例_2016旧版.md"]["status"] == "已废止"
    for d in stats["documents_detail"]:
        assert set(d) >= {"file", "title", "status", "articles", "chunks"}


def test_second_ingest_embeds_nothing(cli_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert policy_cli.main(["--config", str(cli_config), "ingest", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["chunks_embedded"] == 0
    assert report["documents_unchanged"] == 11
    assert report["errors"] == []


def test_ask_json_cites_the_article(cli_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = policy_cli.main(
        ["--config", str(cli_config), "ask", "公务员在法定工作日之外加班的，应当怎么处理？", "--json"]
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    keys = {
        "answer",
        "declined",
        "reason",
        "outcome",
        "decision",
        "answerability",
        "mode",
        "citations",
        "evidence",
    }
    assert set(out) == keys
    assert out["declined"] is False and out["mode"] == "extractive" and out["reason"] == "answered"
    assert out["decision"] == "answer" and out["outcome"] == "answer"
    assert out["answerability"] is None or 0.0 <= out["answerability"] <= 1.0
    # The ranked evidence with its scores (what the admin console's 命中测试 shows), best first.
    ranked = [e for e in out["evidence"] if e["match"] != "cited"]
    assert [e["rank"] for e in out["evidence"]] == list(range(1, len(out["evidence"]) + 1))
    assert ranked and [e["score"] for e in ranked] == sorted((e["score"] for e in ranked), reverse=True)
    assert {c["chunk_id"] for c in out["citations"]} <= {e["chunk_id"] for e in out["evidence"]}
    cited = {(c["file"], c["article"]) for c in out["citations"]}
    assert ("中华人民共和国公务员法_2018.md", "第八十二条") in cited
    for c in out["citations"]:
        assert set(c) == {"file", "title", "article", "quote", "chunk_id"}
        assert c["quote"] and c["quote"].replace(" ", "") in out["answer"].replace(" ", "")


def test_ask_outside_the_library_declines(cli_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        policy_cli.main(["--config", str(cli_config), "ask", "新能源汽车购置补贴怎么申请？", "--json"]) == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["declined"] is True and out["reason"] == "weak"
    assert out["citations"] == []


def test_ask_works_from_any_directory(
    cli_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Data files resolve from the package and the config file, never the working directory."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert policy_cli.main(["--config", str(cli_config), "ask", "能上能下规定有哪些内容？", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["declined"] is True and out["reason"] == "missing"  # the catalogue was found
    assert list(elsewhere.iterdir()) == []


def test_missing_catalogue_is_a_loud_error(
    ingested_settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = ingested_settings.model_copy(deep=True)
    settings.retrieval.catalogue = tmp_path / "no-catalogue.toml"
    config = _write_config(settings, tmp_path / "policy.toml")
    assert policy_cli.main(["--config", str(config), "ask", "公务员试用期多长？"]) == 2
    err = capsys.readouterr().err
    assert "找不到文件目录" in err and "retrieval.catalogue" in err


def test_bad_config_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[server]\nport = "七八六零"\n', encoding="utf-8")
    assert policy_cli.main(["--config", str(bad), "stats"]) == 2
    assert "配置有误" in capsys.readouterr().err
    assert policy_cli.main(["--config", str(tmp_path / "missing.toml"), "stats"]) == 2
    assert "找不到配置文件" in capsys.readouterr().err


def test_missing_eval_file_is_a_clear_error(
    cli_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert policy_cli.main(["--config", str(cli_config), "eval", str(tmp_path / "none.jsonl")]) == 2
    assert "找不到评测文件" in capsys.readouterr().err
