#!/usr/bin/env python
"""GRPO of F2RVLM with the paper's rewards (fragment F1, coherence, format = 1 : 1 : 0.3) and dynamic sampling.

    # GPUs (paper settings, Qwen2-VL-7B), on the curriculum-ordered set
    accelerate launch --config_file recipes/accelerate/zero2.yaml recipes/grpo.py --config recipes/qwen2-vl-7b/grpo.yaml
    # vLLM rollouts on GPUs (pip install vllm): add --use_vllm true [--vllm_mode colocate|server]
    # one CPU, tiny model
    python recipes/grpo.py --config recipes/tiny-cpu/grpo.yaml
    # validate a GPU recipe here without downloading (tiny stand-in, one step)
    python recipes/grpo.py --config recipes/qwen2-vl-7b/grpo.yaml --dry_run true

The dataset order is kept (`shuffle_dataset: false`) so the curriculum order holds. Prompts are
chat messages with `{"type": "image"}` parts and an `images` column (TRL drops images of plain-text
prompts); the rewards read the row columns (`solution`, gold ids, utterances) by name.
"""

from __future__ import annotations

import logging

from f2rvlm.training.args import (
    F2RVLMGRPOConfig,
    ModelArguments,
    ScriptArguments,
    apply_max_pixels,
    parse_recipe_args,
)
from f2rvlm.training.callbacks import recipe_callbacks, train_and_save
from f2rvlm.training.examples import (
    ensure_dry_run_dataset,
    grpo_example,
    load_split,
    resolve_template,
)
from f2rvlm.training.loading import attach_adapter, load_model_and_processor, trainable_summary
from f2rvlm.training.trainers import DynamicSamplingGRPOTrainer, build_reward_funcs, check_rollout_constraint

logger = logging.getLogger("f2rvlm.grpo")


def main(script_args: ScriptArguments, training_args: F2RVLMGRPOConfig, model_args: ModelArguments):
    # ------------------------------------------------------------------ 1. set-up
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from transformers import set_seed

    set_seed(training_args.seed)
    if script_args.dry_run:
        ensure_dry_run_dataset(script_args, training_args.output_dir)
        script_args.dataset_train_split = "train_grpo"
        model_args.adapter_path = None  # the SFT output of a GPU recipe does not exist here
        logger.info("dry run: %s replaced by a tiny stand-in, data by %s", model_args.model_name_or_path,
                    script_args.dataset_path)
    check_rollout_constraint(training_args)  # vLLM rollouts cannot run the answer grammar: refuse, never drop it
    if training_args.use_vllm:
        import importlib.util

        if importlib.util.find_spec("vllm") is None:
            raise ImportError("use_vllm=true needs vLLM on a GPU machine: pip install vllm")

    # ------------------------------------------------------------------ 2. model
    model, processor = load_model_and_processor(model_args, dry_run=script_args.dry_run)
    apply_max_pixels(processor, training_args.max_pixels)  # released MAX_PIXELS (recipes/README.md)
    model.generation_config.do_sample = True

    # ------------------------------------------------------------------ 3. data
    train = load_split(script_args, script_args.dataset_train_split, script_args.max_train_samples)
    template = resolve_template(script_args, model, train[0])
    train = train.map(lambda row: grpo_example(row, template), desc="GRPO prompts")
    if "difficulty" in train.column_names:
        counts = {}
        for d in train["difficulty"]:
            counts[d] = counts.get(d, 0) + 1
        logger.info("curriculum buckets in training order: %s", counts)
    logger.info("train rows: %d (%s), template %s", len(train), script_args.dataset_train_split, template)

    model = attach_adapter(model, model_args)
    summary = trainable_summary(model)
    if summary["vision_trainable"]:
        raise RuntimeError("vision tower parameters are trainable; F2RVLM keeps the vision tower frozen")
    logger.info("parameters: %s", summary)

    # ------------------------------------------------------------------ 4. trainer
    reward_funcs, paper_weights = build_reward_funcs(training_args.reward_funcs)
    if training_args.reward_weights is None:
        training_args.reward_weights = paper_weights
    trainer = DynamicSamplingGRPOTrainer(
        model=model, reward_funcs=reward_funcs, args=training_args, train_dataset=train, processing_class=processor,
        callbacks=recipe_callbacks(script_args),
    )

    # ------------------------------------------------------------------ 5-6. train, save, record, export
    train_and_save(trainer, processor, "grpo", script_args, model_args, training_args,
                   extra={"template": template, "parameters": summary, "train_rows": len(train)},
                   carry_from=model_args.adapter_path or model_args.model_name_or_path)
    return trainer


if __name__ == "__main__":
    main(*parse_recipe_args((ScriptArguments, F2RVLMGRPOConfig, ModelArguments)))
