"""The BM25 engine: ``bm25s`` over the project's own tokens, scored exactly like Okapi BM25.

Why bm25s (measured on the same token lists, ``bench/bench_bm25.py``): it keeps the whole
score matrix as one sparse CSC array, so a question's full per-chunk score array (which the
re-ranker's raw BM25 features need) is a few numpy slices: ~0.3 ms per question at 200k chunks
against ~470 ms for ``rank_bm25``'s Python loop. tantivy answers top-k queries fast but only
with its own fixed Lucene BM25 (k1=1.2, idf ``log(1 + ...)``) and no full score array, and it
needs its own tokenizer pipeline; bm25s takes our token ids as they are.

Scores equal ``rank_bm25.BM25Okapi`` (k1=1.5, b=0.75, Okapi idf ``log((N-df+.5)/(df+.5))``
with negative idfs floored to ``epsilon * mean idf``): bm25s's "atire" term-frequency part is
Okapi's, and its idf (built with the always-positive "lucene" formula) is replaced per term
by the Okapi one after the build (each CSC column is one term, so that is one multiplication).

Tokens are ids in a ``Vocabulary`` that only grows (ids stay valid across snapshots), so an
incremental snapshot reuses the unchanged chunks' token ids and only re-indexes (no re-tokenising).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

K1 = 1.5
B = 0.75
EPSILON = 0.25  # rank_bm25's floor for negative idfs, as a share of the mean idf


class Vocabulary:
    """Token -> id; ids are never reused or removed (removed chunks leave unused ids)."""

    def __init__(self, tokens: Sequence[str] = ()) -> None:
        self.ids: dict[str, int] = {t: i for i, t in enumerate(tokens)}

    def __len__(self) -> int:
        return len(self.ids)

    def encode(self, tokens: Sequence[str]) -> np.ndarray:
        """Ids of ``tokens``, adding the new ones (not thread-safe: only snapshot builders call it)."""
        ids = self.ids
        return np.fromiter((ids.setdefault(t, len(ids)) for t in tokens), dtype=np.int32, count=len(tokens))

    def lookup(self, tokens: Sequence[str]) -> list[int]:
        """Ids of the known ``tokens`` (duplicates kept: a repeated query word counts twice)."""
        ids = self.ids
        return [ids[t] for t in tokens if t in ids]

    def tokens(self) -> list[str]:
        return sorted(self.ids, key=self.ids.__getitem__)


class Bm25:
    """Okapi BM25 over token-id rows (one row per chunk), answering full score arrays."""

    def __init__(self, vocabulary: Vocabulary, engine: Any) -> None:
        self.vocabulary = vocabulary
        self.engine = engine  # bm25s.BM25 with Okapi-rescaled scores

    @classmethod
    def build(cls, vocabulary: Vocabulary, tokens: np.ndarray, offsets: np.ndarray) -> Bm25 | None:
        """The index of the chunks whose token ids are ``tokens[offsets[i]:offsets[i + 1]]``;
        None when no chunk has a token."""
        import bm25s

        if len(offsets) < 2 or not len(tokens):
            return None
        engine = bm25s.BM25(k1=K1, b=B, method="atire", idf_method="robertson")
        engine.scores = okapi_matrix(tokens, offsets, max(len(vocabulary), int(tokens.max()) + 1))
        engine.vocab_dict = {}  # our Vocabulary maps tokens to ids
        engine.nonoccurrence_array = None
        return cls(vocabulary, engine)

    @property
    def n_docs(self) -> int:
        return int(self.engine.scores["num_docs"])

    def get_scores(self, tokens: Sequence[str]) -> np.ndarray:
        """BM25 score of every chunk for the query ``tokens`` (float64, one per chunk)."""
        ids = [i for i in self.vocabulary.lookup(tokens) if i < len(self.engine.scores["indptr"]) - 1]
        if not ids:
            return np.zeros(self.n_docs, dtype=np.float64)
        return np.asarray(self.engine.get_scores_from_ids(ids), dtype=np.float64)

    def save(self, folder: Path) -> None:
        """bm25s's own format (CSC arrays + params) in ``folder``; the vocabulary is saved apart."""
        self.engine.save(str(folder), show_progress=False)

    @classmethod
    def load(cls, folder: Path, vocabulary: Vocabulary) -> Bm25:
        import bm25s

        engine = bm25s.BM25.load(str(folder), load_vocab=False, show_progress=False)
        return cls(vocabulary, engine)


def okapi_matrix(tokens: np.ndarray, offsets: np.ndarray, n_vocab: int) -> dict[str, Any]:
    """bm25s's score matrix (CSC: one column per term, one row per chunk) with rank_bm25's
    Okapi scores. The term counts go through scipy's compiled CSR -> CSC conversion (bm25s's
    own build loops over the chunks in Python: 9 s at 200k chunks, this ~1.5 s)."""
    import scipy.sparse as sp

    lengths = np.diff(offsets).astype(np.float64)
    n_docs = len(lengths)
    # Copies: sum_duplicates sorts and merges the index arrays in place (they are the snapshot's).
    ones = np.ones(len(tokens), dtype=np.float32)
    counts = sp.csr_matrix((ones, tokens.copy(), offsets.copy()), shape=(n_docs, n_vocab))
    counts.sum_duplicates()
    csc = counts.tocsc()
    csc.sort_indices()
    indptr = csc.indptr.astype(np.int64, copy=False)
    df = np.diff(indptr)
    rows = csc.indices.astype(np.int32, copy=False)
    tf = csc.data.astype(np.float64)
    avgdl = float(lengths.mean()) if n_docs else 0.0
    # idf * tf * (K1 + 1) / (tf + K1 * (1 - B + B * length / avgdl)), in place: the same operations
    # in the same order (a few large temporaries fewer), so the same float64 results.
    if avgdl > 0:
        norm = lengths[rows]
        norm *= B
        norm /= avgdl
        norm += 1 - B
        norm *= K1
    else:
        norm = np.full(len(rows), K1)
    norm += tf
    data = np.repeat(okapi_idf(df, n_docs), df)
    data *= tf
    data *= K1 + 1
    data /= norm
    return {"data": data.astype(np.float32), "indices": rows, "indptr": indptr, "num_docs": n_docs}


def okapi_idf(df: np.ndarray, n_docs: int) -> np.ndarray:
    """rank_bm25's idf per term: ``log((N-df+.5)/(df+.5))``, negatives floored to ``EPSILON``
    times the mean idf of the terms that occur (0 for terms no chunk holds)."""
    df = df.astype(np.float64)
    present = df > 0
    idf = np.log(n_docs - df + 0.5) - np.log(df + 0.5)
    mean_idf = float(idf[present].mean()) if present.any() else 0.0
    idf = np.where(idf < 0, EPSILON * mean_idf, idf)
    return np.where(present, idf, 0.0)
