"""Cutting a dialogue into topic fragments (FFRS stage 1).

Two segmenters share one output shape, a list of groups of consecutive utterance ids that cover
the dialogue exactly once in order (`[[0, 1, 2], [3, 4], ...]`):

- the released LLM segmentation task: `segmentation_messages` renders the released prompt byte
  for byte (FFRS_pipeline/1_convert_wechat2_split.py: system `你是一个多模态对话分段助手。`, the
  instruction asking for `[[id,id,...],[id,...],...]`, one `<|utt_id_start|>i<|utt_id_end|>
  Speaker: text` line per utterance); `parse_segmentation` reads an answer, `SegmentationGrammar`
  is a character automaton (the style of `core.protocol.AnswerGrammar`) that admits exactly the
  answers covering every utterance once in order, and `check_segmentation` / `repair_segmentation`
  validate an unconstrained answer and fall back to a valid one;
- `EmbeddingSegmenter`, the CPU default with no generative model: cosine similarity between the
  neighbouring windows of turns (TextTiling depth scores over any `Embedder`), time gaps where
  the export has timestamps, and a min/max fragment size.

`boundary_scores`, `pk` and `window_diff` compare a segmentation with a reference one.
"""

from __future__ import annotations

import ast
import itertools
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from ..core.dialogue import Dialogue
from ..core.protocol import IMAGE_PLACEHOLDER, UTT_ID_END, UTT_ID_START

# ----------------------------------------------------------------------------------------------
# The released prompt (byte for byte)
# ----------------------------------------------------------------------------------------------
SEGMENT_SYSTEM_PROMPT = "你是一个多模态对话分段助手。"
SEGMENT_INSTRUCTION = (
    "请根据下列多模态长对话内容，按照主题语义将对话划分为多个子片段。\n\n"
    "每条发言以<|utt_id_start|>句子ID<|utt_id_end|>标注，可能为文本、图像。请将语义连贯的句子归为一组。\n\n"
    "输出格式严格为：[[id,id,...],[id,...],...]，仅输出句子ID，不含其他内容。\n\n"
    "对话内容如下：\n"
)


def released_speaker(raw) -> str:
    """The released speaker normalisation: user1/u1 -> User1, user2/u2 -> User2, else the first
    letter upper-cased (`_speaker_name` of the release)."""
    if not isinstance(raw, str):
        return "User"
    raw = raw.strip()
    if raw.lower() in ("user1", "user 1", "u1"):
        return "User1"
    if raw.lower() in ("user2", "user 2", "u2"):
        return "User2"
    return raw[:1].upper() + raw[1:]


def _utterance_body(utterance) -> str:
    # The release has text-only or image-only turns: an image-only turn is its `<image>`
    # placeholders joined by spaces. A turn with both keeps its text, then the placeholders.
    placeholders = " ".join([IMAGE_PLACEHOLDER] * len(utterance.images))
    if not utterance.text:
        return placeholders
    return f"{utterance.text} {placeholders}" if placeholders else utterance.text


def segmentation_prompt(dialogue: Dialogue) -> str:
    """The released user message of the segmentation task (ids from 0)."""
    lines = [f"{UTT_ID_START}{i}{UTT_ID_END} {released_speaker(u.speaker)}: {_utterance_body(u)}"
             for i, u in enumerate(dialogue.utterances)]
    return SEGMENT_INSTRUCTION + "\n".join(lines)


def segmentation_messages(dialogue: Dialogue, answer: list[list[int]] | None = None) -> list[dict]:
    """Chat messages of the released segmentation sample; with `answer`, the assistant turn too
    (the release writes it with `json.dumps(gt, ensure_ascii=False)`)."""
    messages = [{"role": "system", "content": SEGMENT_SYSTEM_PROMPT},
                {"role": "user", "content": segmentation_prompt(dialogue)}]
    if answer is not None:
        messages.append({"role": "assistant", "content": render_segmentation(answer)})
    return messages


def render_segmentation(groups: Sequence[Sequence[int]]) -> str:
    return json.dumps([[int(i) for i in g] for g in groups], ensure_ascii=False)


