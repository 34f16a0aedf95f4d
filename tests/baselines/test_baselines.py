"""BM25 and embedding baselines: output type, image scoring, selection rule and dev tuning."""

import doctest

import numpy as np
from f2rvlm import baselines
from f2rvlm.baselines import BM25Baseline, DevExample, EmbeddingBaseline, SelectionRule, tune_rule
from f2rvlm.core.dialogue import Dialogue, DialogueImage, Utterance
from f2rvlm.core.protocol import Answer
from f2rvlm.embeddings import HashingEmbedder, MiniLMCaptionEmbedder


def _dialogue():
    return Dialogue([
        Utterance("user1", "we went hiking near the lake"),
        Utterance("user2", "look", [DialogueImage("a.png", "a lake at sunset")]),
        Utterance("user1", "tax forms are due friday"),
        Utterance("user2", "", [DialogueImage("b.png")]),            # no caption: host utterance score
        Utterance("user1", "did you file the tax forms"),
    ])


def test_doctests():
    assert doctest.testmod(baselines).failed == 0


def test_bm25_retrieves_utterances_and_images():
    d = _dialogue()
    assert BM25Baseline().retrieve(d, "photos of the lake") == ([0], [0])
    assert BM25Baseline().retrieve(d, "tax forms") == ([2, 4], [])
    assert BM25Baseline().retrieve(d, "volcano") == ([], [])       # nothing matches
    assert BM25Baseline().retrieve(d, "") == ([], [])


def test_embedding_baseline_with_hashing_embedder():
    b = EmbeddingBaseline(HashingEmbedder(), SelectionRule(relative=0.9, min_score=0.1))
    utt, img = b.retrieve(_dialogue(), "tax forms")
    assert utt == [2, 4] and img == []
    us, is_ = b.score(_dialogue(), "tax forms")
    assert is_[1] == us[3]  # captionless image takes its host's score
    assert isinstance(EmbeddingBaseline().embedder, MiniLMCaptionEmbedder)  # default, loaded lazily


def test_selection_rule():
    rule = SelectionRule(relative=0.5, min_score=0.1, top_k=2)
    assert rule.select(np.array([0.9, 0.5, 0.6, 0.05]), np.array([0.7])) == ([0, 2], [0])
    assert rule.select(np.array([0.05]), np.array([])) == ([], [])


def test_tune_rule_improves_dev_f1():
    d = _dialogue()
    dev = [DevExample(d, "tax forms", Answer([2, 4], [])), DevExample(d, "lake", Answer([0, 1], [0]))]
    b = BM25Baseline(SelectionRule(relative=0.99))
    rule, f1 = tune_rule(b, dev, relative=(0.99, 0.1), top_k=(None,))
    assert b.rule is rule and rule.relative == 0.1
    assert f1 > 0
