"""`python -m f2rvlm.demo` (what `make demo` runs): one retrieval on the bundled example dialogue.

The default model: a freshly trained outputs/demo-model (`make train-tiny`), else the committed
models/tiny-demo (`make demo-model`), else a randomly initialised tiny model built under
outputs/demo-model (answers are not meaningful). Loads assets/example_dialogue.json and prints
the fragment.
"""

from __future__ import annotations

import argparse
import json
import os

ASSETS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets")
TRAINED_MODEL = os.path.join("outputs", "demo-model")  # `make train-tiny` exports here
COMMITTED_MODEL = os.path.join("models", "tiny-demo")  # committed; `make demo-model` rebuilds it


def default_model() -> str:
    """outputs/demo-model when it holds a trained export, else models/tiny-demo when present,
    else outputs/demo-model (built with random weights on first use)."""
    if os.path.isfile(os.path.join(TRAINED_MODEL, "f2rvlm_recipe.json")):
        return TRAINED_MODEL
    if os.path.isfile(os.path.join(COMMITTED_MODEL, "model.safetensors")):
        return COMMITTED_MODEL
    return TRAINED_MODEL


DEFAULT_MODEL = default_model()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=DEFAULT_MODEL, help="F2RVLM model folder or repo id")
    parser.add_argument("--query", default="the photos from our trip to the lake")
    parser.add_argument("--mode", default=None, choices=["generate", "guided", "tagging"],
                        help="default: the model's `default_retrieval_mode` (its best mode on validation), else generate")
    args = parser.parse_args(argv)

    import torch

    from .dialogue import Dialogue
    from .hub import load_model

    torch.set_num_threads(min(2, torch.get_num_threads()))
    if args.model == TRAINED_MODEL and not os.path.isdir(args.model):
        from .tiny import save_tiny

        print(f"building the default tiny model in {args.model} (random weights: answers are not meaningful; "
              "run `make demo-model` or `make train-tiny` for a trained one)")
        save_tiny(args.model, "qwen2_vl", "test", seed=0, relevance_head=True)
    model, processor = load_model(args.model)
    mode = args.mode or getattr(model.config, "default_retrieval_mode", None) or "generate"
    if mode != "generate" and getattr(model, "relevance_head", None) is None:
        mode = "generate"
    with open(os.path.join(ASSETS, "example_dialogue.json"), encoding="utf-8") as f:
        dialogue = Dialogue.from_dict(json.load(f), base_dir=ASSETS)
    result = model.retrieve(dialogue, args.query, processor=processor, mode=mode, template="en")
    print(f"query: {args.query}")
    print(f"answer: {result.text}")
    images = dialogue.images
    for i in result.utterance_ids:
        u = dialogue.utterances[i]
        print(f"  [{i}] {u.speaker}: {u.text}")
    for k in result.image_ids:
        print(f"  image {k}: {os.path.basename(images[k].path or '')}")
    if not result.utterance_ids and not result.image_ids:
        print("  (nothing matches)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
