"""The catalogue of documents the library is known not to hold.

``load_catalogue(catalogue, library_dirs)`` reads ``corpus/catalogue.toml`` once: its
``[[missing]]`` entries (else the "Not in the library" list of the library's SOURCES.md),
which ``find_missing_document(question, missing, held)`` uses to name the absent document a
question asks about, and its ``[[regime]]`` entries: which documents a question means when
it names a regime's bodies (监委 → 监察法, 政务处分法).
A catalogue that is absent or unreadable raises ``CatalogueError``: without it these
declines would switch off silently.
"""

from __future__ import annotations

import logging
import re
import tomllib
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from assistant.text import YEAR_RE, full_version_years

logger = logging.getLogger(__name__)


class CatalogueError(Exception):
    """The catalogue cannot be used; ``str(e)`` is a Chinese message saying what to do."""


_PAREN_RE = re.compile(r"[（(][^）)]*[）)]")
_ISSUER_PREFIXES = ("中国共产党", "中华人民共和国", "中共中央", "中央纪委", "中央")


@dataclass(frozen=True)
class MissingDocument:
    """A document the library is known not to hold."""

    title: str  # as listed, e.g. 中国共产党问责条例 (2019 revision)
    core: str  # the name without issuer prefix, brackets, year and 的, e.g. 问责条例
    year: str  # "" when none is given

    note: str = ""

    @property
    def display(self) -> str:
        """A Chinese label, e.g. 《中国共产党问责条例》（2019年修订）."""
        if "《" in self.title:
            return self.title
        name = _PAREN_RE.sub("", self.title).strip()
        paren = _PAREN_RE.search(self.title)
        extra = paren.group(0)[1:-1].strip() if paren else ""
        if re.search(r"[A-Za-z]", extra) or not extra:
            extra = f"{self.year}年版" if self.year else ""
        return f"《{name}》（{extra}）" if extra else f"《{name}》"


@lru_cache(maxsize=65536)  # library titles are normalised again whenever a question names a missing document
def _core_name(title: str) -> str:
    name = _PAREN_RE.sub("", title)
    name = re.sub(r"[《》“”\"\s]", "", name)
    name = YEAR_RE.sub("", name)
    name = re.sub(r"[A-Za-z ]+", "", name)
    changed = True
    while changed:
        changed = False
        for prefix in _ISSUER_PREFIXES:
            if name.startswith(prefix) and len(name) > len(prefix) + 3:
                name = name[len(prefix) :]
                changed = True
    return name.replace("的", "")  # written or left out at will: 能上能下的规定 is 能上能下规定


def make_missing(title: str) -> MissingDocument:
    year = YEAR_RE.search(title)
    return MissingDocument(title=title.strip(), core=_core_name(title), year=year.group(0) if year else "")


