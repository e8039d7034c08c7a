"""The hybrid retriever over the real library, real model and real Chroma.

Questions here are written for the tests (not taken from the eval sets).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from langchain_core.documents import Document

from assistant.references import ArticleRef, match_titles, mentioned_titles, parse_references, title_aliases
from assistant.retrieval import HybridRetriever, build_retriever
from assistant.schema import STATUS_CURRENT
from assistant.service import open_library
from assistant.store import view_parent_id
from assistant.text import article_label, article_number
from assistant.tokenizer import DomainTokenizer
from ingest.views import view_id

DISCIPLINE = "中国共产党纪律处分条例_2023.md"
CIVIL_SERVANT = "中华人民共和国公务员法_2018.md"
SUPERVISION_2018 = "中华人民共和国监察法_2018.md"
SUPERVISION_2024 = "中华人民共和国监察法_2024.md"
ACCOUNTABILITY_2016 = "中国共产党问责条例_2016旧版.md"


@pytest.fixture(scope="module")
def retriever(ingested_settings: Any, embeddings: Any) -> HybridRetriever:
    return make_retriever(ingested_settings, embeddings)


def make_retriever(settings: Any, embeddings: Any) -> HybridRetriever:
    return build_retriever(settings.retrieval, embeddings, open_library(settings, embeddings))


def _files(docs: list[Document]) -> list[str]:
    return [str(d.metadata["file"]) for d in docs]


def _where(docs: list[Document], file: str, article: str) -> int | None:
    for rank, d in enumerate(docs):
        if d.metadata["file"] == file and d.metadata["article"] == article:
            return rank
    return None


# ------------------------------------------------------------ tokenisation


def test_userdict_keeps_domain_terms_whole(repo_root: Path) -> None:
    tok = DomainTokenizer(repo_root / "corpus" / "userdict.txt")
    words = tok.tokenize("建立容错纠错机制，落实三个区分开来，严肃查处诬告陷害并及时澄清正名")
    for term in ("容错纠错", "三个区分开来", "诬告陷害", "澄清正名"):
        assert term in words
    assert "的" not in tok.tokenize("干部的留党察看处分")
    assert "留党察看" in tok.tokenize("干部的留党察看处分")


def test_private_tokenizer_leaves_global_jieba_alone(repo_root: Path) -> None:
    import jieba

    DomainTokenizer(repo_root / "corpus" / "userdict.txt").tokenize("容错纠错")
    assert "三个区分开来" not in jieba.lcut("落实三个区分开来")


def test_missing_dictionary_still_tokenises(tmp_path: Path) -> None:
    words = DomainTokenizer(tmp_path / "none.txt").tokenize("公务员的试用期")
    assert "公务员" in words and "的" not in words


# -------------------------------------------------------------- references


@pytest.mark.parametrize(
    ("text", "article", "hint"),
    [
        ("纪律处分条例第八条讲什么", "第八条", "纪律处分条例"),
        ("问责条例第七条", "第七条", "问责条例"),
        ("《中华人民共和国监察法》第十五条规定了什么", "第十五条", "《中华人民共和国监察法》"),
        ("监察法第15条", "第十五条", "监察法"),
        ("第一百一十条是什么内容", "第一百一十条", None),
    ],
)
def test_parse_references(text: str, article: str, hint: str | None) -> None:
    refs = parse_references(text)
    assert [r.article for r in refs] == [article]
    assert refs[0].doc_hint == hint


def test_article_numbers_round_trip() -> None:
    for n in (1, 10, 11, 20, 100, 101, 110, 119, 158):
        assert article_number(article_label(n)) == n
        assert article_number(f"第{n}条") == n
    assert article_label(110) == "第一百一十条"
    assert article_label(102) == "第一百零二条"
    assert article_number("第几条") is None


def test_parse_reference_list_shares_the_name() -> None:
    refs = parse_references("公务员法第八十二条、第八十三条和政务处分法第15条")
    assert [(r.doc_hint, r.article) for r in refs] == [
        ("公务员法", "第八十二条"),
        ("公务员法", "第八十三条"),
        ("和政务处分法", "第十五条"),
    ]
    assert isinstance(refs[0], ArticleRef)


def test_short_names_match_library_titles(retriever: HybridRetriever) -> None:
    titles = list(retriever.index.current().titles)
    cases = {
        "纪律处分条例": "中国共产党纪律处分条例",
        "处分条例": "中国共产党纪律处分条例",
        "政务处分法": "中华人民共和国公职人员政务处分法",
        "公务员法": "中华人民共和国公务员法",
        "监督执纪工作规则": "中国共产党纪律检查机关监督执纪工作规则",
        "检举控告工作规则": "纪检监察机关处理检举控告工作规则",
        "组织处理规定": "中国共产党组织处理规定（试行）",
    }
    for hint, title in cases.items():
        assert match_titles(hint, titles) == [title], hint
    assert len(match_titles("监察法", titles)) == 2  # both versions
    assert match_titles("问责条例", titles)[0].startswith("中国共产党问责条例")
    assert match_titles("劳动合同法", titles) == []
    assert mentioned_titles("公务员法和政务处分法都有规定吗", titles) == [
        t for t in titles if t in ("中华人民共和国公务员法", "中华人民共和国公职人员政务处分法")
    ]


def test_mentioned_titles_equals_a_scan_of_every_alias(retriever: HybridRetriever) -> None:
    """The indexed finder (aliases keyed by their first two characters) finds exactly the titles
    whose aliases a plain scan finds, in the titles' order, also among thousands of titles."""
    titles = list(retriever.index.current().titles)
    many = (
        titles
        + [f"{t}（第{i}号）" for i in range(300) for t in titles]
        + [f"关于{i}的暂行办法" for i in range(500)]
    )
    texts = [
        "公务员法和政务处分法都有规定吗",
        "依据处分条例第八条，监察法怎么说？问责条例呢",
        "关于12的暂行办法第三条",
        "没有提到任何文件",
        "法",
        "",
        "组织处理规定（试行）和监督执纪工作规则",
    ]
    for pool in (titles, many, list(reversed(many))):
        for text in texts:
            plain = [t for t in pool if any(alias in text for alias in title_aliases(t))]
            assert mentioned_titles(text, pool) == plain, text
    assert mentioned_titles("关于12的暂行办法第三条", many)  # the large pool does find something


