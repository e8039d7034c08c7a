"""The hybrid, status-aware retriever.

``build_retriever(settings, embeddings, store=None) -> HybridRetriever``;
``retriever.invoke(question, k=8)`` returns the best chunks as ``Document``s.

How one question is answered:

1. **Dense**: the retriever keeps the stored vectors in memory (chunks and
   their views, ``ingest.views``: single sentences of speech / 意见 chunks,
   embedded with the chunk's header) and computes the exact cosine of the query
   vector (``embeddings.embed_query``) with every record. A chunk's dense score
   is ``own + view_weight * (best - own)``, ``best`` being the highest cosine of
   the chunk and its views (``view_weight=1``: the max). The top ``candidates``
   chunks by that score join the candidate list; a view is never returned, only
   its parent chunk.
2. **BM25** over jieba tokens (a private ``jieba.Tokenizer`` with the domain
   dictionary ``settings.retrieval.dictionary``, stop words removed), built once
   from all chunks and rebuilt when the collection's count changes.
3. **Fusion**: ``score = dense + bm25_weight * bm25 / (bm25 + bm25_saturation)
   (+ mention_weight
   when the question names the chunk's document, e.g. "讲话", "公务员法")``. A
   dense-heavy weighted sum: on the dev questions it beat reciprocal-rank
   fusion, which pulled paraphrase recall down (``bench/bench_retrieval.py``
   prints both).
4. **Explicit references** ("第八条", "问责条例第七条", "监察法第15条") are parsed
   by ``assistant.references``; the named article of the named document (or,
   without a name, of a document named elsewhere in the question, else of the
   best-ranked document that has such an article) is put first.
5. **Status**: a superseded text (已修正 / 已废止) whose title has a current
   version in the library is pushed down unless the question asks for it
   (旧版, 修正前, 原来的 …, or the year of that version); a superseded text
   with no current version (e.g. the only 问责条例) competes normally. The
   ``status`` metadata is kept so the answerer can label it.

Metadata of every returned Document: all chunk metadata, plus ``chunk_id``,
``score`` (fused; +``reference_bonus`` for an explicitly referenced article),
``dense_score`` (cosine similarity of query and the whole chunk, views
ignored: what ``retrieval.decline_threshold`` is calibrated on), ``view_score``
(the dense score used for ranking, >= ``dense_score``), ``bm25_score`` (raw),
``match`` ("reference" or "search").
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, PrivateAttr

from assistant import references
from assistant.config import Settings
from assistant.schema import STATUS_CURRENT
from assistant.store import PARENT_KEY, VIEW_KEY, VIEW_WINDOW

if TYPE_CHECKING:
    import numpy as np
    from rank_bm25 import BM25Okapi

logger = logging.getLogger(__name__)

# Function words and question words that carry no retrieval signal.
STOP_WORDS: frozenset[str] = frozenset(
    """
    的 了 是 在 和 与 或 及 等 对 把 被 就 也 都 而 又 有 这 那 这个 那个 这些 那些 个 吗 呢 吧 啊 么 嘛
    什么 怎么 怎么样 怎样 如何 哪些 哪个 哪 多少 几 是否 是不是 能不能 会不会 要不要 有没有
    会 能 能够 要 可以 可 应 应当 应该 该 中 上 下 里 为 以 之 其 于 从 向 给 让 由 将 还 再 又 但 但是
    我 你 他 她 它 我们 你们 他们 咱们 自己 大家 人家 谁
    请问 请 一下 一个 一些 有些 这种 那种 时候 情况 问题 规定 讲 说 讲话 里面 具体 分别 一般 现在
    ， 。 、 ？ ！ ： ； “ ” ‘ ’ （ ） 《 》 〈 〉 【 】 … — · ～
    """.split()
)
_PUNCT_RE = re.compile(r"^[\W_]+$")
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


class DomainTokenizer:
    """jieba with the domain dictionary, in a private ``jieba.Tokenizer`` loaded on first use."""

    def __init__(self, dictionary: Path | None, min_len: int = 2) -> None:
        self.dictionary = dictionary
        self.min_len = min_len
        self._tokenizer: Any = None
        self._lock = threading.Lock()

    def _ensure(self) -> Any:
        if self._tokenizer is None:
            with self._lock:
                if self._tokenizer is None:
                    import jieba

                    logging.getLogger("jieba").setLevel(logging.WARNING)
                    tok = jieba.Tokenizer()
                    if self.dictionary is not None and Path(self.dictionary).is_file():
                        tok.load_userdict(str(self.dictionary))
                    else:
                        tok.initialize()
                        logger.warning("领域词典不存在：%s（BM25 仅用 jieba 默认词典分词）", self.dictionary)
                    self._tokenizer = tok
        return self._tokenizer

    def tokenize(self, text: str) -> list[str]:
        """Search tokens: jieba words minus stop words and punctuation, lower-cased."""
        words = self._ensure().lcut(text)
        out: list[str] = []
        for word in words:
            w = word.strip().lower()
            if len(w) < self.min_len or w in STOP_WORDS or _PUNCT_RE.match(w):
                continue
            out.append(w)
        return out


@dataclass
class _DocInfo:
    file: str
    title: str
    status: str
    year: str
    group: str  # base title shared by versions of one text
    kind: str = ""
    has_current_sibling: bool = False
    articles: dict[str, list[int]] = field(default_factory=dict)  # label -> chunk positions


@dataclass
class _Index:
    count: int
    chunks: list[Document]
    pos: dict[str, int]
    vectors: np.ndarray  # (n, dim), L2-normalised
    view_vectors: np.ndarray  # (m, dim), L2-normalised: the chunks' extra views (ingest.views)
    view_parent: np.ndarray  # (m,) int: position of each view's parent chunk
    bm25: BM25Okapi | None
    docs: dict[str, _DocInfo]  # file -> info
    titles: dict[str, list[str]]  # title -> files


def _year_of(date: str) -> str:
    m = re.match(r"\s*((?:19|20)\d{2})", date or "")
    return m.group(1) if m else ""


class HybridRetriever(BaseRetriever):
    """BM25 + dense + explicit references + status rules over one Chroma collection."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    collection: Any  # chromadb Collection
    embeddings: Embeddings
    dictionary: Path | None = None
    k: int = 5
    candidates: int = 30
    bm25_weight: float = 0.1
    bm25_saturation: float = 10.0  # bm25 / (bm25 + saturation): weak lexical matches add little
    mention_weight: float = 0.08  # chunk of a document the question names
    old_version_penalty: float = 0.15  # superseded text with a current version, not asked for
    asked_version_bonus: float = 0.05  # the version the question asks for, over its sibling
    reference_bonus: float = 0.5  # an explicitly referenced article
    view_weight: float = 1.0  # how far a chunk's best view cosine lifts its dense score (0: views unused)

    _index: _Index | None = PrivateAttr(default=None)
    _tokenizer: DomainTokenizer | None = PrivateAttr(default=None)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    # ------------------------------------------------------------------ index

    @property
    def tokenizer(self) -> DomainTokenizer:
        if self._tokenizer is None:
            self._tokenizer = DomainTokenizer(self.dictionary)
        return self._tokenizer

    def _chunk_tokens(self, doc: Document) -> list[str]:
        meta = doc.metadata
        head = f"{meta.get('title', '')} {meta.get('heading_path', '')} "
        return self.tokenizer.tokenize(head + doc.page_content)

    def refresh(self, force: bool = False) -> _Index:
        """The index, rebuilt when the collection's record count changed (or ``force``)."""
        count = int(self.collection.count())
        index = self._index
        if index is not None and index.count == count and not force:
            return index
        with self._lock:
            index = self._index
            if index is not None and index.count == count and not force:
                return index
            index = self._build_index(count)
            self._index = index
            return index

    def _build_index(self, count: int) -> _Index:
        import numpy as np
        from rank_bm25 import BM25Okapi

        from assistant.store import all_chunks

        chunks = all_chunks(self.collection)
        ids = [str(d.metadata["chunk_id"]) for d in chunks]
        pos = {cid: i for i, cid in enumerate(ids)}
        vectors = np.zeros((len(chunks), 1), dtype=np.float32)
        for start in range(0, len(ids), 500):
            got = self.collection.get(ids=ids[start : start + 500], include=["embeddings"])
            if vectors.shape[1] == 1:
                vectors = np.zeros((len(chunks), len(got["embeddings"][0])), dtype=np.float32)
            for cid, vec in zip(got["ids"], got["embeddings"], strict=True):
                vectors[pos[cid]] = np.asarray(vec, dtype=np.float32)
        if chunks:
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            vectors /= np.where(norms == 0, 1.0, norms)
        view_vectors, view_parent = self._load_views(pos, vectors.shape[1])
        tokens = [self._chunk_tokens(d) for d in chunks]
        bm25 = BM25Okapi(tokens) if any(tokens) else None
        docs: dict[str, _DocInfo] = {}
        titles: dict[str, list[str]] = {}
        for i, d in enumerate(chunks):
            meta = d.metadata
            file = str(meta.get("file", ""))
            info = docs.get(file)
            if info is None:
                title = str(meta.get("title", "")) or file
                info = docs[file] = _DocInfo(
                    file=file,
                    title=title,
                    status=str(meta.get("status", "")) or STATUS_CURRENT,
                    year=_year_of(str(meta.get("date", ""))),
                    group=references.base_title(title),
                    kind=str(meta.get("kind", "")),
                )
                titles.setdefault(title, []).append(file)
            label = str(meta.get("article", ""))
            if label:
                info.articles.setdefault(label, []).append(i)
        current_groups = {info.group for info in docs.values() if info.status == STATUS_CURRENT}
        for info in docs.values():
            info.has_current_sibling = info.status != STATUS_CURRENT and info.group in current_groups
        logger.info(
            "检索索引已建立：%d 个文本块（另有 %d 个句窗向量），%d 份文件",
            len(chunks),
            len(view_parent),
            len(docs),
        )
        return _Index(count, chunks, pos, vectors, view_vectors, view_parent, bm25, docs, titles)

    def _load_views(self, pos: dict[str, int], dim: int) -> tuple[np.ndarray, np.ndarray]:
        """Vectors of the stored views whose parent chunk is in the index (orphans are ignored)."""
        import numpy as np

        vecs: list[np.ndarray] = []
        parents: list[int] = []
        offset = 0
        while True:
            page = self.collection.get(
                where={VIEW_KEY: VIEW_WINDOW}, include=["embeddings", "metadatas"], limit=1000, offset=offset
            )
            ids = page["ids"]
            if not ids:
                break
            for vec, meta in zip(page["embeddings"], page["metadatas"] or [{}] * len(ids), strict=True):
                parent = pos.get(str((meta or {}).get(PARENT_KEY, "")))
                if parent is not None:
                    vecs.append(np.asarray(vec, dtype=np.float32))
                    parents.append(parent)
            offset += len(ids)
        if not vecs:
            return np.zeros((0, dim), dtype=np.float32), np.zeros(0, dtype=np.int64)
        matrix = np.vstack(vecs)
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        matrix /= np.where(norms == 0, 1.0, norms)
        return matrix, np.asarray(parents, dtype=np.int64)

    # -------------------------------------------------------------- retrieval

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, k: int | None = None
    ) -> list[Document]:
        return self.search(query, k=k)

    def search(self, query: str, k: int | None = None) -> list[Document]:
        """The top ``k`` (default ``self.k``) chunks for ``query``, best first."""
        import numpy as np

        k = self.k if k is None else k
        query = (query or "").strip()
        if not query or k <= 0:
            return []
        index = self.refresh()
        n = len(index.chunks)
        if n == 0:
            return []

        qvec = np.asarray(self.embeddings.embed_query(query), dtype=np.float32)
        qnorm = float(np.linalg.norm(qvec)) or 1.0
        qvec /= qnorm
        own, dense = self._dense_all(qvec, index)

        # Exact nearest neighbours (chunks and views, views mapped to their parent) over the
        # in-memory vectors define the dense candidate list.
        n_dense = min(max(self.candidates, k), n)
        candidates: set[int] = {int(i) for i in np.argpartition(-dense, n_dense - 1)[:n_dense]}

        q_tokens = self.tokenizer.tokenize(query)
        bm25 = np.zeros(n, dtype=np.float64)
        if index.bm25 is not None and q_tokens:
            bm25 = np.asarray(index.bm25.get_scores(q_tokens), dtype=np.float64)
            top_bm25 = np.argsort(-bm25)[: self.candidates]
            candidates.update(int(i) for i in top_bm25 if bm25[i] > 0)
        bm25_max = float(bm25.max()) if n else 0.0
        if self.bm25_saturation > 0:
            bm25_norm = bm25 / (bm25 + self.bm25_saturation)
        else:
            bm25_norm = bm25 / bm25_max if bm25_max > 0 else bm25

        # Documents named in the question, and which versions it asks for.
        mentioned = self._mentioned_files(index, query)
        asked_old = self._asked_versions(index, query, mentioned)

        scores: dict[int, float] = {}
        for i in candidates:
            scores[i] = self._fused(index, i, float(dense[i]), float(bm25_norm[i]), mentioned, asked_old)

        # Explicit article references go first.
        referenced = self._referenced_chunks(index, query, scores, mentioned, asked_old)
        for rank, i in enumerate(referenced):
            if i not in scores:
                scores[i] = self._fused(index, i, float(dense[i]), float(bm25_norm[i]), mentioned, asked_old)
            scores[i] += self.reference_bonus - 0.001 * rank

        ordered = sorted(scores, key=lambda i: -scores[i])[:k]
        ref_set = set(referenced)
        out: list[Document] = []
        for i in ordered:
            chunk = index.chunks[i]
            meta = dict(chunk.metadata)
            meta["score"] = round(scores[i], 6)
            meta["dense_score"] = round(float(own[i]), 6)
            meta["view_score"] = round(float(dense[i]), 6)
            meta["bm25_score"] = round(float(bm25[i]), 6)
            meta["match"] = "reference" if i in ref_set else "search"
            out.append(Document(page_content=chunk.page_content, metadata=meta, id=chunk.id))
        return out

    def _dense_all(self, qvec: np.ndarray, index: _Index) -> tuple[np.ndarray, np.ndarray]:
        """Per chunk: the cosine with the chunk itself, and the dense score used for ranking.

        The ranking score is ``own + view_weight * (best - own)`` where ``best`` is
        the highest cosine among the chunk and its views (``view_weight=1``: the max).
        """
        import numpy as np

        own: np.ndarray = index.vectors @ qvec
        if not len(index.view_parent) or self.view_weight <= 0:
            return own, own
        best = own.copy()
        np.maximum.at(best, index.view_parent, index.view_vectors @ qvec)
        return own, own + self.view_weight * (best - own)

    def _fused(
        self,
        index: _Index,
        i: int,
        dense: float,
        bm25_norm: float,
        mentioned: set[str],
        asked_old: set[str],
    ) -> float:
        meta = index.chunks[i].metadata
        file = str(meta.get("file", ""))
        info = index.docs.get(file)
        score = dense + self.bm25_weight * bm25_norm
        if file in mentioned:
            score += self.mention_weight
        if info is not None:
            if file in asked_old:
                score += self.asked_version_bonus
            elif info.has_current_sibling:
                score -= self.old_version_penalty
            elif (
                asked_old
                and info.status == STATUS_CURRENT
                and any(index.docs[f].group == info.group for f in asked_old)
            ):
                # The current twin of a version the question asks for comes second.
                score -= self.asked_version_bonus
        return score

    def _mentioned_files(self, index: _Index, query: str) -> set[str]:
        files: set[str] = set()
        for title in references.mentioned_titles(query, index.titles):
            files.update(index.titles[title])
        if "讲话" in query:
            files.update(f for f, info in index.docs.items() if info.kind == "讲话")
        return files

    @staticmethod
    def _asked_versions(index: _Index, query: str, mentioned: set[str]) -> set[str]:
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

    def _referenced_chunks(
        self,
        index: _Index,
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
                files = [
                    f for t in references.match_titles(ref.doc_hint, index.titles) for f in index.titles[t]
                ]
                if ref.year:
                    by_year = [f for f in files if index.docs[f].year == ref.year]
                    files = by_year or files
            else:
                files = [f for f in ranked_files if f in mentioned] or ranked_files
            files = [f for f in files if ref.article in index.docs[f].articles]
            if not files:
                continue
            chosen = self._pick_version(index, files, asked_old, ranked_files)
            for i in index.docs[chosen].articles[ref.article]:
                if i not in out:
                    out.append(i)
        return out

    @staticmethod
    def _pick_version(index: _Index, files: list[str], asked_old: set[str], ranked: list[str]) -> str:
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


def build_retriever(settings: Settings, embeddings: Embeddings, store: Any = None) -> HybridRetriever:
    """A ``HybridRetriever`` over the configured collection.

    ``store`` may be a LangChain ``Chroma`` (from ``assistant.store.open_vectorstore``),
    a chromadb ``Collection``, or None to open the configured store.
    """
    if store is None:
        from assistant.store import open_vectorstore

        store = open_vectorstore(settings, embeddings)
    collection = getattr(store, "_collection", store)
    if not hasattr(collection, "query") or not hasattr(collection, "count"):
        raise TypeError(f"build_retriever 需要 Chroma 或 chromadb Collection，得到 {type(store).__name__}")
    return HybridRetriever(
        collection=collection,
        embeddings=embeddings,
        dictionary=settings.retrieval.dictionary,
        k=settings.retrieval.k,
        candidates=settings.retrieval.candidates,
    )
