"""Unit tests of f2rvlm.training and f2rvlm.training.card (no training runs; seconds)."""

import glob
import os

import pytest
import torch

pytest.importorskip("trl")

from f2rvlm.training import args, callbacks, loading, trainers
from f2rvlm.training.card import evaluation_table, model_index, render_model_card

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def tiny():
    from f2rvlm.models.tiny import build_tiny

    return build_tiny("qwen2_vl", "test", seed=0, relevance_head=True)


def test_lora_targets_are_language_model_linears_only(tiny):
    model, _ = tiny
    names = loading.language_model_linear_names(model)
    assert names and all(not loading.is_vision_module(n) for n in names)
    assert not any(n.endswith(("lm_head", "relevance_head", "topic_head")) for n in names)
    assert any(n.endswith("q_proj") for n in names) and any(n.endswith("down_proj") for n in names)
    vision_linears = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and loading.is_vision_module(n)]
    assert vision_linears, "the tiny model should have a vision tower with linear layers"


def test_attach_adapter_freezes_vision_and_trains_heads(tiny):
    from f2rvlm.models.tiny import build_tiny

    model, _ = build_tiny("qwen2_vl", "test", seed=0, relevance_head=True)
    peft_model = loading.attach_adapter(model, args.ModelArguments(model_name_or_path="tiny:qwen2_vl:test"))
    trainable = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert trainable and not any(loading.is_vision_module(n) for n in trainable)
    assert any("lora_" in n for n in trainable)
    assert any("relevance_head" in n for n in trainable)  # modules_to_save
    assert loading.trainable_summary(peft_model)["vision_trainable"] == 0


@pytest.mark.parametrize("name,family", [("Qwen/Qwen2-VL-7B-Instruct", "qwen2_vl"),
                                         ("Qwen/Qwen2.5-VL-7B-Instruct", "qwen2_5_vl"),
                                         ("f2rvlm_qwen2_5_vl", "qwen2_5_vl"), ("tiny:qwen3_vl:test", "qwen3_vl")])
def test_tiny_family_for(name, family):
    assert loading.tiny_family_for(name) == family


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(ROOT, "recipes", "*", "*.yaml"))))
def test_every_recipe_yaml_parses(path):
    if os.path.basename(os.path.dirname(path)) == "accelerate":
        import yaml

        with open(path) as f:
            assert yaml.safe_load(f)["num_processes"] >= 1
        return
    stage = os.path.basename(path)[:-5]
    types = {"sft": (args.ScriptArguments, args.F2RVLMSFTConfig, args.ModelArguments),
             "grpo": (args.ScriptArguments, args.F2RVLMGRPOConfig, args.ModelArguments)}
    if stage not in types:
        pytest.skip("curriculum configs: tests/test_recipes_train.py::test_curriculum_recipe_dry_run")
    _, cfg, model = args.parse_recipe_args(types[stage], ["--config", path, "--output_dir", "outputs/x"])
    assert cfg.max_length is None if stage == "sft" else cfg.shuffle_dataset is False
    if "7b" in path:  # the paper's hyper-parameters (docs/protocol.md §6)
        assert (model.lora_r, model.lora_alpha) == (8, 32)
        if stage == "sft":
            assert cfg.learning_rate == 1e-4 and cfg.warmup_steps == 0.05 and cfg.num_train_epochs == 1
            assert (cfg.weight_decay, cfg.adam_beta2, cfg.max_pixels) == (0.1, 0.95, 602112)
        else:
            assert cfg.learning_rate == 2e-6 and cfg.warmup_steps == 0.03 and cfg.beta == 0.02
            assert (cfg.epsilon, cfg.epsilon_high, cfg.num_generations) == (0.2, 0.28, 8)
            assert (cfg.temperature, cfg.top_p, cfg.max_completion_length) == (1.0, 0.85, 1024)
            assert cfg.reward_weights == [1.0, 1.0, 0.3] and cfg.dynamic_sampling_max_resamples == 3
            # released ms-swift settings (recipes/README.md, settings table)
            assert (cfg.loss_type, cfg.top_k, cfg.weight_decay, cfg.adam_beta1, cfg.adam_beta2) == ("grpo", 50, 0.1, 0.9, 0.95)
            assert getattr(cfg.lr_scheduler_type, "value", cfg.lr_scheduler_type) == "cosine" and cfg.max_pixels == 602112
            assert cfg.rollout_constraint == "none"
            # 8 GPUs x 1 x 1 = 8 completions = one prompt per step
            assert (cfg.per_device_train_batch_size, cfg.gradient_accumulation_steps, cfg.generation_batch_size) == (1, 1, 8)


