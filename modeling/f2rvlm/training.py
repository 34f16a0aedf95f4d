"""Shared recipe code for `recipes/sft.py`, `recipes/grpo.py`, `recipes/curriculum.py`, `recipes/evaluate.py`.

- typed argument dataclasses (TRL style, every field with `metadata={"help": ...}`), read by
  `trl.TrlParser` from `recipes/<model>/<stage>.yaml` plus command-line overrides;
- model loading (a named checkpoint, a local folder, or a tiny stand-in built offline for
  `--dry_run` and the CPU pipeline), LoRA on the LANGUAGE MODEL's linear layers only (the vision
  tower is frozen and untouched);
- `DynamicSamplingGRPOTrainer`: TRL's GRPO trainer plus the paper's dynamic sampling (groups whose
  rewards have zero spread are re-generated, up to `dynamic_sampling_max_resamples` times);
- callbacks: loss / reward PNG plots next to the checkpoint, a wall-clock budget;
- dataset row -> SFT / GRPO example conversion.

Imports trl/peft lazily where it can, so `import f2rvlm.training` stays cheap for the config
dataclasses.

>>> args = ModelArguments(model_name_or_path="Qwen/Qwen2-VL-7B-Instruct")
>>> tiny_family_for(args.model_name_or_path)
'qwen2_vl'
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from transformers import TrainerCallback

try:  # trl is a [train] extra; the dataclasses below subclass its configs
    from trl import GRPOConfig, GRPOTrainer, SFTConfig
except ImportError as err:  # pragma: no cover
    raise ImportError("f2rvlm.training needs the [train] extra: pip install -e '.[train]'") from err

#: Substrings that mark a module as part of the vision tower (Qwen2/2.5/3-VL name it `visual`).
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
                          "(docs/CONTRACTS.md). With --dry_run and no dataset, a tiny synthetic set is built."},
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
        metadata={"help": "After training, merge the adapter and export an F2RVLM folder here (f2rvlm.hub.export_model), "
                          "with a generated model card."},
    )


@dataclass
class ModelArguments:
    """Which backbone, how to adapt it (LoRA on the language model only) and the optional heads."""

    model_name_or_path: str = field(
        default="tiny:qwen2_vl:pipeline",
        metadata={"help": "Checkpoint (Hub id or folder). `tiny:<family>:<size>` builds a tiny model offline "
                          "(f2rvlm.tiny.build_tiny), e.g. tiny:qwen2_vl:test."},
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


@dataclass
class F2RVLMGRPOConfig(GRPOConfig):
    """TRL `GRPOConfig` plus the paper's rewards and dynamic sampling."""

    reward_funcs: list[str] = field(
        default_factory=lambda: ["fragment_f1", "coherence", "format"],
        metadata={"help": "Names in f2rvlm.rewards.REWARD_FUNCS (paper: fragment_f1, coherence, format)."},
    )
    dynamic_sampling_max_resamples: int = field(
        default=3,
        metadata={"help": "Re-generate groups whose rewards have zero spread up to this many times (paper: 3; 0 = off)."},
    )
    remove_unused_columns: bool = field(default=False, metadata={"help": "Keep dataset columns: the rewards read them."})
    shuffle_dataset: bool | None = field(default=False, metadata={"help": "False keeps the curriculum order (paper)."})
    rollout_constraint: str = field(
        default="grammar",
        metadata={"help": "`grammar`: rollouts are decoded under the same answer grammar as `retrieve` (every "
                          "completion parses, ids exist in its dialogue, ascending, unique), so no rollout is wasted "
                          "on a malformed answer (F1 reward 0); `none`: TRL's plain sampling."},
    )


# ----------------------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------------------
_FAMILY_PATTERNS = (("qwen3", "qwen3_vl"), ("qwen2.5", "qwen2_5_vl"), ("qwen2_5", "qwen2_5_vl"), ("qwen2", "qwen2_vl"))


