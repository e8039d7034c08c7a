"""Chunking of the real library and of small synthetic documents (no model needed)."""

from __future__ import annotations

import hashlib
import os
import re
import tomllib
from pathlib import Path

import pytest

from assistant.config import IngestSettings
from assistant.schema import CHUNK_METADATA_KEYS
from assistant.text import article_number, chinese_to_int
from ingest.chunking import Chunk, chunk_document, chunk_id
from ingest.loaders import LoadedDocument, discover_files, doc_id_for, load_file

REPO = Path(__file__).resolve().parents[1]
LIBRARY = Path(
    os.environ.get("POLICY_TEST_LIBRARY") or Path(__file__).resolve().parents[2] / "shared" / "corpus"
)
CATALOGUE = REPO / "corpus" / "catalogue.toml"

needs_library = pytest.mark.skipif(not LIBRARY.is_dir(), reason=f"document library not found at {LIBRARY}")


def _catalogue() -> dict[str, dict[str, object]]:
    with CATALOGUE.open("rb") as fh:
        data = tomllib.load(fh)
    return {entry["file"]: entry for entry in data["document"]}


def _library_chunks() -> dict[str, tuple[LoadedDocument, list[Chunk]]]:
    settings = IngestSettings()
    result: dict[str, tuple[LoadedDocument, list[Chunk]]] = {}
    for path in discover_files([LIBRARY], settings):
        doc = load_file(path, settings)
        result[doc.file] = (doc, chunk_document(doc, settings))
    return result


@pytest.fixture(scope="module")
def library() -> dict[str, tuple[LoadedDocument, list[Chunk]]]:
    if not LIBRARY.is_dir():
        pytest.skip(f"document library not found at {LIBRARY}")
    return _library_chunks()


def _doc(text: str, file: str = "测试文件.md", **metadata: str) -> LoadedDocument:
    meta = {"title": "测试文件", "issuer": "", "date": "", "status": "现行", "superseded_by": "", "kind": ""}
    meta.update(metadata)
    return LoadedDocument(
        path=Path(file),
        file=file,
        doc_id=doc_id_for(file),
        text=text,
        metadata=meta,
        encoding="utf-8",
        content_hash=hashlib.sha256(text.encode()).hexdigest(),
    )


def _articles_in_order(chunks: list[Chunk]) -> list[str]:
    labels: list[str] = []
    for chunk in chunks:
        label = str(chunk.metadata["article"])
        if label and (not labels or labels[-1] != label):
            labels.append(label)
    return labels


# --- numerals -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("numeral", "value"),
    [("一", 1), ("十", 10), ("十三", 13), ("二十", 20), ("六十九", 69), ("一百", 100), ("一百零五", 105),
     ("一百〇五", 105), ("一百一十三", 113), ("一百五十八", 158), ("两千零一", 2001)],
)  # fmt: skip
def test_chinese_to_int(numeral: str, value: int) -> None:
    assert chinese_to_int(numeral) == value


def test_article_number_rejects_other_text() -> None:
    assert article_number("第一百五十八条") == 158
    assert article_number("第一章") is None
    with pytest.raises(ValueError):
        chinese_to_int("十A")


# --- the real library ------------------------------------------------------------------------


@needs_library
def test_catalogue_lists_every_library_file(library: dict[str, tuple[LoadedDocument, list[Chunk]]]) -> None:
    catalogue = _catalogue()
    assert set(catalogue) == set(library)
    for file, (doc, _) in library.items():
        assert doc.metadata["status"] == catalogue[file]["status"], file
        assert doc.metadata["superseded_by"] == catalogue[file]["superseded_by"], file


@needs_library
def test_rule_documents_have_every_article_in_order(
    library: dict[str, tuple[LoadedDocument, list[Chunk]]],
) -> None:
    catalogue = _catalogue()
    for file, (_, chunks) in library.items():
        expected = catalogue[file]["expected_articles"]
        assert isinstance(expected, int)
        labels = _articles_in_order(chunks)
        assert [article_number(label) for label in labels] == list(range(1, expected + 1)), file
        # Each article is one chunk, or consecutive parts 0, 1, 2 … of one article.
        for label in labels:
            parts = [c.metadata["part"] for c in chunks if c.metadata["article"] == label]
            assert parts == list(range(len(parts))), (file, label)


