"""Resuming a recipe from a checkpoint: every weight, or a loud failure.

Why this module exists (measured, transformers 5.24): `save_pretrained` writes an F2RVLM model's
weights in the backbone's ORIGINAL key layout (`model.layers.*`, `visual.*`), because the
F2RVLM classes share Qwen-VL's checkpoint conversions (`modeling_f2rvlm._share_checkpoint_conversions`)
and saving reverts them. `from_pretrained` converts them back, but `Trainer._load_from_checkpoint`
loads the file with a plain `load_state_dict(strict=False)`: only the keys whose names did not
change (`lm_head`, the relevance / topic heads) were restored, the ~45 backbone tensors were
"missing" (a logged warning), and the run went on from the freshly built weights while the step
counter, optimiser and scheduler resumed (loss 1.64 -> 5.13 in the tiny CPU SFT).

`ResumeMixin._load_from_checkpoint` (mixed into both recipe trainers) instead:

- full-model checkpoints: reads the safetensors file(s), maps every key through the model's own
  conversion renamings (what `from_pretrained` does), loads strictly and raises
  `CheckpointResumeError` if one model tensor is left unset or one file tensor is left unused;
- LoRA checkpoints: loads the adapter (LoRA weights plus the heads trained as `modules_to_save`)
  with PEFT, then checks that EVERY trainable parameter now equals its tensor in the file.

Optimiser, scheduler, RNG and the data position are the Trainer's own resume (the GRPO
trainer adds its dynamic-sampling draw position, `trainers.DynamicSamplingGRPOTrainer`).
"""

from __future__ import annotations

import json
import logging
import os
import re

import torch

logger = logging.getLogger(__name__)

SAFE_WEIGHTS = "model.safetensors"
SAFE_INDEX = "model.safetensors.index.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"


class CheckpointResumeError(RuntimeError):
    """A checkpoint that cannot restore every weight of the model being trained."""


