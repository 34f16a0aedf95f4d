"""Short SFT and GRPO runs of the recipes (tiny model, a few steps): the LoRA weights change, the
vision tower does not; and every GPU recipe builds in --dry_run mode (tiny stand-ins, no download)."""

import importlib.util
import os
import sys

import pytest
import torch

pytest.importorskip("trl")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _recipe(name):
    spec = importlib.util.spec_from_file_location(f"recipe_{name}", os.path.join(ROOT, "recipes", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses with postponed annotations look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from f2rvlm.data import build_synthetic

    path = str(tmp_path_factory.mktemp("data") / "synthetic")
    build_synthetic(path, num_dialogues=8, seed=0, language="en", show_progress=False)
    return path


def _vision_state(model):
    from f2rvlm.training.loading import is_vision_module

    return {n.replace("base_model.model.", ""): p.detach().clone() for n, p in model.named_parameters() if is_vision_module(n)}


def _check_lora_changed_vision_untouched(trainer):
    from f2rvlm.models.tiny import build_tiny

    model = trainer.model
    lora_b = [p for n, p in model.named_parameters() if "lora_B" in n]
    assert lora_b and any(p.abs().sum() > 0 for p in lora_b), "LoRA B starts at zero: training must move it"
    reference, _ = build_tiny("qwen2_vl", "test", seed=0)
    ref = _vision_state(reference)
    got = _vision_state(model)
    assert got and set(got) == set(ref)
    for name, value in got.items():
        assert torch.equal(value, ref[name]), f"vision parameter changed: {name}"
        assert not dict(model.named_parameters())[next(n for n in dict(model.named_parameters()) if n.endswith(name))].requires_grad


COMMON = ["--model_name_or_path", "tiny:qwen2_vl:test", "--use_peft", "true", "--learning_rate", "5e-2",
          "--warmup_steps", "0", "--report_to", "none", "--save_strategy", "no", "--logging_steps", "1",
          "--lora_dropout", "0", "--template", "en"]


def test_short_sft_run_changes_lora_not_vision(data, tmp_path):
    from f2rvlm.training.args import (
        F2RVLMSFTConfig,
        ModelArguments,
        ScriptArguments,
        parse_recipe_args,
    )

    sft = _recipe("sft")
    args = parse_recipe_args((ScriptArguments, F2RVLMSFTConfig, ModelArguments),
                             COMMON + ["--dataset_path", data, "--max_steps", "3", "--per_device_train_batch_size", "2",
                                       "--output_dir", str(tmp_path / "sft"), "--max_train_samples", "6"])
    trainer = sft.main(*args)
    _check_lora_changed_vision_untouched(trainer)
    assert os.path.exists(tmp_path / "sft" / "adapter_model.safetensors")
    assert os.path.exists(tmp_path / "sft" / "loss.png") and os.path.exists(tmp_path / "sft" / "f2rvlm_recipe.json")


def test_short_grpo_run_changes_lora_not_vision(data, tmp_path):
    from f2rvlm.training.args import (
        F2RVLMGRPOConfig,
        ModelArguments,
        ScriptArguments,
        parse_recipe_args,
    )

    grpo = _recipe("grpo")

    def length_reward(completions, **columns):  # always has spread: the test is about the update, not the rewards
        return [float(len(c[0]["content"] if isinstance(c, list) else c)) for c in completions]

    grpo.build_reward_funcs = lambda names: ([length_reward], [1.0])
    args = parse_recipe_args((ScriptArguments, F2RVLMGRPOConfig, ModelArguments),
                             COMMON + ["--dataset_path", data, "--dataset_train_split", "train_grpo", "--max_steps", "2",
                                       "--per_device_train_batch_size", "4", "--num_generations", "4",
                                       "--max_completion_length", "12", "--beta", "0.0", "--temperature", "1.5",
                                       "--dynamic_sampling_max_resamples", "1",
                                       "--output_dir", str(tmp_path / "grpo"), "--max_train_samples", "4"])
    trainer = grpo.main(*args)
    history = trainer.state.log_history
    assert any("dynamic_sampling/resampled_groups" in h for h in history)
    _check_lora_changed_vision_untouched(trainer)


@pytest.mark.parametrize("backbone", ["qwen2-vl-7b", "qwen2.5-vl-7b", "qwen2-vl-2b"])
def test_gpu_recipes_dry_run(backbone, data, tmp_path):
    """--dry_run builds trainer, model skeleton and data pipeline of each GPU config, with a tiny
    stand-in for the named checkpoint and no download, and runs one step."""
    from f2rvlm.training.args import (
        F2RVLMGRPOConfig,
        F2RVLMSFTConfig,
        ModelArguments,
        ScriptArguments,
        parse_recipe_args,
    )

    for stage, types in (("sft", (ScriptArguments, F2RVLMSFTConfig, ModelArguments)),
                         ("grpo", (ScriptArguments, F2RVLMGRPOConfig, ModelArguments))):
        cfg = os.path.join(ROOT, "recipes", backbone, f"{stage}.yaml")
        args = parse_recipe_args(types, ["--config", cfg, "--dry_run", "true", "--dataset_path", data,
                                         "--output_dir", str(tmp_path / stage)])
        assert args[0].dry_run and args[1].max_steps == 1 and not args[1].bf16
        trainer = _recipe(stage).main(*args)
        assert trainer.state.global_step == 1
        assert "Qwen" in args[2].model_name_or_path  # the GPU checkpoint name stays in the recipe


@pytest.mark.parametrize("backbone", ["qwen2-vl-7b", "qwen2.5-vl-7b", "qwen2-vl-2b", "tiny-cpu"])
def test_curriculum_recipe_dry_run(backbone, data, tmp_path):
    """Each curriculum config parses and runs on a tiny stand-in: the ordered GRPO set it writes
    loads, carries the `difficulty` column and only published bucket names."""
    from datasets import load_dataset
    from f2rvlm.training.args import ModelArguments, ScriptArguments, parse_recipe_args

    curriculum = _recipe("curriculum")
    cfg = os.path.join(ROOT, "recipes", backbone, "curriculum.yaml")
    out = tmp_path / "curriculum"
    args = parse_recipe_args((ScriptArguments, curriculum.CurriculumArguments, ModelArguments),
                             ["--config", cfg, "--dry_run", "true", "--dataset_path", data,
                              "--output_dir", str(out), "--max_new_tokens", "16"]
                             # the CPU config reads the SFT stage's output; stand in a tiny model for it
                             + (["--model_name_or_path", "tiny:qwen2_vl:test"] if backbone == "tiny-cpu" else []))
    if backbone != "tiny-cpu":
        assert "Qwen" in args[2].model_name_or_path
    curriculum.main(*args)
    ordered = load_dataset(str(out), split="train_grpo")  # a Parquet folder, as recipes/grpo.py reads it
    assert len(ordered) > 0
    assert set(ordered["difficulty"]) <= {"easy", "middle", "confusing", "hard"}


def _released_grpo_folder(root):
    """A dataset built from released-format (ms-swift) records: image paths only, so no captions;
    one utterance puts its image tag before its text (the released builder's layout)."""
    import json

    from f2rvlm import render_answer, render_prompt
    from f2rvlm.core.protocol import SYSTEM_PROMPTS
    from f2rvlm.data import RELEASE_FILES, build_from_release
    from f2rvlm.data.synthetic import generate_split

    release = root / "MLDR"
    (release / "imgs").mkdir(parents=True)
    records = []
    for d, sample in enumerate(generate_split("train_grpo", 3, seed=7, language="zh")):
        dialogue = sample.dialogue
        host = next(u for u in dialogue.utterances if u.images and u.text)
        host.image_positions = [0] * len(host.images)  # tags before the text
        paths = []
        for k, image in enumerate(dialogue.images):
            (release / "imgs" / f"{d}-{k}.png").write_bytes(image.to_bytes())
            paths.append(f"imgs/{d}-{k}.png")
        for q in sample.queries:
            answer = render_answer(q.utterance_ids, q.image_ids)
            records.append({"messages": [{"role": "system", "content": SYSTEM_PROMPTS["zh"]},
                                         {"role": "user", "content": render_prompt(dialogue, q.query, "zh")},
                                         {"role": "assistant", "content": answer}],
                            "images": paths, "solution": answer, "dialogue_id": dialogue.dialogue_id})
    for name in RELEASE_FILES.values():
        (release / name).write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")
    path, _ = build_from_release(str(release), str(root / "mldr"), show_progress=False)
    return path


def test_grpo_dry_run_on_released_rows_without_captions(tmp_path, monkeypatch):
    """The GPU GRPO recipe (--dry_run) on rows converted from released files, whose images carry no
    caption: it completes one step with the coherence reward computed (default embedder: a
    caption-less image is embedded through its host turn) and logged."""
    from datasets import load_dataset
    from f2rvlm.training import rewards
    from f2rvlm.training.args import (
        F2RVLMGRPOConfig,
        ModelArguments,
        ScriptArguments,
        parse_recipe_args,
    )

    data = _released_grpo_folder(tmp_path)
    rows = load_dataset(data, split="train_grpo")
    assert rows[0]["source"] == "mldr-release" and all(c is None for r in rows for c in r["image_captions"])
    assert any(u["image_positions"] for r in rows for u in r["utterances"])

    monkeypatch.setattr(rewards, "_DEFAULT_CACHE", None)  # the recipe's own default embedder, fresh
    grpo = _recipe("grpo")
    calls = []
    build = grpo.build_reward_funcs

    def spied(names):
        funcs, weights = build(names)
        coherence = next(f for f in funcs if f.__name__ == "coherence_reward")

        def coherence_reward(completions, **columns):
            scores = coherence(completions, **columns)
            # the same rows scored with their gold answers: every non-empty one needs the embeddings
            gold = coherence(columns["solution"], **columns)
            calls.append((columns, scores, gold))
            return scores

        return [coherence_reward if f is coherence else f for f in funcs], weights

    monkeypatch.setattr(grpo, "build_reward_funcs", spied)
    cfg = os.path.join(ROOT, "recipes", "qwen2-vl-7b", "grpo.yaml")
    args = parse_recipe_args((ScriptArguments, F2RVLMGRPOConfig, ModelArguments),
                             ["--config", cfg, "--dry_run", "true", "--dataset_path", data,
                              "--output_dir", str(tmp_path / "grpo")])
    assert "coherence" in args[1].reward_funcs
    trainer = grpo.main(*args)
    assert trainer.state.global_step == 1
    assert any("rewards/coherence_reward/mean" in h for h in trainer.state.log_history)
    assert calls
    for columns, scores, gold in calls:
        assert all(c is None for captions in columns["image_captions"] for c in captions)
        assert all(-1.0 <= s <= 1.0 for s in scores + gold)
        nonempty = [i for i, s in enumerate(columns["solution"]) if "[]<|utt_ids_end|>;<|img_ids_start|>[]" not in s]
        assert nonempty and all(gold[i] > 0 for i in nonempty)
    assert rewards._DEFAULT_CACHE is not None and rewards._DEFAULT_CACHE.misses > 0


def test_grpo_dynamic_sampling_draws_new_prompts(data, tmp_path):
    """Released dynamic sampling on the tiny model: the first prompt's group has zero spread, so it
    is dropped and new prompts are drawn; the step trains on groups that all have spread."""
    from f2rvlm.training.args import (
        F2RVLMGRPOConfig,
        ModelArguments,
        ScriptArguments,
        parse_recipe_args,
    )

    grpo = _recipe("grpo")
    scored = []

    def picky_reward(completions, query, **columns):  # no spread for one query, spread for the others
        scored.append(list(query))
        return [0.0 if q == scored[0][0] else float(len(c[0]["content"] if isinstance(c, list) else c))
                for c, q in zip(completions, query)]

    grpo.build_reward_funcs = lambda names: ([picky_reward], [1.0])
    args = parse_recipe_args((ScriptArguments, F2RVLMGRPOConfig, ModelArguments),
                             COMMON + ["--dataset_path", data, "--dataset_train_split", "train_grpo", "--max_steps", "1",
                                       "--per_device_train_batch_size", "4", "--num_generations", "2",
                                       "--max_completion_length", "8", "--beta", "0.0", "--temperature", "1.5",
                                       "--output_dir", str(tmp_path / "grpo"), "--max_train_samples", "4"])
    assert args[1].dynamic_sampling == "new_prompts"
    trainer = grpo.main(*args)
    history = {k: v for h in trainer.state.log_history for k, v in h.items()}
    assert history["dynamic_sampling/used_new_prompts"] == 1.0 and history["dynamic_sampling/new_batches"] >= 1
    assert history["frac_reward_zero_std"] == 0.0
    flat = scored[0][0]
    assert flat in scored[0] and flat not in scored[-1]  # the trained batch (scored last) dropped it
