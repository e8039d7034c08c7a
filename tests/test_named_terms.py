"""Numbered terms a question asks to have spelled out (``assistant.named_terms``)."""

from __future__ import annotations

import pytest

from assistant.named_terms import NumberedTerm, asked_term, enumerated_items, spelled_out


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("讲话里说的“六有六不”，具体是哪六有、哪六不？", NumberedTerm("六有六不", 6)),
        ("“四个意识”指的是什么？", NumberedTerm("四个意识", 4)),
        ("市纪委的“二十五条”主要有哪些内容？", NumberedTerm("二十五条", 25)),
        ("党纪处分分为哪五种？", NumberedTerm("", 5)),
        ("讲话说要突出哪两个“专业”？", NumberedTerm("", 2)),
    ],
)
def test_questions_asking_which_items_a_term_stands_for(question: str, expected: NumberedTerm) -> None:
    assert asked_term(question) == expected


@pytest.mark.parametrize(
    "question",
    [
        "市纪委的“二十五条”是哪一年发的？",  # asks a date, not the items
        "我这种情况算不算“四风”问题？",  # asks whether a case falls under it
        "纪律处分条例第三条说的是什么？",  # an ordinal, not a count
        "“十九大”以后有什么新要求？",  # a congress, not a count
        "受处分的影响期是几年？",
    ],
)
def test_questions_not_asking_for_items(question: str) -> None:
    assert asked_term(question) is None


@pytest.mark.parametrize(
    ("text", "items"),
    [
        ("对党员的纪律处分种类：\n（一）警告；\n（二）严重警告；\n（三）撤销党内职务；", 3),
        ("坚持信念过硬、政治过硬、责任过硬、能力过硬、作风过硬的标准。", 5),
        ("经常开展批评和自我批评；党纪轻处分成为大多数；党纪重处分成为少数；严重违纪成为极少数。", 4),
        ("一是加强学习。二是加强实践。三是加强监督。", 3),
        ("要聚焦典型问题，盯住不落实的事，纠“四风”、树新风。", 2),
    ],
)
def test_enumerated_items(text: str, items: int) -> None:
    assert enumerated_items(text) == items


def test_a_term_named_in_passing_is_not_spelled_out() -> None:
    passing = "要聚焦“六有六不”典型问题，以九种党员干部为重点，持之以恒纠“四风”、树新风。"
    assert not spelled_out(NumberedTerm("六有六不", 6), [passing])


def test_a_term_followed_by_its_items_is_spelled_out() -> None:
    listed = "深化运用监督执纪“四种形态”，经常开展批评和自我批评；党纪轻处分成为大多数；党纪重处分成为少数；严重违纪成为极少数。"
    assert spelled_out(NumberedTerm("四种形态", 4), ["无关的一段。", listed])


def test_the_list_must_come_after_the_term() -> None:
    before = "甲、乙、丙、丁、戊、己。后来又提出了“六有六不”。"
    assert not spelled_out(NumberedTerm("六有六不", 6), [before])


def test_a_term_no_evidence_names_is_not_judged() -> None:
    # The answer may list the items without the label; the check only catches a named term.
    assert spelled_out(NumberedTerm("三个区分开来", 3), ["把因缺乏经验出现的失误同明知故犯的行为区分开来。"])


def test_without_a_term_any_long_enough_list_counts() -> None:
    assert spelled_out(NumberedTerm("", 3), ["（一）警告；（二）严重警告；（三）撤销党内职务；"])
    assert not spelled_out(NumberedTerm("", 5), ["（一）警告；（二）严重警告；"])
