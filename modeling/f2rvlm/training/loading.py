"""Model loading for the recipes: a named checkpoint, a local folder, or a tiny stand-in built
offline (`--dry_run`, CPU pipeline); LoRA on the LANGUAGE MODEL's linear layers only (the vision
tower is frozen and untouched); merged saves.
"""

from __future__ import annotations

import json
import os
import re

import torch

# ----------------------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------------------
from ..models.registry_f2rvlm import family_for_checkpoint, get_family
from .args import HEAD_MODULES, VISION_MODULE_PATTERN, ModelArguments


def tiny_family_for(name: str) -> str:
    """Backbone family of a checkpoint name (for the tiny dry-run stand-in)."""
    if name.startswith("tiny:"):
        return get_family(name.split(":")[1]).name
    return family_for_checkpoint(name).name


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

    from ..models.modeling_f2rvlm import MODEL_CLASSES
    from ..models.processing_f2rvlm import F2RVLMProcessor

    config_file = os.path.join(name, "config.json")
    if os.path.isfile(config_file):
        with open(config_file, encoding="utf-8") as f:
            model_type = json.load(f)["model_type"]
    else:
        model_type = AutoConfig.from_pretrained(name).model_type
    family = tiny_family_for(model_type)
    if model_type.startswith("f2rvlm") and model_args.relevance_head is None and not num_topics:
        from ..models.hub import load_model

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
    through f2rvlm.models.hub.load_model; a trained adapter is loaded on top when `adapter_path` is set."""
    name = model_args.model_name_or_path
    if dry_run or name.startswith("tiny:"):
        from ..models.tiny import build_tiny

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
    processor.tokenizer.padding_side = "left"  # TRL left-pads GRPO prompts; Qwen-VL rope needs it (docs/environment.md)
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
        from ..embeddings import MiniLMCaptionEmbedder

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
    from ..models.hub import save_f2rvlm_folder

    merged = model.merge_and_unload() if hasattr(model, "merge_and_unload") else model
    if hasattr(merged, "module"):  # DDP wrapper
        merged = merged.module
    return save_f2rvlm_folder(merged, processor, out_dir)


def trainable_summary(model) -> dict:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    vision_trainable = sum(p.numel() for n, p in model.named_parameters() if p.requires_grad and is_vision_module(n))
    return {"total": total, "trainable": trainable, "vision_trainable": vision_trainable}
