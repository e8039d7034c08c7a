"""False premises: an article or item the named document does not have is said to be absent.

Fast: real embedded Chroma with the hashing embedder (the checks read the library's article
structure, not similarity).
"""

from __future__ import annotations

import pytest
from hashing_embeddings import HashingEmbeddings

from assistant.config import Settings
from assistant.pipeline import Assistant
from assistant.service import build_assistant


@pytest.fixture(scope="module")
def assistant(hashed_settings: Settings, hashing_embeddings: HashingEmbeddings) -> Assistant:
    return build_assistant(hashed_settings, hashing_embeddings)


def test_article_beyond_the_document_is_absent_with_its_range(assistant: Assistant) -> None:
    library = assistant.index.current()
    info = next(i for i in library.docs.values() if i.title.endswith("公务员法"))
    result = assistant.run("公务员法第三百零一条规定了什么？")
    assert result.reason == "no_article" and result.answer.declined
    assert result.answer.outcome == "refusal" and not result.answer.citations
    count = max(_number(label) for label in info.articles)
    assert f"共{count}条，没有您问的这一条" in result.answer.text
    assert "第三百零一条" not in result.answer.text  # no label that no citation carries


def test_existing_article_is_answered(assistant: Assistant) -> None:
    result = assistant.run("公务员法第六十二条规定了什么？")
    assert result.reason == "answered" and not result.answer.declined
    assert any(c.article == "第六十二条" for c in result.answer.citations)


def test_missing_item_is_denied_and_the_article_quoted(assistant: Assistant) -> None:
    # 第六十二条 lists the six kinds inline, without items: there is no 第七项.
    result = assistant.run("公务员法第六十二条第七项规定了通报批评这种处分，对吧？")
    assert result.reason == "no_item" and result.answer.declined
    assert result.answer.outcome == "related"
    assert result.answer.text.startswith("不是。") and "第六十二条没有分项，没有第七项" in result.answer.text
    assert any(c.article == "第六十二条" for c in result.answer.citations)


def test_item_within_range_is_not_denied(assistant: Assistant) -> None:
    library = assistant.index.current()
    info = next(i for i in library.docs.values() if i.title.endswith("公务员法"))
    text = "\n".join(library.chunks[i].page_content for i in info.articles["第五十九条"])
    assert "（二）" in text  # 第五十九条 enumerates what a civil servant must not do
    result = assistant.run("公务员法第五十九条第二项是什么？")
    assert result.reason != "no_item"


def _number(label: str) -> int:
    from assistant.text import article_number

    return article_number(label) or 0


def test_claimed_text_the_library_lacks_is_named(assistant: Assistant) -> None:
    claim = "公务员可以在企业兼职并领取报酬"
    answer = assistant.ask(f"公务员法是不是规定了“{claim}”？")
    assert answer.text.startswith(f"经核对，资料库原文中没有“{claim}”这句话。")
    assert answer.notices[0].startswith("经核对")
    pieces = list(assistant.stream(f"公务员法是不是规定了“{claim}”？"))
    assert "".join(p for p in pieces if isinstance(p, str)).startswith("经核对")


def test_claimed_text_the_library_holds_is_not_flagged(assistant: Assistant) -> None:
    answer = assistant.ask("公务员法里是不是有“处分分为：警告、记过、记大过、降级、撤职、开除”这句？")
    assert "经核对" not in answer.text


@pytest.mark.parametrize(
    "question",
    [
        "纪律处分条例第三条说的是什么？",
        "公务员法第六十二条是怎么规定的？",
        "《中国共产党组织处理规定（试行）》第七条的内容",
    ],
)
def test_asking_what_an_article_says_quotes_that_article_alone(assistant: Assistant, question: str) -> None:
    answer = assistant.ask(question)
    label = question.split("第", 1)[1].split("条", 1)[0]
    assert not answer.declined and answer.citations
    assert {c.article for c in answer.citations} == {f"第{label}条"}


def test_a_question_beyond_the_named_article_is_not_cut_to_it() -> None:
    from assistant.question import asks_only_article

    assert asks_only_article("监察法第十二条第三款讲的什么？")
    assert not asks_only_article("纪律处分条例第十七条说从轻处分，那减轻处分呢？")
    assert not asks_only_article("问责条例第七条规定了哪几种问责方式？")
    assert not asks_only_article("党纪处分有哪几种？")  # no article named


@pytest.mark.parametrize(
    ("question", "asked"),
    [
        ("2018年版的纪律处分条例里，第八条是怎么写的？", "2018"),  # a version not held
        ("公务员法2005年版跟现在的有什么不同？", "2005"),
        ("纪律处分条例2023年修订以后，处分有几种？", None),  # the held version, by its year
        ("公务员法2019年6月1日施行以后，辞退怎么规定？", None),  # no version named
        ("2018年的监察法和2024年修正的监察法有什么区别？", None),  # both versions are held
    ],
)
def test_version_the_library_does_not_hold(assistant: Assistant, question: str, asked: str | None) -> None:
    result = assistant.run(question)
    if asked is None:
        assert result.reason != "missing"
        return
    assert result.reason == "missing" and result.answer.declined and not result.answer.citations
    assert f"未收录{asked}年版" in result.answer.text
    assert ("无法比较两版" in result.answer.text) == ("不同" in question)  # only a comparison is told so


def test_a_numbered_term_the_library_only_names_is_declined_with_the_passage(assistant: Assistant) -> None:
    # The speech names “六有六不” once, in a sentence that never lists the six.
    result = assistant.run("讲话里说的“六有六不”，具体是哪六有、哪六不？")
    assert result.answer.declined and result.answer.outcome == "related"
    assert "只提到“六有六不”，没有逐项列出它具体指哪六项" in result.answer.text
    assert any("六有六不" in c.quote for c in result.answer.citations)


def test_a_numbered_term_the_library_lists_is_answered(assistant: Assistant) -> None:
    from assistant.named_terms import asked_term, spelled_out

    # 纪律处分条例第五条 names the “四种形态” and lists the four, separated by ；.
    question = "纪律处分条例里的“四种形态”，具体是哪四种？"
    library = assistant.index.current()
    info = next(i for i in library.docs.values() if i.title == "中国共产党纪律处分条例")
    article = [library.chunks[i].page_content for i in info.articles["第五条"]]
    asked = asked_term(question)
    assert asked is not None and asked.count == 4 and spelled_out(asked, article)
    result = assistant.run(question)
    assert "没有逐项列出" not in result.answer.text
