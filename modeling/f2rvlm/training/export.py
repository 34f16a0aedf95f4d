"""Export a recipe's output as a Hub-ready F2RVLM folder with its model card."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping

from .card import read_recipe, write_model_card
from .loading import attach_adapter, load_model_and_processor, save_merged


def export_trained(train_dir: str, out: str, base=None, results: Mapping | None = None, overwrite: bool = True,
                   **card_kwargs) -> str:
    """Merge a recipe's output into an F2RVLM folder (f2rvlm.models.hub.export_model) and write its card.

    `train_dir` is a recipe output folder: its `merged/` sub-folder when present (tiny/full runs),
    else the adapter in `train_dir` merged into `base` (a `training.ModelArguments`)."""
    from ..models.hub import export_model

    merged = os.path.join(train_dir, "merged")
    if not os.path.isdir(merged):
        if base is None:
            raise ValueError(f"{train_dir} has no merged/ folder; pass the base ModelArguments to merge the adapter")
        args = dataclasses.replace(base, adapter_path=train_dir)
        model, processor = load_model_and_processor(args)
        save_merged(attach_adapter(model, args, is_trainable=False), processor, merged)
    path = export_model(merged, out, overwrite=overwrite)
    recipe = read_recipe(train_dir)
    write_model_card(path, recipe, results, **card_kwargs)
    return path
