"""Dataset rows -> SFT / GRPO examples, and the splits a recipe reads."""

from __future__ import annotations

import os

# ----------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------
from .args import ScriptArguments


def load_split(script_args: ScriptArguments, split: str, limit: int | None = None):
    from datasets import load_dataset

    if script_args.dataset_path is None:
        raise ValueError("dataset_path is required (or use --dry_run, which builds a tiny synthetic set)")
    if script_args.dataset_config:
        ds = load_dataset(script_args.dataset_path, script_args.dataset_config, split=split)
    else:
        ds = load_dataset(script_args.dataset_path, split=split)
    if limit is not None:
        ds = ds.select(range(min(limit, len(ds))))
    return ds


def training_texts(dataset) -> list[str]:
    """Utterance texts, image captions and queries of a training split (tokenizer training)."""
    texts = [str(q) for q in dataset["query"]]
    seen = set()
    for dialogue_id, utterances in zip(dataset["dialogue_id"], dataset["utterances"]):
        if dialogue_id in seen:  # several queries share a dialogue
            continue
        seen.add(dialogue_id)
        texts.extend(u.get("text") or "" for u in utterances)
    if "image_captions" in dataset.column_names:
        texts.extend(c for captions in dataset["image_captions"] for c in (captions or []) if c)
    return texts


def ensure_dry_run_dataset(script_args: ScriptArguments, workdir: str) -> None:
    """--dry_run without a dataset: build a tiny synthetic one (offline, seconds)."""
    if script_args.dataset_path is not None and os.path.exists(script_args.dataset_path):
        return
    from ..data import build_synthetic

    path = os.path.join(workdir, "dry_run_data")
    if not os.path.exists(path):
        build_synthetic(path, num_dialogues=6, seed=0, language="en")
    script_args.dataset_path = path
    script_args.dataset_config = None


def resolve_template(script_args: ScriptArguments, model, row: dict | None = None) -> str:
    if script_args.template:
        return script_args.template
    template = getattr(model.config, "prompt_template", None)
    if template:
        if row is not None and row.get("language") == "en" and template == "zh":
            return "en"
        return template
    return "en" if row is not None and row.get("language") == "en" else "zh"


def grpo_example(row: dict, template: str) -> dict:
    """One dataset row -> TRL GRPO example: chat `prompt` with `{"type": "image"}` parts, `images`,
    and the row columns the rewards read (solution, gold ids, utterances...)."""
    from ..core.dialogue import Dialogue
    from ..core.protocol import build_messages

    dialogue = Dialogue.from_row(row)
    example = dict(row)
    example["prompt"] = build_messages(dialogue, row["query"], template=template)
    return example
