"""Versions: when the library holds two versions of a text, show the reader both.

* An article named explicitly in the question (第X条 of a text with two versions):
  the same-numbered article of the other version joins the evidence.
* Superseded text: the article of the current version that corresponds to it
  (the one sharing most wording, bigram Jaccard >= ``answer.version_overlap_min``)
  follows it.
* ``status_notice`` labels superseded text: 注意：《…》已废止，现行为《…》。

The version links (old file -> current file) come from the shared ``Library``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from langchain_core.documents import Document

from assistant import messages
from assistant.evidence import chunk_id
from assistant.library import Library
from assistant.schema import STATUS_AMENDED, STATUS_REPEALED
from assistant.text import bigrams

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