@needs_library
def test_chunks_are_verbatim_and_complete(library: dict[str, tuple[LoadedDocument, list[Chunk]]]) -> None:
    keys = set(CHUNK_METADATA_KEYS) - {"embedding_model"}
    for file, (doc, chunks) in library.items():
        assert chunks, file
        previous_end = 0
        for index, chunk in enumerate(chunks):
            start, end = chunk.metadata["start"], chunk.metadata["end"]
            assert isinstance(start, int) and isinstance(end, int)
            assert chunk.text == doc.text[start:end], (file, index)
            assert chunk.text == chunk.text.strip() and chunk.text
            assert start >= previous_end, (file, index)  # in document order, no overlap
            previous_end = end
            assert set(chunk.metadata) == keys
            assert all(isinstance(v, str | int) for v in chunk.metadata.values())
            assert chunk.metadata["chunk_index"] == index
            assert chunk.metadata["content_hash"] == doc.content_hash
            assert chunk.metadata["file"] == file and chunk.metadata["doc_id"] == doc.doc_id
            assert chunk.metadata["status"] == doc.metadata["status"]
            assert chunk.embed_text.endswith("\n" + chunk.text)
            header = chunk.embed_text[: -len(chunk.text) - 1]
            assert header.startswith(doc.metadata["title"])
            if chunk.metadata["article"]:
                assert header.endswith(" / " + str(chunk.metadata["article"]))
        _assert_nothing_lost(doc, chunks)


def _assert_nothing_lost(doc: LoadedDocument, chunks: list[Chunk]) -> None:
    """Every non-blank character from the first chunk on is in a chunk or on a heading line."""
    covered = [False] * len(doc.text)
    for chunk in chunks:
        for i in range(int(chunk.metadata["start"]), int(chunk.metadata["end"])):
            covered[i] = True
    first = int(chunks[0].metadata["start"])
    for line_match in re.finditer(r"[^\n]+", doc.text[first:]):
        line = line_match.group()
        if re.match(r"^[#\s]*第[一二三四五六七八九十百零〇两]+[编章节]", line):
            continue
        for offset, ch in enumerate(line):
            if not ch.isspace():
                assert covered[first + line_match.start() + offset], (doc.file, line[:30])


@needs_library
def test_heading_paths_follow_the_chapters(library: dict[str, tuple[LoadedDocument, list[Chunk]]]) -> None:
    """Chapter numbers along the articles start at 第一章 and rise one by one (no 目录 headings)."""
    for file, (_, chunks) in library.items():
        chapters: list[int] = []
        for chunk in chunks:
            if not chunk.metadata["article"]:
                continue
            match = re.search(r"第([一二三四五六七八九十]+)章", str(chunk.metadata["heading_path"]))
            if match and (not chapters or chapters[-1] != chinese_to_int(match.group(1))):
                chapters.append(chinese_to_int(match.group(1)))
        if chapters:
            assert chapters == list(range(1, len(chapters) + 1)), file
    _, discipline = library["中国共产党纪律处分条例_2023.md"]
    paths = {str(c.metadata["heading_path"]) for c in discipline if c.metadata["article"]}
    assert all(
        re.match(r"第[一二三]编 \S+ / 第[一二三四五六七八九十]+章 \S+$|第三编 附则$", p) for p in paths
    )
    assert "第二编 分则 / 第九章 对违反群众纪律行为的处分" in paths


@needs_library
def test_speech_chunks_within_bounds(library: dict[str, tuple[LoadedDocument, list[Chunk]]]) -> None:
    settings = IngestSettings()
    for file in ("激励干部担当作为工作会议讲话.md", "关于进一步激励广大干部新时代新担当新作为的意见.md"):
        _, chunks = library[file]
        assert len(chunks) > 5
        for chunk in chunks:
            assert settings.min_chunk_chars <= len(chunk.text) <= settings.max_chunk_chars, (
                file,
                chunk.text[:30],
            )
            assert chunk.metadata["article"] == "" and chunk.metadata["part"] == 0
        # Sentences are never cut: every chunk but the last ends at a sentence end.
        for chunk in chunks[:-1]:
            assert chunk.text[-1] in "。！？；”", (file, chunk.text[-20:])
    _, speech = library["激励干部担当作为工作会议讲话.md"]
    paths = [str(c.metadata["heading_path"]) for c in speech]
    assert any(p.startswith("二、履行主体责任") and p.endswith(" / 规范选人用人") for p in paths)
    assert all(c.metadata["kind"] == "讲话" for c in speech)
    # A section heading line opens the first chunk of its section.
    assert any(c.text.startswith("三、切实躬身入局") for c in speech)


