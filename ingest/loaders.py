"""Reading one library file into a ``LoadedDocument`` (the parsers per type are in ``ingest.formats``).

Every failure is a ``LoadError`` whose message is a Chinese reason that tells
the operator what to do; the ingest report lists it and the run goes on.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from assistant.config import IngestSettings
from assistant.schema import STATUS_CURRENT
from ingest.discovery import LinkRefused, check_link
from ingest.discovery import discover_files as discover_files  # re-exported: part of this module's interface
from ingest.formats import LOADERS, unreadable
from ingest.formats import METADATA_FIELDS as METADATA_FIELDS  # re-exported
from ingest.formats import SUPPORTED_SUFFIXES as SUPPORTED_SUFFIXES  # re-exported
from ingest.formats import LoadError as LoadError  # re-exported: part of this module's interface
from ingest.sidecar import read_sidecar

log = logging.getLogger(__name__)


@dataclass
class LoadedDocument:
    path: Path
    file: str  # file name only
    doc_id: str  # sha1(file name)[:16]
    text: str  # body after front matter; chunk offsets refer to this string
    metadata: dict[str, str] = field(default_factory=dict)
    encoding: str = "utf-8"
    content_hash: str = ""  # sha256 of the raw file bytes


def doc_id_for(file_name: str) -> str:
    """Stable document id: the first 16 hex digits of sha1(file name)."""
    return hashlib.sha1(file_name.encode("utf-8")).hexdigest()[:16]


def load_file(path: Path, settings: IngestSettings) -> LoadedDocument:
    """Read one library file. Raises ``LoadError`` with a Chinese reason, and nothing else.

    The file is opened once and parsed from the bytes read (never reopened), so
    a file deleted or replaced during the run is one skip, and the content hash
    always describes the text that was parsed. A link is read only when its
    target lies inside a library folder (``ingest.discovery.check_link``).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if not os.path.lexists(path):
        raise _missing(path)
    try:
        source = check_link(path, settings)  # where a link leads, if it may be followed
    except LinkRefused as exc:
        raise LoadError(str(exc)) from exc
    try:
        info = os.stat(source)
    except FileNotFoundError as exc:
        raise _missing(path) from exc
    except OSError as exc:
        raise LoadError(f"无法读取文件信息（{exc.strerror or exc}）。请检查文件权限。") from exc
    if not stat.S_ISREG(info.st_mode):
        raise LoadError(f"{path.name} 不是普通文件，已跳过。")
    loader = LOADERS.get(suffix)
    if loader is None:
        shown = suffix or "（无扩展名）"
        raise LoadError(
            f"不支持的文件类型 {shown}。请转换为 .md、.txt、.docx、.html 或 .pdf（带文字层）后再导入。"
        )
    raw = _read_regular_file(source, settings.max_file_bytes)
    if not raw.strip():
        raise LoadError("文件是空的。请补充正文后再导入。")
    try:
        text, metadata, encoding = loader(path, raw)
    except LoadError:
        raise
    except Exception as exc:  # a parser failing on a hostile or broken file: one skip, never an abort
        log.warning("解析 %s 时出错：%s: %s", path, type(exc).__name__, exc)
        log.debug("解析器的错误详情", exc_info=True)
        raise unreadable(suffix, exc) from exc
    if not text.strip():
        raise LoadError("文件没有可用的正文（去掉空白和格式后为空）。请检查文件内容后再导入。")
    extra, extra_raw = read_sidecar(path) if suffix not in (".md", ".markdown") else ({}, b"")
    metadata = {**metadata, **extra}
    digest = hashlib.sha256(raw)
    if extra_raw:  # a changed sidecar (e.g. marked 已废止) is a changed document
        digest.update(b"\0" + extra_raw)
    return LoadedDocument(
        path=path,
        file=path.name,
        doc_id=doc_id_for(path.name),
        text=text,
        metadata=_complete_metadata(metadata, path),
        encoding=encoding,
        content_hash=digest.hexdigest(),
    )


def _missing(path: Path) -> LoadError:
    return LoadError(
        f"找不到文件：{path}（路径有误，或在导入过程中被删除、移动）。请检查路径、确认文件仍在后再导入。"
    )


def _too_large(size: int, limit: int) -> LoadError:
    return LoadError(
        f"文件过大（{size / 1_000_000:.1f} MB，上限 {limit / 1_000_000:.1f} MB）。"
        "请拆分文件，或调大 ingest.max_file_bytes 后再导入。"
    )


def _read_regular_file(path: Path, limit: int) -> bytes:
    """The bytes of a regular file, read through one descriptor (at most ``limit`` bytes).

    ``O_NONBLOCK`` keeps a file swapped for a FIFO after the ``stat`` from
    blocking the run; ``fstat`` on the open descriptor is what is checked.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError as exc:
        raise _missing(path) from exc
    except OSError as exc:
        raise LoadError(f"无法读取文件（{exc.strerror or exc}）。请检查文件权限。") from exc
    try:
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise LoadError(f"{path.name} 不是普通文件，已跳过。")
            if info.st_size > limit:
                raise _too_large(info.st_size, limit)
            raw = handle.read(limit + 1)
    except OSError as exc:
        raise LoadError(f"无法读取文件（{exc.strerror or exc}）。请检查文件权限。") from exc
    if len(raw) > limit:  # grew after the fstat
        raise _too_large(len(raw), limit)
    return raw


def _complete_metadata(found: dict[str, str], path: Path) -> dict[str, str]:
    metadata = {key: found.get(key, "") for key in METADATA_FIELDS}
    if not metadata["title"]:
        metadata["title"] = path.stem
    if not metadata["status"]:
        metadata["status"] = STATUS_CURRENT
    return metadata
