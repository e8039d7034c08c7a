"""Which absent document a question asks about when the library holds another version of it."""

from __future__ import annotations

import pytest

from assistant.catalogue import find_missing_document, make_missing
from assistant.text import full_version_years

# (title, the years its version is named by), as DocInfo.version_years gives them
HELD = [
    ("中国共产党问责条例（2016年版，已由2019年修订版取代——非现行文本）", {"2016"}),
    ("中华人民共和国公务员法", {"2018", "2019"}),
]
ABSENT = [
    make_missing("中国共产党问责条例（2019年修订）"),
    make_missing("党政领导干部选拔任用工作条例（2019年）"),
    make_missing("中华人民共和国公务员法（2005年）"),
]


@pytest.mark.parametrize(
    ("question", "absent"),
    [
        ("2019年修订的问责条例一共有多少条？", "问责条例"),  # the absent version, by its year
        ("问责条例规定了哪几种问责方式？", None),  # no year: the held version answers
        ("2019年版已经实施了，那2016年版问责条例里问责方式有哪些？", None),  # asks about the held one
        ("2019年的问责条例跟2016年版比，新增了哪些情形？", "问责条例"),  # comparing needs both
        ("选拔任用工作条例对破格提拔有什么规定？", "党政领导干部选拔任用工作条例"),  # no version held
        # A two-digit version year, and 的 inside the name.
        ("现在执行的是19年修订的问责条例吧？", "问责条例"),
        ("16年那版问责条例规定了哪几种问责方式？", None),
        ("选拔任用的工作条例对破格提拔有什么规定？", "党政领导干部选拔任用工作条例"),
        # The held 公务员法's year is in its date, not its title: asking about it by that year is
        # answered from it, comparing it with the 2005 text is not.
        ("2005年版已经不用了，那2019年施行的公务员法里辞退怎么规定？", None),
        ("2019年施行的公务员法跟2005年版比，辞退有什么变化？", "公务员法"),
    ],
)
def test_absent_version(question: str, absent: str | None) -> None:
    found = find_missing_document(question, ABSENT, HELD)
    assert (found.core if found else None) == absent


@pytest.mark.parametrize(
    ("text", "full"),
    [
        ("19年修订的问责条例", "2019年修订的问责条例"),
        ("18年那版纪律处分条例", "2018年那版纪律处分条例"),
        ("98年版的规定", "1998年版的规定"),
        ("我干了19年纪检", "我干了19年纪检"),  # a period, not a version
        ("2018年版", "2018年版"),
    ],
)
def test_two_digit_version_years(text: str, full: str) -> None:
    assert full_version_years(text) == full
