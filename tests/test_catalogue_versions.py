"""Which absent document a question asks about when the library holds another version of it."""

from __future__ import annotations

import pytest

from assistant.catalogue import find_missing_document, make_missing

HELD = ["中国共产党问责条例（2016年版，已由2019年修订版取代——非现行文本）", "中华人民共和国公务员法"]
ABSENT = [
    make_missing("中国共产党问责条例（2019年修订）"),
    make_missing("党政领导干部选拔任用工作条例（2019年）"),
]


@pytest.mark.parametrize(
    ("question", "absent"),
    [
        ("2019年修订的问责条例一共有多少条？", "问责条例"),  # the absent version, by its year
        ("问责条例规定了哪几种问责方式？", None),  # no year: the held version answers
        ("2019年版已经实施了，那2016年版问责条例里问责方式有哪些？", None),  # asks about the held one
        ("2019年的问责条例跟2016年版比，新增了哪些情形？", "问责条例"),  # comparing needs both
        ("选拔任用工作条例对破格提拔有什么规定？", "党政领导干部选拔任用工作条例"),  # no version held
    ],
)
def test_absent_version(question: str, absent: str | None) -> None:
    found = find_missing_document(question, ABSENT, HELD)
    assert (found.core if found else None) == absent
