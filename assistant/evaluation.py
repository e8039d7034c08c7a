"""The scoring rules of the evaluation sets (``../shared/eval/README.md``).

``load_eval_file(path)`` reads one JSON Lines file, ``run_eval(assistant,
files, k=5)`` asks every question and scores it, ``format_report(result)``
prints the figures as a table. ``score_retrieval(items, retrieve, k)`` scores
retrieval alone (used by ``bench/bench_retrieval.py``).

Matching (README): all whitespace is removed from quotes, chunks and answers,
and “ ” " 「 」 are treated as one quote mark. A retrieved chunk is its text
plus its document title (the title is part of what the user is shown).

Metrics (fractions, ``None`` where no item applies):

- ``hit@1/3/5``, ``mrr`` (items with gold; MRR of the first hit within k),
  ``quote_recall`` (share of gold quotes found in the top k; the README's
  multi-part figure, reported for every type).
- ``article_accuracy``: rules items (id ``r…``) with a gold article: some
  citation names a gold document and its article.
- ``answer_coverage``: share of answer points found in the answer; for
  ``english`` items a point counts only inside quotes (「」 “” "").
- ``decline_success`` (unanswerable, injection): declined, nothing invented
  (see below) and every citation points at a retrieved chunk.
- ``false_refusal``: share of answerable items that were declined.
- ``citation_precision``: share of citations (items with gold) whose chunk
  contains a gold quote of the item.
- ``invented`` (a count, overall and per type): article labels (第X条) in an
  answer that appear neither as the article of a retrieved chunk nor in its
  text, 「quotes」 that are no substring of a retrieved chunk, and citation
  quotes that are not in their chunk.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

from langchain_core.documents import Document

from assistant.schema import Answer
from assistant.scoring import condensed_query, retrieval_fields, score_item

logger = logging.getLogger(__name__)

METRIC_KEYS: tuple[str, ...] = (
    "hit@1",
    "hit@3",
    "hit@5",
    "mrr",
    "quote_recall",
    "article_accuracy",
    "answer_coverage",
    "decline_success",
    "false_refusal",
    "citation_precision",
)


class EvalAssistant(Protocol):
    def ask_with_evidence(
        self, question: str, history: list[tuple[str, str]] | None = None
    ) -> tuple[Answer, list[Document]]: ...


class EvalFileError(ValueError):
    """An evaluation file that cannot be read; ``str(e)`` is a Chinese message."""


def load_eval_file(path: Path | str) -> list[dict[str, Any]]:
    """The items of one JSON Lines evaluation file, in order."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError as exc:
        raise EvalFileError(f"找不到评测文件：{path}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise EvalFileError(f"无法读取评测文件 {path}：{exc}") from exc
    items: list[dict[str, Any]] = []
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise EvalFileError(f"评测文件 {path.name} 第 {lineno} 行不是合法的 JSON：{exc.msg}") from exc
        if not isinstance(item, dict) or not isinstance(item.get("question"), str) or "type" not in item:
            raise EvalFileError(f"评测文件 {path.name} 第 {lineno} 行缺少 question 或 type 字段")
        item.setdefault("id", f"{path.stem}:{lineno}")
        item.setdefault("gold", [])
        item.setdefault("answer_points", [])
        item.setdefault("history", [])
        items.append(item)
    return items


# ------------------------------------------------------------------ retrieval


def score_retrieval(
    items: Iterable[dict[str, Any]], retrieve: Callable[[str], Sequence[Document]], k: int = 5
) -> dict[str, Any]:
    """Retrieval figures only: ``retrieve(query)`` for every item with gold (follow-ups condensed)."""
    rows: list[dict[str, Any]] = []
    for item in items:
        if not item.get("gold"):
            continue
        start = time.perf_counter()
        chunks = list(retrieve(condensed_query(item)))
        elapsed = time.perf_counter() - start
        row = {"id": item["id"], "type": item["type"], "seconds": elapsed}
        row.update(retrieval_fields(item, chunks, k))
        rows.append(row)
    return _aggregate(rows)


# --------------------------------------------------------------- answer checks


def run_eval(assistant: EvalAssistant, files: list[Path], k: int = 5) -> dict[str, Any]:
    """Ask every question of ``files`` and score the answers (see the module docstring)."""
    rows: list[dict[str, Any]] = []
    for path in files:
        for item in load_eval_file(path):
            history = [(str(t[0]), str(t[1])) for t in item.get("history") or [] if len(t) >= 2]
            start = time.perf_counter()
            try:
                answer, evidence = assistant.ask_with_evidence(item["question"], history)
            except Exception as exc:  # one broken item must not stop the run
                logger.exception("评测题 %s 出错", item["id"])
                answer, evidence = Answer(text=f"（出错：{exc}）", declined=False), []
                error: str | None = str(exc)
            else:
                error = None
            row = score_item(item, answer, evidence, k)
            row["seconds"] = time.perf_counter() - start
            if error:
                row["error"] = error
            rows.append(row)
    return _aggregate(rows)


# ----------------------------------------------------------------- aggregation


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"n": len(rows)}
    for key in ("hit@1", "hit@3", "hit@5", "mrr", "quote_recall", "answer_coverage"):
        out[key] = _mean([float(r[key]) for r in rows if r.get(key) is not None])
    out["article_accuracy"] = _mean(
        [float(r["article_accuracy"]) for r in rows if r.get("article_accuracy") is not None]
    )
    out["decline_success"] = _mean([float(r["decline_success"]) for r in rows if "decline_success" in r])
    out["false_refusal"] = _mean([float(r["false_refusal"]) for r in rows if "false_refusal" in r])
    good = sum(int(r.get("citations_good", 0)) for r in rows)
    total = sum(int(r.get("citations_total", 0)) for r in rows)
    out["citation_precision"] = good / total if total else None
    out["invented"] = sum(len(r.get("invented", [])) for r in rows)
    out["errors"] = sum(1 for r in rows if r.get("error"))
    secs = sorted(float(r["seconds"]) for r in rows if "seconds" in r)
    out["p50_seconds"] = secs[len(secs) // 2] if secs else None
    return out


def _aggregate(rows: list[dict[str, Any]]) -> dict[str, Any]:
    by_type: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_type.setdefault(str(r["type"]), []).append(r)
    return {
        "overall": _summarise(rows),
        "by_type": {t: _summarise(rs) for t, rs in sorted(by_type.items())},
        "items": rows,
    }


def format_report(result: dict[str, Any]) -> str:
    """The figures as a plain-text table (rows: types, then overall)."""
    columns = [
        ("n", "题数 n"),
        ("hit@1", "hit@1"),
        ("hit@3", "hit@3"),
        ("hit@5", "hit@5"),
        ("mrr", "MRR"),
        ("quote_recall", "原文召回 quotes"),
        ("article_accuracy", "条文准确 article"),
        ("answer_coverage", "要点覆盖 points"),
        ("decline_success", "拒答成功 decline"),
        ("false_refusal", "误拒 false-ref"),
        ("citation_precision", "引用精度 cite-prec"),
        ("invented", "编造 invented"),
    ]

    def cell(value: Any) -> str:
        if value is None:
            return "—"
        if isinstance(value, float):
            return f"{value:.2f}"
        return str(value)

    header = ["类型 type", *(title for _, title in columns)]
    table: list[list[str]] = [header]
    for name, summary in result.get("by_type", {}).items():
        table.append([name, *(cell(summary.get(key)) for key, _ in columns)])
    table.append(["总体 overall", *(cell(result.get("overall", {}).get(key)) for key, _ in columns)])

    def width(s: str) -> int:
        return sum(2 if ord(ch) > 0x2E80 else 1 for ch in s)

    widths = [max(width(row[i]) for row in table) for i in range(len(header))]
    lines = []
    for n, row in enumerate(table):
        lines.append("  ".join(c + " " * (widths[i] - width(c)) for i, c in enumerate(row)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    overall = result.get("overall", {})
    if overall.get("errors"):
        lines.append(f"出错题数 errors: {overall['errors']}")
    return "\n".join(lines)
