"""Prompt injection in a question: fake system text, "ignore your sources", role play,
requests to invent or pass off rule text.

``check_injection(question)`` returns what was found and the question without the
manipulating sentences (``remainder``), which may still be answered from the sources.
Document text is never interpreted here or anywhere else: it is only quoted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_OVERRIDE_PATTERNS: tuple[str, ...] = (
    # "ignore / forget the instructions, sources, rules above"
    r"(忽略|无视|不要理会|别管|忘记|忘掉|抛开|跳过).{0,12}(指令|指示|规则|设定|提示词?|资料|来源|出处|限制|约束|要求|上文|以上|之前|前面)",
    # fake system / developer text
    r"(系统|管理员|开发者|后台)(提示|消息|指令|通知|设定)",
    r"【[^】]{0,30}(系统|管理员|开发者|授权|指令)[^】]{0,30}】",
    r"(已|被)授权.{0,10}(无需|不用|不必|可以)",
    r"<\|?(im_start|system|endoftext)\|?>|\[/?INST\]|<<SYS>>",
    r"(^|\n)\s*(system|assistant|系统)\s*[:：]",
    # role play
    # role play asked of the assistant ("他假装生病" or "别看他老实" are situations, not requests)
    r"(你|您)(现在|从现在起|从现在开始)(就)?(扮演|作为)",
    r"(你|您)?(现在|从现在起|从现在开始)(你|您)?(就)?是(一[个位名]|[^，。？！?!]{0,12}(专家|书记|纪检|助手|律师|系统|机器人|领导|法官|顾问))",
    r"(假设|假如|假定|设想)(你|您)是",
    r"(你|您)就是.{0,12}(专家|系统|领导|机关|内部)",
    r"(你|您|请)[^。？！?!]{0,6}(假装|扮演)|角色扮演|进入.{0,6}模式|越狱",
    # "no need for sources": looking up or citing the sources waved away
    r"(不用|不必|无需|不需要|别|不要)(再|去)?(查|查阅|查询|翻|看|参考|依据)(任何|一下)?(资料|来源|出处|原文|文件|条文|库)",
    r"(不用|不必|无需|不需要|别|不要)(再)?(引用|标注|注明|标明|标出处|标来源|标条号)",
    r"(不用|不必|无需|别|不要)(再)?查(了)?[，,]?(你)?(就)?直接(说|回答|告诉|给)",
    r"不受.{0,6}(限制|约束)",
    # asking to be shown what is not public ("调阅不公开的文件"); a question about a leaked or
    # secret document is a topic of the rules, not a request
    r"(调阅|调取|查看|看看|发给|发我|给我|提供|透露给)[^。？！?!]{0,10}(不公开|内部|保密|机密)(的)?(文件|材料|资料)",
    r"(不公开|内部|保密|机密)(的)?(文件|材料|资料)[^。？！?!]{0,8}(发给|发我|给我|调出来|拿出来|念给)",
    # English
    r"\b(ignore|disregard|forget|override)\b.{0,30}\b(instruction|instructions|rules|sources|context|prompt|above|previous)\b",
    r"\byou are now\b|\bfrom now on\b|\bpretend\b|\bact as\b|\brole[- ]?play\b|\bjailbreak\b|\bdeveloper mode\b",
    r"\bsystem prompt\b|\bsystem message\b",
    r"\b(no|without|don'?t|do not)\s+(need\s+to\s+)?(cite|citing|citations?|sources?)\b",
)

_FABRICATE_PATTERNS: tuple[str, ...] = (
    # Fabrication asked of the assistant ("你给我编造…", "请虚构一条…") or of rule text ("捏造一条规定").
    # Fabrication that someone else did (有人捏造事实诬告我, 伪造证据) is a topic the rules govern.
    r"(你|您|请|帮我|帮忙|给我|替我|麻烦|能不能|可不可以)[^。？！?!]{0,12}(编造|杜撰|捏造|虚构|瞎编|胡编|伪造|冒充|假称|谎称)",
    r"(编造|杜撰|捏造|虚构|瞎编|胡编|伪造)[^。？！?!]{0,8}(条文|条款|原文|原话|规定|出处|条号)",
    r"编(一|几)(条|段|个|句)",
    r"(起草|拟定|拟写|草拟|撰写|写|编|拟)(一|几)?(条|段|个|款)?.{0,24}(条款|条文|原文|规定条文)",
    r"就说(是|成|这|这篇|它|这是)?.{0,20}(规定|原文|原话|讲的|说的|写的)",
    r"当(作|成)?(原文|原话|条文)",
    r"(带上|加上|标上|编上|配上)(一个)?(条号|条文号)",
    r"\b(make up|made[- ]up|fabricate|invent)\b",
    r"\bdraft\b.{0,30}\b(rule|clause|article|regulation)\b",
)

_OVERRIDE_RE = [re.compile(p, re.IGNORECASE) for p in _OVERRIDE_PATTERNS]
_FABRICATE_RE = [re.compile(p, re.IGNORECASE) for p in _FABRICATE_PATTERNS]
_SENTENCE_SPLIT = re.compile(r"(?<=[。！？!?；;\n])|(?<=\.\s)|(?=【)|(?<=】)")
_CJK_OR_WORD = re.compile(r"[\u4e00-\u9fff]|[A-Za-z]{2,}")


@dataclass
class InjectionCheck:
    """What the question tries to do besides asking."""

    override: list[str] = field(default_factory=list)  # matched manipulation fragments
    fabricate: list[str] = field(default_factory=list)  # requests to invent / pass off rule text
    remainder: str = ""  # the question without the manipulating sentences

    @property
    def detected(self) -> bool:
        return bool(self.override or self.fabricate)


def _matches(patterns: list[re.Pattern[str]], text: str) -> list[str]:
    found: list[str] = []
    for pattern in patterns:
        m = pattern.search(text)
        if m:
            found.append(m.group(0))
    return found


def check_injection(question: str) -> InjectionCheck:
    """Detect manipulation in ``question``; ``remainder`` keeps only the innocent sentences."""
    check = InjectionCheck(
        override=_matches(_OVERRIDE_RE, question),
        fabricate=_matches(_FABRICATE_RE, question),
    )
    if not check.detected:
        check.remainder = question
        return check
    kept: list[str] = []
    for piece in _SENTENCE_SPLIT.split(question):
        if not piece.strip():
            continue
        if _matches(_OVERRIDE_RE, piece) or _matches(_FABRICATE_RE, piece):
            continue
        kept.append(piece)
    remainder = "".join(kept).strip()
    # Too little left to be a question of its own.
    if len(_CJK_OR_WORD.findall(remainder)) < 4:
        remainder = ""
    check.remainder = remainder
    return check
