"""Loaders: the real library, and bad or unusual input written by the tests themselves."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from assistant.config import IngestSettings
from assistant.schema import STATUS_AMENDED, STATUS_CURRENT, STATUS_REPEALED
from ingest.chunking import chunk_document
from ingest.loaders import METADATA_FIELDS, LoadError, discover_files, load_file

LIBRARY = Path(
    os.environ.get("POLICY_TEST_LIBRARY") or Path(__file__).resolve().parents[2] / "shared" / "corpus"
)
needs_library = pytest.mark.skipif(not LIBRARY.is_dir(), reason=f"document library not found at {LIBRARY}")


@pytest.fixture
def settings() -> IngestSettings:
    return IngestSettings()


def _write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8")
    else:
        path.write_bytes(data)
    return path


def _minimal_pdf(content: bytes) -> bytes:
    """A one-page PDF with the given content stream, built by hand (Helvetica, no embedding)."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(content)).encode() + b" >>\nstream\n" + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


# --- discovery ------------------------------------------------------------------------------


def test_discover_walks_folders_and_skips_hidden_and_notes(tmp_path: Path, settings: IngestSettings) -> None:
    _write(tmp_path / "b.md", "正文")
    _write(tmp_path / "sub" / "a.txt", "正文")
    _write(tmp_path / "sub" / "deeper" / "c.docx", b"x")
    _write(tmp_path / "table.xlsx", b"x")
    _write(tmp_path / ".hidden.md", "正文")
    _write(tmp_path / ".git" / "config.md", "正文")
    _write(tmp_path / "README.md", "说明")
    _write(tmp_path / "sub" / "SOURCES.md", "来源")
    extra = _write(tmp_path.parent / f"{tmp_path.name}_single.md", "正文")
    found = discover_files([tmp_path, extra], settings)
    expected = [
        tmp_path / "b.md",
        tmp_path / "sub" / "a.txt",
        tmp_path / "sub" / "deeper" / "c.docx",
        tmp_path / "table.xlsx",
        extra,
    ]
    assert found == sorted(expected)
    with pytest.raises(LoadError, match="不支持的文件类型 .xlsx"):
        load_file(tmp_path / "table.xlsx", settings)


def test_missing_path_is_reported(tmp_path: Path, settings: IngestSettings) -> None:
    missing = tmp_path / "nope.md"
    assert discover_files([missing], settings) == [missing]
    with pytest.raises(LoadError, match="找不到文件"):
        load_file(missing, settings)


# --- the real library -------------------------------------------------------------------------


@needs_library
def test_library_files_load_with_metadata(settings: IngestSettings) -> None:
    paths = discover_files([LIBRARY], settings)
    assert paths and all(p.name != "SOURCES.md" for p in paths)
    docs = {p.name: load_file(p, settings) for p in paths}
    for name, doc in docs.items():
        assert set(doc.metadata) == set(METADATA_FIELDS)
        assert all(isinstance(v, str) for v in doc.metadata.values())
        assert doc.metadata["title"] and doc.metadata["issuer"] and doc.metadata["date"]
        assert doc.metadata["status"] in {STATUS_CURRENT, STATUS_AMENDED, STATUS_REPEALED}
        assert doc.encoding == "utf-8"
        assert not doc.text.startswith("---") and "\nstatus:" not in doc.text[:400], name
        raw = (LIBRARY / name).read_bytes()
        assert doc.content_hash == hashlib.sha256(raw).hexdigest()
        assert doc.doc_id == hashlib.sha1(name.encode()).hexdigest()[:16]
        # The body is a verbatim part of the file, so offsets also make sense in the file.
        assert doc.text in raw.decode("utf-8")
    amended = docs["中华人民共和国监察法_2018.md"].metadata
    assert amended["status"] == STATUS_AMENDED and amended["superseded_by"] == "中华人民共和国监察法_2024.md"
    assert docs["激励干部担当作为工作会议讲话.md"].metadata["kind"] == "讲话"
    assert docs["中华人民共和国公务员法_2018.md"].metadata["date"].startswith("2018-12-29")


# --- Markdown -------------------------------------------------------------------------------------