# ----------------------------------------------------------------------------------------------
# Parsing, checking, repairing
# ----------------------------------------------------------------------------------------------
def parse_segmentation(text) -> list[list[int]] | None:
    """`[[0,1],[2]]` (JSON or Python literal, a list given as is) -> groups; None when unreadable.

    Like the release's `parse_segments`, but a value that is not a list of lists of ints is None
    instead of an exception."""
    if isinstance(text, list):
        value = text
    else:
        s = str(text or "").strip()
        if not s or len(s) > 1_000_000:
            return None
        try:
            value = json.loads(s)
        except ValueError:
            try:
                value = ast.literal_eval(s)
            except (ValueError, SyntaxError, MemoryError, RecursionError):
                return None
    if not isinstance(value, (list, tuple)):
        return None
    groups = []
    for group in value:
        if not isinstance(group, (list, tuple)) or not all(isinstance(x, int) and not isinstance(x, bool) for x in group):
            return None
        groups.append([int(x) for x in group])
    return groups


@dataclass
class SegmentationCheck:
    """How an answer covers utterances 0..n-1 (the release's `validate_coverage`, plus order)."""

    missing: list[int]
    extra: list[int]
    duplicates: list[int]
    empty_groups: int
    in_order: bool

    @property
    def ok(self) -> bool:
        return not (self.missing or self.extra or self.duplicates or self.empty_groups) and self.in_order


def check_segmentation(groups: Sequence[Sequence[int]], num_utterances: int) -> SegmentationCheck:
    flat = [i for g in groups for i in g]
    universe = set(range(num_utterances))
    return SegmentationCheck(
        missing=sorted(universe - set(flat)),
        extra=sorted(set(flat) - universe),
        duplicates=sorted(k for k, c in Counter(flat).items() if c > 1),
        empty_groups=sum(1 for g in groups if not g),
        in_order=flat == sorted(flat) and len(flat) == len(set(flat)),
    )


def groups_from_starts(starts: Sequence[int], num_utterances: int) -> list[list[int]]:
    """Groups of consecutive ids starting at the given (sorted, distinct, first = 0) starts."""
    starts = sorted({s for s in starts if 0 < s < num_utterances} | ({0} if num_utterances else set()))
    bounds = [*starts, num_utterances]
    return [list(range(a, b)) for a, b in itertools.pairwise(bounds)]


def starts_of(groups: Sequence[Sequence[int]]) -> list[int]:
    return [g[0] for g in groups if g]


def repair_segmentation(groups: Sequence[Sequence[int]] | None, num_utterances: int,
                        fallback: list[list[int]] | None = None) -> tuple[list[list[int]], bool]:
    """A valid segmentation near an answer: (groups, was_valid).

    A valid answer comes back as is. Otherwise the answer's group starts that are valid ids are
    kept as boundaries (a model that skipped or repeated an id still said where topics change);
    with no usable start, `fallback` (e.g. the embedding segmenter's) or one group."""
    if groups is not None and check_segmentation(groups, num_utterances).ok:
        return [list(g) for g in groups], True
    starts = [s for s in starts_of(groups or []) if 0 < s < num_utterances]
    if starts:
        return groups_from_starts(starts, num_utterances), False
    if fallback is not None:
        return fallback, False
    return groups_from_starts([], num_utterances), False


class SegmentationGrammar:
    """Character automaton over the answers `[[0,1,...],[k,...],...]` that cover ids 0..n-1 once
    in order (no spaces; `spaces=True` admits exactly one space after each comma, as the release's
    `json.dumps` writes them).

    It has the interface of `core.protocol.AnswerGrammar` (`initial`, `step`, `advance`,
    `is_complete`, `accepts`, a hashable `allowed` key), so `generation_f2rvlm.AnswerConstraint`
    masks a model's logits with it unchanged (`LLMSegmenter`). State: (phase, next_id, digits typed).
    """

    def __init__(self, num_utterances: int, spaces: bool = False):
        if num_utterances < 1:
            raise ValueError("a segmentation needs at least one utterance")
        self.n = num_utterances
        self.spaces = spaces
        self.initial = ("start", 0, 0)
        #: Cache key of AnswerConstraint (grammars with equal keys admit the same answers).
        self.allowed = ("segmentation", num_utterances, spaces)

    # phases: "start" (expect '['), "group" (expect '[' of a group), "id" (inside the digits of
    # next_id, typed = how many digits so far), "after_id" (expect ',' or ']'), "after_group"
    # (expect ',' or final ']'), "sep_id"/"sep_group" (a space after a comma), "done".
    def step(self, state, char: str):
        if state is None:
            return None
        phase, nxt, typed = state
        if phase == "start":
            return ("group", nxt, 0) if char == "[" else None
        if phase == "group":
            return ("id", nxt, 0) if char == "[" else None
        if phase == "id":
            digits = str(nxt)
            if typed < len(digits) and char == digits[typed]:
                typed += 1
                return ("after_id", nxt + 1, 0) if typed == len(digits) else ("id", nxt, typed)
            return None
        if phase == "after_id":
            if nxt >= self.n:  # every id written: only the closing brackets remain
                return ("after_group", nxt, 0) if char == "]" else None
            if char == ",":
                return ("sep_id", nxt, 0) if self.spaces else ("id", nxt, 0)
            if char == "]":
                return ("after_group", nxt, 0)
            return None
        if phase == "sep_id":
            return ("id", nxt, 0) if char == " " else None
        if phase == "after_group":
            if nxt >= self.n:
                return ("done", nxt, 0) if char == "]" else None
            if char == ",":
                return ("sep_group", nxt, 0) if self.spaces else ("group", nxt, 0)
            return None
        if phase == "sep_group":
            return ("group", nxt, 0) if char == " " else None
        return None

    def allowed_chars(self, state) -> set[str]:
        """The characters that may come next."""
        return {c for c in "[], 0123456789" if self.step(state, c) is not None}

    def advance(self, state, text: str):
        for char in text:
            state = self.step(state, char)
            if state is None:
                return None
        return state

    def is_complete(self, state) -> bool:
        return state is not None and state[0] == "done"

    def accepts(self, text: str) -> bool:
        return self.is_complete(self.advance(self.initial, text.strip()))


