"""Rows of several matrices read as one matrix, without copying them into one array.

A large library's vectors (``library.in_memory_max_vectors``) stay where they already are: the
saved snapshot's ``.npy`` files (``FileRows``: rows read on demand with ``pread``, so they sit in
the page cache, not in this process, and a question reads only its candidates' rows) and the
arrays of documents read since. A snapshot then costs no copy of every vector at start-up or
after a per-document update. ``Rows`` answers what the dense scorer asks of a matrix: ``len``,
``shape``, rows by position (``rows[positions]``) and ``rows @ q``.

Adjacent blocks that are consecutive rows of one file or array are merged back into one, so a
snapshot loaded from disk is one block per file, and one document added makes three.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np


class _File:
    """An open ``.npy`` file of float32 rows (closed when no ``FileRows`` uses it any more)."""

    def __init__(self, path: Path) -> None:
        with path.open("rb") as f:
            version = np.lib.format.read_magic(f)
            fmt = np.lib.format
            reader = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            shape, fortran, dtype = reader(f)
            self.offset = f.tell()
        if dtype != np.float32 or fortran or len(shape) != 2:
            raise ValueError(f"{path.name}: 不是按行存放的 float32 矩阵")
        self.shape: tuple[int, int] = (int(shape[0]), int(shape[1]))
        self.fd = os.open(path, os.O_RDONLY)  # kept open: the file stays readable if replaced

    def __del__(self) -> None:
        os.close(self.fd)


class FileRows:
    """Rows ``start:stop`` of a float32 ``.npy`` file, read when asked for (never memory-mapped:
    a mapping would make whole neighbourhoods of every row read resident in this process)."""

    ndim = 2
    dtype = np.dtype(np.float32)

    def __init__(self, file: _File, start: int, stop: int) -> None:
        self.file, self.start, self.stop = file, start, stop
        self.shape = (stop - start, file.shape[1])

    @classmethod
    def open(cls, path: Path) -> FileRows:
        file = _File(path)
        return cls(file, 0, file.shape[0])

    def __len__(self) -> int:
        return self.shape[0]

    def _read(self, lo: int, hi: int) -> np.ndarray:
        """Rows ``lo:hi`` (relative to this block)."""
        row = 4 * self.shape[1]
        data = os.pread(self.file.fd, (hi - lo) * row, self.file.offset + (self.start + lo) * row)
        return np.frombuffer(data, dtype=np.float32).reshape(hi - lo, self.shape[1])

    def __getitem__(self, key: Any) -> Any:
        """A slice: the rows as another ``FileRows``; integer positions: those rows, read."""
        if isinstance(key, slice):
            lo, hi, _step = key.indices(len(self))
            return FileRows(self.file, self.start + lo, self.start + max(lo, hi))
        idx = np.asarray(key, dtype=np.int64).reshape(-1)
        out = np.empty((len(idx), self.shape[1]), dtype=np.float32)
        order = np.argsort(idx, kind="stable")
        ordered = idx[order]
        cuts = np.flatnonzero(np.diff(ordered) > 1) + 1  # runs of consecutive rows: one read each
        for run, where in zip(np.split(ordered, cuts), np.split(order, cuts), strict=True):
            if len(run):
                block = self._read(int(run[0]), int(run[-1]) + 1)
                out[where] = block[run - run[0]]
        return out

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        whole = self._read(0, len(self)).copy()
        return whole.astype(dtype) if dtype is not None else whole

    def __matmul__(self, other: np.ndarray) -> np.ndarray:
        step = 1 << 14
        parts = [self._read(lo, min(lo + step, len(self))) @ other for lo in range(0, len(self), step)]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)


Block = np.ndarray | FileRows  # one part's rows: in memory, or in a saved snapshot file


class Rows:
    """The rows of ``blocks`` (each ``(k, dim)`` float32) one after the other."""

    ndim = 2

    def __init__(self, blocks: Sequence[Block], dim: int) -> None:
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

    def chunks(self, step: int = 1 << 14) -> Iterator[np.ndarray]:
        """Every row in order, at most ``step`` at a time (for writing them out)."""
        for block in self.blocks:
            for lo in range(0, len(block), step):
                yield np.asarray(block[lo : min(lo + step, len(block))])


Matrix = np.ndarray | Rows  # a snapshot's vectors: one array, or Rows above the memory budget


def _root(a: np.ndarray) -> np.ndarray:
    """The array ``a`` is a view of (itself when it owns its data)."""
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


def _address(a: np.ndarray) -> int:
    return int(a.__array_interface__["data"][0])


def _merged(blocks: list[Block]) -> list[Block]:
    """``blocks`` with neighbours that are consecutive rows of one file or 2-D array joined."""
    out: list[Block] = []
    for block in blocks:
        last = out[-1] if out else None
        if isinstance(block, FileRows) or isinstance(last, FileRows):
            if (
                isinstance(block, FileRows)
                and isinstance(last, FileRows)
                and last.file is block.file
                and last.stop == block.start
            ):
                out[-1] = FileRows(block.file, last.start, block.stop)
            else:
                out.append(block)
            continue
        if last is not None and _follows(last, block):
            root = _root(block)
            first = (_address(last) - _address(root)) // root.strides[0]
            out[-1] = root[first : first + len(last) + len(block)]
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
