#!/usr/bin/env python
"""Difficulty-aware curriculum (docs/protocol.md §7): the ordered GRPO training set from the SFT model.

    python recipes/curriculum.py --config recipes/qwen2-vl-7b/curriculum.yaml
    python recipes/curriculum.py --config recipes/tiny-cpu/curriculum.yaml
    python recipes/curriculum.py --config recipes/qwen2-vl-7b/curriculum.yaml --dry_run true

1. sample the SFT model once per GRPO training row, keeping the answer tokens' log-probabilities
   (and per-token predictive entropies for `entropy: token`);
2. f2rvlm.training.curriculum scores (avgF1, entropy), buckets (easy/middle/confusing/hard), filters, orders;
3. write a dataset folder: split `train_grpo` with the `difficulty` column, rows in training order
   (what recipes/grpo.py reads with `shuffle_dataset: false`), plus `curriculum.json` (quartiles,
   bucket counts) and `scores.jsonl` (every row's sample, F1, entropy and bucket).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field

import torch
from f2rvlm.training.args import ModelArguments, ScriptArguments, parse_recipe_args
from f2rvlm.training.callbacks import write_recipe_record
from f2rvlm.training.examples import ensure_dry_run_dataset, load_split, resolve_template
from f2rvlm.training.loading import attach_adapter, load_model_and_processor

logger = logging.getLogger("f2rvlm.training.curriculum")


@dataclass
class CurriculumArguments:
    """How the SFT model is sampled and how rows are bucketed."""

    output_dir: str = field(default="outputs/curriculum", metadata={"help": "Dataset folder to write (train_grpo split, ordered)."})
    entropy: str = field(default="sequence", metadata={"help": "`sequence` (released normalised-sequence entropy) or `token`."})
    tie_break: str = field(default="dataset", metadata={"help": "avgF1 ties in a kept bucket: `dataset` order (released) "
                                                                 "or `entropy` (lower H first)."})
    bucket_order: str = field(default="f1", metadata={"help": "Kept middle/confusing rows written by avgF1 descending (`f1`, "
                                                               "released) or in `dataset` order."})
    min_keep: int = field(default=1, metadata={"help": "Rows kept at least per non-empty middle/confusing bucket "
                                                        "(released: 1; 0: int(n * fraction))."})
    do_sample: bool = field(default=True, metadata={"help": "Sample the answer (False: greedy)."})
    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature."})
    top_p: float = field(default=0.85, metadata={"help": "Nucleus sampling."})
    max_new_tokens: int = field(default=1024, metadata={"help": "Answer budget."})
    batch_size: int = field(default=8, metadata={"help": "Rows generated together."})
    seed: int = field(default=42, metadata={"help": "Sampling seed."})
    overwrite: bool = field(default=True, metadata={"help": "Replace an existing output folder."})


@torch.no_grad()
def sample_answers(model, processor, rows, template: str, args: CurriculumArguments):
    """(text, token log-probs, token entropies) of one sampled answer per row."""
    from f2rvlm.core.dialogue import Dialogue
    from tqdm.auto import tqdm

    tokenizer = processor.tokenizer
    stop = {tokenizer.pad_token_id, tokenizer.convert_tokens_to_ids("<|im_end|>")}
    out = []
    model.eval()
    for start in tqdm(range(0, len(rows), args.batch_size), desc="sampling SFT answers", unit="batch"):
        batch = rows[start:start + args.batch_size]
        inputs = processor.build_inputs([(Dialogue.from_row(r), r["query"]) for r in batch], template=template)
        inputs = {k: v.to(model.device) if torch.is_tensor(v) else v for k, v in inputs.items()
                  if k not in ("relevance_positions", "relevance_targets")}
        gen = model.generate(**inputs, do_sample=args.do_sample, temperature=args.temperature, top_p=args.top_p,
                             max_new_tokens=args.max_new_tokens, output_logits=True, return_dict_in_generate=True)
        prompt_len = inputs["input_ids"].shape[1]
        tokens = gen.sequences[:, prompt_len:]
        logits = torch.stack(gen.logits, dim=1).float()  # (batch, new, vocab): raw, before sampling warpers
        logp = torch.log_softmax(logits, dim=-1)
        token_lp = logp.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
        token_h = -(logp.exp() * logp).sum(-1)
        for b in range(tokens.shape[0]):
            ids, lps, hs = [], [], []
            for t in range(tokens.shape[1]):
                tok = int(tokens[b, t])
                if tok in stop:
                    break
                ids.append(tok)
                lps.append(float(token_lp[b, t]))
                hs.append(float(token_h[b, t]))
            text = tokenizer.decode(ids, skip_special_tokens=False)
            out.append((text, lps or None, hs or None))
    return out


def write_ordered_set(rows: list[dict], out: str, overwrite: bool, card: str) -> str:
    from f2rvlm.data import atomic_folder, write_split

    with atomic_folder(out, overwrite) as tmp:
        write_split(rows, tmp, "train_grpo")
        with open(os.path.join(tmp, "README.md"), "w", encoding="utf-8") as f:
            f.write(card)
    return out


CARD = """---
configs:
- config_name: default
  default: true
  data_files:
  - split: train_grpo
    path: data/train_grpo-*.parquet
