"""Resume restores everything: a recipe killed after a checkpoint and resumed logs the same curve
as an uninterrupted run of the same seed (weights, optimiser, scheduler, RNG, data position and,
for GRPO, the dynamic-sampling draw position), and a checkpoint that cannot restore every weight
fails loudly (f2rvlm.training.resume)."""

import importlib.util
import os
import sys

import pytest
import torch

pytest.importorskip("trl")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KILL_AT = 3  # checkpoints every 3 steps; the run is killed when step 4 begins


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _recipe(name):
    spec = importlib.util.spec_from_file_location(f"recipe_resume_{name}", os.path.join(ROOT, "recipes", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


class Killed(Exception):
    pass


def _killer():
    from transformers import TrainerCallback

    class Kill(TrainerCallback):  # a crash right after the step-3 checkpoint was written
        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step == KILL_AT:
                raise Killed

    return Kill()


def _run(stage, argv, kill=False, patch=None):
    from f2rvlm.training.args import (
        F2RVLMGRPOConfig,
        F2RVLMSFTConfig,
        ModelArguments,
        ScriptArguments,
        parse_recipe_args,
    )

    config = F2RVLMSFTConfig if stage == "sft" else F2RVLMGRPOConfig
    args = parse_recipe_args((ScriptArguments, config, ModelArguments), argv)
    module = _recipe(stage)
    if patch:
        patch(module)
    if kill:
        callbacks = module.recipe_callbacks
        module.recipe_callbacks = lambda script_args: callbacks(script_args) + [_killer()]
        with pytest.raises(Killed):
            module.main(*args)
        return None
    return module.main(*args)


def _curve(trainer, keys):
    return [(e["step"],) + tuple(e.get(k) for k in keys) for e in trainer.state.log_history if "loss" in e]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from f2rvlm.data import build_synthetic

    path = str(tmp_path_factory.mktemp("data") / "synthetic")
    build_synthetic(path, num_dialogues=40, seed=0, language="en", show_progress=False)
    return path


def _sft_argv(data, out, use_peft):
    return ["--config", os.path.join(ROOT, "recipes", "tiny-cpu", "sft.yaml"), "--dataset_path", data,
            "--output_dir", out, "--max_steps", "8", "--save_steps", str(KILL_AT), "--save_total_limit", "3",
            "--logging_steps", "1", "--warmup_steps", "2", "--report_to", "none", "--init_token_embeddings", "none",
            "--use_peft", use_peft, "--save_merged", "false", "--plots", "false", "--max_train_samples", "12"]


SFT_KEYS = ("loss", "lm_loss", "relevance_loss", "learning_rate")


@pytest.mark.parametrize("use_peft", ["false", "true"])  # tiny-cpu: full model with heads; GPU recipes: LoRA
def test_sft_resume_after_kill_matches_uninterrupted_run(data, tmp_path, use_peft):
    full = _curve(_run("sft", _sft_argv(data, str(tmp_path / "full"), use_peft)), SFT_KEYS)
    argv = _sft_argv(data, str(tmp_path / "cut"), use_peft)
    _run("sft", argv, kill=True)
    assert os.path.isdir(tmp_path / "cut" / f"checkpoint-{KILL_AT}")
    resumed = _curve(_run("sft", argv + ["--resume_from_checkpoint", "true"]), SFT_KEYS)
    print(f"use_peft={use_peft}\nuninterrupted {full}\nresumed       {resumed}")
    assert [r[0] for r in resumed] == list(range(1, 9)) == [r[0] for r in full]
    for a, b in zip(full, resumed):
        assert a[1:] == pytest.approx(b[1:], rel=1e-4, abs=1e-5), (a, b)
    assert full[-1][1] < full[0][1]  # it trains: the resumed curve is not a flat restart


def test_resume_refuses_a_checkpoint_missing_weights(data, tmp_path):
    from f2rvlm.training.resume import CheckpointResumeError
    from safetensors.torch import load_file, save_file

    argv = _sft_argv(data, str(tmp_path / "cut"), "false")
    _run("sft", argv, kill=True)
    weights = tmp_path / "cut" / f"checkpoint-{KILL_AT}" / "model.safetensors"
    state = load_file(str(weights))
    dropped = next(k for k in state if "layers.0" in k)
    del state[dropped]
    save_file(state, str(weights), metadata={"format": "pt"})
    with pytest.raises(CheckpointResumeError, match="1 model tensors missing"):
        _run("sft", argv + ["--resume_from_checkpoint", "true"])
    os.remove(weights.parent / "optimizer.pt")
    with pytest.raises(CheckpointResumeError, match="optimizer.pt"):
        _run("sft", argv + ["--resume_from_checkpoint", "true"])
    with pytest.raises(CheckpointResumeError, match="no checkpoint"):
        _run("sft", _sft_argv(data, str(tmp_path / "empty"), "false") + ["--resume_from_checkpoint", "true"])


def test_adapter_check_names_unrestored_heads(tmp_path):
    """LoRA checkpoints: a head trained as modules_to_save that is not in the file is named."""
    from f2rvlm.models.tiny import build_tiny
    from f2rvlm.training.args import ModelArguments
    from f2rvlm.training.loading import attach_adapter
    from f2rvlm.training.resume import CheckpointResumeError, check_adapter_loaded
    from safetensors.torch import load_file, save_file

    model, _ = build_tiny("qwen2_vl", "test", relevance_head=True)
    model = attach_adapter(model, ModelArguments(lora_dropout=0.0))
    model.save_pretrained(str(tmp_path))
    assert check_adapter_loaded(model, str(tmp_path)) == sum(p.requires_grad for p in model.parameters())
    path = str(tmp_path / "adapter_model.safetensors")
    state = load_file(path)
    head = [k for k in state if "relevance_head" in k]
    assert head
    save_file({k: v for k, v in state.items() if k not in head}, path, metadata={"format": "pt"})
    with pytest.raises(CheckpointResumeError, match="relevance_head"):
        check_adapter_loaded(model, str(tmp_path))


@pytest.mark.parametrize("family", ["qwen2_vl", "qwen2_5_vl", "qwen3_vl"])
def test_saved_keys_map_back_to_the_model(family, tmp_path):
    """save_pretrained writes the backbone's original key layout; the resume loader maps it back."""
    from f2rvlm.models.tiny import build_tiny
    from f2rvlm.training.resume import load_full_checkpoint

    saved, _ = build_tiny(family, "test", seed=1, relevance_head=True)
    saved.save_pretrained(str(tmp_path))
    model, _ = build_tiny(family, "test", seed=2, relevance_head=True)
    assert load_full_checkpoint(model, str(tmp_path)) > 0
    reference = saved.state_dict()
    for name, value in model.state_dict().items():
        assert torch.equal(value, reference[name]), name


def test_grpo_resume_restores_curriculum_and_draw_positions(data, tmp_path):
    """GRPO in curriculum order (no shuffle) with released dynamic sampling (new prompts drawn from a
    second pass): the resumed run trains on the same rows, draws the same new prompts and logs the
    same rewards and losses as the uninterrupted one."""
    seen = []

    def picky_reward(completions, query, **columns):  # zero spread for one query: new prompts get drawn
        seen.append([q[-24:] for q in query[::2]])
        return [0.0 if q.startswith("my application") else float(len(c[0]["content"] if isinstance(c, list) else c))
                for c, q in zip(completions, query)]

    def patch(module):
        module.build_reward_funcs = lambda names: ([picky_reward], [1.0])

    def argv(out):
        return ["--config", os.path.join(ROOT, "recipes", "tiny-cpu", "grpo.yaml"),
                "--model_name_or_path", "tiny:qwen2_vl:test", "--dataset_path", data, "--output_dir", out,
                "--max_steps", "6", "--save_steps", str(KILL_AT), "--save_total_limit", "3", "--logging_steps", "1",
                "--report_to", "none", "--save_merged", "false", "--plots", "false", "--max_train_samples", "8",
                "--max_completion_length", "16", "--temperature", "1.5", "--per_device_train_batch_size", "4",
                "--num_generations", "2", "--rollout_constraint", "none", "--reward_weights", "1.0",
                "--dynamic_sampling_max_resamples", "3"]

    keys = ("loss", "reward", "dynamic_sampling/new_batches", "dynamic_sampling/used_new_prompts")
    full = _curve(_run("grpo", argv(str(tmp_path / "full")), patch=patch), keys)
    full_seen = list(seen)
    seen.clear()
    _run("grpo", argv(str(tmp_path / "cut")), kill=True, patch=patch)
    cut_seen = list(seen)
    seen.clear()
    resumed = _curve(_run("grpo", argv(str(tmp_path / "cut")) + ["--resume_from_checkpoint", "true"], patch=patch), keys)
    print(f"uninterrupted {full}\nresumed       {resumed}")
    assert cut_seen + seen == full_seen  # same rows scored, in the same order (incl. re-draws)
    assert sum(r[3] for r in full) > 0  # new prompts were drawn: their position mattered
    for a, b in zip(full, resumed):
        assert a[1:] == pytest.approx(b[1:], rel=1e-4, abs=1e-5), (a, b)
    assert len(full) == len(resumed) == 6
