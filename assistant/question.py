"""Question analysis: what kind of answer a question asks for, read once per question.

* list questions (哪些 / 几种 / 包括 …) get enumerated items;
* structure questions (哪几项工作) get the sub-headings of a section;
* multi-part questions (分别 / 以及 / several 「？」) get a source per part;
* bridge questions cite the speech in a premise and ask what a rule says;
* English questions are answered with the Chinese sources quoted.

Pure functions over the question text; no library access.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from assistant.text import ARTICLE_RE, CJK_RE, ENUM_ITEM_RE, is_english

_LIST_QUESTION = re.compile(
    r"哪些|哪几|几种|几类|几项|几个|几方面|哪四|哪三|哪两|哪五|哪六|什么条件|哪种情形|什么情形|哪些情形|包括|包含|列举|有几|"
    r"\bwhich\b|\bwhat (are|were)\b|\blist\b|\bconditions\b|\bfactors\b",
    re.IGNORECASE,
)
_STRUCTURE_QUESTION = re.compile(r"(哪几|哪些|几)(项|个|方面|部分)?(工作|举措|措施|方面|部分|点意见)")
_MULTI_QUESTION = re.compile(
    r"分别|各自|两处|两个|和.{0,8}(分别|各)|党纪.{0,12}(政务|公职)|以及|还要|同时|另外"
)
_CLAUSE_SPLIT = re.compile(r"[，,。？?！!；;]")
_PART_SPLIT = re.compile(r"(?<=[？?；;])")
_SPEECH_CUE = re.compile(r"讲话|讲稿|会上(的)?发言")
_RULE_CUE = re.compile(
    r"法律|法规|规定|条例|规则|办法|制度|文件|意见|组织上|组织处理|处分|问责|纪律|党纪|政务|中央|按.{0,4}(法|规)"
)
# A question put to a body that applies the rules, about what it does ("纪委在这个环节要把哪几道关",
# "纪委平时监督检查，有没有…"), not about what the speech said of it ("对各级党组织提出了哪些要求").
_BODY_ACTS = re.compile(
    r"(纪委|监委|纪检监察机关|监察机关|党组织)[^，。？?]{0,8}?(该|要|应|会|能|怎么|如何|处理|查|管|把)"
)
_ASKS_WHAT_WAS_SAID = re.compile(r"提出|怎么说|说的|讲了|讲到|强调|指出|提到")
# A document named in the question: 《X》, or “X”里/中/文件….
_NAMED_DOC = re.compile(
    r"《([^》]{2,40})》|[“\"]([^”\"]{2,20})[”\"](?:里|中|当中|文件|规定|的规定|这份|这个文件)"
)
# Text the question claims a source says: “…” of a sentence's length.
_CLAIMED_QUOTE = re.compile(r"[“\"]([^”\"]{6,80})[”\"]")


# "有哪几种 / 分为哪些 / 种类": the question asks what a set of kinds consists of (a headline
# question, answered by the article that defines the list).
_KINDS_QUESTION = re.compile(
    r"哪几种|哪几类|哪些种类|几种|几类|种类|分为|分成|哪些形式|哪些方式|方式有哪些|形式有哪些"
)
_INLINE_LIST = re.compile(r"[：:]([^。；：]{1,12}、){2,}[^。；：]{1,12}[。；]")


def asks_kinds(question: str) -> bool:
    return bool(_KINDS_QUESTION.search(question))


# The sentence that introduces a list of kinds: "纪律处分种类：", "政务处分的种类为：", "处分分为：".
_DEFINES_KINDS = re.compile(r"(种类|分为|分成|方式|形式|类别)(包括|有|是|为)?[：:]")


def defines_kinds(text: str) -> bool:
    """The text defines a set of kinds: a list introduced by 种类/分为/方式… and a colon."""
    return bool(_DEFINES_KINDS.search(text)) and enumerates(text)


def enumerates(text: str) -> bool:
    """The text lists items: two or more （一）… lines, or a "：A、B、C。" list."""
    if sum(1 for line in text.splitlines() if ENUM_ITEM_RE.match(line.strip())) >= 2:
        return True
    return bool(_INLINE_LIST.search(text))


def is_list_question(question: str) -> bool:
    return bool(_LIST_QUESTION.search(question))


def bridge_parts(question: str) -> tuple[str, str] | None:
    """(speech premise, rule question) of a question that links a speech theme to a rule.

    A bridge question cites the speech in a premise clause ("讲话要求…，") and asks,
    in a later clause that does not mention the speech, about what a rule or law says.
    """
    clauses = [c.strip() for c in _CLAUSE_SPLIT.split(question) if c.strip()]
    if len(clauses) < 2 or _SPEECH_CUE.search(clauses[-1]):
        return None
    speech = [c for c in clauses if _SPEECH_CUE.search(c)]
    rest = [c for c in clauses if not _SPEECH_CUE.search(c)]
    if not speech or not rest:
        return None
    rule = "，".join(rest)
    asks_a_body = bool(_BODY_ACTS.search(rule)) and not _ASKS_WHAT_WAS_SAID.search(rule)
    if not (_RULE_CUE.search(rule) or asks_a_body):
        return None
    return "，".join(speech), rule


def question_parts(question: str) -> list[str]:
    """The sub-questions of a multi-part question (["…？", "…？"]); [] for a single question.

    Premise clauses that only cite the speech are left out of each part.
    """
    parts: list[str] = []
    for piece in _PART_SPLIT.split(question):
        clauses = [c for c in _CLAUSE_SPLIT.split(piece) if c.strip()]
        kept = [c for c in clauses if not _SPEECH_CUE.search(c)] or clauses
        text = "，".join(kept)
        if len(CJK_RE.findall(text)) >= 4:
            parts.append(text)
    return parts if len(parts) >= 2 else []


# What is left of "纪律处分条例第三条说的是什么？" once the document, the article and the words that
# ask for its text are taken out: nothing, so the article alone answers it.
_DOC_NAME = re.compile(r"《[^》]*》|[\u4e00-\u9fff]{0,16}?(条例|法|规定|规则|意见|办法)(（[^）]*）)?(?=第)")
_ASKS_TEXT = re.compile(
    r"(说|讲|规定|写)(的|了)?(是)?(什么|啥)(内容)?|内容(是)?(什么|啥)|(原文|全文)(是什么)?|"
    r"怎么(说|规定|写)(的)?|是什么|讲什么|什么意思|内容|念一下|给我看看|第[0-9一二三四五六七八九十]+[款项]|"
    r"[的了吗呢啊吧呀这那里中]"
)


def asks_only_article(question: str) -> bool:
    """The question names an article (第X条) and asks for nothing but what it says."""
    if not ARTICLE_RE.search(question):
        return False
    rest = _ASKS_TEXT.sub("", ARTICLE_RE.sub("", _DOC_NAME.sub("", question)))
    return len(CJK_RE.findall(rest)) <= 1


def named_documents(question: str) -> list[str]:
    """Document names written in the question (《X》, “X”里 …), in order."""
    return [m.group(1) or m.group(2) or "" for m in _NAMED_DOC.finditer(question)]


def claimed_quotes(question: str) -> list[str]:
    """Sentences the question puts in quotation marks (claimed source text)."""
    return _CLAIMED_QUOTE.findall(question)


@dataclass(frozen=True)
class Analysis:
    """What the answerers need to know about a question, computed once."""

    english: bool
    list_mode: bool  # enumerated items wanted (or a follow-up pointing at an item)
    structure: bool  # the sub-headings of a section wanted
    multi: bool  # several things asked for
    bridge: tuple[str, str] | None
    parts: list[str] = field(default_factory=list)
    kinds: bool = False  # a headline question: what a set of kinds consists of (有哪几种)
    only_article: bool = False  # "第X条说的是什么": the referenced article alone answers it


def analyse(question: str, ordinal: int | None = None) -> Analysis:
    return Analysis(
        english=is_english(question),
        list_mode=is_list_question(question) or ordinal is not None,
        structure=bool(_STRUCTURE_QUESTION.search(question)),
        multi=bool(_MULTI_QUESTION.search(question)),
        bridge=bridge_parts(question),
        parts=question_parts(question),
        kinds=asks_kinds(question),
        only_article=asks_only_article(question),
    )
