"""The pretrained text relevance scorer an F2RVLM checkpoint may carry (`config.text_scorer`).

A small sentence encoder (a BERT-family config, e.g. all-MiniLM-L6-v2 fine-tuned by
`recipes/train_scorer.py`) embeds the query and every turn, written as "speaker: text [photo:
caption]"; a turn's score is the cosine similarity plus `speaker_boost` when the query names that
turn's speaker (real chats: "When did Caroline ..." is about Caroline's own turns). An image is
scored by its caption, else by its turn and the turns either side. Selection: every item within
`margin` of the best score, nothing when the best is below `min_score`. This is the pretrained text knowledge a tiny VLM
trained on a CPU cannot learn (docs/real_chats.md); retrieval modes read it instead of the
relevance head (tagging), or to shortlist the ids generation may emit (guided, generate).
Imports torch and transformers only (travels with the Hub remote code).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class ScorerSettings:
    """Selection settings of the scorer (config fields `text_scorer_*`)."""

    speaker_boost: float = 0.0
    margin: float = 0.05
    min_score: float = -1.0
    max_length: int = 64
    strip_names: bool = False
    bm25_weight: float = 0.0
    head_margin: float | None = None
    head_gate: int | None = None


def turn_text(speaker: str, text: str, captions: Sequence[str | None] = ()) -> str:
    """The scorer's rendering of one turn: "speaker: text [photo: caption] ..."."""
    photos = " ".join(f"[photo: {c}]" for c in captions if c)
    return " ".join(part for part in (f"{speaker}: {text}".strip(), photos) if part)


def _first_name_pattern(speaker: str) -> re.Pattern | None:
    first = speaker.split()[0] if speaker.strip() else ""
    return re.compile(rf"\b{re.escape(first)}(?:['\u2019]s)?\b", re.IGNORECASE) if len(first) > 1 else None


def named_speakers(query: str, speakers: Sequence[str]) -> set[str]:
    """The speakers whose first name the query mentions (whole word, case-insensitive)."""
    return {s for s in set(speakers) if (p := _first_name_pattern(s)) is not None and p.search(query)}


def strip_speaker_names(query: str, speakers: Sequence[str]) -> str:
    """The query without the speakers' first names: the other speaker's turns greet by name
    ("Hey Caroline!"), so a name in the query pulls towards the wrong turns."""
    for speaker in set(speakers):
        pattern = _first_name_pattern(speaker)
        if pattern is not None:
            query = pattern.sub(" ", query)
    return re.sub(r"\s+", " ", query).strip()


_WORD = re.compile(r"\w+", re.UNICODE)
_STOPWORDS = frozenset("""a an the and or but of to in on at for with from by about as is are was were be been being
it its this that these those i you he she we they me him her us them my your his our their what which who whom
when where why how do did does have has had not no so than too very can will would should could just""".split())


def lexical_tokens(text: str) -> list[str]:
    """Lower-cased words without stopwords, with plural / -ing / -ed endings stripped (a light
    stemmer: this file may import only torch and transformers, so no PyStemmer here)."""
    tokens = []
    for word in _WORD.findall(text.lower()):
        if word in _STOPWORDS:
            continue
        for suffix in ("ing", "ies", "ed", "es", "s"):
            if word.endswith(suffix) and len(word) - len(suffix) >= 3:
                word = word[: -len(suffix)] + ("y" if suffix == "ies" else "")
                break
        tokens.append(word)
    return tokens


def bm25(query: Sequence[str], documents: Sequence[Sequence[str]], k1: float = 1.5, b: float = 0.75) -> list[float]:
    """Okapi BM25 (Lucene idf) of each document for the query, over this document set only.

    >>> [round(x, 3) for x in bm25(["lake"], [["lake", "trip"], ["tax"], ["lake"]])]
    [0.384, 0.0, 0.53]
    """
    import math

    n = len(documents)
    if not n:
        return []
    average = sum(len(d) for d in documents) / n or 1.0
    frequencies = [{} for _ in documents]
    document_count: dict[str, int] = {}
    for counts, document in zip(frequencies, documents):
        for token in document:
            counts[token] = counts.get(token, 0) + 1
        for token in counts:
            document_count[token] = document_count.get(token, 0) + 1
    scores = []
    for counts, document in zip(frequencies, documents):
        score = 0.0
        for token in set(query):
            tf = counts.get(token, 0)
            if tf:
                idf = math.log(1 + (n - document_count[token] + 0.5) / (document_count[token] + 0.5))
                score += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len(document) / average))
        scores.append(score)
    return scores


def _standardised(values: torch.Tensor) -> torch.Tensor:
    spread = values.std(unbiased=False) if values.numel() > 1 else values.new_tensor(0.0)
    return (values - values.mean()) / spread if float(spread) > 0 else values - values.mean()


