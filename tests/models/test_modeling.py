import os

import pytest
import torch
from f2rvlm.models.tiny import build_tiny


def _inputs(processor, dialogue, row=None, collator=None):
    if collator is not None:
        return collator([row])
    batch = processor.build_inputs([(dialogue, "lake")], return_relevance=True)
    batch.pop("relevance_targets")
    return dict(batch)


def test_forward_heads_and_losses(tiny_model_and_processor, dataset_row):
    model, processor = tiny_model_and_processor
    batch = processor.sft_collator(relevance=True, topics=["trip", "plans", "food"])([dataset_row])
    out = model(**batch)
    assert out.logits.shape[:2] == batch["input_ids"].shape
    assert out.relevance_logits.shape == batch["relevance_positions"].shape
    assert out.topic_logits.shape == (*batch["relevance_positions"].shape, 3)
    expected = out.lm_loss + out.relevance_loss + out.topic_loss
    assert torch.allclose(out.loss, expected)
    # standard kwargs only (what TRL SFT/GRPO pass): plain LM loss, no head outputs
    standard = {k: v for k, v in batch.items() if not k.startswith(("relevance", "topic"))}
    plain = model(**standard)
    assert torch.allclose(plain.loss, out.lm_loss) and plain.relevance_logits is None


def test_answer_only_logits_gives_the_same_loss(dataset_row):
    model, processor = build_tiny("qwen2_vl", "test", seed=1)
    batch = processor.sft_collator()([dataset_row])
    full = model(**batch).loss
    model.config.answer_only_logits = True
    sparse = model(**batch)
    assert sparse.logits is None and torch.allclose(full, sparse.loss, atol=1e-5)


def test_head_errors(tiny_model_and_processor, dataset_row):
    model, processor = build_tiny("qwen2_vl", "test")
    batch = processor.sft_collator(relevance=True)([dataset_row])
    with pytest.raises(ValueError, match="no relevance head"):
        model(**batch)


def test_save_load_round_trip_is_exact(tiny_model_and_processor, tiny_model_folder, image_dialogue):
    from f2rvlm.models.hub import load_model

    model, processor = tiny_model_and_processor
    files = os.listdir(tiny_model_folder)
    assert "model.safetensors" in files
    assert not [f for f in files if f.endswith((".bin", ".pt", ".pth", ".pkl"))]
    loaded, loaded_processor = load_model(tiny_model_folder)
    assert loaded.relevance_head is not None and loaded.topic_head is not None
    batch = _inputs(processor, image_dialogue)
    a, b = model(**batch), loaded(**batch)
    assert torch.equal(a.logits, b.logits)
    assert torch.equal(a.relevance_logits, b.relevance_logits) and torch.equal(a.topic_logits, b.topic_logits)
    again = loaded_processor.build_inputs([(image_dialogue, "lake")])
    assert torch.equal(again["input_ids"], batch["input_ids"])


def test_released_like_checkpoint_without_head_loads(tmp_path):
    from f2rvlm.models.hub import load_model, save_f2rvlm_folder

    model, processor = build_tiny("qwen2_vl", "test", seed=2)
    path = save_f2rvlm_folder(model, processor, str(tmp_path / "released"))
    loaded, _ = load_model(path)
    assert loaded.relevance_head is None and loaded.topic_head is None
    from safetensors import safe_open

    with safe_open(os.path.join(path, "model.safetensors"), "pt") as f:
        assert not [k for k in f.keys() if "relevance" in k or "topic" in k]
