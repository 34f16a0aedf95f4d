"""Vector engines behind a `FragmentIndex`: one small interface (`VectorBackend`: add, search,
len, save, load), an embedded default (FAISS), a numpy brute-force engine (no extra package;
the latency baseline) and Qdrant (a server, or qdrant-client's local mode) for archives that
outgrow one process.

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


#: Where `QdrantBackend()` connects when not told: a server URL, else a local-mode folder, else memory.
QDRANT_URL_ENV = "F2RVLM_QDRANT_URL"
QDRANT_API_KEY_ENV = "F2RVLM_QDRANT_API_KEY"
QDRANT_PATH_ENV = "F2RVLM_QDRANT_PATH"
_LOCAL_QDRANT: dict[str, object] = {}  # path -> client: local mode locks its folder, one client per process


def _qdrant_client(url: str | None, path: str | None, api_key: str | None):
    from qdrant_client import QdrantClient

    if url:
        return QdrantClient(url=url, api_key=api_key)
    if path and path != ":memory:":
        key = os.path.abspath(path)
        if key not in _LOCAL_QDRANT:
            _LOCAL_QDRANT[key] = QdrantClient(path=key)
        return _LOCAL_QDRANT[key]
    return QdrantClient(location=":memory:")


class QdrantBackend:
    """Qdrant: an existing server (`url`, or $F2RVLM_QDRANT_URL with $F2RVLM_QDRANT_API_KEY) or
    qdrant-client's local mode (`path` = a folder, or ":memory:"; default $F2RVLM_QDRANT_PATH,
    else memory). One collection per index (`collection`, default a fresh `f2rvlm-<hex>`), dot
    product on the normalised rows, point id = row position, exact search by default (the same
    top-k as numpy; `exact=False` lets the server use its HNSW graph).

    The index folder keeps `qdrant.json` (where the collection is; never the API key). The rows
    themselves live in Qdrant; the fragment table keeps every embedding, so an in-memory
    collection, or one that lags the table, is rebuilt from it on `FragmentIndex.load`.

    >>> backend = QdrantBackend(3, path=":memory:")            # doctest: +SKIP
    >>> backend.add(np.eye(3, dtype=np.float32)); backend.search(np.eye(3)[:1], 2)[1]  # doctest: +SKIP
    array([[0, 1]])
    """

    name = "qdrant"
    FILE = "qdrant.json"

    def __init__(self, dim: int, url: str | None = None, path: str | None = None, collection: str | None = None,
                 api_key: str | None = None, exact: bool = True, client=None):
        from qdrant_client import models

        if url is None and path is None and client is None:
            url = os.environ.get(QDRANT_URL_ENV) or None
            path = None if url else os.environ.get(QDRANT_PATH_ENV) or ":memory:"
        self.dim, self.url, self.path, self.exact = dim, url, path, exact
        self.collection = collection or f"f2rvlm-{os.urandom(6).hex()}"
        self._models = models
        self.client = client or _qdrant_client(url, path, api_key or os.environ.get(QDRANT_API_KEY_ENV))
        if not self.client.collection_exists(self.collection):
            self.client.create_collection(
                self.collection, vectors_config=models.VectorParams(size=dim, distance=models.Distance.DOT))
        self._count = self.client.count(self.collection, exact=True).count

    def add(self, vectors, batch: int = 512) -> None:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self.dim)
        for start in range(0, len(vectors), batch):
            chunk = vectors[start:start + batch]
            ids = list(range(self._count + start, self._count + start + len(chunk)))
            self.client.upsert(self.collection, points=self._models.Batch(ids=ids, vectors=chunk.tolist()), wait=True)
        self._count += len(vectors)

    def search(self, queries, k):
        queries = np.asarray(queries, np.float32).reshape(-1, self.dim)
        k = min(k, len(self))
        scores = np.full((len(queries), k), -np.inf, np.float32)
        ids = np.full((len(queries), k), -1, np.int64)
        if k == 0:
            return scores, ids
        # local mode is always exact (and warns about search params); a server is told
        params = self._models.SearchParams(exact=self.exact) if self.url else None
        requests = [self._models.QueryRequest(query=q.tolist(), limit=k, params=params) for q in queries]
        for row, response in enumerate(self.client.query_batch_points(self.collection, requests=requests)):
            for col, point in enumerate(response.points[:k]):
                scores[row, col], ids[row, col] = point.score, int(point.id)
        return scores, ids

    def __len__(self):
        return self._count

    def save(self, folder):
        import json

        where = {"url": self.url, "path": os.path.abspath(self.path) if self.path and self.path != ":memory:" else self.path,
                 "collection": self.collection, "dim": self.dim, "exact": self.exact}
        with open(os.path.join(folder, self.FILE), "w", encoding="utf-8") as f:
            json.dump(where, f, indent=2)

    @classmethod
    def load(cls, folder, dim):
        import json

        path = os.path.join(folder, cls.FILE)
        if not os.path.exists(path):
            return cls(dim)
        with open(path, encoding="utf-8") as f:
            where = json.load(f)
        if where.get("path") == ":memory:" or not (where.get("url") or where.get("path")):
            return cls(dim, path=":memory:")  # nothing outlived the process: rebuilt from the table
        return cls(dim, url=where.get("url"), path=where.get("path"), collection=where["collection"],
                   exact=where.get("exact", True))


BACKENDS = {"faiss": FaissBackend, "numpy": NumpyBackend, "qdrant": QdrantBackend}


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
