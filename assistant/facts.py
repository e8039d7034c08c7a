"""Kinds of fact a question asks for (an amount, a share, a head count, a period, an
article number) and whether the evidence states one.

A question asking "多长时间" is declined when no sentence of the evidence that bears
on the question (holds ``answer.relevant_share`` of its term weight) states a period:
quoting unrelated periods would answer a question that was not asked.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from assistant.text import ARTICLE_RE

_NUM = r"(?:[0-9０-９]+(?:\.[0-9]+)?|[一二两三四五六七八九十][零〇一二两三四五六七八九十百千万]*)"
_KIND_QUESTION: dict[str, re.Pattern[str]] = {
    "money": re.compile(
        r"多少钱|多少元|多少块|多少万|几万(元|块)|金额|工资(是|有)?多少|补偿金.{0,4}多少|能领多少|能拿多少|报销多少|"
        r"标准(是|为)?多少|每(人|月|晚|餐)[^，。？?！]{0,6}多少|(补贴|补助|奖金|津贴)[^，。？?！]{0,4}多少"
    ),
    "ratio": re.compile(r"比例|百分之|占多少|几成|率[^，。？?！]{0,6}多少"),
    "headcount": re.compile(r"多少(名|个|位)?(干部|人|同志|党员)|几(名|位)(干部|同志|党员)?|人数"),
    "period": re.compile(
        r"多久|多长时间|多长|几个月|几年|几天|几个?(工作日|小时|星期)|几周|多少天|多少日|多少年|多少个(月|工作日)|"
        r"多少(小时|周)|期限是"
    ),
    "article_no": re.compile(r"第几条|哪一条|哪条"),
    "age": re.compile(r"多大年纪|多少岁|几岁|年龄"),
    # 几种/几类/几项 ask for a list (answered by enumerating it), not for a number.
    "count": re.compile(r"几(个|次|档)|多少(个|次|档)"),
    # A measured quantity: an area, a distance, hours of training, votes, engine size.
    "measure": re.compile(r"多少(平方米|平米|米|公里|学时|课时|分|票|升)|面积|排气量|排量"),
    "date": re.compile(r"哪一年|哪年|几月|几号|什么时候|何时"),
    "contact": re.compile(r"电话|网址|网站|邮箱|地址是|热线"),
    "who": re.compile(r"谁|哪位|哪个(部门|单位|机关|科室|处室|科|处|办公室|窗口)|哪些?部门|交到哪|报给哪"),
    # A form, a template or a list of papers to hand in ("要填什么表", "申诉书怎么写", "格式啥样").
    "form": re.compile(
        r"(填|交|准备|提交|带|附)(些)?(什么|哪些|啥|哪几种|哪种)(表|材料|证明|文书)|格式|模板|样表|范本|"
        r"(申请书|申诉书|申请|报告)(要|该|应该|得)?(怎么写|写(哪些|什么|啥))"
    ),
    # Any other figure: "…是多少？", "编号是多少" (多少 closing a clause; not "本事没多少").
    "figure": re.compile(r"(?<!没)(?<!没有)多少(?=[？?，,。！!；;]|$)"),
}
_ACTOR = r"(机关|部门|委员会|党委|党组|纪委|监委|单位|组织|法院|检察院|负责人|上级|领导)"
_KIND_EVIDENCE: dict[str, re.Pattern[str]] = {
    "money": re.compile(rf"{_NUM}\s*(元|万元|千元)"),
    "ratio": re.compile(rf"{_NUM}\s*%|百分之|{_NUM}分之|比例"),
    "headcount": re.compile(rf"{_NUM}\s*(名|人|位)"),
    "period": re.compile(rf"{_NUM}\s*(个月|年|月|日|天|周|小时|个工作日)|之日起|期满"),
    "article_no": ARTICLE_RE,
    "age": re.compile(rf"{_NUM}\s*(周岁|岁)"),
    "count": re.compile(rf"{_NUM}\s*(个|次|类|项|种|名|档)"),
    "measure": re.compile(rf"{_NUM}\s*(平方米|米|公里|千米|学时|课时|小时|分|票|升)"),
    "date": re.compile(rf"{_NUM}\s*(年|月|日)|之日"),
    "contact": re.compile(r"[0-9]{5,}|www|http|@"),
    # Rules name papers in passing ("书面材料"); a form or list is a named one or its contents.
    "form": re.compile(r"登记表|申请表|审批表|表格|格式|模板|样式|范本|(材料|证明)(包括|如下|有)|提交下列"),
    # Who acts: a body or person in a sentence that says it decides, approves, receives … the
    # matter ("由…决定", "报…批准", "向…申请", "…负责"), or who a rule applies to ("对象是…"). A body
    # merely named nearby does not say who handles what was asked, and neither does an unnamed
    # one ("经有关机关批准", "相关部门负责").
    "who": re.compile(
        rf"(由|向|报|经|交|交由|送|到|归)[^，。；？！]{{0,15}}(?<!有关)(?<!相关){_ACTOR}"
        rf"|(?<!有关)(?<!相关){_ACTOR}[^，。；？！]{{0,8}}(负责|审批|批准|决定|受理|管理|办理|保管|审查|审核|备案|认定|作出)"
        r"|(对象|范围)(是|为|包括)"
    ),
    "figure": re.compile(
        rf"{_NUM}\s*(元|万元|%|个月|年|月|日|天|周|小时|名|人|位|个|次|岁|周岁|平方米|米|公里|学时|号|档|级)|百分之|{_NUM}分之"
    ),
}


def strip_kind_words(question: str) -> str:
    """The question without the words that ask for a kind of fact (多长时间, 多少元 …)."""
    for pattern in _KIND_QUESTION.values():
        question = pattern.sub(" ", question)
    return question


# Kinds a question can ask for by offering alternatives: "55岁退休还是60岁", "6个月还是12个月":
# two figures of the kind within 8 characters on either side of 还是; and "向纪委报还是向组织部报",
# "组织部还是人社局": a choice between two bodies asks who acts.
_BODY = r"(?:部门|机关|单位|委员会|组织部|局|纪委|监委|党委|党组|厅|办公室|法院|检察院)"
_CHOICE: dict[str, re.Pattern[str]] = {
    **{
        kind: re.compile(
            rf"(?:{_KIND_EVIDENCE[kind].pattern})[^，。？?,]{{0,8}}还是[^，。？?,]{{0,8}}(?:{_KIND_EVIDENCE[kind].pattern})"
        )
        for kind in ("money", "ratio", "period", "age")
    },
    "who": re.compile(rf"{_BODY}[^，。？?,]{{0,3}}还是[^，。？?,]{{0,8}}{_BODY}"),
}
_YEAR = re.compile(r"[0-9０-９]{4}\s*年")  # "2018年还是2024年" names versions, not a period


# Question words that do not ask. A wh-word in a yes/no question is an indefinite ("这几个月工资
# 先欠着，这么干行吗？": "a few months"): a 「？」-sentence ending in 吗/么/嘛, in "X不/没(有)" or in
# "X不X" asks yes or no. And 几 after 好/这/那/前/近…, or before 十/百/千/万, counts vaguely
# ("好几年", "那几个人", "几十桌"), whatever the sentence asks; 谁谁 is "so-and-so".
_SENTENCE = re.compile(r"[^？?！!。]*[？?！!。]?")
_YES_NO = re.compile(r"(吗|(?<![什怎那这多])么|(?<!干)嘛|不|没|没有|否|(.)不\2)\s*[？?！!。]?\s*$")
_VAGUE_JI = re.compile(r"(?<=[好这那前后头近过十])几|几(?=[十百千万])|谁谁")


# A clause that asks something. A sentence's asking clauses are its last ones: walking back from
# its end, the first clause that asks nothing is a premise, and so is everything before it
# ("下面几个单位的负责人都要来随礼，我琢磨着摆几桌，会不会踩线？": 几个 tells, it does not ask).
_CLAUSE = re.compile(r"[^，,；;：:]+[，,；;：:]?")
_INTERROGATIVE = re.compile(
    r"几|多少|多久|多长|多大|谁|什么|啥|哪|怎|如何|吗|么|呢|嘛|是否|能否|可否|有无|还是|咋|(.)[不没]\1"
)


def _asking_clauses(sentence: str) -> str:
    clauses = _CLAUSE.findall(sentence)
    start = len(clauses)
    while start > 0 and _INTERROGATIVE.search(clauses[start - 1]):
        start -= 1
    return "".join(clauses[start:])


def asking_text(question: str) -> str:
    """``question`` without its yes/no sentences and premises, with vague 几 masked: the text in
    which a question word (多少, 几, 多久, 谁 …) really asks. When some sentence ends with ？,
    the sentences that do not are statements."""
    sentences = [s for s in _SENTENCE.findall(question) if s.strip()]
    if any(s.rstrip().endswith(("？", "?")) for s in sentences):  # then the others only tell
        sentences = [s for s in sentences if s.rstrip().endswith(("？", "?"))]
    kept = [s for s in sentences if not _YES_NO.search(s)]
    return _VAGUE_JI.sub("某", "".join(_asking_clauses(s) for s in kept))


def asked_kinds(question: str) -> list[str]:
    """Kinds of fact the question explicitly asks for (see ``_KIND_QUESTION``), or asks to choose
    between ("55岁还是60岁": two figures of one kind and 还是). Only the asking sentences count
    (``asking_text``)."""
    question = asking_text(question)
    kinds = [kind for kind, pattern in _KIND_QUESTION.items() if pattern.search(question)]
    if "figure" in kinds and len(kinds) > 1:
        kinds.remove("figure")  # the fallback: a named kind says better what figure is asked
    if "还是" in question:
        text = _YEAR.sub("", question)
        for kind, choice in _CHOICE.items():
            if kind not in kinds and choice.search(text):
                kinds.append(kind)
    return kinds


_EVIDENCE_SENTENCE = re.compile(r"(?<=[。！？!?；;\n])")


def _relevant_text(evidence_texts: Sequence[str], weights: Mapping[str, float], share: float) -> str:
    """The evidence sentences that bear on the question: those that (together with the sentence
    before them, which often introduces a list or a figure) hold at least ``share`` of
    the question's term weight."""
    total = sum(weights.values())
    if total <= 0:
        return "\n".join(evidence_texts)
    kept: list[str] = []
    for text in evidence_texts:
        sentences = [s for s in _EVIDENCE_SENTENCE.split(text) if s.strip()]
        for i, sentence in enumerate(sentences):
            window = sentence if i == 0 else sentences[i - 1] + sentence
            held = sum(w for t, w in weights.items() if t in window)
            if held >= share * total:
                kept.append(sentence)
    return "\n".join(kept)