def max_segmentation_length(num_utterances: int) -> int:
    """Characters of the longest valid answer (every utterance its own group)."""
    return sum(len(str(i)) + 3 for i in range(num_utterances)) + 2


class LLMSegmenter:
    """The released segmentation task run by a chat VLM (a segmentation-tuned checkpoint, or any
    Qwen-VL F2RVLM folder): the released prompt, greedy decoding under `SegmentationGrammar`
    (`constrained=True`, the default: the answer always covers every turn once in order), else the
    answer is checked and repaired, falling back to `fallback` (e.g. an `EmbeddingSegmenter`).
    Dialogues longer than `max_turns` go to `fallback` directly."""

    def __init__(self, model, processor, constrained: bool = True, fallback=None, max_turns: int = 400):
        self.model, self.processor = model, processor
        self.constrained = constrained
        self.fallback = fallback
        self.max_turns = max_turns
        self.last_answer: str | None = None

    def _inputs(self, dialogue: Dialogue):
        messages = segmentation_messages(dialogue)
        content = []
        for i, chunk in enumerate(messages[1]["content"].split(IMAGE_PLACEHOLDER)):
            if i:
                content.append({"type": "image"})
            if chunk:
                content.append({"type": "text", "text": chunk})
        chat = [{"role": "system", "content": [{"type": "text", "text": messages[0]["content"]}]},
                {"role": "user", "content": content}]
        text = self.processor.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
        images = [image.load() for image in dialogue.images]
        return self.processor(text=[text], images=images or None, return_tensors="pt")

    def __call__(self, dialogue: Dialogue, vectors=None) -> list[list[int]]:
        import torch
        from transformers import LogitsProcessorList

        from ..models.generation_f2rvlm import AnswerConstraint

        n = len(dialogue)
        fallback = self.fallback(dialogue, vectors) if self.fallback is not None else None
        if n == 0:
            return []
        if n > self.max_turns:
            return fallback if fallback is not None else groups_from_starts([], n)
        inputs = self._inputs(dialogue).to(self.model.device)
        prompt_length = inputs["input_ids"].shape[1]
        tokenizer = self.processor.tokenizer
        processors = LogitsProcessorList()
        if self.constrained:
            processors.append(AnswerConstraint(tokenizer, [SegmentationGrammar(n)], prompt_length))
        with torch.no_grad():
            out = self.model.generate(**inputs, max_new_tokens=max_segmentation_length(n) + 1, do_sample=False,
                                      num_beams=1, logits_processor=processors, pad_token_id=tokenizer.pad_token_id,
                                      temperature=None, top_p=None, top_k=None)
        self.last_answer = tokenizer.decode(out[0, prompt_length:], skip_special_tokens=True).strip()
        groups, _ = repair_segmentation(parse_segmentation(self.last_answer), n, fallback)
        return groups


# ----------------------------------------------------------------------------------------------
# The CPU default: embedding similarity + time gaps + size cap
# ----------------------------------------------------------------------------------------------
def utterance_texts(dialogue: Dialogue) -> list[str]:
    """What an embedder sees of each turn: "speaker: text [photo: caption]"."""
    out = []
    for u in dialogue.utterances:
        captions = [im.caption for im in u.images if getattr(im, "caption", None)]
        text = u.text + "".join(f" [photo: {c}]" for c in captions)
        out.append(f"{u.speaker}: {text.strip()}")
    return out


