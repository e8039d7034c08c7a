"""Which files make up the library: the folder walk, hidden files, and where links may lead.

- Hidden files and folders (name starting with ".") are never read; each is
  reported once (a hidden folder as a whole, not file by file).
- ``skip_names`` (notes such as SOURCES.md, README.md) and metadata sidecars
  (``ingest.sidecar``) are left out silently.
- Links are returned, not followed, by the walk: ``check_link`` (called by
  ``load_file``) follows one only when its target lies inside a configured
  library folder (``ingest.library_dirs``), so a link to /etc/passwd placed in
  the library is a skip with a reason, never a document.
- Unsupported files, special files and missing paths are returned too, so
  that ``load_file`` rejects them with a reason the report shows.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from assistant.config import IngestSettings
from ingest.sidecar import is_sidecar

HIDDEN_FILE = "隐藏文件（名称以 . 开头），已跳过。如需导入，请去掉文件名开头的 . 。"
HIDDEN_FOLDER = "隐藏文件夹（名称以 . 开头），其中的文件均未导入。如需导入，请去掉文件夹名开头的 . 。"


class LinkRefused(Exception):
    """A link that may not be followed; ``str(e)`` is a Chinese reason."""


@dataclass
class Discovery:
    files: list[Path] = field(default_factory=list)  # sorted
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (name, Chinese reason), sorted by path


def discover(paths: list[Path], settings: IngestSettings) -> Discovery:
    """The files under ``paths`` (recursively, links not followed) and what was left out and why."""
    skip = set(settings.skip_names)
    found: set[Path] = set()
    left_out: dict[Path, tuple[str, str]] = {}

    def unreadable(error: OSError) -> None:
        where = Path(error.filename or "")
        left_out[where] = (f"{where.name}/", f"无法读取文件夹（{error.strerror or error}）。请检查权限。")

    for raw in paths:
        root = Path(raw)
        if not root.is_dir():
            found.add(root)  # an explicitly named file (or a missing path) is always reported
            continue
        for folder, dirnames, filenames in os.walk(root, onerror=unreadable):
            base = Path(folder)
            for name in list(dirnames):
                if name.startswith("."):
                    left_out[base / name] = (f"{name}/", HIDDEN_FOLDER)
                    dirnames.remove(name)
                elif os.path.islink(base / name):
                    found.add(base / name)  # never walked into; load_file says why
            for name in filenames:
                if name.startswith("."):
                    left_out[base / name] = (name, HIDDEN_FILE)
                elif name not in skip and not is_sidecar(name):  # metadata of a document
                    found.add(base / name)
    return Discovery(sorted(found), [left_out[p] for p in sorted(left_out)])


def discover_files(paths: list[Path], settings: IngestSettings) -> list[Path]:
    """All candidate files under ``paths`` (recursively), sorted, without hidden files or skip_names."""
    return discover(paths, settings).files


def _within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def check_link(path: Path, settings: IngestSettings) -> Path:
    """The path to read for ``path``: itself, or the target of a link that stays in the library.

    A path is checked when it is a link, or when it lies inside a library
    folder but resolves somewhere else (a linked folder on the way). A file
    named explicitly outside the library, with no link, is the operator's
    choice and read as is. Raises ``LinkRefused`` for a dangling link, a link
    leaving every library folder, and a link to a folder.
    """
    absolute = Path(os.path.abspath(path))
    inside = any(_within(absolute, Path(os.path.abspath(root))) for root in settings.library_dirs)
    if not inside and not os.path.islink(path):
        return path
    real = Path(os.path.realpath(path))
    if real == absolute:
        return path
    if not os.path.exists(real):
        raise LinkRefused(f"{path.name} 是失效的链接（指向的 {real} 不存在），已跳过。")
    if not any(_within(real, Path(os.path.realpath(root))) for root in settings.library_dirs):
        raise LinkRefused(
            f"{path.name} 是指向文件库之外（{real}）的链接，已跳过：只跟随指向 ingest.library_dirs 内的链接。"
            "如确需导入，请把文件复制到文件库中。"
        )
    if os.path.isdir(real):
        raise LinkRefused(f"{path.name} 是指向文件夹的链接，不跟随（文件库内的文件按其原位置导入）。")
    return real
