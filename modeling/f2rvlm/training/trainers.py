"""Trainers: SFT with the F2RVLM heads' losses, and GRPO with the paper's dynamic sampling (groups
whose rewards have zero spread are dropped and new prompts drawn, as released; re-generating them
from the same prompts is the `dynamic_sampling: regenerate` option)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from trl import GRPOTrainer

from .resume import ResumeMixin

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

    class F2RVLMSFTTrainer(ResumeMixin, SFTTrainer):
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
ROLLOUT_CONSTRAINTS = ("none", "grammar")


def check_rollout_constraint(args) -> None:
    """Refuse settings under which the answer grammar would be silently dropped.

    `rollout_constraint: grammar` masks each rollout's logits with its row's `AnswerGrammar` (ids
    that exist in that dialogue, ascending, unique) through a transformers logits processor on
    `model.generate`. vLLM rollouts never call `model.generate` and TRL passes vLLM one regex for
    every prompt (`vllm_structured_outputs_regex`), which cannot say which ids each dialogue has,
    so with `use_vllm` the rollouts would be plain sampling while the run claims grammar-constrained
    ones. Raises ValueError naming both ways out.

    >>> from types import SimpleNamespace
    >>> check_rollout_constraint(SimpleNamespace(use_vllm=True, rollout_constraint="none"))
    >>> check_rollout_constraint(SimpleNamespace(use_vllm=False, rollout_constraint="grammar"))
    """
    constraint = getattr(args, "rollout_constraint", "none")
    if constraint not in ROLLOUT_CONSTRAINTS:
        raise ValueError(f"rollout_constraint must be one of {ROLLOUT_CONSTRAINTS}, got {constraint!r}")
    if constraint == "grammar" and getattr(args, "use_vllm", False):
        raise ValueError(
            "rollout_constraint=grammar cannot be kept with use_vllm=true: the per-dialogue answer grammar is a "
            "transformers logits processor that vLLM rollouts do not run, so they would be unconstrained. Use "
            "--rollout_constraint none with --use_vllm true (the released setting: plain sampling, the format "
            "reward keeps its signal), or --use_vllm false to decode rollouts under the grammar.")


class DynamicSamplingGRPOTrainer(ResumeMixin, GRPOTrainer):
    """GRPO with the paper's dynamic sampling. Groups (the `num_generations` completions of one
    prompt) whose weighted rewards have zero spread carry no advantage. TRL 1.16 has no such option
    (checked: `grpo_trainer.py` only logs `frac_reward_zero_std`).

    `args.dynamic_sampling = "new_prompts"` (default, the released ms-swift 3.5 `dynamic_sample`,
    `max_resample_times` 3): the groups with spread of the batch are kept in a pool and the
    zero-spread ones dropped; a NEW batch of prompts is drawn from a second pass over the training
    set (its own sampler, seed + 1, same order rule) and generated, up to
    `dynamic_sampling_max_resamples` draws, until the pool holds a full generation batch, which is
    then trained on (first rows first). A batch whose groups all have spread ends the search; when
    the pool is not full at that point (released behaviour, also when a re-drawn batch had spread
    everywhere) or after the last draw, the original batch is used. The kept completions are
    scored again by TRL's own path (the rewards are deterministic). One process only; with several
    processes this mode falls back to `regenerate` (logged once).

    `args.dynamic_sampling = "regenerate"`: the zero-spread groups' completions are generated again
    from the same prompts, up to `dynamic_sampling_max_resamples` times; the last draw is kept. The
    decision is taken on the rewards gathered over all processes, so every process re-generates in
    lock-step (collectives stay matched); with several processes each re-generates its whole local
    batch and keeps the completions of zero-spread groups only.

    Logged: `dynamic_sampling/resampled_groups` (zero-spread groups met), and for `new_prompts`
    `dynamic_sampling/new_batches` (batches drawn) and `dynamic_sampling/used_new_prompts` (1 when
    the trained batch came from the pool).
    """

    def __init__(self, *args, **kwargs):
        config = kwargs.get("args", args[2] if len(args) > 2 else None)
        if config is not None:
            check_rollout_constraint(config)  # before TRL starts vLLM
        super().__init__(*args, **kwargs)

    def _dynamic_mode(self) -> str:
        mode = getattr(self.args, "dynamic_sampling", "new_prompts")
        if mode not in ("new_prompts", "regenerate"):
            raise ValueError(f"dynamic_sampling must be 'new_prompts' or 'regenerate', got {mode!r}")
        if mode == "new_prompts" and self.accelerator.num_processes > 1:
            if not getattr(self, "_ds_warned", False):
                import logging

                logging.getLogger(__name__).warning(
                    "dynamic_sampling=new_prompts runs on one process; %d processes: using 'regenerate'",
                    self.accelerator.num_processes)
                self._ds_warned = True
            return "regenerate"
        return mode

    def _generate_and_score_completions(self, inputs):
        self._ds_inputs = inputs
        self._ds_cached = None
        try:
            if (self.model.training and getattr(self.args, "dynamic_sampling_max_resamples", 0) > 0
                    and not self.tools and self._dynamic_mode() == "new_prompts"):
                inputs = self._draw_new_prompts(inputs)
                self._ds_inputs = inputs
            return super()._generate_and_score_completions(inputs)
        finally:
            self._ds_inputs = None
            self._ds_cached = None

    # -- released dynamic sampling: drop zero-spread groups, draw new prompts ------------------
    def _resample_batches(self):
        """Endless batches of rows for re-draws: a second pass over the training set with its own
        sampler (the released trainer builds its resample dataloader with seed + 1). Its position
        (`_ds_draws`, batches drawn) is saved with each checkpoint and restored on resume."""
        if getattr(self, "_ds_resample_iter", None) is None:
            from trl.trainer.utils import RepeatSampler

            n_prompts = self.args.generation_batch_size // self.num_generations

            def index_batches():
                epoch = 0
                while True:
                    sampler = RepeatSampler(self.train_dataset, mini_repeat_count=self.num_generations,
                                            batch_size=n_prompts, repeat_count=1, shuffle=self.shuffle_dataset,
                                            seed=self.args.seed + 1 + epoch)
                    indices = list(sampler)
                    size = n_prompts * self.num_generations
                    for start in range(0, len(indices) - size + 1, size):
                        yield indices[start:start + size]
                    epoch += 1

            indices = index_batches()
            for _ in range(getattr(self, "_ds_draws", 0)):  # resumed: skip the batches drawn before
                next(indices)

            def batches():
                for batch in indices:
                    self._ds_draws = getattr(self, "_ds_draws", 0) + 1
                    yield [self.train_dataset[i] for i in batch]

            self._ds_resample_iter = batches()
        return self._ds_resample_iter

    # -- resume: the dynamic-sampling position and TRL's step counter ---------------------------
    def _resume_extra_state(self) -> dict:
        return {"dynamic_sampling_draws": int(getattr(self, "_ds_draws", 0))}

    def _load_resume_extra_state(self, state: dict, global_step: int) -> None:
        self._ds_draws = int(state.get("dynamic_sampling_draws", 0))
        self._ds_resample_iter = None
        # TRL's micro-step counter picks the slice of the buffered generation batch
        self._step = global_step * self.args.gradient_accumulation_steps
        generate_every = self.args.steps_per_generation * self.num_iterations
        if self._step % generate_every:
            import logging

            logging.getLogger(__name__).warning(
                "resuming GRPO between two generations (micro-step %d, a generation every %d): the buffered "
                "completions are generated again, so this step differs from the uninterrupted run", self._step,
                generate_every)

    def _rollout(self, rows: list) -> tuple:
        """`_generate` on rows, prompts prepared as TRL's `_generate_and_score_completions` does."""
        from trl.data_utils import prepare_multimodal_messages

        prompts = [row["prompt"] for row in rows]
        images = [row.get("images") for row in rows] if "images" in rows[0] else None
        if images is not None and all(image_list == [] for image_list in images):
            images = None
        if images is not None:
            prompts = [prepare_multimodal_messages(p, images=i) for p, i in zip(prompts, images, strict=True)]
        self._ds_inputs = rows  # rollout grammars read the rows
        result = self._generate_subset(prompts, list(range(len(prompts))))
        rewards = self._calculate_rewards(rows, prompts, result[3], result[1])
        weights = self.reward_weights.to(rewards.device)
        return result, torch.nan_to_num((rewards * weights.unsqueeze(0)).nansum(dim=1))

    def _draw_new_prompts(self, inputs: list) -> list:
        G, n = self.num_generations, len(inputs)
        max_draws = self.args.dynamic_sampling_max_resamples
        origin, (result, rewards) = inputs, self._rollout(inputs)
        origin_result, rows = result, inputs
        pool: list[tuple[dict, tuple, int]] = []
        met = draws = 0
        while draws < max_draws:
            valid = rewards.view(-1, G).std(dim=1) > 0  # released rule: strictly positive spread
            if bool(valid.all()):
                break
            met += int((~valid).sum())
            pool += [(rows[i], result, i) for i in range(len(rows)) if bool(valid[i // G])]
            if len(pool) >= n:
                break
            rows = next(self._resample_batches())
            draws += 1
            if draws < max_draws:  # the released loop draws once more than it examines: skip that rollout
                result, rewards = self._rollout(rows)
        metrics = self._metrics["train"]
        metrics["dynamic_sampling/resampled_groups"].append(float(met))
        metrics["dynamic_sampling/new_batches"].append(float(draws))
        if len(pool) >= n:
            metrics["dynamic_sampling/used_new_prompts"].append(1.0)
            pool = pool[:n]
            self._ds_cached = _assemble([(res, i) for _, res, i in pool], n)
            return [row for row, _, _ in pool]
        metrics["dynamic_sampling/used_new_prompts"].append(0.0)
        self._ds_cached = _assemble([(origin_result, i) for i in range(n)], n)
        return origin

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
        if grammars is not None and self.use_vllm:  # never silently unconstrained (see check_rollout_constraint)
            check_rollout_constraint(self.args)
        if grammars is None:
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
        cached = getattr(self, "_ds_cached", None)
        if cached is not None:  # new_prompts: the completions chosen by `_draw_new_prompts`
            self._ds_cached = None
            return cached
        result = self._generate_subset(prompts, list(range(len(prompts))))
        max_resamples = getattr(self.args, "dynamic_sampling_max_resamples", 0)
        inputs = getattr(self, "_ds_inputs", None)
        if (not self.model.training or max_resamples <= 0 or inputs is None or self.tools
                or self._dynamic_mode() != "regenerate"):
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


def _assemble(picks: list[tuple[tuple, int]], n: int) -> tuple:
    """A `_generate` result made of entry `i` of each picked result: per-row lists are picked,
    per-row dict values too; None and empty (no tool images) slots stay as they are."""
    first = picks[0][0]
    out = []
    for slot, value in enumerate(first):
        if value is None or (isinstance(value, (list, tuple)) and len(value) == 0):
            out.append(value)
        elif isinstance(value, dict):
            out.append({k: [res[slot][k][i] for res, i in picks] for k in value})
        else:
            out.append([res[slot][i] for res, i in picks])
    assert all(len(v) == n for v in out if isinstance(v, list) and v)
    return tuple(out)


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
