"""The embedding model's files: where they are, and whether they are the verified ones.

``resolve_model_path(settings)`` finds the folder to load (``embedding.model_path`` or the
fetched EmbeddingGemma); ``verify_model`` checks the upstream SHA-256 of its files;
``model_fingerprint`` names the model that made the vectors. File hashes are cached in
``.policy-assistant-hashes.json`` inside the model folder, keyed by relative path and trusted
only while size and mtime match, so both are cheap on every start. Fetching is
``assistant.models``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
from collections.abc import Mapping
from pathlib import Path

from assistant.config import Settings

logger = logging.getLogger(__name__)

MODEL_NAME = "embeddinggemma-300m"
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
