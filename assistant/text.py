"""The text toolkit shared by ingest, the assistant and the evaluation.

One implementation of each idea:

* ``normalise``: whitespace removed, every quote mark made equal (quote checks,
  evaluation matching, claimed-quote checks);
* Chinese numerals and article labels: ``chinese_to_int``, ``int_to_chinese``,
  ``parse_numeral``, ``article_label``, ``article_number``, ``ARTICLE_RE``;
* ``split_sentences``: sentence spans of a piece of text (offsets, never edits);
* character classes and small predicates: ``CJK_RE``, ``is_english``, ``bigrams``.

The tokenizer with the domain dictionary lives in ``assistant.tokenizer``.
Pure functions, no I/O.
"""

from __future__ import annotations

import re

# ---------------------------------------------------------------- normalisation

QUOTE_CHARS = "“”\"「」『』‘’'〝〞＂"
_QUOTE_TABLE = str.maketrans({c: '"' for c in QUOTE_CHARS})
_WHITESPACE = re.compile(r"\s+")


def normalise(text: str) -> str:
    """Remove all whitespace and map every quote character to ``"``."""
    return _WHITESPACE.sub("", text or "").translate(_QUOTE_TABLE)


def normalise_char(ch: str) -> str:
    """One character as ``normalise`` maps it (whitespace is the caller's business)."""
    return ch.translate(_QUOTE_TABLE)


# ---------------------------------------------------------------- numerals and articles

_CN_DIGITS = {
    "零": 0,
    "〇": 0,
    "一": 1,
    "二": 2,
    "两": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
}
_CN_UNITS = {"十": 10, "百": 100, "千": 1000}
CN_NUMERAL_CHARS = "零〇一二两三四五六七八九十百千"
_FULLWIDTH_DIGITS = str.maketrans("０１２３４５６７８９", "0123456789")

# Every article mention: 第八条 / 第 15 条 / 第一百零二条 / 第１５条. Group 1 is the numeral.
ARTICLE_RE = re.compile(rf"第\s*([0-9０-９]{{1,4}}|[{CN_NUMERAL_CHARS}]{{1,8}})\s*条")


def chinese_to_int(numeral: str) -> int:
    """'一百零二' -> 102, '十五' -> 15, '二十' -> 20. Raises ValueError on anything else."""
    if not numeral or any(ch not in _CN_DIGITS and ch not in _CN_UNITS for ch in numeral):
        raise ValueError(f"not a Chinese numeral: {numeral!r}")
    total = 0
    current = 0
    for ch in numeral:
        if ch in _CN_DIGITS:
            current = _CN_DIGITS[ch]
        else:
            total += (current or 1) * _CN_UNITS[ch]
            current = 0
    return total + current


def int_to_chinese(value: int) -> str:
    """102 -> '一百零二', 15 -> '十五', 110 -> '一百一十' (the style of Chinese legal texts)."""
    if value <= 0 or value >= 10000:
        raise ValueError(f"article number out of range: {value}")
    digits = "零一二三四五六七八九"
    out: list[str] = []
    rest = value
    pending_zero = False
    for unit, name in ((1000, "千"), (100, "百"), (10, "十")):
        d, rest = divmod(rest, unit)
        if d:
            if pending_zero:
                out.append("零")
                pending_zero = False
            if not (unit == 10 and d == 1 and not out):
                out.append(digits[d])
            out.append(name)
        elif out:
            pending_zero = True
    if rest:
        if pending_zero:
            out.append("零")
        out.append(digits[rest])
    return "".join(out)


def parse_numeral(raw: str) -> int | None:
    """Arabic (also full-width) or Chinese numerals to int; None when ``raw`` is neither."""
    raw = raw.strip().translate(_FULLWIDTH_DIGITS)
    try:
        return int(raw) if raw.isdigit() else chinese_to_int(raw)
    except ValueError:
        return None


def article_label(number: int) -> str:
    """15 -> '第十五条'."""
    return f"第{int_to_chinese(number)}条"


def article_number(label: str) -> int | None:
    """'第十五条' or '第15条' -> 15; None when ``label`` is not an article label."""
    m = ARTICLE_RE.fullmatch(label.strip())
    return parse_numeral(m.group(1)) if m else None


def article_labels(text: str) -> list[str]:
    """Every distinct article mentioned in ``text`` as a canonical label, in order of appearance."""
    seen: dict[str, None] = {}
    for m in ARTICLE_RE.finditer(text):
        number = parse_numeral(m.group(1))
        if number is not None and 0 < number < 10000:
            seen.setdefault(article_label(number), None)
    return list(seen)


# ---------------------------------------------------------------- sentences

SENTENCE_END = "。！？；!?;"
SENTENCE_CLOSERS = "”’」』》）)\"'"


def trim_span(text: str, start: int, end: int) -> tuple[int, int]:
    """``(start, end)`` moved inwards past whitespace."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def split_sentences(
    text: str,
    start: int = 0,
    end: int | None = None,
    *,
    ends: str = SENTENCE_END,
    closers: str = SENTENCE_CLOSERS,
) -> list[tuple[int, int]]:
    """Sentence spans of ``text[start:end]``: each ends after a character of ``ends`` and any
    closing quotes or brackets that follow it; whitespace is trimmed by moving the offsets."""
    end = len(text) if end is None else end
    spans: list[tuple[int, int]] = []
    pos = i = start
    while i < end:
        if text[i] in ends:
            j = i + 1
            while j < end and (text[j] in ends or text[j] in closers):
                j += 1
            s, e = trim_span(text, pos, j)
            if e > s:
                spans.append((s, e))
            pos = i = j
        else:
            i += 1
    s, e = trim_span(text, pos, end)
    if e > s:
        spans.append((s, e))
    return spans


# ---------------------------------------------------------------- character classes

YEAR_RE = re.compile(r"(?:19|20)\d{2}")
# A version named by a two-digit year: "19年修订的", "18年那版", "22年出的" (not "干了19年").
_SHORT_VERSION_YEAR = re.compile(
    r"(?<![0-9０-９])([0-9]{2})(?=\s*年\s*(?:修订|修正|修改|版|那一?版|这一?版|的版|新版|旧版|出的|出台|发布|印发|颁布|施行))"
)


def full_version_years(text: str) -> str:
    """``text`` with two-digit version years written in full (19年修订 → 2019年修订; 98 → 1998)."""
    return _SHORT_VERSION_YEAR.sub(lambda m: ("20" if int(m.group(1)) <= 50 else "19") + m.group(1), text)


CJK_RE = re.compile(r"[\u4e00-\u9fff]")
LATIN_RE = re.compile(r"[A-Za-z]")
ENUM_ITEM_RE = re.compile(r"^[（(][一二三四五六七八九十]+[）)]")


def is_english(text: str) -> bool:
    """More than twice as many Latin letters as CJK characters."""
    return len(LATIN_RE.findall(text)) > 2 * len(CJK_RE.findall(text))


def bigrams(text: str) -> set[str]:
    """Character bigrams of the CJK characters of ``text`` (other characters skipped)."""
    chars = [c for c in text if CJK_RE.match(c)]
    return {a + b for a, b in zip(chars, chars[1:], strict=False)}
