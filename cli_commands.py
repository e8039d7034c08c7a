"""The handlers of the `policy-assistant` commands: one `cmd_<command>(settings, args)` each.

Each handler returns the exit code and imports what it needs from `ingest`, `assistant`
and `ui` when it runs, so that `policy-assistant --help` stays fast. `policy_cli`
parses the arguments, builds the settings and dispatches here through `COMMANDS`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from assistant.config import Settings


class CliError(Exception):
    """An error with a Chinese message meant for the user; exit code 2."""


def cmd_ingest(settings: Settings, args: argparse.Namespace) -> int:
    from assistant.embeddings import build_embeddings
    from ingest.indexer import run_ingest

    embeddings = build_embeddings(settings)
    report = run_ingest(
        settings,
        embeddings,
        list(args.paths) or None,
        rebuild=args.rebuild,
        progress=not args.no_progress and not args.json,
    )
    if args.json:
        print(json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
    else:
        for file, reason in report.skipped:
            print(f"跳过 {file}：{reason}")
        for file, reason in report.errors:
            print(f"错误 {file}：{reason}")
        print(report.summary_line())
    return 1 if report.errors else 0


def cmd_models(settings: Settings, args: argparse.Namespace) -> int:
    from assistant.model_files import resolve_model_path, verify_model
    from assistant.models import fetch_model

    if args.models_command == "fetch":
        path = fetch_model(settings)
        print(f"模型已就绪：{path}")
        return 0
    if args.models_command == "verify":
        path = resolve_model_path(settings)
        if settings.embedding.model_path is not None:
            print(f"使用自备模型目录：{path}（没有上游 SHA-256 可供校验，已确认目录存在）")
            return 0
        verify_model(path, trust_cache=False)
        print(f"模型校验通过：{path}")
        return 0
    raise CliError("请指定操作：policy-assistant models fetch | verify")


def cmd_stats(settings: Settings, args: argparse.Namespace) -> int:
    from assistant.library_store import library_stats
    from assistant.store import open_client, open_collection

    collection = open_collection(open_client(settings), settings, None)
    stats = library_stats(collection)
    if args.json:
        print(json.dumps(stats, ensure_ascii=False, indent=2))
        return 0
    print(f"文件 {stats['documents']} 个，片段 {stats['chunks']} 个")
    for d in stats["documents_detail"]:
        print(
            f"  [{d['status']}] {d['title']}（{d['file']}）：条文 {d['articles']} 条，片段 {d['chunks']} 个"
        )
    return 0


def _citation_line(c: Any) -> str:
    article = c.article or c.heading_path
    return f"《{c.title}》{article}：「{c.quote}」"


def cmd_ask(settings: Settings, args: argparse.Namespace) -> int:
    from assistant.hits import decision_kind, hit_rows
    from assistant.service import build_assistant

    assistant = build_assistant(settings)
    result = assistant.run(args.question)
    answer = result.answer
    if args.json:
        out = {
            "answer": answer.text,
            "declined": answer.declined,
            "reason": result.reason,
            "outcome": answer.outcome,
            "decision": decision_kind(result),
            "answerability": result.decision.probability if result.decision else None,
            "mode": answer.mode,
            "citations": [
                {
                    "file": c.file,
                    "title": c.title,
                    "article": c.article,
                    "quote": c.quote,
                    "chunk_id": c.chunk_id,
                }
                for c in answer.citations
            ],
            # The ranked evidence with its scores: what the admin console's 命中测试 shows.
            "evidence": [{k: v for k, v in row.items() if k != "text"} for row in hit_rows(result.evidence)],
        }
        print(json.dumps(out, ensure_ascii=False, indent=2))
        return 0
    print(answer.text)
    if answer.citations:
        print("\n引用：")
        for i, c in enumerate(answer.citations, 1):
            print(f"[{i}] {_citation_line(c)}")
    return 0


def cmd_eval(settings: Settings, args: argparse.Namespace) -> int:
    from assistant.evaluation import format_report, run_eval
    from assistant.service import build_assistant

    for f in args.files:
        if not f.is_file():
            raise CliError(f"找不到评测文件：{f}")
    assistant = build_assistant(settings)
    result = run_eval(assistant, list(args.files), k=args.k)
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=2))
    else:
        print(format_report(result))
    return 0


def cmd_calibrate(settings: Settings, args: argparse.Namespace) -> int:
    from assistant.calibration_run import calibrate
    from assistant.evaluation import load_eval_file
    from assistant.service import build_assistant

    items = load_eval_file(args.train)
    checks = {
        Path(p).name: load_eval_file(Path(p)) for p in settings.answer.decline_check if Path(p).is_file()
    }
    answerable = {
        Path(p).name: load_eval_file(Path(p)) for p in settings.answer.answer_check if Path(p).is_file()
    }
    assistant = build_assistant(settings)
    reranker, answerability = settings.retrieval.reranker, settings.answer.answerability
    calibrate(
        assistant,
        items,
        rerank_path=Path(reranker) if reranker else None,
        answerability_path=Path(answerability) if answerability else None,
        max_false_refusal=settings.answer.max_false_refusal,
        decline_check=checks,
        answer_check=answerable,
    )
    return 0


def cmd_questions(settings: Settings, args: argparse.Namespace) -> int:
    from assistant.llm import build_chat_model
    from ingest.question_drafts import draft_questions, summary, to_toml

    # A draft is not read by ingest (*.toml only) until a maintainer has read it and renamed it.
    out = args.out or settings.ingest.generated_questions / f"{args.file.stem}.toml.draft"
    if out.exists() and not args.force:
        raise CliError(f"{out} 已存在；确认要覆盖请加 --force，或用 --out 写到别处。")
    if not 1 <= args.per_article <= 10:
        raise CliError("--per-article 应在 1 到 10 之间。")
    try:
        chat_model = build_chat_model(settings)
    except ValueError as exc:
        raise CliError(f"起草关联问题要用大模型：{exc}") from exc

    def progress(done: int, total: int) -> None:
        print(f"\r已起草 {done}/{total}", end="", file=sys.stderr, flush=True)

    draft = draft_questions(
        settings, chat_model, args.file, per_article=args.per_article, on_progress=progress
    )
    print(file=sys.stderr)
    print(json.dumps(summary(draft, out if draft.rows else None), ensure_ascii=False, indent=1))
    if not draft.rows:
        print("没有起草出任何问题，未写文件。请检查大模型接口（llm.*）后重试。", file=sys.stderr)
        return 1
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(to_toml(draft), encoding="utf-8")
    except OSError as exc:
        raise CliError(f"无法写入 {out}（{exc.strerror or exc}）。请换一个 --out 位置。") from exc
    print(
        f"共 {len(draft.rows)} 个问题，已写入 {out}。请通读、删去答非所问的问题，"
        "改名为 .toml（去掉 .draft）后再运行 policy-assistant ingest。",
        file=sys.stderr,
    )
    return 0


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    from assistant.embeddings import build_embeddings
    from assistant.service import build_assistant
    from ingest.library_admin import AdminLibrary
    from ui.app import serve

    if args.host:
        settings.server.host = args.host
    if args.port:
        settings.server.port = args.port
    embeddings = build_embeddings(settings)
    assistant = build_assistant(settings, embeddings)

    # Ingests run inside the serving process (an embedded store admits one process only);
    # the admin console changes the library folder through this service.
    try:
        library = AdminLibrary(settings, embeddings, after_ingest=assistant.index.refresh)
    except ValueError as exc:  # e.g. ingest.upload_dir outside the library
        raise CliError(str(exc)) from exc
    serve(settings, assistant, library.reindex, library)
    return 0


COMMANDS = {
    "ingest": cmd_ingest,
    "models": cmd_models,
    "stats": cmd_stats,
    "ask": cmd_ask,
    "eval": cmd_eval,
    "calibrate": cmd_calibrate,
    "questions": cmd_questions,
    "serve": cmd_serve,
}
