"""`python -m f2rvlm.demo` (what `make demo` runs): one retrieval on the bundled example dialogue.

Builds the default tiny model under outputs/demo-model when absent (randomly initialised until
the recipes produce a trained one), loads assets/example_dialogue.json and prints the fragment.
"""

from __future__ import annotations

import argparse
import json
import os

ASSETS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets")
DEFAULT_MODEL = os.path.join("outputs", "demo-model")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=DEFAULT_MODEL, help="F2RVLM model folder or repo id")
    parser.add_argument("--query", default="the photos from our trip to the lake")
    parser.add_argument("--mode", default="generate", choices=["generate", "guided", "tagging"])
    args = parser.parse_args(argv)

    import torch

    from .dialogue import Dialogue
    from .hub import load_model

    torch.set_num_threads(min(2, torch.get_num_threads()))
    if args.model == DEFAULT_MODEL and not os.path.isdir(args.model):
        from .tiny import save_tiny

        print(f"building the default tiny model in {args.model} (random weights: answers are not meaningful)")
        save_tiny(args.model, "qwen2_vl", "test", seed=0, relevance_head=True)
    model, processor = load_model(args.model)
    with open(os.path.join(ASSETS, "example_dialogue.json"), encoding="utf-8") as f:
        dialogue = Dialogue.from_dict(json.load(f), base_dir=ASSETS)
    result = model.retrieve(dialogue, args.query, processor=processor, mode=args.mode, template="en")
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
