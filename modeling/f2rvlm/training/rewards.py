"""GRPO reward functions (docs/protocol.md §6), TRL signature, importable by dotted path.

Each reward is a plain function `(completions, solution, **columns) -> list[float]`; completions
are strings or `[{"role": "assistant", "content": text}]` lists, `solution` is the gold answer
text (dataset column), and other dataset columns arrive by name. Weights F1 : coherence : format
= 1 : 1 : 0.3 (`REWARD_WEIGHTS`); `REWARD_FUNCS` maps names to functions for the recipes:

    reward_funcs: [f2rvlm.training.rewards.fragment_f1_reward, f2rvlm.training.rewards.coherence_reward, f2rvlm.training.rewards.format_reward]
    reward_weights: [1.0, 1.0, 0.3]

The F1 and format rewards are the released definitions (`plugin.py`: `RetrievalF1`, the first
`RetrievalFormat.__call__`), value for value:

- strict pattern anchored at the absolute end (`(?![\s\S])`: a trailing newline fails), matched on
  both completion and gold (either fails -> 0);
- ids: the bracket content split on ",", empty pieces skipped, each piece `int()`-ed; a piece that
  is not an integer (e.g. "1 2") gives 0 (the released `except` branch);
- F1 reward: per modality, precision = |set(pred) & set(gold)| / len(pred list) and recall = ... /
  len(gold list) (raw lengths: a repeated id lowers precision), F1 (both lists empty -> 1), times
  `0.95 ** abs(len(pred list) - len(gold list))`; reward = 0.5 * utterance + 0.5 * image;
- format reward: 1 when the pattern matches, every piece is an integer and neither list repeats
  an id. (Released defect, docs/protocol.md §6: a second `__call__` in the same class overrides
  this one and demands `<think>...</think><answer>...</answer>`; that definition is this module's
  reasoning-mode format reward.)

Deliberate differences (docs/protocol.md "Deliberate differences"):
- the coherence reward also scores utterance-only and image-only predictions (released: 0), and
  scores 0 for a completion that does not match the pattern when the gold is empty (released: 1.0,
  as an unmatched completion reads as empty there);
- reasoning mode is one switch for every reward: `make_rewards(reasoning=True)`, or
  `F2RVLM_REWARD_REASONING=1` for the module-level functions. Then each reward reads the answer
  from inside `<answer>` of `<think>...</think><answer>...</answer>` (the released second format
  definition's outer pattern), and the format reward is that released definition. The plain
  answer is the default.

>>> gold = "<|utt_ids_start|>[3, 4]<|utt_ids_end|>;<|img_ids_start|>[]<|img_ids_end|>"
>>> fragment_f1_reward([gold, "<|utt_ids_start|>[3]<|utt_ids_end|>;<|img_ids_start|>[]<|img_ids_end|>", gold + "\\n"], [gold] * 3)
[1.0, 0.8166666666666667, 0.0]
>>> format_reward([[{"role": "assistant", "content": gold}], "3, 4"])
[1.0, 0.0]
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from ..core.metrics import Counts, universe_size
from ..core.predictions import prompt_text, prompt_universe
from ..core.protocol import Answer, has_duplicates

#: Weights of the paper (F1 : coherence : format = 1 : 1 : 0.3), in `REWARD_FUNCS` order.
REWARD_WEIGHTS: dict[str, float] = {"fragment_f1": 1.0, "coherence": 1.0, "format": 0.3}
#: Per extra or missing id, the F1 of a modality is multiplied by this (raw list lengths).
LENGTH_PENALTY = 0.95
#: Environment switch for the module-level rewards' reasoning mode.
REASONING_ENV = "F2RVLM_REWARD_REASONING"

RewardFunc = Callable[..., list[float]]


# ----------------------------------------------------------------------------------------------
# Parsing helpers
# ----------------------------------------------------------------------------------------------
def completion_text(completion: Any) -> str:
    """Text of a completion: a string, or the content of the last message of a chat completion."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion:
        content = completion[-1].get("content", "") if isinstance(completion[-1], Mapping) else completion[-1]
        if isinstance(content, list):  # content parts
            return "".join(p.get("text", "") for p in content if isinstance(p, Mapping))
        return content if isinstance(content, str) else ""
    if isinstance(completion, Mapping):
        return completion_text([completion])
    return ""


