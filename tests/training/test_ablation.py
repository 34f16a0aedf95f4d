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
    dev = {seed: {label: {m: 0.2 for m in ablation.MODES} for label, _ in ablation.STAGES} for seed in (0, 1, 2)}
    assert any(line.startswith("| LoCoMo dev") and line.endswith("| no |") for line in ablation.table(per_seed, dev).splitlines())


def test_dev_scores_cache_is_completed_not_recomputed(tmp_path, monkeypatch):
    ablation = load_recipe("ablation")
    args = ablation.parse_args(["--out", str(tmp_path)])
    (tmp_path / "seed0").mkdir()
    (tmp_path / "seed0" / "dev-3.json").write_text(json.dumps({"SFT": {"tagging": 0.1}}))
    seen = []

    def fake_dev_scores(seed, results, rows, args, done=None):
        seen.append(dict(done))
        return {**done, **{label: {"tagging": 0.2} for label, _ in ablation.STAGES if label not in done}}

    monkeypatch.setattr(ablation, "dev_scores", fake_dev_scores)
    scores = ablation.cached_dev_scores(0, {}, [1, 2, 3], args)
    assert seen == [{"SFT": {"tagging": 0.1}}] and scores["SFT"] == {"tagging": 0.1}
    assert ablation.cached_dev_scores(0, {}, [1, 2, 3], args) == scores and len(seen) == 1  # complete: read back