def tiny_family_for(name: str) -> str:
    """Backbone family of a checkpoint name (for the tiny dry-run stand-in)."""
    if name.startswith("tiny:"):
        return name.split(":")[1]
    lower = name.lower()
    for key, family in _FAMILY_PATTERNS:
        if key in lower:
            return family
    raise ValueError(f"cannot tell the backbone family of {name!r}; name a Qwen2-VL/Qwen2.5-VL/Qwen3-VL checkpoint")


def is_vision_module(name: str) -> bool:
    return bool(VISION_MODULE_PATTERN.search(name))


def language_model_linear_names(model: torch.nn.Module, pattern: str = "all-linear-language") -> list[str]:
    """Full names of the `nn.Linear` modules LoRA adapts: the language model only.

    Excludes the vision tower (and its merger), `lm_head` and the F2RVLM heads (those are trained
    in full via `modules_to_save`).
    """
    regex = None if pattern == "all-linear-language" else re.compile(pattern)
    names = []
    for name, module in model.named_modules():
        if not isinstance(module, torch.nn.Linear) or is_vision_module(name):
            continue
        leaf = name.rsplit(".", 1)[-1]
        if leaf == "lm_head" or leaf in HEAD_MODULES:
            continue
        if regex is not None and not regex.search(name):
            continue
        names.append(name)
    if not names:
        raise ValueError(f"no language-model linear layer matches lora_target={pattern!r}")
    return names


def freeze_vision_tower(model: torch.nn.Module) -> int:
    """Set requires_grad=False on every vision-tower parameter; returns how many tensors."""
    count = 0
    for name, param in model.named_parameters():
        if is_vision_module(name):
            param.requires_grad_(False)
            count += 1
    return count


def lora_config_for(model: torch.nn.Module, args: ModelArguments):
    from peft import LoraConfig

    heads = [h for h in HEAD_MODULES if getattr(model, h, None) is not None]
    return LoraConfig(
        r=args.lora_r, lora_alpha=args.lora_alpha, lora_dropout=args.lora_dropout, bias="none",
        target_modules=language_model_linear_names(model, args.lora_target),
        modules_to_save=heads or None, task_type="CAUSAL_LM",
    )


