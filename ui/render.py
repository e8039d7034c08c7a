"""HTML rendering of answers, citations and the library list.

Every piece of text that comes from a document, the model or the user goes
through ``html.escape`` before it is wrapped in our own tags, so a document
containing ``<script>`` is shown as text and never runs. The output is kept on
one line (newlines become ``<br>``) so that the Markdown pass of the Gradio
chatbot treats it as a single HTML block and leaves it alone.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from assistant.schema import STATUS_AMENDED, STATUS_CURRENT, STATUS_REPEALED, Answer, Citation

ChunkLookup = Callable[[str], str | None]

# Characters of the article shown on each side of the quote before expanding.
SNIPPET_CONTEXT = 60

_BLANK_LINES = re.compile(r"\n[ \t\u3000]*(?:\n[ \t\u3000]*)+")

_BADGE_CLASS = {
    STATUS_REPEALED: "pa-badge pa-badge-repealed",
    STATUS_AMENDED: "pa-badge pa-badge-amended",
    STATUS_CURRENT: "pa-badge pa-badge-current",
}


def esc(text: str) -> str:
    """Escape text for HTML and keep its line breaks (blank lines collapse into one break)."""
    text = _BLANK_LINES.sub("\n", text.replace("\r\n", "\n"))
    return html.escape(text, quote=True).replace("\n", "<br>")


def status_badge(status: str) -> str:
    if not status:
        return ""
    cls = _BADGE_CLASS.get(status, "pa-badge")
    return f'<span class="{cls}">{esc(status)}</span>'


def mark_quote(article: str, quotes: str | Sequence[str]) -> str:
    """The whole article, escaped, with each quote (first occurrence) wrapped in <mark>."""
    spans: list[tuple[int, int]] = []
    for q in [quotes] if isinstance(quotes, str) else quotes:
        pos = article.find(q) if q else -1
        if pos >= 0 and all(pos >= e or pos + len(q) <= s for s, e in spans):
            spans.append((pos, pos + len(q)))
    out: list[str] = []
    last = 0
    for start, end in sorted(spans):
        out.append(f"{esc(article[last:start])}<mark>{esc(article[start:end])}</mark>")
        last = end
    out.append(esc(article[last:]))
    return "".join(out)


def quote_in_context(article: str, quote: str, context: int = SNIPPET_CONTEXT) -> str:
    """The line(s) of the article holding the quote (at most ``context`` chars each side), quote marked."""
    pos = article.find(quote) if quote else -1
    if pos < 0:
        return f"<mark>{esc(quote)}</mark>"
    end = pos + len(quote)
    start_line = article.rfind("\n", 0, pos) + 1
    end_line = article.find("\n", end)
    end_line = len(article) if end_line < 0 else end_line
    lo, hi = max(start_line, pos - context), min(end_line, end + context)
    lead = "……" if lo > 0 and article[:lo].strip() else ""
    trail = "……" if hi < len(article) and article[hi:].strip() else ""
    before = article[lo:pos].replace("\n", " ")
    after = article[end:hi].replace("\n", " ")
    return f"{lead}{esc(before)}<mark>{esc(quote)}</mark>{esc(after)}{trail}"


def citation_label(c: Citation) -> str:
    label = f"《{c.title or c.file}》"
    if c.article:
        label += f" {c.article}"
    return label


def footnotes(citations: Sequence[Citation]) -> tuple[list[list[Citation]], list[int]]:
    """Citations grouped by chunk (one footnote per article piece, first-seen order) and,
    for each citation, the number of its footnote."""
    groups: list[list[Citation]] = []
    index: dict[str, int] = {}
    numbers: list[int] = []
    for c in citations:
        key = c.chunk_id or f"{c.file}:{c.start}"
        if key not in index:
            index[key] = len(groups)
            groups.append([])
        groups[index[key]].append(c)
        numbers.append(index[key] + 1)
    return groups, numbers


def render_citation(n: int, group: Sequence[Citation], article_text: str | None) -> str:
    """One numbered footnote: source, badge, the quote in context, expandable full article."""
    c = group[0]
    head = (
        f'<div class="pa-cite"><span class="pa-num">[{n}]</span> '
        f'<span class="pa-source">{esc(citation_label(c))}</span>{status_badge(c.status)}'
    )
    if c.heading_path:
        head += f'<span class="pa-path">{esc(c.heading_path)}</span>'
    if article_text:
        snippet = quote_in_context(article_text, c.quote)
        if len(group) > 1:
            snippet += f'<span class="pa-more">（共引用 {len(group)} 处）</span>'
        full = mark_quote(article_text, [g.quote for g in group])
        where = esc(c.article)
        body = (
            f'<div class="pa-quote">{snippet}</div>'
            f'<details class="pa-full"><summary>展开{where}全文</summary>'
            f'<div class="pa-article">{full}</div></details>'
        )
    else:
        body = "".join(f'<div class="pa-quote"><mark>{esc(g.quote)}</mark></div>' for g in group)
    return head + body + "</div>"


def annotate(text: str, citations: Sequence[Citation], numbers: Sequence[int]) -> str:
    """Escaped answer text with footnote markers [n] after the cited quotes.

    A run of consecutive quotes from the same footnote gets one marker, after its last quote.
    """
    found: set[tuple[int, int]] = set()
    for c, n in zip(citations, numbers, strict=True):
        pos = text.find(c.quote) if c.quote else -1
        if pos < 0:
            continue
        end = pos + len(c.quote)
        if text[end : end + 1] == "」":
            end += 1
        found.add((end, n))
    entries = sorted(found)
    kept = [e for i, e in enumerate(entries) if i + 1 == len(entries) or entries[i + 1][1] != e[1]]
    out: list[str] = []
    last = 0
    for end, n in kept:
        out.append(f'{esc(text[last:end])}<sup class="pa-ref">[{n}]</sup>')
        last = end
    out.append(esc(text[last:]))
    return "".join(out)


def render_answer(answer: Answer, lookup: ChunkLookup | None = None) -> str:
    """The final answer: notices, text and numbered citation footnotes, as one HTML block."""
    parts = ['<div class="pa-answer">']
    for notice in answer.notices:
        if notice in answer.text:  # already part of the text
            continue
        parts.append(f'<div class="pa-notice">⚠ {esc(notice)}</div>')
    text_cls = "pa-text pa-declined" if answer.declined else "pa-text"
    if answer.outcome == "related":
        parts.append('<div class="pa-outcome pa-related">资料库没有直接规定 · 以下仅为相关条文</div>')
    groups, numbers = footnotes(answer.citations)
    parts.append(f'<div class="{text_cls}">{annotate(answer.text, answer.citations, numbers)}</div>')
    if groups:
        title = "相关条文（不直接回答所问）" if answer.outcome == "related" else "引用依据"
        parts.append(f'<div class="pa-cites"><div class="pa-cites-title">{title}</div>')
        for n, group in enumerate(groups, start=1):
            article_text = None
            if lookup is not None:
                try:
                    article_text = lookup(group[0].chunk_id)
                except Exception:  # a missing chunk must not hide the answer
                    article_text = None
            parts.append(render_citation(n, group, article_text))
        parts.append("</div>")
    parts.append("</div>")
    return "".join(parts)


def render_partial(text: str) -> str:
    """Text streamed so far, with a typing indicator."""
    return (
        f'<div class="pa-answer"><div class="pa-text">{esc(text)}<span class="pa-cursor">▍</span></div></div>'
    )


def render_message(text: str, kind: str = "pa-error") -> str:
    """A plain system message in the chat (errors, limits)."""
    return f'<div class="pa-answer"><div class="pa-text {kind}">{esc(text)}</div></div>'


def render_library(library: Mapping[str, Any]) -> str:
    """The 资料库 tab: one row per document."""
    docs: Sequence[Mapping[str, Any]] = library.get("documents_detail") or []
    summary = (
        f"共 {int(library.get('documents', len(docs)))} 份文件，{int(library.get('chunks', 0))} 个检索片段。"
    )
    rows = []
    for d in docs:
        rows.append(
            "<tr>"
            f"<td>{esc(str(d.get('title') or d.get('file') or ''))}</td>"
            f"<td>{esc(str(d.get('issuer') or ''))}</td>"
            f"<td>{esc(str(d.get('date') or ''))}</td>"
            f'<td class="pa-status">{status_badge(str(d.get("status") or ""))}</td>'
            f'<td class="pa-n">{int(d.get("articles") or 0)}</td>'
            f'<td class="pa-n">{int(d.get("chunks") or 0)}</td>'
            f'<td class="pa-file">{esc(str(d.get("file") or ""))}</td>'
            "</tr>"
        )
    if not rows:
        rows.append('<tr><td colspan="7">资料库为空：请先运行 policy-assistant ingest 导入文件。</td></tr>')
    return (
        f'<div class="pa-library"><p>{esc(summary)}</p><table class="pa-table">'
        "<thead><tr><th>标题</th><th>发布机关</th><th>日期</th><th>状态</th>"
        "<th>条数</th><th>片段数</th><th>文件名</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


CSS = """
.pa-answer { line-height: 1.7; }
.pa-notice { background: #fff4e5; border-left: 4px solid #f59e0b; padding: 4px 8px; margin-bottom: 6px; }
.pa-declined { color: #6b7280; }
.pa-outcome { display: inline-block; font-size: 12px; padding: 1px 8px; border-radius: 10px; margin-bottom: 4px; }
.pa-related { background: #fef3c7; color: #92400e; }
.pa-error { color: #b91c1c; }
.pa-cites { margin-top: 10px; border-top: 1px solid #e5e7eb; padding-top: 6px; font-size: 0.92em; }
.pa-cites-title { font-weight: 600; margin-bottom: 4px; }
.pa-cite { margin: 6px 0 10px 0; }
.pa-num { font-weight: 600; color: #1d4ed8; }
.pa-source { font-weight: 600; }
.pa-path { color: #6b7280; margin-left: 6px; font-size: 0.9em; }
.pa-quote { margin: 4px 0 2px 1.6em; color: #374151; }
.pa-full { margin-left: 1.6em; }
.pa-full summary { cursor: pointer; color: #1d4ed8; }
.pa-article { white-space: normal; background: #f9fafb; padding: 6px 8px; border-radius: 4px; }
.pa-answer mark { background: #fde68a; padding: 0 1px; }
.pa-badge { display: inline-block; white-space: nowrap; font-size: 0.8em; padding: 0 6px; margin-left: 6px; border-radius: 8px;
  border: 1px solid #9ca3af; color: #374151; }
.pa-badge-repealed { background: #fee2e2; border-color: #ef4444; color: #b91c1c; }
.pa-badge-amended { background: #fef3c7; border-color: #f59e0b; color: #92400e; }
.pa-badge-current { background: #dcfce7; border-color: #22c55e; color: #166534; }
.pa-ref { color: #1d4ed8; font-size: 0.8em; margin: 0 1px; }
.pa-more { color: #6b7280; font-size: 0.9em; margin-left: 6px; }
.pa-cursor { color: #9ca3af; }
.pa-table { border-collapse: collapse; width: 100%; }
.pa-table th, .pa-table td { border: 1px solid #e5e7eb; padding: 4px 8px; text-align: left; }
.pa-table td.pa-n { text-align: right; white-space: nowrap; }
.pa-table td.pa-status { white-space: nowrap; }
.pa-table td.pa-file { color: #6b7280; font-size: 0.85em; }
"""
