"""`f2rvlm eval`: text and JSON reports, per-sample flag, errors as one line with exit code 2."""

import json

from f2rvlm.cli import main
from f2rvlm.core.dialogue import Dialogue, Utterance
from f2rvlm.core.protocol import render_answer, render_prompt


def _write(path, responses):
    prompt = render_prompt(Dialogue([Utterance("user1", f"t{i}") for i in range(40)]), "q")
    with open(path, "w") as f:
        f.writelines(json.dumps({"messages": [{"role": "user", "content": prompt}],
                                "labels": render_answer([1, 2], []), "response": response}) + "\n" for response in responses)


def test_eval_json_is_the_released_structure(tmp_path, capsys):
    path = tmp_path / "p.jsonl"
    _write(path, [render_answer([1, 2], []), "garbage"])
    assert main(["eval", "--predictions", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert list(out) == ["sentence_metrics", "image_metrics", "joint_metrics", "num_samples"]
    assert out["sentence_metrics"] == {"global_precision": 1.0, "global_recall": 0.5,
                                       "global_f1": 0.6667, "global_mcc": 0.698}  # tp=2 fp=0 fn=2 tn=76
    assert out["num_samples"] == 2


def test_eval_text_and_per_sample(tmp_path, capsys):
    path = tmp_path / "p.jsonl"
    _write(path, [render_answer([1, 2], [])])
    assert main(["eval", "--predictions", str(path), "--per-sample"]) == 0
    out = capsys.readouterr().out
    assert "joint" in out and "per-sample" in out and "35-65" in out


def test_eval_bad_line_is_one_error_line(tmp_path, capsys):
    path = tmp_path / "p.jsonl"
    _write(path, ["x"])
    with open(path, "a") as f:
        f.write("{broken\n")
    assert main(["eval", "--predictions", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and str(path) in err and "line 2" in err and "\n" not in err
    assert main(["eval", "--predictions", str(tmp_path / "missing.jsonl")]) == 2
