"""Typed recipe arguments (TRL style, every field with `metadata={"help": ...}`), read by
`trl.TrlParser` from `recipes/<model>/<stage>.yaml` plus command-line overrides.

>>> args = ModelArguments(model_name_or_path="Qwen/Qwen2-VL-7B-Instruct")
>>> args.model_name_or_path
'Qwen/Qwen2-VL-7B-Instruct'
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

import torch

from ..models.hub import RELEASED_MAX_PIXELS  # noqa: F401 (re-exported: recipes, tests)

try:  # trl is a [train] extra; the dataclasses below subclass its configs
    from trl import GRPOConfig, SFTConfig
except ImportError as err:  # pragma: no cover
    raise ImportError("f2rvlm.training needs the [train] extra: pip install -e '.[train]'") from err

VISION_MODULE_PATTERN = re.compile(r"(^|\.)(visual|vision_tower|vision_model)(\.|$)")
#: Trainable F2RVLM head modules (fully trained beside LoRA, saved with the adapter).
HEAD_MODULES = ("relevance_head", "topic_head")


# ----------------------------------------------------------------------------------------------
# Arguments
# ----------------------------------------------------------------------------------------------
@dataclass
class ScriptArguments:
    """Data and run options shared by every recipe (what is not a trainer or model option)."""

    dataset_path: str | None = field(
        default=None,
        metadata={"help": "Dataset folder (Parquet + README `configs:`) or Hub id in the F2RVLM row schema "
                          "(docs/data.md). With --dry_run and no dataset, a tiny synthetic set is built."},
    )
    dataset_config: str | None = field(default=None, metadata={"help": "Dataset configuration name (`load_dataset(path, name)`)."})
    dataset_train_split: str = field(default="train_sft", metadata={"help": "Split to train on (train_sft for SFT, train_grpo for GRPO)."})
    dataset_eval_splits: list[str] = field(
        default_factory=lambda: ["validation", "test_heldout"],
        metadata={"help": "Splits that recipes/evaluate.py scores (and the model card reports)."},
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "Truncate the training split (debugging, CPU runs)."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Truncate each evaluation split."})
    template: str | None = field(
        default=None,
        metadata={"help": "Prompt template (protocol.TEMPLATES: zh, en, zh-query-last, en-query-last). "
                          "Default: the model config's `prompt_template`, else the row's language."},
    )
    dry_run: bool = field(
        default=False,
        metadata={"help": "Build trainer, model skeleton and data pipeline without downloading anything: the named "
                          "checkpoint is replaced by a tiny stand-in of the same family, the data by a tiny synthetic "
                          "set, and training stops after one step. Validates a GPU recipe on a CPU."},
    )
    time_budget_minutes: float | None = field(
        default=None, metadata={"help": "Stop training (and save) once this much wall-clock time has passed."},
    )
    plots: bool = field(default=True, metadata={"help": "Write loss/reward PNG curves next to each checkpoint."})
    save_merged: bool = field(
        default=False,
        metadata={"help": "Also save the adapter merged into its base under <output_dir>/merged (small models; the next "
                          "stage, the curriculum and the evaluation can load it as a plain folder)."},
    )
    export_dir: str | None = field(
        default=None,
        metadata={"help": "After training, merge the adapter and export an F2RVLM folder here (f2rvlm.models.hub.export_model), "
                          "with a generated model card."},
    )


@dataclass
class ModelArguments:
    """Which backbone, how to adapt it (LoRA on the language model only) and the optional heads."""

    model_name_or_path: str = field(
        default="tiny:qwen2_vl:pipeline",
        metadata={"help": "Checkpoint (Hub id or folder). `tiny:<family>:<size>` builds a tiny model offline "
                          "(f2rvlm.models.tiny.build_tiny), e.g. tiny:qwen2_vl:test."},
    )
    tiny_seed: int = field(default=0, metadata={"help": "Seed of a tiny model built from a config."})
    dtype: str = field(default="auto", metadata={"help": "Weights dtype: auto, bfloat16, float16, float32."})
    attn_implementation: str | None = field(default=None, metadata={"help": "e.g. flash_attention_2, sdpa, eager."})
    use_peft: bool = field(default=True, metadata={"help": "Train a LoRA adapter (False: full fine-tuning of the language model)."})
    lora_r: int = field(default=8, metadata={"help": "LoRA rank (paper: 8)."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha (paper: 32)."})
    lora_dropout: float = field(default=0.05, metadata={"help": "LoRA dropout."})
    lora_target: str = field(
        default="all-linear-language",
        metadata={"help": "`all-linear-language`: every nn.Linear of the language model (vision tower and lm_head "
                          "excluded), or a regex over module names (still filtered to the language model)."},
    )
    relevance_head: bool | None = field(
        default=None,
        metadata={"help": "Add/keep the relevance head (trained jointly by the SFT collator). None: keep the checkpoint's."},
    )
    num_topics: int | None = field(
        default=None,
        metadata={"help": "Topic head. SFT: -1 (or any non-zero value) sizes it from the training rows' topic labels "
                          "(a mismatching positive value is overridden, with a warning); None/0: no topic head "
                          "(other recipes: None keeps the checkpoint's)."},
    )
    answer_only_logits: bool = field(
        default=False, metadata={"help": "Project only supervised positions through the LM head in SFT (1.35x on CPU)."},
    )
    adapter_path: str | None = field(
        default=None, metadata={"help": "A trained LoRA adapter/checkpoint to start from (e.g. the SFT output for GRPO)."},
    )
    relevance_query_features: bool = field(
        default=False,
        metadata={"help": "Relevance head reads [line, query, line * query] (the query: hidden state at <|query_end|>) "
                          "and, with topics, the query position learns its gold fragment's topic. For models built "
                          "from scratch (`tiny:`): measured to make the head learn within minutes on a CPU."},
    )
    query_topic_loss: bool = field(
        default=True,
        metadata={"help": "With relevance_query_features and a topic head: also train the query position on its gold "
                          "fragment's topic."},
    )
    tokenizer_from_data: bool = field(
        default=False,
        metadata={"help": "`tiny:` models only: train the tiny BPE tokenizer (4k vocabulary) on the training rows' "
                          "utterances and queries too, so content words are whole tokens (the built-in corpus "
                          "splits them into characters)."},
    )
    init_token_embeddings: str | None = field(
        default=None,
        metadata={"help": "`minilm`: seed a `tiny:` model's token embeddings from the offline all-MiniLM-L6-v2 "
                          "(each token's text embedded, PCA to the hidden size, rescaled to the random init's "
                          "scale); None: random. Only for models built from scratch."},
    )


@dataclass
class F2RVLMSFTConfig(SFTConfig):
    """TRL `SFTConfig` with the F2RVLM defaults: answer-only loss via the processor's collator,
    `max_length=None` (image tokens are never truncated), no dataset preparation by TRL."""

    max_length: int | None = field(default=None, metadata={"help": "None: never truncate (image tokens must stay whole)."})
    remove_unused_columns: bool = field(default=False, metadata={"help": "Keep the row columns for the F2RVLM collator."})
    max_pixels: int | None = field(
        default=None, metadata={"help": "Image pixel budget of the processor (released: 602112 = 768 merged vision "
                                        "tokens); None keeps the processor's."})


@dataclass
class F2RVLMGRPOConfig(GRPOConfig):
    """TRL `GRPOConfig` plus the paper's rewards and dynamic sampling."""

    reward_funcs: list[str] = field(
        default_factory=lambda: ["fragment_f1", "coherence", "format"],
        metadata={"help": "Names in f2rvlm.training.rewards.REWARD_FUNCS (paper: fragment_f1, coherence, format)."},
    )
    dynamic_sampling_max_resamples: int = field(
        default=3,
        metadata={"help": "Dynamic sampling: at most this many re-draws for groups whose rewards have zero spread "
                          "(paper: 3; 0 = off)."},
    )
    dynamic_sampling: str = field(
        default="new_prompts",
        metadata={"help": "`new_prompts` (released, ms-swift `dynamic_sample`): zero-spread groups are dropped and NEW "
                          "prompts drawn (a second pass over the training set) until a full batch of groups with "
                          "spread is gathered, else the original batch is used; `regenerate`: the zero-spread groups' "
                          "completions are generated again from the same prompts (this project's earlier variant)."},
    )
    remove_unused_columns: bool = field(default=False, metadata={"help": "Keep dataset columns: the rewards read them."})
    shuffle_dataset: bool | None = field(default=False, metadata={"help": "False keeps the curriculum order (paper)."})
    max_pixels: int | None = field(
        default=None, metadata={"help": "Image pixel budget of the processor (released: 602112 = 768 merged vision "
                                        "tokens); None keeps the processor's."})
    rollout_constraint: str = field(
        default="grammar",
        metadata={"help": "`grammar`: rollouts are decoded under the same answer grammar as `retrieve` (every "
                          "completion parses, ids exist in its dialogue, ascending, unique), so no rollout is wasted "
                          "on a malformed answer (F1 reward 0), but the format reward is then always 1 and carries no "
                          "signal; `none`: TRL's plain sampling (the released setting, default of the Qwen recipes). vLLM "
                          "rollouts cannot run the grammar: `grammar` with `use_vllm` is refused (ValueError)."},
    )


