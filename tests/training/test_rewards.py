"""GRPO rewards: hand-computed cases and equality with an independent re-implementation of the
released F1 and format definitions (docs/protocol.md §6, coded here with re/json only)."""

import doctest
import json
import random
import re

import numpy as np
import pytest
from f2rvlm.core.protocol import render_answer
from f2rvlm.embeddings import EmbeddingCache, HashingEmbedder
from f2rvlm.training import rewards
from f2rvlm.training.rewards import (
    REWARD_FUNCS,
    REWARD_WEIGHTS,
    format_reward,
    fragment_f1_reward,
    get_reward_funcs,
    make_rewards,
    mcc_reward,
)

A = render_answer
PATTERN = r"^<\|utt_ids_start\|>(\[[\d,\s]*\])<\|utt_ids_end\|>;<\|img_ids_start\|>(\[[\d,\s]*\])<\|img_ids_end\|>$"


def test_doctests():
    assert doctest.testmod(rewards).failed == 0


# -- reference (released definitions) ------------------------------------------------------------
def ref_lists(text):
    m = re.match(PATTERN, text)
    if not m:
        return None
    try:
        return json.loads(m.group(1)), json.loads(m.group(2))
    except ValueError:
        return None


def ref_f1(pred, gold):
    p, g = set(pred), set(gold)
    if not p and not g:
        return 1.0
    inter = len(p & g)
    if inter == 0:
        return 0.0
    prec, rec = inter / len(p), inter / len(g)
    return 2 * prec * rec / (prec + rec)


def ref_f1_reward(completion, solution):
    a, b = ref_lists(completion), ref_lists(solution)
    if a is None or b is None:
        return 0.0
    total = 0.0
    for p, g in zip(a, b):
        total += 0.5 * ref_f1(p, g) * 0.95 ** abs(len(p) - len(g))
    return total


def ref_format_reward(completion):
    a = ref_lists(completion)
    if a is None:
        return 0.0
    return 1.0 if all(len(set(x)) == len(x) for x in a) else 0.0


def random_completion(rng):
    u = [rng.randrange(12) for _ in range(rng.randint(0, 6))]
    i = [rng.randrange(4) for _ in range(rng.randint(0, 3))]
    if rng.random() < 0.5:
        u, i = sorted(set(u)), sorted(set(i))
    kind = rng.randrange(8)
    if kind == 0:
        return "x" + A(u, i)
    if kind == 1:
        return A(u, i) + "\n"
    if kind == 2:
        return A(u, i).replace(", ", ",")
    if kind == 3:
        return "<|utt_ids_start|>[1,,2]<|utt_ids_end|>;<|img_ids_start|>[]<|img_ids_end|>"
    if kind == 4:
        return A(u, i).replace("]<|utt", "<|utt")
    return A(u, i)


def test_same_numbers_as_released_definitions():
    rng = random.Random(0)
    completions = [random_completion(rng) for _ in range(400)]
    solutions = [A(sorted(rng.sample(range(12), rng.randint(0, 4))), sorted(rng.sample(range(4), rng.randint(0, 2))))
                 for _ in completions]
    chat = [[{"role": "assistant", "content": c}] for c in completions]
    assert fragment_f1_reward(chat, solutions) == [ref_f1_reward(c, s) for c, s in zip(completions, solutions)]
    assert format_reward(completions) == [ref_format_reward(c) for c in completions]
    assert len({round(x, 6) for x in fragment_f1_reward(completions, solutions)}) > 10  # not degenerate


# -- hand-computed ------------------------------------------------------------------------------
@pytest.mark.parametrize("completion, gold, f1, fmt", [
    (A([], []), A([], []), 1.0, 1.0),                          # both empty
    (A([2], []), A([], []), 0.5, 1.0),                         # empty gold: utterance F1 0, images both empty 1
    (A([2], [0]), A([2], [0]), 1.0, 1.0),                      # single elements
    (A([2, 2], []), A([2], []), 0.5 * 0.95 + 0.5, 0.0),        # duplicate: set F1 1, raw length penalty
    ("[2]", A([2], []), 0.0, 0.0),                             # malformed
    (" " + A([2], []), A([2], []), 0.0, 0.0),                  # text before the answer
    (A([1, 2], [5]), A([2, 3, 4], []), 0.5 * 0.4 * 0.95 + 0.0, 1.0),
])
def test_hand_computed(completion, gold, f1, fmt):
    assert fragment_f1_reward([completion], [gold])[0] == pytest.approx(f1)
    assert format_reward([completion])[0] == fmt