def _read_safetensors(folder: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    single = os.path.join(folder, SAFE_WEIGHTS)
    if os.path.isfile(single):
        return load_file(single, device="cpu")
    index = os.path.join(folder, SAFE_INDEX)
    if os.path.isfile(index):
        with open(index, encoding="utf-8") as f:
            shards = sorted(set(json.load(f)["weight_map"].values()))
        state: dict[str, torch.Tensor] = {}
        for shard in shards:
            state.update(load_file(os.path.join(folder, shard), device="cpu"))
        return state
    raise CheckpointResumeError(f"{folder}: no {SAFE_WEIGHTS} or {SAFE_INDEX} (a .bin checkpoint is not resumed)")


def to_model_keys(model: torch.nn.Module, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`state_dict` saved by `save_pretrained` with its keys renamed to `model.state_dict()`'s, through
    the conversions `from_pretrained` applies (renamings only; a checkpoint needing a tensor
    converter, e.g. fused experts, is refused)."""
    expected = set(model.state_dict())
    if set(state_dict) <= expected:
        return state_dict
    from transformers.conversion_mapping import get_model_conversion_mapping
    from transformers.core_model_loading import WeightConverter, WeightRenaming, rename_source_key

    conversions = getattr(model, "_weight_conversions", None) or get_model_conversion_mapping(model)
    renamings = [c for c in conversions if isinstance(c, WeightRenaming)]
    converters = [c for c in conversions if isinstance(c, WeightConverter)]
    if converters:
        raise CheckpointResumeError(f"{type(model).__name__} checkpoints need tensor converters "
                                    f"({len(converters)}); resuming them is not supported")
    renamed = {}
    for key, tensor in state_dict.items():
        new = key if key in expected else rename_source_key(key, renamings, [])[0]
        if new in renamed:
            raise CheckpointResumeError(f"checkpoint keys collide after renaming: {key} -> {new}")
        renamed[new] = tensor
    return renamed


def _tied_to_loaded(model: torch.nn.Module, missing: list[str], loaded: set[str]) -> list[str]:
    """`missing` minus the tensors that share storage with a loaded one (tied embeddings)."""
    params = dict(model.state_dict(keep_vars=True))
    loaded_ptrs = {params[k].data_ptr() for k in loaded if k in params}
    return [k for k in missing if params[k].data_ptr() not in loaded_ptrs]


def load_full_checkpoint(model: torch.nn.Module, folder: str) -> int:
    """Load a `save_pretrained` folder into `model` (the live training model). Every model tensor
    must come from the file and every file tensor must land; else `CheckpointResumeError`.
    Returns the number of tensors loaded."""
    state = to_model_keys(model, _read_safetensors(folder))
    result = model.load_state_dict(state, strict=False)
    missing = _tied_to_loaded(model, list(result.missing_keys), set(state) - set(result.unexpected_keys))
    if missing or result.unexpected_keys:
        raise CheckpointResumeError(
            f"resume from {folder} would not restore the model: {len(missing)} model tensors missing from the "
            f"checkpoint {missing[:8]}, {len(result.unexpected_keys)} checkpoint tensors unused "
            f"{list(result.unexpected_keys)[:8]}")
    return len(state)


def _adapter_key(param_name: str, adapter: str) -> str:
    """PEFT parameter name -> its key in `adapter_model.safetensors`."""
    name = param_name.replace(f".modules_to_save.{adapter}.", ".")
    return re.sub(rf"\.{re.escape(adapter)}\.(weight|bias)$", r".\1", name).replace(f".{adapter}.", ".")


def check_adapter_loaded(model: torch.nn.Module, folder: str, adapter: str = "default") -> int:
    """Every trainable parameter of the PEFT `model` equals its tensor in `folder`'s adapter file
    (LoRA weights and the heads trained as `modules_to_save`); else `CheckpointResumeError`."""
    from safetensors.torch import load_file

    path = os.path.join(folder, ADAPTER_WEIGHTS)
    if not os.path.isfile(path):
        raise CheckpointResumeError(f"{folder}: no {ADAPTER_WEIGHTS} for the LoRA model being trained")
    saved = load_file(path, device="cpu")
    unset, differ, used = [], [], set()
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        key = _adapter_key(name, adapter)
        if key not in saved:
            unset.append(name)
        elif not torch.equal(param.detach().cpu(), saved[key].to(param.dtype)):
            differ.append(name)
        used.add(key)
    unused = sorted(set(saved) - used)
    if unset or differ or unused:
        raise CheckpointResumeError(
            f"resume from {folder} would not restore the adapter: {len(unset)} trainable tensors not in the file "
            f"{unset[:8]}, {len(differ)} not loaded {differ[:8]}, {len(unused)} file tensors unused {unused[:8]}")
    return len(used)


def is_peft(model) -> bool:
    try:
        from peft import PeftModel
    except ImportError:  # pragma: no cover
        return False
    return isinstance(model, PeftModel)


EXTRA_STATE = "f2rvlm_resume.json"


class ResumeMixin:
    """`Trainer._load_from_checkpoint` that restores every weight or raises `CheckpointResumeError`
    (DeepSpeed / FSDP checkpoints keep the Trainer's own path: their engines load strictly), plus
    a trainer's own position (`_resume_extra_state`, written as `f2rvlm_resume.json` in every
    checkpoint and handed back to `_load_resume_extra_state` before a resumed run starts)."""

    def _resume_extra_state(self) -> dict:
        return {}

    def _load_resume_extra_state(self, state: dict, global_step: int) -> None:
        pass

    def _save_checkpoint(self, model, trial):
        super()._save_checkpoint(model, trial)
        if self.args.should_save:
            from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

            folder = os.path.join(self._get_output_dir(trial=trial), f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}")
            if os.path.isdir(folder):
                with open(os.path.join(folder, EXTRA_STATE), "w", encoding="utf-8") as f:
                    json.dump(self._resume_extra_state(), f)

    def train(self, resume_from_checkpoint=None, *args, **kwargs):
        if isinstance(resume_from_checkpoint, bool) and resume_from_checkpoint:
            from transformers.trainer_utils import get_last_checkpoint

            resume_from_checkpoint = get_last_checkpoint(self.args.output_dir)
            if resume_from_checkpoint is None:
                raise CheckpointResumeError(f"resume asked for but no checkpoint-* folder in {self.args.output_dir}")
        if resume_from_checkpoint:
            self._check_resume_files(resume_from_checkpoint)
            extra, step = {}, 0
            path = os.path.join(resume_from_checkpoint, EXTRA_STATE)
            if os.path.isfile(path):
                with open(path, encoding="utf-8") as f:
                    extra = json.load(f)
            state_path = os.path.join(resume_from_checkpoint, "trainer_state.json")
            if os.path.isfile(state_path):
                with open(state_path, encoding="utf-8") as f:
                    step = int(json.load(f).get("global_step", 0))
            self._load_resume_extra_state(extra, step)
        return super().train(resume_from_checkpoint, *args, **kwargs)

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        if getattr(self, "is_deepspeed_enabled", False) or getattr(self, "is_fsdp_enabled", False):
            return super()._load_from_checkpoint(resume_from_checkpoint, model)
        model = self.model if model is None else model
        self._check_resume_schedule(resume_from_checkpoint)
        if is_peft(model):
            adapter = model.active_adapters[0] if hasattr(model, "active_adapters") else "default"
            model.load_adapter(resume_from_checkpoint, adapter, is_trainable=True)
            n = check_adapter_loaded(model, resume_from_checkpoint, adapter)
        else:
            n = load_full_checkpoint(model, resume_from_checkpoint)
        logger.info("resumed %d weight tensors from %s", n, resume_from_checkpoint)

    def _check_resume_files(self, folder: str) -> None:
        """The trainer state, optimiser and scheduler must be there (the Trainer skips missing ones
        silently, e.g. a `save_only_model` checkpoint): raise instead."""
        if not os.path.isdir(folder):
            raise CheckpointResumeError(f"resume_from_checkpoint={folder!r} is not a folder")
        needed = ["trainer_state.json"]
        if not (getattr(self, "is_deepspeed_enabled", False) or getattr(self, "is_fsdp_enabled", False)):
            needed += ["optimizer.pt", "scheduler.pt"]
        absent = [name for name in needed if not os.path.isfile(os.path.join(folder, name))]
        if absent:
            raise CheckpointResumeError(f"{folder} lacks {absent}: resuming from it would restart the optimiser or "
                                        "schedule (a save_only_model checkpoint cannot be resumed)")

    def _check_resume_schedule(self, folder: str) -> None:
        """A different max_steps / epoch count changes the LR schedule the optimiser state was saved
        under (the first resumed step then runs at the old schedule's learning rate): warn."""
        path = os.path.join(folder, "trainer_state.json")
        if not os.path.isfile(path):
            return
        with open(path, encoding="utf-8") as f:
            saved = json.load(f)
        if self.args.max_steps > 0 and saved.get("max_steps") not in (None, self.args.max_steps):
            logger.warning("resuming with max_steps=%d from a run planned for %s steps: the learning-rate schedule "
                           "differs from the interrupted run's", self.args.max_steps, saved.get("max_steps"))