def _timestamp(value) -> float | None:
    if not value:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        pass
    try:
        return datetime.fromisoformat(str(value)).timestamp()
    except ValueError:
        return None


@dataclass
class EmbeddingSegmenter:
    """TextTiling over sentence embeddings.

    Between turns i-1 and i the gap score is the cosine of the mean embeddings of the `window`
    turns before and after; a boundary goes where its depth (how far it dips below the highest
    scores on either side) is above `mean + depth_std * std` of all depths. A time gap of at least
    `time_gap_s` seconds is always a boundary; fragments shorter than `min_size` are merged into a
    neighbour, longer than `max_size` are cut at their lowest-scoring gap.

    `embedder`: any `f2rvlm.embeddings.Embedder` (None: the offline MiniLM on first use).
    """

    embedder: object | None = None
    window: int = 3
    depth_std: float = 1.0
    min_size: int = 2
    max_size: int = 24
    time_gap_s: float | None = 3 * 3600

    def _embedder(self):
        if self.embedder is None:
            from ..embeddings import MiniLMCaptionEmbedder

            self.embedder = MiniLMCaptionEmbedder()
        return self.embedder

    def gap_scores(self, vectors: np.ndarray) -> np.ndarray:
        n = len(vectors)
        scores = np.ones(max(n - 1, 0), dtype=np.float32)
        for i in range(1, n):
            left = vectors[max(0, i - self.window):i].mean(axis=0)
            right = vectors[i:i + self.window].mean(axis=0)
            denom = float(np.linalg.norm(left) * np.linalg.norm(right)) or 1.0
            scores[i - 1] = float(left @ right) / denom
        return scores

    @staticmethod
    def depths(scores: np.ndarray) -> np.ndarray:
        out = np.zeros_like(scores)
        for i, s in enumerate(scores):
            left = scores[: i + 1].max()
            right = scores[i:].max()
            # TextTiling climbs to the nearest peaks; the running maxima are the same peaks
            # when scores are unimodal between boundaries and a robust stand-in otherwise
            out[i] = (left - s) + (right - s)
        return out

    def segment(self, dialogue: Dialogue, vectors: np.ndarray | None = None) -> list[list[int]]:
        n = len(dialogue)
        if n == 0:
            return []
        if n <= self.min_size:
            return [list(range(n))]
        if vectors is None:
            vectors = self._embedder().embed_texts(utterance_texts(dialogue))
        scores = self.gap_scores(np.asarray(vectors, dtype=np.float32))
        depth = self.depths(scores)
        cut = float(depth.mean() + self.depth_std * depth.std())
        # local maxima of depth above the cut
        starts = {i + 1 for i in range(len(depth))
                  if depth[i] > cut and depth[i] >= (depth[i - 1] if i else -1) and depth[i] >= (depth[i + 1] if i + 1 < len(depth) else -1)}
        forced = set()
        if self.time_gap_s is not None:
            times = [_timestamp(u.timestamp) for u in dialogue.utterances]
            forced = {i for i in range(1, n) if times[i] is not None and times[i - 1] is not None
                      and times[i] - times[i - 1] >= self.time_gap_s}
        starts |= forced
        starts = self._merge_small(sorted(starts), n, scores, forced)
        starts = self._split_large(starts, n, scores)
        return groups_from_starts(starts, n)

    def _merge_small(self, starts: list[int], n: int, scores: np.ndarray, forced: set[int]) -> list[int]:
        starts = list(starts)
        changed = True
        while changed and starts:
            changed = False
            bounds = [0, *starts, n]
            for k in range(len(bounds) - 1):
                if bounds[k + 1] - bounds[k] >= self.min_size:
                    continue
                # drop the weaker of this fragment's two boundaries (never a forced one)
                candidates = [b for b in (bounds[k], bounds[k + 1]) if 0 < b < n and b not in forced]
                if not candidates:
                    continue
                drop = max(candidates, key=lambda b: scores[b - 1])
                starts.remove(drop)
                changed = True
                break
        return starts

    def _split_large(self, starts: list[int], n: int, scores: np.ndarray) -> list[int]:
        out = set(starts)
        bounds = [0, *sorted(starts), n]
        stack = list(itertools.pairwise(bounds))
        while stack:
            a, b = stack.pop()
            if b - a <= self.max_size:
                continue
            lo, hi = a + self.min_size, b - self.min_size
            if hi <= lo:
                lo, hi = a + 1, b - 1
            mid = (a + b) / 2  # ties: nearest the middle
            cut = min(range(lo, hi + 1), key=lambda i: (round(float(scores[i - 1]), 6), abs(i - mid)))
            out.add(cut)
            stack += [(a, cut), (cut, b)]
        return sorted(out)

    def __call__(self, dialogue: Dialogue, vectors: np.ndarray | None = None) -> list[list[int]]:
        return self.segment(dialogue, vectors)


