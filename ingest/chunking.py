"""Chinese structure-aware splitting of a loaded document into chunks.

Rule documents (laws, regulations) become one chunk per article (条), with the
编/章/节 that contain it as ``heading_path``; a long article is split at its
款 (line) boundaries into parts. Documents without articles (speeches,
opinions) are split by their section headings (一、 / （一） / 1.), by short
topic sentences that open a sub-topic ("规范选人用人。"), by paragraphs, and
long paragraphs at sentence ends, into chunks of about
``min_chunk_chars``..``max_chunk_chars`` characters.

Every chunk's text is ``doc.text[start:end]`` verbatim: whitespace is trimmed
by moving the offsets, never by editing the text.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from assistant.config import IngestSettings
from assistant.schema import CHUNK_METADATA_KEYS
from assistant.text import CN_NUMERAL_CHARS, SENTENCE_CLOSERS, SENTENCE_END, split_sentences, trim_span
from ingest.loaders import LoadedDocument
from ingest.spans import Span, line_spans, pack, units_within

_WS = " \t\u3000\xa0"

# 第八条 at the start of a line, followed by a space or full-width space.
_ARTICLE_RE = re.compile(rf"^[{_WS}]*(第[{CN_NUMERAL_CHARS}]+条)[{_WS}]")
# "## 第一章 总则", "　　第一编 总则", "第八章　审  理", "第一节" (the name is optional).
_HEADING_RE = re.compile(
    rf"^[{_WS}]*(?:#+[{_WS}]*)?(第[{CN_NUMERAL_CHARS}]+([编章节]))(?:[{_WS}]+(.*?))?[{_WS}]*$"
)
_HEADING_RANK = {"编": 0, "章": 1, "节": 2}
_MAX_HEADING_NAME = 30

# Section headings of documents without articles: 一、 / （一） / 1.
_SECTION_RES: tuple[re.Pattern[str], ...] = (
    re.compile(r"^[一二三四五六七八九十]+、"),
    re.compile(r"^[（(][一二三四五六七八九十]+[）)]"),
    re.compile(r"^\d{1,2}[.．、](?!\d)"),
)
_MAX_SECTION_TITLE = 60

_TOPIC_MAX_CHARS = 8  # "规范选人用人。" (without its 。) opens a sub-topic inside a paragraph
_TOPIC_FORBIDDEN = '，,、：:；;“”"「」'
_PREAMBLE_MIN_CHARS = 20


@dataclass
class Chunk:
    text: str  # == doc.text[start:end], verbatim
    embed_text: str  # "title / heading_path / article\n" + text: what gets embedded
    metadata: dict[str, str | int]  # every key of CHUNK_METADATA_KEYS except embedding_model


def chunk_id(doc_id: str, chunk_index: int, text: str) -> str:
    """Stable chunk id: sha1(f"{doc_id}:{chunk_index}:{sha1(text)}")[:24]."""
    text_hash = hashlib.sha1(text.encode("utf-8")).hexdigest()
    return hashlib.sha1(f"{doc_id}:{chunk_index}:{text_hash}".encode()).hexdigest()[:24]


# --- rule documents: 编/章/节 and 条 ------------------------------------------------------------


@dataclass
class _Item:
    kind: str  # "article" | "heading"
    line_start: int
    start: int  # first non-blank character of the line
    line_end: int
    label: str  # 第八条 / 第一章 总则
    rank: int = -1  # 编 0, 章 1, 节 2 for headings


def _structure(text: str) -> list[_Item]:
    """Article and heading lines, in order. Headings that head no article (a 目录) are dropped."""
    items: list[_Item] = []
    pos = 0
    while pos <= len(text):
        nl = text.find("\n", pos)
        line_end = len(text) if nl == -1 else nl
        line = text[pos:line_end]
        first = trim_span(text, pos, line_end)[0]
        article = _ARTICLE_RE.match(line)
        heading = None if article else _HEADING_RE.match(line)
        if article:
            items.append(_Item("article", pos, first, line_end, article.group(1)))
        elif heading:
            name = re.sub(r"\s+", "", heading.group(3) or "")
            if len(name) <= _MAX_HEADING_NAME and not name.endswith(("。", "；", "，", "：")):
                label = f"{heading.group(1)} {name}".strip()
                items.append(_Item("heading", pos, first, line_end, label, _HEADING_RANK[heading.group(2)]))
        if nl == -1:
            break
        pos = nl + 1
    kept: list[_Item] = []
    for index, item in enumerate(items):
        if item.kind == "heading" and not _heads_an_article(items, index):
            continue
        kept.append(item)
    return kept


def _heads_an_article(items: list[_Item], index: int) -> bool:
    rank = items[index].rank
    for later in items[index + 1 :]:
        if later.kind == "article":
            return True
        if later.rank <= rank:
            return False
    return False


def _chunk_articles(
    doc: LoadedDocument, items: list[_Item], settings: IngestSettings
) -> list[tuple[Span, str, str, int]]:
    """(span, heading_path, article, part) for the preamble, text under headings, and articles."""
    text = doc.text
    pieces: list[tuple[Span, str, str, int]] = []

    def add_loose(start: int, end: int, heading_path: str) -> None:
        span = trim_span(text, start, end)
        body = re.sub(r"[#\s]", "", text[span[0] : span[1]])
        if len(body) >= _PREAMBLE_MIN_CHARS:
            for part in pack(
                units_within(text, line_spans(text, *span), settings.max_article_chars),
                settings.max_article_chars,
                settings.min_chunk_chars,
            ):
                pieces.append((part, heading_path, "", 0))

    add_loose(0, items[0].line_start, "")
    stack: dict[int, str] = {}
    for index, item in enumerate(items):
        next_start = items[index + 1].line_start if index + 1 < len(items) else len(text)
        if item.kind == "heading":
            stack = {rank: label for rank, label in stack.items() if rank < item.rank}
            stack[item.rank] = item.label
            add_loose(item.line_end, next_start, " / ".join(stack[r] for r in sorted(stack)))
            continue
        heading_path = " / ".join(stack[r] for r in sorted(stack))
        span = trim_span(text, item.start, next_start)
        if span[1] - span[0] <= settings.max_article_chars:
            pieces.append((span, heading_path, item.label, 0))
            continue
        units = units_within(text, line_spans(text, *span), settings.max_article_chars)
        for part, group in enumerate(pack(units, settings.max_article_chars, settings.min_chunk_chars)):
            pieces.append((group, heading_path, item.label, part))
    return pieces


# --- documents without articles -----------------------------------------------------------


def _section_heading(text: str, span: Span) -> tuple[int, str, bool] | None:
    """(level, title, heading_only) when the line opens a section (一、 / （一） / 1.)."""
    line = text[span[0] : span[1]]
    for level, pattern in enumerate(_SECTION_RES):
        if not pattern.match(line):
            continue
        if not any(ch in line[:-1] for ch in SENTENCE_END) and len(line) <= _MAX_SECTION_TITLE:
            return level, line.rstrip("。；;"), True
        first = split_sentences(text, *span)[0]
        title = text[first[0] : first[1]].rstrip(SENTENCE_END + SENTENCE_CLOSERS)
        if len(title) <= _MAX_SECTION_TITLE:
            return level, title, False
        return None
    return None


def _is_topic(text: str, sentence: Span) -> bool:
    body = text[sentence[0] : sentence[1]]
    return (
        body.endswith("。")
        and 2 <= len(body) - 1 <= _TOPIC_MAX_CHARS
        and not any(ch in body for ch in _TOPIC_FORBIDDEN)
    )


def _chunk_prose(doc: LoadedDocument, settings: IngestSettings) -> list[tuple[Span, str, str, int]]:
    """(span, heading_path, "", 0) for documents without articles."""
    text = doc.text
    max_chars, min_chars = settings.max_chunk_chars, settings.min_chunk_chars
    sections: dict[int, str] = {}
    topic = ""
    # Blocks of units sharing one heading path; glued holds indices of heading-line units.
    blocks: list[tuple[str, list[Span], set[int]]] = []

    def path() -> str:
        parts = [sections[level] for level in sorted(sections)]
        return " / ".join([*parts, topic] if topic else parts)

    def add(unit_spans: list[Span], glue_first: bool = False) -> None:
        current = path()
        if not blocks or blocks[-1][0] != current:
            blocks.append((current, [], set()))
        units, glued = blocks[-1][1], blocks[-1][2]
        if glue_first:
            glued.add(len(units))
        units.extend(unit_spans)

    for line in line_spans(text):
        heading = _section_heading(text, line)
        if heading is not None:
            level, title, heading_only = heading
            sections = {lv: t for lv, t in sections.items() if lv < level}
            sections[level] = title
            topic = ""
            if heading_only:
                add([line], glue_first=True)
                continue
        sentences = split_sentences(text, *line)
        # Split the paragraph where a short topic sentence opens a sub-topic with enough text.
        cuts = [
            i
            for i, sentence in enumerate(sentences)
            if _is_topic(text, sentence) and sentence[1] < line[1] and line[1] - sentence[1] >= min_chars
        ]
        bounds = [0, *[c for c in cuts if c > 0], len(sentences)]
        for a, b in zip(bounds, bounds[1:], strict=False):
            if a in cuts:
                topic = text[sentences[a][0] : sentences[a][1]].rstrip("。")
            span = (sentences[a][0], sentences[b - 1][1])
            add(units_within(text, [span], max_chars))

    pieces: list[tuple[Span, str, str, int]] = []
    for heading_path, units, glued in blocks:
        for group in pack(units, max_chars, min_chars, glued):
            pieces.append((group, heading_path, "", 0))
    return pieces


# --- entry point ----------------------------------------------------------------------------


def chunk_document(doc: LoadedDocument, settings: IngestSettings) -> list[Chunk]:
    """Split a document into chunks whose text is a verbatim slice of ``doc.text``."""
    items = _structure(doc.text)
    if any(item.kind == "article" for item in items):
        pieces = _chunk_articles(doc, items, settings)
    else:
        pieces = _chunk_prose(doc, settings)

    meta = doc.metadata
    title = meta.get("title", "") or doc.file
    chunks: list[Chunk] = []
    for index, ((start, end), heading_path, article, part) in enumerate(pieces):
        text = doc.text[start:end]
        header = " / ".join(p for p in (title, heading_path, article) if p)
        metadata: dict[str, str | int] = {
            "doc_id": doc.doc_id,
            "file": doc.file,
            "title": title,
            "issuer": meta.get("issuer", ""),
            "date": meta.get("date", ""),
            "status": meta.get("status", ""),
            "superseded_by": meta.get("superseded_by", ""),
            "kind": meta.get("kind", ""),
            "article": article,
            "heading_path": heading_path,
            "start": start,
            "end": end,
            "part": part,
            "chunk_index": index,
            "content_hash": doc.content_hash,
        }
        assert set(metadata) == set(CHUNK_METADATA_KEYS) - {"embedding_model"}
        chunks.append(Chunk(text=text, embed_text=f"{header}\n{text}", metadata=metadata))
    return chunks