@dataclass
class ScoreParts:
    """What the scorer measured on one (dialogue, query), before `settings` weigh it (`combine`):
    per turn then per captioned image, the cosine similarity, the max-normalised BM25 and whether
    the query names the turn's speaker. Cheap to recombine under many settings (selection grids)."""

    similarity: torch.Tensor
    lexical: torch.Tensor
    named: torch.Tensor
    utterance_ids: list[int]
    caption_keys: list[int]
    image_hosts: list[int]
    id_offset: int


def combine(parts: ScoreParts, settings: ScorerSettings) -> dict:
    """{"utterances": {global id: score}, "images": {dialogue image id: score}, "similarity": the
    best cosine similarity, "semantic": the cosine + speaker boost per item (same layout)}. Turns
    carry the speaker boost; with `bm25_weight`, scores are the standardised cosine plus
    `bm25_weight` x standardised BM25 (boosted twice as much: BM25's max-normalised scale is
    wider). An image without a caption takes the best score of its turn and the turns either side."""
    boost = settings.speaker_boost * parts.named
    scores = parts.similarity + boost
    if settings.bm25_weight:
        scores = _standardised(scores) + settings.bm25_weight * _standardised(parts.lexical + 2 * boost)
    out = _per_item(parts, scores)
    out["similarity"] = float(parts.similarity.max()) if parts.similarity.numel() else -1.0
    out["semantic"] = _per_item(parts, parts.similarity + boost)  # what the head's picks are vetoed on
    return out


def _per_item(parts: ScoreParts, scores: torch.Tensor) -> dict:
    """Scores per utterance id and image. A photo without a caption is scored by its own turn and
    the turns either side (a photo sent bare, "[photo]", belongs to what is being talked about)."""
    n = len(parts.utterance_ids)
    turn_scores = scores[:n].tolist()
    out = {"utterances": dict(zip(parts.utterance_ids, turn_scores)), "images": {}}
    caption_scores = dict(zip(parts.caption_keys, scores[n:].tolist()))
    for k, host in enumerate(parts.image_hosts):
        at = host - parts.id_offset
        out["images"][k] = caption_scores.get(k, max(turn_scores[max(0, at - 1): at + 2]))
    return out


class TextScorer(nn.Module):
    """Mean-pooled, L2-normalised sentence embeddings from a BERT-family encoder."""

    def __init__(self, encoder_config: dict, cache_size: int = 16):
        super().__init__()
        from transformers import BertConfig, BertModel

        self.encoder = BertModel(BertConfig(**encoder_config), add_pooling_layer=False)
        # a chat's turns are embedded once for all the questions asked of it (Space, evaluation)
        self._turn_vectors: OrderedDict[tuple, torch.Tensor] = OrderedDict()
        self.cache_size = cache_size

    @torch.no_grad()
    def embed(self, texts: Sequence[str], tokenizer, max_length: int = 64, batch_size: int = 16) -> torch.Tensor:
        """`(len(texts), hidden)` unit vectors. Batches group texts of similar length (chat turns
        vary from 2 to 60+ tokens: padding every batch to its longest would double the work)."""
        device = next(self.parameters()).device
        if not texts:
            return torch.zeros(0, self.encoder.config.hidden_size)
        lengths = [len(ids) for ids in tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]]
        order = sorted(range(len(texts)), key=lambda i: lengths[i])
        out = torch.empty(len(texts), self.encoder.config.hidden_size)
        for start in range(0, len(order), batch_size):
            chunk = order[start: start + batch_size]
            batch = tokenizer([texts[i] for i in chunk], padding=True, truncation=True, max_length=max_length,
                              return_tensors="pt").to(device)
            hidden = self.encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out[chunk] = torch.nn.functional.normalize(pooled.float(), dim=-1).cpu()
        return out

    def _cached_embed(self, texts: tuple[str, ...], tokenizer, max_length: int) -> torch.Tensor:
        key = (texts, max_length, id(tokenizer))
        if key in self._turn_vectors:
            self._turn_vectors.move_to_end(key)
            return self._turn_vectors[key]
        vectors = self.embed(texts, tokenizer, max_length)
        self._turn_vectors[key] = vectors
        while len(self._turn_vectors) > self.cache_size:
            self._turn_vectors.popitem(last=False)
        return vectors

    def clear_cache(self) -> None:
        """Forget the chats embedded so far (benchmarks time a chat's first question with it)."""
        self._turn_vectors.clear()

    def train(self, mode: bool = True):
        self.clear_cache()  # weights may change from here on
        return super().train(mode)

    def parts(self, dialogue, query: str, tokenizer, settings: ScorerSettings) -> ScoreParts:
        """The measurements `combine` weighs (only `strip_names` and `max_length` matter here)."""
        utterances = dialogue.utterances
        texts = [turn_text(u.speaker, u.text, [img.caption for img in u.images]) for u in utterances]
        captions = [(k, img.caption) for k, img in enumerate(dialogue.images) if img.caption]
        speakers = [u.speaker for u in utterances]
        query_text = strip_speaker_names(query, speakers) if settings.strip_names else query
        items = self._cached_embed(tuple(texts + [c for _, c in captions]), tokenizer, settings.max_length)
        similarity = items @ self.embed([query_text], tokenizer, settings.max_length)[0]
        named = named_speakers(query, speakers)
        lexical = torch.tensor(bm25(lexical_tokens(query_text), [lexical_tokens(u.text + " " + " ".join(
            img.caption or "" for img in u.images)) for u in utterances] + [lexical_tokens(c) for _, c in captions]))
        lexical = lexical / lexical.max() if lexical.numel() and float(lexical.max()) > 0 else lexical
        return ScoreParts(similarity, lexical, torch.tensor([1.0 if s in named else 0.0 for s in speakers]
                                                            + [0.0] * len(captions)),
                          list(dialogue.utterance_ids), [k for k, _ in captions], list(dialogue.image_hosts),
                          dialogue.id_offset)

    def score_dialogue(self, dialogue, query: str, tokenizer, settings: ScorerSettings) -> dict:
        """`combine(parts(...))`: the scores the retrieval modes read."""
        return combine(self.parts(dialogue, query, tokenizer, settings), settings)


