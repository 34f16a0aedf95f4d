#!/usr/bin/env python
"""SFT ("cold start") of F2RVLM: the answer-only loss (plus the optional relevance/topic heads).

    # GPUs (paper settings, Qwen2-VL-7B)
    accelerate launch --config_file recipes/accelerate/zero2.yaml recipes/sft.py --config recipes/qwen2-vl-7b/sft.yaml
    # one CPU, tiny model built offline
    python recipes/sft.py --config recipes/tiny-cpu/sft.yaml
    # validate a GPU recipe here without downloading (tiny stand-in, one step)
    python recipes/sft.py --config recipes/qwen2-vl-7b/sft.yaml --dry_run true
    # resume
    python recipes/sft.py --config ... --resume_from_checkpoint true

LoRA (r=8, alpha=32) on every linear layer of the LANGUAGE MODEL; the vision tower is frozen.
The F2RVLM processor's collator builds the batches (labels on the answer only, relevance targets
when the model has a head), so TRL's own dataset preparation is skipped and `max_length=None`
keeps image tokens whole.
"""

from __future__ import annotations

import logging

from f2rvlm.training.args import (
    F2RVLMSFTConfig,
    ModelArguments,
    ScriptArguments,
    apply_max_pixels,
    parse_recipe_args,
)
from f2rvlm.training.callbacks import recipe_callbacks, train_and_save
from f2rvlm.training.examples import (
    ensure_dry_run_dataset,
    load_split,
    resolve_template,
    training_texts,
)
from f2rvlm.training.loading import attach_adapter, load_model_and_processor, trainable_summary
from f2rvlm.training.trainers import make_sft_trainer_class

logger = logging.getLogger("f2rvlm.sft")


def topic_names(dataset) -> list[str]:
    """Sorted topic labels of the training rows (the topic head's classes)."""
    names = set()
    for utterances in dataset["utterances"]:
        names.update(u.get("topic") or "" for u in utterances)
    names.discard("")
    return sorted(names)


def main(script_args: ScriptArguments, training_args: F2RVLMSFTConfig, model_args: ModelArguments):
    # ------------------------------------------------------------------ 1. set-up
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from transformers import set_seed

    set_seed(training_args.seed)
    if script_args.dry_run:
        ensure_dry_run_dataset(script_args, training_args.output_dir)
        logger.info("dry run: %s replaced by a tiny stand-in, data by %s", model_args.model_name_or_path,
                    script_args.dataset_path)

    # ------------------------------------------------------------------ 2. data
    train = load_split(script_args, script_args.dataset_train_split, script_args.max_train_samples)
    topics = topic_names(train) if model_args.num_topics else []
    if model_args.num_topics and model_args.num_topics > 0 and model_args.num_topics != len(topics):
        logger.warning("num_topics=%d but the training rows carry %d topic labels: using %d",
                       model_args.num_topics, len(topics), len(topics))
    logger.info("train rows: %d (%s)", len(train), script_args.dataset_train_split)

    # ------------------------------------------------------------------ 3. model
    texts = None
    if model_args.tokenizer_from_data and (script_args.dry_run or model_args.model_name_or_path.startswith("tiny:")):
        texts = training_texts(train)
        logger.info("tiny tokenizer trained on %d training texts too", len(texts))
    model, processor = load_model_and_processor(model_args, dry_run=script_args.dry_run,
                                                num_topics=len(topics) or None, tokenizer_texts=texts)
    apply_max_pixels(processor, training_args.max_pixels)  # released MAX_PIXELS (recipes/README.md)
    template = resolve_template(script_args, model, train[0])
    has_head = getattr(model, "relevance_head", None) is not None
    has_topics = getattr(model, "topic_head", None) is not None and bool(topics)
    model = attach_adapter(model, model_args)
    summary = trainable_summary(model)
    logger.info("parameters: %s; template %s; relevance head %s; topic head %s", summary, template, has_head, has_topics)
    if summary["vision_trainable"]:
        raise RuntimeError("vision tower parameters are trainable; F2RVLM keeps the vision tower frozen")

    # ------------------------------------------------------------------ 4. trainer
    training_args.dataset_kwargs = {"skip_prepare_dataset": True}
    query_topics = bool(getattr(model.config, "relevance_query_features", False)) and has_topics \
        and model_args.query_topic_loss
    collator = processor.sft_collator(template=template, relevance=has_head, topics=topics if has_topics else None,
                                      query_topics=query_topics)
    trainer = make_sft_trainer_class()(
        model=model, args=training_args, train_dataset=train, data_collator=collator, processing_class=processor,
        callbacks=recipe_callbacks(script_args),
    )

    # ------------------------------------------------------------------ 5-6. train, save, record, export
    train_and_save(trainer, processor, "sft", script_args, model_args, training_args,
                   extra={"topics": topics, "template": template, "parameters": summary, "train_rows": len(train)})
    return trainer


if __name__ == "__main__":
    main(*parse_recipe_args((ScriptArguments, F2RVLMSFTConfig, ModelArguments)))
