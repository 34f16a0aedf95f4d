#!/usr/bin/env python
"""The CPU pipeline (`make train-tiny`): synthetic MLDR -> SFT -> curriculum -> GRPO -> evaluation -> export.

    python recipes/train_tiny.py                       # 30-minute budget on 2 cores (the default demo model)
    python recipes/train_tiny.py --budget_minutes 4 --out outputs/tiny-smoke   # an end-to-end smoke run

Every stage is the stock recipe run as its own process (recipes/sft.py, curriculum.py, grpo.py,
evaluate.py with recipes/tiny-cpu/*.yaml), with a share of the wall-clock budget. Then:
- the quality table (zero-shot, SFT, SFT+GRPO without / with curriculum, BM25 and MiniLM baselines;
  generate / guided / tagging modes; utterance / image / joint P, R, F1, MCC on `validation` and
  `test_heldout`, plus seconds per query) goes to benchmarks/quality/ and benchmarks/RESULTS.md;
- the SFT+GRPO+curriculum model is exported with its card to `--export_dir` (the demo model).

Tiny model size: `test` (hidden 128 x 2 layers, ~1.1M parameters). Measured (ENVIRONMENT.md): a 4M
model is 3.3x slower per minute and no better per step, and on 2 cores the budget, not capacity,
bounds quality, so the smallest model that learns the task sees the most data.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "modeling"))

#: Share of the budget per training stage (the rest: data, curriculum sampling, evaluation, export).
SHARES = {"sft": 0.40, "grpo_nocur": 0.08, "grpo_cur": 0.08}


def plan(budget: float) -> dict:
    """Sizes that fit the budget (minutes) on 2 cores."""
    full = budget >= 15
    return {
        "num_dialogues": 800 if full else 40,
        "curriculum_rows": 160 if full else 12,
        "eval_rows": 100 if full else 6,
        "latency_rows": 8 if full else 2,
        "grpo_max_steps": 400 if full else 2,
        "baseline_dev_rows": 200 if full else 20,
    }


def run(cmd: list[str], log: str) -> float:
    """Run one stage, tee-free: output to `log`; raise with the log's tail on failure."""
    start = time.perf_counter()
    print(f"[train-tiny] $ {' '.join(cmd)}", flush=True)
    with open(log, "w", encoding="utf-8") as f:
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT, check=False)
    seconds = time.perf_counter() - start
    if proc.returncode:
        with open(log, encoding="utf-8", errors="replace") as f:
            tail = f.read()[-3000:]
        raise RuntimeError(f"stage failed ({proc.returncode}): {' '.join(cmd)}\n--- {log} ---\n{tail}")
    print(f"[train-tiny]   done in {seconds:.0f} s (log: {log})", flush=True)
    return seconds


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--budget_minutes", type=float, default=30.0, help="wall-clock budget of the whole pipeline")
    p.add_argument("--out", default="outputs/tiny", help="work folder (data, stages, evaluations)")
    p.add_argument("--export_dir", default="outputs/demo-model", help="where the demo model is exported")
    p.add_argument("--results_dir", default="benchmarks/quality", help="quality table outputs")
    p.add_argument("--update_results_md", action=argparse.BooleanOptionalAction, default=True,
                   help="rewrite the `quality` section of benchmarks/RESULTS.md")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    t0 = time.perf_counter()
    B = args.budget_minutes
    sizes = plan(B)
    py = sys.executable
    out = os.path.abspath(os.path.join(ROOT, args.out))
    logs = os.path.join(out, "logs")
    os.makedirs(logs, exist_ok=True)
    data = os.path.join(out, "data")
    timings = {}
    cfg = lambda name: os.path.join(HERE, "tiny-cpu", f"{name}.yaml")

    # 1. data ------------------------------------------------------------------------------
    if not os.path.isdir(data):
        from f2rvlm.data import build_synthetic

        s = time.perf_counter()
        build_synthetic(data, num_dialogues=sizes["num_dialogues"], seed=args.seed, language="en", show_progress=False)
        timings["data"] = time.perf_counter() - s

    # 2. SFT (answer + relevance + topic heads) --------------------------------------------
    sft = os.path.join(out, "sft")
    timings["sft"] = run([py, "recipes/sft.py", "--config", cfg("sft"), "--dataset_path", data, "--output_dir", sft,
                          "--time_budget_minutes", f"{SHARES['sft'] * B:.2f}", "--num_train_epochs", "20",
                          "--seed", str(args.seed)], os.path.join(logs, "sft.log"))

    # 3. curriculum -------------------------------------------------------------------------
    cur = os.path.join(out, "curriculum")
    timings["curriculum"] = run([py, "recipes/curriculum.py", "--config", cfg("curriculum"), "--dataset_path", data,
                                 "--model_name_or_path", os.path.join(sft, "merged"), "--output_dir", cur,
                                 "--max_train_samples", str(sizes["curriculum_rows"])], os.path.join(logs, "curriculum.log"))

    # 4. GRPO without / with the curriculum (same steps and time) -----------------------------
    grpo_common = ["--config", cfg("grpo"), "--model_name_or_path", os.path.join(sft, "merged"),
                   "--max_steps", str(sizes["grpo_max_steps"]), "--seed", str(args.seed)]
    grpo_nocur = os.path.join(out, "grpo_nocur")
    timings["grpo_nocur"] = run([py, "recipes/grpo.py", *grpo_common, "--dataset_path", data, "--output_dir", grpo_nocur,
                                 "--shuffle_dataset", "true", "--max_train_samples", str(sizes["curriculum_rows"]),
                                 "--time_budget_minutes", f"{SHARES['grpo_nocur'] * B:.2f}"], os.path.join(logs, "grpo_nocur.log"))
    grpo_cur = os.path.join(out, "grpo")
    timings["grpo_cur"] = run([py, "recipes/grpo.py", *grpo_common, "--dataset_path", cur, "--output_dir", grpo_cur,
                               "--time_budget_minutes", f"{SHARES['grpo_cur'] * B:.2f}"], os.path.join(logs, "grpo.log"))

    # 5. evaluation ---------------------------------------------------------------------------
    evals = os.path.join(out, "eval")
    common = ["--dataset_path", data, "--template", "en", "--max_eval_samples", str(sizes["eval_rows"]),
              "--latency_samples", str(sizes["latency_rows"])]
    systems = [
        ("zero-shot (untrained)", ["--model_name_or_path", "tiny:qwen2_vl:test", "--relevance_head", "true",
                                   "--modes", "generate", "guided", "tagging"], "zero_shot"),
        ("SFT", ["--model_name_or_path", os.path.join(sft, "merged"), "--modes", "generate", "guided", "tagging"], "sft"),
        ("SFT+GRPO, no curriculum", ["--model_name_or_path", os.path.join(grpo_nocur, "merged"),
                                     "--modes", "generate", "guided", "tagging"], "grpo_nocur"),
        ("SFT+GRPO, curriculum", ["--model_name_or_path", os.path.join(grpo_cur, "merged"),
                                  "--modes", "generate", "guided", "tagging"], "grpo"),
        ("BM25 baseline", ["--model_name_or_path", "baseline:bm25", "--baseline_dev_rows", str(sizes["baseline_dev_rows"])], "bm25"),
        ("MiniLM baseline", ["--model_name_or_path", "baseline:minilm", "--baseline_dev_rows", str(sizes["baseline_dev_rows"])], "minilm"),
    ]
    table = {}
    for label, extra, key in systems:
        folder = os.path.join(evals, key)
        timings[f"eval_{key}"] = run([py, "recipes/evaluate.py", *common, *extra, "--output_dir", folder],
                                     os.path.join(logs, f"eval_{key}.log"))
        with open(os.path.join(folder, "metrics.json"), encoding="utf-8") as f:
            table[label] = json.load(f)["splits"]

    # 6. export + card + results ------------------------------------------------------------
    from f2rvlm.model_card import export_trained

    command = f"make train-tiny BUDGET={B:g}" if B != 30 else "make train-tiny"
    results_best = table["SFT+GRPO, curriculum"]
    s = time.perf_counter()
    export_trained(grpo_cur, os.path.join(ROOT, args.export_dir), results=results_best,
                   name="F2RVLM-tiny (CPU demo)", dataset="synthetic-mldr", command=command)
    timings["export"] = time.perf_counter() - s
    timings["total"] = time.perf_counter() - t0
    write_results(table, timings, sizes, B, command, os.path.join(ROOT, args.results_dir), args.update_results_md)
    print(f"[train-tiny] total {timings['total'] / 60:.1f} min; model: {args.export_dir}; "
          f"table: {args.results_dir}/results.md", flush=True)
    return 0


