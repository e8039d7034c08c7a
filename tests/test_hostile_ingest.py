"""Hostile input for the ingest side (issue 11, items 2, 7, 8 and the ingest parts of 9).

- A fuzz test of the loaders: random and mutated files of every supported type,
  built from small seed documents made here, with a seeded RNG. ``load_file``
  may only ever return a document or raise ``LoadError`` with a Chinese reason.
- Poisoned libraries ingested with ``run_ingest`` into a real embedded Chroma:
  no abort, good documents stored, nothing previously stored lost.
- Symlinks leaving the library, hidden files, duplicate documents.
- ``ingest --rebuild`` building aside and switching over only when complete,
  on embedded Chroma and on a real ``chroma run``.

Vectors come from ``HashingEmbeddings`` (deterministic, no model): what is
tested here is the bookkeeping, not the meaning of the vectors.
"""

from __future__ import annotations

import io
import json
import logging
import random
import re
import shutil
import signal
import subprocess
import sys
import time
import warnings
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
from hashing_embeddings import HashingEmbeddings

import policy_cli
from assistant.config import IngestSettings, Settings
from assistant.library_store import library_stats
from assistant.store import open_client, open_collection
from ingest import indexer
from ingest.chunking import chunk_document
from ingest.indexer import run_ingest
from ingest.loaders import LoadError, load_file
from ingest.rebuild import PREVIOUS_SUFFIX, REBUILD_SUFFIX

# --------------------------------------------------------------------------- seed documents

ARTICLES = [
    "第一章　总则",
    "第一条　为了规范测试文件的导入，保证文件库的完整，制定本规定。",
    "第二条　本规定适用于各级机关。对在改革创新中出现的失误错误，应当区分情况、容错纠错。",
    "第二章　附则",
    "第三条　本规定自发布之日起施行。",
]
BODY = "\n\n".join(ARTICLES)
PDF_LINES = ["Article 1 This rule applies to all staff.", "Article 2 It takes effect on publication."]


def seed_md() -> bytes:
    front = "---\ntitle: 测试规定\nissuer: 测试机关\ndate: 2024-01-02\nstatus: 现行\nkind: 党内法规\n---\n\n"
    return (front + BODY + "\n").encode("utf-8")


def seed_txt() -> bytes:
    return (BODY + "\n").encode("utf-8")


def seed_html() -> bytes:
    paragraphs = "".join(f"<p>{line}</p>" for line in ARTICLES)
    return (
        '<!doctype html><html><head><meta charset="utf-8"><title>测试规定</title>'
        "<style>p{margin:0}</style></head><body><nav>首页</nav><article><h1>测试规定</h1>"
        f"{paragraphs}</article><script>var x = 1;</script><footer>版权</footer></body></html>"
    ).encode()


def _rezip(members: list[tuple[str, bytes]], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A zip of ``members`` with fixed timestamps, so the same members always give the same bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, content in members:
            archive.writestr(zipfile.ZipInfo(name, date_time=(2024, 1, 2, 0, 0, 0)), content, compression)
    return buffer.getvalue()


def seed_docx() -> bytes:
    import docx

    document = docx.Document()
    document.core_properties.title = "测试规定"
    document.add_heading("测试规定", level=1)
    for line in ARTICLES:
        document.add_paragraph(line)
    table = document.add_table(rows=1, cols=2)
    table.rows[0].cells[0].text = "名称"
    table.rows[0].cells[1].text = "内容"
    buffer = io.BytesIO()
    document.save(buffer)
    with zipfile.ZipFile(buffer) as saved:  # python-docx stamps members with the current time
        return _rezip([(info.filename, saved.read(info)) for info in saved.infolist()])


def seed_pdf(compress: bool = False) -> bytes:
    """A two-page PDF with a text layer, made with pypdf (Helvetica, not embedded)."""
    from pypdf import PdfWriter
    from pypdf.generic import ContentStream, DictionaryObject, NameObject

    writer = PdfWriter()
    font = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Font"),
            NameObject("/Subtype"): NameObject("/Type1"),
            NameObject("/BaseFont"): NameObject("/Helvetica"),
        }
    )
    for line in PDF_LINES:
        page = writer.add_blank_page(width=612, height=792)
        page[NameObject("/Resources")] = DictionaryObject(
            {NameObject("/Font"): DictionaryObject({NameObject("/F1"): font})}
        )
        content = ContentStream(None, writer)
        content.set_data(f"BT /F1 14 Tf 72 700 Td ({line}) Tj ET".encode("latin-1"))
        page.replace_contents(content)
        if compress:
            page.compress_content_streams()
    writer.add_metadata({"/Title": "Test rule"})
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


# --------------------------------------------------------------------------- mutators

# Byte strings that mean something to one of the parsers.
TOKENS: list[bytes] = [
    b"\x00", b"\xff\xfe", b"\xfe\xff", b"\xef\xbb\xbf", b"\xed\xa0\x80", b"\xc3", b"\x80\x81",
    b"---\n", b"\n---\n", b"<", b"</", b">", b"<!--", b"-->", b"<![CDATA[", b"<!DOCTYPE x [",
    b"&#xD800;", b"&#99999999999;", b"&amp", b"\r", b"\n\n", b"\t", b"obj", b"endobj", b"stream\n",
    b"endstream", b" 0 R", b"<<", b">>", b"[", b"]", b"(", b")", b"\\", b"%", b"/Length 999999",
    b"/Filter /FlateDecode", b"9999999999", b"-1", b"PK\x03\x04", b"PK\x05\x06", b"{{", b"}}",
    b"&a ", b"*a", b"!!python/object/apply:os.system ['true']", "第一条".encode(), "第".encode()[:2],
]  # fmt: skip
INTERESTING = [0x00, 0x01, 0x0A, 0x0D, 0x20, 0x22, 0x25, 0x2F, 0x3C, 0x3E, 0x5B, 0x7F, 0x80, 0xC0, 0xFF]


