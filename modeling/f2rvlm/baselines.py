"""Non-generative baselines with the retrieval output type: `(utterance_ids, image_ids)`.

- `BM25Baseline`: BM25 (`bm25s`) over the utterances of one dialogue, the query as the search.
- `EmbeddingBaseline`: cosine similarity of query and utterance vectors (offline MiniLM default).
- `HybridBaseline`: z-scored BM25 + embedding scores, summed.

`SpeakerHandling` (real chats): score turns as "speaker: text", drop the speakers' names from
the query, and boost the turns of the speaker the query names (the helpers live with the
model's text scorer, `models.scorer_f2rvlm`, so both count names the same way).

Images are scored by their caption when they have one (BM25 over captions / caption vectors),
else they take the score of their host utterance. Both turn scores into ids with one
`SelectionRule`: keep every item whose score is at least `max(min_score, relative * best)`, where
`best` is the best score in the dialogue, capped at `top_k` per modality; nothing when no score
reaches `min_score` ("nothing matches"). `tune_rule` picks the rule with the best joint F1
(`metrics.evaluate`) on a dev split; the defaults below are starting points, not tuned values.

>>> from f2rvlm.core.dialogue import Dialogue, Utterance
>>> d = Dialogue([Utterance("user1", "we went to the lake"), Utterance("user2", "tax forms are due"),
...               Utterance("user1", "the lake was cold")])
>>> BM25Baseline().retrieve(d, "lake trip")
([0, 2], [])
"""

from __future__ import annotations

import itertools
import re
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np

from .core.dialogue import Dialogue
from .core.metrics import EvalSample, evaluate
from .core.protocol import Answer


class Baseline(Protocol):
    def retrieve(self, dialogue: Dialogue, query: str) -> tuple[list[int], list[int]]: ...


@dataclass(frozen=True)
class SelectionRule:
    """Scores -> ids: `score >= max(min_score, relative * best)`, at most `top_k` per modality."""

    relative: float = 0.6
    min_score: float = 0.0
    top_k: int | None = None

    def select(self, utterance_scores: np.ndarray, image_scores: np.ndarray) -> tuple[list[int], list[int]]:
        all_scores = np.concatenate([utterance_scores, image_scores])
        if not len(all_scores):
            return [], []
        best = float(all_scores.max())
        if best <= self.min_score:
            return [], []
        cut = max(self.min_score, self.relative * best)
        out = []
        for scores in (utterance_scores, image_scores):
            ids = [int(i) for i in np.flatnonzero(scores >= cut) if scores[i] > self.min_score]
            if self.top_k is not None:
                ids = sorted(sorted(ids, key=lambda i: (-scores[i], i))[: self.top_k])
            out.append(ids)
        return out[0], out[1]


_WORD = re.compile(r"\w+", re.UNICODE)
_EN_STOPWORDS = frozenset(
    ["a", "an", "the", "and", "or", "of", "to", "in", "on", "at", "for", "with", "from", "by", "is", "are", "was", "were", "be", "been", "it", "this", "that", "these", "those", "i", "you", "he", "she", "we", "they", "me", "my", "your", "our", "their", "do", "did", "does", "have", "has", "had", "not", "no", "so", "as", "what", "which", "who"]
)


def tokenize(text: str) -> list[str]:
    """Lower-cased words without common English stopwords; CJK text split into characters."""
    tokens = []
    for word in _WORD.findall(text.lower()):
        if any("\u4e00" <= ch <= "\u9fff" for ch in word):
            tokens += list(word)
        elif word not in _EN_STOPWORDS:
            tokens.append(word)
    return tokens


