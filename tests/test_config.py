"""Settings precedence: defaults < TOML file < POLICY_* environment < explicit overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.config import CORPUS_DIR, PROJECT_ROOT, load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("POLICY_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


def test_defaults_when_no_file(tmp_path: Path) -> None:
    s = load_settings()
    assert s.chroma.host is None
    assert s.server.port == 7860
    assert s.llm.mode == "extractive"
    # Defaults resolve from the checkout, never from the working directory (tmp_path here).
    assert s.ingest.library_dirs == [PROJECT_ROOT.parent / "shared" / "corpus"]
    assert s.retrieval.catalogue == CORPUS_DIR / "catalogue.toml" and s.retrieval.catalogue.is_file()
    assert s.retrieval.dictionary.is_file()
    assert s.chroma.persist_dir == PROJECT_ROOT / ".data" / "chroma"


def test_relative_paths_in_toml_are_relative_to_the_file(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    cfg = site / "policy.toml"
    cfg.write_text(
        '[ingest]\nlibrary_dirs = ["docs", "/srv/abs"]\n[retrieval]\ncatalogue = "cat.toml"\n'
        '[chroma]\npersist_dir = "../data/chroma"\n',
        encoding="utf-8",
    )
    s = load_settings(cfg)
    assert s.ingest.library_dirs == [site / "docs", Path("/srv/abs")]
    assert s.retrieval.catalogue == site / "cat.toml"
    assert s.chroma.persist_dir == site / "../data/chroma"


def test_toml_overrides_defaults_and_env_overrides_toml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "site.toml"
    cfg.write_text(
        '[chroma]\nhost = "chroma.internal"\nport = 9000\n[server]\nport = 8100\n'
        '[ingest]\nlibrary_dirs = ["/srv/a", "/srv/b"]\n',
        encoding="utf-8",
    )
    s = load_settings(cfg)
    assert (s.chroma.host, s.chroma.port, s.server.port) == ("chroma.internal", 9000, 8100)
    assert s.ingest.library_dirs == [Path("/srv/a"), Path("/srv/b")]

    monkeypatch.setenv("POLICY_CHROMA__PORT", "9100")
    monkeypatch.setenv("POLICY_LLM__MODE", "generative")
    s = load_settings(cfg)
    assert s.chroma.port == 9100  # env wins over the file
    assert s.chroma.host == "chroma.internal"  # the file still wins over the default
    assert s.llm.mode == "generative"


def test_policy_config_and_no_working_dir_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "policy.toml").write_text("[server]\nport = 8200\n", encoding="utf-8")
    assert load_settings().server.port == 7860  # the working directory does not matter
    other = tmp_path / "other.toml"
    other.write_text("[server]\nport = 8300\n", encoding="utf-8")
    monkeypatch.setenv("POLICY_CONFIG", str(other))
    assert load_settings().server.port == 8300


def test_missing_config_file_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(FileNotFoundError, match="找不到配置文件"):
        load_settings(tmp_path / "nope.toml")
    monkeypatch.setenv("POLICY_CONFIG", str(tmp_path / "nope.toml"))
    with pytest.raises(FileNotFoundError, match="POLICY_CONFIG"):
        load_settings()


def test_loading_settings_creates_no_folders(tmp_path: Path) -> None:
    load_settings()
    assert list(tmp_path.iterdir()) == []
