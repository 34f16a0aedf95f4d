"""GRPO rewards: hand-computed cases and equality with an independent re-implementation of the
released F1 and format definitions (docs/protocol.md §6, coded here with re/json only)."""

import doctest
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
# The released plugin.py pattern (absolute end anchoring), re-coded here independently.
PATTERN = (r"^<\|utt_ids_start\|>(\[(?P<utt>[\d,\s]*)\])<\|utt_ids_end\|>;"
           r"<\|img_ids_start\|>(\[(?P<img>[\d,\s]*)\])<\|img_ids_end\|>(?![\s\S])")


def test_doctests():
    assert doctest.testmod(rewards).failed == 0


# -- reference: released RetrievalF1 and the first RetrievalFormat.__call__, as written there -------
def ref_parse(id_str):
    if not id_str.strip():
        return []
    return [int(x.strip()) for x in id_str.split(",") if x.strip()]


def ref_f1(predicted, ground_truth):
    if not predicted and not ground_truth:
        return 1.0
    inter = len(set(predicted).intersection(set(ground_truth)))
    precision = inter / len(predicted) if predicted else 0.0
    recall = inter / len(ground_truth) if ground_truth else 0.0
    if precision + recall == 0:
        return 0.0
    return 2 * (precision * recall) / (precision + recall)


def ref_f1_reward(content, sol):
    try:
        gen, true = re.match(PATTERN, content), re.match(PATTERN, sol)
        if not gen or not true:
            return 0.0
        total = 0.0
        for key in ("utt", "img"):
            p, g = ref_parse(gen.group(key)), ref_parse(true.group(key))
            total += ref_f1(p, g) * 0.95 ** abs(len(p) - len(g)) * 0.5
        return total
    except Exception:
        return 0.0


def ref_format_reward(content):
    try:
        m = re.match(PATTERN, content)
        if not m:
            return 0.0
        u, i = m.group("utt").strip(), m.group("img").strip()
        u = [int(x) for x in u.split(",") if x.strip()] if u else []
        i = [int(x) for x in i.split(",") if x.strip()] if i else []
        return 0.0 if len(set(u)) != len(u) or len(set(i)) != len(i) else 1.0
    except Exception:
        return 0.0


def random_completion(rng):
    u = [rng.randrange(12) for _ in range(rng.randint(0, 6))]
    i = [rng.randrange(4) for _ in range(rng.randint(0, 3))]
    if rng.random() < 0.5:
        u, i = sorted(set(u)), sorted(set(i))
    kind = rng.randrange(16)
    if kind == 0:
        return "x" + A(u, i)
    if kind == 1:
        return A(u, i) + rng.choice(["\n", " ", "\t", "\r\n", "\n\n"])  # trailing whitespace
    if kind == 2:
        return A(u, i).replace(", ", ",")
    if kind == 3:
        return "<|utt_ids_start|>[1,,2]<|utt_ids_end|>;<|img_ids_start|>[]<|img_ids_end|>"
    if kind == 4:
        return A(u, i).replace("]<|utt", "<|utt")
    if kind == 5:
        return A(u, i).replace(", ", " ", 1)  # "1 2": a piece that is not an integer
    if kind == 6:
        return A(u, i).replace("[", "[ ,", 1).replace("]", ", ]", 1)  # empty pieces
    if kind == 7:
        return A(u + u[:1], i)  # duplicate
    if kind == 8:
        return A(u, i).replace("[", "[\n", 1)  # whitespace inside the list
    if kind == 9:
        return "<think>x</think><answer>" + A(u, i) + "</answer>"
    if kind == 10:
        return A(u, i).replace("1", "١")  # a Unicode digit: \d matches, int() reads it
    return A(u, i)


def random_solution(rng):
    gold = A(sorted(rng.sample(range(12), rng.randint(0, 4))), sorted(rng.sample(range(4), rng.randint(0, 2))))
    return gold + "\n" if rng.random() < 0.03 else gold  # a gold with a trailing newline scores 0, as released


def test_same_numbers_as_released_definitions():
    rng = random.Random(0)
    completions = [random_completion(rng) for _ in range(3000)]
    solutions = [random_solution(rng) for _ in completions]
    chat = [[{"role": "assistant", "content": c}] for c in completions]
    assert fragment_f1_reward(chat, solutions) == [ref_f1_reward(c, s) for c, s in zip(completions, solutions)]
    assert format_reward(completions) == [ref_format_reward(c) for c in completions]
    assert len({round(x, 6) for x in fragment_f1_reward(completions, solutions)}) > 10  # not degenerate
    assert 0 < sum(format_reward(completions)) < len(completions)