def test_a_view_record_id_names_its_chunk() -> None:
    assert view_parent_id(view_id("doc-1:7", 3)) == "doc-1:7"
    assert view_parent_id("doc-1:7") == ""  # a primary chunk's id
    assert view_parent_id("a#vx") == "" and view_parent_id("a#v") == ""


# --------------------------------------------------------------- retrieval


def test_result_shape_and_k_override(retriever: HybridRetriever) -> None:
    docs = retriever.invoke("党员受到严重警告处分后多久不能被提拔")
    assert len(docs) == retriever.k == 5
    for d in docs:
        meta = d.metadata
        for key in (
            "chunk_id",
            "score",
            "dense_score",
            "bm25_score",
            "file",
            "title",
            "article",
            "status",
            "start",
            "end",
        ):
            assert key in meta, key
        assert -1.0 <= meta["dense_score"] <= 1.0
    scores = [d.metadata["score"] for d in docs]
    assert scores == sorted(scores, reverse=True)
    assert len(retriever.invoke("党员受到严重警告处分后多久不能被提拔", k=8)) == 8
    assert retriever.invoke("   ") == []


def test_views_score_their_parent_chunk(retriever: HybridRetriever) -> None:
    index = retriever.index.current()
    assert len(index.view_parent) > 0 and index.fingerprint.count == len(index.chunks) + len(
        index.view_parent
    )
    # A view's own sentence as the question: its parent chunk comes back (never the view record),
    # ranked by the view's cosine; dense_score stays the cosine of the whole chunk.
    got = retriever.index.store.collection().get(
        where={"view": "window"}, include=["documents", "metadatas"], limit=1
    )
    sentence, parent_id = got["documents"][0], got["metadatas"][0]["parent_id"]
    docs = retriever.invoke(sentence)
    assert all("#v" not in d.metadata["chunk_id"] and d.metadata.get("view") != "window" for d in docs)
    assert all(d.metadata["view_score"] >= d.metadata["dense_score"] for d in docs)
    top = docs[0].metadata
    assert top["chunk_id"] == parent_id
    assert top["view_score"] > top["dense_score"]
    assert sentence in docs[0].page_content
    # Each returned chunk carries its views' cosines with where they lie in its text: the best one
    # is that sentence, and it is the cosine the chunk was ranked by.
    start, end, cosine = max(top["view_hits"], key=lambda hit: hit[2])
    assert docs[0].page_content[start:end] == sentence
    assert abs(cosine - top["view_score"]) < 1e-4


