"""Spans of a text and packing them into chunks of bounded size.

A span is ``(start, end)``: offsets into the document's text, trimmed of whitespace by
moving the offsets (``assistant.text.trim_span``), never by editing the text. Lines are
cut into sentences (and over-long sentences into pieces) only when they are too long,
then consecutive units are packed into balanced groups (``pack``).
"""

from __future__ import annotations

import math

from assistant.text import split_sentences, trim_span

Span = tuple[int, int]


def line_spans(text: str, start: int = 0, end: int | None = None) -> list[Span]:
    """Non-blank lines of text[start:end] as trimmed spans."""
    end = len(text) if end is None else end
    spans: list[Span] = []
    pos = start
    while pos < end:
        nl = text.find("\n", pos, end)
        line_end = end if nl == -1 else nl
        s, e = trim_span(text, pos, line_end)
        if e > s:
            spans.append((s, e))
        pos = line_end + 1
    return spans


def _cut_long(text: str, span: Span, max_chars: int) -> list[Span]:
    """Cut one over-long sentence into pieces <= max_chars, preferring to cut after a comma."""
    start, end = span
    pieces: list[Span] = []
    while end - start > max_chars:
        limit = start + max_chars
        cut = max(text.rfind(p, start + max_chars // 2, limit) for p in "，、,：:")
        cut = cut + 1 if cut > 0 else limit
        pieces.append(trim_span(text, start, cut))
        start = trim_span(text, cut, end)[0]
    pieces.append((start, end))
    return [p for p in pieces if p[1] > p[0]]


def units_within(text: str, spans: list[Span], max_chars: int) -> list[Span]:
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


def pack(units: list[Span], max_chars: int, min_chars: int, glued: set[int] | None = None) -> list[Span]:
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
