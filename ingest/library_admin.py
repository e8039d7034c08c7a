"""Changing the library folder from the admin console: upload, replace, mark 已废止, remove.

Everything an upload brings is checked before a byte is written: the file name (no folders,
no leading dot, a listed suffix, sanitised characters), the size (``ingest.max_upload_bytes``)
and the content (magic bytes: ``%PDF-``; a zip holding ``word/document.xml``; UTF-8 text for
.md/.txt/.html), and the file must parse into text with the library's own parser
(``ingest.upload_checks``). A refused upload raises ``UploadRefused`` (a Chinese reason) and
leaves nothing behind. Files are written atomically (temp file, then rename; a new name never
overwrites); a removed file is moved to ``ingest.removed_dir`` and a replaced one copied there
first, never deleted. Metadata from the form goes into the front matter of
Markdown and into a sidecar (``ingest.sidecar``) for every other type.

This module changes files only; the caller runs an ingest afterwards (``run_ingest``), and
the served library follows when that ingest is complete.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant.config import Settings
from ingest.discovery import discover
from ingest.formats import LOADERS
from ingest.sidecar import read_sidecar, sidecar_path, write_sidecar
from ingest.upload_checks import (
    FORM_FIELDS,
    MARKDOWN,
    STATUSES,
    UploadRefused,
    check_content,
    clean_form,
    safe_name,
    with_front_matter,
)

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Change:
    file: str  # the document's file name after the change
    action: str  # upload | replace | status | remove
    detail: str  # Chinese, for the audit log


class LibraryFolder:
    """The library folder(s) as the admin console changes them."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        ingest = settings.ingest
        self.folder = Path(ingest.upload_dir or ingest.library_dirs[0])
        roots = [Path(os.path.abspath(d)) for d in ingest.library_dirs]
        here = Path(os.path.abspath(self.folder))
        if not any(here == r or r in here.parents for r in roots):
            raise ValueError(
                f"ingest.upload_dir（{self.folder}）不在文件库 ingest.library_dirs 之内：上传的文件不会被导入。"
                "请把它设为文件库中的某个文件夹，或留空（使用第一个文件库文件夹）。"
            )
        self.removed = Path(ingest.removed_dir)
        self.allowed = [s.lower() for s in ingest.upload_types]
        self.max_bytes = min(ingest.max_upload_bytes, ingest.max_file_bytes)

    def files(self) -> dict[str, Path]:
        """Document files of the library, by file name (what the served library calls ``file``)."""
        found = discover([Path(p) for p in self.settings.ingest.library_dirs], self.settings.ingest)
        return {p.name: p for p in found.files if p.is_file() and not p.is_symlink()}

    def metadata(self, path: Path) -> dict[str, str]:
        """The metadata as written in the file's front matter or sidecar ({} when unreadable)."""
        try:
            if path.suffix.lower() in MARKDOWN:
                _text, meta, _enc = LOADERS[path.suffix.lower()](path, path.read_bytes()[: self.max_bytes])
                return meta
            return read_sidecar(path)[0]
        except Exception:
            return {}

    def _find(self, file: str) -> Path:
        path = self.files().get(file)
        if path is None:
            raise UploadRefused(f"文件库中没有文件 {file}（可能已被移除），请刷新列表。")
        return path

    def upload(self, name: str, data: bytes, form: dict[str, Any], replace: str = "") -> Change:
        """Store an uploaded file (or a new version of ``replace``); ``UploadRefused`` stores nothing."""
        stored = safe_name(name, self.allowed)
        if len(data) > self.max_bytes:
            raise UploadRefused(f"文件太大（{len(data) / 1e6:.1f} MB），上限 {self.max_bytes / 1e6:.1f} MB。")
        suffix = Path(stored).suffix.lower()
        check_content(suffix, data)
        meta = clean_form(form)
        old: Path | None = None
        if replace:
            old = self._find(replace)
            previous = self.metadata(old)
            meta = {k: meta[k] or previous.get(k, "") for k in FORM_FIELDS}
            target = old.with_name(old.stem + suffix)
        else:
            target = self.folder / stored
            if stored in self.files() or target.exists():
                raise UploadRefused(
                    f"文件库中已有同名文件 {stored}。如要更新，请在列表中对它选择“替换”；否则请改名。"
                )
        if suffix in MARKDOWN:
            data = with_front_matter(data, meta)
        self.folder.mkdir(parents=True, exist_ok=True)
        if old is not None and target != old and target.exists():
            raise UploadRefused(
                f"文件库中已有 {target.name}，不能把 {old.name} 替换成它。请先移除 {target.name}。"
            )
        if old is not None:
            self._keep_copy(
                old
            )  # the old version stays recoverable; the library keeps a whole file throughout
        try:
            _write_atomic(target, data, overwrite=old is not None)
        except FileExistsError as exc:  # another upload of the same name got there first
            raise UploadRefused(
                f"文件库中已有同名文件 {target.name}。请刷新列表后选择“替换”，或改名。"
            ) from exc
        if old is not None and target != old:  # a new type: the old file leaves the library
            old.unlink(missing_ok=True)
            sidecar_path(old).unlink(missing_ok=True)
        if suffix not in MARKDOWN and any(meta.values()):
            write_sidecar(target, meta)
        elif suffix not in MARKDOWN:
            sidecar_path(target).unlink(missing_ok=True)
        action = "replace" if old is not None else "upload"
        what = f"替换 {old.name} 为新版本" if old is not None else "上传"
        return Change(target.name, action, f"{what} {target.name}（{len(data)} 字节）")

    def set_status(self, file: str, status: str, superseded_by: str = "") -> Change:
        meta = clean_form({"status": status, "superseded_by": superseded_by})
        if not meta["status"]:
            raise UploadRefused(f"请选择状态：{'、'.join(STATUSES)}。")
        path = self._find(file)
        if path.suffix.lower() in MARKDOWN:
            _write_atomic(path, with_front_matter(path.read_bytes(), meta))
        else:
            current = read_sidecar(path)[0] if sidecar_path(path).exists() else {}
            write_sidecar(path, {**current, **{k: v for k, v in meta.items() if v}})
        tail = f"，现行版本 {meta['superseded_by']}" if meta["superseded_by"] else ""
        return Change(file, "status", f"将 {file} 标记为 {meta['status']}{tail}")

    def remove(self, file: str) -> Change:
        path = self._find(file)
        where = self._move_away(path)
        return Change(file, "remove", f"移除 {file}（已移至 {where}）")

    def _keep_copy(self, path: Path) -> Path:
        """Copy a document (and its sidecar) into ``removed_dir``, leaving it in place."""
        self.removed.mkdir(parents=True, exist_ok=True)
        target = self.removed / f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%f')}-{path.name}"
        shutil.copy2(path, target)
        if sidecar_path(path).exists():
            shutil.copy2(sidecar_path(path), sidecar_path(target))
        return target

    def _move_away(self, path: Path) -> Path:
        """Move a document (and its sidecar) out of the library into ``removed_dir``."""
        self.removed.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        target = self.removed / f"{stamp}-{path.name}"
        shutil.move(str(path), target)
        side = sidecar_path(path)
        if side.exists():
            shutil.move(str(side), sidecar_path(target))
        return target


