#!/usr/bin/env python
"""Evaluate an F2RVLM model (or a non-generative baseline) with the paper's metrics, per split and mode.

    python recipes/evaluate.py --model_name_or_path outputs/tiny/grpo/merged --dataset_path outputs/tiny/data \
        --modes generate guided tagging --output_dir outputs/tiny/eval/grpo
    python recipes/evaluate.py --model_name_or_path baseline:bm25 --dataset_path outputs/tiny/data --output_dir ...
    python recipes/evaluate.py --config recipes/qwen2-vl-7b/sft.yaml --model_name_or_path outputs/.../merged

Writes, per split and mode, `<split>.<mode>.predictions.jsonl` (one record per row, written by
`f2rvlm.core.predictions.prediction_record`: the released inference format, so `f2rvlm eval` and the
released evaluation tool read it; the prompt's id tags give the universe) and `metrics.json`:
utterance / image / joint P, R, F1, MCC (global, the paper's numbers), the per-sample variant, and
the mean latency per query. The metrics are computed from the very records written to the file.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field

from f2rvlm.training.args import ModelArguments, ScriptArguments, parse_recipe_args
from f2rvlm.training.examples import load_split
from f2rvlm.training.loading import load_model_and_processor

logger = logging.getLogger("f2rvlm.evaluate")


@dataclass
class EvaluateArguments:
    """What to score and where to write it."""

    output_dir: str = field(default="outputs/eval", metadata={"help": "Folder for predictions and metrics.json."})
    modes: list[str] = field(
        default_factory=lambda: ["generate"],
        metadata={"help": "Retrieval modes: generate, guided, tagging (the last two need a relevance head; "
                          "modes the model cannot run are skipped)."},
    )
    batch_size: int = field(default=8, metadata={"help": "retrieve_batch batch size."})
    threshold: float | None = field(default=None, metadata={"help": "Head threshold (default: the model config's)."})
    constrained: bool = field(default=True, metadata={"help": "Grammar-constrained decoding."})
    baseline_dev_rows: int = field(default=200, metadata={"help": "Training rows a baseline's selection rule is tuned on."})
    latency_samples: int = field(default=8, metadata={"help": "Rows timed one at a time (batch 1) for the latency column."})
    tune_threshold_rows: int = field(
        default=0,
        metadata={"help": "Choose the head threshold (tagging / guided) that maximises joint F1 on this many rows of "
                          "`dataset_train_split` (training data, never an evaluated split); 0: the config's (or "
                          "--threshold)."},
    )


def prediction_records(rows, predictions, texts=None, template=None) -> list[dict]:
    """One predictions-file record per row (`predictions.prediction_record`): the rendered prompt, the
    predicted ids as answer text, the gold answer, and the raw model text under `text`."""
    from f2rvlm.core.dialogue import Dialogue
    from f2rvlm.core.predictions import prediction_record
    from f2rvlm.core.protocol import DEFAULT_TEMPLATE, Answer, render_prompt

    texts = texts or [None] * len(rows)
    return [prediction_record(render_prompt(Dialogue.from_row(r), r["query"], template or DEFAULT_TEMPLATE),
                              Answer(list(p[0]), list(p[1])),
                              Answer(list(r["gold_utterance_ids"]), list(r["gold_image_ids"])),
                              dialogue_id=r["dialogue_id"], query=r["query"], text=t)
            for r, p, t in zip(rows, predictions, texts)]


def score(rows, predictions, records=None) -> dict:
    """Global + per-sample metrics of (utterance_ids, image_ids) predictions, computed from their
    prediction records (the same reading `f2rvlm eval` does)."""
    from f2rvlm.core.metrics import evaluate
    from f2rvlm.core.predictions import sample_from_record

    records = records if records is not None else prediction_records(rows, predictions)
    samples = [sample_from_record(r) for r in records]
    return evaluate(samples, per_sample=True, by_length=True).to_dict(per_sample=True)


def run_baseline(name: str, rows, dev_rows):
    """Predictions of a non-generative baseline (f2rvlm.baselines: bm25 | minilm), its selection
    rule tuned on `dev_rows` (training rows, never the evaluated split), and its seconds per query."""
    from f2rvlm import baselines
    from f2rvlm.core.dialogue import Dialogue

    classes = {"bm25": baselines.BM25Baseline, "minilm": baselines.EmbeddingBaseline,
               "embedding": baselines.EmbeddingBaseline}
    if name not in classes:
        raise ValueError(f"unknown baseline {name!r}; choose one of {sorted(classes)}")
    key = (name, len(dev_rows))
    retriever = _TUNED.get(key)
    if retriever is None:
        retriever = _TUNED[key] = _tuned_baseline(classes[name](), name, dev_rows)
    start = time.perf_counter()
    preds = [retriever.retrieve(Dialogue.from_row(r), r["query"]) for r in rows]
    seconds = (time.perf_counter() - start) / max(1, len(rows))
    return preds, seconds


_TUNED: dict = {}


def _tuned_baseline(retriever, name, dev_rows):
    from f2rvlm import baselines
    from f2rvlm.core.dialogue import Dialogue
    from f2rvlm.core.protocol import Answer

    if dev_rows:
        dev = [baselines.DevExample(Dialogue.from_row(r), r["query"],
                                    Answer(list(r["gold_utterance_ids"]), list(r["gold_image_ids"]))) for r in dev_rows]
        rule, f1 = baselines.tune_rule(retriever, dev)
        logger.info("%s rule tuned on %d training rows: %s (joint F1 %.4f)", name, len(dev), rule, f1)
    return retriever


#: Head thresholds tried by --tune_threshold_rows.
THRESHOLD_GRID = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9)


def tune_threshold(model, processor, rows, template, batch_size: int = 8) -> tuple[float, float]:
    """(threshold, joint F1): the tagging threshold with the best joint F1 on `rows` (training rows)."""
    from f2rvlm.core.dialogue import Dialogue

    pairs = [(Dialogue.from_row(r), r["query"]) for r in rows]
    results = model.retrieve_batch(pairs, processor, batch_size=batch_size, mode="tagging", template=template,
                                   threshold=0.5)
    best = (0.5, -1.0)
    for t in THRESHOLD_GRID:
        preds = [(sorted(i for i, p in r.scores["utterances"].items() if p > t),
                  sorted(i for i, p in r.scores["images"].items() if p > t)) for r in results]
        f1 = score(rows, preds)["joint_metrics"]["global_f1"]
        if f1 > best[1] + 1e-9:
            best = (t, f1)
    return best


def run_model(model, processor, rows, mode: str, args: EvaluateArguments, template):
    from f2rvlm.core.dialogue import Dialogue

    pairs = [(Dialogue.from_row(r), r["query"]) for r in rows]
    kwargs = {"mode": mode, "template": template, "constrained": args.constrained, "threshold": args.threshold}
    results = model.retrieve_batch(pairs, processor, batch_size=args.batch_size, show_progress=True, **kwargs)
    n = min(args.latency_samples, len(pairs))
    start = time.perf_counter()
    for pair in pairs[:n]:
        model.retrieve(*pair, processor=processor, **kwargs)
    seconds = (time.perf_counter() - start) / max(1, n)
    return [(r.utterance_ids, r.image_ids) for r in results], [r.text for r in results], seconds


def main(script_args: ScriptArguments, eval_args: EvaluateArguments, model_args: ModelArguments):
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    import torch
    from f2rvlm.core.predictions import write_predictions

    torch.manual_seed(0)
    os.makedirs(eval_args.output_dir, exist_ok=True)
    name = model_args.model_name_or_path
    model = processor = None
    if not name.startswith("baseline:"):
        model, processor = load_model_and_processor(model_args, dry_run=script_args.dry_run)
        model.eval()
    report = {"model": name, "splits": {}}
    if model is not None and eval_args.tune_threshold_rows > 0 and getattr(model, "relevance_head", None) is not None:
        dev = load_split(script_args, script_args.dataset_train_split, eval_args.tune_threshold_rows)
        threshold, f1 = tune_threshold(model, processor, [dev[i] for i in range(len(dev))],
                                       script_args.template or None, eval_args.batch_size)
        eval_args.threshold = threshold
        report["threshold"] = {"value": threshold, "tuned_on": f"{script_args.dataset_train_split}[:{len(dev)}]",
                               "tagging_joint_f1": f1}
        logger.info("head threshold %.2f (tagging joint F1 %.4f on %d %s rows)", threshold, f1, len(dev),
                    script_args.dataset_train_split)
    elif model is not None and getattr(model, "relevance_head", None) is not None:
        report["threshold"] = {"value": eval_args.threshold if eval_args.threshold is not None
                               else model.config.retrieval_threshold, "tuned_on": None}
    dev_rows = []
    if model is None and eval_args.baseline_dev_rows > 0:
        dev = load_split(script_args, script_args.dataset_train_split, eval_args.baseline_dev_rows)
        dev_rows = [dev[i] for i in range(len(dev))]
    for split in script_args.dataset_eval_splits:
        ds = load_split(script_args, split, script_args.max_eval_samples)
        rows = [ds[i] for i in range(len(ds))]
        report["splits"][split] = {}
        modes = ["-"] if model is None else eval_args.modes
        for mode in modes:
            if model is not None and mode in ("guided", "tagging") and getattr(model, "relevance_head", None) is None:
                logger.info("skipping mode %s: the model has no relevance head", mode)
                continue
            start = time.perf_counter()
            if model is None:
                preds, latency = run_baseline(name.split(":", 1)[1], rows, dev_rows)
                texts = [None] * len(rows)
            else:
                template = script_args.template or None
                preds, texts, latency = run_model(model, processor, rows, mode, eval_args, template)
            records = prediction_records(rows, preds, texts, script_args.template or None)
            metrics = score(rows, preds, records)
            metrics["seconds_per_query"] = latency
            metrics["wall_seconds"] = time.perf_counter() - start
            report["splits"][split][mode] = metrics
            tag = mode if mode != "-" else name.split(":", 1)[1]
            write_predictions(records, os.path.join(eval_args.output_dir, f"{split}.{tag}.predictions.jsonl"))
            joint = metrics["joint_metrics"]
            logger.info("%s %s %s: joint F1 %.4f, %.3f s/query", name, split, mode, joint["global_f1"], latency)
    with open(os.path.join(eval_args.output_dir, "metrics.json"), "w", encoding="utf-8") as f:
        json.dump(report, f, indent=1)
    return report


if __name__ == "__main__":
    main(*parse_recipe_args((ScriptArguments, EvaluateArguments, ModelArguments)))
