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
import math
import re
from dataclasses import dataclass

from assistant.config import IngestSettings
from assistant.references import chinese_to_int
from assistant.schema import CHUNK_METADATA_KEYS
from ingest.loaders import LoadedDocument

_NUMERALS = "一二三四五六七八九十百千零〇两"
_WS = " \t\u3000\xa0"

# 第八条 at the start of a line, followed by a space or full-width space.
_ARTICLE_RE = re.compile(rf"^[{_WS}]*(第[{_NUMERALS}]+条)[{_WS}]")
# "## 第一章 总则", "　　第一编 总则", "第八章　审  理", "第一节" (the name is optional).
_HEADING_RE = re.compile(rf"^[{_WS}]*(?:#+[{_WS}]*)?(第[{_NUMERALS}]+([编章节]))(?:[{_WS}]+(.*?))?[{_WS}]*$")
_HEADING_RANK = {"编": 0, "章": 1, "节": 2}
_MAX_HEADING_NAME = 30

# Section headings of documents without articles: 一、 / （一） / 1.
_SECTION_RES: tuple[re.Pattern[str], ...] = (
    re.compile(r"^[一二三四五六七八九十]+、"),
    re.compile(r"^[（(][一二三四五六七八九十]+[）)]"),
    re.compile(r"^\d{1,2}[.．、](?!\d)"),
)
_MAX_SECTION_TITLE = 60

_SENTENCE_END = "。！？；!?;"
_CLOSERS = "”’」』》）)\"'"
_TOPIC_MAX_CHARS = 8  # "规范选人用人。" (without its 。) opens a sub-topic inside a paragraph
_TOPIC_FORBIDDEN = '，,、：:；;“”"「」'
_PREAMBLE_MIN_CHARS = 20


@dataclass
class Chunk:
    text: str  # == doc.text[start:end], verbatim
    embed_text: str  # "title / heading_path / article\n" + text: what gets embedded
    metadata: dict[str, str | int]  # every key of CHUNK_METADATA_KEYS except embedding_model


def article_number(label: str) -> int:
    """The number of an article label: 第一百零五条 → 105."""
    match = re.fullmatch(rf"第([{_NUMERALS}]+)条", label)
    if match is None:
        raise ValueError(f"not an article label: {label!r}")
    return chinese_to_int(match.group(1))


def chunk_id(doc_id: str, chunk_index: int, text: str) -> str:
    """Stable chunk id: sha1(f"{doc_id}:{chunk_index}:{sha1(text)}")[:24]."""
    text_hash = hashlib.sha1(text.encode("utf-8")).hexdigest()
    return hashlib.sha1(f"{doc_id}:{chunk_index}:{text_hash}".encode()).hexdigest()[:24]


# --- spans ---------------------------------------------------------------------------------

Span = tuple[int, int]


def _trim(text: str, start: int, end: int) -> Span:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _lines(text: str, start: int = 0, end: int | None = None) -> list[Span]:
    """Non-blank lines of text[start:end] as trimmed spans."""
    end = len(text) if end is None else end
    spans: list[Span] = []
    pos = start
    while pos < end:
        nl = text.find("\n", pos, end)
        line_end = end if nl == -1 else nl
        s, e = _trim(text, pos, line_end)
        if e > s:
            spans.append((s, e))
        pos = line_end + 1
    return spans


def split_sentences(text: str, start: int, end: int) -> list[Span]:
    """Sentences of text[start:end]: each ends after 。！？； and any closing quotes."""
    spans: list[Span] = []
    pos = start
    i = start
    while i < end:
        if text[i] in _SENTENCE_END:
            j = i + 1
            while j < end and (text[j] in _SENTENCE_END or text[j] in _CLOSERS):
                j += 1
            s, e = _trim(text, pos, j)
            if e > s:
                spans.append((s, e))
            pos = i = j
        else:
            i += 1
    s, e = _trim(text, pos, end)
    if e > s:
        spans.append((s, e))
    return spans


