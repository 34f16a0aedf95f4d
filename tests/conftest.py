"""Shared fixtures: one tiny F2RVLM model/processor per session (cheap: ~1M parameters)."""

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_model_and_processor():
    """(model, processor): tiny Qwen2-VL F2RVLM with a relevance head and a 3-way topic head.

    Shared by the whole session: do not train it or change its config in place.
    """
    from f2rvlm.models.tiny import build_tiny

    return build_tiny("qwen2_vl", "test", seed=0, relevance_head=True, num_topics=3)


@pytest.fixture(scope="session")
def tiny_model_folder(tmp_path_factory, tiny_model_and_processor):
    """An exported F2RVLM folder of the session's tiny model (weights, code files, auto_map)."""
    from f2rvlm.models.hub import save_f2rvlm_folder

    model, processor = tiny_model_and_processor
    return save_f2rvlm_folder(model, processor, str(tmp_path_factory.mktemp("tiny") / "model"))


def make_image(color, size=(60, 40)):
    from PIL import Image

    return Image.new("RGB", size, color)


@pytest.fixture(scope="session")
def image_dialogue():
    """Five turns, three images (two on turn 1, one on turn 3), a multi-line utterance."""
    from f2rvlm.core.dialogue import Dialogue, DialogueImage, Utterance

    return Dialogue([
        Utterance("user1", "we went to the lake\nlast sunday"),
        Utterance("user2", "look at these", [DialogueImage(make_image("red")), DialogueImage(make_image("blue", (90, 50)))]),
        Utterance("user1", "so calm"),
        Utterance("user2", "", [DialogueImage(make_image("green"))]),
        Utterance("user1", "see you tomorrow"),
    ], dialogue_id="d0")


@pytest.fixture(scope="session")
def dataset_row(image_dialogue):
    """A dataset row (docs/data.md schema) built from `image_dialogue`."""
    from f2rvlm.core.protocol import render_answer

    row = image_dialogue.to_row()
    topics = ["trip", "trip", "trip", "trip", "plans"]
    for utterance, topic in zip(row["utterances"], topics):
        utterance["topic"] = topic
    row.update(query="photos of the lake", gold_utterance_ids=[0, 1, 2], gold_image_ids=[0, 1],
               solution=render_answer([0, 1, 2], [0, 1]), language="en", topics=["trip", "plans"])
    return row