# -- hand-computed ------------------------------------------------------------------------------
@pytest.mark.parametrize("completion, gold, f1, fmt", [
    (A([], []), A([], []), 1.0, 1.0),                          # both empty
    (A([2], []), A([], []), 0.5, 1.0),                         # empty gold: utterance F1 0, images both empty 1
    (A([2], [0]), A([2], [0]), 1.0, 1.0),                      # single elements
    (A([2, 2], []), A([2], []), 0.5 * (2 / 3) * 0.95 + 0.5, 0.0),  # duplicate: P = 1/2 (raw length), penalty
    (A([2], []) + "\n", A([2], []), 0.0, 0.0),                 # trailing newline: absolute end anchoring
    (A([2], []), A([2], []) + "\n", 0.0, 1.0),                 # ... on the gold too
    ("<|utt_ids_start|>[1 2]<|utt_ids_end|>;<|img_ids_start|>[]<|img_ids_end|>", A([1], []), 0.0, 0.0),
    ("<|utt_ids_start|>[2,,]<|utt_ids_end|>;<|img_ids_start|>[]<|img_ids_end|>", A([2], []), 1.0, 1.0),
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
        # the released MCC reward reads an unmatched answer as empty lists: images both empty -> 1
        assert got[0] > 0 and got[1] == (0.5 if name == "mcc" else 0.0), name
    assert r["coherence"]([wrapped, A([1], [])], [gold] * 2, **cols) == [0.5, 0.0]
    # the module-level functions follow the environment switch at call time
    monkeypatch.setenv("F2RVLM_REWARD_REASONING", "1")
    assert format_reward([wrapped, A([1], [])]) == [1.0, 0.0]
    monkeypatch.delenv("F2RVLM_REWARD_REASONING")
    assert format_reward([wrapped, A([1], [])]) == [0.0, 1.0]


def test_mcc_universe_from_columns_or_prompt():
    # released: utterance tp=1 tn=3 -> 1; images both empty -> 1; one list empty -> 0
    assert mcc_reward([A([1], [])], [A([1], [])], num_turns=[4], images=[[]]) == [1.0]
    assert mcc_reward([A([1], [0])], [A([1], [])], num_turns=[4], images=[["x"]]) == [0.5]
    prompt = [{"role": "user", "content": [{"type": "text", "text": "".join(
        f"<|utt_id_start|>{u}<|utt_id_end|> a: x\n" for u in range(4))}]}]
    assert mcc_reward([A([1], [])], [A([1], [])], prompts=[prompt]) == [1.0]
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


def test_coherence_default_embedder_on_caption_less_released_rows():
    """Released MLDR rows carry images but no captions: the default (MiniLM) embedder must not
    raise; a captionless image is embedded through its host turn's text (zero vector if none)."""
    from f2rvlm.core.dialogue import Dialogue, DialogueImage, Utterance
    from f2rvlm.core.protocol import build_messages
    from f2rvlm.embeddings import MiniLMCaptionEmbedder

    dialogue = Dialogue([Utterance("user1", "we hiked to the lake"),
                         Utterance("user2", "look at the lake", [DialogueImage("a.png")]),
                         Utterance("user1", "", [DialogueImage("b.png")]),  # image-only turn
                         Utterance("user2", "tax forms are due")])
    messages = build_messages(dialogue, "the lake trip")
    r = make_rewards(cache=EmbeddingCache(MiniLMCaptionEmbedder()))["coherence"]
    gold = A([0, 1], [0])
    got = r([A([0, 1], [0]), A([1], [1]), A([0, 3], [])], [gold] * 3, prompts=[messages] * 3,
            dialogue_id=["d"] * 3)
    assert all(-1.0 <= g <= 1.0 for g in got)
    assert got[1] == 0.0  # u1 then image 1 on the text-less turn 2: zero vector, cosine 0
    assert got[0] > got[2]  # the lake turns and the lake photo cohere more than lake + taxes


def test_coherence_rebuilds_utterances_with_image_tags_anywhere():
    """Released prompts may put an image tag before, inside or right after the text (no space):
    the utterances rebuilt from the prompt keep the whole text, and score as the row's columns do."""
    from f2rvlm.core.dialogue import Dialogue, DialogueImage, Utterance
    from f2rvlm.core.protocol import build_messages
    from f2rvlm.data.schema import make_row
    from f2rvlm.embeddings import MiniLMCaptionEmbedder
    from helpers import png_bytes

    dialogue = Dialogue([Utterance("user1", "we hiked to the lake"),
                         Utterance("user2", "look at the lake", [DialogueImage(png_bytes())], image_positions=[7]),
                         Utterance("user1", "", [DialogueImage(png_bytes((1, 2, 3))), DialogueImage(png_bytes((3, 2, 1)))],
                                   image_positions=[0, 0]),
                         Utterance("user2", "tax forms are due")], "d-pos")
    messages = build_messages(dialogue, "the lake trip")
    prompt = "".join(part.get("text", "<image>") for part in messages[1]["content"])
    assert "look at<|img_id_start|>0<|img_id_end|><image> the lake" in prompt
    assert "user1: <|img_id_start|>1<|img_id_end|><image><|img_id_start|>2<|img_id_end|><image>\n" in prompt
    row = rewards._row(0, {"prompts": [messages]})
    assert [u["text"] for u in row["utterances"]] == [u.text for u in dialogue.utterances]
    assert [u["image_ids"] for u in row["utterances"]] == [[], [0], [1, 2], []]
    r = make_rewards(cache=EmbeddingCache(MiniLMCaptionEmbedder()))["coherence"]
    completions, gold = [A([0, 1], [0]), A([1], [1, 2]), A([0, 3], [])], [A([0, 1], [0])] * 3
    from_prompt = r(completions, gold, prompts=[messages] * 3, dialogue_id=["d-pos"] * 3)
    full = make_row(dialogue, "the lake trip", [0, 1], [0], language="en", source="mldr-release", topics=[])
    from_row = r(completions, gold, **{k: [full[k]] * 3 for k in ("dialogue_id", "utterances", "images", "image_captions")})
    assert from_prompt == pytest.approx(from_row)
    assert from_prompt[1] == 0.0  # u1, then the two images of the text-less turn 2: zero vector
    assert from_prompt[0] > from_prompt[2]
