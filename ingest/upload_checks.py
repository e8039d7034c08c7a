"""What an upload must pass before a byte of it is written: the file name, the content
against its type, and the metadata form; and the Markdown front matter the form becomes.

Every refusal is an ``UploadRefused`` whose message says why and what to do (Chinese).
"""

from __future__ import annotations

import io
import re
import unicodedata
import zipfile
from pathlib import Path
from typing import Any

from ingest.formats import LOADERS, MAX_METADATA_CHARS, LoadError
from ingest.sidecar import is_sidecar

STATUSES = ("现行", "已修正", "已废止")
MAX_NAME_CHARS = 120
FORM_FIELDS = ("title", "issuer", "date", "status", "superseded_by")
MARKDOWN = (".md", ".markdown")
# Characters kept in a file name; anything else becomes "_".
_NAME_OK = re.compile(r"[\w\-.（）()《》【】〔〕·、 ]")


class UploadRefused(ValueError):
    """An upload or change that is not made; ``str(e)`` says why and what to do (Chinese)."""


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