def _row(label, split, mode, m):
    cells = [label, mode]
    for key in ("sentence_metrics", "image_metrics", "joint_metrics"):
        b = m[key]
        cells += [f"{b['global_precision']:.4f}", f"{b['global_recall']:.4f}", f"{b['global_f1']:.4f}", f"{b['global_mcc']:.4f}"]
    cells.append(f"{m['seconds_per_query']:.3f}")
    return cells


def write_results(table, timings, sizes, budget, command, results_dir, update_md: bool) -> None:
    os.makedirs(results_dir, exist_ok=True)
    with open(os.path.join(results_dir, "results.json"), "w", encoding="utf-8") as f:
        json.dump({"table": table, "timings_s": timings, "sizes": sizes, "budget_minutes": budget,
                   "command": command}, f, indent=1)
    header = ["system", "mode", "utt P", "utt R", "utt F1", "utt MCC", "img P", "img R", "img F1", "img MCC",
              "joint P", "joint R", "joint F1", "joint MCC", "s/query"]
    body = []
    for split in ("validation", "test_heldout"):
        body.append(f"\n### {split}\n")
        body.append("| " + " | ".join(header) + " |")
        body.append("|" + "---|" * len(header))
        for label, splits in table.items():
            for mode, m in splits.get(split, {}).items():
                body.append("| " + " | ".join(_row(label, split, mode if mode != "-" else "scores", m)) + " |")
    stages = ", ".join(f"{k} {v:.0f} s" for k, v in timings.items())
    text = (f"Tiny Qwen2-VL F2RVLM (`test` size, ~1.1M parameters, relevance + topic heads) trained on synthetic "
            f"MLDR ({sizes['num_dialogues']} dialogues) on the CPU; {sizes['eval_rows']} rows per split evaluated "
            f"(the first rows of each split). Baselines: selection rule tuned on {sizes['baseline_dev_rows']} "
            f"training rows. s/query: one query at a time. Stage times: {stages}.\n" + "\n".join(body))
    with open(os.path.join(results_dir, "results.md"), "w", encoding="utf-8") as f:
        f.write(f"# Quality (CPU pipeline)\n\nCommand: `{command}`\n\n{text}\n")
    if update_md:
        sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
        try:
            from results import update_section
        except ImportError:
            return
        update_section("quality", text, command)


if __name__ == "__main__":
    sys.exit(main())
