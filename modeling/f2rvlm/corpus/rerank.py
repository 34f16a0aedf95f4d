"""Rerankers besides an in-process F2RVLM model, all with its `retrieve_batch` shape, so
`FragmentIndex.search(query, reranker=...)` works the same way with each:

- `EmbeddingPicker`: no generative model; inside each recalled fragment, the turns whose embedding
  is closest to the query.
- `EndpointReranker`: an F2RVLM model served behind an OpenAI-compatible endpoint
  (`f2rvlm serve`), the fragments sent concurrently through `f2rvlm.client.RetrievalClient`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .segmentation import utterance_texts


@dataclass
class Pick:
    utterance_ids: list[int]
    image_ids: list[int]
    scores: dict


class CachedEmbedder:
    """Wraps an embedder with a text -> vector cache (a fixed corpus is embedded once)."""

    def __init__(self, embedder):
        self.embedder = embedder
        self.dim = getattr(embedder, "dim", None)
        self.spec = getattr(embedder, "spec", None)
        self._cache: dict[str, np.ndarray] = {}

    def embed_texts(self, texts):
        missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if missing:
            for t, v in zip(missing, self.embedder.embed_texts(missing)):
                self._cache[t] = v
        if not texts:
            return np.zeros((0, self.dim or 0), np.float32)
        return np.stack([self._cache[t] for t in texts])

    def embed_images(self, images):
        return self.embedder.embed_images(images)


class EmbeddingPicker:
    """Picks the top `top_n` turns of a fragment by cosine with the query (and the images they
    carry); `scores["utterances"]` holds every turn's cosine."""

    def __init__(self, embedder, top_n: int = 1):
        self.embedder = embedder
        self.top_n = top_n

    def retrieve_batch(self, pairs, processor=None, batch_size: int = 8, show_progress: bool = False, **kwargs):
        out = []
        for dialogue, query in pairs:
            q = self.embedder.embed_texts([query])[0]
            vectors = self.embedder.embed_texts(utterance_texts(dialogue))
            sims = vectors @ q
            top = sorted(np.argsort(-sims)[: self.top_n].tolist())
            hosts = dialogue.image_hosts
            images = [k for k, h in enumerate(hosts) if h in top]
            out.append(Pick(top, images, {"utterances": {i: float(s) for i, s in enumerate(sims)}}))
        return out


class EndpointReranker:
    """Reranks through a served model: `FragmentIndex.search(q, reranker=EndpointReranker(url))`.

    Keyword arguments go to `RetrievalClient` (model, concurrency, timeout, retries, template...);
    `retrieve_batch` sends every recalled fragment at once, `concurrency` of them in flight."""

    def __init__(self, base_url: str, **client_kwargs):
        from ..client import RetrievalClient

        self.client = RetrievalClient(base_url, **client_kwargs)

    def retrieve_batch(self, pairs, processor=None, batch_size: int = 8, show_progress: bool = False, **kwargs):
        return self.client.retrieve_batch(pairs, show_progress=show_progress, **kwargs)
