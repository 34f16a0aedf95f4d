"""The answer grammar is never silently dropped from GRPO rollouts: vLLM rollouts cannot run the
per-dialogue grammar (a transformers logits processor), so `use_vllm` with
`rollout_constraint: grammar` is refused with a clear error (no vLLM needed for these tests)."""

import glob
import os
from types import SimpleNamespace

import pytest

pytest.importorskip("trl")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_check_refuses_grammar_with_vllm_and_names_the_ways_out():
    from f2rvlm.training.trainers import check_rollout_constraint

    with pytest.raises(ValueError, match="rollout_constraint=grammar cannot be kept with use_vllm") as err:
        check_rollout_constraint(SimpleNamespace(use_vllm=True, rollout_constraint="grammar"))
    assert "--rollout_constraint none" in str(err.value) and "--use_vllm false" in str(err.value)
    for use_vllm, constraint in ((True, "none"), (False, "grammar"), (False, "none")):
        check_rollout_constraint(SimpleNamespace(use_vllm=use_vllm, rollout_constraint=constraint))
    with pytest.raises(ValueError, match="must be one of"):
        check_rollout_constraint(SimpleNamespace(use_vllm=False, rollout_constraint="regex"))


def test_trainer_refuses_before_starting_vllm():
    """The trainer checks its config first (before TRL would import or start vLLM)."""
    from f2rvlm.training.args import F2RVLMGRPOConfig
    from f2rvlm.training.trainers import DynamicSamplingGRPOTrainer

    config = F2RVLMGRPOConfig(output_dir="unused", use_cpu=True, bf16=False, report_to="none")
    assert config.rollout_constraint == "grammar"  # the config default
    config.use_vllm = True
    with pytest.raises(ValueError, match="cannot be kept with use_vllm"):
        DynamicSamplingGRPOTrainer(model=None, reward_funcs=[], args=config)
    with pytest.raises(ValueError, match="cannot be kept with use_vllm"):
        DynamicSamplingGRPOTrainer(None, [], config)


def test_recipe_refuses_before_loading_the_model(monkeypatch):
    import importlib.util
    import sys

    from f2rvlm.training.args import (
        F2RVLMGRPOConfig,
        ModelArguments,
        ScriptArguments,
        parse_recipe_args,
    )

    spec = importlib.util.spec_from_file_location("recipe_grpo_vllm", os.path.join(ROOT, "recipes", "grpo.py"))
    grpo = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = grpo
    spec.loader.exec_module(grpo)
    monkeypatch.setattr(grpo, "load_model_and_processor", lambda *a, **k: pytest.fail("model loaded before the check"))
    script, training, model = parse_recipe_args(
        (ScriptArguments, F2RVLMGRPOConfig, ModelArguments),
        ["--config", os.path.join(ROOT, "recipes", "tiny-cpu", "grpo.yaml"), "--output_dir", "unused"])
    assert training.rollout_constraint == "grammar"
    training.use_vllm = True  # what --use_vllm true gives on a GPU machine (a CPU run switches vLLM off)
    with pytest.raises(ValueError, match="cannot be kept with use_vllm"):
        grpo.main(script, training, model)


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(ROOT, "recipes", "*", "grpo.yaml"))))
def test_gpu_recipes_accept_vllm(path):
    """The GPU recipes (plain sampling, as released) run with --use_vllm true; the tiny CPU one
    (grammar rollouts) is the one refused."""
    from f2rvlm.training.args import (
        F2RVLMGRPOConfig,
        ModelArguments,
        ScriptArguments,
        parse_recipe_args,
    )
    from f2rvlm.training.trainers import check_rollout_constraint

    _, training, _ = parse_recipe_args((ScriptArguments, F2RVLMGRPOConfig, ModelArguments),
                                       ["--config", path, "--output_dir", "unused"])
    training.use_vllm = True
    if "tiny-cpu" in path:
        with pytest.raises(ValueError):
            check_rollout_constraint(training)
    else:
        check_rollout_constraint(training)
