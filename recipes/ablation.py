#!/usr/bin/env python
"""The paper's ablation at CPU scale, over seeds: SFT vs SFT+GRPO vs SFT+curriculum+GRPO.

    python recipes/ablation.py --seeds 0 1 2 \
        [--real_chats ../shared/data/locomo-dev] [--update_results_md]

Per seed, `recipes/train_tiny.py` runs the same pipeline as the demo model (synthetic MLDR -> SFT ->
curriculum -> GRPO without / with the curriculum, same steps), evaluating only the three ablation
systems (`--systems sft grpo_nocur grpo`) on synthetic `validation` / `test_heldout` in every mode.
With `--real_chats`, each stage's VLM is also run on the LoCoMo dev samples (utterance F1, the VLM
alone: no text scorer; tagging at the threshold tuned on training rows). The table reports the mean
and the spread (sample standard deviation, min-max) over seeds, and whether the paper's order holds.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

#: (label in train_tiny's table, stage folder) in the paper's order: each should beat the one before
STAGES = (("SFT", "sft"), ("SFT+GRPO, no curriculum", "grpo_nocur"), ("SFT+GRPO, curriculum", "grpo"))
MODES = ("generate", "guided", "tagging")
#: the product's generation path, on dev: each stage's VLM inside the default model's text scorer (its
#: selected settings unchanged), writing the answer's ids within what the scorer and the VLM's head admit
PRODUCT = "generate, default's text scorer"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--budget_minutes", type=float, default=45.0,
                   help="train_tiny budget per seed (>= 15: full plan); its stage time caps only guard the fixed steps")
    p.add_argument("--sft_steps", type=int, default=3000, help="fixed SFT steps per seed (the demo model: 16560)")
    p.add_argument("--grpo_steps", default="100",
                   help="fixed GRPO steps per run (the demo model: 303), or `epoch`: one pass over each seed's curriculum")
    p.add_argument("--grpo_learning_rate", type=float, default=None,
                   help="GRPO learning rate of both runs (default: tiny-cpu/grpo.yaml's 2e-4)")
    p.add_argument("--reuse_sft", action="store_true",
                   help="keep each seed's SFT model, curriculum and SFT evaluation in --out; rerun GRPO and its evaluations")
    p.add_argument("--out", default="outputs/ablation")
    p.add_argument("--real_chats", default=None, help="LoCoMo dev conversations: also evaluate every stage on them")
    p.add_argument("--default_model", default="models/tiny-demo",
                   help="whose text scorer the dev product row attaches to every stage's VLM")
    p.add_argument("--dev_limit", type=int, default=None, help="first N dev samples only (smoke runs)")
    p.add_argument("--update_results_md", action="store_true", help="rewrite the `ablation` section of RESULTS.md")
    p.add_argument("--skip_training", action="store_true", help="reuse the seeds' finished runs in --out")
    return p.parse_args(argv)


def train_seed(seed: int, args) -> dict:
    """train_tiny for one seed (three ablation systems only); its results.json."""
    out = os.path.join(args.out, f"seed{seed}")
    if not args.skip_training:
        cmd = [sys.executable, os.path.join(HERE, "train_tiny.py"), "--seed", str(seed),
               "--budget_minutes", str(args.budget_minutes), "--out", out, "--export_dir", os.path.join(out, "model"),
               "--results_dir", os.path.join(out, "quality"), "--no-update_results_md",
               "--sft_steps", str(args.sft_steps), "--grpo_steps", str(args.grpo_steps),
               "--systems", *(key for _, key in STAGES if not (args.reuse_sft and key == "sft"))]
        if args.reuse_sft:
            cmd.append("--reuse_sft")
        if args.grpo_learning_rate:
            cmd += ["--grpo_learning_rate", str(args.grpo_learning_rate)]
        print("[ablation] $", " ".join(cmd), flush=True)
        subprocess.run(cmd, cwd=ROOT, check=True)
    # the stage evaluations are the source (a run stopped after them, before its export, still counts)
    table, thresholds = {}, {}
    for label, key in STAGES:
        with open(os.path.join(ROOT, out, "eval", key, "metrics.json"), encoding="utf-8") as f:
            report = json.load(f)
        table[label], thresholds[label] = report["splits"], report.get("threshold")
    summary = os.path.join(ROOT, out, "quality", "results.json")
    timings = {}
    if os.path.isfile(summary):
        with open(summary, encoding="utf-8") as f:
            timings = json.load(f)["timings_s"]
    return {"table": table, "thresholds": thresholds, "timings_s": timings}


def dev_scores(seed: int, results: dict, rows, args, done: dict | None = None) -> dict:
    """{stage label: {mode: dev utterance F1}} for the VLM of every stage of one seed, alone in each
    mode and inside the default's text scorer (PRODUCT); scores already in `done` are kept, not rerun."""
    import torch
    from bench_real_chat import evaluate_method
    from f2rvlm.models.hub import load_model

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    out = {label: dict(scores) for label, scores in (done or {}).items()}
    for label, key in STAGES:
        todo = [mode for mode in (*MODES, PRODUCT) if mode not in out.get(label, {})]
        folder = os.path.join(ROOT, args.out, f"seed{seed}", key, "merged")
        threshold = (results["thresholds"].get(label) or {}).get("value", 0.5)
        scores = out.setdefault(label, {})
        for mode in todo:
            model, processor = scorer_model(folder, args.default_model) if mode == PRODUCT else load_model(folder)
            retrieval_mode = "generate" if mode == PRODUCT else mode

            def predict(d, q, model=model, processor=processor, mode=retrieval_mode, threshold=threshold):
                return model.retrieve(d, q, processor=processor, mode=mode, threshold=threshold).utterance_ids

            scores[mode] = evaluate_method(f"{label} {mode}", predict, rows)["f1"]
            print(f"[ablation] seed {seed} dev {label} {mode}: {scores[mode]}", flush=True)
    return out


