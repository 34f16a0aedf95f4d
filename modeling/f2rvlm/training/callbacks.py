"""Callbacks, plots and records: a wall-clock budget, loss / reward PNG plots, the recipe record
(`f2rvlm_recipe.json`) and `train_and_save`, the last two sections of every recipe script."""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict
from typing import Any

from transformers import TrainerCallback

# ----------------------------------------------------------------------------------------------
# Callbacks, plots, records
# ----------------------------------------------------------------------------------------------
from .args import ModelArguments, ScriptArguments
from .loading import save_merged


class TimeBudgetCallback(TrainerCallback):
    """Stop training (with a final save) once `minutes` of wall-clock time have passed."""

    def __init__(self, minutes: float | None):
        self.seconds = None if minutes is None else minutes * 60.0
        self.start = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.start = time.monotonic()

    def on_step_end(self, args, state, control, **kwargs):
        if self.seconds is not None and self.start is not None and time.monotonic() - self.start > self.seconds:
            control.should_training_stop = True
            control.should_save = True
        return control


#: Logged keys plotted, by file name.
PLOT_KEYS = {
    "loss.png": ("loss", "lm_loss", "relevance_loss", "topic_loss", "eval_loss"),
    "reward.png": ("reward", "rewards/fragment_f1_reward/mean", "rewards/coherence_reward/mean",
                   "rewards/format_reward/mean", "frac_reward_zero_std", "dynamic_sampling/resampled_groups"),
}


def write_plots(log_history: list[dict], out_dir: str) -> list[str]:
    """PNG curves of every plotted key present in `log_history` (matplotlib, Agg). Returns paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for filename, keys in PLOT_KEYS.items():
        series = {}
        for key in keys:
            pts = [(e["step"], e[key]) for e in log_history if key in e and "step" in e
                   and isinstance(e[key], (int, float)) and math.isfinite(e[key])]
            if pts:
                series[key] = pts
        if filename == "reward.png":  # any other per-reward mean
            for e in log_history:
                for k, v in e.items():
                    if k.startswith("rewards/") and k.endswith("/mean") and k not in series and isinstance(v, (int, float)):
                        series[k] = [(x["step"], x[k]) for x in log_history if k in x and "step" in x]
        if not series:
            continue
        fig, ax = plt.subplots(figsize=(6, 3.5))
        for key, pts in series.items():
            ax.plot([p[0] for p in pts], [p[1] for p in pts], label=key, marker="." if len(pts) < 30 else None)
        ax.set_xlabel("step")
        ax.set_title(filename[:-4])
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        path = os.path.join(out_dir, filename)
        os.makedirs(out_dir, exist_ok=True)
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written


class PlotCallback(TrainerCallback):
    """Loss / reward PNGs in each checkpoint folder and in the output folder at the end."""

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            ckpt = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
            write_plots(state.log_history, ckpt if os.path.isdir(ckpt) else args.output_dir)

    def on_train_end(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            write_plots(state.log_history, args.output_dir)


def to_jsonable(obj: Any) -> Any:
    if hasattr(obj, "__dataclass_fields__"):
        obj = asdict(obj)
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, str) and os.path.isabs(obj) and os.path.commonpath([obj, os.getcwd()]) == os.getcwd():
        return os.path.relpath(obj)  # records travel with models: no paths of the training machine
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)


def write_recipe_record(out_dir: str, stage: str, *configs, extra: dict | None = None) -> str:
    """`f2rvlm_recipe.json` in `out_dir`: every stage's resolved arguments (the model card embeds it)."""
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "f2rvlm_recipe.json")
    record = {}
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
    entry = {}
    for cfg in configs:
        d = to_jsonable(cfg)
        keep = {k: v for k, v in d.items() if not k.startswith("_") and k not in ("hub_token", "push_to_hub_token")}
        entry[type(cfg).__name__] = keep
    if extra:
        entry["extra"] = to_jsonable(extra)
    record[stage] = entry
    with open(path, "w", encoding="utf-8") as f:
        json.dump(record, f, indent=1, sort_keys=True)
    return path


def carry_recipe_record(src_dir: str | None, out_dir: str) -> None:
    """Copy earlier stages' records (e.g. the SFT adapter's) into a later stage's output folder."""
    if not src_dir:
        return
    src = os.path.join(src_dir, "f2rvlm_recipe.json")
    if not os.path.exists(src) or os.path.abspath(src_dir) == os.path.abspath(out_dir):
        return
    with open(src, encoding="utf-8") as f:
        earlier = json.load(f)
    dst = os.path.join(out_dir, "f2rvlm_recipe.json")
    record = {}
    if os.path.exists(dst):
        with open(dst, encoding="utf-8") as f:
            record = json.load(f)
    os.makedirs(out_dir, exist_ok=True)
    with open(dst, "w", encoding="utf-8") as f:
        json.dump({**earlier, **record}, f, indent=1, sort_keys=True)


def recipe_callbacks(script_args: ScriptArguments) -> list[TrainerCallback]:
    """The callbacks every training recipe uses: the time budget, and plots when asked for."""
    return [TimeBudgetCallback(script_args.time_budget_minutes)] + ([PlotCallback()] if script_args.plots else [])


def train_and_save(trainer, processor, stage: str, script_args: ScriptArguments, model_args: ModelArguments,
                   training_args, extra: dict, carry_from: str | None = None):
    """Sections 5 and 6 of sft.py / grpo.py: train (resumable), then on the main process save the
    checkpoint, processor, state, plots, merged model, recipe record and (optionally) the export.

    `carry_from`: a stage folder whose `f2rvlm_recipe.json` is carried over first (GRPO after SFT).
    """
    # 5. train
    resume = training_args.resume_from_checkpoint
    if isinstance(resume, str) and resume.lower() in ("true", "last"):
        resume = True
    elif isinstance(resume, str) and resume.lower() in ("false", "none", ""):
        resume = None
    result = trainer.train(resume_from_checkpoint=resume)
    trainer.log_metrics("train", result.metrics)
    trainer.save_metrics("train", result.metrics)

    # 6. save, plots, record, export
    out = training_args.output_dir
    trainer.save_model(out)
    if trainer.accelerator.is_main_process:
        processor.save_pretrained(out)
        trainer.state.save_to_json(os.path.join(out, "trainer_state.json"))
        if script_args.plots:
            write_plots(trainer.state.log_history, out)
        if script_args.save_merged:
            save_merged(trainer.model, processor, os.path.join(out, "merged"))
        if carry_from is not None and os.path.isdir(carry_from):
            carry_recipe_record(carry_from, out)
            carry_recipe_record(os.path.dirname(os.path.abspath(carry_from)), out)
        write_recipe_record(out, stage, script_args, model_args, training_args,
                            extra={**extra, "train_metrics": result.metrics})
        if script_args.export_dir:
            from .export import export_trained

            export_trained(out, script_args.export_dir, base=model_args)
    trainer.accelerator.wait_for_everyone()
    print(f"{stage.upper()} done on process {trainer.accelerator.process_index}: {out}", flush=True)
    return result
