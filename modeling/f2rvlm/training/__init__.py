"""Training: GRPO rewards, the difficulty-aware curriculum, typed recipe arguments, model loading,
trainers, callbacks, model cards and export. The recipe scripts in `recipes/` are thin front ends.

Submodules import trl/peft; `f2rvlm.training.rewards` and `f2rvlm.training.curriculum` do not.
"""