def test_views_can_be_switched_off(ingested_settings: Any, embeddings: Any) -> None:
    settings = ingested_settings.model_copy(deep=True)
    settings.retrieval.view_weight = 0.0
    plain = make_retriever(settings, embeddings)
    docs = plain.invoke("干部干事创业的积极性怎么调动起来")
    assert docs and all(d.metadata["view_score"] == d.metadata["dense_score"] for d in docs)


def test_explicit_reference_comes_first(retriever: HybridRetriever) -> None:
    docs = retriever.invoke("纪律处分条例第八条讲什么")
    top = docs[0].metadata
    assert (top["file"], top["article"], top["match"]) == (DISCIPLINE, "第八条", "reference")


def test_arabic_reference_prefers_current_version(retriever: HybridRetriever) -> None:
    docs = retriever.invoke("监察法第15条是怎么规定的")
    assert (docs[0].metadata["file"], docs[0].metadata["article"]) == (SUPERVISION_2024, "第十五条")


def test_reference_with_year_picks_that_version(retriever: HybridRetriever) -> None:
    docs = retriever.invoke("2018年监察法第十五条是怎么规定的")
    assert (docs[0].metadata["file"], docs[0].metadata["article"]) == (SUPERVISION_2018, "第十五条")


def test_reference_without_name_uses_the_document_named_elsewhere(retriever: HybridRetriever) -> None:
    docs = retriever.invoke("第八十二条讲的是什么？我在看公务员法")
    assert (docs[0].metadata["file"], docs[0].metadata["article"]) == (CIVIL_SERVANT, "第八十二条")


def test_paraphrase_about_overtime(retriever: HybridRetriever) -> None:
    docs = retriever.invoke("公务员节假日被单位叫去上班，事后能调休或者拿补贴吗？")
    assert _where(docs, CIVIL_SERVANT, "第八十二条") is not None, _files(docs)


def test_current_supervision_law_is_preferred(retriever: HybridRetriever) -> None:
    docs = retriever.invoke("监察机关采取留置措施要经过什么审批？")
    files = _files(docs)
    assert SUPERVISION_2024 in files[:2]
    assert SUPERVISION_2018 not in files[:3]


def test_old_supervision_law_when_asked(retriever: HybridRetriever) -> None:
    docs = retriever.invoke("2018年的监察法对留置措施是怎么规定审批的？")
    assert docs[0].metadata["file"] == SUPERVISION_2018
    assert docs[0].metadata["status"] != STATUS_CURRENT


def test_repealed_accountability_rules_only_when_relevant(retriever: HybridRetriever) -> None:
    general = retriever.invoke("党员受到留党察看处分期间有没有表决权和选举权？")
    assert ACCOUNTABILITY_2016 not in _files(general)
    asked = retriever.invoke("旧版问责条例第七条规定了哪些问责方式？")
    assert (asked[0].metadata["file"], asked[0].metadata["article"]) == (ACCOUNTABILITY_2016, "第七条")
    assert asked[0].metadata["status"] != STATUS_CURRENT


def test_index_follows_the_collection(
    settings: Any, embeddings: Any, library_dir: Path, tmp_path: Path
) -> None:
    from ingest.indexer import run_ingest

    lib = tmp_path / "lib"
    lib.mkdir()
    shutil.copy(library_dir / "中国共产党组织处理规定_试行.md", lib)
    settings.ingest.library_dirs = [lib]
    retriever = make_retriever(settings, embeddings)
    assert retriever.invoke("组织处理") == []  # empty store: nothing, no error
    run_ingest(settings, embeddings, progress=False)
    assert {d.metadata["file"] for d in retriever.invoke("组织处理有哪些方式")} == {
        "中国共产党组织处理规定_试行.md"
    }
    shutil.copy(library_dir / "中国共产党问责条例_2016旧版.md", lib)
    run_ingest(settings, embeddings, progress=False)
    docs = retriever.invoke("问责条例第七条")
    assert (docs[0].metadata["file"], docs[0].metadata["article"]) == (ACCOUNTABILITY_2016, "第七条")
