"""One parser per file type: the file's bytes -> (text, metadata, encoding).

Every parser reads the bytes it is given (never the path again) and raises
``LoadError`` with a Chinese reason; ``ingest.loaders.load_file`` turns any
other exception into a ``LoadError`` too (``unreadable``), so a broken or
hostile file is one skip in the report, never an aborted run.
"""

from __future__ import annotations

import datetime as dt
import io
import re
from collections.abc import Callable
from pathlib import Path

# Front-matter fields copied into the document metadata ("" when absent).
METADATA_FIELDS: tuple[str, ...] = ("title", "issuer", "date", "status", "superseded_by", "kind", "source")

SUPPORTED_SUFFIXES: tuple[str, ...] = (".md", ".markdown", ".txt", ".docx", ".html", ".htm", ".pdf")

# Encodings reported by charset-normalizer that are read as GB18030 (their superset).
_CHINESE_ENCODINGS = {"gb2312", "gbk", "gb18030", "hz", "hz_gb_2312", "cp936", "euc_cn"}

# Elements whose text is page furniture, not document content.
_HTML_DROP_TAGS = ("script", "style", "nav", "header", "footer", "aside", "noscript", "template", "iframe")
_HTML_BLOCK_TAGS = (
    "p", "div", "section", "article", "main", "li", "ul", "ol", "table", "tr", "h1", "h2", "h3",
    "h4", "h5", "h6", "blockquote", "pre", "dd", "dt", "dl", "figure", "figcaption", "td", "th",
)  # fmt: skip


class LoadError(Exception):
    """A file that cannot be turned into a document; ``str(e)`` is a Chinese reason."""


# A front-matter value longer than this (after joining lists) is refused, not truncated.
MAX_METADATA_CHARS = 2000


def _to_str(value: object, key: str = "", depth: int = 0) -> str:
    """A front-matter value as text: scalars, dates, and lists of them (joined with 、).

    Bounded: YAML aliases can make a list that contains itself, or a few lines
    that expand to millions of items ("billion laughs"); both are refused
    before any large string is built.
    """
    if value is None:
        return ""
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, dict) or depth > 1:
        raise LoadError(
            f"front matter（文件开头 --- 之间的元数据）中 {key} 的值结构过于复杂（嵌套的列表或“键: 值”）。"
            "请改为一行文字后再导入。"
        )
    if isinstance(value, list | tuple):
        parts: list[str] = []
        size = 0
        for item in value:
            parts.append(_to_str(item, key, depth + 1))
            size += len(parts[-1]) + 1
            if size > MAX_METADATA_CHARS:
                break
        text = "、".join(parts)
    else:
        text = str(value).strip()
    if len(text) > MAX_METADATA_CHARS:
        raise LoadError(
            f"front matter（文件开头 --- 之间的元数据）中 {key} 的值过长（超过 {MAX_METADATA_CHARS} 字）。"
            "请精简后再导入。"
        )
    return text


# --- plain text ---------------------------------------------------------------------------


def _decode_text(raw: bytes) -> tuple[str, str]:
    """Decode text bytes: UTF-8 first, else detection (GB18030 for Chinese encodings)."""
    if b"\x00" in raw:
        raise LoadError("这是二进制文件（含空字节），不是文本。请导出为 UTF-8 文本或 .docx 后再导入。")
    try:
        return raw.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(raw).best()
    encoding = best.encoding.lower() if best is not None else ""
    if encoding in _CHINESE_ENCODINGS or best is None or _looks_chinese(raw):
        try:
            text = raw.decode("gb18030")
            if _mostly_printable(text):
                return text, "gb18030"
        except UnicodeDecodeError:
            pass
    if best is not None:
        text = str(best)
        if _mostly_printable(text):
            return text, encoding
    raise LoadError("无法识别文件编码（可能是二进制文件）。请另存为 UTF-8 编码的文本后再导入。")


def _looks_chinese(raw: bytes) -> bool:
    """True when the bytes decode as GB18030 into mostly CJK text."""
    try:
        text = raw.decode("gb18030")
    except UnicodeDecodeError:
        return False
    letters = [c for c in text if not c.isspace() and not c.isascii()]
    if not letters:
        return False
    cjk = sum(
        1
        for c in letters
        if "\u4e00" <= c <= "\u9fff" or "\u3000" <= c <= "\u303f" or "\uff00" <= c <= "\uffef"
    )
    return cjk / len(letters) > 0.8


def _mostly_printable(text: str) -> bool:
    if not text:
        return False
    bad = sum(1 for c in text if (ord(c) < 32 and c not in "\t\n\r\f") or c == "\ufffd")
    return bad / len(text) < 0.01


def _load_txt(path: Path, raw: bytes) -> tuple[str, dict[str, str], str]:
    text, encoding = _decode_text(raw)
    return _normalise_newlines(text), {}, encoding


def _normalise_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


# --- Markdown with YAML front matter -------------------------------------------------------