def test_splice_replaces_only_kept_indices():
    result = ([[1], [2], [3], [4]], [[10], [20], [30], [40]], None, ["a", "b", "c", "d"], None, {}, None, [])
    new = ([[2], [3]], [[21], [31]], None, ["B", "C"], None, {}, None, [])
    out = trainers._splice(result, new, subset=[1, 2], keep={2})
    assert out[1] == [[10], [20], [31], [40]] and out[3] == ["a", "b", "C", "d"]


def test_write_plots(tmp_path):
    history = [{"step": i, "loss": 1.0 / (i + 1)} for i in range(5)] + [{"step": 5, "reward": 0.3}]
    paths = callbacks.write_plots(history, str(tmp_path))
    assert sorted(os.path.basename(p) for p in paths) == ["loss.png", "reward.png"]
    assert all(os.path.getsize(p) > 1000 for p in paths)


def test_model_card_renders_metrics_and_recipe():
    metrics = {"sentence_metrics": {"global_precision": 0.5, "global_recall": 0.5, "global_f1": 0.5, "global_mcc": 0.4},
               "image_metrics": {"global_precision": 1.0, "global_recall": 1.0, "global_f1": 1.0, "global_mcc": 1.0},
               "joint_metrics": {"global_precision": 0.6667, "global_recall": 0.6667, "global_f1": 0.75, "global_mcc": 0.7},
               "seconds_per_query": 0.01}
    results = {"validation": {"generate": metrics, "tagging": metrics}}
    recipe = {"sft": {"ModelArguments": {"model_name_or_path": "Qwen/Qwen2-VL-7B-Instruct", "lora_r": 8}}}
    card = render_model_card(recipe, results, name="F2RVLM-test", command="make train-tiny")
    assert card.startswith("---\n") and "model-index" in card and "base_model: Qwen/Qwen2-VL-7B-Instruct" in card
    assert "| validation | generate | 0.5000" in card and "## Limitations" in card and '"lora_r": 8' in card
    index = model_index("m", results, "mldr")
    assert index[0]["results"][0]["metrics"][0] == {"type": "joint_f1", "value": 0.75, "name": "joint F1 (generate)"}
    assert evaluation_table(results).count("\n") == 3


def test_seed_token_embeddings_projects_an_embedder(tiny):
    """Token embeddings seeded from an embedder (here the hashing one, offline and fast): same scale,
    and tokens the embedder sees as equal get equal rows."""
    from f2rvlm.embeddings import HashingEmbedder
    from f2rvlm.models.tiny import build_tiny

    model, processor = build_tiny("qwen2_vl", "test", seed=0)
    before = model.get_input_embeddings().weight.detach().clone()
    n = loading.seed_token_embeddings(model, processor.tokenizer, "minilm", embedder=HashingEmbedder(dim=256))
    after = model.get_input_embeddings().weight.detach()
    assert n == min(len(processor.tokenizer), after.shape[0])
    assert not torch.equal(before[:n], after[:n])
    assert abs(float(after[:n].std()) - float(before[:n].std())) < 0.1 * float(before[:n].std())
    with pytest.raises(ValueError):
        loading.seed_token_embeddings(model, processor.tokenizer, "word2vec", embedder=HashingEmbedder(dim=8))