def _reasoning_on(reasoning: bool | None) -> bool:
    if reasoning is not None:
        return reasoning
    return os.environ.get(REASONING_ENV, "").strip().lower() in ("1", "true", "yes", "on")


#: The released rewards' pattern: absolute end anchoring (`(?![\s\S])`), named groups.
RELEASED_PATTERN = re.compile(
    r"^<\|utt_ids_start\|>(\[(?P<utt>[\d,\s]*)\])<\|utt_ids_end\|>;"
    r"<\|img_ids_start\|>(\[(?P<img>[\d,\s]*)\])<\|img_ids_end\|>(?![\s\S])")
#: The released reasoning wrapper (second `RetrievalFormat.__call__`): its outer pattern ...
REASONING_PATTERN = re.compile(r"^<think>.*?</think>\s*<answer>(.*?)</answer>(?![\s\S])", re.DOTALL)
#: ... and its inner pattern (`$` there, applied to the stripped answer body).
_REASONING_INNER = re.compile(
    r"^<\|utt_ids_start\|>(\[(?P<utt>[\d,\s]*)\])<\|utt_ids_end\|>;"
    r"<\|img_ids_start\|>(\[(?P<img>[\d,\s]*)\])<\|img_ids_end\|>$")


class RawLists(NamedTuple):
    """The two bracket contents of an answer that matched the released pattern (unparsed)."""

    utt: str
    img: str


def answer_lists(text: str, reasoning: bool = False) -> RawLists | None:
    """The bracket contents of `text` if it matches the released pattern (inside `<answer>` of the
    released reasoning wrapper when `reasoning`), else None."""
    if reasoning:
        outer = REASONING_PATTERN.match(text)
        if outer is None:
            return None
        match = _REASONING_INNER.match(outer.group(1).strip())
    else:
        match = RELEASED_PATTERN.match(text)
    return None if match is None else RawLists(match.group("utt"), match.group("img"))


def released_ids(content: str) -> list[int]:
    """Ids of one bracket content as the released F1 / format rewards read them: split on ",",
    empty pieces skipped, `int()` of each piece (raises `ValueError` for a piece like "1 2").

    >>> released_ids(" 3, 3 ,4,"), released_ids("")
    ([3, 3, 4], [])
    """
    return [int(x.strip()) for x in content.split(",") if x.strip()]


def lenient_ids(content: str) -> list[int]:
    """Ids as the released coherence / MCC rewards read them: pieces that are not all digits are dropped."""
    return [int(x.strip()) for x in content.split(",") if x.strip().isdigit()]


def _ids(lists: RawLists | None, reader=released_ids) -> Answer | None:
    if lists is None:
        return None
    try:
        return Answer(reader(lists.utt), reader(lists.img))
    except ValueError:
        return None


def parse_completion(completion: Any, reasoning: bool | None = None) -> Answer | None:
    """The answer of a completion as the released F1 reward reads it (inside `<answer>` in
    reasoning mode); None when it does not match the pattern or a piece is not an integer."""
    return _ids(answer_lists(completion_text(completion), _reasoning_on(reasoning)))


def parse_gold(solution: Any, reasoning: bool | None = None) -> Answer | None:
    """Gold answer text read as the released F1 reward reads it (in reasoning mode a gold wrapped in
    `<think>...<answer>` is accepted too)."""
    if isinstance(solution, Answer):
        return solution
    text = completion_text(solution)
    gold = _ids(answer_lists(text))
    if gold is None and _reasoning_on(reasoning):
        gold = _ids(answer_lists(text, reasoning=True))
    return gold


