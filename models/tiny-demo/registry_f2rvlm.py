"""The one registry of backbone families and retrieval modes, consulted everywhere.

Adding a backbone family: one `BackboneFamily` entry here, the two small subclasses in
`configuration_f2rvlm.py` / `modeling_f2rvlm.py` (transformers needs named classes for remote
code), and the family appears in `tiny`, the CLI, the recipes and the tests that loop over
`FAMILIES`. Adding a retrieval mode: one `RetrievalMode` entry plus its branch in
`retrieval_f2rvlm.py`. Plain Python: this file ships with the Hub remote code.

>>> family_for_checkpoint("Qwen/Qwen2.5-VL-7B-Instruct").name
'qwen2_5_vl'
>>> get_mode("tagging").needs_relevance_head
True
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BackboneFamily:
    """A Qwen-VL generation that F2RVLM subclasses.

    Args:
        name: registry key, also the stock backbone's `model_type` (e.g. "qwen2_vl").
        model_type: the F2RVLM config's `model_type` (e.g. "f2rvlm_qwen2_vl").
        display_name: how people write it ("Qwen2-VL").
        patch_size: the vision tower's patch size (tiny processors are built with it).
        checkpoint_patterns: lower-case substrings that identify a checkpoint name of this family;
            the longest match wins ("qwen2.5" beats "qwen2").
    """

    name: str
    model_type: str
    display_name: str
    patch_size: int
    checkpoint_patterns: tuple[str, ...]


@dataclass(frozen=True)
class RetrievalMode:
    """How `retrieve` answers.

    Args:
        name: "generate", "guided" or "tagging".
        needs_relevance_head: the mode reads the relevance head's scores.
        generates: the answer is decoded token by token (grammar-constrained).
        description: one line for `--help` and the docs.
    """

    name: str
    needs_relevance_head: bool
    generates: bool
    description: str


FAMILIES: dict[str, BackboneFamily] = {f.name: f for f in (
    BackboneFamily("qwen2_vl", "f2rvlm_qwen2_vl", "Qwen2-VL", 14, ("qwen2",)),
    BackboneFamily("qwen2_5_vl", "f2rvlm_qwen2_5_vl", "Qwen2.5-VL", 14, ("qwen2.5", "qwen2_5")),
    BackboneFamily("qwen3_vl", "f2rvlm_qwen3_vl", "Qwen3-VL", 16, ("qwen3",)),
)}

RETRIEVAL_MODES: dict[str, RetrievalMode] = {m.name: m for m in (
    RetrievalMode("generate", False, True, "grammar-constrained greedy decoding of the answer (the paper's method)"),
    RetrievalMode("guided", True, True, "generation whose grammar admits only ids the relevance head scores high"),
    RetrievalMode("tagging", True, False, "one forward pass; ids whose relevance-head probability passes the threshold"),
)}


def get_family(name: str) -> BackboneFamily:
    """The family registered as `name` (ValueError listing the known ones otherwise)."""
    if name not in FAMILIES:
        raise ValueError(f"unknown backbone family {name!r}; choose one of {tuple(FAMILIES)}")
    return FAMILIES[name]


def family_for_model_type(model_type: str) -> BackboneFamily:
    """The family of an F2RVLM (`f2rvlm_qwen2_vl`) or stock (`qwen2_vl`) `model_type`."""
    for family in FAMILIES.values():
        if model_type in (family.name, family.model_type):
            return family
    raise ValueError(f"model_type {model_type!r} belongs to no registered backbone family {tuple(FAMILIES)}")


def family_for_checkpoint(name: str) -> BackboneFamily:
    """The family a checkpoint name or path belongs to, by its longest matching pattern."""
    lowered = name.lower()
    matches = [(len(p), f) for f in FAMILIES.values() for p in f.checkpoint_patterns if p in lowered]
    if not matches:
        raise ValueError(f"cannot tell the backbone family of {name!r}; known: {tuple(FAMILIES)}")
    return max(matches, key=lambda m: m[0])[1]


def get_mode(name: str) -> RetrievalMode:
    """The retrieval mode registered as `name` (ValueError listing the known ones otherwise)."""
    if name not in RETRIEVAL_MODES:
        raise ValueError(f"unknown retrieval mode {name!r}; choose one of {tuple(RETRIEVAL_MODES)}")
    return RETRIEVAL_MODES[name]


__all__ = ["FAMILIES", "RETRIEVAL_MODES", "BackboneFamily", "RetrievalMode", "family_for_checkpoint",
           "family_for_model_type", "get_family", "get_mode"]
