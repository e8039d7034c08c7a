"""What a question points at in the library: documents it names, superseded versions it
asks for, and articles it references explicitly ("问责条例第七条"). Used by the retriever
(``assistant.retrieval``) to boost, penalise and put first."""

from __future__ import annotations

from assistant import references
from assistant.library import Library
from assistant.schema import STATUS_CURRENT

# Words that ask for a superseded version by themselves ...
_OLD_VERSION_WORDS: tuple[str, ...] = (
    "旧版",
    "老版",
    "原版",
    "修正前",
    "修订前",
    "修改前",
    "修正以前",
    "修订以前",
    "历史版本",
    "之前的版本",
    "废止",
    "失效",
)
# ... and words that do so only when the question names that text ("原来的监察法").
_PAST_WORDS: tuple[str, ...] = ("原来", "以前", "过去", "当时", "之前")


def mentioned_files(index: Library, query: str) -> set[str]:
    files: set[str] = set()
    for title in references.mentioned_titles(query, index.titles):
        files.update(index.titles[title])
    if "讲话" in query:
        files.update(f for f, info in index.docs.items() if info.kind == "讲话")
    return files


def asked_versions(index: Library, query: str, mentioned: set[str]) -> set[str]:
    """Superseded files the question asks for: by year, or by 旧版/修正前… with the text named."""
    asked: set[str] = set()
    years = references.years_in(query)
    wants_old = any(w in query for w in _OLD_VERSION_WORDS)
    past = any(w in query for w in _PAST_WORDS)
    for file, info in index.docs.items():
        if info.status == STATUS_CURRENT:
            continue
        if info.year and info.year in years:
            asked.add(file)
        elif wants_old and (file in mentioned or not mentioned):
            asked.add(file)
        elif past and file in mentioned:
            asked.add(file)
    return asked


def referenced_chunks(
    index: Library,
    query: str,
    scores: dict[int, float],
    mentioned: set[str],
    asked_old: set[str],
) -> list[int]:
    """Chunk positions of the explicitly referenced articles, in reference order."""
    refs = references.parse_references(query)
    if not refs:
        return []
    ranked_files: list[str] = []
    for i in sorted(scores, key=lambda i: -scores[i]):
        f = str(index.chunks[i].metadata.get("file", ""))
        if f not in ranked_files:
            ranked_files.append(f)
    out: list[int] = []
    for ref in refs:
        files: list[str]
        if ref.doc_hint:
            files = [f for t in references.match_titles(ref.doc_hint, index.titles) for f in index.titles[t]]
            if ref.year:
                by_year = [f for f in files if index.docs[f].year == ref.year]
                files = by_year or files
        else:
            files = [f for f in ranked_files if f in mentioned] or ranked_files
        files = [f for f in files if ref.article in index.docs[f].articles]
        if not files:
            continue
        chosen = pick_version(index, files, asked_old, ranked_files)
        for i in index.docs[chosen].articles[ref.article]:
            if i not in out:
                out.append(i)
    return out


def pick_version(index: Library, files: list[str], asked_old: set[str], ranked: list[str]) -> str:
    """Among candidate files: one asked for, else a current one, else the best-ranked."""
    for f in files:
        if f in asked_old:
            return f
    current = [f for f in files if index.docs[f].status == STATUS_CURRENT]
    pool = current or files
    for f in ranked:
        if f in pool:
            return f
    return pool[0]
