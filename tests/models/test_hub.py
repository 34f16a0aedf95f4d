"""The three loading routes, export safety, load errors and the released-adapter conversion."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap

import f2rvlm
import pytest
import torch
from f2rvlm.models.hub import ModelFolderError, convert_released, export_model, load_model

MODELING_DIR = os.path.dirname(os.path.dirname(os.path.abspath(f2rvlm.__file__)))

# Runs in a fresh interpreter that cannot import f2rvlm: only the folder's remote code is used.
REMOTE_SCRIPT = textwrap.dedent("""
    import sys
    sys.path = [p for p in sys.path if p and not p.startswith({modeling!r})]
    try:
        import f2rvlm
    except ImportError:
        pass
    else:
        raise SystemExit("f2rvlm is importable in the remote-code interpreter")
    import torch
    torch.set_num_threads(1)
    from transformers import AutoConfig, AutoModel, AutoModelForImageTextToText, AutoProcessor
    source = sys.argv[1]
    config = AutoConfig.from_pretrained(source, trust_remote_code=True)
    model = AutoModelForImageTextToText.from_pretrained(source, trust_remote_code=True)
    also = AutoModel.from_pretrained(source, trust_remote_code=True)
    processor = AutoProcessor.from_pretrained(source, trust_remote_code=True)
    assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
    assert type(also) is type(model) and model.relevance_head is not None
    result = model.retrieve({{"utterances": [{{"speaker": "user1", "text": "the lake"}},
                                            {{"speaker": "user2", "text": "so calm"}}]}}, "lake", processor=processor)
    print("RESULT", type(config).__name__, type(processor).__name__, result.utterance_ids, result.text)
""")


def _run_remote(source, hf_home):
    env = {**os.environ, "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    script = REMOTE_SCRIPT.format(modeling=MODELING_DIR)
    proc = subprocess.run([sys.executable, "-I", "-c", script, source], env=env, capture_output=True, text=True,
                          timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [l for l in proc.stdout.splitlines() if l.startswith("RESULT")][0]
    assert "F2RVLMQwen2VLConfig F2RVLMProcessor" in line
    return line


def test_route_a_installed_package_registered_with_auto_classes(tiny_model_folder, tiny_model_and_processor):
    from transformers import AutoConfig, AutoModel, AutoModelForImageTextToText, AutoProcessor

    f2rvlm.register()
    config = AutoConfig.from_pretrained(tiny_model_folder)
    model = AutoModelForImageTextToText.from_pretrained(tiny_model_folder)
    processor = AutoProcessor.from_pretrained(tiny_model_folder)
    assert type(config) is f2rvlm.F2RVLMQwen2VLConfig
    assert type(model) is f2rvlm.F2RVLMQwen2VLForConditionalGeneration
    assert type(AutoModel.from_pretrained(tiny_model_folder)) is type(model)
    assert type(processor) is f2rvlm.F2RVLMProcessor
    auto_map = json.load(open(os.path.join(tiny_model_folder, "config.json")))["auto_map"]
    assert set(auto_map) == {"AutoConfig", "AutoModel", "AutoModelForImageTextToText"}
    processor_map = json.load(open(os.path.join(tiny_model_folder, "processor_config.json")))["auto_map"]
    assert processor_map == {"AutoProcessor": "processing_f2rvlm.F2RVLMProcessor"}


def test_route_b_exported_folder_with_remote_code_in_fresh_interpreter(tiny_model_folder, tmp_path):
    for name in ("configuration_f2rvlm.py", "modeling_f2rvlm.py", "processing_f2rvlm.py", "generation_f2rvlm.py",
                 "protocol.py", "dialogue.py"):
        assert os.path.isfile(os.path.join(tiny_model_folder, name))
    _run_remote(tiny_model_folder, tmp_path / "hf")


def _place_in_hf_cache(folder, hf_home, repo_id):
    repo = hf_home / "hub" / ("models--" + repo_id.replace("/", "--"))
    revision = "0" * 40
    snapshot = repo / "snapshots" / revision
    (repo / "blobs").mkdir(parents=True)
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    for name in os.listdir(folder):
        data = open(os.path.join(folder, name), "rb").read()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        os.symlink(os.path.relpath(blob, snapshot), snapshot / name)


def test_route_c_hf_cache_layout_by_repo_id_offline(tiny_model_folder, tmp_path, monkeypatch):
    hf_home = tmp_path / "hf"
    _place_in_hf_cache(tiny_model_folder, hf_home, "org/tiny-f2rvlm")
    _run_remote("org/tiny-f2rvlm", hf_home)


def test_export_is_atomic_and_refuses_to_overwrite(tiny_model_folder, tmp_path):
    out = tmp_path / "export"
    export_model(tiny_model_folder, str(out))
    assert sorted(os.listdir(out)) == sorted(os.listdir(tiny_model_folder))
    with pytest.raises(FileExistsError, match="overwrite"):
        export_model(tiny_model_folder, str(out))
    export_model(tiny_model_folder, str(out), overwrite=True)
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".f2rvlm")]


def test_load_model_errors_are_one_line(tmp_path, tiny_model_folder):
    with pytest.raises(ModelFolderError, match="no config.json"):
        load_model(str(tmp_path))
    no_weights = tmp_path / "no_weights"
    shutil.copytree(tiny_model_folder, no_weights)
    os.remove(no_weights / "model.safetensors")
    with pytest.raises(ModelFolderError, match="no .safetensors"):
        load_model(str(no_weights))
    stock = tmp_path / "stock"
    stock.mkdir()
    (stock / "config.json").write_text(json.dumps({"model_type": "qwen2_vl"}))
    with pytest.raises(ModelFolderError, match="not an F2RVLM"):
        load_model(str(stock))


def test_convert_released_merges_a_lora_adapter(tmp_path):
    from f2rvlm.models.tiny import build_processor
    from helpers import stock_base_with_lora

    processor = build_processor("qwen2_vl")
    merged = stock_base_with_lora(tmp_path)
    base_dir, adapter_dir = tmp_path / "base", tmp_path / "adapter"

    assert processor.image_processor.size["longest_edge"] != 602112  # the base's own budget
    out = convert_released(str(base_dir), str(adapter_dir), str(tmp_path / "f2rvlm"))
    with open(os.path.join(out, "processor_config.json"), encoding="utf-8") as f:
        assert json.load(f)["image_processor"]["size"]["longest_edge"] == 602112  # released MAX_PIXELS
    model, loaded_processor = load_model(out)
    assert loaded_processor.image_processor.size["longest_edge"] == 602112
    assert type(model).__name__ == "F2RVLMQwen2VLForConditionalGeneration" and model.relevance_head is None
    ids = loaded_processor.tokenizer("hello lake", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert torch.allclose(model(input_ids=ids).logits, merged(input_ids=ids).logits, atol=1e-5)
