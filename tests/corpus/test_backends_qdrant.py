"""Qdrant engine (qdrant-client's local mode): same top-k as numpy, appends, reload, by name."""

import numpy as np
import pytest
from f2rvlm.corpus.backends import NumpyBackend, QdrantBackend, load_backend, make_backend

pytest.importorskip("qdrant_client")


def _vectors(rows, dim=32, seed=0):
    vectors = np.random.default_rng(seed).normal(size=(rows, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.mark.parametrize("where", ["memory", "folder"])
def test_local_mode_matches_numpy(tmp_path, where):
    vectors, queries = _vectors(600), _vectors(7, seed=1)
    exact = NumpyBackend(32)
    qdrant = QdrantBackend(32, path=":memory:" if where == "memory" else str(tmp_path / "qdrant"))
    for part in (vectors[:250], vectors[250:]):  # appends continue the row numbering
        exact.add(part)
        qdrant.add(part)
    assert len(qdrant) == 600
    want_scores, want_ids = exact.search(queries, 10)
    scores, ids = qdrant.search(queries, 10)
    assert ids.dtype == np.int64 and (ids == want_ids).all()
    assert np.allclose(scores, want_scores, atol=1e-5)
    assert qdrant.search(queries[:1], 1000)[1].shape == (1, 600)


def test_by_name_save_and_load(tmp_path):
    backend = make_backend("qdrant", 8)  # no server configured: local mode in memory
    assert isinstance(backend, QdrantBackend) and backend.path == ":memory:"
    folder = tmp_path / "idx"
    folder.mkdir()
    on_disk = QdrantBackend(8, path=str(tmp_path / "q"), collection="fragments")
    on_disk.add(_vectors(5, dim=8))
    on_disk.save(str(folder))
    again = load_backend("qdrant", str(folder), 8)
    assert again.collection == "fragments" and len(again) == 5
    assert again.search(_vectors(5, dim=8)[2:3], 1)[1][0, 0] == 2


def test_fragment_index_on_qdrant(tmp_path):
    from f2rvlm.corpus.index import FragmentIndex
    from f2rvlm.corpus.segmentation import FixedSegmenter
    from f2rvlm.embeddings import HashingEmbedder
    from test_index import _corpus

    index = FragmentIndex.build(_corpus(), embedder=HashingEmbedder(), backend="qdrant", segmenter=FixedSegmenter(4))
    assert index.backend.name == "qdrant" and len(index.backend) == 6
    top = index.search("the kitten purr on the sofa", top_k=3).fragments[0]
    assert (top.dialogue_id, top.fragment.utterance_ids) == ("d0", [0, 1, 2, 3])
    index.save(str(tmp_path / "idx"))
    loaded = FragmentIndex.load(str(tmp_path / "idx"), embedder=HashingEmbedder())  # memory: rebuilt from the table
    assert loaded.backend.name == "qdrant" and len(loaded.backend) == 6
    assert loaded.search("the kitten purr on the sofa", top_k=1).fragments[0].dialogue_id == "d0"
