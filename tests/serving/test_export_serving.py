"""`f2rvlm export --for-serving`: a stock Qwen-VL folder (no custom code) with the same backbone
outputs, the processor settings carried over and the heads kept beside it."""

import json
import os

import pytest
import torch
import transformers
from f2rvlm.cli import main
from f2rvlm.models.hub import (
    SERVING_EXTRAS,
    STOCK_CLASSES,
    ModelFolderError,
    export_for_serving,
    load_model,
)
from f2rvlm.models.registry_f2rvlm import FAMILIES
from f2rvlm.models.tiny import save_tiny


@pytest.mark.parametrize("family", list(FAMILIES))
def test_serving_folder_is_the_stock_backbone(tmp_path, family):
    src = save_tiny(str(tmp_path / "f2rvlm"), family=family, relevance_head=True, num_topics=3)
    out = tmp_path / "serving"
    assert main(["export", "--model", src, "--out", str(out), "--for-serving"]) == 0

    files = sorted(os.listdir(out))
    assert not [f for f in files if f.endswith((".py", ".bin", ".pt"))]
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == family and "auto_map" not in config
    assert config["architectures"] == [STOCK_CLASSES[family][1]]
    assert not {"relevance_head", "prompt_template", "default_retrieval_mode"} & set(config)

    # transformers' own class, no remote code: every weight loads, same logits as the F2RVLM model
    stock, info = transformers.AutoModelForImageTextToText.from_pretrained(out, output_loading_info=True)
    assert type(stock).__name__ == STOCK_CLASSES[family][1]
    assert not info["missing_keys"] and not info["unexpected_keys"]
    model, processor = load_model(src)
    ids = processor.tokenizer("the lake photos", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert torch.equal(stock(input_ids=ids).logits, model(input_ids=ids).logits)

    tokenizer = transformers.AutoTokenizer.from_pretrained(out)
    assert tokenizer.chat_template == processor.chat_template
    assert tokenizer("<|utt_ids_start|>")["input_ids"] == processor.tokenizer("<|utt_ids_start|>")["input_ids"]
    image = json.loads((out / "preprocessor_config.json").read_text())
    assert image["max_pixels"] == processor.image_processor.size["longest_edge"]
    assert image["processor_class"].endswith("Processor") and "auto_map" not in image

    extras = out / SERVING_EXTRAS
    assert sorted(os.listdir(extras)) == ["config.json", "heads.safetensors"]
    from safetensors.torch import load_file

    heads = load_file(extras / "heads.safetensors")
    assert torch.equal(heads["relevance_head.weight"], model.relevance_head.weight)
    assert {k.split(".")[0] for k in heads} == {"relevance_head", "topic_head"}
    assert "does NOT use" in (out / "README.md").read_text()


def test_serving_folder_keeps_the_text_scorer(tmp_path):
    src = save_tiny(str(tmp_path / "f2rvlm"), text_scorer=True)
    out = export_for_serving(src, str(tmp_path / "serving"))
    extras = os.path.join(out, SERVING_EXTRAS)
    assert os.path.isfile(os.path.join(extras, "text_scorer", "tokenizer.json"))
    from safetensors import safe_open

    with safe_open(os.path.join(extras, "heads.safetensors"), "pt") as f:
        assert all(k.startswith("text_scorer.") for k in f.keys())  # noqa: SIM118


def test_export_for_serving_refuses_a_stock_folder(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "qwen2_vl"}))
    with pytest.raises(ModelFolderError, match="not an F2RVLM model folder"):
        export_for_serving(str(tmp_path), str(tmp_path / "out"))