@dataclass(frozen=True)
class SpeakerHandling:
    """Speaker-aware scoring for real chats (all off by default: the synthetic data has no names).

    Args:
        speaker_prefix: score each turn as "speaker: text" instead of its text.
        strip_names: remove the speakers' first names from the query before scoring.
        boost: added to the (max-normalised for BM25) scores of the turns of a speaker the query names.
    """

    speaker_prefix: bool = False
    strip_names: bool = False
    boost: float = 0.0

    def texts(self, dialogue: Dialogue) -> list[str]:
        return [f"{u.speaker}: {u.text}" if self.speaker_prefix else u.text for u in dialogue.utterances]

    def query(self, dialogue: Dialogue, query: str) -> str:
        from .models.scorer_f2rvlm import strip_speaker_names

        return strip_speaker_names(query, [u.speaker for u in dialogue.utterances]) if self.strip_names else query

    def bonus(self, dialogue: Dialogue, query: str) -> np.ndarray:
        from .models.scorer_f2rvlm import named_speakers

        if not self.boost:
            return np.zeros(len(dialogue))
        named = named_speakers(query, [u.speaker for u in dialogue.utterances])
        return np.array([self.boost if u.speaker in named else 0.0 for u in dialogue.utterances])


class ScoredBaseline:
    """Shared `retrieve`: subclasses give per-utterance and per-image scores."""

    rule: SelectionRule
    speakers: SpeakerHandling = SpeakerHandling()

    def score(self, dialogue: Dialogue, query: str) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def retrieve(self, dialogue: Dialogue, query: str) -> tuple[list[int], list[int]]:
        utterance_scores, image_scores = self.score(dialogue, query)
        utt, img = self.rule.select(utterance_scores, image_scores)
        return [dialogue.id_offset + i for i in utt], img

    @staticmethod
    def _image_scores(dialogue: Dialogue, utterance_scores: np.ndarray, caption_scores: dict[int, float]) -> np.ndarray:
        hosts = dialogue.image_hosts
        return np.array([caption_scores.get(k, utterance_scores[hosts[k] - dialogue.id_offset]) for k in range(len(hosts))],
                        dtype=np.float64)


class BM25Baseline(ScoredBaseline):
    """BM25 over the dialogue's utterances (one small index per dialogue; captions indexed alongside).

    `min_score` is in BM25 units: 0 keeps anything sharing a term with the query.
    """

    def __init__(self, rule: SelectionRule | None = None, k1: float = 1.5, b: float = 0.75,
                 speakers: SpeakerHandling | None = None, stem: bool = False):
        self.rule = rule or SelectionRule(relative=0.6, min_score=0.0)
        self.k1, self.b = k1, b
        self.speakers = speakers or SpeakerHandling()
        self.stem = stem  # English Snowball stemming (PyStemmer); off keeps the released baseline

    def _tokens(self, text: str) -> list[str]:
        tokens = tokenize(text)
        if self.stem:
            import Stemmer

            tokens = Stemmer.Stemmer("english").stemWords(tokens)
        return tokens

    def score(self, dialogue: Dialogue, query: str) -> tuple[np.ndarray, np.ndarray]:
        import bm25s

        captions = [(k, image.caption) for k, image in enumerate(dialogue.images) if image.caption]
        corpus = [self._tokens(t) for t in self.speakers.texts(dialogue)] + [self._tokens(c) for _, c in captions]
        query_tokens = self._tokens(self.speakers.query(dialogue, query))
        if not query_tokens or not any(corpus):
            scores = np.zeros(len(corpus))
        else:
            index = bm25s.BM25(k1=self.k1, b=self.b)
            index.index([doc or ["\x00"] for doc in corpus], show_progress=False)
            scores = np.asarray(index.get_scores(query_tokens), dtype=np.float64)
        if self.speakers.boost and scores.max() > 0:
            scores = scores / scores.max()  # the boost is in units of the best score
        n = len(dialogue.utterances)
        utterance_scores = scores[:n] + self.speakers.bonus(dialogue, query)
        caption_scores = {k: float(s) for (k, _), s in zip(captions, scores[n:])}
        return utterance_scores, self._image_scores(dialogue, utterance_scores, caption_scores)


