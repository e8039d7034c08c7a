"""What a question asks for, and whether the evidence that bears on it states it (pure functions)."""

from __future__ import annotations

import pytest

from assistant import facts
from assistant.question import asks_kinds, defines_kinds, enumerates


@pytest.mark.parametrize(
    ("question", "kinds"),
    [
        ("受处分后多长时间不能提拔？", ["period"]),
        ("女公务员多少岁退休？", ["age"]),
        ("一年最多能因私出国几次？", ["count"]),
        ("举报电话是多少？", ["contact"]),
        ("这篇讲话是哪一年讲的？", ["date"]),
        ("护照要交到哪个部门保管？", ["who"]),
        ("党纪处分有哪几种？", []),  # a list question, answered by enumerating
        ("组织处理分为几类？", []),
        # Choosing between two figures of one kind asks for that kind.
        ("退休是55岁还是60岁？", ["age"]),
        ("影响期是6个月还是12个月？", ["period"]),
        ("是给警告还是严重警告？", []),
        ("现在适用2018年的监察法还是2024年的监察法？", []),  # versions, not a period
        # Amounts in ten-thousands, pay grades, an office, a choice between two bodies.
        ("违规发放的津贴达到多少万就要移送？", ["money"]),
        ("晋升以后薪级能涨几档？", ["count"]),
        ("档案转递材料要送到人事处哪个窗口？", ["who"]),
        ("出国证件归组织部管还是归公安局管？", ["who"]),
        ("是记过还是降级，谁说了算？", ["who"]),
        ("干部档案每年什么时候更新？", ["date"]),  # 什么时候 / 何时: when
        ("这件事是按党纪处理还是按政务处分处理？", []),  # two regimes, not two bodies
        # Figures asked for without a kind word of their own.
        ("在一个岗位干满多少年必须交流？", ["period"]),
        ("乡镇补贴每人每月多少？", ["money"]),
        ("办公室面积最多多少平方米？", ["measure"]),
        ("每年要参加多少学时的培训？", ["measure"]),
        ("得票率要达到多少才能列为考察对象？", ["ratio"]),
        ("配套文件的编号是多少？", ["figure"]),  # the fallback when no kind word says which
        ("纪律处分条例一共有多少条？", []),
        ("这人本事没多少，却被提拔了，讲话怎么看？", []),  # 没多少: "not much", no figure asked
        # Question words that only count vaguely, or sit in a yes/no question, ask for nothing.
        ("我在外地多住了几天才回来，要紧吗？", []),
        ("同事借了我几千块钱一直不还，我能找纪委不？", []),
        ("前几年挨过一次批评，现在还影响评优？", []),
        ("好几个人都知道这事，算不算泄密？", []),
        ("我去过几次那家会所，会被处分吗？一般是什么处分？", []),
        ("处分会影响几年？会影响评优吗？", ["period"]),  # only the yes/no sentence is left out
        ("谁谁被约谈了的说法，有规定吗？", []),  # 谁谁: "so-and-so"
        ("材料报上去几个工作日能批下来？", ["period", "count"]),  # 几个工作日 is a period
        # 什么 / 怎么 close a wh-question, not a yes/no one.
        ("申诉期限是多少天，超过了怎么？", ["period"]),
        # A form, a template or the papers to hand in.
        ("调动工作要准备哪些材料？", ["form"]),
        ("复核申请书该怎么写？有范本吗？", ["form"]),
        ("谈话记录是什么格式？", ["form"]),
        ("领导要我们填一堆表格，这种做法对吗？", []),  # a yes/no question about forms
        # A clause that tells rather than asks is a premise, even in a sentence ending with ？.
        ("单位里几个科长都说要来帮忙，我打算办两桌，这样有啥问题？", []),
        ("老家几个亲戚合伙开了个厂。我能去当顾问吗？", []),
        ("领导打电话让我关照一个案子，我没答应，还要做什么？", []),
        ("退休以后多久能去企业任职，需要谁批准？", ["period", "who"]),  # both clauses ask
    ],
)
def test_asked_kinds(question: str, kinds: list[str]) -> None:
    assert facts.asked_kinds(question) == kinds


def test_fact_counts_only_in_sentences_about_the_question() -> None:
    weights = {"停职检查": 3.0, "工资": 2.0}
    evidence = ["停职检查期限一般不超过6个月。受到调整职务处理的，1年内不得提拔职务。"]
    assert facts.unsupported_kinds("停职检查期间工资多少元？", evidence, weights=weights) == ["money"]
    assert facts.unsupported_kinds("停职检查一般多长时间？", evidence, weights=weights) == []


def test_who_is_stated_by_a_sentence_that_says_who_acts() -> None:
    weights = {"兼职": 3.0, "审批": 2.0}
    asked = "兼职要哪个部门审批？"
    named_only = ["兼职审批工作应当接受纪检监察机关的监督。"]  # a body named, not who approves
    assert facts.unsupported_kinds(asked, named_only, weights=weights) == ["who"]
    for stated in ("兼职审批由所在单位的人事部门负责。", "兼职须报同级党委组织部门审批。"):
        assert facts.unsupported_kinds(asked, [stated], weights=weights) == []
    # A body left unnamed does not say who: "经有关机关批准".
    for unnamed in ("公务员因工作需要兼职，应当经有关机关批准。", "兼职审批由相关部门负责。"):
        assert facts.unsupported_kinds(asked, [unnamed], weights=weights) == ["who"]


def test_deferral_to_another_regulation() -> None:
    weights = {"年休假": 3.0, "公务员": 1.0, "休假": 2.0}
    assert facts.defers_elsewhere(["公务员按照国家规定享受休假。"], weights)
    assert not facts.defers_elsewhere(["公务员每年享受十五天年休假。"], weights)
    # A deferral in a sentence about something else (and not right after one about it) does not count.
    text = "公务员每年享受十五天年休假。考核结果分为四个等次。工资按照国家规定发放。"
    assert not facts.defers_elsewhere([text], weights)


def test_headline_questions_and_enumerations() -> None:
    assert asks_kinds("政务处分分为哪些种类？") and asks_kinds("问责方式有哪些？")
    assert not asks_kinds("哪些情形可以从轻处分？")
    assert enumerates("第六十二条 处分分为：警告、记过、记大过、降级、撤职、开除。")
    assert enumerates("第八条 对党员的纪律处分种类：\n（一）警告；\n（二）严重警告；")
    assert not enumerates("党员依法受到刑事责任追究的，党组织应当根据司法机关的生效判决作出处理。")


def test_a_list_of_kinds_is_told_from_any_list() -> None:
    assert defines_kinds("第八条 对党员的纪律处分种类：\n（一）警告；\n（二）严重警告；")
    assert defines_kinds("政务处分的种类为：\n（一）警告；\n（二）记过；")
    # A list of the acts an article punishes is a list, but not of kinds.
    acts = "党组织有下列行为之一的，给予处分：\n（一）不传达贯彻；\n（二）拒不执行；"
    assert enumerates(acts) and not defines_kinds(acts)