# ----------------------------------------------------------------------------------------------
# Per-sample scores
# ----------------------------------------------------------------------------------------------
def released_f1(predicted: Sequence[int], gold: Sequence[int]) -> float:
    """The released reward F1: set intersection over the RAW list lengths (both empty -> 1).

    >>> released_f1([1, 1], [1])  # precision 1/2: the repeated id counts
    0.6666666666666666
    """
    if not predicted and not gold:
        return 1.0
    inter = len(set(predicted) & set(gold))
    precision = inter / len(predicted) if predicted else 0.0
    recall = inter / len(gold) if gold else 0.0
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def fragment_f1_score(pred: Answer | None, gold: Answer | None) -> float:
    """0.5 * utterance + 0.5 * image, each `released_f1` times `0.95 ** |len(pred) - len(gold)|`
    (raw list lengths); 0 when either answer did not parse.

    >>> round(fragment_f1_score(Answer([1, 1], []), Answer([1], [])), 6)  # 0.5 * 2/3 * 0.95 + 0.5
    0.816667
    """
    if pred is None or gold is None:
        return 0.0
    score = 0.0
    for p, g in ((pred.utterance_ids, gold.utterance_ids), (pred.image_ids, gold.image_ids)):
        score += 0.5 * released_f1(p, g) * LENGTH_PENALTY ** abs(len(p) - len(g))
    return score


def format_score(pred: Answer | None) -> float:
    """1 when the answer matched the pattern, every piece is an integer and neither list repeats an id."""
    if pred is None:
        return 0.0
    return 0.0 if has_duplicates(pred.utterance_ids) or has_duplicates(pred.image_ids) else 1.0


def mcc_score(pred: Answer | None, gold: Answer | None, num_utterances: int, num_images: int) -> float:
    """The released MCC reward (`RetrievalMcc`, unused by the paper): per modality 1 when both
    lists are empty, 0 when one is, else the MCC inside the universe; the mean of the two.

    >>> mcc_score(Answer([1], []), Answer([1], []), num_utterances=4, num_images=0)
    1.0
    """
    if pred is None or gold is None:
        return 0.0

    def one(p, g, n):
        if not p and not g:
            return 1.0
        if not p or not g:
            return 0.0
        return Counts.within(p, g, universe_size(n)).scores().mcc

    return (one(pred.utterance_ids, gold.utterance_ids, num_utterances)
            + one(pred.image_ids, gold.image_ids, num_images)) / 2


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    return float(a @ b) / (na * nb) if na and nb else 0.0


def coherence_score(pred: Answer | None, gold: Answer | None, utterance_vectors: np.ndarray,
                    image_vectors: np.ndarray, image_hosts: Sequence[int]) -> float:
    """Fragment coherence of a predicted answer (released rule, without the image-only defect).

    Both answers empty -> 1, exactly one empty -> 0. Otherwise walk the sorted union of predicted
    utterance ids and the hosts of predicted images; at each utterance emit its vector (if it was
    predicted), then the mean vector of its predicted images. Score: mean cosine of consecutive
    vectors clipped to [-1, 1]; 0.5 for a single vector, 0 for none. Ids that do not exist in the
    dialogue are skipped (F1 already punishes them).

    >>> u = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]); i = np.array([[1.0, 0.0]])
    >>> coherence_score(Answer([0, 2], []), Answer([0], []), u, i, [1])
    1.0
    >>> coherence_score(Answer([0, 1], [0]), Answer([0], []), u, i, [1])  # u0, u1, img0 (on u1)
    0.0
    >>> coherence_score(Answer([], [0]), Answer([1], []), u, i, [1])  # image-only: one vector
    0.5
    """
    if pred is None or gold is None:
        return 0.0
    pred_empty = not pred.utterance_ids and not pred.image_ids
    gold_empty = not gold.utterance_ids and not gold.image_ids
    if pred_empty or gold_empty:
        return 1.0 if pred_empty and gold_empty else 0.0
    utts = {u for u in pred.utterance_ids if 0 <= u < len(utterance_vectors)}
    by_host: dict[int, list[int]] = {}
    for k in sorted(set(pred.image_ids)):
        if 0 <= k < len(image_vectors) and k < len(image_hosts):
            by_host.setdefault(int(image_hosts[k]), []).append(k)
    sequence = []
    for position in sorted(utts | set(by_host)):
        if position in utts:
            sequence.append(np.asarray(utterance_vectors[position], dtype=np.float64))
        if position in by_host:
            sequence.append(np.asarray(image_vectors[by_host[position]], dtype=np.float64).mean(axis=0))
    if not sequence:
        return 0.0
    if len(sequence) == 1:
        return 0.5
    sims = [_cosine(a, b) for a, b in itertools.pairwise(sequence)]
    return float(min(1.0, max(-1.0, sum(sims) / len(sims))))


