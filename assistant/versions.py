"""Versions: when the library holds two versions of a text, show the reader both.

* An article named explicitly in the question (第X条 of a text with two versions):
  the same-numbered article of the other version joins the evidence.
* Superseded text: the article of the current version that corresponds to it
  (the one sharing most wording, bigram Jaccard >= ``answer.version_overlap_min``)
  follows it.
* ``status_notice`` labels superseded text: 注意：《…》已废止，现行为《…》。
* ``unheld_version``: a question naming a held text with a version year that none of its
  held versions has ("跟2018年版比" when only the 2023 text is held) asks about a text the
  library does not hold; it is declined like a catalogued missing document.

The version links (old file -> current file) come from the shared ``Library``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, NamedTuple

from langchain_core.documents import Document

from assistant import messages
from assistant.catalogue import COMPARES
from assistant.evidence import chunk_id
from assistant.library import Library
from assistant.references import mentioned_titles
from assistant.schema import STATUS_AMENDED, STATUS_REPEALED
from assistant.text import bigrams, full_version_years

_FILE_SUFFIXES = (".md", ".txt", ".docx", ".pdf", ".html")


def corresponding_current(library: Library, old: Document, overlap_min: float) -> Document | None:
    """The article of the current version that shares most wording with ``old``."""
    current = library.successor.get(str(old.metadata.get("file") or ""))
    info = library.docs.get(current) if current else None
    grams = bigrams(old.page_content)
    if info is None or not grams:
        return None
    best: tuple[float, Document | None] = (0.0, None)
    for positions in info.articles.values():
        chunk = library.chunks[positions[0]]
        other = bigrams(chunk.page_content)
        overlap = len(grams & other) / max(1, len(grams | other))
        if overlap > best[0]:
            best = (overlap, chunk)
    return best[1] if best[0] >= overlap_min else None


def version_twins(library: Library, doc: Document, overlap_min: float) -> list[Document]:
    """The chunks of the other version that belong next to ``doc`` in an answer, in order."""
    meta = doc.metadata
    file, article = str(meta.get("file") or ""), str(meta.get("article") or "")
    if not article:
        return []
    out: list[Document] = []
    if meta.get("match") == "reference":
        other = library.successor.get(file) or library.predecessor.get(file)
        sibling = library.article(other, article) if other else None
        if sibling is not None:
            out.append(sibling)
            if str(sibling.metadata.get("file")) in library.successor:
                twin = corresponding_current(library, sibling, overlap_min)
                if twin is not None:
                    out.append(twin)
    if file in library.successor:
        twin = corresponding_current(library, doc, overlap_min)
        if twin is not None:
            out.append(twin)
    return out


def with_versions(
    library: Library,
    chosen: list[Any],
    make: Callable[[Document], Any],
    overlap_min: float,
    limit: int,
) -> list[Any]:
    """``chosen`` (objects with a ``doc``) with each one's version twins inserted after it
    (``make`` wraps a twin), no chunk twice, at most ``limit``."""
    out: list[Any] = []
    seen = {chunk_id(c.doc) for c in chosen}
    for cand in chosen:
        out.append(cand)
        for twin in version_twins(library, cand.doc, overlap_min):
            cid = chunk_id(twin)
            if cid not in seen:
                seen.add(cid)
                out.append(make(twin))
    return out[:limit]


def status_notice(library: Library, meta: dict[str, Any]) -> str:
    """注意：《…》已废止/已修正，现行为…  ("" for current texts)."""
    status = str(meta.get("status") or "")
    if status not in (STATUS_REPEALED, STATUS_AMENDED):
        return ""
    title = str(meta.get("title") or meta.get("file") or "")
    successor = str(meta.get("superseded_by") or "")
    held = library.title_of(successor) if successor else None
    if held is not None:
        successor = f"《{messages.short_title(held)}》"
    elif successor.endswith(_FILE_SUFFIXES):
        successor = f"《{successor.rsplit('.', 1)[0]}》"
    return messages.status_notice(title, status == STATUS_REPEALED, successor, held=held is not None)


# A year naming a version: 2018年版, 2018版, 2005年的版本, 2018年修订/修正/修改, 2018年那一版.
_VERSION_YEAR = re.compile(r"((?:19|20)\d{2})\s*年?\s*(?:的|那一?|这一?)?\s*(?:版|修订|修正|修改)")


class UnheldVersion(NamedTuple):
    title: str  # the held text's short title
    year: str  # the version asked for
    held: list[str]  # the years of the versions the library holds
    compares: bool  # the question compares the two


def unheld_version(library: Library, question: str) -> UnheldVersion | None:
    """The version asked for when the question names one held text and a version of it by a
    year that none of its held versions has; else None."""
    question = full_version_years(re.sub(r"\s", "", question))
    years = [m.group(1) for m in _VERSION_YEAR.finditer(question)]
    if not years:  # most questions: no title matching at all (a large library has many titles)
        return None
    named = mentioned_titles(question, library.title_list())
    if not named:
        return None
    files = [f for t in named for f in library.titles.get(t, [])]
    groups = {library.docs[f].group for f in files}
    if len(groups) != 1:  # two texts named: which one the year belongs to is not clear
        return None
    group = groups.pop()
    family = [info for info in library.docs.values() if info.group == group]
    held = set().union(*(info.version_years for info in family))
    for year in years:
        if year not in held:
            held_years = sorted({info.year for info in family})
            return UnheldVersion(
                messages.short_title(family[0].title), year, held_years, bool(COMPARES.search(question))
            )
    return None