@dataclass
class FixedSegmenter:
    """Fixed windows of `size` turns (the baseline)."""

    size: int = 8

    def __call__(self, dialogue: Dialogue, vectors=None) -> list[list[int]]:
        return groups_from_starts(range(0, len(dialogue), self.size), len(dialogue))


# ----------------------------------------------------------------------------------------------
# Segmentation metrics
# ----------------------------------------------------------------------------------------------
def topic_segmentation(dialogue: Dialogue) -> list[list[int]]:
    """The reference segmentation of a dialogue whose utterances carry `topic` (synthetic data):
    a new group wherever the topic changes."""
    n = len(dialogue)
    return groups_from_starts([i for i in range(1, n) if dialogue.utterances[i].topic != dialogue.utterances[i - 1].topic], n)


def _labels(groups: Sequence[Sequence[int]], n: int) -> np.ndarray:
    labels = np.zeros(n, dtype=np.int64)
    for k, g in enumerate(groups):
        for i in g:
            labels[i] = k
    return labels


def boundary_scores(predicted, reference, n: int, tolerance: int = 0) -> tuple[int, int, int]:
    """(true positives, predicted boundaries, reference boundaries); a predicted boundary within
    `tolerance` turns of an unmatched reference one counts once."""
    pred = sorted(set(starts_of(predicted)) - {0})
    ref = sorted(set(starts_of(reference)) - {0})
    unmatched = list(ref)
    tp = 0
    for b in pred:
        near = [r for r in unmatched if abs(r - b) <= tolerance]
        if near:
            unmatched.remove(min(near, key=lambda r: abs(r - b)))
            tp += 1
    return tp, len(pred), len(ref)


def pk(predicted, reference, n: int, k: int | None = None) -> float:
    """Beeferman's Pk: how often two turns k apart are wrongly in the same / different fragments
    (k = half the mean reference fragment length)."""
    if n < 2:
        return 0.0
    ref, pred = _labels(reference, n), _labels(predicted, n)
    k = k or max(1, round(n / max(len(reference), 1) / 2))
    k = min(k, n - 1)
    errors = sum((ref[i] == ref[i + k]) != (pred[i] == pred[i + k]) for i in range(n - k))
    return errors / (n - k)


def window_diff(predicted, reference, n: int, k: int | None = None) -> float:
    """Pevzner & Hearst's WindowDiff: windows of k turns whose boundary counts differ."""
    if n < 2:
        return 0.0
    k = k or max(1, round(n / max(len(reference), 1) / 2))
    k = min(k, n - 1)
    ref_b = np.zeros(n, dtype=np.int64)
    pred_b = np.zeros(n, dtype=np.int64)
    for s in starts_of(reference):
        if s:
            ref_b[s] = 1
    for s in starts_of(predicted):
        if s:
            pred_b[s] = 1
    errors = sum(ref_b[i + 1:i + k + 1].sum() != pred_b[i + 1:i + k + 1].sum() for i in range(n - k))
    return errors / (n - k)


def f1(tp: int, npred: int, nref: int) -> float:
    p = tp / npred if npred else 0.0
    r = tp / nref if nref else 0.0
    return 0.0 if p + r == 0 else 2 * p * r / (p + r)


__all__ = [
    "SEGMENT_INSTRUCTION",
    "SEGMENT_SYSTEM_PROMPT",
    "EmbeddingSegmenter",
    "FixedSegmenter",
    "SegmentationCheck",
    "SegmentationGrammar",
    "boundary_scores",
    "check_segmentation",
    "f1",
    "groups_from_starts",
    "parse_segmentation",
    "pk",
    "released_speaker",
    "render_segmentation",
    "repair_segmentation",
    "segmentation_messages",
    "segmentation_prompt",
    "starts_of",
    "topic_segmentation",
    "utterance_texts",
    "window_diff",
]