def test_rollout_grammars_follow_the_rows():
    """GRPO rollouts are decoded under each row's own answer grammar (ids of its dialogue)."""
    from f2rvlm.core.protocol import AnswerGrammar

    trainer = trainers.DynamicSamplingGRPOTrainer.__new__(trainers.DynamicSamplingGRPOTrainer)
    trainer.args = args.F2RVLMGRPOConfig(output_dir="unused", use_cpu=True, bf16=False, report_to="none")
    trainer.tools = None
    trainer._ds_inputs = [{"utterances": [{}] * 3, "images": [None]}, {"utterances": [{}] * 5, "images": []}]
    grammars = trainer._rollout_grammars([1, 0, 0])
    assert [g.allowed for g in grammars] == [AnswerGrammar(range(5), []).allowed] + [AnswerGrammar(range(3), [0]).allowed] * 2
    trainer.args.rollout_constraint = "none"
    assert trainer._rollout_grammars([0]) is None


def test_relevance_query_features_and_data_tokenizer(tmp_path):
    """The query-aware relevance head: trains (head + query topic losses), round-trips through a
    saved folder, and the data-trained tokenizer keeps content words whole."""
    from f2rvlm.models.hub import load_model, save_f2rvlm_folder
    from f2rvlm.models.tiny import build_tiny

    texts = ["we packed the boxes for the relocation", "the relocation to our new address"] * 20
    model, processor = build_tiny("qwen2_vl", "test", seed=0, relevance_head=True, num_topics=2,
                                  relevance_query_features=True, tokenizer_texts=texts)
    assert "Ġrelocation" in processor.tokenizer.get_vocab()
    assert model.config.query_end_token_id == processor.tokenizer.convert_tokens_to_ids("<|query_end|>")
    hidden = model.config.get_text_config().hidden_size
    assert model.relevance_head.in_features == 3 * hidden
    row = {"utterances": [{"speaker": "user1", "text": texts[0], "topic": "moving"},
                          {"speaker": "user2", "text": "a nice cake", "topic": "cake"}],
           "images": [], "query": "the relocation", "solution": "<|utt_ids_start|>[0]<|utt_ids_end|>;"
           "<|img_ids_start|>[]<|img_ids_end|>", "gold_utterance_ids": [0], "gold_image_ids": []}
    collator = processor.sft_collator(template="en", relevance=True, topics=["cake", "moving"], query_topics=True)
    batch = collator([row])
    assert batch["query_topic_labels"].tolist() == [1]
    out = model(**batch)
    out.loss.backward()
    assert model.relevance_head.weight.grad is not None and out.topic_loss is not None
    folder = save_f2rvlm_folder(model, processor, str(tmp_path / "m"))
    loaded, loaded_processor = load_model(folder)
    dialogue = {"utterances": [{"speaker": u["speaker"], "text": u["text"]} for u in row["utterances"]]}
    a = model.retrieve(dialogue, "the relocation", processor=processor, mode="tagging", template="en")
    b = loaded.retrieve(dialogue, "the relocation", processor=loaded_processor, mode="tagging", template="en")
    assert a.scores == b.scores


def test_apply_max_pixels_caps_the_image_processor():
    class IP:
        size = {"shortest_edge": 3136, "longest_edge": 12845056}
        max_pixels = 12845056

    class P:
        image_processor = IP()

    p = P()
    args.apply_max_pixels(p, args.RELEASED_MAX_PIXELS)
    assert p.image_processor.size == {"shortest_edge": 3136, "longest_edge": 602112}
    assert p.image_processor.max_pixels == 602112 == 768 * 28 * 28
    args.apply_max_pixels(p, None)  # None keeps the processor's
    assert p.image_processor.size["longest_edge"] == 602112