def _flip(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
    return bytes(out)


def _overwrite(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        out[rng.randrange(len(out))] = rng.choice(INTERESTING) if rng.random() < 0.7 else rng.randrange(256)
    return bytes(out)


def _truncate(rng: random.Random, data: bytes) -> bytes:
    return data[: rng.randrange(len(data))]


def _insert(rng: random.Random, data: bytes) -> bytes:
    pos = rng.randrange(len(data) + 1)
    if rng.random() < 0.5:
        garbage = rng.choice(TOKENS) * rng.choice([1, 1, 2, 10, 200])
    else:
        garbage = rng.randbytes(rng.randint(1, 64))
    return data[:pos] + garbage + data[pos:]


def _delete(rng: random.Random, data: bytes) -> bytes:
    start = rng.randrange(len(data))
    return data[:start] + data[start + rng.randint(1, 256) :]


def _duplicate(rng: random.Random, data: bytes) -> bytes:
    start = rng.randrange(len(data))
    piece = data[start : start + rng.randint(1, 512)]
    pos = rng.randrange(len(data) + 1)
    return data[:pos] + piece * rng.choice([1, 2, 5]) + data[pos:]


BYTE_OPS: list[Callable[[random.Random, bytes], bytes]] = [
    _flip, _overwrite, _truncate, _insert, _delete, _duplicate,
]  # fmt: skip


def mutate_bytes(rng: random.Random, data: bytes, rounds: int | None = None) -> tuple[str, bytes]:
    """1-3 stacked byte-level mutations; returns (description, bytes)."""
    names = []
    for _ in range(rounds or rng.randint(1, 3)):
        if not data:
            break
        op = rng.choice(BYTE_OPS)
        data = op(rng, data)
        names.append(op.__name__.strip("_"))
    return "+".join(names) or "empty", data


# Front-matter lines that break YAML, or the loader, in ways seen in the wild or by attackers.
BAD_FRONT_MATTER = [
    "title: [unclosed",
    "title: {a: b",
    "title: &a [x, *a]",  # a list that contains itself
    "title: *undefined",
    "date: 2024-13-45",  # YAML resolves it as a date: ValueError, not a YAMLError
    "date: 2024-02-30",
    "date: 0000-00-00",
    "title: !!python/object/apply:os.system ['true']",
    "title: !!binary '%%%'",
    "title: 'unterminated",
    "? [a, b]\n: c",
    "\ttitle: tab indented",
    "title: x\ntitle: duplicated",
    "title: " + "[" * 300 + "]" * 300,
    "title: " + "x" * 50_000,
    "- just\n- a list",
    "just a scalar",
    "null",
    "title: {a: {b: {c: {d: [1, 2]}}}}",
    "title: 1e999999",
    # billion laughs: cheap to parse (aliases are shared), exponential to print
    "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
    "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
    "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
    "title: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]",
    "issuer: &d {a: &e {b: &f {c: x}}}\ntitle: [*d, *d, *d]",
]


def mutate_md(rng: random.Random, seed: bytes) -> tuple[str, bytes]:
    text = seed.decode("utf-8")
    choice = rng.random()
    if choice < 0.45:
        bad = rng.choice(BAD_FRONT_MATTER)
        lines = text.split("\n")
        lines[rng.randint(1, 5)] = bad
        label, data = f"front-matter:{bad[:20]!r}", "\n".join(lines).encode("utf-8")
    elif choice < 0.55:
        opener = rng.choice(["--- junk", "----", "---\t", "\ufeff---", " ---", "---\r"])
        label, data = f"opener:{opener!r}", text.replace("---", opener, 1).encode("utf-8")
    elif choice < 0.65:
        body = text.rsplit("\n---\n", 1)[0] if rng.random() < 0.5 else text.replace("\n---\n", "\n", 1)
        label, data = "no-closing-delimiter", body.encode("utf-8")
    elif choice < 0.72:
        encoding = rng.choice(["gb18030", "utf-16", "utf-8-sig", "big5"])
        label, data = f"encoding:{encoding}", text.encode(encoding, errors="replace")
    else:
        label, data = "bytes", seed
    if rng.random() < 0.5 or label == "bytes":
        how, data = mutate_bytes(rng, data)
        label += "/" + how
    return label, data


def mutate_txt(rng: random.Random, seed: bytes) -> tuple[str, bytes]:
    text = seed.decode("utf-8")
    label, data = "bytes", seed
    if rng.random() < 0.3:
        encoding = rng.choice(["gb18030", "gbk", "utf-16", "utf-16-be", "utf-8-sig", "big5", "shift_jis"])
        label, data = f"encoding:{encoding}", text.encode(encoding, errors="replace")
    how, data = mutate_bytes(rng, data)
    return f"{label}/{how}", data


HTML_INSERTS = [
    "<div>" * 2000,
    "<p><b><i><u>" * 300,
    "<!--",
    "<![CDATA[",
    "<!DOCTYPE html [<!ENTITY a 'aaaa'>]>",
    '<meta charset="x-no-such-charset">',
    '<meta http-equiv="Content-Type" content="text/html; charset=utf-16">',
    "<script>",
    "<style>",
    "</html></body><body>",
    "&#xD800;&#0;&#99999999999;&#x110000;",
    "<table><tr><td>" * 200,
    "<br>" * 5000,
    "<title>" + "标题" * 5000,
    "<a href='javascript:alert(1)'>链接</a>",
    "<svg><foreignObject><math><mi>",
    "<?xml version='1.0'?>",
    "<![if !IE]>",
]


def mutate_html(rng: random.Random, seed: bytes) -> tuple[str, bytes]:
    data, label = seed, "bytes"
    if rng.random() < 0.5:
        insert = rng.choice(HTML_INSERTS).encode("utf-8")
        pos = rng.randrange(len(data) + 1)
        data, label = data[:pos] + insert + data[pos:], f"insert:{insert[:16]!r}"
    if rng.random() < 0.2:
        data, label = data.decode("utf-8", "replace").encode("gb18030"), label + "/gb18030-as-utf8"
    if rng.random() < 0.6 or label == "bytes":
        how, data = mutate_bytes(rng, data)
        label += "/" + how
    return label, data


BAD_XML = [
    b"",
    b"<",
    b"<Types",
    b"not xml at all",
    b"<?xml version='1.0'?><Types xmlns='x'><Default",
    b"<?xml version='1.0' encoding='no-such-encoding'?><Types/>",
    b"<!DOCTYPE x [<!ENTITY a 'aaaaaaaaaa'><!ENTITY b '&a;&a;&a;&a;&a;&a;&a;&a;'>]><x>&b;</x>",
    b"<!DOCTYPE x [<!ENTITY e SYSTEM 'file:///etc/passwd'>]><x>&e;</x>",
    b"\xff\xfe<\x00x\x00/\x00>\x00",
]


def mutate_docx(rng: random.Random, seed: bytes) -> tuple[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(seed)) as archive:
        members = [(info.filename, archive.read(info)) for info in archive.infolist()]
    choice = rng.random()
    if choice < 0.55:  # corrupt one member's XML
        index = rng.randrange(len(members))
        name, content = members[index]
        if rng.random() < 0.25:
            how, content = "replaced", rng.choice(BAD_XML)
        else:
            how, content = mutate_bytes(rng, content)
        members[index] = (name, content)
        return f"member:{name}/{how}", _rezip(members)
    if choice < 0.62:  # the reported case: a malformed [Content_Types].xml
        members = [(n, c[: rng.randrange(len(c))] if n == "[Content_Types].xml" else c) for n, c in members]
        return "content-types-truncated", _rezip(members)
    if choice < 0.72:  # structural: drop, rename, duplicate or add a member
        index = rng.randrange(len(members))
        name, content = members[index]
        how = rng.choice(["drop", "rename", "duplicate", "add", "stored"])
        if how == "drop":
            del members[index]
        elif how == "rename":
            members[index] = (name + ".bak", content)
        elif how == "duplicate":
            members.append((name, rng.choice(BAD_XML)))
        elif how == "add":
            members.append((f"word/{rng.randrange(100)}.xml", rng.randbytes(100)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # zipfile warns about the duplicate name
            data = _rezip(members, zipfile.ZIP_STORED if how == "stored" else zipfile.ZIP_DEFLATED)
        return f"structure:{how}:{name}", data
    how, data = mutate_bytes(rng, seed)  # the archive's own bytes: CRC, headers, directory
    return f"archive/{how}", data


_PDF_NUMBER = re.compile(rb"(?<![A-Za-z/])\d+")


def mutate_pdf(rng: random.Random, seeds: tuple[bytes, bytes]) -> tuple[str, bytes]:
    data = rng.choice(seeds)
    choice = rng.random()
    if choice < 0.3:  # change numbers: object ids, lengths, offsets, counts
        numbers = list(_PDF_NUMBER.finditer(data))
        label = "numbers"
        for match in rng.sample(numbers, k=min(len(numbers), rng.randint(1, 4))):
            value = str(rng.choice([0, 1, 2, 3, -1, 7, 99999, 2**31, 10**12])).encode()
            data = data[: match.start()] + value + data[match.end() :]
            numbers = list(_PDF_NUMBER.finditer(data))
    elif choice < 0.5:  # swap or break a structural keyword
        pairs = [
            (b"/Pages 2 0 R", b"/Pages 1 0 R"),
            (b"/Kids [", b"/Kids [1 0 R "),
            (b"/Count 2", b"/Count -5"),
            (b"endobj", b""),
            (b"endstream", b""),
            (b"xref", b"xrfe"),
            (b"trailer", b""),
            (b"/Root", b"/Rot"),
            (b"/Type /Page\n", b"/Type /Pages\n"),
            (b"stream\n", b"stream\n\x78\x9c\xff\xff"),
            (b"/Filter /FlateDecode", b"/Filter /LZWDecode"),
            (b"/Filter /FlateDecode", b"/Filter [/FlateDecode /FlateDecode /ASCIIHexDecode]"),
        ]
        old, new = rng.choice(pairs)
        label, data = f"swap:{old!r}", data.replace(old, new, rng.choice([1, -1]))
    else:
        label, data = "bytes", data
    how, data = mutate_bytes(rng, data) if rng.random() < 0.7 or label == "bytes" else ("", data)
    return f"{label}/{how}", data


# --------------------------------------------------------------------------- fuzz


class _Hang(BaseException):
    """Raised by the alarm: a BaseException so that no loader can swallow it."""


def _alarm(signum: int, frame: FrameType | None) -> None:
    raise _Hang


FUZZ_PER_TYPE = 500
RANDOM_PER_TYPE = 20
FUZZ_SEED = 20241111
HANG_SECONDS = 10


def _cases(tmp: Path) -> Iterator[tuple[str, str, bytes]]:
    """(suffix, label, bytes): unmutated seeds, random files, then mutants, per type."""
    rng = random.Random(FUZZ_SEED)
    docx_seed = seed_docx()
    pdf_seeds = (seed_pdf(), seed_pdf(compress=True))
    mutators: dict[str, Callable[[], tuple[str, bytes]]] = {
        ".md": lambda: mutate_md(rng, seed_md()),
        ".txt": lambda: mutate_txt(rng, seed_txt()),
        ".html": lambda: mutate_html(rng, seed_html()),
        ".docx": lambda: mutate_docx(rng, docx_seed),
        ".pdf": lambda: mutate_pdf(rng, pdf_seeds),
    }
    seeds = {
        ".md": seed_md(),
        ".txt": seed_txt(),
        ".html": seed_html(),
        ".docx": docx_seed,
        ".pdf": pdf_seeds[1],
    }
    for suffix, mutate in mutators.items():
        yield suffix, "seed", seeds[suffix]
        for n in range(RANDOM_PER_TYPE):
            size = rng.choice([0, 1, 16, 512, 4096])
            data = rng.randbytes(size) if n % 2 else bytes(rng.choice(range(32, 127)) for _ in range(size))
            yield suffix, "random", data
        for _ in range(FUZZ_PER_TYPE):
            yield suffix, *mutate()


def test_fuzzed_files_of_every_type_only_ever_raise_load_error(tmp_path: Path) -> None:
    settings = IngestSettings(library_dirs=[tmp_path])
    outcomes: dict[str, Counter[str]] = {}
    escaped: list[str] = []
    slowest = (0.0, "")
    started = time.perf_counter()
    previous = signal.signal(signal.SIGALRM, _alarm)
    try:
        for n, (suffix, label, data) in enumerate(_cases(tmp_path)):
            path = tmp_path / f"case{n:05d}{suffix}"
            path.write_bytes(data)
            counts = outcomes.setdefault(suffix, Counter())
            counts["files"] += 1
            t0 = time.perf_counter()
            signal.alarm(HANG_SECONDS)
            try:
                doc = load_file(path, settings)
                chunk_document(doc, settings)
            except LoadError as exc:
                counts["rejected"] += 1
                if not re.search(r"[\u4e00-\u9fff]", str(exc)):
                    escaped.append(f"{path.name} [{label}]: LoadError without a Chinese reason: {exc!r}")
                if label == "seed":
                    escaped.append(f"{path.name}: the unmutated seed was rejected: {exc}")
            except _Hang:
                escaped.append(f"{path.name} [{label}]: still running after {HANG_SECONDS} s")
            except Exception as exc:  # what this test exists to catch
                escaped.append(
                    f"{path.name} [{label}]: {type(exc).__module__}.{type(exc).__name__}: {exc}"[:300]
                )
            else:
                counts["loaded"] += 1
                if label == "seed":
                    assert "第二条" in doc.text or "Article 2" in doc.text
            finally:
                signal.alarm(0)
            slowest = max(slowest, (time.perf_counter() - t0, f"{path.name} [{label}]"))
            path.unlink()
    finally:
        signal.signal(signal.SIGALRM, previous)
    elapsed = time.perf_counter() - started
    print(f"\nfuzz: {dict(outcomes)}; {elapsed:.1f} s; slowest {slowest[0]:.2f} s {slowest[1]}")
    print("\n".join(escaped[:50]))
    assert escaped == []
    for suffix, counts in outcomes.items():
        assert counts["files"] >= FUZZ_PER_TYPE + RANDOM_PER_TYPE + 1, suffix
        # Both outcomes occur: the mutants are neither all harmless nor all hopeless.
        assert counts["loaded"] > 0 and counts["rejected"] > 0, (suffix, counts)
    assert slowest[0] < 5, slowest


# --------------------------------------------------------------------------- poisoned libraries

REAL_FILES = ("中国共产党问责条例_2016旧版.md", "激励干部担当作为工作会议讲话.md")
CJK = re.compile(r"[\u4e00-\u9fff]")


def _docx_with_bad_content_types() -> bytes:
    """The issue's reproduction: a .docx whose [Content_Types].xml is malformed (lxml XMLSyntaxError)."""
    with zipfile.ZipFile(io.BytesIO(seed_docx())) as archive:
        members = [(i.filename, archive.read(i)) for i in archive.infolist()]
    return _rezip([(n, c[: len(c) // 2] if n == "[Content_Types].xml" else c) for n, c in members])


def _poison() -> dict[str, bytes]:
    """Files that each raised a non-LoadError exception (and aborted the run) before the fix."""
    md = seed_md().decode("utf-8")
    return {
        "坏目录.docx": _docx_with_bad_content_types(),  # lxml.etree.XMLSyntaxError
        "坏日期.md": md.replace("date: 2024-01-02", "date: 2024-13-45").encode(),  # ValueError
        "自引用.md": md.replace("title: 测试规定", "title: &a [x, *a]").encode(),  # RecursionError
        "笑话.md": md.replace("title: 测试规定", BAD_FRONT_MATTER[-2]).encode(),  # minutes of CPU
        "未知压缩.pdf": seed_pdf(compress=True).replace(
            b"/FlateDecode", b"/FooooDecode"
        ),  # NotImplementedError
        "二进制.txt": bytes(range(256)) * 4,
        "空表格.html": b"<html><body><script>only()</script></body></html>",
    }


def _good_files(library_dir: Path) -> dict[str, bytes]:
    files = {name: (library_dir / name).read_bytes() for name in REAL_FILES}
    files.update(
        {
            "测试规定.docx": seed_docx(),
            "测试网页.html": seed_html(),
            "英文规则.pdf": seed_pdf(compress=True),
            "测试文本.txt": seed_txt(),
        }
    )
    return files


def _write_all(folder: Path, files: dict[str, bytes]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)


def _snapshot(settings: Settings) -> dict[str, set[tuple[str, str, str]]]:
    """file -> {(record id, stored text, content hash)} for every record, chunks and views."""
    collection = open_collection(open_client(settings), settings, None)
    got = collection.get(include=["metadatas", "documents"])
    by_file: dict[str, set[tuple[str, str, str]]] = {}
    for rid, meta, text in zip(got["ids"], got["metadatas"] or [], got["documents"] or [], strict=True):
        by_file.setdefault(str(meta["file"]), set()).add((rid, text or "", str(meta["content_hash"])))
    return by_file


@pytest.fixture
def hashing() -> HashingEmbeddings:
    return HashingEmbeddings(dim=64)


@pytest.fixture
def library(tmp_path: Path, library_dir: Path, make_settings: Any) -> tuple[Path, Settings]:
    """A library folder of good files of every type, with an empty embedded store."""
    folder = tmp_path / "library"
    _write_all(folder, _good_files(library_dir))
    return folder, make_settings(tmp_path, ingest={"library_dirs": [folder]})


def test_poisoned_library_is_ingested_around_the_bad_files(
    library: tuple[Path, Settings], library_dir: Path, hashing: HashingEmbeddings
) -> None:
    folder, settings = library
    good = _good_files(library_dir)
    first = run_ingest(settings, hashing, progress=False)
    assert (first.documents_added, first.skipped, first.errors) == (len(good), [], [])
    before = _snapshot(settings)
    assert sorted(before) == sorted(good)

    poison = _poison()
    _write_all(folder, poison)
    (folder / "测试规定.docx").write_bytes(poison["坏目录.docx"])  # a stored document goes bad
    (folder / "新规定.md").write_bytes(
        seed_md().replace(b"\xe6\xb5\x8b\xe8\xaf\x95", b"\xe6\x96\xb0")
    )  # 测试 -> 新
    report = run_ingest(settings, hashing, progress=False)

    reasons = dict(report.skipped)
    assert set(reasons) == set(poison) | {"测试规定.docx"}
    assert all(CJK.search(reason) for reason in reasons.values()), reasons
    assert "无法打开 Word 文档（XMLSyntaxError）" in reasons["坏目录.docx"]
    assert "无法打开 PDF（NotImplementedError）" in reasons["未知压缩.pdf"]
    assert "front matter" in reasons["坏日期.md"] and "front matter" in reasons["自引用.md"]
    assert reasons["测试规定.docx"].endswith("（库中原有版本保留）")
    assert report.errors == [] and report.documents_pruned == 0
    assert (report.documents_added, report.documents_unchanged) == (1, len(good) - 1)
    after = _snapshot(settings)
    assert set(after) == set(good) | {"新规定.md"}  # no poisoned file stored
    for name in good:  # every stored document is exactly as before, including the one that went bad
        assert after[name] == before[name], name


def test_cli_ingest_of_a_poisoned_library_reports_skips_in_chinese_and_exits_0(
    library: tuple[Path, Settings],
    hashing: HashingEmbeddings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import assistant.embeddings

    folder, settings = library
    _write_all(folder, _poison())
    monkeypatch.setattr(assistant.embeddings, "build_embeddings", lambda settings: hashing)
    config = tmp_path / "policy.toml"
    config.write_text(
        f"[chroma]\npersist_dir = {json.dumps(str(settings.chroma.persist_dir))}\n"
        f"[ingest]\nlibrary_dirs = [{json.dumps(str(folder))}]\n"
        f"generated_questions = {json.dumps(str(tmp_path / 'generated_questions'))}\n",
        encoding="utf-8",
    )
    assert policy_cli.main(["--config", str(config), "ingest", "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert "跳过 坏目录.docx：无法打开 Word 文档（XMLSyntaxError）" in captured.out
    assert len(re.findall(r"^跳过 ", captured.out, flags=re.MULTILINE)) == len(_poison())
    assert "Traceback" not in captured.out + captured.err
    assert "导入完成" in captured.out and "新增 6" in captured.out


def test_file_deleted_between_discovery_and_read_is_one_skip(
    library: tuple[Path, Settings], hashing: HashingEmbeddings, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, settings = library
    real_discover = indexer.discover
    victim = folder / "测试网页.html"

    def discover_then_delete(paths: list[Path], ingest: IngestSettings) -> Any:
        found = real_discover(paths, ingest)
        assert victim in found.files
        victim.unlink()  # gone after discovery, before stat() and read
        return found

    monkeypatch.setattr(indexer, "discover", discover_then_delete)
    report = run_ingest(settings, hashing, progress=False)
    assert [name for name, _ in report.skipped] == [victim.name]
    assert "找不到文件" in report.skipped[0][1] and "导入过程中被删除" in report.skipped[0][1]
    assert report.errors == [] and report.documents_added == 5
    assert victim.name not in _snapshot(settings)


@pytest.mark.parametrize("step", ["check_link", "_read_regular_file"])
def test_file_deleted_inside_load_file_is_a_load_error(
    tmp_path: Path, step: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The narrower races: gone after the existence check (before stat), or after stat (before open)."""
    import ingest.loaders

    path = tmp_path / "规定.md"
    path.write_bytes(seed_md())
    real_step = getattr(ingest.loaders, step)

    def delete_then(*args: Any) -> Any:
        path.unlink(missing_ok=True)
        return real_step(*args)

    monkeypatch.setattr(ingest.loaders, step, delete_then)
    with pytest.raises(LoadError, match="找不到文件.*导入过程中被删除"):
        load_file(path, IngestSettings(library_dirs=[tmp_path]))


def test_any_exception_from_a_loader_or_load_file_is_one_skip(
    library: tuple[Path, Settings], hashing: HashingEmbeddings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ingest.formats

    folder, settings = library

    def broken_parser(path: Path, raw: bytes) -> tuple[str, dict[str, str], str]:
        raise RuntimeError("a parser bug")

    monkeypatch.setitem(ingest.formats.LOADERS, ".html", broken_parser)
    with pytest.raises(LoadError, match=r"无法解析网页文件（RuntimeError）"):
        load_file(folder / "测试网页.html", settings.ingest)

    real_load = indexer.load_file

    def load_with_bug(path: Path, ingest: IngestSettings) -> Any:
        if path.suffix == ".txt":
            raise MemoryError  # not a LoadError: load_file itself failing
        return real_load(path, ingest)

    monkeypatch.setattr(indexer, "load_file", load_with_bug)
    report = run_ingest(settings, hashing, progress=False)
    reasons = dict(report.skipped)
    assert set(reasons) == {"测试网页.html", "测试文本.txt"}
    assert reasons["测试文本.txt"].startswith("读取文件时出错（MemoryError）")
    assert report.errors == [] and report.documents_added == 4


# --------------------------------------------------------------------------- links, hidden files, duplicates


def test_links_are_followed_only_inside_the_library(
    tmp_path: Path, make_settings: Any, hashing: HashingEmbeddings
) -> None:
    outside = tmp_path / "etc"
    outside.mkdir()
    secret = outside / "passwd"
    secret.write_text("root:x:0:0:root:/root:/bin/bash\n第一条　这不是文件库中的文件。\n", encoding="utf-8")
    lib_a, lib_b = tmp_path / "library_a", tmp_path / "library_b"
    _write_all(lib_a / "sub", {"真实.md": seed_md()})
    _write_all(lib_b, {"另一库.txt": seed_txt()})
    (lib_a / "passwd.txt").symlink_to(secret)
    (lib_a / "别名.md").symlink_to(lib_a / "sub" / "真实.md")
    (lib_a / "跨库.txt").symlink_to(lib_b / "另一库.txt")
    (lib_a / "失效.md").symlink_to(tmp_path / "nowhere.md")
    (lib_a / "etc").symlink_to(outside, target_is_directory=True)
    (lib_a / "内部目录").symlink_to(lib_a / "sub", target_is_directory=True)
    settings = make_settings(tmp_path, ingest={"library_dirs": [lib_a, lib_b]})

    with pytest.raises(LoadError, match="文件库之外"):
        load_file(lib_a / "passwd.txt", settings.ingest)
    assert (
        load_file(lib_a / "别名.md", settings.ingest).text
        == load_file(lib_a / "sub" / "真实.md", settings.ingest).text
    )
    assert load_file(lib_a / "跨库.txt", settings.ingest).text == seed_txt().decode()
    only_a = settings.ingest.model_copy(update={"library_dirs": [lib_a]})
    with pytest.raises(LoadError, match="文件库之外"):
        load_file(lib_a / "跨库.txt", only_a)

    report = run_ingest(settings, hashing, progress=False)
    reasons = dict(report.skipped)
    assert "文件库之外" in reasons["passwd.txt"] and "文件库之外" in reasons["etc"]
    assert "失效的链接" in reasons["失效.md"] and "指向文件夹的链接" in reasons["内部目录"]
    # Links inside the library are followed; a link and its target are the same bytes, indexed once
    # (the first path in sorted order wins: library_a/sub/真实.md before library_a/别名.md).
    assert reasons["别名.md"] == "与 真实.md 内容相同，已跳过（同一内容只索引一次）。"
    assert reasons["另一库.txt"] == "与 跨库.txt 内容相同，已跳过（同一内容只索引一次）。"
    assert report.errors == [] and report.documents_added == 2
    stored = _snapshot(settings)
    assert sorted(stored) == ["真实.md", "跨库.txt"]
    assert not any("root:x:0" in text for records in stored.values() for _, text, _ in records)


def test_hidden_files_and_folders_are_reported_as_skipped(
    library: tuple[Path, Settings], hashing: HashingEmbeddings
) -> None:
    folder, settings = library
    _write_all(folder, {".隐藏.md": seed_md()})
    _write_all(folder / ".git", {"config.md": seed_md(), "HEAD.txt": seed_txt()})
    _write_all(folder / "子目录", {".~草稿.docx": seed_docx(), "SOURCES.md": b"# notes"})
    report = run_ingest(settings, hashing, progress=False)
    reasons = dict(report.skipped)
    assert set(reasons) == {".隐藏.md", ".git/", ".~草稿.docx"}  # a hidden folder is one entry; notes silent
    assert reasons[".git/"].startswith("隐藏文件夹") and reasons[".隐藏.md"].startswith("隐藏文件")
    assert report.documents_added == 6 and sorted(_snapshot(settings)) == sorted(
        p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
    )


def test_duplicate_content_is_indexed_once_with_a_warning(
    library: tuple[Path, Settings], hashing: HashingEmbeddings, caplog: pytest.LogCaptureFixture
) -> None:
    folder, settings = library
    speech = folder / REAL_FILES[1]
    copy = folder / f"{speech.stem}_副本.md"  # sorts after the original
    early = folder / f"0_{speech.name}"  # sorts before it
    shutil.copyfile(speech, copy)
    with caplog.at_level(logging.WARNING, logger="ingest.indexer"):
        report = run_ingest(settings, hashing, progress=False)
    assert report.skipped == [(copy.name, f"与 {speech.name} 内容相同，已跳过（同一内容只索引一次）。")]
    assert any(copy.name in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    assert copy.name not in _snapshot(settings)

    # A copy that sorts first takes over; the stored original is then pruned, its content kept once.
    shutil.copyfile(speech, early)
    partial = run_ingest(settings, hashing, [early, speech], progress=False)
    assert partial.documents_pruned == 0 and speech.name in _snapshot(settings)  # partial runs never prune
    full = run_ingest(settings, hashing, progress=False)
    assert dict(full.skipped).keys() == {speech.name, copy.name}
    assert full.documents_pruned == 1
    stored = _snapshot(settings)
    assert early.name in stored and speech.name not in stored and copy.name not in stored
    titles = [
        d["file"]
        for d in library_stats(open_collection(open_client(settings), settings, None))["documents_detail"]
    ]
    assert len(titles) == len(set(titles)) == 6


# --------------------------------------------------------------------------- rebuild (embedded + server)


class DyingEmbeddings(HashingEmbeddings):
    """Dies (KeyboardInterrupt, as on Ctrl-C) at batch ``die_at``; before each batch, ``check`` runs."""

    def __init__(self, dim: int, die_at: int, check: Callable[[], None]) -> None:
        super().__init__(dim)
        self.calls, self.die_at, self.check = 0, die_at, check

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.check()
        self.calls += 1
        if self.calls == self.die_at:
            raise KeyboardInterrupt("simulated kill during --rebuild")
        return super().embed_documents(texts)


@pytest.fixture
def store_library(tmp_path: Path, library_dir: Path, store_settings: Settings) -> tuple[Path, Settings]:
    """The good library on a fresh store: embedded, or a collection on the shared `chroma run`."""
    folder = tmp_path / "library"
    _write_all(folder, _good_files(library_dir))
    ingest = store_settings.ingest.model_copy(update={"library_dirs": [folder]})
    return folder, store_settings.model_copy(update={"ingest": ingest})


def _collection_names(settings: Settings) -> set[str]:
    name = settings.chroma.collection
    found = {c.name for c in open_client(settings).list_collections()}
    return {n for n in found if n == name or n.startswith(name + "__")}


def _serving(settings: Settings) -> Any:
    return open_client(settings).get_collection(settings.chroma.collection, embedding_function=None)


def test_rebuild_builds_aside_and_switches_only_when_complete(
    store_library: tuple[Path, Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, settings = store_library
    old_model, new_model = HashingEmbeddings(dim=64), HashingEmbeddings(dim=32)
    run_ingest(settings, old_model, progress=False)
    before = _snapshot(settings)
    old_count = _serving(settings).count()

    def old_library_serves() -> None:  # checked before every batch the rebuild embeds
        serving = _serving(settings)
        assert serving.count() == old_count
        assert serving.metadata["embedding_model"] == old_model.model_name
        hits = serving.query(query_embeddings=[old_model.embed_query("问责")], n_results=3)
        assert len(hits["ids"][0]) == 3

    monkeypatch.setattr(indexer, "BATCH_SIZE", 4)
    dying = DyingEmbeddings(32, die_at=6, check=old_library_serves)
    with pytest.raises(KeyboardInterrupt):
        run_ingest(settings, dying, rebuild=True, progress=False)
    assert dying.calls == 6
    assert _snapshot(settings) == before  # the old library, whole, still under the configured name
    name = settings.chroma.collection
    assert _collection_names(settings) == {name, name + REBUILD_SUFFIX}
    half = open_client(settings).get_collection(name + REBUILD_SUFFIX, embedding_function=None)
    assert 0 < half.count() < old_count
    half.add(ids=["leftover-marker"], embeddings=[new_model.embed_query("x")], documents=["x"])

    report = run_ingest(settings, new_model, rebuild=True, progress=False)
    assert (report.documents_added, report.errors, report.skipped) == (6, [], [])
    assert _collection_names(settings) == {name}  # no build or previous collection left behind
    serving = _serving(settings)
    assert serving.metadata["embedding_model"] == new_model.model_name
    assert serving.count() == old_count == report.chunks_total + report.views_total
    assert serving.get(ids=["leftover-marker"])["ids"] == []  # the half-built leftover was dropped
    after = _snapshot(settings)
    assert {f: {(rid, text) for rid, text, _ in r} for f, r in after.items()} == {
        f: {(rid, text) for rid, text, _ in r} for f, r in before.items()
    }
    again = run_ingest(settings, new_model, progress=False)  # the new index is complete
    assert (again.documents_unchanged, again.chunks_embedded) == (6, 0)


_KILLED_REBUILD = """
import sys, time
sys.path[:0] = [{repo!r}, {tests!r}]
from assistant.config import Settings
from hashing_embeddings import HashingEmbeddings
from ingest import indexer

class Slow(HashingEmbeddings):
    def embed_documents(self, texts):
        print("batch", flush=True)
        time.sleep(0.2)
        return super().embed_documents(texts)

indexer.BATCH_SIZE = 4
settings = Settings.model_validate_json(sys.stdin.read())
indexer.run_ingest(settings, Slow(dim=32), rebuild=True, progress=False)
print("finished", flush=True)
"""


_INITIAL_INGEST = """
import json, sys
sys.path[:0] = [{repo!r}, {tests!r}]
from assistant.config import Settings
from hashing_embeddings import HashingEmbeddings
from ingest.indexer import run_ingest
from test_hostile_ingest import _snapshot

settings = Settings.model_validate_json(sys.stdin.read())
run_ingest(settings, HashingEmbeddings(dim=64), progress=False)
print(json.dumps({{f: sorted(map(list, r)) for f, r in _snapshot(settings).items()}}))
"""


def test_rebuild_killed_with_sigkill_leaves_the_old_library_serving(
    store_library: tuple[Path, Settings], repo_root: Path
) -> None:
    """As an admin would: `ingest`, then `ingest --rebuild` killed, each its own process (an
    embedded store admits one process at a time), then the library is inspected."""
    folder, settings = store_library
    old_model = HashingEmbeddings(dim=64)
    paths = {"repo": str(repo_root), "tests": str(repo_root / "tests")}
    initial = subprocess.run(
        [sys.executable, "-c", _INITIAL_INGEST.format(**paths)],
        input=settings.model_dump_json(),
        capture_output=True,
        text=True,
        cwd=repo_root,
        timeout=300,
    )
    assert initial.returncode == 0, initial.stderr[-2000:]
    before = {f: {tuple(r) for r in rows} for f, rows in json.loads(initial.stdout).items()}
    script = _KILLED_REBUILD.format(**paths)
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=repo_root,
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(settings.model_dump_json())
    proc.stdin.close()
    try:
        for _ in range(4):  # some batches are written into the build collection
            assert proc.stdout.readline().strip() == "batch"
    finally:
        proc.kill()  # SIGKILL: no cleanup of any kind
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert _snapshot(settings) == before
    assert _serving(settings).metadata["embedding_model"] == old_model.model_name
    # The old index is intact for ordinary ingests too, and the next rebuild starts clean.
    assert run_ingest(settings, old_model, progress=False).documents_unchanged == 6
    report = run_ingest(settings, HashingEmbeddings(dim=32), rebuild=True, progress=False)
    assert report.documents_added == 6 and report.errors == []
    assert _collection_names(settings) == {settings.chroma.collection}


def test_rebuild_that_cannot_see_the_library_is_not_switched_in(
    store_library: tuple[Path, Settings], tmp_path: Path
) -> None:
    folder, settings = store_library
    run_ingest(settings, HashingEmbeddings(dim=64), progress=False)
    before = _snapshot(settings)
    ingest = settings.ingest.model_copy(update={"library_dirs": [folder, tmp_path / "unmounted"]})
    broken = settings.model_copy(update={"ingest": ingest})
    report = run_ingest(broken, HashingEmbeddings(dim=32), rebuild=True, progress=False)
    assert [f for f, _ in report.errors] == [str(tmp_path / "unmounted"), "--rebuild"]
    assert report.errors[1][1].startswith("重建未切换：文件库目录缺失")
    assert _snapshot(settings) == before
    assert _collection_names(settings) == {settings.chroma.collection}


def test_switch_interrupted_between_renames_is_finished_by_the_next_ingest(
    library: tuple[Path, Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    import ingest.rebuild

    folder, settings = library
    run_ingest(settings, HashingEmbeddings(dim=64), progress=False)
    real_rename = ingest.rebuild.rename_collection
    calls: list[str] = []

    def rename_then_die(client: Any, name: str, new_name: str) -> bool:
        calls.append(name)
        if len(calls) == 2:  # the serving collection is already renamed away
            raise KeyboardInterrupt("killed between the renames")
        return real_rename(client, name, new_name)

    monkeypatch.setattr(ingest.rebuild, "rename_collection", rename_then_die)
    new_model = HashingEmbeddings(dim=32)
    with pytest.raises(KeyboardInterrupt):
        run_ingest(settings, new_model, rebuild=True, progress=False)
    name = settings.chroma.collection
    assert _collection_names(settings) == {name + PREVIOUS_SUFFIX, name + REBUILD_SUFFIX}
    monkeypatch.setattr(ingest.rebuild, "rename_collection", real_rename)

    report = run_ingest(settings, new_model, progress=False)  # an ordinary ingest finishes the switch
    assert (report.documents_unchanged, report.chunks_embedded) == (6, 0)
    assert _collection_names(settings) == {name}
    assert _serving(settings).metadata["embedding_model"] == new_model.model_name
