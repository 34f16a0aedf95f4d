"""The text scorer an F2RVLM checkpoint may carry: rendering, speaker handling, selection, the
retrieval modes that read it, and save/load (in process and as remote code)."""

import dataclasses
import os
import subprocess
import sys
import textwrap

import f2rvlm
import pytest
from f2rvlm.models.scorer_f2rvlm import ScorerSettings, named_speakers, select, strip_speaker_names, turn_text

DIALOGUE = {"utterances": [
    {"speaker": "Caroline", "text": "we viewed the flat on Monday"},
    {"speaker": "Melanie", "text": "hey Caroline, how was the cake?"},
    {"speaker": "Caroline", "text": "the cake was great"},
]}
QUERY = "When did Caroline view the flat?"


def test_turn_text_and_named_speakers():
    assert turn_text("Mel", "look", ["a dog on a beach", None]) == "Mel: look [photo: a dog on a beach]"
    assert turn_text("Mel", "", ["a dog"]) == "Mel: [photo: a dog]"
    assert named_speakers("What did Caroline's sister say?", ["Caroline Smith", "Melanie"]) == {"Caroline Smith"}
    assert named_speakers("what did they cook", ["Caroline", "Melanie"]) == set()
    assert strip_speaker_names("When did Caroline's  dog bark at Mel?", ["Caroline", "Mel"]) == "When did dog bark at ?"


def test_select_margin_and_floor():
    scores = {"utterances": {0: 0.9, 1: 0.86, 2: 0.2}, "images": {0: 0.88, 1: 0.1}}
    assert select(scores, ScorerSettings(margin=0.05)) == ([0, 1], [0])
    assert select(scores, ScorerSettings(margin=0.0)) == ([0], [])
    assert select(scores, ScorerSettings(min_score=0.95)) == ([], [])


@pytest.fixture(scope="module")
def scored_model():
    from f2rvlm.models.tiny import build_tiny

    return build_tiny("qwen2_vl", "test", text_scorer=True, text_scorer_speaker_boost=1.0,
                      text_scorer_margin=0.5, generate_shortlist=1)


def test_modes_read_the_scorer(scored_model):
    model, processor = scored_model
    tagged = model.retrieve(DIALOGUE, QUERY, processor=processor, mode="tagging")
    # the speaker boost (1.0) outweighs any cosine gap (< 0.5 margin would not): Caroline's turns win
    assert set(tagged.utterance_ids) <= {0, 2} and tagged.utterance_ids
    assert tagged.scores["utterances"][0] > tagged.scores["utterances"][1]
    guided = model.retrieve(DIALOGUE, QUERY, processor=processor, mode="guided")
    assert set(guided.utterance_ids) <= set(tagged.utterance_ids) and guided.utterance_ids
    generated = model.retrieve(DIALOGUE, QUERY, processor=processor, mode="generate")
    best = max(tagged.scores["utterances"], key=tagged.scores["utterances"].get)
    assert set(generated.utterance_ids) <= {best}  # the grammar admits the shortlist only


def test_scorer_needs_its_tokenizer(scored_model):
    from f2rvlm.models.tiny import build_processor

    model, _ = scored_model
    with pytest.raises(ValueError, match="scorer_tokenizer"):
        model.retrieve(DIALOGUE, QUERY, processor=build_processor("qwen2_vl"), mode="tagging")


REMOTE = textwrap.dedent("""
    import sys
    sys.path = [p for p in sys.path if p and not p.startswith({modeling!r})]
    from transformers import AutoModel, AutoProcessor
    model = AutoModel.from_pretrained(sys.argv[1], trust_remote_code=True)
    processor = AutoProcessor.from_pretrained(sys.argv[1], trust_remote_code=True)
    result = model.retrieve({dialogue!r}, {query!r}, processor=processor, mode="tagging")
    print("RESULT", type(model).__module__.split(".")[0], result.utterance_ids)
""")


def test_scorer_round_trips_in_process_and_as_remote_code(scored_model, tmp_path):
    from f2rvlm.models.hub import load_model, save_f2rvlm_folder

    model, processor = scored_model
    expected = model.retrieve(DIALOGUE, QUERY, processor=processor, mode="tagging")
    folder = save_f2rvlm_folder(model, processor, str(tmp_path / "scored"))
    assert os.path.isfile(os.path.join(folder, "text_scorer", "tokenizer.json"))
    loaded, loaded_processor = load_model(folder)
    again = loaded.retrieve(DIALOGUE, QUERY, processor=loaded_processor, mode="tagging")
    assert again.utterance_ids == expected.utterance_ids
    assert again.scores["utterances"] == pytest.approx(expected.scores["utterances"])
    modeling = os.path.dirname(os.path.dirname(os.path.abspath(f2rvlm.__file__)))
    script = REMOTE.format(modeling=modeling, dialogue=DIALOGUE, query=QUERY)
    proc = subprocess.run([sys.executable, "-I", "-c", script, folder], capture_output=True, text=True, timeout=240,
                          env={**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""})
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(l for l in proc.stdout.splitlines() if l.startswith("RESULT"))
    assert line == f"RESULT transformers_modules {expected.utterance_ids}"