def parse_recipe_args(dataclass_types, argv: list[str] | None = None):
    """`TrlParser` over `--config recipe.yaml` + overrides, made to run here:

    - without CUDA: bf16 / fp16 / gradient checkpointing / vLLM off, `use_cpu` on (TRL's GPU
      defaults fail on a CPU, docs/environment.md);
    - `--dry_run true`: one step, no checkpoint, a small completion budget, output under
      `outputs/dry_run/` unless `--output_dir` is given.
    """
    import sys

    from trl import TrlParser

    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    field_names = set()
    for t in dataclass_types:
        field_names |= set(t.__dataclass_fields__)
    if not torch.cuda.is_available():
        for flag, value in (("bf16", "false"), ("fp16", "false"), ("gradient_checkpointing", "false"),
                            ("use_cpu", "true"), ("use_vllm", "false")):
            if flag in field_names:
                extra += [f"--{flag}", value]
    dry = any(a in ("--dry_run", "--dry-run") and (i + 1 >= len(argv) or argv[i + 1].lower() not in ("false", "0"))
              for i, a in enumerate(argv)) or "--dry_run=true" in argv
    if dry:
        for flag, value in (("max_steps", "1"), ("save_strategy", "no"), ("report_to", "none"),
                            ("max_completion_length", "16"), ("logging_steps", "1"), ("num_generations", "4"),
                            ("per_device_train_batch_size", "4"), ("gradient_accumulation_steps", "1"),
                            ("max_new_tokens", "16"), ("max_train_samples", "8"), ("max_eval_samples", "4")):
            if flag in field_names:
                extra += [f"--{flag}", value]
        if "--output_dir" not in argv and "output_dir" in field_names:
            extra += ["--output_dir", os.path.join("outputs", "dry_run", os.path.basename(sys.argv[0]).replace(".py", ""))]
        if "--dry_run" not in argv:
            argv = [a for a in argv if a not in ("--dry-run",)] + ["--dry_run", "true"]
        else:
            argv = [("--dry_run" if a == "--dry-run" else a) for a in argv]
    parser = TrlParser(dataclass_types)
    return parser.parse_args_and_config(args=argv + extra)


def cpu_overrides(args) -> None:
    """TRL defaults that fail on a CPU (docs/environment.md): no bf16, no gradient checkpointing."""
    if not torch.cuda.is_available():
        args.use_cpu = True
        args.bf16 = False
        args.fp16 = False
        args.gradient_checkpointing = False
        if getattr(args, "use_vllm", False):
            args.use_vllm = False


#: `RELEASED_MAX_PIXELS` (602112 = 768 * 28 * 28, the released `MAX_PIXELS`) lives in `models.hub`,
#: whose `convert_released` writes it too; imported at the top of this module.


def apply_max_pixels(processor, max_pixels: int | None) -> None:
    """Cap the image processor's pixel budget (Qwen2-VL `size["longest_edge"]`, the released
    `MAX_PIXELS`); None leaves the processor's own."""
    image_processor = getattr(processor, "image_processor", None)
    if max_pixels is None or image_processor is None or getattr(image_processor, "size", None) is None:
        return
    size = image_processor.size
    if isinstance(size, dict):
        image_processor.size = {**size, "longest_edge": int(max_pixels)}
    else:
        size.longest_edge = int(max_pixels)
    if hasattr(image_processor, "max_pixels"):
        image_processor.max_pixels = int(max_pixels)
