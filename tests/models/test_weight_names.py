"""The released checkpoint's LoRA key names map onto ours: a renamed layout must never silently
re-initialise (or skip) weights."""

import pytest
import torch
from f2rvlm.models.hub import convert_released, load_model, released_adapter_key

pytest.importorskip("peft")


@pytest.mark.parametrize("released,ours", [
    ("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight",
     "base_model.model.model.language_model.layers.0.self_attn.q_proj.lora_A.weight"),
    ("base_model.model.model.layers.27.mlp.down_proj.lora_B.weight",
     "base_model.model.model.language_model.layers.27.mlp.down_proj.lora_B.weight"),
    ("base_model.model.model.embed_tokens.weight", "base_model.model.model.language_model.embed_tokens.weight"),
    ("base_model.model.visual.blocks.0.attn.qkv.lora_A.weight", "base_model.model.model.visual.blocks.0.attn.qkv.lora_A.weight"),
    ("base_model.model.lm_head.weight", "base_model.model.lm_head.weight"),
    # already in our layout: unchanged
    ("base_model.model.model.language_model.layers.1.self_attn.v_proj.lora_B.weight",
     "base_model.model.model.language_model.layers.1.self_attn.v_proj.lora_B.weight"),
])
def test_released_adapter_key_names(released, ours):
    assert released_adapter_key(released) == ours


def test_adapter_with_released_key_names_merges_exactly(tmp_path):
    from helpers import stock_base_with_lora
    from safetensors.torch import load_file, save_file

    merged = stock_base_with_lora(tmp_path)
    weights = tmp_path / "adapter" / "adapter_model.safetensors"
    state = load_file(weights)
    released = {k.replace("model.language_model.", "model."): v for k, v in state.items()}
    assert set(released) != set(state)  # the file now carries the released (legacy) names
    save_file(released, weights)

    model, loaded = load_model(convert_released(str(tmp_path / "base"), str(tmp_path / "adapter"),
                                                str(tmp_path / "f2rvlm")))
    ids = loaded.tokenizer("hello lake", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert torch.allclose(model(input_ids=ids).logits, merged(input_ids=ids).logits, atol=1e-5)