def test_markdown_front_matter_defaults_and_dates(tmp_path: Path, settings: IngestSettings) -> None:
    path = _write(
        tmp_path / "某规定.md",
        "---\nissuer: 区委\ndate: 2020-01-02\nextra: 忽略\n---\n\n　　第一条　正文。\n",
    )
    doc = load_file(path, settings)
    assert doc.metadata["title"] == "某规定"  # falls back to the file stem
    assert doc.metadata["status"] == STATUS_CURRENT
    assert doc.metadata["date"] == "2020-01-02"  # YAML parsed a date; stored as str
    assert doc.metadata["superseded_by"] == "" and doc.metadata["kind"] == ""
    assert doc.text == "　　第一条　正文。"  # full-width indentation kept


def test_markdown_without_front_matter(tmp_path: Path, settings: IngestSettings) -> None:
    doc = load_file(_write(tmp_path / "无元数据.md", "# 标题\n\n正文内容。\n"), settings)
    assert doc.metadata["title"] == "无元数据" and doc.text == "# 标题\n\n正文内容。\n"


def test_broken_front_matter_is_rejected(tmp_path: Path, settings: IngestSettings) -> None:
    path = _write(tmp_path / "坏元数据.md", "---\ntitle: [未闭合\nstatus: 现行\n---\n正文。\n")
    with pytest.raises(LoadError, match="front matter.*格式错误"):
        load_file(path, settings)
    listed = _write(tmp_path / "列表元数据.md", "---\n- 一\n- 二\n---\n正文。\n")
    with pytest.raises(LoadError, match="键: 值"):
        load_file(listed, settings)


def test_script_in_markdown_is_kept_as_text(tmp_path: Path, settings: IngestSettings) -> None:
    body = "第一条 正文<script>alert('x')</script>结束。"
    doc = load_file(_write(tmp_path / "脚本.md", f"---\ntitle: 脚本测试\n---\n{body}\n"), settings)
    assert doc.text == body
    chunks = chunk_document(doc, settings)
    assert any("<script>alert('x')</script>" in c.text for c in chunks)


# --- plain text and encodings ------------------------------------------------------------------


def test_gbk_text_is_decoded(tmp_path: Path, settings: IngestSettings) -> None:
    text = "第一条　为了规范公务员的管理，保障公务员的合法权益，制定本法。\n第二条　本法所称公务员，是指依法履行公职的工作人员。\n"
    doc = load_file(_write(tmp_path / "旧编码.txt", text.encode("gbk")), settings)
    assert doc.text == text
    assert doc.encoding == "gb18030"
    assert [c.metadata["article"] for c in chunk_document(doc, settings)] == ["第一条", "第二条"]


def test_utf8_text_with_bom_and_crlf(tmp_path: Path, settings: IngestSettings) -> None:
    doc = load_file(_write(tmp_path / "bom.txt", "\ufeff第一行\r\n第二行\r\n".encode()), settings)
    assert doc.text == "第一行\n第二行\n" and doc.encoding == "utf-8"


def test_binary_file_is_rejected(tmp_path: Path, settings: IngestSettings) -> None:
    path = _write(tmp_path / "数据.txt", bytes(range(256)) * 4)
    with pytest.raises(LoadError, match="二进制"):
        load_file(path, settings)
    renamed = _write(tmp_path / "图片.md", b"\x89PNG\r\n\x1a\n" + bytes(range(1, 256)) * 8)
    with pytest.raises(LoadError, match="编码|二进制"):
        load_file(renamed, settings)


@pytest.mark.parametrize("content", [b"", b"   \n\n\t", "　　\n".encode()])
def test_empty_file_is_rejected(tmp_path: Path, settings: IngestSettings, content: bytes) -> None:
    with pytest.raises(LoadError, match="空"):
        load_file(_write(tmp_path / "空.txt", content), settings)


def test_front_matter_only_is_rejected(tmp_path: Path, settings: IngestSettings) -> None:
    with pytest.raises(LoadError, match="没有可用的正文"):
        load_file(_write(tmp_path / "只有元数据.md", "---\ntitle: 空\n---\n\n"), settings)


def test_oversized_file_is_rejected(tmp_path: Path) -> None:
    small = IngestSettings(max_file_bytes=100)
    path = _write(tmp_path / "大文件.txt", "内容" * 100)
    with pytest.raises(LoadError, match="文件过大.*max_file_bytes"):
        load_file(path, small)


# --- Word -------------------------------------------------------------------------------------


