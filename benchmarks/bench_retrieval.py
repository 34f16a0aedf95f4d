"""Retrieval latency, constrained vs unconstrained decoding, batched throughput and peak memory.

    python benchmarks/bench_retrieval.py [--quick] [--sizes test,small,base] [--reps 5] [--threads 1]
                                         [--device cpu] [--no-write]

Tiny randomly initialised Qwen2-VL F2RVLM models (`f2rvlm.models.tiny.build_tiny`, with a relevance
head so tagging mode can be timed) on synthetic dialogues with images: the `validation` dialogue
closest to 25 turns and the `test_heldout` dialogue closest to 75 turns (for batches: the 8
dialogues closest to that length, first query of each). Every number that has a target is a
RATIO against a baseline measured in the same process, with baseline and candidate repetitions
interleaved and medians taken, so noise from other jobs on the machine hits both alike.

Measurements per (model size, dialogue length):

- latency: `model.retrieve(...)` end to end (prompt building, image processing, generation,
  parsing), generate mode, constrained; and tagging mode (one forward pass + relevance head).
- constrained vs unconstrained: a random model writes garbage when unconstrained and never stops
  where the constrained one does, so comparing `retrieve(constrained=False)` would compare
  different amounts of work. Instead both run `model.generate` on the SAME inputs for the SAME
  number of new tokens N: the constrained run (AnswerConstraint, as `retrieve` builds it) picks
  N; the unconstrained run is forced to exactly N with `min_new_tokens=max_new_tokens=N`.
  Ratio = constrained / unconstrained wall time (target <= 1.10). The per-token cost of the
  constraint is reported too (ms, and as a share of one unconstrained decode step).
- batched vs one-by-one: 8 pairs through `retrieve_batch(pairs, batch_size=8)` vs 8 calls of
  `retrieve`; ratio of pairs/s (target >= 2.0).
- peak memory: one fresh subprocess per configuration (build model, prepare data, record RSS
  high-water mark, run the workload once, read the high-water mark VmHWM again); MB, and the
  growth over the pre-workload high-water mark.

Writes the section "Retrieval latency (core)" of benchmarks/RESULTS.md (unless --no-write).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
SECTION = "Retrieval latency (core)"
BATCH = 8
LENGTHS = (25, 75)
SPLIT_OF = {25: "validation", 75: "test_heldout"}


# ----------------------------------------------------------------------------------------------
# Data and model
# ----------------------------------------------------------------------------------------------
def pairs_near(turns: int, count: int) -> list[tuple]:
    """`count` (dialogue, query) pairs whose dialogues are closest to `turns` turns (deterministic)."""
    from f2rvlm.data.synthetic import generate_split

    samples = generate_split(SPLIT_OF[turns], 32, seed=0, language="en")
    samples.sort(key=lambda s: (abs(len(s.dialogue) - turns), s.dialogue.dialogue_id))
    return [(s.dialogue, s.queries[0].query) for s in samples[:count]]


def build(size: str, device: str):
    import torch
    from f2rvlm.models.tiny import build_tiny

    model, processor = build_tiny("qwen2_vl", size, seed=0, relevance_head=True,
                                  max_context_tokens=8192)  # 75 turns fit one window
    return model.to(torch.device(device)), processor


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def timed(fn, device: str) -> float:
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def interleaved(fns: dict, reps: int, device: str) -> dict[str, float]:
    """Median seconds of each callable; one warm-up each, then rounds that run every callable once."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for r in range(reps):
        names = list(fns) if r % 2 == 0 else list(reversed(fns))  # alternate order too
        for name in names:
            times[name].append(timed(fns[name], device))
    return {name: statistics.median(values) for name, values in times.items()}