# ----------------------------------------------------------------------------------------------
# Columns
# ----------------------------------------------------------------------------------------------
def _column(columns: Mapping, name: str, i: int) -> Any:
    values = columns.get(name)
    return None if values is None else values[i]


def sample_universe(i: int, columns: Mapping) -> tuple[int, int]:
    """`(num_utterances, num_images)` of sample `i`: from `num_turns` and the `images` /
    `image_captions` / `utterances` columns when present, else from the id tags of `prompts`."""
    utterances = _column(columns, "utterances", i)
    num_turns = _column(columns, "num_turns", i)
    if num_turns is None and utterances is not None:
        num_turns = len(utterances)
    if num_turns is not None:
        counts = [len(v) for v in (_column(columns, "images", i), _column(columns, "image_captions", i)) if v is not None]
        if utterances is not None:
            counts.append(1 + max((k for u in utterances for k in (u.get("image_ids") or [])), default=-1))
        if counts:
            return int(num_turns), max(counts)
    prompt = _column(columns, "prompts", i)
    if prompt is None:
        prompt = _column(columns, "prompt", i)
    if prompt is not None:
        num_utt, num_img, _ = prompt_universe(prompt_text(prompt))
        return num_utt, num_img
    raise ValueError("mcc_reward needs the universe of each sample: pass the `num_turns` and `images` "
                     "(or `image_captions`) columns, or chat `prompts` with id tags")


def _row(i: int, columns: Mapping) -> dict:
    row = {name: _column(columns, name, i) for name in ("dialogue_id", "utterances", "image_captions", "images")}
    if row["utterances"] is None:  # released-format rows: rebuild the dialogue lines from the prompt
        prompt = _column(columns, "prompts", i)
        if prompt is None:
            raise ValueError("coherence_reward needs the `utterances` column (or chat `prompts`)")
        from ..core.protocol import parse_prompt

        lines = parse_prompt(prompt_text(prompt)).lines
        row["utterances"] = [{"id": l.utterance_id, "text": l.text, "image_ids": list(l.image_ids)} for l in lines]
    return row


def image_hosts_of(utterances: Sequence[Mapping]) -> list[int]:
    """For each image id, the utterance carrying it (from the rows' `utterances[*].image_ids`)."""
    hosts: dict[int, int] = {}
    for position, utterance in enumerate(utterances):
        for k in utterance.get("image_ids") or []:
            hosts[int(k)] = int(utterance.get("id", position))
    return [hosts.get(k, -1) for k in range(1 + max(hosts, default=-1))]


# ----------------------------------------------------------------------------------------------
# Reward functions
# ----------------------------------------------------------------------------------------------
_DEFAULT_CACHE = None


def default_embedding_cache():
    """The coherence reward's shared cache: embedder from `F2RVLM_EMBEDDER` (default MiniLM),
    persisted at `F2RVLM_EMBEDDING_CACHE` when set (load it there after `precompute` + `save`)."""
    global _DEFAULT_CACHE
    if _DEFAULT_CACHE is None:
        from ..embeddings import EmbeddingCache

        _DEFAULT_CACHE = EmbeddingCache(path=os.environ.get("F2RVLM_EMBEDDING_CACHE") or None)
    return _DEFAULT_CACHE


def set_embedding_cache(cache) -> None:
    """Use `cache` (an `embeddings.EmbeddingCache`) for the module-level `coherence_reward`."""
    global _DEFAULT_CACHE
    _DEFAULT_CACHE = cache