def _write_atomic(target: Path, data: bytes, overwrite: bool = True) -> None:
    """Write ``data`` to a temp file beside ``target``, then move it into place: readers never see
    half a file. Without ``overwrite`` an existing ``target`` raises ``FileExistsError`` (``link``
    is atomic, so two uploads of one name cannot both win)."""
    fd, tmp = tempfile.mkstemp(prefix=".upload-", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        if overwrite:
            os.replace(tmp, target)
        else:
            os.link(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)


class AdminLibrary(LibraryFolder):
    """The library folder plus the ingest that brings the store in line with it: the service
    ``policy-assistant serve`` hands the admin console (the UI never imports ``ingest``)."""

    def __init__(
        self, settings: Settings, embeddings: Embeddings, after_ingest: Callable[[], object] | None = None
    ) -> None:
        super().__init__(settings)
        self.embeddings = embeddings
        # Called when an ingest has finished (the served library index's refresh): the changed
        # documents are read by the ingest's thread, not by the next cadre's question.
        self.after_ingest = after_ingest

    def reindex(self, on_progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
        """One ingest of the configured library (inside the serving process); its report as a dict."""
        from ingest.indexer import run_ingest

        report = run_ingest(self.settings, self.embeddings, progress=False, on_progress=on_progress)
        if self.after_ingest is not None:
            try:
                self.after_ingest()
            except Exception:  # the next question refreshes instead; the ingest itself succeeded
                logger.exception("导入后刷新资料库索引失败，下一个问题将重试")
        return {**report.to_dict(), "summary": report.summary_line()}

    def listing(self) -> list[dict[str, Any]]:
        """The document files on disk: name, size, modification time and written metadata."""
        out: list[dict[str, Any]] = []
        for name, path in sorted(self.files().items()):
            try:
                info = path.stat()
            except OSError:
                continue
            modified = datetime.fromtimestamp(info.st_mtime, UTC).isoformat(timespec="seconds")
            out.append(
                {"file": name, "size": info.st_size, "modified": modified, "metadata": self.metadata(path)}
            )
        return out
