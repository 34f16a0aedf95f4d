"""Model cards through `huggingface_hub.ModelCardData`: `base_model` and `datasets` as Hub ids, no
path of the training machine (issue #10)."""

from __future__ import annotations

import json

from f2rvlm.training.card import hub_id, render_model_card
from huggingface_hub import ModelCard

METRICS = {"joint_metrics": {"global_f1": 0.75, "global_mcc": 0.7}, "sentence_metrics": {"global_f1": 0.5}}


def test_card_metadata_is_hub_card_data_without_machine_paths(tmp_path):
    base = tmp_path / "checkpoints" / "Qwen2-VL-7B-Instruct"
    base.mkdir(parents=True)
    (base / "config.json").write_text(json.dumps({"_name_or_path": "Qwen/Qwen2-VL-7B-Instruct"}))
    recipe = {
        "sft": {"ModelArguments": {"model_name_or_path": str(base)},
                "ScriptArguments": {"dataset_path": "f2rvlm/mldr"},
                "SFTConfig": {"output_dir": str(tmp_path / "outputs" / "sft")}},
        "grpo": {"ModelArguments": {"model_name_or_path": str(tmp_path / "outputs" / "sft")},
                 "ScriptArguments": {"dataset_path": str(tmp_path / "local-data")}},
    }
    text = render_model_card(recipe, {"validation": {"generate": METRICS}}, name="F2RVLM-7B")
    card = ModelCard(text)
    assert card.data.base_model == "Qwen/Qwen2-VL-7B-Instruct" and card.data.datasets == ["f2rvlm/mldr"]
    index = card.data.to_dict()["model-index"]
    assert index[0]["name"] == "F2RVLM-7B" and index[0]["results"][0]["dataset"]["split"] == "validation"
    assert str(tmp_path) not in text and "<local>/sft" in text


def test_hub_id():
    assert hub_id("Qwen/Qwen2-VL-7B-Instruct") == "Qwen/Qwen2-VL-7B-Instruct"
    assert hub_id("tiny:qwen2_vl:test") is None and hub_id("/no/such/folder") is None and hub_id(None) is None
