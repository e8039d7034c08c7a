"""``policy-assistant calibrate``: fit the re-ranker and the answerability decision on the
train items (``assistant.calibration``, ``assistant.answerability_fit``), print what a maintainer needs to judge them, and
store them (``corpus/models/``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant.answerability_fit import answerability_data, fit_answerability
from assistant.calibration import fit_reranker, ranking_data

if TYPE_CHECKING:
    from assistant.pipeline import Assistant


def calibrate(
    assistant: Assistant,
    items: Sequence[dict[str, Any]],
    *,
    rerank_path: Path | None,
    answerability_path: Path | None,
    max_false_refusal: float,
    decline_check: Mapping[str, Sequence[dict[str, Any]]] | None = None,
    answer_check: Mapping[str, Sequence[dict[str, Any]]] | None = None,
    out: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Fit the re-ranker, keep it only if it beats the fused order under cross-validation, then
    fit the answerability decision over the (re-ranked) pipeline, and store both."""
    from assistant.answerability import FEATURES as ANSWER_FEATURES

    report: dict[str, Any] = {}
    retriever = assistant.retriever
    embedding_model = str(getattr(retriever.embeddings, "model_name", "") or "")
    if rerank_path is not None:
        retriever.reranker = None
        out("拟合重排序模型：收集候选与特征……")
        ranked, rerank_report = fit_reranker(ranking_data(assistant, items))
        ranked.meta["embedding_model"] = embedding_model
        report["rerank"] = rerank_report
        out(_lines(rerank_report))
        gain = rerank_report["reranked hit@1 (cv)"] - rerank_report["fused hit@1"]
        if gain > 0:
            ranked.save(rerank_path)
            retriever.reranker = ranked
            out(f"重排序模型交叉验证 hit@1 提高 {gain:+.3f}，已保存到 {rerank_path}")
        else:
            rerank_path.unlink(missing_ok=True)
            out(f"重排序模型交叉验证 hit@1 没有提高（{gain:+.3f}），不启用（保持融合排序）。")
    if answerability_path is not None:
        out("拟合可回答性判断：逐题运行流水线……")
        data = answerability_data(assistant, items)
        answerable_total = sum(1 for it in items if it.get("gold"))
        model, answer_report = fit_answerability(
            data, answerable_total=answerable_total, max_false_refusal=max_false_refusal
        )
        model.meta["embedding_model"] = embedding_model
        model.save(answerability_path)
        assistant.decline.model = model
        report["answerability"] = answer_report
        out(_lines({k: v for k, v in answer_report.items() if k != "reliability"}))
        out("可靠性（交叉验证概率 → 实际可回答比例）：")
        for row in answer_report["reliability"]:
            out(f"  {row['bin']}: {row['n']} 题，预测 {row['predicted']}，实际 {row['observed']}")
        out("各特征的标准化系数（正：更可能可回答）：")
        for name, weight in model.weights():
            out(f"  {name:16s} {weight:+.2f}")
        out(f"已保存到 {answerability_path}（特征 {len(ANSWER_FEATURES)} 个，阈值 {model.threshold:.3f}）")
        for name, questions in (decline_check or {}).items():
            if questions:
                report.setdefault("decline_check", {})[name] = check_declines(assistant, questions, name, out)
        for name, questions in (answer_check or {}).items():
            if questions:
                report.setdefault("answer_check", {})[name] = check_answers(assistant, questions, name, out)
    return report


def _declined(assistant: Assistant, questions: Sequence[dict[str, Any]], declined: bool) -> list[str]:
    """The questions (asked with their history, if any) whose answer is declined, or is not."""
    return [
        str(item["question"])
        for item in questions
        if assistant.ask(str(item["question"]), [tuple(p) for p in item.get("history") or []]).declined
        == declined
    ]


def check_declines(
    assistant: Assistant,
    questions: Sequence[dict[str, Any]],
    name: str = "",
    out: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run questions the library cannot answer (not used for fitting) and count the declines."""
    missed = _declined(assistant, questions, declined=False)
    declined = len(questions) - len(missed)
    share = declined / len(questions)
    out(f"自拟的无法回答问题 {name}（未参与拟合）：拒答 {declined}/{len(questions)}（{share:.2f}）")
    for question in missed:
        out(f"  未拒答：{question}")
    return {"declined": declined, "total": len(questions), "missed": missed}


def check_answers(
    assistant: Assistant,
    questions: Sequence[dict[str, Any]],
    name: str = "",
    out: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run questions the library answers (written by us, not used for fitting): the declined ones
    are false refusals in wording the fit never saw."""
    refused = _declined(assistant, questions, declined=True)
    total = len(questions)
    out(f"自拟的可回答问题 {name}（未参与拟合）：误拒 {len(refused)}/{total}（{len(refused) / total:.3f}）")
    for question in refused:
        out(f"  误拒：{question}")
    return {"refused": len(refused), "total": total, "missed": refused}


def _lines(report: dict[str, Any]) -> str:
    return "\n".join(f"  {key}: {value}" for key, value in report.items())
