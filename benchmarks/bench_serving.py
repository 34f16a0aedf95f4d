"""Serving throughput and answer validity: a served model through `RetrievalClient` at several
concurrencies against in-process `retrieve_batch`, with and without the answer grammar.

    # CPU, here: a tiny seeded Qwen2-VL, `transformers serve` (what `f2rvlm serve` picks without vLLM)
    python benchmarks/bench_serving.py
    # GPU: a real F2RVLM checkpoint behind vLLM (vLLM in its own virtualenv), whole dialogues
    python benchmarks/bench_serving.py --model outputs/f2rvlm-7b --backend vllm --vllm /opt/vllm/bin/vllm \
        --device cuda --turns 0 --max-tokens 0 --max-model-len 16384

Workload: `--requests` (dialogue, query) pairs from the synthetic `validation` split (English),
each dialogue cut to its first `--turns` turns (0 keeps it whole), `--max-tokens` new tokens at
most (0: the longest answer the dialogue allows), greedy decoding.

Rows:
- served, concurrency c: the pairs through `RetrievalClient(concurrency=c)`, grammar sent when the
  server takes it (vLLM: `structured_outputs`; `transformers serve` takes none).
- served without grammar: the same at the highest concurrency with `server_grammar=False`.
- in process: `model.retrieve_batch(pairs, batch_size=8)`, constrained (the in-process grammar)
  and unconstrained, on the same device.

Invalid answers: completions that do not parse strictly or name an id that is not in the dialogue,
counted BEFORE the client's lenient parse and id filter (after them every result is valid).
Writes the "serving" section of benchmarks/RESULTS.md unless --no-write.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
SECTION = "serving"


def workload(requests: int, turns: int):
    from f2rvlm.data.synthetic import generate_split

    pairs = []
    for sample in generate_split("validation", requests, seed=0, language="en"):
        dialogue = sample.dialogue if not turns else sample.dialogue.window(0, min(turns, len(sample.dialogue)))[0]
        pairs.append((dialogue, sample.queries[0].query))
    return pairs[:requests]


def invalid(text: str, dialogue) -> bool:
    from f2rvlm.core.protocol import parse_answer

    answer = parse_answer(text.strip(), "strict")
    return (answer is None or not set(answer.utterance_ids) <= set(dialogue.utterance_ids)
            or not set(answer.image_ids) <= set(range(dialogue.num_images)))


def row(name, pairs, results, seconds, grammar):
    bad = sum(invalid(r.text, d) for r, (d, _) in zip(results, pairs))
    return [name, grammar, len(pairs), f"{seconds:.1f}", f"{len(pairs) / seconds:.2f}", f"{bad / len(pairs):.1%}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="F2RVLM folder (default: a tiny seeded Qwen2-VL)")
    parser.add_argument("--endpoint", default=None, help="an already running server's /v1 URL (serving the same model)")
    parser.add_argument("--backend", default="auto", choices=["auto", "vllm", "transformers"])
    parser.add_argument("--vllm", default="vllm", help="the vllm command")
    parser.add_argument("--max-model-len", type=int, default=None)
    parser.add_argument("--tensor-parallel-size", type=int, default=1)
    parser.add_argument("--device", default="cpu", help="in-process device (and transformers serve's)")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--turns", type=int, default=6)
    parser.add_argument("--max-tokens", type=int, default=0)
    parser.add_argument("--machine", default=None, help="machine description for RESULTS.md (default: this one)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()

    import torch
    from f2rvlm.client import RetrievalClient
    from f2rvlm.models.hub import export_for_serving, load_model
    from f2rvlm.models.tiny import save_tiny
    from f2rvlm.serving.launch import find_free_port, server_command, start_server, stop_server
    from results import machine, markdown_table, update_section

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "0")) or torch.get_num_threads())
    tmp = tempfile.TemporaryDirectory(prefix="bench-serving-")
    model_dir = args.model or save_tiny(os.path.join(tmp.name, "tiny"), family="qwen2_vl", seed=0)
    pairs = workload(args.requests, args.turns)
    max_tokens = args.max_tokens or None
    levels = [int(c) for c in args.concurrency.split(",")]

    process, backend = None, "given endpoint"
    url = args.endpoint
    if url is None:
        serving = export_for_serving(model_dir, os.path.join(tmp.name, "serving"))
        command = server_command(serving, backend=args.backend, port=find_free_port(), device=args.device,
                                 vllm=args.vllm, max_model_len=args.max_model_len,
                                 tensor_parallel_size=args.tensor_parallel_size)
        backend = command.backend
        log = open(os.path.join(tmp.name, "server.log"), "w")  # noqa: SIM115 - lives as long as the server
        process = start_server(command, timeout=1800, log=log, env={"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")})
        url = command.base_url
    rows = []
    try:
        RetrievalClient(url, max_tokens=4).retrieve_batch(pairs[:2])  # warm-up (first request loads lazily)
        for level in levels:
            client = RetrievalClient(url, concurrency=level, max_tokens=max_tokens, timeout=600)
            start = time.perf_counter()
            results = client.retrieve_batch(pairs)
            grammar = "server" if client.server_grammar is not False else "none (rejected)"
            rows.append(row(f"served, concurrency {level}", pairs, results, time.perf_counter() - start, grammar))
            print(rows[-1], flush=True)
        client = RetrievalClient(url, concurrency=max(levels), max_tokens=max_tokens, timeout=600, server_grammar=False)
        start = time.perf_counter()
        results = client.retrieve_batch(pairs)
        rows.append(row(f"served, concurrency {max(levels)}", pairs, results, time.perf_counter() - start, "none"))
        print(rows[-1], flush=True)
    finally:
        if process is not None:
            stop_server(process)

    model, processor = load_model(model_dir, device=args.device)
    for constrained in (True, False):
        start = time.perf_counter()
        results = model.retrieve_batch(pairs, processor=processor, batch_size=8, mode="generate",
                                       constrained=constrained, max_new_tokens=max_tokens)
        rows.append(row("in process, retrieve_batch(batch_size=8)", pairs, results, time.perf_counter() - start,
                        "in-process" if constrained else "none"))
        print(rows[-1], flush=True)

    header = ["path", "answer grammar", "requests", "seconds", "requests/s", "invalid answers"]
    turns = f"first {args.turns} turns" if args.turns else "whole dialogues"
    body = (f"Model: {args.model or 'tiny Qwen2-VL (size test, seed 0, random weights)'}; server: {backend}; "
            f"{args.requests} synthetic validation pairs ({turns}), "
            f"{f'at most {args.max_tokens} new tokens' if args.max_tokens else 'the longest possible answer as token budget'}, "
            "greedy. Invalid answers: not strictly parsable or naming an id outside the dialogue, "
            "before the client's lenient parse and id filter (after them every result is valid).\n\n"
            + markdown_table(header, rows))
    if backend == "transformers":
        body += ("\n\n`transformers serve` runs one generation at a time and takes no answer grammar (it answers 422 to "
                 "`structured_outputs`; the client then drops the field), so concurrency only overlaps HTTP and image "
                 "decoding, and a random model's served answers are all invalid before the client's filter. vLLM "
                 "(continuous batching, structured outputs) is measured with the same script on a GPU.")
    command_line = "python benchmarks/bench_serving.py " + subprocess.list2cmdline(sys.argv[1:])
    if not args.no_write:
        update_section(SECTION, body, command_line.strip(), args.machine or machine())
    print(body)


if __name__ == "__main__":
    main()