def _cut_long(text: str, span: Span, max_chars: int) -> list[Span]:
    """Cut one over-long sentence into pieces <= max_chars, preferring to cut after a comma."""
    start, end = span
    pieces: list[Span] = []
    while end - start > max_chars:
        limit = start + max_chars
        cut = max(text.rfind(p, start + max_chars // 2, limit) for p in "，、,：:")
        cut = cut + 1 if cut > 0 else limit
        pieces.append(_trim(text, start, cut))
        start = _trim(text, cut, end)[0]
    pieces.append((start, end))
    return [p for p in pieces if p[1] > p[0]]


def _units_within(text: str, spans: list[Span], max_chars: int) -> list[Span]:
    """Replace spans longer than max_chars by their sentences (and over-long sentences by pieces)."""
    units: list[Span] = []
    for span in spans:
        if span[1] - span[0] <= max_chars:
            units.append(span)
            continue
        for sentence in split_sentences(text, *span):
            if sentence[1] - sentence[0] <= max_chars:
                units.append(sentence)
            else:
                units.extend(_cut_long(text, sentence, max_chars))
    return units


def _pack(units: list[Span], max_chars: int, min_chars: int, glued: set[int] | None = None) -> list[Span]:
    """Group consecutive units into spans of balanced size <= max_chars.

    A break never falls after a unit whose index is in ``glued`` (a heading line
    stays with what follows). A last group shorter than min_chars joins the one
    before it when the two fit in max_chars.
    """
    if not units:
        return []
    glued = glued or set()
    total = units[-1][1] - units[0][0]
    if total <= max_chars:
        return [(units[0][0], units[-1][1])]
    target = total / math.ceil(total / max_chars)
    groups: list[Span] = []
    start, end = units[0]
    for index, (s, e) in enumerate(units[1:], start=1):
        current = end - start
        joined = e - start
        may_break = index - 1 not in glued
        if may_break and (joined > max_chars or (joined > target and target - current < joined - target)):
            groups.append((start, end))
            start = s
        end = e
    groups.append((start, end))
    if (
        len(groups) > 1
        and groups[-1][1] - groups[-1][0] < min_chars
        and groups[-1][1] - groups[-2][0] <= max_chars
    ):
        last = groups.pop()
        groups[-1] = (groups[-1][0], last[1])
    return groups


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
        first = _trim(text, pos, line_end)[0]
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
        span = _trim(text, start, end)
        body = re.sub(r"[#\s]", "", text[span[0] : span[1]])
        if len(body) >= _PREAMBLE_MIN_CHARS:
            for part in _pack(
                _units_within(text, _lines(text, *span), settings.max_article_chars),
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
        span = _trim(text, item.start, next_start)
        if span[1] - span[0] <= settings.max_article_chars:
            pieces.append((span, heading_path, item.label, 0))
            continue
        units = _units_within(text, _lines(text, *span), settings.max_article_chars)
        for part, group in enumerate(_pack(units, settings.max_article_chars, settings.min_chunk_chars)):
            pieces.append((group, heading_path, item.label, part))
    return pieces


# --- documents without articles -----------------------------------------------------------


def _section_heading(text: str, span: Span) -> tuple[int, str, bool] | None:
    """(level, title, heading_only) when the line opens a section (一、 / （一） / 1.)."""
    line = text[span[0] : span[1]]
    for level, pattern in enumerate(_SECTION_RES):
        if not pattern.match(line):
            continue
        if not any(ch in line[:-1] for ch in _SENTENCE_END) and len(line) <= _MAX_SECTION_TITLE:
            return level, line.rstrip("。；;"), True
        first = split_sentences(text, *span)[0]
        title = text[first[0] : first[1]].rstrip(_SENTENCE_END + _CLOSERS)
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

    for line in _lines(text):
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
            add(_units_within(text, [span], max_chars))

    pieces: list[tuple[Span, str, str, int]] = []
    for heading_path, units, glued in blocks:
        for group in _pack(units, max_chars, min_chars, glued):
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
