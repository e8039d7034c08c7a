"""Citations: where a quoted span sits in its document, and how a source is labelled.

``citation(span)`` turns a quoted span of a chunk into a ``Citation`` with the
document offsets of the quote (chunk ``start`` + span offsets); an enumerated
item's marker （一） is left out of the quote. ``source_label(meta)`` is the
label an answer shows: 《标题》第X条, or 《标题》（section heading） for
documents without articles.
"""

from __future__ import annotations

from typing import Any

from langchain_core.documents import Document

from assistant.messages import short_title
from assistant.schema import STATUS_CURRENT, Citation
from assistant.text import ENUM_ITEM_RE
from assistant.units import Span, split_units
from assistant.verify import locate


def source_label(meta: dict[str, Any]) -> str:
    """《标题》第X条, or 《标题》（section heading） for documents without articles."""
    title = f"《{short_title(str(meta.get('title') or meta.get('file') or ''))}》"
    article = str(meta.get("article") or "")
    if article:
        return f"{title}{article}"
    heading = str(meta.get("heading_path") or "")
    return f"{title}（{heading}）" if heading else title


def citation(span: Span) -> Citation:
    """The citation of a quoted span (an item's （一） marker is not part of the quote)."""
    start, end = span.start, span.end
    if span.item:
        m = ENUM_ITEM_RE.match(span.text)
        if m:
            start += m.end()
    meta = span.doc.metadata
    base = int(meta.get("start") or 0)
    return Citation(
        file=str(meta.get("file") or ""),
        title=str(meta.get("title") or ""),
        article=str(meta.get("article") or ""),
        quote=span.doc.page_content[start:end],
        chunk_id=str(meta.get("chunk_id") or span.doc.id or ""),
        start=base + start,
        end=base + end,
        status=str(meta.get("status") or STATUS_CURRENT),
        heading_path=str(meta.get("heading_path") or ""),
    )


def quote_citation(quote: str, docs: list[Document]) -> Citation | None:
    """The citation of ``quote`` in the first of ``docs`` that holds it (whitespace and quote
    marks tolerated), or None."""
    for doc in docs:
        where = locate(quote, doc.page_content)
        if where is not None:
            return citation(Span(doc, where[0], where[1]))
    return None


def first_unit_citation(doc: Document) -> Citation | None:
    """The citation of a chunk's first sentence or item (a source cited without a quote)."""
    units = split_units(doc)
    return citation(Span(doc, units[0].start, units[0].end)) if units else None