def select(scores: dict, settings: ScorerSettings) -> tuple[list[int], list[int]]:
    """Ids within `margin` of the best score, none when the best cosine similarity is below
    `min_score` (the "nothing matches" answer)."""
    every = list(scores["utterances"].values()) + list(scores["images"].values())
    if not every or scores.get("similarity", max(every)) < settings.min_score:
        return [], []
    floor = max(every) - settings.margin
    utts = sorted(i for i, s in scores["utterances"].items() if s >= floor)
    imgs = sorted(i for i, s in scores["images"].items() if s >= floor)
    return utts, imgs


def select_with_head(scores: dict, head: dict, threshold: float, settings: ScorerSettings) -> tuple[list[int], list[int]]:
    """The scorer's selection plus the relevance head's picks (probability above `threshold`).

    Two guards keep a head lost outside its training domain out (on real chats it is near random;
    on the synthetic dialogues it was trained on it finds whole fragments and their photos):
    - gate (`head_gate` = k): the head joins only when it also picks one of the scorer's k best
      turns (measured: it does for 2-3% of real-chat questions, ~60% of synthetic ones);
    - veto (`head_margin`): a pick joins only if its semantic score (cosine + speaker boost,
      `scores["semantic"]`, else the scores themselves) is within `head_margin` of the best.

    >>> scores = {"utterances": {0: 0.9, 1: 0.7, 2: 0.1}, "images": {0: 0.75}, "similarity": 0.9}
    >>> head = {"utterances": {0: 0.2, 1: 0.8, 2: 0.9}, "images": {0: 0.6}}
    >>> select_with_head(scores, head, 0.5, ScorerSettings(margin=0.0, head_margin=0.3))
    ([0, 1], [0])
    >>> select_with_head(scores, head, 0.5, ScorerSettings(margin=0.0, head_margin=0.3, head_gate=1))
    ([0], [])
    """
    utts, imgs = select(scores, settings)
    if not utts and not imgs:  # the scorer says nothing matches
        return utts, imgs
    if settings.head_gate:
        best = sorted(scores["utterances"], key=lambda i: (-scores["utterances"][i], i))[: settings.head_gate]
        if not any(head["utterances"].get(i, 0.0) > threshold for i in best):
            return utts, imgs
    semantic = scores.get("semantic", scores)
    every = list(semantic["utterances"].values()) + list(semantic["images"].values())
    floor = max(every) - (settings.head_margin if settings.head_margin is not None else float("inf"))
    extra_utts = {i for i, p in head["utterances"].items() if p > threshold and semantic["utterances"].get(i, floor - 1) >= floor}
    extra_imgs = {i for i, p in head["images"].items() if p > threshold and semantic["images"].get(i, floor - 1) >= floor}
    return sorted(set(utts) | extra_utts), sorted(set(imgs) | extra_imgs)


__all__ = ["ScoreParts", "ScorerSettings", "TextScorer", "bm25", "combine", "lexical_tokens", "named_speakers", "select", "select_with_head", "strip_speaker_names", "turn_text"]