def _sampling_trainer(batches, rewards_by_batch, max_resamples=3):
    """A DynamicSamplingGRPOTrainer shell whose rollouts are scripted: batch b's rows are
    ("b", i) and its per-completion rewards are `rewards_by_batch[b]` (num_generations 2)."""
    from collections import defaultdict

    trainer = trainers.DynamicSamplingGRPOTrainer.__new__(trainers.DynamicSamplingGRPOTrainer)
    trainer.args = args.F2RVLMGRPOConfig(output_dir="unused", use_cpu=True, bf16=False, report_to="none",
                                         dynamic_sampling_max_resamples=max_resamples)
    trainer.num_generations = 2
    trainer._metrics = {"train": defaultdict(list)}
    rolled = []

    def rollout(rows):
        b = rows[0]["batch"]
        rolled.append(b)
        n = len(rows)
        result = ([[b, i] for i in range(n)], [[100 * b + i] for i in range(n)], None,
                  [f"{b}-{i}" for i in range(n)], None, {}, None, [])
        return result, torch.tensor(rewards_by_batch[b], dtype=torch.float32)

    trainer._rollout = rollout
    trainer._ds_resample_iter = iter([[{"batch": b, "i": i} for i in range(4)] for b in batches])
    return trainer, rolled


def test_dynamic_sampling_as_released_draws_new_prompts():
    """Released ms-swift `_dynamic_sample`: zero-spread groups dropped, new prompts drawn until a
    full batch of groups with spread is pooled; else the original batch."""
    first = [{"batch": 0, "i": i} for i in range(4)]  # 2 prompts x 2 generations
    # batch 0: group 0 flat, group 1 spread; batch 1: group 0 spread -> pool full (4 rows)
    trainer, rolled = _sampling_trainer([1, 2], {0: [1, 1, 0, 1], 1: [0, 1, 2, 2]})
    rows = trainer._draw_new_prompts(first)
    assert rows == [first[2], first[3], {"batch": 1, "i": 0}, {"batch": 1, "i": 1}] and rolled == [0, 1]
    assert trainer._ds_cached[3] == ["0-2", "0-3", "1-0", "1-1"] and trainer._ds_cached[1] == [[2], [3], [100], [101]]
    assert trainer._metrics["train"]["dynamic_sampling/used_new_prompts"] == [1.0]
    assert trainer._metrics["train"]["dynamic_sampling/resampled_groups"] == [2.0]  # one flat group per batch
    # no spread anywhere, 3 draws: batches 1 and 2 examined, the third draw is never examined -> original
    trainer, rolled = _sampling_trainer([1, 2, 3], {0: [1, 1, 0, 0], 1: [1, 1, 1, 1], 2: [0, 0, 0, 0]})
    assert trainer._draw_new_prompts(first) == first and rolled == [0, 1, 2]
    assert trainer._ds_cached[3] == ["0-0", "0-1", "0-2", "0-3"]
    assert trainer._metrics["train"]["dynamic_sampling/new_batches"] == [3.0]
    assert trainer._metrics["train"]["dynamic_sampling/used_new_prompts"] == [0.0]
    # released quirk: a re-drawn batch with spread everywhere ends the search with the pool not full
    trainer, rolled = _sampling_trainer([1], {0: [1, 1, 0, 1], 1: [0, 1, 0, 1]})
    assert trainer._draw_new_prompts(first) == first and rolled == [0, 1]
    # every group has spread: nothing drawn
    trainer, rolled = _sampling_trainer([1], {0: [0, 1, 0, 1]})
    assert trainer._draw_new_prompts(first) == first and rolled == [0]
    assert trainer._metrics["train"]["dynamic_sampling/new_batches"] == [0.0]


def test_dynamic_sampling_option_is_checked():
    trainer, _ = _sampling_trainer([], {})
    assert trainer.args.dynamic_sampling == "new_prompts"
    trainer.accelerator = type("A", (), {"num_processes": 1})()
    assert trainer._dynamic_mode() == "new_prompts"
    trainer.args.dynamic_sampling = "regenerate"
    assert trainer._dynamic_mode() == "regenerate"
    trainer.args.dynamic_sampling = "nope"
    with pytest.raises(ValueError, match="new_prompts' or 'regenerate"):
        trainer._dynamic_mode()