# ----------------------------------------------------------------------------------------------
# Constrained vs unconstrained at an equal number of generated tokens
# ----------------------------------------------------------------------------------------------
def generation_fns(model, processor, dialogue, query):
    """(constrained fn, unconstrained fn, N): both generate exactly N new tokens from the same inputs."""
    from f2rvlm.core.protocol import AnswerGrammar
    from f2rvlm.models.generation_f2rvlm import AnswerConstraint, max_answer_length
    from f2rvlm.models.retrieval_f2rvlm import _eos_ids
    from transformers import LogitsProcessorList

    tokenizer = processor.tokenizer
    inputs = processor.build_inputs([(dialogue, query)], template=model.config.prompt_template)
    inputs = inputs.to(model.device)
    prompt_length = inputs["input_ids"].shape[1]
    budget = max_answer_length(len(dialogue), dialogue.num_images) + 1
    common = {"do_sample": False, "num_beams": 1, "pad_token_id": tokenizer.pad_token_id,
              "eos_token_id": _eos_ids(tokenizer), "temperature": None, "top_p": None, "top_k": None}

    def constrained():
        constraint = AnswerConstraint(tokenizer, [AnswerGrammar(dialogue.utterance_ids, range(dialogue.num_images))],
                                      prompt_length)
        return model.generate(**inputs, max_new_tokens=budget, logits_processor=LogitsProcessorList([constraint]),
                              **common)

    new_tokens = constrained().shape[1] - prompt_length

    def unconstrained(n=new_tokens):
        out = model.generate(**inputs, max_new_tokens=n, min_new_tokens=n, **common)
        assert out.shape[1] - prompt_length == n, (out.shape, prompt_length, n)
        return out

    return constrained, unconstrained, new_tokens


