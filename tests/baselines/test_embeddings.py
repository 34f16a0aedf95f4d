"""Embedders (hashing, offline MiniLM, tiny random CLIP) and the embedding cache."""

import doctest

import numpy as np
import pytest
from f2rvlm import embeddings
from f2rvlm.core.dialogue import DialogueImage
from f2rvlm.embeddings import (
    CLIPEmbedder,
    Embedder,
    EmbeddingCache,
    EmbeddingError,
    HashingEmbedder,
    MiniLMCaptionEmbedder,
    build_embedder,
    row_items,
)


def test_doctests():
    assert doctest.testmod(embeddings).failed == 0


def test_hashing_is_deterministic_and_normalised():
    a, b = HashingEmbedder(64), HashingEmbedder(64)
    v = a.embed_texts(["lake photos", "", "湖边的照片"])
    assert np.array_equal(v, b.embed_texts(["lake photos", "", "湖边的照片"]))
    assert np.allclose(np.linalg.norm(v[[0, 2]], axis=1), 1) and not v[1].any()
    imgs = a.embed_images([DialogueImage("x.png", "lake photos"), DialogueImage("y.png")])
    assert np.allclose(imgs[0], v[0]) and isinstance(a, Embedder)


def test_cache_roundtrip_and_keys(tmp_path):
    row = {"dialogue_id": "d1", "utterances": [{"text": "a"}, {"text": "b", "image_ids": [0]}], "image_captions": ["c"]}
    cache = EmbeddingCache(HashingEmbedder(16)).precompute([row, row])
    assert len(cache) == 3 and cache.misses == 3 and cache.hits == 3
    path = cache.save(tmp_path / "cache.safetensors")
    loaded = EmbeddingCache(HashingEmbedder(16), path)
    u, _i = loaded.row_vectors(row)
    assert loaded.misses == 0 and np.array_equal(u, cache.row_vectors(row)[0])
    # rows without dialogue_id are keyed by their texts
    other = dict(row, dialogue_id=None)
    cache.row_vectors(other)
    cache.row_vectors(dict(other, utterances=[{"text": "z"}]))
    assert len(cache) == 3 + 3 + 2


def test_row_items_counts_images_from_every_column():
    texts, images = row_items({"utterances": [{"text": "a", "image_ids": [0, 1]}], "image_captions": ["c0", None]})
    assert texts == ["a"] and [im.caption for im in images] == ["c0", None]


def test_minilm_offline_and_caption_error():
    e = build_embedder("minilm")
    assert isinstance(e, MiniLMCaptionEmbedder)
    v = e.embed_texts(["photos from the lake trip", "pictures of our holiday by the lake", "my tax return"])
    assert v.shape == (3, 384) and np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.2
    img = e.embed_images([DialogueImage("p.png", "photos from the lake trip")])
    assert np.allclose(img[0], v[0], atol=1e-5)
    with pytest.raises(EmbeddingError, match="p.png has no caption"):
        e.embed_images([DialogueImage("p.png")])


def _tiny_clip():
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import CLIPConfig, CLIPModel, PreTrainedTokenizerFast
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[EOS]", "a", "lake", "photo", "tax"])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", eos_token="[EOS]")
    torch.manual_seed(0)
    config = CLIPConfig(
        text_config={"vocab_size": len(vocab), "hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 1,
                         "num_attention_heads": 2, "max_position_embeddings": 16, "eos_token_id": 2, "bos_token_id": 2, "pad_token_id": 0},
        vision_config={"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 1, "num_attention_heads": 2,
                           "image_size": 32, "patch_size": 8},
        projection_dim=16,
    )
    processor = CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    return CLIPEmbedder.from_parts(CLIPModel(config), tokenizer, processor)


def test_tiny_clip_embedder():
    from PIL import Image

    e = _tiny_clip()
    t = e.embed_texts(["a lake photo", "tax"])
    imgs = e.embed_images([DialogueImage(Image.new("RGB", (40, 30), "red")), DialogueImage("", "a lake photo"),
                           DialogueImage(Image.new("RGB", (20, 20), "blue"))])
    assert t.shape == (2, 16) and imgs.shape == (3, 16)
    assert np.allclose(np.linalg.norm(imgs, axis=1), 1, atol=1e-5)
    assert np.allclose(imgs[1], t[0], atol=1e-5)   # captions-only image goes through the text tower
    assert not np.allclose(imgs[0], imgs[2])