---
# Curriculum-ordered GRPO set

Written by `recipes/curriculum.py` (docs/protocol.md §7) from `{source}` split `{split}` with the SFT model
`{model}`: {kept} of {total} rows kept, ordered easy -> middle -> confusing -> hard (`difficulty`).
Bucket counts: {summary}
"""


def main(script_args: ScriptArguments, cur_args: CurriculumArguments, model_args: ModelArguments):
    # ------------------------------------------------------------------ 1. set-up
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from f2rvlm.training.curriculum import CurriculumSample, build_curriculum
    from transformers import set_seed

    set_seed(cur_args.seed)
    if script_args.dry_run:
        ensure_dry_run_dataset(script_args, cur_args.output_dir)
        script_args.dataset_train_split = "train_grpo"
        model_args.adapter_path = None

    # ------------------------------------------------------------------ 2. data
    train = load_split(script_args, script_args.dataset_train_split, script_args.max_train_samples)
    rows = [train[i] for i in range(len(train))]

    # ------------------------------------------------------------------ 3. model
    model, processor = load_model_and_processor(model_args, dry_run=script_args.dry_run)
    if model_args.adapter_path:
        model = attach_adapter(model, model_args, is_trainable=False).merge_and_unload()
    template = resolve_template(script_args, model, rows[0])
    processor.tokenizer.padding_side = "left"

    # ------------------------------------------------------------------ 4. sample + score
    sampled = sample_answers(model, processor, rows, template, cur_args)
    samples = [CurriculumSample(text, r["gold_utterance_ids"], r["gold_image_ids"], logprobs=lps, token_entropies=hs)
               for (text, lps, hs), r in zip(sampled, rows)]
    result = build_curriculum(samples, entropy=cur_args.entropy, tie_break=cur_args.tie_break,
                              bucket_order=cur_args.bucket_order, min_keep=cur_args.min_keep)
    if result.unscored:
        logger.warning("%d rows left out: their sampled answers' ids cannot be scored (as released)", len(result.unscored))
    logger.info("buckets: %s", result.summary)

    # ------------------------------------------------------------------ 5. write the ordered set
    ordered = []
    for i in result.order:
        row = dict(rows[i])
        row["difficulty"] = result.difficulty[i]
        ordered.append(row)
    if not ordered:
        raise RuntimeError("the curriculum kept no row; use more GRPO training rows")
    card = CARD.format(source=script_args.dataset_path, split=script_args.dataset_train_split,
                       model=model_args.model_name_or_path, kept=len(ordered), total=len(rows),
                       summary=json.dumps(result.summary))
    out = write_ordered_set(ordered, cur_args.output_dir, cur_args.overwrite, card)
    with open(os.path.join(out, "curriculum.json"), "w", encoding="utf-8") as f:
        json.dump({"summary": result.summary, "f1_quartiles": result.f1_quartiles.__dict__
                   if hasattr(result.f1_quartiles, "__dict__") else str(result.f1_quartiles),
                   "entropy_quartiles": result.entropy_quartiles.__dict__
                   if hasattr(result.entropy_quartiles, "__dict__") else str(result.entropy_quartiles),
                   "entropy": cur_args.entropy, "order": result.order}, f, indent=1, default=str)
    with open(os.path.join(out, "scores.jsonl"), "w", encoding="utf-8") as f:
        for i, ((text, _, _), r) in enumerate(zip(sampled, rows)):
            f.write(json.dumps({"row": i, "dialogue_id": r["dialogue_id"], "query": r["query"], "sample": text,
                                "solution": r["solution"], "avg_f1": None if result.difficulty[i] is None else result.f1[i],
                                "entropy": result.entropy[i],
                                "difficulty": result.difficulty[i], "kept": i in set(result.order)},
                               ensure_ascii=False) + "\n")
    write_recipe_record(out, "curriculum", script_args, cur_args, model_args, extra={"summary": result.summary})
    logger.info("curriculum set: %d of %d rows -> %s", len(ordered), len(rows), out)
    return result


if __name__ == "__main__":
    main(*parse_recipe_args((ScriptArguments, CurriculumArguments, ModelArguments)))