# ----------------------------------------------------------------------------------------------
# One (size, length) cell
# ----------------------------------------------------------------------------------------------
def measure(size: str, turns: int, reps: int, device: str) -> dict:
    import torch

    model, processor = build(size, device)
    pairs = pairs_near(turns, BATCH)
    dialogue, query = pairs[0]
    template = model.config.prompt_template
    row = {"size": size, "params_m": sum(p.numel() for p in model.parameters()) / 1e6, "turns": len(dialogue),
           "images": dialogue.num_images, "prompt_tokens": processor.count_prompt_tokens(dialogue, query, template),
           "batch_turns": f"{min(len(d) for d, _ in pairs)}-{max(len(d) for d, _ in pairs)}"}

    with torch.no_grad():
        # 1. end-to-end latency: generate (constrained) vs tagging
        lat = interleaved({
            "generate": lambda: model.retrieve(dialogue, query, processor, mode="generate"),
            "tagging": lambda: model.retrieve(dialogue, query, processor, mode="tagging"),
        }, reps, device)
        row["generate_s"], row["tagging_s"] = lat["generate"], lat["tagging"]

        # 2. constrained vs unconstrained, same inputs, same number of new tokens
        constrained, unconstrained, n = generation_fns(model, processor, dialogue, query)
        one_step = generation_fns(model, processor, dialogue, query)[1]
        gen = interleaved({"constrained": constrained, "unconstrained": unconstrained,
                           "prefill": lambda: one_step(1)}, reps, device)
        row["n_tokens"] = n
        row["constrained_s"], row["unconstrained_s"] = gen["constrained"], gen["unconstrained"]
        decode_step = max(gen["unconstrained"] - gen["prefill"], 1e-9) / max(n - 1, 1)
        row["decode_step_ms"] = decode_step * 1e3
        row["constraint_ms_per_token"] = (gen["constrained"] - gen["unconstrained"]) / n * 1e3

        # 3. batched vs one-by-one throughput (generate mode, constrained)
        batched_results = model.retrieve_batch(pairs, processor, batch_size=BATCH)
        single_results = [model.retrieve(d, q, processor) for d, q in pairs]
        row["batch_equal"] = [r.to_dict() for r in batched_results] == [r.to_dict() for r in single_results]
        thr = interleaved({
            "one_by_one": lambda: [model.retrieve(d, q, processor) for d, q in pairs],
            "batched": lambda: model.retrieve_batch(pairs, processor, batch_size=BATCH),
        }, max(2, reps // 2), device)
        row["one_by_one_s"], row["batched_s"] = thr["one_by_one"], thr["batched"]
        tag = interleaved({
            "one_by_one": lambda: [model.retrieve(d, q, processor, mode="tagging") for d, q in pairs],
            "batched": lambda: model.retrieve_batch(pairs, processor, batch_size=BATCH, mode="tagging"),
        }, max(2, reps // 2), device)
        row["tag_one_by_one_s"], row["tag_batched_s"] = tag["one_by_one"], tag["batched"]
    return row


# ----------------------------------------------------------------------------------------------
# Peak memory: one subprocess per configuration
# ----------------------------------------------------------------------------------------------
WORKLOADS = ("single-generate", "single-unconstrained", "single-tagging", "batch8-generate")


def _rss_hwm_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")  # pragma: no cover - non-Linux


def memory_child(size: str, turns: int, workload: str, device: str) -> None:
    import resource

    import torch

    model, processor = build(size, device)
    pairs = pairs_near(turns, BATCH)
    dialogue, query = pairs[0]
    processor.count_prompt_tokens(dialogue, query, model.config.prompt_template)
    before = _rss_hwm_mb()
    with torch.no_grad():
        if workload == "single-generate":
            model.retrieve(dialogue, query, processor)
        elif workload == "single-unconstrained":
            model.retrieve(dialogue, query, processor, constrained=False)
        elif workload == "single-tagging":
            model.retrieve(dialogue, query, processor, mode="tagging")
        else:
            model.retrieve_batch(pairs, processor, batch_size=BATCH)
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the (big) parent across fork+exec
    peak = _rss_hwm_mb() if os.path.exists("/proc/self/status") else \
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    cuda_peak = torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else None
    print(json.dumps({"before_mb": before, "peak_mb": peak, "cuda_peak_mb": cuda_peak}))


def measure_memory(size: str, turns: int, workload: str, threads: int, device: str) -> dict:
    cmd = [sys.executable, __file__, "--memory-child", f"{size},{turns},{workload}", "--threads", str(threads),
           "--device", device]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    return json.loads(out.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------------------
def report(rows: list[dict], memory: dict, args) -> str:
    from results import markdown_table

    lat_rows, gen_rows, thr_rows, mem_rows = [], [], [], []
    for r in rows:
        key = f"{r['size']} ({r['params_m']:.1f}M)"
        lat_rows.append([key, r["turns"], r["images"], r["prompt_tokens"], f"{r['generate_s'] * 1e3:.0f}",
                         r["n_tokens"], f"{r['tagging_s'] * 1e3:.0f}", f"{r['generate_s'] / r['tagging_s']:.1f}x"])
        ratio = r["constrained_s"] / r["unconstrained_s"]
        gen_rows.append([key, r["turns"], r["n_tokens"], f"{r['unconstrained_s'] * 1e3:.0f}",
                         f"{r['constrained_s'] * 1e3:.0f}", f"**{ratio:.3f}**", "yes" if ratio <= 1.10 else "NO",
                         f"{r['decode_step_ms']:.2f}", f"{r['constraint_ms_per_token']:.2f}",
                         f"{100 * r['constraint_ms_per_token'] / r['decode_step_ms']:.0f}%"])
        speedup = r["one_by_one_s"] / r["batched_s"]
        thr_rows.append([key, r["turns"], r["batch_turns"], f"{BATCH / r['one_by_one_s']:.2f}", f"{BATCH / r['batched_s']:.2f}",
                         f"**{speedup:.2f}x**", "yes" if speedup >= 2.0 else "NO",
                         f"{r['tag_one_by_one_s'] / r['tag_batched_s']:.2f}x", "yes" if r["batch_equal"] else "NO"])
    for (size, turns), by_workload in memory.items():
        base = by_workload["single-generate"]
        cells = [size, turns, f"{base['before_mb']:.0f}"]
        for workload in WORKLOADS:
            m = by_workload[workload]
            cells.append(f"{m['peak_mb']:.0f} (+{max(m['peak_mb'] - m['before_mb'], 0):.0f})")
        cells.append(f"{by_workload['batch8-generate']['peak_mb'] / base['peak_mb']:.2f}x")
        mem_rows.append(cells)

    parts = [
        (f"Tiny random Qwen2-VL F2RVLM models with a relevance head, synthetic English dialogues with images, "
         f"device `{args.device}`, {args.threads} torch thread(s), medians of {args.reps} interleaved repetitions "
         f"(throughput: {max(2, args.reps // 2)}). Prompt tokens include the image tokens."),
        "### Latency of one retrieval (`model.retrieve`, end to end)\n\n"
        "Generate = grammar-constrained greedy decoding (the default); tagging = one forward pass, relevance "
        "head > threshold. Answer tokens: new tokens of the random model's constrained answer, EOS included (it may "
        "spell a tag character by character, which the grammar allows; a trained model writes ~33).\n\n"
        + markdown_table(["model", "turns", "images", "prompt tokens", "generate ms", "answer tokens", "tagging ms",
                          "generate / tagging"], lat_rows),
        "### Constrained vs unconstrained decoding (target: constrained <= 1.10x)\n\n"
        "Same inputs, same number of new tokens N: the constrained run decides N, the unconstrained run is "
        "forced to exactly N (`min_new_tokens = max_new_tokens = N`), so both do the same forward passes and the "
        "ratio is the cost of the AnswerConstraint logits processor alone (prefill included, as a user sees it). "
        "Decode step = (unconstrained N-token time - 1-token time) / (N - 1); constraint cost per token = "
        "(constrained - unconstrained) / N.\n\n"
        + markdown_table(["model", "turns", "N tokens", "unconstrained ms", "constrained ms", "ratio", "<= 1.10",
                          "decode step ms", "constraint ms/token", "constraint / step"], gen_rows),
        f"### Batched vs one-by-one throughput, batch {BATCH} (target: >= 2x)\n\n"
        f"{BATCH} pairs (the dialogues closest to the length, first query each): `retrieve_batch(pairs, "
        f"batch_size={BATCH})` vs {BATCH} `retrieve` calls, generate mode; `same results`: batched results equal "
        "one-by-one results.\n\n"
        + markdown_table(["model", "turns", "batch turns", "one-by-one pairs/s", "batched pairs/s", "speed-up",
                          ">= 2x", "tagging speed-up", "same results"], thr_rows),
    ]
    if mem_rows:
        parts.append(
            "### Peak memory (MB, max RSS of a fresh subprocess per configuration)\n\n"
            "`before`: RSS high-water mark after imports, model build and data generation; each cell: peak RSS "
            "(growth over `before`). Ratio: batch-8 peak over single-retrieval peak.\n\n"
            + markdown_table(["model", "turns", "before", *WORKLOADS, "batch8 / single"], mem_rows))
    return "\n\n".join(parts)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="sizes test,small; 3 repetitions")
    parser.add_argument("--sizes", default=None, help="comma-separated tiny sizes (default test,small,base)")
    parser.add_argument("--reps", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: stable numbers on a shared box)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    parser.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import warnings

    warnings.filterwarnings("ignore")
    import torch

    torch.set_num_threads(args.threads)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()

    if args.memory_child:
        size, turns, workload = args.memory_child.split(",")
        memory_child(size, int(turns), workload, args.device)
        return 0

    sizes = (args.sizes or ("test,small" if args.quick else "test,small,base")).split(",")
    args.reps = args.reps or (3 if args.quick else 5)
    rows, memory = [], {}
    for size in sizes:
        for turns in LENGTHS:
            start = time.perf_counter()
            row = measure(size, turns, args.reps, args.device)
            rows.append(row)
            print(json.dumps(row), f"({time.perf_counter() - start:.0f} s)", flush=True)
    if not args.no_memory:
        for size in sizes:
            for turns in LENGTHS:
                memory[(size, turns)] = {w: measure_memory(size, turns, w, args.threads, args.device) for w in WORKLOADS}
                print(size, turns, json.dumps(memory[(size, turns)]), flush=True)

    body = report(rows, memory, args)
    print(body)
    if not args.no_write:
        from results import update_section

        command = "python benchmarks/bench_retrieval.py" + (" " + " ".join(argv if argv is not None else sys.argv[1:])).rstrip()
        update_section(SECTION, body, command.strip())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
