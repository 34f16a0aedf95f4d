import pytest
from conftest import make_image
from f2rvlm.core import protocol
from f2rvlm.core.dialogue import Dialogue, DialogueImage, Utterance
from f2rvlm.models.tiny import build_tiny


def _long_dialogue(turns=30):
    colors = ["red", "green", "blue", "yellow"]
    return Dialogue([
        Utterance(f"user{1 + i % 2}", f"message number {i} about the lake",
                  [DialogueImage(make_image(colors[i % 4]))] if i % 7 == 3 else [])
        for i in range(turns)
    ])


@pytest.mark.parametrize("seed", range(20))
def test_constrained_decoding_of_random_model_is_always_valid(seed, image_dialogue):
    model, processor = build_tiny("qwen2_vl", "test", seed=seed)
    result = model.retrieve(image_dialogue, "the lake photos", processor=processor)
    answer = protocol.parse_answer(result.text, "strict")
    assert answer is not None, result.text
    assert answer.utterance_ids == sorted(set(answer.utterance_ids))
    assert set(answer.utterance_ids) <= set(range(5)) and set(answer.image_ids) <= set(range(3))
    assert result.utterance_ids == answer.utterance_ids and result.image_ids == answer.image_ids
    assert result.spans == protocol.contiguous_spans(result.utterance_ids)


def test_retrieve_accepts_plain_data_and_is_deterministic(tiny_model_and_processor):
    model, processor = tiny_model_and_processor
    plain = {"utterances": [{"speaker": "user1", "text": "hi"}, {"speaker": "user2", "text": "hello"}]}
    first = model.retrieve(plain, "greeting", processor=processor)
    assert first.to_dict() == model.retrieve(plain, "greeting", processor=processor).to_dict()
    assert first.mode == "generate" and first.num_windows == 1 and first.scores is None


def test_unconstrained_generation_parses_leniently(tiny_model_and_processor, image_dialogue):
    model, processor = tiny_model_and_processor
    result = model.retrieve(image_dialogue, "lake", processor=processor, constrained=False, max_new_tokens=8)
    assert set(result.utterance_ids) <= set(range(5))


def test_batched_equals_one_by_one(tiny_model_and_processor, image_dialogue):
    model, processor = tiny_model_and_processor
    pairs = [(image_dialogue, "lake photos"), (image_dialogue.window(0, 2)[0], "sunday"),
             ({"utterances": [{"speaker": "a", "text": "x"}]}, "q"), (image_dialogue.window(1, 4)[0], "calm")]
    for mode in ("generate", "tagging", "guided"):
        batched = model.retrieve_batch(pairs, processor, batch_size=3, mode=mode)
        single = [model.retrieve(d, q, processor=processor, mode=mode) for d, q in pairs]
        assert [r.utterance_ids for r in batched] == [r.utterance_ids for r in single], mode
        assert [r.image_ids for r in batched] == [r.image_ids for r in single], mode
        if mode != "generate":
            for b, s in zip(batched, single):
                for kind in ("utterances", "images"):
                    assert b.scores[kind].keys() == s.scores[kind].keys()
                    assert all(abs(b.scores[kind][i] - s.scores[kind][i]) < 1e-4 for i in b.scores[kind])


def test_tagging_and_guided_modes(tiny_model_and_processor, image_dialogue):
    model, processor = tiny_model_and_processor
    everything = model.retrieve(image_dialogue, "lake", processor=processor, mode="tagging", threshold=1e-6)
    assert everything.utterance_ids == list(range(5)) and everything.image_ids == [0, 1, 2]
    nothing = model.retrieve(image_dialogue, "lake", processor=processor, mode="guided", threshold=1 - 1e-6)
    assert nothing.utterance_ids == [] and nothing.image_ids == []
    assert set(nothing.scores["utterances"]) == set(range(5))


def test_head_modes_need_a_head(image_dialogue):
    model, processor = build_tiny("qwen2_vl", "test")
    with pytest.raises(ValueError, match="needs a relevance head"):
        model.retrieve(image_dialogue, "lake", processor=processor, mode="tagging")
    with pytest.raises(ValueError, match="unknown retrieval mode"):
        model.retrieve(image_dialogue, "lake", processor=processor, mode="beam")


def test_long_dialogues_are_windowed_and_ids_map_back():
    model, processor = build_tiny("qwen2_vl", "test", relevance_head=True, max_context_tokens=400)
    dialogue = _long_dialogue(30)
    assert processor.count_prompt_tokens(dialogue, "lake", "zh") > 400
    result = model.retrieve(dialogue, "lake", processor=processor, mode="tagging", threshold=1e-6)
    assert result.num_windows > 1
    assert result.utterance_ids == list(range(30)) and result.image_ids == list(range(dialogue.num_images))
    # an image's window score equals its score when its window is run alone
    window, _ = dialogue.window(10, 20)
    alone = model.retrieve(window, "lake", processor=processor, mode="tagging", threshold=1e-6)
    assert alone.utterance_ids == list(range(10, 20))
    generated = model.retrieve(dialogue, "lake", processor=processor)
    assert generated.num_windows == result.num_windows
    assert set(generated.utterance_ids) <= set(range(30)) and set(generated.image_ids) <= set(range(dialogue.num_images))


def test_demo_runs_on_a_model_folder(tiny_model_folder, capsys):
    from f2rvlm.cli.demo import main

    assert main(["--model", tiny_model_folder]) == 0
    assert "answer: <|utt_ids_start|>" in capsys.readouterr().out


@pytest.mark.parametrize("turns", [1600, 3000])
def test_long_chats_are_cut_into_full_windows(tiny_model_and_processor, turns):
    """Answer room is reserved per window: a long chat becomes a few full windows (not one-turn
    windows, not an error), and every turn is read."""
    from f2rvlm.core.dialogue import Dialogue, Utterance
    from f2rvlm.models import retrieval_f2rvlm

    model, processor = tiny_model_and_processor
    dialogue = Dialogue([Utterance(f"user{i % 2 + 1}", f"message {i} about the flat and the lake") for i in range(turns)])
    before = model.config.max_context_tokens
    model.config.max_context_tokens = 4096
    try:
        windows = retrieval_f2rvlm._plan_windows(model, dialogue, "the flat we viewed", processor, "zh")
        result = model.retrieve(dialogue, "the flat we viewed", processor=processor, mode="tagging")
    finally:
        model.config.max_context_tokens = before
    assert len(windows) == result.num_windows
    assert all(length <= 4096 for _, _, length in windows)
    assert min(len(w) for w, _, _ in windows[:-1]) > 50  # full windows, not one turn each
    assert len(windows) <= turns // 50
    covered = {i for w, _, _ in windows for i in w.utterance_ids}
    assert covered == set(range(turns))
    assert set(result.utterance_ids) <= covered
