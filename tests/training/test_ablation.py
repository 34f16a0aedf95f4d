"""recipes/ablation.py: the seeds' stage evaluations -> mean ± sd table with the paper's order check."""

import json

from helpers import load_recipe


def _metrics(f1):
    return {"joint_metrics": {"global_f1": f1}}


def test_table_reads_stage_evaluations_and_checks_the_order(tmp_path):
    ablation = load_recipe("ablation")
    # seed s, stage k: joint F1 0.1 * (k + 1) + 0.01 * s on validation (the order holds), reversed on test_heldout
    for seed in (0, 1, 2):
        for k, (_, key) in enumerate(ablation.STAGES):
            folder = tmp_path / f"seed{seed}" / "eval" / key
            folder.mkdir(parents=True)
            splits = {"validation": {m: _metrics(0.1 * (k + 1) + 0.01 * seed) for m in ablation.MODES},
                      "test_heldout": {m: _metrics(0.5 - 0.1 * k) for m in ablation.MODES}}
            (folder / "metrics.json").write_text(json.dumps({"splits": splits, "threshold": {"value": 0.6}}))
    args = ablation.parse_args(["--out", str(tmp_path), "--skip_training"])
    per_seed = {seed: ablation.train_seed(seed, args) for seed in (0, 1, 2)}
    assert per_seed[1]["thresholds"]["SFT"] == {"value": 0.6} and per_seed[1]["timings_s"] == {}
    lines = ablation.table(per_seed, {}).splitlines()
    validation = next(line for line in lines if line.startswith("| synthetic validation") and "| tagging |" in line)
    assert "0.1100 ± 0.0100 (0.1000-0.1200)" in validation and validation.endswith("| yes |")
    held_out = next(line for line in lines if line.startswith("| synthetic test_heldout") and "| tagging |" in line)
    assert held_out.endswith("| no |") and "LoCoMo" not in "\n".join(lines)
    dev = {seed: {label: {m: 0.2 for m in ablation.MODES} | {ablation.PRODUCT: 0.3 + 0.1 * k}
                  for k, (label, _) in enumerate(ablation.STAGES)} for seed in (0, 1, 2)}
    dev_lines = [line for line in ablation.table(per_seed, dev).splitlines() if line.startswith("| LoCoMo dev")]
    assert len(dev_lines) == len(ablation.MODES) + 1
    assert all(line.endswith("| no |") for line in dev_lines[:-1])
    assert f"| {ablation.PRODUCT} |" in dev_lines[-1] and dev_lines[-1].endswith("| yes |")


def test_dev_scores_cache_is_completed_not_recomputed(tmp_path, monkeypatch):
    ablation = load_recipe("ablation")
    args = ablation.parse_args(["--out", str(tmp_path)])
    (tmp_path / "seed0").mkdir()
    (tmp_path / "seed0" / "dev-3.json").write_text(json.dumps({"SFT": {"tagging": 0.1}}))
    seen = []

    modes = (*ablation.MODES, ablation.PRODUCT)

    def fake_dev_scores(seed, results, rows, args, done=None):
        seen.append(dict(done))
        return {label: {mode: done.get(label, {}).get(mode, 0.2) for mode in modes} for label, _ in ablation.STAGES}

    monkeypatch.setattr(ablation, "dev_scores", fake_dev_scores)
    scores = ablation.cached_dev_scores(0, {}, [1, 2, 3], args)
    assert seen == [{"SFT": {"tagging": 0.1}}] and scores["SFT"]["tagging"] == 0.1 and scores["SFT"]["generate"] == 0.2
    assert ablation.cached_dev_scores(0, {}, [1, 2, 3], args) == scores and len(seen) == 1  # complete: read back


def test_product_row_puts_the_default_scorer_around_a_stage_vlm(tmp_path):
    """scorer_model: the stage's own VLM weights, the default model's encoder weights and settings."""
    import torch

    from f2rvlm.core.dialogue import Dialogue
    from f2rvlm.models.hub import load_model
    from f2rvlm.models.tiny import build_tiny

    ablation = load_recipe("ablation")
    default_dir = tmp_path / "default"
    default, processor = build_tiny("qwen2_vl", "test", relevance_head=True, text_scorer=True, seed=1)
    default.config.text_scorer_head_margin, default.config.text_scorer_head_gate = 0.3, 3
    default.save_pretrained(default_dir)
    processor.save_pretrained(default_dir)
    stage_dir = tmp_path / "stage"
    stage, stage_processor = build_tiny("qwen2_vl", "test", relevance_head=True, seed=2)
    stage.save_pretrained(stage_dir)
    stage_processor.save_pretrained(stage_dir)

    model, model_processor = ablation.scorer_model(str(stage_dir), str(default_dir))
    default, _ = load_model(str(default_dir))
    assert model.config.text_scorer_head_gate == 3 and model.config.text_scorer_head_margin == 0.3
    for name, value in model.text_scorer.state_dict().items():
        assert torch.equal(value, default.text_scorer.state_dict()[name])
    for name, value in stage.state_dict().items():
        assert torch.equal(value, model.state_dict()[name]), name
    dialogue = Dialogue.from_dict({"utterances": [{"speaker": "A", "text": "we viewed the flat"},
                                                  {"speaker": "B", "text": "the cake was great"}]})
    answer = model.retrieve(dialogue, "the flat", processor=model_processor, mode="generate")
    assert set(answer.utterance_ids) <= {0, 1}