def _load_markdown(path: Path, raw: bytes) -> tuple[str, dict[str, str], str]:
    from frontmatter.default_handlers import YAMLHandler

    text, encoding = _decode_text(raw)
    text = _normalise_newlines(text)
    handler = YAMLHandler()
    if not handler.detect(text):
        return text, {}, encoding
    try:
        fm, body = handler.split(text)
    except ValueError as exc:
        raise LoadError(
            "文件开头的 front matter（--- 之间的元数据）没有结束标记 ---。请补全后再导入。"
        ) from exc
    try:
        data = handler.load(fm)
    except Exception as exc:  # YAMLError, and e.g. ValueError for "date: 2024-13-45"
        mark = getattr(exc, "problem_mark", None)
        where = f"第 {mark.line + 1} 行" if mark is not None else ""
        raise LoadError(
            f"front matter（文件开头 --- 之间的元数据）格式错误{where and '（' + where + '）'}：{exc.__class__.__name__}。"
            "请按 YAML 格式修正（例如 “title: 标题”，冒号后加空格；日期写成 2024-01-31）后再导入。"
        ) from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise LoadError("front matter（文件开头 --- 之间的元数据）应为“键: 值”形式。请修正后再导入。")
    metadata = {str(k): _to_str(v, str(k)) for k, v in data.items() if str(k) in METADATA_FIELDS}
    # Keep the body as it stands in the file (leading full-width indentation matters).
    body = body.lstrip("\n").rstrip()
    return body, metadata, encoding


# --- Word ------------------------------------------------------------------------------


def _load_docx(path: Path, raw: bytes) -> tuple[str, dict[str, str], str]:
    import docx
    from docx.table import Table

    try:
        # Any failure of the package or its XML (BadZipFile, lxml's XMLSyntaxError for a
        # malformed [Content_Types].xml, a missing part, ...) means the same to the operator.
        document = docx.Document(io.BytesIO(raw))
        lines: list[str] = []
        for block in document.iter_inner_content():
            if isinstance(block, Table):
                for row in block.rows:
                    cells = [cell.text.strip() for cell in row.cells]
                    lines.append("\t".join(c for c in cells if c))
            else:
                lines.append(block.text)
        title = (document.core_properties.title or "").strip()
    except Exception as exc:
        raise unreadable(".docx", exc) from exc
    metadata: dict[str, str] = {"title": title} if title else {}
    return "\n".join(lines).strip(), metadata, "utf-8"


# --- HTML ------------------------------------------------------------------------------


def _load_html(path: Path, raw: bytes) -> tuple[str, dict[str, str], str]:
    from bs4 import BeautifulSoup, NavigableString

    if b"\x00" in raw:
        raise LoadError("这是二进制文件（含空字节），不是网页。请确认文件内容后再导入。")
    soup = BeautifulSoup(raw, "html.parser")
    encoding = (soup.original_encoding or "utf-8").lower()
    metadata: dict[str, str] = {}
    if soup.title is not None and soup.title.get_text(strip=True):
        metadata["title"] = soup.title.get_text(strip=True)
    for tag in soup.find_all(_HTML_DROP_TAGS):
        tag.decompose()
    if soup.head is not None:
        soup.head.decompose()
    for br in soup.find_all("br"):
        br.replace_with(NavigableString("\n"))
    for tag in soup.find_all(_HTML_BLOCK_TAGS):
        tag.insert_before(NavigableString("\n"))
        tag.insert_after(NavigableString("\n"))
    text = soup.get_text()
    lines = [re.sub(r"[ \t\r\f\v\xa0]+", " ", line).strip() for line in text.split("\n")]
    return "\n".join(line for line in lines if line), metadata, encoding


# --- PDF -------------------------------------------------------------------------------


def _load_pdf(path: Path, raw: bytes) -> tuple[str, dict[str, str], str]:
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(raw))
        if reader.is_encrypted and not reader.decrypt(""):
            raise LoadError("PDF 已加密，无法读取。请去除密码保护后再导入。")
        pages = [page.extract_text() or "" for page in reader.pages]
        info = reader.metadata
        title = str(info.title).strip() if info is not None and info.title else ""
    except LoadError:
        raise
    except Exception as exc:  # PdfReadError, zlib.error, NotImplementedError, RecursionError, ...
        raise unreadable(".pdf", exc) from exc
    text = "\n".join(page.strip("\n") for page in pages).strip()
    if not text:
        raise LoadError(
            "PDF 没有文本层（可能是扫描件或图片）。请先做文字识别（OCR）生成带文字层的 PDF，或改用 .docx / .txt 后再导入。"
        )
    metadata: dict[str, str] = {"title": title} if title else {}
    return _normalise_newlines(text), metadata, "utf-8"


Loader = Callable[[Path, bytes], tuple[str, dict[str, str], str]]

# What the report says when a parser fails on a file: (what failed, what to do).
_WORD = ("无法打开 Word 文档", "文件可能已损坏或不是 .docx 格式（旧版 .doc 请先另存为 .docx）。")
_PDF = ("无法打开 PDF", "文件可能已损坏。请重新导出 PDF，或改用 .docx / .txt 后再导入。")
_HTML = ("无法解析网页文件", "文件可能已损坏。请重新保存网页，或改用 .docx / .txt 后再导入。")
_TEXT = ("无法解析文本文件", "文件可能已损坏。请另存为 UTF-8 编码的文本后再导入。")
_UNREADABLE: dict[str, tuple[str, str]] = {
    ".md": _TEXT, ".markdown": _TEXT, ".txt": _TEXT, ".docx": _WORD, ".html": _HTML, ".htm": _HTML, ".pdf": _PDF,
}  # fmt: skip


def unreadable(suffix: str, exc: BaseException) -> LoadError:
    what, advice = _UNREADABLE.get(suffix, ("无法读取文件", "请检查文件后再导入。"))
    name = type(exc).__name__
    if name.islower():  # zlib.error, struct.error: the module says more than the class
        name = f"{type(exc).__module__}.{name}"
    return LoadError(f"{what}（{name}），{advice}")


LOADERS: dict[str, Loader] = {
    ".md": _load_markdown,
    ".markdown": _load_markdown,
    ".txt": _load_txt,
    ".docx": _load_docx,
    ".html": _load_html,
    ".htm": _load_html,
    ".pdf": _load_pdf,
}