class EmbeddingBaseline(ScoredBaseline):
    """Cosine similarity between the query and each utterance (and caption) vector.

    `embedder` defaults to the offline MiniLM (`embeddings.MiniLMCaptionEmbedder`); `min_score`
    is a cosine similarity.
    """

    def __init__(self, embedder=None, rule: SelectionRule | None = None, speakers: SpeakerHandling | None = None):
        self.speakers = speakers or SpeakerHandling()
        if embedder is None:
            from .embeddings import MiniLMCaptionEmbedder

            embedder = MiniLMCaptionEmbedder()
        self.embedder = embedder
        self.rule = rule or SelectionRule(relative=0.8, min_score=0.2)
        # Dialogue texts -> vectors: several queries over one dialogue (the Space, evaluation
        # splits with 3-4 queries per dialogue) embed the dialogue once. Small LRU.
        self._dialogue_vectors: OrderedDict[tuple[str, ...], np.ndarray] = OrderedDict()

    def _texts_vectors(self, texts: tuple[str, ...]) -> np.ndarray:
        vectors = self._dialogue_vectors.get(texts)
        if vectors is None:
            vectors = self.embedder.embed_texts(list(texts))
            self._dialogue_vectors[texts] = vectors
            if len(self._dialogue_vectors) > 64:
                self._dialogue_vectors.popitem(last=False)
        else:
            self._dialogue_vectors.move_to_end(texts)
        return vectors

    def score(self, dialogue: Dialogue, query: str) -> tuple[np.ndarray, np.ndarray]:
        captions = [(k, image.caption) for k, image in enumerate(dialogue.images) if image.caption]
        texts = tuple(self.speakers.texts(dialogue) + [c for _, c in captions])
        scores = self._texts_vectors(texts) @ self.embedder.embed_texts([self.speakers.query(dialogue, query)])[0]
        n = len(dialogue.utterances)
        utterance_scores = scores[:n].astype(np.float64) + self.speakers.bonus(dialogue, query)
        caption_scores = {k: float(s) for (k, _), s in zip(captions, scores[n:])}
        return utterance_scores, self._image_scores(dialogue, utterance_scores, caption_scores)


class HybridBaseline(ScoredBaseline):
    """z-scored BM25 plus `weight` times z-scored embedding scores (per dialogue)."""

    def __init__(self, bm25: BM25Baseline, embedding: EmbeddingBaseline, weight: float = 1.0,
                 rule: SelectionRule | None = None):
        self.bm25, self.embedding, self.weight = bm25, embedding, weight
        self.rule = rule or SelectionRule(relative=0.0, min_score=-np.inf, top_k=1)

    def score(self, dialogue: Dialogue, query: str) -> tuple[np.ndarray, np.ndarray]:
        def z(x: np.ndarray) -> np.ndarray:
            sd = float(x.std()) if len(x) else 0.0
            return (x - x.mean()) / sd if sd > 0 else x - (x.mean() if len(x) else 0.0)

        (bu, bi), (eu, ei) = self.bm25.score(dialogue, query), self.embedding.score(dialogue, query)
        return z(bu) + self.weight * z(eu), z(bi) + self.weight * z(ei)


@dataclass(frozen=True)
class DevExample:
    dialogue: Dialogue
    query: str
    gold: Answer


def tune_rule(baseline: ScoredBaseline, dev: Sequence[DevExample], relative: Iterable[float] = (0.3, 0.5, 0.6, 0.7, 0.8, 0.9),
              min_score: Iterable[float] = (0.0,), top_k: Iterable[int | None] = (None, 3, 5, 10)) -> tuple[SelectionRule, float]:
    """The grid rule with the best global joint F1 on `dev` (ties: first in grid order); sets it on
    the baseline and returns `(rule, joint F1)`. Scores are computed once per example."""
    scored = [(ex, baseline.score(ex.dialogue, ex.query)) for ex in dev]
    best: tuple[SelectionRule, float] | None = None
    for rel, ms, k in itertools.product(list(relative), list(min_score), list(top_k)):
        rule = replace(baseline.rule, relative=rel, min_score=ms, top_k=k)
        samples = []
        for ex, (us, is_) in scored:
            utt, img = rule.select(us, is_)
            samples.append(EvalSample(Answer([ex.dialogue.id_offset + i for i in utt], img), ex.gold,
                                      len(ex.dialogue) + ex.dialogue.id_offset, ex.dialogue.num_images))
        f1 = evaluate(samples).joint.f1
        if best is None or f1 > best[1]:
            best = (rule, f1)
    if best is None:
        raise ValueError("tune_rule needs a non-empty dev split and grid")
    baseline.rule = best[0]
    return best
