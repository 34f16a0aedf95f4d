"""One registry of backbone families and retrieval modes, consulted everywhere."""

import pytest
from f2rvlm.models.registry_f2rvlm import (
    FAMILIES,
    RETRIEVAL_MODES,
    family_for_checkpoint,
    family_for_model_type,
    get_family,
    get_mode,
)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_family_has_its_classes_and_builds_tiny(family):
    from f2rvlm.models.configuration_f2rvlm import CONFIG_CLASSES
    from f2rvlm.models.modeling_f2rvlm import MODEL_CLASSES
    from f2rvlm.models.tiny import FAMILIES as TINY_FAMILIES

    assert CONFIG_CLASSES[family].model_type == FAMILIES[family].model_type
    assert MODEL_CLASSES[family].config_class is CONFIG_CLASSES[family]
    assert family in TINY_FAMILIES
    assert family_for_model_type(FAMILIES[family].model_type).name == family
    assert family_for_model_type(family).name == family


@pytest.mark.parametrize("name,family", [
    ("Qwen/Qwen2-VL-7B-Instruct", "qwen2_vl"), ("Qwen/Qwen2.5-VL-3B-Instruct", "qwen2_5_vl"),
    ("Qwen/Qwen3-VL-8B-Instruct", "qwen3_vl"), ("/ckpt/f2rvlm_qwen2_5_vl", "qwen2_5_vl"),
])
def test_family_for_checkpoint(name, family):
    assert family_for_checkpoint(name).name == family


def test_unknown_names_are_refused_with_the_known_ones():
    with pytest.raises(ValueError, match="qwen2_vl"):
        get_family("llava")
    with pytest.raises(ValueError, match="tagging"):
        get_mode("beam")
    with pytest.raises(ValueError, match="cannot tell"):
        family_for_checkpoint("meta-llama/Llama-3-8B")


def test_cli_and_config_consult_the_registry():
    from f2rvlm.cli import build_parser
    from f2rvlm.models.configuration_f2rvlm import F2RVLMQwen2VLConfig

    parser = build_parser()
    args = parser.parse_args(["tiny", "--family", "qwen3_vl", "--out", "x"])
    assert args.family == "qwen3_vl"
    for mode in RETRIEVAL_MODES:
        assert F2RVLMQwen2VLConfig(default_retrieval_mode=mode).default_retrieval_mode == mode
    with pytest.raises(ValueError, match="default_retrieval_mode"):
        F2RVLMQwen2VLConfig(default_retrieval_mode="beam")


def test_retrieve_uses_the_declared_mode(tiny_model_and_processor):
    model, processor = tiny_model_and_processor
    dialogue = {"utterances": [{"speaker": "user1", "text": "the lake"}, {"speaker": "user2", "text": "so calm"}]}
    before = model.config.default_retrieval_mode
    try:
        model.config.default_retrieval_mode = "tagging"
        assert model.retrieve(dialogue, "lake", processor=processor).mode == "tagging"
    finally:
        model.config.default_retrieval_mode = before
    assert model.retrieve(dialogue, "lake", processor=processor).mode == before