def _read(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise CatalogueError(
            f"无法读取文件目录 {path}：{exc}。请修正该文件（TOML 格式），或检查配置项 retrieval.catalogue。"
        ) from exc


def _missing_from_catalogue(data: dict[str, Any]) -> list[MissingDocument]:
    found: list[MissingDocument] = []
    for entry in data.get("missing", []) or []:
        if isinstance(entry, dict):
            title = str(entry.get("title") or entry.get("name") or "")
            if title:
                doc = make_missing(title)
                note = str(entry.get("note") or "")
                found.append(MissingDocument(title=doc.title, core=doc.core, year=doc.year, note=note))
                for alias in entry.get("aliases", []) or []:
                    found.append(
                        MissingDocument(title=title, core=_core_name(str(alias)), year="", note=note)
                    )
        elif isinstance(entry, str):
            found.append(make_missing(entry))
    return found


def _missing_from_sources(path: Path) -> list[MissingDocument]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return []
    found: list[MissingDocument] = []
    in_section = False
    for line in text.splitlines():
        if line.startswith("#"):
            in_section = "not in the library" in line.lower() or "未收录" in line
            continue
        if in_section and line.lstrip().startswith(("-", "*")):
            title = line.lstrip()[1:].strip()
            if title:
                found.append(make_missing(title))
    return found


@dataclass(frozen=True)
class Regime:
    """A body of rules that a question names by its bodies or measures (监委, 政务处分): the
    question is about that regime's documents unless it also names another's (``not_with``)."""

    name: str
    cues: tuple[str, ...]
    not_with: tuple[str, ...]
    titles: tuple[str, ...]  # names that its documents' titles contain

    def named_by(self, question: str) -> bool:
        return any(c in question for c in self.cues) and not any(c in question for c in self.not_with)

    def holds(self, title: str) -> bool:
        return any(t in title for t in self.titles)


def _regimes(data: dict[str, Any]) -> list[Regime]:
    def names(entry: dict[str, Any], key: str) -> tuple[str, ...]:
        return tuple(str(v) for v in entry.get(key, []) or [] if str(v))

    return [
        Regime(str(e.get("name") or ""), names(e, "cues"), names(e, "not_with"), names(e, "titles"))
        for e in data.get("regime", []) or []
        if isinstance(e, dict) and names(e, "cues") and names(e, "titles")
    ]


@dataclass(frozen=True)
class Catalogue:
    """What ``corpus/catalogue.toml`` tells the assistant about the library."""

    missing: list[MissingDocument]  # documents known to be absent
    regimes: list[Regime]  # bodies of rules a question can name


def load_catalogue(catalogue: Path, library_dirs: Sequence[Path]) -> Catalogue:
    """The catalogue, read once. Absent documents: its ``[[missing]]`` entries, else the
    "Not in the library" lists of the library folders' SOURCES.md.

    Raises ``CatalogueError`` when the catalogue file is absent or unreadable.
    """
    if not Path(catalogue).is_file():
        raise CatalogueError(
            f"找不到文件目录 {catalogue}：没有它，助手无法识别资料库未收录的文件，会对这类问题给出错误的回答。"
            "请检查配置项 retrieval.catalogue（或环境变量 POLICY_RETRIEVAL__CATALOGUE）。"
        )
    data = _read(Path(catalogue))
    missing = _missing_from_catalogue(data)
    if not missing:
        for folder in library_dirs:
            sources = folder / "SOURCES.md" if folder.is_dir() else folder.parent / "SOURCES.md"
            if sources.is_file():
                missing.extend(_missing_from_sources(sources))
    return Catalogue(missing, _regimes(data))


def _mentions(question: str, core: str) -> bool:
    """``question`` (without 的, like ``core``) names the document ``core`` is the name of."""
    if not core:
        return False
    if core in question:
        return True
    # A distinctive tail of the name ("能上能下规定", "澄清正名工作意见") is enough.
    return any(core[-n:] in question for n in range(len(core) - 1, 5, -1))


def find_missing_document(
    question: str, missing: Iterable[MissingDocument], held: Iterable[tuple[str, Collection[str]]]
) -> MissingDocument | None:
    """The absent document the question asks about, if any. ``held``: the library's documents
    as (title, the years their version is named by: ``DocInfo.version_years``), read only when
    the question names a missing document (it may be a generator).

    When the library holds a document with the same name (another version), the
    question must name the absent version's year to count as asking for it.
    """
    q = full_version_years(re.sub(r"\s", "", question)).replace("的", "")
    held_names: list[tuple[str, Collection[str]]] | None = None  # read only once a name matches
    for doc in missing:
        if not _mentions(q, doc.core):
            continue
        if held_names is None:
            held_names = [(_core_name(title), years) for title, years in held]
        same_name = [years for core, years in held_names if core and (doc.core in core or core in doc.core)]
        if not same_name:
            return doc
        if not (doc.year and doc.year in q):
            continue
        # Both versions named ("2019年版已经实施了，那2016年版里…"): a question about the held one
        # is answered from it (with its status notice); comparing the two needs the absent one.
        held_years = set().union(*same_name) - {doc.year}
        if any(y in q for y in held_years) and not COMPARES.search(q):
            continue
        return doc
    return None


# A question that compares two versions ("跟2018年版比", "有什么区别", "新增了哪些").
COMPARES = re.compile(r"比|对比|区别|不同|差别|变化|改了|改动|修改了|新增|删除|删了|增加了|一样")
