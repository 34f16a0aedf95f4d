"""Vector engines behind a `FragmentIndex`: one small interface (`VectorBackend`: add, search,
len, save, load), an embedded default (FAISS) and a numpy brute-force engine (no extra package;
the latency baseline). A server-backed engine (Qdrant, Milvus, ...) implements the same five
methods; none ships yet.

All engines store L2-normalised float32 rows addressed by their position (row k of the
fragment table) and rank by inner product (= cosine).
"""

from __future__ import annotations

import os
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class VectorBackend(Protocol):
    name: str

    def add(self, vectors: np.ndarray) -> None: ...

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]: ...

    def __len__(self) -> int: ...

    def save(self, folder: str) -> None: ...


class NumpyBackend:
    """Flat brute force: one matrix product (the release's `.npy` + dot-product recall)."""

    name = "numpy"
    FILE = "vectors.npy"

    def __init__(self, dim: int):
        self.dim = dim
        self._chunks: list[np.ndarray] = []
        self._matrix = np.zeros((0, dim), np.float32)

    def add(self, vectors: np.ndarray) -> None:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self.dim)
        self._matrix = np.concatenate([self._matrix, vectors]) if len(self._matrix) else vectors

    def search(self, queries, k):
        queries = np.asarray(queries, np.float32).reshape(-1, self.dim)
        k = min(k, len(self))
        if k == 0:
            return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
        return _numpy_top_k(self._matrix, queries, k)

    def __len__(self):
        return len(self._matrix)

    def save(self, folder):
        np.save(os.path.join(folder, self.FILE), self._matrix)

    @classmethod
    def load(cls, folder, dim):
        backend = cls(dim)
        path = os.path.join(folder, cls.FILE)
        if os.path.exists(path):
            backend.add(np.load(path))
        return backend


#: Index size from which FaissBackend sends single queries through BLAS.
BLAS_FROM_ROWS = 20_000
#: Below this many rows FaissBackend answers with one numpy product over a copy of its vectors:
#: a FAISS call costs ~0.1 ms of fixed overhead, 2-3x numpy's whole search at 1k rows.
NUMPY_BELOW_ROWS = 4_096


def _numpy_top_k(matrix: np.ndarray, queries: np.ndarray, k: int):
    scores = queries @ matrix.T
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k] if k < scores.shape[1] else np.tile(np.arange(scores.shape[1]), (len(queries), 1))
    part = np.take_along_axis(scores, top, axis=1)
    order = np.argsort(-part, axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1), np.take_along_axis(top, order, axis=1).astype(np.int64)


class FaissBackend:
    """FAISS `IndexFlatIP`: exact inner-product search with BLAS/SIMD kernels, in process, one file
    (`index.faiss`); adding rows appends to it without touching the others."""

    name = "faiss"
    FILE = "index.faiss"

    def __init__(self, dim: int, index=None, threads: int | None = 1):
        import faiss

        if threads:  # one query is one sgemv: a second thread only contends (measured 30 vs 48 ms at 100k)
            faiss.omp_set_num_threads(threads)
        self.dim = dim
        self._faiss = faiss
        self.index = index if index is not None else faiss.IndexFlatIP(dim)
        self._small: np.ndarray | None = None  # numpy copy of a small index's vectors

    def add(self, vectors):
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self.dim)
        if len(vectors):
            self.index.add(vectors)
            self._small = None

    def search(self, queries, k):
        if queries.dtype != np.float32 or queries.ndim != 2 or not queries.flags.c_contiguous:
            queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.dim)
        k = min(k, self.index.ntotal)
        if k == 0:
            return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
        if self.index.ntotal < NUMPY_BELOW_ROWS:
            if self._small is None:
                self._small = self.index.reconstruct_n(0, self.index.ntotal)
            return _numpy_top_k(self._small, queries, k)
        # large indexes: even one query through BLAS (FAISS's own scan measured ~1.5x slower at
        # 100k); small ones: FAISS's default (BLAS from 20 queries), whose setup costs ~0.1 ms
        self._faiss.cvar.distance_compute_blas_threshold = 1 if self.index.ntotal >= BLAS_FROM_ROWS else 20
        return self.index.search(queries, k)  # ids are int64 already

    def __len__(self):
        return self.index.ntotal

    def save(self, folder):
        self._faiss.write_index(self.index, os.path.join(folder, self.FILE))

    @classmethod
    def load(cls, folder, dim):
        import faiss

        path = os.path.join(folder, cls.FILE)
        return cls(dim, faiss.read_index(path)) if os.path.exists(path) else cls(dim)


BACKENDS = {"faiss": FaissBackend, "numpy": NumpyBackend}


def default_backend_name() -> str:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return "numpy"
    return "faiss"


def make_backend(name: str | None, dim: int):
    name = name or default_backend_name()
    if name not in BACKENDS:
        raise ValueError(f"unknown vector backend {name!r}; choose one of {sorted(BACKENDS)}")
    return BACKENDS[name](dim)


def load_backend(name: str, folder: str, dim: int):
    if name not in BACKENDS:
        raise ValueError(f"unknown vector backend {name!r} in the index manifest")
    return BACKENDS[name].load(folder, dim)
