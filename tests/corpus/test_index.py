"""Fragment index: build, search, rerank mapping, Parquet on disk, incremental add, atomicity."""

import os
from types import SimpleNamespace

import numpy as np
import pytest
from f2rvlm.core.dialogue import Dialogue, DialogueImage, Utterance
from f2rvlm.corpus.backends import FaissBackend, NumpyBackend
from f2rvlm.corpus.index import FragmentIndex, merge_hits
from f2rvlm.corpus.segmentation import FixedSegmenter
from f2rvlm.embeddings import HashingEmbedder
from helpers import png_bytes

TOPICS = {"cat": "cat kitten sofa purr", "car": "engine oil garage tyre", "cake": "flour oven sugar bake",
          "boat": "sail harbour wind anchor"}


def _dialogue(did, topics):
    utterances = []
    for topic in topics:
        for k in range(4):
            images = [DialogueImage(png_bytes(), f"a photo of the {topic}", f"{did}-{topic}.png")] if k == 2 else []
            utterances.append(Utterance("user1" if k % 2 else "user2", f"{TOPICS[topic]} {k}", images, topic=topic))
    return Dialogue(utterances, did)


def _corpus():
    return [_dialogue("d0", ["cat", "car"]), _dialogue("d1", ["cake", "boat"]), _dialogue("d2", ["car", "cake"])]


def _index(backend=None):
    return FragmentIndex.build(_corpus(), embedder=HashingEmbedder(), backend=backend, segmenter=FixedSegmenter(4))


@pytest.mark.parametrize("backend", ["numpy", "faiss"])
def test_build_and_recall(backend):
    index = _index(backend)
    assert len(index) == 6 and index.backend.name == backend
    result = index.search("the kitten purr on the sofa", top_k=3)
    top = result.fragments[0]
    assert (top.dialogue_id, top.fragment.utterance_ids) == ("d0", [0, 1, 2, 3])
    assert top.fragment.image_ids == [0] and not result.reranked
    assert result.dialogues[0].dialogue_id == "d0"
    # d2's cake fragment is its second one: global ids 4..7, image 1
    cake = next(h for h in index.search("flour oven bake", top_k=6).fragments if h.dialogue_id == "d2")
    assert cake.fragment.utterance_ids == [4, 5, 6, 7] and cake.fragment.image_ids == [1]


