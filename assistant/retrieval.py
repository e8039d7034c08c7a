"""The hybrid, status-aware retriever.

``build_retriever(settings.retrieval, embeddings, library_index) -> HybridRetriever``;
``retriever.invoke(question)`` returns the best ``retrieval.k`` chunks as ``Document``s
(``search(question, k, library=snapshot)`` on a given ``Library`` snapshot).

How one question is answered:

1. **Dense**: the retriever keeps the stored vectors in memory (chunks and
   their views, ``ingest.views``: single sentences of speech / 意见 chunks,
   embedded with the chunk's header) and computes the exact cosine of the query
   vector (``embeddings.embed_query``) with every record. A chunk's dense score
   is ``own + view_weight * (best - own)``, ``best`` being the highest cosine of
   the chunk and its views (``view_weight=1``: the max). The top ``candidates``
   chunks by that score join the candidate list; a view is never returned, only
   its parent chunk.
2. **BM25** over the tokens of ``assistant.tokenizer.DomainTokenizer`` (jieba with
   the domain dictionary, stop words removed), held by the shared
   ``assistant.library.Library`` snapshot and rebuilt with it when the store changes.
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

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, PrivateAttr

from assistant.config import RetrievalSettings
from assistant.dense import DenseScores, StoreSearch, use_store, view_hits
from assistant.library import Library, LibraryIndex
from assistant.linear import LinearModel
from assistant.question import asks_kinds, defines_kinds
from assistant.schema import STATUS_CURRENT
from assistant.targets import asked_versions, mentioned_files, referenced_chunks
from assistant.thesaurus import Expansion, Thesaurus

if TYPE_CHECKING:
    import numpy as np


@dataclass
class Ranked:
    """One question's candidates: per-chunk score arrays (``own`` dense, ``view`` dense,
    raw ``bm25``), the fused and final scores by chunk position, the referenced positions,
    the re-ranked depth with its feature rows, and the final order."""

    own: np.ndarray
    view: np.ndarray
    bm25: np.ndarray
    fused: dict[int, float]
    scores: dict[int, float]
    referenced: list[int]
    depth: list[int] = field(default_factory=list)
    features: np.ndarray | None = None
    order: list[int] = field(default_factory=list)
    qvec: np.ndarray | None = None  # the question's vector (for its cosine with a chunk's views)


class HybridRetriever(BaseRetriever):
    """BM25 + dense + explicit references + status rules over the shared library snapshot."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    index: LibraryIndex
    embeddings: Embeddings
    settings: RetrievalSettings
    reranker: LinearModel | None = None
    thesaurus: Thesaurus | None = None
    _store_search: StoreSearch | None = PrivateAttr(default=None)

    @property
    def k(self) -> int:
        return self.settings.k

    # -------------------------------------------------------------- retrieval

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, k: int | None = None
    ) -> list[Document]:
        return self.search(query, k=k)

    def search(self, query: str, k: int | None = None, *, library: Library | None = None) -> list[Document]:
        """The top ``k`` (default ``retrieval.k``) chunks for ``query``, best first, from
        ``library`` (default: the index's current snapshot)."""
        k = self.settings.k if k is None else k
        index = library if library is not None else self.index.current()
        ranked = self.rank(query, index)
        if ranked is None or k <= 0:
            return []
        out: list[Document] = []
        for i in ranked.order[:k]:
            chunk = index.chunks[i]
            meta = dict(chunk.metadata)
            meta["score"] = round(ranked.scores[i], 6)
            meta["fused_score"] = round(ranked.fused[i], 6)
            meta["dense_score"] = round(float(ranked.own[i]), 6)
            meta["view_score"] = round(float(ranked.view[i]), 6)
            meta["bm25_score"] = round(float(ranked.bm25[i]), 6)
            meta["match"] = "reference" if i in ranked.referenced else "search"
            if ranked.qvec is not None:
                meta["view_hits"] = view_hits(index, ranked.qvec, i)
            out.append(Document(page_content=chunk.page_content, metadata=meta, id=chunk.id))
        return out

    def rank(
        self, query: str, index: Library, *, rerank: bool = True, features: bool = False
    ) -> Ranked | None:
        """Every candidate of ``query`` with its scores, in final order (None: nothing to rank).
        ``rerank=False`` keeps the fused order; ``features=True`` computes the re-ranker's
        feature rows even then (for fitting it)."""
        import numpy as np

        cfg = self.settings
        query = (query or "").strip()
        n = len(index.chunks)
        if not query or n == 0:
            return None

        expansion = self.thesaurus.expand(query) if self.thesaurus is not None else Expansion()
        n_dense = min(max(cfg.candidates, cfg.k), n)
        qvec = self._query_vector(query)
        scores: DenseScores | None = None
        if use_store(cfg, index):
            # Dense candidates from the store's HNSW query; exact scores only where looked at.
            if self._store_search is None:
                self._store_search = StoreSearch(self.index.store, cfg)
            scores = DenseScores.lazy(qvec, index, cfg.view_weight)
            candidates: set[int] = set(self._store_search.candidates(qvec, index, n_dense))
            scores.ensure(candidates)
            own, dense = scores.own, scores.view
        else:
            own, dense = self._dense_all(qvec, index)
            if expansion.rewritten and cfg.thesaurus_dense_weight > 0:
                # The question in the library's words is a second dense query; a chunk keeps the
                # better of its two (weighted) scores.
                own2, dense2 = self._dense_all(self._query_vector(expansion.rewritten), index)
                own = np.maximum(own, cfg.thesaurus_dense_weight * own2)
                dense = np.maximum(dense, cfg.thesaurus_dense_weight * dense2)
            # Exact nearest neighbours (chunks and views, views mapped to their parent) over the
            # in-memory vectors define the dense candidate list.
            candidates = {int(i) for i in np.argpartition(-dense, n_dense - 1)[:n_dense]}

        q_tokens = index.tokenizer.tokenize(query)
        if cfg.thesaurus_bm25 and expansion.terms:
            q_tokens += index.tokenizer.tokenize(" ".join(expansion.terms))
        bm25 = np.zeros(n, dtype=np.float64)
        if index.bm25 is not None and q_tokens:
            bm25 = np.asarray(index.bm25.get_scores(q_tokens), dtype=np.float64)
            top_bm25 = np.argsort(-bm25)[: cfg.candidates]
            candidates.update(int(i) for i in top_bm25 if bm25[i] > 0)
        bm25_max = float(bm25.max()) if n else 0.0
        if cfg.bm25_saturation > 0:
            bm25_norm = bm25 / (bm25 + cfg.bm25_saturation)
        else:
            bm25_norm = bm25 / bm25_max if bm25_max > 0 else bm25

        # Documents named in the question, and which versions it asks for.
        mentioned = mentioned_files(index, query)
        asked_old = asked_versions(index, query, mentioned)
        if scores is not None:
            scores.ensure(candidates)  # the BM25 candidates' dense scores

        fused: dict[int, float] = {}
        for i in candidates:
            fused[i] = self._fused(index, i, float(dense[i]), float(bm25_norm[i]), mentioned, asked_old)
        if asks_kinds(query) and cfg.kinds_bonus:
            for i in fused:
                if defines_kinds(index.chunks[i].page_content):
                    fused[i] += cfg.kinds_bonus
        referenced = referenced_chunks(index, query, fused, mentioned, asked_old)
        if scores is not None:
            scores.ensure(referenced)
        for i in referenced:
            if i not in fused:
                fused[i] = self._fused(index, i, float(dense[i]), float(bm25_norm[i]), mentioned, asked_old)

        ranked = Ranked(own, dense, bm25, fused, dict(fused), referenced, qvec=qvec)
        depth = sorted(fused, key=lambda i: -fused[i])[: cfg.rerank_depth]
        ranked.depth = depth
        use = rerank and self.reranker is not None
        if (use or features) and depth:
            from assistant.rerank import candidate_features

            ranked.features = candidate_features(
                index,
                query,
                depth,
                own=own,
                view=dense,
                bm25=bm25,
                bm25_norm=bm25_norm,
                fused=fused,
                mentioned=mentioned,
                asked_old=asked_old,
                thesaurus_terms=expansion.terms,
            )
        if use and ranked.features is not None:
            assert self.reranker is not None
            probs = self.reranker.probabilities(ranked.features)
            for i, p in zip(depth, probs, strict=True):
                ranked.scores[i] = float(p)
            # Below the re-ranked depth, candidates keep their order but stay behind.
            floor = min(ranked.scores[i] for i in depth)
            in_depth = set(depth)
            for i in fused:
                if i not in in_depth:
                    ranked.scores[i] = floor - 1.0 + fused[i] * 1e-3
        # Explicit article references go first.
        for rank, i in enumerate(referenced):
            ranked.scores[i] += cfg.reference_bonus - 0.001 * rank
        ranked.order = sorted(ranked.scores, key=lambda i: -ranked.scores[i])
        return ranked

    def _query_vector(self, text: str) -> np.ndarray:
        import numpy as np

        qvec = np.asarray(self.embeddings.embed_query(text), dtype=np.float32)
        qvec /= float(np.linalg.norm(qvec)) or 1.0
        return qvec

    def _dense_all(self, qvec: np.ndarray, index: Library) -> tuple[np.ndarray, np.ndarray]:
        """Per chunk, by exact scan: the cosine with the chunk itself, and the dense score used
        for ranking (``assistant.dense``)."""
        scores = DenseScores.exact(qvec, index, self.settings.view_weight)
        return scores.own, scores.view

    def _fused(
        self,
        index: Library,
        i: int,
        dense: float,
        bm25_norm: float,
        mentioned: set[str],
        asked_old: set[str],
    ) -> float:
        meta = index.chunks[i].metadata
        file = str(meta.get("file", ""))
        info = index.docs.get(file)
        cfg = self.settings
        score = dense + cfg.bm25_weight * bm25_norm
        if file in mentioned:
            score += cfg.mention_weight
        if info is not None:
            if file in asked_old:
                score += cfg.asked_version_bonus
            elif info.has_current_sibling:
                score -= cfg.old_version_penalty
            elif (
                asked_old
                and info.status == STATUS_CURRENT
                and any(index.docs[f].group == info.group for f in asked_old)
            ):
                # The current twin of a version the question asks for comes second.
                score -= cfg.asked_version_bonus
        return score


def build_retriever(
    settings: RetrievalSettings, embeddings: Embeddings, index: LibraryIndex
) -> HybridRetriever:
    """A ``HybridRetriever`` over the shared library index (the fitted re-ranker, when there is
    one, is set by ``assistant.service.build_assistant``)."""
    thesaurus = Thesaurus.load(Path(settings.thesaurus)) if settings.thesaurus else None
    return HybridRetriever(index=index, embeddings=embeddings, settings=settings, thesaurus=thesaurus)
