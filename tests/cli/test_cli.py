"""The `f2rvlm` command: user errors are one `error:` line with exit code 2; commands work end to end."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import make_image
from f2rvlm.cli import main


@pytest.fixture
def dialogue_file(tmp_path):
    image = tmp_path / "lake.png"
    make_image((20, 90, 200)).save(image)
    path = tmp_path / "chat.json"
    path.write_text(json.dumps({"utterances": [
        {"speaker": "user1", "text": "We went to the lake"},
        {"speaker": "user2", "text": "Photos?", "images": ["lake.png"]},
        {"speaker": "user1", "text": "My car broke down"},
    ]}))
    return path


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in "\n".join(err), err
    return errors[0]


def test_retrieve_prints_fragment_and_json(tiny_model_folder, dialogue_file, capsys):
    assert main(["retrieve", "--model", str(tiny_model_folder), "--dialogue", str(dialogue_file),
                 "--query", "the lake trip", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) >= {"utterance_ids", "image_ids", "spans", "text"}
    assert all(0 <= i < 3 for i in out["utterance_ids"]) and all(i == 0 for i in out["image_ids"])


@pytest.mark.parametrize("content,message", [
    ("{broken", "not valid JSON"),
    ('{"utterances": [{"speaker": "a", "text": "x", "images": ["missing.png"]}]}', "missing.png"),
    ('{"utterances": []}', "no utterances"),
])
def test_retrieve_bad_dialogue_is_one_error_line(tiny_model_folder, tmp_path, capsys, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    assert main(["retrieve", "--model", str(tiny_model_folder), "--dialogue", str(path), "--query", "q"]) == 2
    assert message in _one_error_line(capsys)


def test_folder_without_weights_is_one_error_line(tmp_path, dialogue_file, tiny_model_folder, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["retrieve", "--model", str(empty), "--dialogue", str(dialogue_file), "--query", "q"]) == 2
    assert "no config.json" in _one_error_line(capsys)
    no_weights = tmp_path / "no_weights"
    no_weights.mkdir()
    (no_weights / "config.json").write_text((Path(tiny_model_folder) / "config.json").read_text())
    assert main(["retrieve", "--model", str(no_weights), "--dialogue", str(dialogue_file), "--query", "q"]) == 2
    assert "weights" in _one_error_line(capsys)


def test_eval_gold_out_of_range_is_one_error_line(tmp_path, capsys):
    path = tmp_path / "preds.jsonl"
    path.write_text(json.dumps({"prediction": {"utterance_ids": [1], "image_ids": []}, "gold_utterance_ids": [7],
                                "gold_image_ids": [], "num_turns": 5, "num_images": 0}) + "\n")
    assert main(["eval", "--predictions", str(path)]) == 2
    assert "out of range" in _one_error_line(capsys)


def test_tiny_then_export_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "tiny"
    assert main(["tiny", "--family", "qwen2_vl", "--out", str(out)]) == 0
    assert (out / "model.safetensors").exists() and not list(out.glob("*.bin"))
    exported = tmp_path / "exported"
    assert main(["export", "--model", str(out), "--out", str(exported)]) == 0
    assert (exported / "modeling_f2rvlm.py").exists() and (exported / "protocol.py").exists()
    capsys.readouterr()
    assert main(["export", "--model", str(out), "--out", str(exported)]) == 2
    assert "exists" in _one_error_line(capsys)


def test_console_script_exit_code_without_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "f2rvlm.cli", "retrieve", "--model", str(tmp_path),
                           "--dialogue", str(tmp_path / "nope.json"), "--query", "q"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error:") and "Traceback" not in proc.stderr
