"""Numbered terms a question asks to have spelled out ("六有六不", "四个意识", "哪九种干部"),
and whether the evidence spells them out.

Policy texts name many numbered slogans in passing ("要聚焦“六有六不”典型问题", "增强“四个
意识”") without listing what they stand for. A question asking which six, or what the four
are, is then not answered by the sentence that names the term: quoting it would look like an
answer while saying nothing. The evidence spells a term out when, from where it names the
term to the end of that chunk, some enumeration has at least as many items as the term's
number: items in a 、-run, ；-separated parts of one sentence, or numbered items
（一）（二）… / 一是、二是…. The check is deliberately lenient (any long enough list after
the term counts), so it only catches terms the library names and never lists.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from assistant import facts
from assistant.text import parse_numeral

_CN = "一二两三四五六七八九十"
# A numeral counting items: not an ordinal (第三), a congress (十九大) or a time (三年).
_COUNT = rf"(?<!第)([{_CN}]{{1,3}})(?![{_CN}]|大|年|月|日|天|岁|次|倍|级)"
# "哪九种", "哪四个", "哪六有": the question asks which N.
_WHICH_N = re.compile(rf"哪{_COUNT}")
# A quoted term holding a count: “四个意识”, “六有六不”, “二十五条”, “以九种党员干部为重点”.
_QUOTED = re.compile(r"[“\"「『]([^”\"」』]{2,16})[”\"」』]")
_TERM_COUNT = re.compile(_COUNT)
# … and asks what it consists of (not, say, whether a case falls under it).
_ASKS_CONTENT = re.compile(r"具体|指(的)?(是)?(什么|哪|啥)|是(什么|哪|啥)|哪(些|几)|包括|内容|原文|分别")

_CLAUSE = re.compile(r"[，,。！？!?；;：:\n]")
_SENTENCE = re.compile(r"[。！？!?\n]")
_ORDINAL = (
    re.compile(rf"[（(]([{_CN}]{{1,3}})[）)]"),  # （一）（二）
    re.compile(rf"(?<![{_CN}第])([{_CN}]{{1,3}})是"),  # 一是…二是…
)


@dataclass(frozen=True)
class NumberedTerm:
    term: str  # the quoted term ("" when the question only asks "哪N…")
    count: int  # how many items it stands for


def asked_term(question: str) -> NumberedTerm | None:
    """The numbered term whose items the question asks for, if any: "哪N…", or a quoted
    numbered term together with words asking what it is. A question that asks for another kind
    of fact ("“二十五条”是哪一年发的", ``facts.asked_kinds``) is not asking for the items."""
    which = _WHICH_N.search(question)
    quoted = [q for q in _QUOTED.findall(question) if _TERM_COUNT.search(q)]
    if (which is None and not quoted) or facts.asked_kinds(question):
        return None  # most questions stop at the two cheap searches
    term = quoted[0] if quoted else ""
    if which is not None:
        count = parse_numeral(which.group(1)) or 0
    elif term and _ASKS_CONTENT.search(_QUOTED.sub("", question)):
        match = _TERM_COUNT.search(term)
        count = (parse_numeral(match.group(1)) or 0) if match else 0
    else:
        return None
    return NumberedTerm(term, count) if count >= 2 else None


def enumerated_items(text: str) -> int:
    """The longest enumeration in ``text``: a 、-run within a clause, the ；-parts of a sentence,
    or a run of numbered items （一）（二）… / 一是、二是… starting at one."""
    best = max((clause.count("、") + 1 for clause in _CLAUSE.split(text)), default=0)
    best = max(best, max((s.count("；") + s.count(";") + 1 for s in _SENTENCE.split(text)), default=0))
    for pattern in _ORDINAL:
        numbers = {parse_numeral(m.group(1)) for m in pattern.finditer(text)}
        run = 0
        while run + 1 in numbers:
            run += 1
        best = max(best, run)
    return best


def spelled_out(asked: NumberedTerm, evidence_texts: Sequence[str]) -> bool:
    """Whether the evidence lists the term's items (see the module docstring). A term no
    evidence chunk names is not judged (True): the answer may list it in other words."""
    key = re.sub(r"\s", "", asked.term)
    named = False
    for text in evidence_texts:
        flat = re.sub(r"[ \t]", "", text)
        at = flat.find(key) if key else 0
        if at < 0:
            continue
        named = True
        if enumerated_items(flat[at:]) >= asked.count:
            return True
    return not named
