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
import random
import re
import signal
import time
import warnings
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

from assistant.config import IngestSettings
from ingest.chunking import chunk_document
from ingest.loaders import LoadError, load_file

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
    return buffer.getvalue()


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


def _rezip(members: list[tuple[str, bytes]], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, content in members:
            archive.writestr(name, content)
    return buffer.getvalue()


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
