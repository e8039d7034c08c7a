"""Dense scores of one query vector over the library: an exact scan, or Chroma's HNSW index.

A chunk's dense score is ``own + view_weight * (best - own)``: ``own`` is the cosine with
the chunk itself and ``best`` the highest cosine among the chunk and its views.

* **exact** (``retrieval.dense_search = "exact"``): every in-memory vector is scored; the
  dense candidates are the exact top ``n``. Cost grows with the library (memory bandwidth:
  all vectors are read for every question).
* **store**: the dense candidates come from the store's own nearest-neighbour query
  (Chroma's HNSW index, embedded or ``chroma run``), whose time stays nearly flat as the
  library grows; its recall against the exact scan is below 1 (``bench/bench_scale.py``
  prints it). Scores are then computed exactly, from the snapshot's vectors, only for the
  chunks that are ever looked at (the candidates of every retriever, referenced articles):
  ``DenseScores.ensure``. Above ``library.in_memory_max_vectors`` those vectors are ``Rows``
  (``assistant.rows``) over the snapshot's files: only the rows scored are read.
* **auto**: store above ``retrieval.exact_max_vectors`` vectors, exact below.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from assistant.config import RetrievalSettings
from assistant.store import view_parent_id

if TYPE_CHECKING:
    import numpy as np

    from assistant.library import Library
    from assistant.library_store import LibraryStore

logger = logging.getLogger(__name__)


@dataclass
class DenseScores:
    """Per-chunk ``own`` and ``view`` (ranking) dense scores; with ``known`` set, only the
    positions marked in it have been computed (the others read 0 until ``ensure``)."""

    qvec: np.ndarray
    index: Library
    view_weight: float
    own: np.ndarray
    view: np.ndarray
    known: np.ndarray | None = None

    @classmethod
    def exact(cls, qvec: np.ndarray, index: Library, view_weight: float) -> DenseScores:
        import numpy as np

        own: np.ndarray = index.vectors @ qvec
        if not len(index.view_parent) or view_weight <= 0:
            return cls(qvec, index, view_weight, own, own)
        best = own.copy()
        np.maximum.at(best, index.view_parent, index.view_vectors @ qvec)
        return cls(qvec, index, view_weight, own, own + view_weight * (best - own))

    @classmethod
    def lazy(cls, qvec: np.ndarray, index: Library, view_weight: float) -> DenseScores:
        import numpy as np

        n = len(index.chunks)
        own = np.zeros(n, dtype=np.float32)
        return cls(qvec, index, view_weight, own, own.copy(), np.zeros(n, dtype=bool))

    def ensure(self, positions: Iterable[int]) -> None:
        """Compute the scores of ``positions`` not computed yet (exact: nothing to do)."""
        import numpy as np

        if self.known is None:
            return
        todo = np.asarray(sorted({int(i) for i in positions if not self.known[int(i)]}), dtype=np.int64)
        if not len(todo):
            return
        own = self.index.vectors[todo] @ self.qvec
        best = own.copy()
        if len(self.index.view_parent) and self.view_weight > 0:
            # All the views of all the chunks to score in one read (a few runs of rows each).
            order, starts = self.index.views_by_parent
            counts = starts[todo + 1] - starts[todo]
            has = counts > 0
            if has.any():
                rows = np.concatenate([order[starts[p] : starts[p + 1]] for p in todo[has]])
                cosines = self.index.view_vectors[rows] @ self.qvec
                firsts = np.concatenate([[0], np.cumsum(counts[has])[:-1]])
                best[has] = np.maximum(best[has], np.maximum.reduceat(cosines, firsts))
        self.own[todo] = own
        self.view[todo] = own + self.view_weight * (best - own)
        self.known[todo] = True


def view_hits(index: Library, qvec: np.ndarray, position: int) -> list[tuple[int, int, float]]:
    """``(start, end, cosine)`` of each view of chunk ``position`` that is a slice of its text:
    which of its sentences the question is closest to in meaning (``assistant.extractive``)."""
    if len(index.view_span) != len(index.view_parent) or not len(index.view_parent):
        return []
    order, starts = index.views_by_parent
    rows = order[starts[position] : starts[position + 1]]
    if not len(rows):
        return []
    cosines = index.view_vectors[rows] @ qvec
    spans = index.view_span[rows]
    return [(int(a), int(b), round(float(c), 6)) for (a, b), c in zip(spans, cosines, strict=True) if a >= 0]


def use_store(settings: RetrievalSettings, index: Library) -> bool:
    """Whether dense candidates come from the store's HNSW query (module docstring)."""
    if settings.dense_search == "auto":
        return len(index.chunks) + len(index.view_parent) > settings.exact_max_vectors
    return settings.dense_search == "store"


class StoreSearch:
    """Dense candidates from the store's nearest-neighbour query, mapped to chunk positions.

    The query asks for ids only: a view's id names its chunk (``store.view_parent_id``), and
    reading the records' metadata cost four times the HNSW search itself (Chroma server, 200k
    chunks: 54 ms against 10 ms for 120 results). The collection handle is kept while it is
    the snapshot's collection (a rebuild replaces it) and fetched again after a failed query."""

    def __init__(self, store: LibraryStore, settings: RetrievalSettings) -> None:
        self.store = store
        self.settings = settings
        self._collection: Any = None
        self._tuned: str = ""  # collection id whose ef_search was set

    def candidates(self, qvec: np.ndarray, index: Library, n: int) -> list[int]:
        """Positions of up to ``n`` distinct chunks whose own vector or a view is nearest."""
        limit = max(n, int(n * self.settings.store_oversample))
        try:
            ids = self._query(qvec, limit, index)
        except Exception:  # a replaced collection or a dropped connection: one fresh try
            self._collection = None
            ids = self._query(qvec, limit, index)
        out: list[int] = []
        seen: set[int] = set()
        for record_id in ids:
            pos = index.pos.get(record_id)
            if pos is None:
                pos = index.pos.get(view_parent_id(record_id))
            if pos is not None and pos not in seen:  # a record the snapshot does not hold yet: skipped
                seen.add(pos)
                out.append(pos)
                if len(out) >= n:
                    break
        return out

    def _query(self, qvec: np.ndarray, limit: int, index: Library) -> list[str]:
        collection = self._collection
        if collection is None or str(collection.id) != index.fingerprint.collection_id:
            collection = self._collection = self.store.collection()
            self._tune(collection)
        got = collection.query(query_embeddings=[qvec.tolist()], n_results=limit, include=[])
        return [str(i) for i in (got.get("ids") or [[]])[0]]

    def _tune(self, collection: Any) -> None:
        """Set the collection's ``ef_search`` to ``retrieval.store_search_ef`` (once per collection)."""
        ef = self.settings.store_search_ef
        if ef <= 0 or self._tuned == str(collection.id):
            return
        current = ((collection.configuration or {}).get("hnsw") or {}).get("ef_search")
        if current != ef:
            collection.modify(configuration={"hnsw": {"ef_search": ef}})
            logger.info("向量库 HNSW 检索参数 ef_search：%s → %d", current, ef)
        self._tuned = str(collection.id)
