"""The Space says which model answers, uses the mode the model declares, and takes the stronger
model only where a GPU is present."""

import pytest

pytest.importorskip("gradio")
from f2rvlm_space import engine


def test_gpu_model_only_with_a_gpu(monkeypatch, tmp_path):
    monkeypatch.delenv("F2RVLM_MODEL", raising=False)
    monkeypatch.setenv("F2RVLM_GPU_MODEL", "org/F2RVLM-Qwen2-VL-7B")
    monkeypatch.setattr(engine, "pick_device", lambda: "cpu")
    assert engine.resolve_default_model() != "org/F2RVLM-Qwen2-VL-7B"
    monkeypatch.setattr(engine, "pick_device", lambda: "cuda")
    assert engine.resolve_default_model() == "org/F2RVLM-Qwen2-VL-7B"
    monkeypatch.setenv("F2RVLM_MODEL", str(tmp_path))
    assert engine.resolve_default_model() == str(tmp_path)  # an explicit choice wins


def test_description_and_declared_mode(tiny_model_folder):
    retriever = engine.Retriever(tiny_model_folder, device="cpu")
    assert "F2RVLM" in retriever.description and "demo VLM trained on a CPU" in retriever.description
    assert retriever.normalise_methods([]) == [retriever.default_method]
    assert retriever.default_method == retriever.model.config.default_retrieval_mode