def scorer_model(vlm_dir: str, default_dir: str):
    """(model, processor): the stage's VLM with the default model's text scorer and settings inside."""
    from f2rvlm.models.hub import load_with_text_scorer

    default, default_processor = _default_model(default_dir)
    settings = {k: v for k, v in default.config.to_dict().items() if k.startswith("text_scorer_")}
    return load_with_text_scorer(vlm_dir, default.config.text_scorer, default.text_scorer.encoder.state_dict(),
                                 default_processor.scorer_tokenizer, settings)


@functools.lru_cache(maxsize=1)
def _default_model(folder: str):
    from f2rvlm.models.hub import load_model

    return load_model(os.path.join(ROOT, folder))


def cached_dev_scores(seed: int, results: dict, rows, args) -> dict:
    """dev_scores, kept in the seed's folder (keyed by the sample count) so a rerun reuses them; a
    file with some stages or modes only (e.g. the SFT stage of a `--reuse_sft` run, copied over) is completed."""
    path = os.path.join(ROOT, args.out, f"seed{seed}", f"dev-{len(rows)}.json")
    done = {}
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            done = json.load(f)
    if all(mode in done.get(label, {}) for label, _ in STAGES for mode in (*MODES, PRODUCT)):
        return done
    scores = dev_scores(seed, results, rows, args, done)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(scores, f, indent=1)
    return scores


def spread(values: list[float]) -> str:
    mean = statistics.fmean(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.4f} ± {sd:.4f} ({min(values):.4f}-{max(values):.4f})"


def order_holds(means: list[float]) -> str:
    return "yes" if all(a < b for a, b in itertools.pairwise(means)) else "no"


def table(per_seed: dict, dev: dict) -> str:
    """Markdown: one row per (split, mode), one column per stage (mean ± sd over seeds), order check."""
    seeds = sorted(per_seed)
    header = "| split | mode | " + " | ".join(label for label, _ in STAGES) + " | SFT < +GRPO < +curriculum |"
    lines = [header, "|" + "---|" * (len(STAGES) + 3)]
    for split in ("validation", "test_heldout"):
        for mode in MODES:
            cells, means = [], []
            for label, _ in STAGES:
                values = [per_seed[s]["table"][label][split][mode]["joint_metrics"]["global_f1"] for s in seeds]
                cells.append(spread(values))
                means.append(statistics.fmean(values))
            lines.append(f"| synthetic {split} (joint F1) | {mode} | " + " | ".join(cells) + f" | {order_holds(means)} |")
    for mode in (*MODES, PRODUCT) if dev else ():
        cells, means = [], []
        for label, _ in STAGES:
            values = [dev[s][label][mode] for s in seeds]
            cells.append(spread(values))
            means.append(statistics.fmean(values))
        lines.append(f"| LoCoMo dev (utterance F1) | {mode} | " + " | ".join(cells) + f" | {order_holds(means)} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    per_seed = {seed: train_seed(seed, args) for seed in args.seeds}
    dev, conversion = {}, ""
    if args.real_chats:
        from f2rvlm.data.locomo import locomo_rows

        rows, report = locomo_rows(args.real_chats)
        rows = rows[: args.dev_limit] if args.dev_limit else rows
        conversion = f"{len(rows)} LoCoMo dev samples ({report.summary().split(': ', 1)[-1]})"
        dev = {seed: cached_dev_scores(seed, per_seed[seed], rows, args) for seed in args.seeds}
    body = table(per_seed, dev)
    with open(os.path.join(ROOT, args.out, "ablation.json"), "w", encoding="utf-8") as f:
        json.dump({"seeds": args.seeds, "budget_minutes": args.budget_minutes, "dev": dev,
                   "synthetic": {s: r["table"] for s, r in per_seed.items()},
                   "timings_s": {s: r["timings_s"] for s, r in per_seed.items()}}, f, indent=1)
    print(body)
    if args.update_results_md:
        import runpy

        results = runpy.run_path(os.path.join(ROOT, "benchmarks", "results.py"))
        totals = [r["timings_s"]["total"] for r in per_seed.values() if "total" in r["timings_s"]]
        timing = (f"{statistics.fmean(totals) / 60:.1f} min per seed on 2 shared cores, training + evaluation"
                  if totals else "stage times in each run's logs: a run stopped after its evaluations records no total")
        command = "python recipes/ablation.py " + " ".join(argv if argv is not None else sys.argv[1:])
        if args.grpo_steps == "epoch":
            sys.path.insert(0, HERE)
            from train_tiny import curriculum_epoch_steps

            steps = [curriculum_epoch_steps(os.path.join(ROOT, args.out, f"seed{s}", "curriculum"),
                                            os.path.join(HERE, "tiny-cpu", "grpo.yaml")) for s in args.seeds]
            grpo = f"GRPO steps = one pass over the seed's curriculum rows ({', '.join(map(str, steps))} steps; the shuffled run takes as many)"
        else:
            grpo = f"{args.grpo_steps} GRPO steps per run"
        text = (f"Seeds {', '.join(map(str, args.seeds))}; train_tiny with {args.sft_steps} SFT steps and {grpo} "
                f"({timing}); synthetic MLDR, first 100 rows "
                f"per split; {conversion or 'no real-chat run'}. Cells: mean ± sample sd (min-max) over seeds. "
                "Dev rows: the VLM alone (no text scorer), tagging at the threshold tuned on training rows; "
                f"`{PRODUCT}`: the product's generation path, each stage's VLM inside the text scorer of "
                f"`{args.default_model}` (its settings unchanged).\n\n" + body)
        results["update_section"]("ablation", text, command)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