# --- synthetic documents ----------------------------------------------------------------------


def test_references_and_table_of_contents_are_not_structure() -> None:
    text = (
        "# 某某条例\n\n（2020年1月1日某某委员会第一次会议通过）\n\n目　　录\n\n第一章　总　　则\n\n第二章　处分\n\n"
        "第一章　总　　则\n\n"
        "第一条　为了规范工作，制定本条例。\n\n"
        "第二条　依照本条例第八条规定处理。\n第三条规定的情形除外。\n\n"
        "第二章　处分\n\n"
        "第三条 对违反本条例第一条、第二条规定的，给予处分。\n"
    )
    chunks = chunk_document(_doc(text), IngestSettings())
    assert _articles_in_order(chunks) == ["第一条", "第二条", "第三条"]
    by_article = {c.metadata["article"]: c for c in chunks}
    assert by_article["第一条"].metadata["heading_path"] == "第一章 总则"
    assert by_article["第二条"].text.endswith("第三条规定的情形除外。")
    assert by_article["第三条"].metadata["heading_path"] == "第二章 处分"
    preamble = chunks[0]
    assert preamble.metadata["article"] == "" and "目　　录" in preamble.text


def test_long_article_is_split_at_paragraphs() -> None:
    paragraphs = [f"（{n}）" + "这是一段很长的款项内容，用来测试按款拆分。" * 3 for n in "一二三四五六"]
    text = (
        "第一章 总则\n\n第一条 下列情形应当处理：\n"
        + "\n".join(paragraphs)
        + "\n第二条 本条例自发布之日起施行。\n"
    )
    settings = IngestSettings(max_article_chars=120)
    chunks = chunk_document(_doc(text), settings)
    first = [c for c in chunks if c.metadata["article"] == "第一条"]
    assert len(first) > 1
    assert [c.metadata["part"] for c in first] == list(range(len(first)))
    for chunk in first:
        assert len(chunk.text) <= settings.max_article_chars
        assert chunk.text == text[int(chunk.metadata["start"]) : int(chunk.metadata["end"])]
        assert chunk.metadata["heading_path"] == "第一章 总则"
    joined = "\n".join(c.text for c in first)
    assert joined == text[int(first[0].metadata["start"]) : int(first[-1].metadata["end"])]


def test_prose_splits_at_sentences_and_topics() -> None:
    long_sentence = "要坚持把工作做实做细做到位，确保每一项任务都有人抓、有人管、有人落实。"
    text = (
        "同志们：\n"
        "一、提高认识\n"
        + long_sentence * 6
        + "\n二、狠抓落实\n"
        + "开场白说明这一部分的总体安排和基本要求。"
        + "规范选人用人。"
        + long_sentence * 4
        + "科学容错试错。"
        + long_sentence * 4
    )
    settings = IngestSettings(min_chunk_chars=60, max_chunk_chars=160)
    chunks = chunk_document(_doc(text, kind="讲话"), settings)
    for chunk in chunks:
        assert len(chunk.text) <= settings.max_chunk_chars
        assert chunk.text == text[int(chunk.metadata["start"]) : int(chunk.metadata["end"])]
        assert chunk.text.endswith(("。", "：")) or chunk is chunks[-1]
    paths = [c.metadata["heading_path"] for c in chunks]
    assert "二、狠抓落实 / 规范选人用人" in paths and "二、狠抓落实 / 科学容错试错" in paths
    topic_chunk = next(c for c in chunks if c.metadata["heading_path"] == "二、狠抓落实 / 规范选人用人")
    assert topic_chunk.text.startswith("规范选人用人。")
    assert any(
        c.text.startswith("同志们：\n一、提高认识") or c.text.startswith("一、提高认识") for c in chunks
    )


