import time

import pytest
import torch
from f2rvlm.core import protocol
from f2rvlm.models.tiny import FAMILIES, build_tiny, build_tokenizer


def test_tokenizer_tags_digits_and_specials():
    tokenizer = build_tokenizer()
    assert 1000 < len(tokenizer) < 4000
    for tag in protocol.PROTOCOL_TAGS:  # single, NON-special tokens (TRL strips special ones)
        assert tokenizer.tokenize(tag) == [tag]
        assert tag not in tokenizer.all_special_tokens
    answer = protocol.render_answer([12, 305], [7])
    ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids, skip_special_tokens=True) == answer
    assert [t for t in tokenizer.tokenize("2024") if t.isdigit()] == ["2", "0", "2", "4"]
    for token in ("<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>",
                  "<|video_pad|>", "<|endoftext|>"):
        assert tokenizer.tokenize(token) == [token]
    assert tokenizer.decode(tokenizer("你好，湖边")["input_ids"]) == "你好，湖边"


@pytest.mark.parametrize("family", FAMILIES)
def test_build_tiny_is_fast_small_and_deterministic(family):
    start = time.perf_counter()
    model, processor = build_tiny(family, "test", seed=3)
    assert time.perf_counter() - start < 15
    assert sum(p.numel() for p in model.parameters()) < 2_000_000
    again, _ = build_tiny(family, "test", seed=3)
    other, _ = build_tiny(family, "test", seed=4)
    first = next(iter(model.state_dict().values()))
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    assert not all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), other.state_dict().values()))
    assert first.dtype == torch.float32
    patch = processor.image_processor.patch_size
    assert patch == (16 if family == "qwen3_vl" else 14)


def test_unknown_family_and_size():
    with pytest.raises(ValueError, match="family"):
        build_tiny("llava")
    with pytest.raises(ValueError, match="size"):
        build_tiny("qwen2_vl", "huge")