def _torch_dtype(name: str):
    return {"auto": "auto", "bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}[name]


def load_pretrained(name: str, model_args: ModelArguments, num_topics: int | None = None):
    """A checkpoint (stock Qwen-VL or F2RVLM folder / Hub id) as the F2RVLM class of its family.

    A stock checkpoint gains the F2RVLM config fields; heads asked for are initialised fresh."""
    from transformers import AutoConfig

    from .modeling_f2rvlm import MODEL_CLASSES
    from .processing_f2rvlm import F2RVLMProcessor

    config_file = os.path.join(name, "config.json")
    if os.path.isfile(config_file):
        with open(config_file, encoding="utf-8") as f:
            model_type = json.load(f)["model_type"]
    else:
        model_type = AutoConfig.from_pretrained(name).model_type
    family = tiny_family_for(model_type)
    if model_type.startswith("f2rvlm") and model_args.relevance_head is None and not num_topics:
        from .hub import load_model

        dtype = None if model_args.dtype == "auto" else _torch_dtype(model_args.dtype)
        return load_model(name, device="cpu", dtype=dtype)
    overrides = {}
    if model_args.relevance_head is not None:
        overrides["relevance_head"] = model_args.relevance_head
    if num_topics is not None:
        overrides["num_topics"] = num_topics
    kwargs = {"dtype": _torch_dtype(model_args.dtype)}
    if model_args.attn_implementation:
        kwargs["attn_implementation"] = model_args.attn_implementation
    model = MODEL_CLASSES[family].from_pretrained(name, **kwargs, **overrides)
    processor = F2RVLMProcessor.from_pretrained(name)
    return model, processor


def load_model_and_processor(model_args: ModelArguments, dry_run: bool = False, size: str = "test",
                             num_topics: int | None = None, tokenizer_texts=None):
    """(model, processor) for a recipe. `tiny:` names and `--dry_run` build offline; folders load
    through f2rvlm.hub.load_model; a trained adapter is loaded on top when `adapter_path` is set."""
    name = model_args.model_name_or_path
    if dry_run or name.startswith("tiny:"):
        from .tiny import build_tiny

        parts = name.split(":")
        family = tiny_family_for(name)
        tiny_size = parts[2] if name.startswith("tiny:") and len(parts) > 2 else size
        overrides = {"num_topics": num_topics} if num_topics else {}
        if model_args.relevance_query_features:
            overrides["relevance_query_features"] = True
        model, processor = build_tiny(
            family=family, size=tiny_size, seed=model_args.tiny_seed,
            relevance_head=bool(model_args.relevance_head), tokenizer_texts=tokenizer_texts, **overrides,
        )
    else:
        model, processor = load_pretrained(name, model_args, num_topics=num_topics)
    if model_args.init_token_embeddings not in (None, "", "none") and (dry_run or name.startswith("tiny:")):
        seed_token_embeddings(model, processor.tokenizer, model_args.init_token_embeddings)
    if model_args.answer_only_logits and hasattr(model.config, "answer_only_logits"):
        model.config.answer_only_logits = True
    processor.tokenizer.padding_side = "left"  # TRL left-pads GRPO prompts; Qwen-VL rope needs it (ENVIRONMENT.md)
    freeze_vision_tower(model)
    return model, processor


@torch.no_grad()
def seed_token_embeddings(model, tokenizer, source: str = "minilm", embedder=None) -> int:
    """Replace the input token embeddings of a model built from scratch by `source`'s view of each
    token's text: embed every token string (all-MiniLM-L6-v2 by default, offline), centre, project
    on the top principal components to the hidden size and rescale to the current embeddings'
    standard deviation. Returns how many rows were set."""
    import numpy as np

    if source != "minilm":
        raise ValueError(f"unknown token embedding source {source!r}; choose `minilm`")
    if embedder is None:
        from .embeddings import MiniLMCaptionEmbedder

        embedder = MiniLMCaptionEmbedder(batch_size=256)
    weight = model.get_input_embeddings().weight
    n = min(len(tokenizer), weight.shape[0])
    texts = tokenizer.batch_decode([[i] for i in range(n)], skip_special_tokens=False,
                                   clean_up_tokenization_spaces=False)
    vectors = embedder.embed_texts([t.strip() or t for t in texts]).astype(np.float64)
    vectors -= vectors.mean(0, keepdims=True)
    hidden = weight.shape[1]
    _, _, vt = np.linalg.svd(vectors, full_matrices=False)
    projected = vectors @ vt[:hidden].T
    if projected.shape[1] < hidden:  # fewer components than the hidden size: pad with zeros
        projected = np.pad(projected, ((0, 0), (0, hidden - projected.shape[1])))
    projected *= float(weight[:n].std()) / max(float(projected.std()), 1e-8)
    weight[:n] = torch.as_tensor(projected, dtype=weight.dtype, device=weight.device)
    return n


def attach_adapter(model, model_args: ModelArguments, is_trainable: bool = True):
    """Wrap the model with LoRA (new, or loaded from `adapter_path`); vision tower untouched."""
    if not model_args.use_peft:
        freeze_vision_tower(model)
        return model
    from peft import PeftModel, get_peft_model

    if model_args.adapter_path:
        model = PeftModel.from_pretrained(model, model_args.adapter_path, is_trainable=is_trainable)
    else:
        model = get_peft_model(model, lora_config_for(model, model_args))
    freeze_vision_tower(model)
    return model


def save_merged(model, processor, out_dir: str) -> str:
    """Merge a LoRA adapter (and its trained heads) into the base and save a full model folder
    (safetensors) with its processor: what curriculum, evaluation and the next stage load."""
    from .hub import save_f2rvlm_folder

    merged = model.merge_and_unload() if hasattr(model, "merge_and_unload") else model
    if hasattr(merged, "module"):  # DDP wrapper
        merged = merged.module
    return save_f2rvlm_folder(merged, processor, out_dir)


def trainable_summary(model) -> dict:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    vision_trainable = sum(p.numel() for n, p in model.named_parameters() if p.requires_grad and is_vision_module(n))
    return {"total": total, "trainable": trainable, "vision_trainable": vision_trainable}


# ----------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------
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
    from .data import build_synthetic

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
    from .dialogue import Dialogue
    from .protocol import build_messages

    dialogue = Dialogue.from_row(row)
    example = dict(row)
    example["prompt"] = build_messages(dialogue, row["query"], template=template)
    return example


# ----------------------------------------------------------------------------------------------
# SFT with the F2RVLM heads
# ----------------------------------------------------------------------------------------------
def make_sft_trainer_class():
    """`F2RVLMSFTTrainer`: TRL's SFTTrainer whose loss is the F2RVLM model's own loss.

    TRL 1.16's SFTTrainer computes the loss itself from a fused LM head (`fused_lm_head=True`,
    `-outputs.log_probs`) that runs the backbone only, so the relevance / topic head losses of the
    F2RVLM forward would be silently dropped (measured: heads untrained). Here the model's forward
    runs as written: answer loss (answer-only logits when configured) + weighted head losses;
    the parts are logged as `lm_loss`, `relevance_loss`, `topic_loss`.
    """
    from trl import SFTTrainer

    class F2RVLMSFTTrainer(SFTTrainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            outputs = model(**inputs, num_items_in_batch=num_items_in_batch)
            mode = "train" if model.training else "eval"
            for part in ("lm_loss", "relevance_loss", "topic_loss"):
                value = getattr(outputs, part, None)
                if value is not None:
                    self._metrics[mode][part].append(float(self.accelerator.gather(value.detach()).mean()))
            return (outputs.loss, outputs) if return_outputs else outputs.loss

    return F2RVLMSFTTrainer


# ----------------------------------------------------------------------------------------------
# Dynamic sampling GRPO
# ----------------------------------------------------------------------------------------------
class DynamicSamplingGRPOTrainer(GRPOTrainer):
    """GRPO with the paper's dynamic sampling: after generation, groups (the `num_generations`
    completions of one prompt) whose weighted rewards have zero spread carry no advantage, so their
    completions are generated again, up to `args.dynamic_sampling_max_resamples` times; the last
    draw is kept. TRL 1.16 has no such option (checked: `grpo_trainer.py` only logs
    `frac_reward_zero_std`).

    The decision is taken on the rewards gathered over all processes, so every process re-generates
    in lock-step (collectives stay matched); with several processes each re-generates its whole
    local batch and keeps the completions of zero-spread groups only. Logged:
    `dynamic_sampling/resampled_groups`, `dynamic_sampling/zero_std_groups_after`.
    """

    def _generate_and_score_completions(self, inputs):
        self._ds_inputs = inputs
        try:
            return super()._generate_and_score_completions(inputs)
        finally:
            self._ds_inputs = None

    # -- grammar-constrained rollouts ---------------------------------------------------------
    def _rollout_grammars(self, indices: Sequence[int]):
        """One `AnswerGrammar` per rollout row (`indices` into the current inputs), or None when
        rollouts are unconstrained or the rows lack the dialogue columns."""
        inputs = getattr(self, "_ds_inputs", None)
        if getattr(self.args, "rollout_constraint", "none") != "grammar" or inputs is None or self.tools:
            return None
        from .protocol import AnswerGrammar

        grammars = []
        for i in indices:
            row = inputs[i]
            if "utterances" not in row:
                return None
            grammars.append(AnswerGrammar(range(len(row["utterances"])), range(len(row.get("images") or []))))
        return grammars

    def _generate_subset(self, prompts: list, indices: Sequence[int]):
        """`GRPOTrainer._generate` on `prompts` (rows `indices` of the inputs), constrained by their grammars."""
        grammars = self._rollout_grammars(indices)
        if grammars is None or self.use_vllm:
            return super()._generate(prompts)
        from transformers import LogitsProcessorList

        from .generation_f2rvlm import AnswerConstraint

        model = self.accelerator.unwrap_model(self.model)
        tokenizer = getattr(self.processing_class, "tokenizer", self.processing_class)
        original = model.generate

        def constrained_generate(*args, **kwargs):
            prompt_length = kwargs["input_ids"].shape[1]
            processors = LogitsProcessorList(kwargs.pop("logits_processor", None) or [])
            processors.append(AnswerConstraint(tokenizer, grammars, prompt_length))
            return original(*args, logits_processor=processors, **kwargs)

        model.generate = constrained_generate
        try:
            return super()._generate(prompts)
        finally:
            del model.generate  # back to the class method

    def _generate(self, prompts: list):
        result = self._generate_subset(prompts, list(range(len(prompts))))
        max_resamples = getattr(self.args, "dynamic_sampling_max_resamples", 0)
        inputs = getattr(self, "_ds_inputs", None)
        if not self.model.training or max_resamples <= 0 or inputs is None or self.tools:
            return result
        G = self.num_generations
        weights = self.reward_weights.to(self.accelerator.device)
        local_n = len(prompts)
        offset = self.accelerator.process_index * local_n
        resampled = 0
        for _ in range(max_resamples):
            completion_ids, completions = result[1], result[3]
            per_func = self._calculate_rewards(inputs, prompts, completions, completion_ids)  # gathered
            rewards = torch.nan_to_num((per_func * weights.unsqueeze(0)).nansum(dim=1))
            groups = rewards.view(-1, G)
            zero = torch.isclose(groups.std(dim=1), torch.zeros(groups.shape[0], device=groups.device))
            if not bool(zero.any()):
                break
            resampled += int(zero.sum())
            bad_global = zero.repeat_interleave(G)
            bad_local = [i for i in range(local_n) if bool(bad_global[offset + i])]
            if self.accelerator.num_processes == 1:
                subset = bad_local
                new = self._generate_subset([prompts[i] for i in subset], subset)
            else:  # every process generates (collectives inside _generate must match)
                subset = list(range(local_n))
                new = self._generate_subset(prompts, subset)
            result = _splice(result, new, subset, keep=set(bad_local))
        self._metrics["train"]["dynamic_sampling/resampled_groups"].append(float(resampled))
        return result


def _splice(result: tuple, new: tuple, subset: list[int], keep: set[int]) -> tuple:
    """Replace entries `i in keep` of `result`'s per-completion lists with `new`'s (indexed by subset)."""
    out = list(result)
    for slot in (0, 1, 2, 3, 4):  # prompt_ids, completion_ids, tool_mask, completions, logprobs
        old_list, new_list = result[slot], new[slot]
        if old_list is None or new_list is None:
            continue
        old_list = list(old_list)
        for j, i in enumerate(subset):
            if i in keep:
                old_list[i] = new_list[j]
        out[slot] = old_list
    return tuple(out)


def build_reward_funcs(names: Sequence[str]):
    """Reward callables (named as TRL logs them) and their paper weights."""
    from .rewards import get_reward_funcs

    funcs, weights = get_reward_funcs(list(names))
    return funcs, [float(w) for w in weights]


# ----------------------------------------------------------------------------------------------
# Callbacks, plots, records
# ----------------------------------------------------------------------------------------------
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
            from .model_card import export_trained

            export_trained(out, script_args.export_dir, base=model_args)
    trainer.accelerator.wait_for_everyone()
    print(f"{stage.upper()} done on process {trainer.accelerator.process_index}: {out}", flush=True)
    return result


def parse_recipe_args(dataclass_types, argv: list[str] | None = None):
    """`TrlParser` over `--config recipe.yaml` + overrides, made to run here:

    - without CUDA: bf16 / fp16 / gradient checkpointing / vLLM off, `use_cpu` on (TRL's GPU
      defaults fail on a CPU, ENVIRONMENT.md);
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
    """TRL defaults that fail on a CPU (ENVIRONMENT.md): no bf16, no gradient checkpointing."""
    if not torch.cuda.is_available():
        args.use_cpu = True
        args.bf16 = False
        args.fp16 = False
        args.gradient_checkpointing = False
        if getattr(args, "use_vllm", False):
            args.use_vllm = False
