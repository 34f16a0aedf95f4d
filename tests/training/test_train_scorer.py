"""recipes/train_scorer.py's selection of the scorer settings (no training: a tiny scored model)."""

import pytest
from helpers import load_recipe


@pytest.fixture(scope="module")
def selection_inputs():
    from f2rvlm.core.dialogue import Dialogue
    from f2rvlm.data.schema import make_row
    from f2rvlm.models.tiny import build_tiny

    model, processor = build_tiny("qwen2_vl", "test", relevance_head=True, text_scorer=True)
    dialogue = Dialogue.from_dict({"utterances": [
        {"speaker": "Caroline", "text": "we viewed the flat on Monday"},
        {"speaker": "Melanie", "text": "hey Caroline, how was the cake?"},
        {"speaker": "Caroline", "text": "the cake was great"}]})
    real = [make_row(dialogue, "When did Caroline view the flat?", [0], [], language="en", source="self-supervised"),
            make_row(dialogue, "What did Melanie ask about?", [1], [], language="en", source="self-supervised")]
    synthetic = [make_row(dialogue, "the cake", [2], [], language="en", source="synthetic")]
    return model, processor, synthetic, real


def test_selection_picks_the_best_mean_of_synthetic_and_real_rows(selection_inputs, capsys):
    import json

    scorer_recipe = load_recipe("train_scorer")
    model, processor, synthetic, real = selection_inputs
    chosen = scorer_recipe.select_settings(model, processor, synthetic, real)
    grid = json.loads(capsys.readouterr().out.split("selection ", 1)[1])["grid"]
    heads = 1 + len(scorer_recipe.HEAD_MARGINS) * len(scorer_recipe.HEAD_GATES)
    assert len(grid) == (len(scorer_recipe.SPEAKER_BOOSTS) * len(scorer_recipe.BM25_WEIGHTS) * len(scorer_recipe.MARGINS)
                         * len(scorer_recipe.MIN_SCORES) * heads)
    assert chosen["selection_real_utterance_f1"] + chosen["selection_synthetic_joint_f1"] == pytest.approx(
        max(cell["real"] + cell["synthetic"] for cell in grid))
    for key in ("text_scorer_speaker_boost", "text_scorer_bm25_weight", "text_scorer_margin", "text_scorer_min_score",
                "text_scorer_head_margin", "text_scorer_head_gate"):
        assert getattr(model.config, key) == chosen[key]
    # the cells differ: the grid is not a constant (the speaker boost moves the named speaker's turn)
    assert len({(cell["real"], cell["synthetic"]) for cell in grid}) > 1
