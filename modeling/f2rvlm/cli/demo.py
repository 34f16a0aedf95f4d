"""`python -m f2rvlm.cli.demo` (`make demo-cli`): retrievals printed in the terminal.

The default model: a freshly trained outputs/demo-model (`make train-tiny`), else the committed
models/tiny-demo (`make demo-model`), else a randomly initialised tiny model built under
outputs/demo-model (answers are not meaningful). Runs the queries of a shipped synthetic sample
dialogue (validation-split style: in-domain for the tiny model) and prints answer, gold and the
retrieved turns; `--dialogue FILE --query Q` runs on your own dialogue or chat export.
"""

from __future__ import annotations

import argparse
import os

from ..models.registry_f2rvlm import RETRIEVAL_MODES

ASSETS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "assets")
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
    parser.add_argument("--dialogue", default=None,
                        help="a dialogue JSON or chat export; default: the shipped synthetic samples "
                             "(in-domain for the tiny model), each with its queries and gold fragment")
    parser.add_argument("--query", default=None, help="with --dialogue: what to look for")
    parser.add_argument("--mode", default=None, choices=list(RETRIEVAL_MODES),
                        help="default: the model's `default_retrieval_mode` (its best mode on validation), else generate")
    args = parser.parse_args(argv)
    if args.dialogue and not args.query:
        parser.error("--dialogue needs --query")

    import torch

    from ..models.hub import load_model

    torch.set_num_threads(min(2, torch.get_num_threads()))
    if args.model == TRAINED_MODEL and not os.path.isdir(args.model):
        from ..models.tiny import save_tiny

        print(f"building the default tiny model in {args.model} (random weights: answers are not meaningful; "
              "run `make demo-model` or `make train-tiny` for a trained one)")
        save_tiny(args.model, "qwen2_vl", "test", seed=0, relevance_head=True)
    model, processor = load_model(args.model)
    mode = args.mode or getattr(model.config, "default_retrieval_mode", None) or "generate"
    if mode != "generate" and getattr(model, "relevance_head", None) is None:
        mode = "generate"
    print(f"model: {args.model} ({mode} mode)")

    if args.dialogue:
        from . import load_dialogue_file

        cases = [(load_dialogue_file(args.dialogue), args.query, None)]
    else:
        from ..data import load_samples

        entry = next(e for e in load_samples() if e["language"] == "en")
        cases = [(entry["dialogue"], q["query"], q) for q in entry["queries"]]
    for dialogue, query, gold in cases:
        result = model.retrieve(dialogue, query, processor=processor, mode=mode, template="en")
        print(f"\nquery:  {query}")
        print(f"answer: {result.text}  ({len(dialogue)} turns, {dialogue.num_images} images)")
        if gold is not None:
            print(f"gold:   utterances {gold['utterance_ids']}, images {gold['image_ids']}")
        for i in result.utterance_ids:
            u = dialogue.utterances[i]
            print(f"  [{i}] {u.speaker}: {u.text}")
        for k in result.image_ids:
            print(f"  image {k} (on turn {dialogue.image_hosts[k]})")
        if not result.utterance_ids and not result.image_ids:
            print("  (nothing matches)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
