"""Changing the library folder from the admin console: upload, replace, mark 已废止, remove.

Everything an upload brings is checked before a byte is written: the file name (no folders,
no leading dot, a listed suffix, sanitised characters), the size (``ingest.max_upload_bytes``)
and the content (magic bytes: ``%PDF-``; a zip holding ``word/document.xml``; UTF-8 text for
.md/.txt/.html), and the file must parse into text with the library's own parser. A refused
upload raises ``UploadRefused`` (a Chinese reason) and leaves nothing behind. Files are
written atomically (temp file, then rename); a removed or replaced file is moved to
``ingest.removed_dir``, never deleted. Metadata from the form goes into the front matter of
Markdown and into a sidecar (``ingest.sidecar``) for every other type.

This module changes files only; the caller runs an ingest afterwards (``run_ingest``), and
the served library follows when that ingest is complete.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import tempfile
import unicodedata
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant.config import Settings
from ingest.discovery import discover
from ingest.formats import LOADERS, MAX_METADATA_CHARS, LoadError
from ingest.sidecar import is_sidecar, read_sidecar, sidecar_path, write_sidecar

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings

STATUSES = ("现行", "已修正", "已废止")
MAX_NAME_CHARS = 120
FORM_FIELDS = ("title", "issuer", "date", "status", "superseded_by")
_MARKDOWN = (".md", ".markdown")
# Characters kept in a file name; anything else becomes "_".
_NAME_OK = re.compile(r"[\w\-.（）()《》【】〔〕·、 ]")


class UploadRefused(ValueError):
    """An upload or change that is not made; ``str(e)`` says why and what to do (Chinese)."""


@dataclass(frozen=True)
class Change:
    file: str  # the document's file name after the change
    action: str  # upload | replace | status | remove
    detail: str  # Chinese, for the audit log


def safe_name(name: str, allowed: list[str]) -> str:
    """The file name to store ``name`` under, or ``UploadRefused``: no folders, no hidden files,
    a listed suffix, odd characters replaced by "_"."""
    name = unicodedata.normalize("NFC", (name or "").strip())
    if not name:
        raise UploadRefused("文件名为空，请选择要上传的文件。")
    if "/" in name or "\\" in name or "\x00" in name or name in (".", ".."):
        raise UploadRefused("文件名中不能包含路径（/ 或 \\ 或 ..），请只上传文件本身。")
    if name.startswith("."):
        raise UploadRefused("文件名不能以 . 开头（隐藏文件不会被导入），请改名后再上传。")
    if is_sidecar(name):
        raise UploadRefused("不能上传以 .meta.json 结尾的文件（这是元数据文件的名称）。")
    suffix = Path(name).suffix.lower()
    if suffix not in allowed:
        raise UploadRefused(f"不支持的文件类型 {suffix or '（无扩展名）'}：只接受 {'、'.join(allowed)}。")
    stem = "".join(c if _NAME_OK.match(c) else "_" for c in Path(name).stem).strip(" .")
    if not stem:
        raise UploadRefused("文件名无效，请改用中文、字母或数字命名后再上传。")
    return stem[:MAX_NAME_CHARS] + suffix


def check_content(suffix: str, data: bytes) -> None:
    """``UploadRefused`` unless ``data`` really is a file of type ``suffix`` with readable text."""
    if not data.strip():
        raise UploadRefused("文件是空的，请选择有正文的文件。")
    if suffix == ".pdf" and not data.startswith(b"%PDF-"):
        raise UploadRefused("文件内容不是 PDF（扩展名是 .pdf，但内容不符），已拒收。请上传真正的 PDF 文件。")
    if suffix == ".docx":
        if not data.startswith(b"PK\x03\x04"):
            raise UploadRefused("文件内容不是 Word 文档（.docx），已拒收。旧版 .doc 请先另存为 .docx。")
        try:
            names = zipfile.ZipFile(io.BytesIO(data)).namelist()
        except zipfile.BadZipFile as exc:
            raise UploadRefused("Word 文档已损坏（无法打开压缩包），已拒收。请重新保存后再上传。") from exc
        if "word/document.xml" not in names:
            raise UploadRefused("文件内容不是 Word 文档（缺少 word/document.xml），已拒收。")
    if suffix in (".md", ".markdown", ".txt", ".html", ".htm"):
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise UploadRefused("文件不是 UTF-8 编码的文本，已拒收。请另存为 UTF-8 编码后再上传。") from exc
        if "\x00" in text:
            raise UploadRefused("文件含有空字节，不是文本文件，已拒收。")
    try:
        text, _meta, _enc = LOADERS[suffix](Path(f"upload{suffix}"), data)
    except LoadError as exc:
        raise UploadRefused(f"文件无法读取：{exc}") from exc
    except Exception as exc:  # a parser failing on a hostile file: refused, nothing stored
        raise UploadRefused(f"文件无法解析（{type(exc).__name__}），已拒收。请检查文件后再上传。") from exc
    if not text.strip():
        raise UploadRefused("文件没有可用的正文（可能是扫描件），已拒收。请上传带文字的文件。")


def clean_form(form: dict[str, Any]) -> dict[str, str]:
    """The metadata form: known fields only, trimmed, status one of ``STATUSES``."""
    meta = {k: " ".join(str(form.get(k) or "").split()) for k in FORM_FIELDS}
    for key, value in meta.items():
        if len(value) > MAX_METADATA_CHARS:
            raise UploadRefused(f"元数据 {key} 太长（超过 {MAX_METADATA_CHARS} 字），请精简。")
    if meta["status"] and meta["status"] not in STATUSES:
        raise UploadRefused(f"状态只能是 {'、'.join(STATUSES)} 之一。")
    if meta["date"] and not re.fullmatch(r"\d{4}(-\d{1,2}(-\d{1,2})?)?", meta["date"]):
        raise UploadRefused("日期格式应为 2024-01-31（或 2024、2024-01）。")
    return meta


def with_front_matter(data: bytes, meta: dict[str, str]) -> bytes:
    """Markdown ``data`` with ``meta`` merged into its front matter (non-empty values win)."""
    import yaml
    from frontmatter.default_handlers import YAMLHandler

    text = data.decode("utf-8-sig").replace("\r\n", "\n")
    handler = YAMLHandler()
    found: dict[str, Any] = {}
    body = text
    if handler.detect(text):
        try:
            fm, body = handler.split(text)
            loaded = handler.load(fm)
        except Exception as exc:
            raise UploadRefused(
                "文件开头的 front matter（--- 之间的元数据）格式错误，请修正后再上传。"
            ) from exc
        found = dict(loaded) if isinstance(loaded, dict) else {}
    merged = {str(k): str(v) for k, v in found.items()}
    merged.update({k: v for k, v in meta.items() if v})
    head = yaml.safe_dump(merged, allow_unicode=True, sort_keys=False, default_flow_style=False)
    return f"---\n{head}---\n\n{body.lstrip(chr(10))}".encode()


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
            if path.suffix.lower() in _MARKDOWN:
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
        if suffix in _MARKDOWN:
            data = with_front_matter(data, meta)
        self.folder.mkdir(parents=True, exist_ok=True)
        if old is not None:
            self._move_away(old)
        try:
            _write_atomic(target, data, overwrite=old is not None)
        except FileExistsError as exc:  # another upload of the same name got there first
            raise UploadRefused(
                f"文件库中已有同名文件 {target.name}。请刷新列表后选择“替换”，或改名。"
            ) from exc
        if suffix not in _MARKDOWN and any(meta.values()):
            write_sidecar(target, meta)
        action = "replace" if old is not None else "upload"
        what = f"替换 {old.name} 为新版本" if old is not None else "上传"
        return Change(target.name, action, f"{what} {target.name}（{len(data)} 字节）")

    def set_status(self, file: str, status: str, superseded_by: str = "") -> Change:
        meta = clean_form({"status": status, "superseded_by": superseded_by})
        if not meta["status"]:
            raise UploadRefused(f"请选择状态：{'、'.join(STATUSES)}。")
        path = self._find(file)
        if path.suffix.lower() in _MARKDOWN:
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

    def __init__(self, settings: Settings, embeddings: Embeddings) -> None:
        super().__init__(settings)
        self.embeddings = embeddings

    def reindex(self, on_progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
        """One ingest of the configured library (inside the serving process); its report as a dict."""
        from ingest.indexer import run_ingest

        report = run_ingest(self.settings, self.embeddings, progress=False, on_progress=on_progress)
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
