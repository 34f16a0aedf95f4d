"""Segmentation: the released prompt byte for byte, parser, grammar, repair, the CPU segmenter."""

import json

import numpy as np
import pytest
from f2rvlm.core.dialogue import Dialogue, DialogueImage, Utterance
from f2rvlm.corpus.segmentation import (
    SEGMENT_SYSTEM_PROMPT,
    EmbeddingSegmenter,
    FixedSegmenter,
    SegmentationGrammar,
    boundary_scores,
    check_segmentation,
    parse_segmentation,
    pk,
    repair_segmentation,
    segmentation_messages,
    topic_segmentation,
    window_diff,
)
from f2rvlm.embeddings import HashingEmbedder

# The release's user message for this dialogue, written out by hand from
# FFRS_pipeline/1_convert_wechat2_split.py (convert_one): instruction + numbered lines.
RELEASED_INSTRUCTION = (
    "请根据下列多模态长对话内容，按照主题语义将对话划分为多个子片段。\n\n"
    "每条发言以<|utt_id_start|>句子ID<|utt_id_end|>标注，可能为文本、图像。请将语义连贯的句子归为一组。\n\n"
    "输出格式严格为：[[id,id,...],[id,...],...]，仅输出句子ID，不含其他内容。\n\n"
    "对话内容如下：\n"
)


def _dialogue():
    return Dialogue([
        Utterance("user1", "我们去哪里吃饭"),
        Utterance("USER2", "", [DialogueImage(b"x", None, "a.png"), DialogueImage(b"y", None, "b.png")]),
        Utterance("bob", "好的"),
    ], "d0")


def test_released_prompt_byte_for_byte():
    messages = segmentation_messages(_dialogue(), [[0, 1], [2]])
    assert messages[0] == {"role": "system", "content": "你是一个多模态对话分段助手。"} and SEGMENT_SYSTEM_PROMPT == messages[0]["content"]
    assert messages[1]["content"] == RELEASED_INSTRUCTION + (
        "<|utt_id_start|>0<|utt_id_end|> User1: 我们去哪里吃饭\n"
        "<|utt_id_start|>1<|utt_id_end|> User2: <image> <image>\n"
        "<|utt_id_start|>2<|utt_id_end|> Bob: 好的")
    assert messages[2]["content"] == json.dumps([[0, 1], [2]], ensure_ascii=False) == "[[0, 1], [2]]"


@pytest.mark.parametrize("text,expected", [
    ("[[0,1],[2]]", [[0, 1], [2]]), ("[[0, 1], [2]]", [[0, 1], [2]]), ("[(0, 1), (2,)]", [[0, 1], [2]]),
    ("", None), ("[[0,1],[x]]", None), ("[1, 2]", None), ("{'a': 1}", None), ("[[true]]", None),
])
def test_parse(text, expected):
    assert parse_segmentation(text) == expected


def test_check_and_repair():
    assert check_segmentation([[0, 1], [2]], 3).ok
    bad = check_segmentation([[0, 2], [2, 5]], 4)
    assert (bad.missing, bad.extra, bad.duplicates, bad.in_order) == ([1, 3], [5], [2], False)
    assert not check_segmentation([[0, 1], [], [2]], 3).ok
    assert repair_segmentation([[0, 1], [2]], 3) == ([[0, 1], [2]], True)
    # a skipped id: the group starts are kept
    assert repair_segmentation([[0, 1], [3, 4]], 5) == ([[0, 1, 2], [3, 4]], False)
    assert repair_segmentation(None, 3, fallback=[[0], [1, 2]]) == ([[0], [1, 2]], False)
    assert repair_segmentation(None, 3) == ([[0, 1, 2]], False)


