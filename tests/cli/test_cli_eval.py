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
    assert main(["eval", "--predictions", str(path), "--json"]) == 0  # released: the line is skipped
    assert json.loads(capsys.readouterr().out)["num_samples"] == 1
    assert main(["eval", "--predictions", str(path), "--strict"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and str(path) in err and "line 2" in err and "\n" not in err
    assert main(["eval", "--predictions", str(tmp_path / "missing.jsonl")]) == 2


def test_merge_released_shards_then_eval(tmp_path, capsys):
    """Released sliding-window inference: `<id>_split_<k>` shards -> one record per dialogue -> eval."""
    turns = [Utterance("user1", f"t{i}") for i in range(6)]
    prompt = render_prompt(Dialogue(turns), "q")
    original = [{"dialogue_id": "d1", "messages": [{"role": "user", "content": prompt}],
                 "solution": render_answer([1, 4], [1]), "images": ["a.png", "b.png"]},
                {"dialogue_id": "d2", "messages": [{"role": "user", "content": prompt}],
                 "solution": render_answer([0], []), "images": []}]
    (tmp_path / "val.json").write_text(json.dumps(original))
    shards = [{"dialogue_id": "d1_split_0", "response": render_answer([1], []), "images": [{"path": "a.png"}]},
              {"dialogue_id": "d1_split_1", "response": render_answer([4, 5], [0]), "images": [{"path": "b.png"}]},
              {"dialogue_id": "d2_split_0", "response": "<|utt_ids_start|>[0]<|utt_ids_end|>", "images": []},
              {"dialogue_id": "zz_split_0", "response": render_answer([0], []), "images": []}]
    (tmp_path / "infer.jsonl").write_text("".join(json.dumps(r) + "\n" for r in shards))
    out = tmp_path / "merged.jsonl"
    assert main(["merge", "--shards", str(tmp_path / "infer.jsonl"), "--original", str(tmp_path / "val.json"),
                 "--out", str(out)]) == 0
    merged = [json.loads(l) for l in out.read_text().splitlines()]
    assert [r["dialogue_id"] for r in merged] == ["d1", "d2"]  # zz is not in the original: left out
    assert merged[0]["response"] == render_answer([1, 4, 5], [1])
    assert merged[0]["labels"] == render_answer([1, 4], [1])
    capsys.readouterr()
    assert main(["eval", "--predictions", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["num_samples"] == 2
    # utterances: d1 tp=2 fp=1 ; d2 tp=1 -> P = 3/4, R = 1
    assert report["sentence_metrics"]["global_precision"] == 0.75
    assert report["sentence_metrics"]["global_recall"] == 1.0


def test_evaluate_recipe_writes_what_eval_reads(tmp_path, capsys):
    """recipes/evaluate.py -> `<split>.<mode>.predictions.jsonl` -> `f2rvlm eval`: same numbers."""
    import importlib.util
    import os
    import sys

    pytest = __import__("pytest")
    pytest.importorskip("trl")
    from f2rvlm.data import build_synthetic

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    spec = importlib.util.spec_from_file_location("recipe_evaluate", os.path.join(root, "recipes", "evaluate.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    data = str(tmp_path / "data")
    build_synthetic(data, num_dialogues=6, seed=0, language="en", show_progress=False)
    out = str(tmp_path / "eval")
    from f2rvlm.training.args import ModelArguments, ScriptArguments

    script = ScriptArguments(dataset_path=data, dataset_eval_splits=["validation"], max_eval_samples=6)
    report = module.main(script, module.EvaluateArguments(output_dir=out, baseline_dev_rows=0),
                         ModelArguments(model_name_or_path="baseline:bm25"))
    path = os.path.join(out, "validation.bm25.predictions.jsonl")
    capsys.readouterr()
    assert main(["eval", "--predictions", path, "--json", "--per-sample"]) == 0
    printed = json.loads(capsys.readouterr().out)
    expected = report["splits"]["validation"]["-"]
    for key in ("sentence_metrics", "image_metrics", "joint_metrics", "num_samples", "per_sample_metrics"):
        assert printed[key] == expected[key]