def test_sentence_longer_than_max_is_cut() -> None:
    text = "，".join(["这是一个没有句号的超长句子片段"] * 40) + "。"
    settings = IngestSettings(min_chunk_chars=20, max_chunk_chars=100)
    chunks = chunk_document(_doc(text), settings)
    assert len(chunks) > 1
    assert all(len(c.text) <= 100 for c in chunks)
    assert "".join(c.text for c in chunks) == text


def test_chunk_id_is_stable_and_distinct() -> None:
    first = chunk_id("abc", 0, "第一条 内容")
    assert first == chunk_id("abc", 0, "第一条 内容")
    assert re.fullmatch(r"[0-9a-f]{24}", first)
    inner = hashlib.sha1("第一条 内容".encode()).hexdigest()
    assert first == hashlib.sha1(f"abc:0:{inner}".encode()).hexdigest()[:24]
    assert len({first, chunk_id("abc", 1, "第一条 内容"), chunk_id("abc", 0, "第一条 内容。")}) == 3


@needs_library
def test_generated_questions_point_at_existing_passages(
    library: dict[str, tuple[LoadedDocument, list[Chunk]]],
) -> None:
    """Every generated associated question (corpus/generated_questions) is placed: it names a
    catalogued document and one of its articles 第一条…第N条, or a heading whose chunks hold its
    quote; it is a short question and is not repeated; every article of a covered rule document
    has one."""
    from assistant.associated import AssociatedStore
    from ingest.views import associated_views

    catalogue = _catalogue()
    folder = REPO / "corpus" / "generated_questions"
    questions = AssociatedStore(REPO / "no-such.sqlite3", None, generated=folder, create=False).all()
    assert len(questions) >= 1000
    seen: set[tuple[str, str]] = set()
    covered: dict[str, set[int]] = {}
    for q in questions:
        assert q.file in catalogue and q.file in library, q.file
        assert 5 <= len(q.question) <= 80 and q.question[-1] in "？?", q.question
        assert (q.file, q.question) not in seen, q.question
        seen.add((q.file, q.question))
        if q.article:
            number = article_number(q.article)
            assert number is not None and 1 <= number <= int(catalogue[q.file]["expected_articles"]), q  # type: ignore[call-overload]
            covered.setdefault(q.file, set()).add(number)
    for file, numbers in covered.items():
        assert numbers == set(range(1, int(catalogue[file]["expected_articles"]) + 1)), file  # type: ignore[call-overload]
    # Ingest places every one of them (``ingest.views.associated_views``).
    for file, (_, chunks) in library.items():
        unplaced = [q for q in questions if q.file == file]
        for chunk in chunks:
            associated_views(chunk, unplaced)
        assert unplaced == [], (file, unplaced[:3])


def test_a_quote_places_a_heading_question_in_the_chunk_that_holds_it() -> None:
    from assistant.associated import AssociatedQuestion
    from ingest.views import associated_views

    paragraph = "干部队伍建设要持续推进，各级党组织要抓好落实。" * 4
    body = "一、总则\n\n" + "\n\n".join([paragraph] * 12) + "\n\n容错纠错要把握好界限。\n"
    chunks = chunk_document(_doc(body), IngestSettings(max_chunk_chars=800, min_chunk_chars=50))
    assert {c.metadata["heading_path"] for c in chunks} == {"一、总则"} and len(chunks) > 1
    quoted = AssociatedQuestion(
        "测试文件.md", "", "一、总则", "出了差错能容吗？", quote="容错纠错要把握好界限"
    )
    plain = AssociatedQuestion("测试文件.md", "", "一、总则", "总则讲了什么？")
    elsewhere = AssociatedQuestion("测试文件.md", "", "一、总则", "不存在的原文？", quote="没有这句话")
    unplaced = [quoted, plain, elsewhere]
    placed = {c.metadata["chunk_index"]: [q for q, _ in associated_views(c, unplaced)] for c in chunks}
    holder = next(c.metadata["chunk_index"] for c in chunks if "容错纠错要把握好界限" in c.text)
    assert placed[holder] == ["出了差错能容吗？"] and holder != chunks[0].metadata["chunk_index"]
    assert placed[chunks[0].metadata["chunk_index"]] == ["总则讲了什么？"]
    assert unplaced == [elsewhere]  # a quote found nowhere leaves the question unplaced