def unsupported_kinds(
    question: str,
    evidence_texts: Sequence[str],
    labels: Sequence[str] = (),
    weights: Mapping[str, float] | None = None,
    relevant_share: float = 0.25,
) -> list[str]:
    """Kinds the question asks for that none of the evidence contains.

    ``labels`` are the article labels of the evidence chunks (an article number
    is answerable when the evidence chunk itself is an article). ``weights`` are
    the question's content words with their weight (e.g. IDF in the library):
    when given, an amount / share / count / period only counts in a sentence
    that bears on the question (see ``_relevant_text``), not anywhere in the evidence.
    """
    joined = "\n".join(evidence_texts)
    relevant = _relevant_text(evidence_texts, weights, relevant_share) if weights else joined
    missing: list[str] = []
    for kind in asked_kinds(question):
        if kind == "article_no" and any(labels):
            continue
        if not _KIND_EVIDENCE[kind].search(joined if kind == "article_no" else relevant):
            missing.append(kind)
    return missing


KIND_NAMES = {
    "money": "具体金额",
    "ratio": "具体比例",
    "headcount": "具体人数",
    "period": "具体时间或期限",
    "article_no": "具体条目编号",
    "age": "具体年龄",
    "count": "具体数量",
    "measure": "具体数值",
    "date": "具体日期",
    "contact": "具体联系方式",
    "who": "具体负责的人或部门",
    "form": "具体表格、格式或材料清单",
    "figure": "具体数字",
}


# The sources leave the specifics to another regulation: "按照国家规定享受…", "遵守脱密期管理规定".
_DEFERS = re.compile(
    r"按照?国家(有关)?规定|按(照)?(有关)?规定|国家规定的|另行规定|管理规定|具体办法由|由.{1,12}(另行)?(规定|制定)"
)


def defers_elsewhere(
    evidence_texts: Sequence[str], weights: Mapping[str, float], relevant_share: float = 0.25
) -> bool:
    """A sentence of the evidence that bears on the question hands the matter to a regulation
    the library does not quote (the library names the topic, another text settles it)."""
    return bool(_DEFERS.search(_relevant_text(evidence_texts, weights, relevant_share)))