def test_registry_and_weights():
    assert REWARD_WEIGHTS == {"fragment_f1": 1.0, "coherence": 1.0, "format": 0.3}
    funcs, weights = get_reward_funcs()
    assert [f.__name__ for f in funcs] == ["fragment_f1_reward", "coherence_reward", "format_reward"]
    assert weights == [1.0, 1.0, 0.3]
    assert REWARD_FUNCS["mcc"] is mcc_reward
    assert rewards.fragment_f1_reward.__module__ == "f2rvlm.training.rewards"


def test_reasoning_mode_every_reward(monkeypatch):
    gold = A([1], [])
    wrapped = f"<think>because</think><answer>{A([1], [])}</answer>"
    r = make_rewards(reasoning=True, cache=EmbeddingCache(HashingEmbedder()))
    cols = {"num_turns": [3, 3], "images": [[], []], "utterances": [[{"text": "a"}, {"text": "b"}, {"text": "c"}]] * 2}
    for name in ("fragment_f1", "format", "mcc"):
        got = r[name]([wrapped, A([1], [])], solution=[gold, gold], **cols)
        assert got[0] > 0 and got[1] == 0.0, name
    assert r["coherence"]([wrapped, A([1], [])], [gold] * 2, **cols) == [0.5, 0.0]
    # the module-level functions follow the environment switch at call time
    monkeypatch.setenv("F2RVLM_REWARD_REASONING", "1")
    assert format_reward([wrapped, A([1], [])]) == [1.0, 0.0]
    monkeypatch.delenv("F2RVLM_REWARD_REASONING")
    assert format_reward([wrapped, A([1], [])]) == [0.0, 1.0]


def test_mcc_universe_from_columns_or_prompt():
    # universe 4 utterances, no images -> image MCC 0 (zero denominators); utterance: tp=1 tn=3 -> 1
    assert mcc_reward([A([1], [])], [A([1], [])], num_turns=[4], images=[[]]) == [0.5]
    prompt = [{"role": "user", "content": [{"type": "text", "text": "".join(
        f"<|utt_id_start|>{u}<|utt_id_end|> a: x\n" for u in range(4))}]}]
    assert mcc_reward([A([1], [])], [A([1], [])], prompts=[prompt]) == [0.5]
    with pytest.raises(ValueError, match="universe"):
        mcc_reward([A([1], [])], [A([1], [])])


ROW = {
    "dialogue_id": ["d"],
    "utterances": [[{"id": 0, "text": "the lake trip", "image_ids": []},
                    {"id": 1, "text": "the lake trip was great", "image_ids": [0]},
                    {"id": 2, "text": "tax forms due", "image_ids": []}]],
    "image_captions": [["the lake trip photo"]],
}


def test_coherence_scores_utterance_only_and_image_only():
    r = make_rewards(cache=EmbeddingCache(HashingEmbedder()))["coherence"]
    gold = [A([1], [0])]
    utt_only, img_only, both, far = (r([c], gold, **ROW)[0] for c in (A([0, 1], []), A([], [0]), A([0, 1], [0]), A([0, 2], [])))
    assert 0.5 < utt_only < 1.0      # released defect would give 0
    assert img_only == 0.5           # a single vector
    assert 0 < both <= 1.0 and far < utt_only
    assert r([A([], [])], [A([], [])], **ROW) == [1.0]
    assert r([A([1], [])], [A([], [])], **ROW) == [0.0]
    assert r(["garbage"], gold, **ROW) == [0.0]


def test_coherence_uses_cache_not_recompute():
    cache = EmbeddingCache(HashingEmbedder())
    r = make_rewards(cache=cache)["coherence"]
    r([A([0, 1], [0])] * 4, [A([1], [0])] * 4, **{k: v * 4 for k, v in ROW.items()})
    assert cache.misses == 4 and cache.hits == 12
    # by hand: u0 and u1 and the image on u1 -> two consecutive cosines
    u, i = cache.row_vectors({k: v[0] for k, v in ROW.items()})
    expected = (float(u[0] @ u[1]) + float(u[1] @ i[0])) / 2
    assert r([A([0, 1], [0])], [A([1], [0])], **ROW)[0] == pytest.approx(expected)
    assert np.isclose(np.linalg.norm(u, axis=1), 1).all()
