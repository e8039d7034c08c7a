"""Metadata sidecars: the title, issuer, date, status and superseded_by of a document that has
no front matter of its own (.docx, .pdf, .html, .txt), in ``<file>.meta.json`` next to it.

Markdown keeps its metadata in its front matter; every other type may have a sidecar, which
the admin console writes. ``ingest.loaders.load_file`` reads it: its values override what the
parser found (e.g. a .docx core-properties title), and its bytes are part of the document's
content hash, so marking a document 已废止 re-indexes it. The walk never lists sidecars as
documents (``is_sidecar``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ingest.formats import MAX_METADATA_CHARS, METADATA_FIELDS, LoadError

SUFFIX = ".meta.json"
# A sidecar holds a few short fields; anything bigger is not one of ours.
MAX_SIDECAR_BYTES = 64 * 1024


def sidecar_path(document: Path) -> Path:
    return document.with_name(document.name + SUFFIX)


def is_sidecar(name: str) -> bool:
    return name.endswith(SUFFIX)


def read_sidecar(document: Path) -> tuple[dict[str, str], bytes]:
    """The sidecar's metadata and raw bytes (``{}``, ``b""`` when there is none); ``LoadError`` if broken."""
    path = sidecar_path(document)
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_SIDECAR_BYTES + 1)
    except FileNotFoundError:
        return {}, b""
    except OSError as exc:
        raise LoadError(f"无法读取元数据文件 {path.name}（{exc.strerror or exc}）。请检查文件权限。") from exc
    if len(raw) > MAX_SIDECAR_BYTES:
        raise LoadError(f"元数据文件 {path.name} 过大。请在管理页面重新填写该文件的元数据。")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LoadError(f"元数据文件 {path.name} 格式错误。请在管理页面重新填写该文件的元数据。") from exc
    if not isinstance(data, dict):
        raise LoadError(f"元数据文件 {path.name} 格式错误。请在管理页面重新填写该文件的元数据。")
    metadata: dict[str, str] = {}
    for key in METADATA_FIELDS:
        value = data.get(key)
        if isinstance(value, str | int | float) and str(value).strip():
            metadata[key] = str(value).strip()[:MAX_METADATA_CHARS]
    return metadata, raw


def write_sidecar(document: Path, metadata: dict[str, str]) -> None:
    """Write (atomically: temp file, then rename) the sidecar of ``document``; empty values left out."""
    values = {k: v for k in METADATA_FIELDS if (v := metadata.get(k, "").strip())}
    path = sidecar_path(document)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(values, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
