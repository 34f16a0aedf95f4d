"""Trainers: SFT with the F2RVLM heads' losses, and GRPO with the paper's dynamic sampling (groups
whose rewards have zero spread are re-generated, up to `dynamic_sampling_max_resamples` times)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from trl import GRPOTrainer

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
        from ..core.protocol import AnswerGrammar

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

        from ..models.generation_f2rvlm import AnswerConstraint

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
