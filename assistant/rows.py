"""Rows of several matrices read as one matrix, without copying them into one array.

A large library's vectors (``library.in_memory_max_vectors``) stay where they already are: the
saved snapshot's ``.npy`` files, memory-mapped (only the pages of rows actually read become
resident), and the arrays of documents read since. A snapshot then costs no copy of every
vector at start-up or after a per-document update. ``Rows`` answers what the dense scorer asks
of a matrix: ``len``, ``shape``, rows by position (``rows[positions]``) and ``rows @ q``.

Adjacent blocks that are consecutive rows of one underlying array are merged back into one view,
so a snapshot loaded from disk is one block per file, and one document added makes three.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


class Rows:
    """The rows of ``blocks`` (each ``(k, dim)`` float32) one after the other."""

    ndim = 2

    def __init__(self, blocks: Sequence[np.ndarray], dim: int) -> None:
        self.blocks = _merged([b for b in blocks if len(b)])
        self.starts = np.cumsum([0] + [len(b) for b in self.blocks]).astype(np.int64)
        self.shape = (int(self.starts[-1]), dim)
        self.dtype = np.dtype(np.float32)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> np.ndarray:
        """Rows at the integer positions ``key`` (an array or list), as a new array."""
        idx = np.asarray(key, dtype=np.int64).reshape(-1)
        out = np.empty((len(idx), self.shape[1]), dtype=np.float32)
        if not len(idx):
            return out
        which = np.searchsorted(self.starts, idx, side="right") - 1
        for b in np.unique(which):
            mask = which == b
            out[mask] = self.blocks[int(b)][idx[mask] - self.starts[b]]
        return out

    def __matmul__(self, other: np.ndarray) -> np.ndarray:
        if not self.blocks:
            return np.zeros(0, dtype=np.float32)
        return np.concatenate([b @ other for b in self.blocks])

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        whole = np.concatenate(self.blocks) if self.blocks else np.zeros(self.shape, np.float32)
        return whole.astype(dtype) if dtype is not None else whole

    def write(self, out: np.ndarray) -> None:
        """Copy every row into ``out`` (e.g. a memory-mapped file), block by block."""
        for block, start in zip(self.blocks, self.starts, strict=False):
            out[start : start + len(block)] = block


Matrix = np.ndarray | Rows  # a snapshot's vectors: one array, or Rows above the memory budget


def _root(a: np.ndarray) -> np.ndarray:
    """The array ``a`` is a view of (itself when it owns its data)."""
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


def _address(a: np.ndarray) -> int:
    return int(a.__array_interface__["data"][0])


def _merged(blocks: list[np.ndarray]) -> list[np.ndarray]:
    """``blocks`` with neighbours that are consecutive rows of one 2-D array joined as one view."""
    out: list[np.ndarray] = []
    for block in blocks:
        if out and _follows(out[-1], block):
            root = _root(block)
            first = (_address(out[-1]) - _address(root)) // root.strides[0]
            out[-1] = root[first : first + len(out[-1]) + len(block)]
        else:
            out.append(block)
    return out


def _follows(a: np.ndarray, b: np.ndarray) -> bool:
    root = _root(a)
    return (
        root is _root(b)
        and root.ndim == 2
        and a.flags.c_contiguous
        and b.flags.c_contiguous
        and a.shape[1:] == b.shape[1:] == root.shape[1:]
        and _address(a) + a.nbytes == _address(b)
    )
