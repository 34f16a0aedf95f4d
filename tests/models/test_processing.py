import torch
from f2rvlm.core import protocol
from f2rvlm.models.processing_f2rvlm import IGNORE_INDEX


def test_processor_has_no_video_processor_and_needs_no_torchvision(tiny_model_and_processor):
    import importlib.util

    _, processor = tiny_model_and_processor
    assert importlib.util.find_spec("torchvision") is None
    assert not hasattr(processor, "video_processor")
    assert type(processor.image_processor).__name__ == "Qwen2VLImageProcessorPil"


def test_build_inputs_left_pads_and_finds_scoring_positions(tiny_model_and_processor, image_dialogue):
    _, processor = tiny_model_and_processor
    short = image_dialogue.window(0, 1)[0]
    batch = processor.build_inputs([(image_dialogue, "lake"), (short, "lake")], return_relevance=True)
    ids, positions = batch["input_ids"], batch["relevance_positions"]
    assert batch["attention_mask"][1, 0] == 0 and batch["attention_mask"][1, -1] == 1  # left padding
    assert batch["relevance_targets"][0] == [("utterance", i) for i in range(5)] + [("image", i) for i in range(3)]
    assert batch["relevance_targets"][1] == [("utterance", 0)]
    assert positions.shape == (2, 8) and (positions[1, 1:] == -1).all()
    tokenizer = processor.tokenizer
    vision_end = tokenizer.convert_tokens_to_ids("<|vision_end|>")
    # utterance lines end right before "\n": the next token starts the next line (or the template tail)
    for k in (0, 2, 4):
        pos = int(positions[0, k])
        assert tokenizer.decode(ids[0, pos + 1]).startswith("\n")
    assert tokenizer.decode(ids[0, int(positions[0, 0])]).endswith("y")  # "...last sunday"
    assert (ids[0, positions[0, 5:]] == vision_end).all()
    assert ids[0, positions[0, 1]] == vision_end and ids[0, positions[0, 3]] == vision_end  # lines ending in images
    # image tokens per image match the image processor
    assert int((ids[0] == processor.image_token_id).sum()) == int(
        (batch["image_grid_thw"][:3].prod(-1) // 4).sum())
    assert torch.equal(batch["mm_token_type_ids"][0].bool(), ids[0] == processor.image_token_id)


def test_collator_labels_answer_only_and_head_targets(tiny_model_and_processor, dataset_row):
    _, processor = tiny_model_and_processor
    collator = processor.sft_collator(template="en", relevance=True, topics=["trip", "plans", "food"])
    batch = collator([dataset_row, dataset_row])
    labels = batch["labels"][0]
    learned = labels[labels != IGNORE_INDEX]
    assert processor.tokenizer.decode(learned) == dataset_row["solution"] + "<|im_end|>"
    assert batch["relevance_labels"][0].tolist() == [1, 1, 1, 0, 0, 1, 1, 0]
    assert batch["topic_labels"][0].tolist() == [0, 0, 0, 0, 1, IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX]
    assert batch["attention_mask"][0, -1] == 1  # training batches are right padded


def test_parse_answer_delegates_to_protocol(tiny_model_and_processor):
    _, processor = tiny_model_and_processor
    text = protocol.render_answer([1, 2], [])
    assert processor.parse_answer(text) == protocol.parse_answer(text)
