"""The `f2rvlm` command line.

    f2rvlm retrieve --model DIR --dialogue chat.json --query "the flat we viewed" [--json]
    f2rvlm retrieve --endpoint http://127.0.0.1:8000/v1 --dialogue chat.json --query "..."
    f2rvlm eval --predictions preds.jsonl [--json]
    f2rvlm merge --shards infer_result.jsonl --original MLDR_val.json --out preds.jsonl
    f2rvlm tiny --family qwen2_vl --out DIR
    f2rvlm export --model DIR --out DIR [--for-serving]
    f2rvlm serve --model SERVING_DIR [--port 8000] [--backend auto|vllm|transformers]
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
    if (args.model is None) == (args.endpoint is None):
        raise UserError("give exactly one of --model (in process) and --endpoint (a served model)")
    dialogue = load_dialogue_file(args.dialogue)
    if args.endpoint:
        from ..client import RetrievalClient

        if args.mode not in (None, "generate") or args.unconstrained:
            raise UserError("a served model answers in generate mode, grammar-constrained when the server can")
        client = RetrievalClient(args.endpoint, args.served_model, timeout=args.timeout, retries=args.retries,
                                 **({"template": args.template} if args.template else {}))
        results = client.retrieve(dialogue, args.query)
    else:
        from ..models.hub import load_model

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
    from ..models.hub import export_for_serving, export_model

    if args.for_serving:
        path = export_for_serving(args.model, args.out, overwrite=args.overwrite)
        print(f"serving folder (stock backbone, heads in f2rvlm_extras/) written to {path}; "
              f"serve it with: f2rvlm serve --model {args.out}")
        return 0
    path = export_model(args.model, args.out, overwrite=args.overwrite)
    print(f"F2RVLM model exported to {path}")
    return 0


def cmd_serve(args) -> int:
    import signal
    import subprocess

    from ..serving.launch import find_free_port, server_command, start_server, stop_server

    config_file = os.path.join(args.model, "config.json")
    if not os.path.isfile(config_file):
        raise UserError(f"{args.model}: not a model folder (no config.json)")
    with open(config_file, encoding="utf-8") as f:
        model_type = json.load(f).get("model_type", "")
    if model_type.startswith("f2rvlm_"):
        raise UserError(f"{args.model} is an F2RVLM folder; servers load the stock backbone: "
                        f"f2rvlm export --for-serving --model {args.model} --out DIR, then serve DIR")
    port = args.port or find_free_port(args.host)
    command = server_command(
        args.model, backend=args.backend, host=args.host, port=port, served_model_name=args.served_model_name,
        tensor_parallel_size=args.tensor_parallel_size, max_model_len=args.max_model_len,
        max_images=args.max_images, gpu_memory_utilization=args.gpu_memory_utilization, device=args.device,
        dtype=args.dtype, vllm=args.vllm)
    if args.print_command:
        print(subprocess.list2cmdline(command.argv))
        return 0
    print(f"starting {command.backend}: {subprocess.list2cmdline(command.argv)}", file=sys.stderr)
    process = start_server(command, timeout=args.startup_timeout, log=sys.stderr)  # stdout: the endpoint line only
    grammar = "enforced by the server" if command.grammar else "not enforced by this server (the client filters)"
    print(f"serving {args.model} at {command.base_url} (backend {command.backend}, model "
          f"{command.model!r}; answer grammar {grammar})", flush=True)
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)  # stop the server on SIGTERM as on Ctrl-C
    try:
        return process.wait()
    except KeyboardInterrupt:
        stop_server(process)
        return 130


def _raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt


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
    p.add_argument("--model", help="model folder or Hub repo id (in process)")
    p.add_argument("--endpoint", help="an OpenAI-compatible server's base URL (f2rvlm serve), instead of --model")
    p.add_argument("--served-model", default=None, help="with --endpoint: the model name (default: the server's first)")
    p.add_argument("--timeout", type=float, default=300.0, help="with --endpoint: seconds per request")
    p.add_argument("--retries", type=int, default=2, help="with --endpoint: retries of a failed request")
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
    p.add_argument("--for-serving", action="store_true",
                   help="the stock Qwen-VL folder vLLM/SGLang/transformers serve (heads kept in f2rvlm_extras/)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("serve", help="serve a --for-serving folder on an OpenAI-compatible endpoint "
                       "(vLLM when installed, else transformers serve)")
    p.add_argument("--model", required=True, help="a serving folder (f2rvlm export --for-serving)")
    p.add_argument("--backend", default="auto", choices=["auto", "vllm", "transformers"])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    p.add_argument("--served-model-name", default=None, help="vLLM: the model name (default: the folder's name)")
    p.add_argument("--tensor-parallel-size", type=int, default=1, help="vLLM: GPUs per model")
    p.add_argument("--max-model-len", type=int, default=None, help="vLLM: context length (prompt + answer)")
    p.add_argument("--max-images", type=int, default=64, help="vLLM: --limit-mm-per-prompt images per request")
    p.add_argument("--gpu-memory-utilization", type=float, default=0.9, help="vLLM: share of GPU memory it takes")
    p.add_argument("--device", default="auto", help="transformers: device ('auto', 'cpu', 'cuda:0')")
    p.add_argument("--dtype", default="auto")
    p.add_argument("--vllm", default="vllm", help="the vllm command (e.g. the one in its own virtualenv)")
    p.add_argument("--startup-timeout", type=float, default=900.0, help="seconds to wait for the server")
    p.add_argument("--print-command", action="store_true", help="print the server command line and exit")
    p.set_defaults(func=cmd_serve)

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