def make_rewards(reasoning: bool | None = False, cache=None) -> dict[str, RewardFunc]:
    """Reward functions sharing one answer mode and one embedding cache.

    `reasoning=None` reads `F2RVLM_REWARD_REASONING` at every call (the module-level functions);
    `cache=None` uses `default_embedding_cache()` lazily.

    >>> rewards = make_rewards(reasoning=True)
    >>> sorted(rewards)
    ['coherence', 'format', 'fragment_f1', 'mcc']
    >>> answer = "<|utt_ids_start|>[1]<|utt_ids_end|>;<|img_ids_start|>[]<|img_ids_end|>"
    >>> rewards["format"]([f"<think>ok</think><answer>{answer}</answer>", answer])
    [1.0, 0.0]
    """

    def fragment_f1_reward(completions, solution, **columns) -> list[float]:
        """F1 reward (released `RetrievalF1`): 0.5 * utterance + 0.5 * image F1, each with the 0.95 length penalty."""
        return [fragment_f1_score(parse_completion(c, reasoning), parse_gold(s, reasoning))
                for c, s in zip(completions, solution)]

    def format_reward(completions, **columns) -> list[float]:
        """1.0 when the answer matches the released pattern, parses and repeats no id, else 0.0."""
        return [format_score(parse_completion(c, reasoning)) for c in completions]

    def _lenient(text: Any, is_gold: bool = False) -> Answer | None:
        on = _reasoning_on(reasoning)
        lists = answer_lists(completion_text(text), on and not is_gold)
        if lists is None and is_gold and on:
            lists = answer_lists(completion_text(text), True)
        return _ids(lists, lenient_ids)

    def mcc_reward(completions, solution, **columns) -> list[float]:
        """Released `RetrievalMcc` (unused by the paper): mean utterance/image MCC inside the universe;
        an answer that does not match the pattern reads as empty lists."""
        out = []
        for i, (c, s) in enumerate(zip(completions, solution)):
            pred, gold = _lenient(c) or Answer([], []), _lenient(s, True) or Answer([], [])
            out.append(mcc_score(pred, gold, *sample_universe(i, columns)))
        return out

    def coherence_reward(completions, solution, **columns) -> list[float]:
        """Fragment coherence: mean cosine of consecutive embedded turns/images of the prediction
        (ids read as the released coherence reward reads them: pieces that are not digits dropped)."""
        store = cache if cache is not None else default_embedding_cache()
        out = []
        for i, (c, s) in enumerate(zip(completions, solution)):
            pred, gold = _lenient(c), _lenient(s, True)
            if pred is None or gold is None or (not pred.utterance_ids and not pred.image_ids) \
                    or (not gold.utterance_ids and not gold.image_ids):
                out.append(coherence_score(pred, gold, np.zeros((0, 1)), np.zeros((0, 1)), []))
                continue  # no vectors needed
            row = _row(i, columns)
            utterance_vectors, image_vectors = store.row_vectors(row)
            out.append(coherence_score(pred, gold, utterance_vectors, image_vectors, image_hosts_of(row["utterances"])))
        return out

    funcs = {"fragment_f1": fragment_f1_reward, "coherence": coherence_reward, "format": format_reward, "mcc": mcc_reward}
    for func in funcs.values():
        func.__module__ = __name__
        func.__qualname__ = func.__name__
    return funcs


REWARD_FUNCS: dict[str, RewardFunc] = make_rewards(reasoning=None)
fragment_f1_reward = REWARD_FUNCS["fragment_f1"]
coherence_reward = REWARD_FUNCS["coherence"]
format_reward = REWARD_FUNCS["format"]
mcc_reward = REWARD_FUNCS["mcc"]


def get_reward_funcs(names: Sequence[str] = ("fragment_f1", "coherence", "format"), reasoning: bool | None = None,
                     cache=None) -> tuple[list[RewardFunc], list[float]]:
    """Functions and weights for `GRPOTrainer(reward_funcs=..., args=GRPOConfig(reward_weights=...))`."""
    funcs = REWARD_FUNCS if reasoning is None and cache is None else make_rewards(reasoning, cache)
    unknown = [n for n in names if n not in funcs]
    if unknown:
        raise ValueError(f"unknown reward(s) {unknown}; choose from {sorted(funcs)}")
    return [funcs[n] for n in names], [REWARD_WEIGHTS.get(n, 1.0) for n in names]