def test_grammar_accepts_exactly_the_valid_answers():
    g = SegmentationGrammar(12)
    assert g.accepts("[[0,1,2],[3,4,5,6,7,8,9,10,11]]")
    assert g.accepts("[[0],[1],[2],[3],[4],[5],[6],[7],[8],[9],[10],[11]]")
    for bad in ("[[0,1],[3]]", "[[0,1,2,3,4,5,6,7,8,9,10]]", "[[0,1,2,3,4,5,6,7,8,9,10,11],[]]",
                "[[1,0,2,3,4,5,6,7,8,9,10,11]]", "[[0,1,2,3,4,5,6,7,8,9,10,11,12]]", "[[0, 1]]"):
        assert not g.accepts(bad), bad
    assert SegmentationGrammar(3, spaces=True).accepts("[[0, 1], [2]]")
    # walking by allowed_chars() always ends in an accepted answer: greedy = one group
    state, text = g.initial, ""
    while not g.is_complete(state):
        char = min(g.allowed_chars(state))  # ',' before ']'
        text += char
        state = g.step(state, char)
    assert text == "[[" + ",".join(map(str, range(12))) + "]]" and g.accepts(text)


def test_grammar_agrees_with_check():
    rng = np.random.default_rng(0)
    g = SegmentationGrammar(7)
    for _ in range(300):
        groups = [list(map(int, rng.choice(9, size=rng.integers(0, 4), replace=False))) for _ in range(rng.integers(1, 4))]
        text = json.dumps(groups, separators=(",", ":"))
        assert g.accepts(text) == check_segmentation(groups, 7).ok


def _topic_dialogue():
    topics = [("cat", "the cat sleeps on the sofa cat food"), ("car", "the car engine needs oil car repair"),
              ("cake", "bake the cake with flour cake oven")]
    utterances = []
    for topic, text in topics:
        for k in range(6):
            utterances.append(Utterance("user1" if k % 2 else "user2", f"{text} {k}", topic=topic))
    return Dialogue(utterances, "topics")


def test_embedding_segmenter_finds_topic_boundaries():
    d = _topic_dialogue()
    reference = topic_segmentation(d)
    assert [g[0] for g in reference] == [0, 6, 12]
    predicted = EmbeddingSegmenter(HashingEmbedder(), window=2, min_size=2)(d)
    assert check_segmentation(predicted, len(d)).ok
    assert boundary_scores(predicted, reference, len(d)) == (2, 2, 2)
    assert pk(predicted, reference, len(d)) == 0.0 and window_diff(predicted, reference, len(d)) == 0.0
    assert pk(FixedSegmenter(4)(d), reference, len(d)) > 0


def test_segmenter_size_cap_and_time_gaps():
    d = Dialogue([Utterance("a", "same words here", timestamp=str(1000 + (20_000 if i >= 5 else 0) + i))
                  for i in range(30)], "flat")
    groups = EmbeddingSegmenter(HashingEmbedder(), max_size=8, min_size=2)(d)
    assert check_segmentation(groups, 30).ok
    assert max(len(g) for g in groups) <= 8
    assert 5 in [g[0] for g in groups]  # the 20,000 s gap


def test_metrics_on_known_cases():
    ref = [[0, 1, 2], [3, 4, 5]]
    assert boundary_scores([[0, 1], [2, 3, 4, 5]], ref, 6) == (0, 1, 1)
    assert boundary_scores([[0, 1], [2, 3, 4, 5]], ref, 6, tolerance=1) == (1, 1, 1)
    assert pk(ref, ref, 6) == 0.0 and window_diff([[0, 1, 2, 3, 4, 5]], ref, 6) > 0


def test_llm_segmenter_constrained_decoding_with_a_tiny_model(tiny_model_and_processor):
    """The released prompt through the chat template, greedy decoding under the grammar (via
    the retrieval answer constraint): the tiny random model's answer always covers every turn."""
    from f2rvlm.corpus.segmentation import LLMSegmenter

    model, processor = tiny_model_and_processor
    d = _topic_dialogue()
    d.utterances[2].images = [DialogueImage(png_bytes_small(), "a cat")]
    segmenter = LLMSegmenter(model, processor)
    groups = segmenter(d)
    assert check_segmentation(groups, len(d)).ok
    assert SegmentationGrammar(len(d)).accepts(segmenter.last_answer), segmenter.last_answer
    unconstrained = LLMSegmenter(model, processor, constrained=False, fallback=FixedSegmenter(5))
    assert check_segmentation(unconstrained(d), len(d)).ok  # whatever it wrote, repaired or fallen back


def png_bytes_small():
    from helpers import png_bytes

    return png_bytes(size=(28, 28))
