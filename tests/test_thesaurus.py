"""The domain thesaurus (corpus/thesaurus.toml): every term is the library's own wording, and a
question's everyday phrase is expanded to it (longest phrase first)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from assistant.thesaurus import Thesaurus, ThesaurusError

THESAURUS = Path(__file__).resolve().parent.parent / "corpus" / "thesaurus.toml"


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def test_every_term_occurs_in_the_library(library_dir: Path) -> None:
    import tomllib

    texts = [
        _squash(p.read_text(encoding="utf-8")) for p in library_dir.glob("*.md") if p.name != "SOURCES.md"
    ]
    entries = tomllib.loads(THESAURUS.read_text(encoding="utf-8"))["entry"]
    assert len(entries) >= 100
    absent = [e["term"] for e in entries if not any(_squash(e["term"]) in t for t in texts)]
    assert absent == []


def test_expansion_replaces_the_longest_phrase() -> None:
    thesaurus = Thesaurus({"借车": ["借用车辆"], "借老板的车": ["借用管理和服务对象的车辆"]})
    out = thesaurus.expand("我借老板的车开了一个月，算违纪吗？")
    assert out.terms == ["借用管理和服务对象的车辆"]
    assert out.rewritten == "我借用管理和服务对象的车辆开了一个月，算违纪吗？"
    assert thesaurus.expand("今天天气如何") == type(out)()


def test_term_already_in_the_question_adds_nothing() -> None:
    thesaurus = Thesaurus({"被带走": ["留置"]})
    assert thesaurus.expand("被带走也就是留置以后要通知家属吗").terms == []


def test_the_shipped_thesaurus_loads_and_expands() -> None:
    thesaurus = Thesaurus.load(THESAURUS)
    assert "留置" in thesaurus.expand("他被纪委带走了，家里人多久能知道？").terms


def test_bad_files_give_chinese_errors(tmp_path: Path) -> None:
    with pytest.raises(ThesaurusError, match="找不到同义词表"):
        Thesaurus.load(tmp_path / "none.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[[entry]]\nterm = 1\ncolloquial = 'x'\n", encoding="utf-8")
    with pytest.raises(ThesaurusError, match="缺少 term 或 colloquial"):
        Thesaurus.load(bad)
    bad.write_text("[[entry", encoding="utf-8")
    with pytest.raises(ThesaurusError, match="无法读取"):
        Thesaurus.load(bad)
