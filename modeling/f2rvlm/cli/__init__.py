"""The `f2rvlm` command line.

    f2rvlm retrieve --model DIR --dialogue chat.json --query "the flat we viewed" [--json]
    f2rvlm eval --predictions preds.jsonl [--json]
    f2rvlm merge --shards infer_result.jsonl --original MLDR_val.json --out preds.jsonl
    f2rvlm tiny --family qwen2_vl --out DIR
    f2rvlm export --model DIR --out DIR
    f2rvlm convert --base DIR --adapter DIR --out DIR
    f2rvlm data synth --num-dialogues 200 --seed 0 --language en --out DIR
    f2rvlm data build --from-release DIR --out DIR [--wechat] [--on-error skip]
    f2rvlm corpus index|search|eval  (many chats: fragment index, recall + rerank; docs/corpus.md)

User errors (bad files, bad ids, missing weights) end in one `error: ...` line and exit code 2;
set F2RVLM_DEBUG=1 to see the traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from ..data.build import add_build_arguments
from ..models.registry_f2rvlm import FAMILIES, RETRIEVAL_MODES


class UserError(Exception):
    """An error in what the user gave (file, argument); printed as one line, no traceback."""


#: Left-out items that make a dialogue file (as opposed to a phone's chat export) wrong.
_STRICT_FORMATS = ("dialogue-json", "released", "annotation")
_IMAGE_PROBLEMS = ("missing image file", "unreadable image", "image without its file", "image attached twice")


def load_dialogue_file(path: str):
    """A Dialogue from our JSON or any chat export `f2rvlm.formats` reads.

    Files written for F2RVLM must be complete: a missing or unreadable image is an error. Chat
    exports from phones routinely lack media, so there it is a warning listing what was left out.
    """
    from ..formats import import_chat

    if not os.path.exists(path):
        raise UserError(f"dialogue file not found: {path}")
    imported = import_chat(path)
    problems = [item for item in imported.ignored if item.kind in _IMAGE_PROBLEMS]
    if problems and imported.format in _STRICT_FORMATS:
        item = problems[0]
        raise UserError(f"{path}: {item.kind}: {'; '.join(item.examples[:3])}")
    if imported.ignored:
        print(f"note: {imported.summary()}", file=sys.stderr)
    return imported.dialogue


def cmd_retrieve(args) -> int:
    from ..models.hub import load_model

    dialogue = load_dialogue_file(args.dialogue)
    model, processor = load_model(args.model, device=args.device)
    results = model.retrieve(
        dialogue, args.query, processor=processor, mode=args.mode, template=args.template,
        constrained=not args.unconstrained, show_progress=True,
    )
    if args.json:
        print(json.dumps(results.to_dict(), ensure_ascii=False, indent=2))
    else:
        print(f"utterances: {results.utterance_ids}")
        print(f"images:     {results.image_ids}")
        print(f"spans:      {results.spans}")
        for i in results.utterance_ids:
            u = dialogue.utterances[i]
            print(f"  [{i}] {u.speaker}: {u.text}")
    return 0


def cmd_eval(args) -> int:
    from ..core.predictions import evaluate_predictions_file, format_report

    report = evaluate_predictions_file(args.predictions, parse_mode=args.parse_mode, per_sample=args.per_sample,
                                       strict=args.strict, empty_gold_mcc=args.empty_gold_mcc)
    print(json.dumps(report, ensure_ascii=False, indent=2) if args.json else format_report(report))
    return 0


def cmd_merge(args) -> int:
    from ..core.predictions import merge_split_predictions, write_predictions

    shards = []
    for path in args.shards:
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as err:
                    raise UserError(f"{path}, line {lineno}: not valid JSON ({err.msg})") from None
                if not isinstance(record, dict) or "dialogue_id" not in record or "response" not in record:
                    raise UserError(f"{path}, line {lineno}: a shard record needs 'dialogue_id' and 'response'")
                shards.append(record)
    with open(args.original, encoding="utf-8") as f:
        text = f.read()
    try:
        original = json.loads(text) if text.lstrip().startswith("[") else [json.loads(l) for l in text.splitlines() if l.strip()]
    except json.JSONDecodeError as err:
        raise UserError(f"{args.original}: not valid JSON ({err.msg})") from None
    if not all(isinstance(r, dict) and "dialogue_id" in r for r in original):
        raise UserError(f"{args.original}: every record needs a 'dialogue_id'")
    merged = merge_split_predictions(shards, original)
    path = write_predictions(merged, args.out)
    print(f"{len(merged)} dialogues from {len(shards)} shard records written to {path} (score it with f2rvlm eval)")
    return 0


def cmd_tiny(args) -> int:
    from ..models.tiny import save_tiny

    path = save_tiny(args.out, family=args.family, size=args.size, seed=args.seed, relevance_head=args.relevance_head)
    print(f"tiny {args.family} F2RVLM model written to {path}")
    return 0


def cmd_export(args) -> int:
    from ..models.hub import export_model

    path = export_model(args.model, args.out, overwrite=args.overwrite)
    print(f"F2RVLM model exported to {path}")
    return 0


def cmd_convert(args) -> int:
    from ..models.hub import convert_released

    path = convert_released(args.base, args.adapter, args.out, overwrite=args.overwrite)
    print(f"merged F2RVLM model written to {path}")
    return 0


def cmd_data_build(args) -> int:
    from ..data.build import build_dataset

    build_dataset(args)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="f2rvlm", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("retrieve", help="retrieve the fragment of a dialogue that matches a query")
    p.add_argument("--model", required=True, help="model folder or Hub repo id")
    p.add_argument("--dialogue", required=True, help="dialogue JSON or a chat export")
    p.add_argument("--query", required=True)
    p.add_argument("--mode", default=None, choices=list(RETRIEVAL_MODES),
                   help="default: the model's config.default_retrieval_mode")
    p.add_argument("--template", default=None, help="prompt template (default: the model's)")
    p.add_argument("--unconstrained", action="store_true", help="turn off grammar-constrained decoding")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_retrieve)

    p = sub.add_parser("eval", help="paper metrics of a predictions file (released JSONL or ours)")
    p.add_argument("--predictions", required=True)
    p.add_argument("--parse-mode", default="lenient", choices=["strict", "lenient", "reasoning"])
    p.add_argument("--per-sample", action="store_true", help="add per-sample (macro) metrics and length buckets")
    p.add_argument("--strict", action="store_true",
                   help="fail on a line that is not JSON or a record without labels/response (released: skipped)")
    p.add_argument("--empty-gold-mcc", action="store_true",
                   help="per-sample MCC of an empty-gold sample = its F1 (1 or 0); released: 0")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("merge", help="merge the released sliding-window inference shards (<id>_split_<k>) of one run "
                       "into one predictions file (released sliding_infer_result_concat.py)")
    p.add_argument("--shards", nargs="+", required=True, help="inference JSONL file(s) of the _split_ windows")
    p.add_argument("--original", required=True, help="the un-split released data file (e.g. MLDR_val.json)")
    p.add_argument("--out", required=True, help="merged predictions JSONL (input of f2rvlm eval)")
    p.set_defaults(func=cmd_merge)

    p = sub.add_parser("tiny", help="write a tiny, randomly initialised F2RVLM model folder")
    p.add_argument("--family", default="qwen2_vl", choices=list(FAMILIES))
    p.add_argument("--size", default="test")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--relevance-head", action="store_true")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_tiny)

    p = sub.add_parser("export", help="export a model (or trained checkpoint) as a Hub-ready F2RVLM folder")
    p.add_argument("--model", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("convert", help="merge the released LoRA adapter into its base into an F2RVLM folder")
    p.add_argument("--base", required=True, help="backbone folder, e.g. Qwen2-VL-7B-Instruct")
    p.add_argument("--adapter", required=True, help="PEFT adapter folder")
    p.add_argument("--out", required=True)
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("data", help="datasets")
    data_sub = p.add_subparsers(dest="data_command", required=True)
    q = data_sub.add_parser("build", help="build a dataset folder: released MLDR (or WeChat with --wechat), or "
                            "--synthetic MLDR; the same options as hub_datasets/*/build.py")
    add_build_arguments(q)
    q.set_defaults(func=cmd_data_build)
    q = data_sub.add_parser("synth", help="shorthand for `data build --synthetic`")
    add_build_arguments(q, "mldr", synthetic_only=True)
    q.set_defaults(func=cmd_data_build)

    from ..corpus.cli import add_corpus_parser

    add_corpus_parser(sub)
    return parser


def run_command(func, *args) -> int:
    """Run a command; a user error (bad file or argument: `UserError`, `ValueError` — which
    `DialogueError` and `PromptParseError` are — or `OSError`) becomes one `error:` line and exit
    code 2. Shared by this CLI and the hub_datasets build scripts. F2RVLM_DEBUG=1 re-raises."""
    try:
        return func(*args) or 0
    except (UserError, ValueError, OSError) as err:
        if os.environ.get("F2RVLM_DEBUG"):
            raise
        print(f"error: {' '.join(str(err).split()) or type(err).__name__}", file=sys.stderr)  # one line
        return 2
    except KeyboardInterrupt:
        return 130


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