@pytest.mark.parametrize("rows", [500, 5_000])  # FAISS answers small indexes with numpy, large ones itself
def test_backends_agree(rows):
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(rows, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    a, b = NumpyBackend(32), FaissBackend(32)
    a.add(vectors[:200]), a.add(vectors[200:]), b.add(vectors[:200]), b.add(vectors[200:])
    sa, ia = a.search(vectors[:5], 10)
    sb, ib = b.search(vectors[:5], 10)
    assert (ia == ib).all() and np.allclose(sa, sb, atol=1e-5) and (ia[:, 0] == np.arange(5)).all()
    assert b.search(vectors[:1], rows + 5)[1].shape == (1, rows)


class _FakeReranker:
    """Stands for an F2RVLM model: picks local utterance 1 and image 0 of every fragment."""

    def __init__(self):
        self.pairs = []

    def retrieve_batch(self, pairs, processor=None, batch_size=8, show_progress=False, **kwargs):
        self.pairs += pairs
        return [SimpleNamespace(utterance_ids=[1] if "engine" in d.utterances[0].text else [],
                                image_ids=[0] if "engine" in d.utterances[0].text else []) for d, q in pairs]


def test_rerank_maps_local_ids_to_global_and_merges_per_dialogue():
    index = _index()
    reranker = _FakeReranker()
    result = index.search("engine oil garage", top_k=4, reranker=reranker)
    sub, query = reranker.pairs[0]
    assert query == "engine oil garage" and sub.id_offset == 0  # renumbered from 0
    assert [u.text for u in sub.utterances] == [u.text for u in _corpus()[0].utterances[4:8]] or sub.dialogue_id
    by_dialogue = {d.dialogue_id: d for d in result.dialogues}
    # d0's car fragment = global 4..7 (image 1); d2's = global 0..3 (image 0)
    assert by_dialogue["d0"].utterance_ids == [5] and by_dialogue["d0"].image_ids == [1]
    assert by_dialogue["d2"].utterance_ids == [1] and by_dialogue["d2"].image_ids == [0]
    assert result.dialogues[-1].utterance_ids == []  # picked nothing: ranked last
    assert result.reranked and result.to_dict()["dialogues"][0]["utterance_ids"]


def test_fragment_dialogue_keeps_images():
    fragment = _index().fragments[0]
    d = fragment.dialogue()
    assert [len(u.images) for u in d.utterances] == [0, 0, 1, 0]
    assert d.images[0].load().size == (4, 4) and d.images[0].caption == "a photo of the cat"


def test_save_load_add_and_load_dataset(tmp_path):
    path = str(tmp_path / "index")
    index = FragmentIndex.build(_corpus()[:2], embedder=HashingEmbedder(), segmenter=FixedSegmenter(4))
    index.save(path)
    reopened = FragmentIndex.load(path, embedder=HashingEmbedder())
    reopened.segmenter = FixedSegmenter(4)
    before = os.stat(os.path.join(path, "data", "shard-00000.parquet")).st_mtime_ns
    assert reopened.add_dialogues([_corpus()[2]]) == 2
    assert os.stat(os.path.join(path, "data", "shard-00000.parquet")).st_mtime_ns == before  # not rewritten
    again = FragmentIndex.load(path, embedder=HashingEmbedder())
    assert len(again) == 6 and again.dialogue_ids() == ["d0", "d1", "d2"]
    assert again.search("flour oven bake", top_k=6).fragments[0].dialogue_id in ("d1", "d2")
    from datasets import load_dataset

    ds = load_dataset(path, split="train")
    assert len(ds) == 6 and set(ds.column_names) >= {"dialogue_id", "fragment_id", "utterance_ids", "images", "embedding"}
    assert len(ds[0]["embedding"]) == HashingEmbedder().dim
    with pytest.raises(ValueError, match="already in the index"):
        again.add_dialogues([_corpus()[0]])


def test_failed_build_keeps_the_good_index(tmp_path):
    path = str(tmp_path / "index")
    _index().save(path)

    class Boom(Exception):
        pass

    def dialogues():
        yield _corpus()[0]
        raise Boom("killed half way")

    index = FragmentIndex.build([], embedder=HashingEmbedder(), segmenter=FixedSegmenter(4))
    with pytest.raises(Boom):
        index.add_dialogues(dialogues(), persist=False)
        index.save(path, overwrite=True)
    assert len(FragmentIndex.load(path, embedder=HashingEmbedder())) == 6
    assert sorted(os.listdir(tmp_path)) == ["index"]  # no temporary folder left


def test_failed_add_keeps_the_index_and_orphans_are_removed(tmp_path, monkeypatch):
    path = str(tmp_path / "index")
    _index().save(path)
    index = FragmentIndex.load(path, embedder=HashingEmbedder())
    index.segmenter = FixedSegmenter(4)
    import f2rvlm.corpus.index as module

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(module, "_write_json", crash)  # dies right before the manifest commit
    with pytest.raises(OSError):
        index.add_dialogues([_dialogue("d3", ["boat"])])
    monkeypatch.undo()
    again = FragmentIndex.load(path, embedder=HashingEmbedder())
    assert len(again) == 6 and "d3" not in again.dialogue_ids()
    assert os.listdir(os.path.join(path, "data")) == ["shard-00000.parquet"]  # orphan shard removed
    assert not [n for n in os.listdir(path) if n.startswith(".")]


def test_merge_without_reranker_counts_whole_fragments():
    index = _index()
    hits = index.search("engine oil", top_k=6).fragments
    merged = merge_hits(hits)
    assert sum(len(d.utterance_ids) for d in merged) == 24


def test_rerank_with_a_real_f2rvlm_model(tiny_model_and_processor):
    """The tiny F2RVLM model's retrieve_batch as the reranker: every pick is a global id inside
    its own recalled fragment (the model sees the fragment numbered from 0)."""
    model, processor = tiny_model_and_processor
    index = _index()
    result = index.search("engine oil garage", top_k=3, reranker=model, processor=processor, mode="tagging")
    assert result.reranked and len(result.fragments) == 3
    for hit in result.fragments:
        assert set(hit.utterance_ids) <= set(hit.fragment.utterance_ids)
        assert set(hit.image_ids) <= set(hit.fragment.image_ids)
    direct = model.retrieve(result.fragments[0].fragment.dialogue(), "engine oil garage", processor=processor, mode="tagging")
    assert result.fragments[0].utterance_ids == [result.fragments[0].fragment.utterance_ids[i] for i in direct.utterance_ids]


def test_embedding_picker_as_reranker():
    from f2rvlm.corpus.rerank import CachedEmbedder, EmbeddingPicker

    embedder = CachedEmbedder(HashingEmbedder())
    index = FragmentIndex.build(_corpus(), embedder=embedder, segmenter=FixedSegmenter(4))
    result = index.search("a photo of the cat", top_k=2, reranker=EmbeddingPicker(embedder))
    top = result.fragments[0]
    assert top.dialogue_id == "d0" and top.utterance_ids == [2] and top.image_ids == [0]  # turn 2 carries the photo
    assert set(top.rerank_scores["utterances"]) == {0, 1, 2, 3}
    assert result.dialogues[0].utterance_ids == [2]


def test_hybrid_recall_fuses_bm25_ranks():
    index = _index()
    dense = index.recall(["tyre"], top_k=6)[0]
    hybrid = index.recall(["tyre"], top_k=6, lexical=1.0)[0]
    assert {f.dialogue_id for _, f in hybrid[:2]} == {"d0", "d2"}  # both car fragments first
    assert {id(f) for _, f in dense} == {id(f) for _, f in hybrid}  # same candidates, fused order
    assert index.search("tyre", top_k=2, lexical=1.0).fragments[0].fragment.texts[0].startswith("engine oil garage tyre")
