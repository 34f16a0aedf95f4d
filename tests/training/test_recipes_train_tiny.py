"""The CPU pipeline's planning and reporting (recipes/train_tiny.py), without training (seconds)."""

import importlib.util
import json
import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _train_tiny():
    spec = importlib.util.spec_from_file_location("recipe_train_tiny", os.path.join(ROOT, "recipes", "train_tiny.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _metrics(f1):
    block = {"global_precision": f1, "global_recall": f1, "global_f1": f1, "global_mcc": f1}
    return {"sentence_metrics": block, "image_metrics": block, "joint_metrics": block, "seconds_per_query": 0.01}


def _table(gen_sft=0.3, gen_grpo=0.35, tagging=0.8, bm25=0.4, minilm=0.5):
    model = lambda gen: {s: {"generate": _metrics(gen), "guided": _metrics(0.7), "tagging": _metrics(tagging)}
                         for s in ("validation", "test_heldout")}
    return {
        "SFT": model(gen_sft),
        "SFT+GRPO, no curriculum": model(gen_grpo),
        "SFT+GRPO, curriculum": model(gen_grpo),
        "BM25 baseline": {s: {"-": _metrics(bm25)} for s in ("validation", "test_heldout")},
        "MiniLM baseline": {s: {"-": _metrics(minilm)} for s in ("validation", "test_heldout")},
    }


def test_plan_fits_the_budget():
    tt = _train_tiny()
    full, smoke = tt.plan(30), tt.plan(4)
    # stage caps leave room for data, curriculum, evaluation and export
    assert full["sft_minutes"] + 2 * full["grpo_minutes"] < 0.8 * 30
    assert full["sft_max_steps"] <= tt.SFT_STEPS_PER_MINUTE * full["sft_minutes"]
    assert smoke["num_dialogues"] < full["num_dialogues"] and smoke["grpo_max_steps"] <= 2


def test_best_mode_and_claims():
    tt = _train_tiny()
    table = _table()
    assert tt.best_mode_of(table["SFT+GRPO, curriculum"]) == "tagging"
    lines = tt.claims(table)
    assert len(lines) == 6 and all(line.startswith("- PASS") for line in lines)
    failing = tt.claims(_table(gen_grpo=0.2, tagging=0.3, minilm=0.75))
    assert all(line.startswith("- FAIL") for line in failing)


def test_write_results_markdown(tmp_path):
    tt = _train_tiny()
    sizes = tt.plan(30)
    sizes["size"] = "test"
    tt.write_results(_table(), {"sft": 1.0, "total": 2.0}, sizes, 30, "make train-tiny", str(tmp_path), False,
                     {"SFT": {"value": 0.3, "tuned_on": "train_grpo[:200]"}})
    text = (tmp_path / "results.md").read_text()
    assert "### validation" in text and "### test_heldout" in text and "PASS" in text and "tagging" in text
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["thresholds"]["SFT"]["value"] == 0.3 and saved["claims"]


def test_grpo_epoch_covers_every_curriculum_row(tmp_path):
    """`--grpo_steps epoch`: one pass over the curriculum's kept rows at the recipe's prompts per step."""
    tt = _train_tiny()
    summary = {"easy": {"kept": 37}, "middle": {"kept": 4}, "confusing": {"kept": 88}, "hard": {"kept": 100}}
    (tmp_path / "curriculum.json").write_text(json.dumps({"summary": summary}))
    config = tmp_path / "grpo.yaml"
    config.write_text("per_device_train_batch_size: 8\ngradient_accumulation_steps: 1\nnum_generations: 4\n")
    assert tt.curriculum_epoch_steps(str(tmp_path), str(config)) == 229 // 2
    stock = os.path.join(ROOT, "recipes", "tiny-cpu", "grpo.yaml")  # 4 completions of one prompt per step
    assert tt.curriculum_epoch_steps(str(tmp_path), stock) == 229
