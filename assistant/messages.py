"""Every sentence the assistant says to a user in its own words (not quoted from the sources).

Kept in one place so that wording is reviewed together and stays consistent between
the extractive and generative answerers, the decline policy and the UI.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from assistant.text import int_to_chinese

DECLINE_TEXT = "资料库中没有找到能回答这个问题的依据，无法作答。"
# The "related only" outcome: a decline that still shows the nearest articles.
RELATED_ONLY = "资料库没有直接规定这个问题，无法作答；相关的条文是（仅供参考，并不直接回答所问）："


def related_only(what: str, unsure: str = "") -> str:
    """The opening of a related-only answer. ``what``: the kinds of fact the sources lack;
    ``unsure``: kinds they state, but not in words that show they apply to the question."""
    if unsure and not what:
        return (
            f"资料库没有直接规定这个问题：相关原文中有关于{unsure}的规定，但从原文看不出它适用于所问的情形，"
            "我不能推测或编造，无法作答；相关的条文是（仅供参考，请对照原文判断是否适用）："
        )
    if not what:
        return RELATED_ONLY
    return f"资料库没有直接规定这个问题（相关原文中没有关于{what}的内容，我不能推测或编造），无法作答；相关的条文是（仅供参考，并不直接回答所问）："


def named_only(term: str, count: int) -> str:
    """The opening of a related-only answer to "which N are they" when the sources name the
    numbered term but never list its items."""
    named = (
        f"资料库只提到“{term}”，没有逐项列出它具体指哪{int_to_chinese(count)}项"
        if term
        else f"资料库没有逐项列出所问的{int_to_chinese(count)}项"
    )
    return f"{named}，我不能推测或编造，无法作答；相关的原文是（仅供参考，并不直接回答所问）："


INJECTION_TEXT = (
    "这个问题中含有要求我忽略资料来源、改变身份、不加引用或编造、冒充条文的内容，我不会照做："
    "我只依据资料库中的原文作答，所有引文都注明出处，不编造条文、条号或引语。"
)
INJECTION_PREFIX = INJECTION_TEXT + "\n以下仅就问题中正当的部分，依据资料库原文作答：\n"
INJECTION_NOTICE = "已忽略问题中要求改变回答规则的内容。"
EMPTY_QUESTION = "请输入问题。"
LLM_UNAVAILABLE = "生成模型暂不可用，已改用原文摘录作答"


def question_too_long(length: int, limit: int) -> str:
    return f"问题过长（{length}字，上限{limit}字），请精简后再问。"


def short_title(title: str) -> str:
    """Drop the explanatory tail of a bracket: 问责条例（2016年版，已由…取代） → 问责条例（2016年版）."""

    def _first(m: re.Match[str]) -> str:
        inner = re.split(r"[，,；;—]", m.group(1))[0].strip()
        return f"（{inner}）" if inner else ""

    return re.sub(r"[（(]([^）)]*)[）)]", _first, title).strip()


def nearest_titles(titles: Iterable[str], limit: int = 3) -> str:
    """资料库中与此最接近的文件有：《…》、《…》。 ("" when there are none)."""
    shown: list[str] = []
    for title in titles:
        label = f"《{short_title(title)}》"
        if label != "《》" and label not in shown:
            shown.append(label)
    if not shown:
        return ""
    return "资料库中与此最接近的文件有：" + "、".join(shown[:limit]) + "。"


def missing_document(display: str, note: str, nearest: str) -> str:
    note = note.rstrip("。") + "。" if note else ""
    return f"{DECLINE_TEXT}资料库未收录{display}，无法提供或推测其内容。{note}{nearest}"


def unheld_version(title: str, year: str, held: list[str], compares: bool, nearest: str) -> str:
    versions = "、".join(f"{y}年版" for y in held if y) or "另一版本"
    both = "，也无法比较两版的异同" if compares else ""
    return (
        f"{DECLINE_TEXT}资料库只收录了《{title}》的{versions}，未收录{year}年版，"
        f"无法提供或推测{year}年版的内容{both}。{nearest}"
    )


def missing_in_injection(display: str) -> str:
    return f"资料库未收录{display}，无法提供其内容。"


def unsupported_facts(what: str, nearest: str) -> str:
    return f"{DECLINE_TEXT}检索到的相关原文中没有关于{what}的内容，我不能推测或编造。{nearest}"


def no_such_article(title: str, count: int) -> str:
    # No article label here: a label no citation carries would read as an invented reference.
    return (
        f"资料库中的《{short_title(title)}》共{count}条，没有您问的这一条（条号超出了范围），"
        f"无法回答。请核对条号后再问。"
    )


def no_such_item(title: str, label: str, item: str, count: int) -> str:
    has = f"只列了{count}项" if count else "没有分项"
    return f"不是。资料库中的《{short_title(title)}》{label}{has}，没有{item.strip()}。这一条的原文是："


def claim_not_found(claim: str) -> str:
    return f"经核对，资料库原文中没有“{claim}”这句话。"


def status_notice(title: str, repealed: bool, successor: str, *, held: bool = True) -> str:
    """注意：《…》已废止/已被修正，现行为…。"""
    verb = "已废止" if repealed else "已被修正"
    # The successor's own bracket note (e.g. "本库未收录") would read as a refusal of the question.
    tail = f"，现行为{short_title(successor)}" if successor else ""
    if successor and not held:
        tail += "（资料库中只有上面这份旧文本）"
    return f"注意：《{short_title(title)}》{verb}{tail}。以上引文仅供参考，请以现行文本为准。"


def fallback_note(why: str) -> str:
    """The line that opens an extractive answer standing in for a generated one."""
    return f"（{why}）"


def generated_bad_articles(articles: Iterable[str]) -> str:
    return f"生成的回答提到了资料中没有的条号（{'、'.join(articles)}），已改用原文摘录作答"


def generated_bad_refs(refs: Iterable[int]) -> str:
    return f"生成的回答引用了不存在的资料编号（{'、'.join(f'[{n}]' for n in refs)}），已改用原文摘录作答"


def generated_unverifiable(any_quotes: bool) -> str:
    why = "生成的回答中的引文都无法在原文中核实" if any_quotes else "生成的回答中没有可以核实的原文引用"
    return f"{why}，已改用原文摘录作答"


def quotes_removed(count: int) -> str:
    return f"已删除{count}处无法在资料原文中逐字核实的引文。"


REMOVED_QUOTE = "〔无法核实的引文已删除〕"