def test_real_docx(tmp_path: Path, settings: IngestSettings) -> None:
    import docx

    document = docx.Document()
    document.core_properties.title = "测试规定"
    document.add_heading("测试规定", level=1)
    document.add_paragraph("第一章　总则")
    document.add_paragraph("第一条　为了测试，制定本规定。")
    document.add_paragraph("第二条　本规定自发布之日起施行。")
    table = document.add_table(rows=1, cols=2)
    table.rows[0].cells[0].text = "名称"
    table.rows[0].cells[1].text = "内容"
    path = tmp_path / "测试规定.docx"
    document.save(str(path))
    doc = load_file(path, settings)
    assert (
        doc.text
        == "测试规定\n第一章　总则\n第一条　为了测试，制定本规定。\n第二条　本规定自发布之日起施行。\n名称\t内容"
    )
    assert doc.metadata["title"] == "测试规定" and doc.metadata["status"] == STATUS_CURRENT
    chunks = chunk_document(doc, settings)
    assert [c.metadata["article"] for c in chunks] == ["第一条", "第二条"]
    assert chunks[0].metadata["heading_path"] == "第一章 总则"


def test_corrupt_docx_is_rejected(tmp_path: Path, settings: IngestSettings) -> None:
    with pytest.raises(LoadError, match="Word 文档"):
        load_file(_write(tmp_path / "坏文档.docx", b"PK\x03\x04 this is not a real zip"), settings)
    with pytest.raises(LoadError, match="Word 文档"):
        load_file(_write(tmp_path / "纯文本.docx", "只是文本"), settings)


# --- HTML -------------------------------------------------------------------------------------


def test_html_strips_scripts_and_page_furniture(tmp_path: Path, settings: IngestSettings) -> None:
    html = """<!doctype html><html><head><title>网页标题</title><style>p{color:red}</style></head>
<body><nav>首页 | 导航</nav><header>站点页眉</header>
<script>alert("恶意脚本")</script>
<article><h1>关于某事的通知</h1><p>第一段<b>加粗</b>内容。</p><p>第二段内容。<br>换行后内容。</p></article>
<aside>侧栏</aside><footer>版权所有</footer></body></html>"""
    doc = load_file(_write(tmp_path / "通知.html", html), settings)
    assert doc.text == "关于某事的通知\n第一段加粗内容。\n第二段内容。\n换行后内容。"
    for furniture in ("恶意脚本", "alert", "导航", "页眉", "侧栏", "版权", "color"):
        assert furniture not in doc.text
    assert doc.metadata["title"] == "网页标题"


def test_gbk_html(tmp_path: Path, settings: IngestSettings) -> None:
    html = '<html><head><meta charset="gbk"></head><body><p>第一条　中文内容。</p></body></html>'
    doc = load_file(_write(tmp_path / "旧网页.htm", html.encode("gbk")), settings)
    assert doc.text == "第一条　中文内容。"
    assert doc.encoding in {"gbk", "gb2312", "gb18030"}


# --- PDF --------------------------------------------------------------------------------------


def test_real_pdf_with_text_layer(tmp_path: Path, settings: IngestSettings) -> None:
    pdf = _minimal_pdf(b"BT /F1 18 Tf 72 700 Td (Article 1 applies to all staff.) Tj ET")
    doc = load_file(_write(tmp_path / "english.pdf", pdf), settings)
    assert "Article 1 applies to all staff." in doc.text
    assert doc.metadata["title"] == "english"


def test_pdf_without_text_layer_is_rejected(tmp_path: Path, settings: IngestSettings) -> None:
    pdf = _minimal_pdf(b"0 0 1 rg 72 600 200 100 re f")  # a filled rectangle, no text
    with pytest.raises(LoadError, match="PDF 没有文本层.*OCR"):
        load_file(_write(tmp_path / "扫描件.pdf", pdf), settings)


def test_corrupt_pdf_is_rejected(tmp_path: Path, settings: IngestSettings) -> None:
    with pytest.raises(LoadError, match="PDF"):
        load_file(_write(tmp_path / "坏.pdf", b"%PDF-1.4\n1 0 obj garbage\n%%EOF"), settings)
    with pytest.raises(LoadError, match="PDF"):
        load_file(_write(tmp_path / "不是.pdf", b"hello, not a pdf at all"), settings)