def test_bm25_fusion_changes_the_ranking_towards_shared_words(scored_model):
    from f2rvlm.core.dialogue import Dialogue
    from f2rvlm.models.retrieval_f2rvlm import _scorer_settings

    model, processor = scored_model
    dialogue = Dialogue.from_dict({"utterances": [{"speaker": "a", "text": "zebra quilt"}, {"speaker": "b", "text": "hello"}]})
    settings = dataclasses.replace(_scorer_settings(model.config), bm25_weight=100.0, speaker_boost=0.0)
    scores = model.text_scorer.score_dialogue(dialogue, "zebra quilts", processor.scorer_tokenizer, settings)
    assert scores["utterances"][0] > scores["utterances"][1]  # BM25 (light stemming: quilts -> quilt) dominates
    assert -1.0 <= scores["similarity"] <= 1.0


def test_head_picks_join_only_where_the_scorer_does_not_veto():
    from f2rvlm.models.scorer_f2rvlm import select_with_head

    scores = {"utterances": {0: 0.9, 1: 0.7, 2: 0.1}, "images": {0: 0.75, 1: 0.0}, "similarity": 0.9}
    head = {"utterances": {0: 0.1, 1: 0.8, 2: 0.99}, "images": {0: 0.6, 1: 0.9}}
    rule = ScorerSettings(margin=0.0, head_margin=0.25)
    assert select_with_head(scores, head, 0.5, rule) == ([0, 1], [0])  # 2 and image 1: vetoed by the scorer
    assert select_with_head(scores, head, 0.95, rule) == ([0], [])  # the head's threshold applies
    assert select_with_head(scores, head, 0.5, dataclasses.replace(rule, head_margin=1.0)) == ([0, 1, 2], [0, 1])
    assert select_with_head(scores, head, 0.5, dataclasses.replace(rule, min_score=0.95)) == ([], [])


def test_head_margin_routes_tagging_and_generation_through_the_head():
    from f2rvlm.models.tiny import build_tiny

    model, processor = build_tiny("qwen2_vl", "test", relevance_head=True, text_scorer=True,
                                  text_scorer_speaker_boost=1.0)
    config = model.config
    saved = (config.text_scorer_head_margin, config.text_scorer_margin)
    try:
        config.text_scorer_margin = 0.0
        alone = model.retrieve(DIALOGUE, QUERY, processor=processor, mode="tagging")
        config.text_scorer_head_margin = 10.0  # veto nothing: the head's picks all join
        with_head = model.retrieve(DIALOGUE, QUERY, processor=processor, mode="tagging", threshold=0.01)
        assert set(alone.utterance_ids) < set(with_head.utterance_ids)
        assert with_head.scores == alone.scores  # the scorer's scores stay what the result reports
        generated = model.retrieve(DIALOGUE, QUERY, processor=processor, mode="generate", threshold=0.01)
        assert generated.utterance_ids and set(generated.utterance_ids) <= set(with_head.utterance_ids)
    finally:
        config.text_scorer_head_margin, config.text_scorer_margin = saved


def test_length_sorted_batches_and_the_chat_cache_change_no_score(scored_model):
    """Turns are embedded in length-sorted batches and once per chat: the scores equal one text at
    a time, and a second question on the chat runs the encoder on the query only."""
    import torch
    from f2rvlm.core.dialogue import Dialogue
    from f2rvlm.models.retrieval_f2rvlm import _scorer_settings
    from f2rvlm.models.scorer_f2rvlm import combine

    model, processor = scored_model
    scorer, tokenizer = model.text_scorer, processor.scorer_tokenizer
    texts = ["a", "a much longer turn about the flat we viewed on Monday with the agent", "the cake", "ok"] * 5
    batched = scorer.embed(texts, tokenizer, batch_size=4)
    one_by_one = torch.cat([scorer.embed([t], tokenizer) for t in texts])
    assert torch.allclose(batched, one_by_one, atol=1e-5)

    dialogue = Dialogue.from_dict(DIALOGUE)
    settings = _scorer_settings(model.config)
    scorer.clear_cache()
    cold = scorer.score_dialogue(dialogue, QUERY, tokenizer, settings)
    calls = []
    handle = scorer.encoder.register_forward_hook(lambda module, args, output: calls.append(output.last_hidden_state.shape[0]))
    try:
        warm = scorer.score_dialogue(dialogue, QUERY, tokenizer, settings)
    finally:
        handle.remove()
    assert calls == [1] and warm == cold  # the query alone went through the encoder
    parts = scorer.parts(dialogue, QUERY, tokenizer, settings)
    assert combine(parts, settings) == cold
    boosted = combine(parts, dataclasses.replace(settings, speaker_boost=settings.speaker_boost + 5.0))
    assert boosted["utterances"][0] - cold["utterances"][0] == pytest.approx(5.0)  # Caroline's turn
    assert boosted["utterances"][1] == pytest.approx(cold["utterances"][1])  # Melanie's turn
