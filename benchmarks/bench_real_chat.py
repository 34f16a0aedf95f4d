"""Real-chat benchmark: fragment retrieval on LoCoMo conversations (dev set), every method in one table.

    python benchmarks/bench_real_chat.py --locomo ../shared/data/locomo-dev \
        --model models/tiny-demo [--scorer DIR] [--limit N] [--update]

Samples: `f2rvlm.data.locomo.locomo_rows` (a question whose evidence lies in one session -> a row
over that session; ~35 turns, ~1.07 gold turns). Metrics: the paper's global (micro) utterance
P/R/F1 from `f2rvlm.core.metrics`, the mean per-sample F1, and the latency per sample (2 cores).
Baselines predict their top-1 turn (gold is ~1 turn). Speaker settings are fixed a priori (BM25
boost 0.2 of the best score, cosine boost 0.1), never tuned on these samples; the dev questions
are never trained on. LoCoMo: Maharana et al., ACL 2024 (snap-research/locomo).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import runpy
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def top1(scores: np.ndarray) -> list[int]:
    return [int(np.argmax(scores))] if len(scores) else []


def evaluate_method(name, predict, rows) -> dict:
    """`predict(dialogue, query) -> utterance ids`; global + per-sample utterance metrics, latency
    (per-chat caches kept: LoCoMo asks many questions of one session; `latency_32_turns` times a
    chat's first question)."""
    from f2rvlm.core.metrics import EvalSample, evaluate
    from f2rvlm.core.protocol import Answer
    from f2rvlm.data.schema import row_example

    samples, seconds = [], []
    for row in rows:
        dialogue, query, gold_utts, _ = row_example(row)
        start = time.perf_counter()
        predicted = predict(dialogue, query)
        seconds.append(time.perf_counter() - start)
        samples.append(EvalSample(Answer(predicted, []), Answer(gold_utts, []), len(dialogue), 0))
    report = evaluate(samples, per_sample=True)
    u, per = report.utterance, report.per_sample["sentence"] if "sentence" in report.per_sample else None
    per = per or next(iter(report.per_sample.values()))
    return {"method": name, "precision": round(u.precision, 4), "recall": round(u.recall, 4), "f1": round(u.f1, 4),
            "per_sample_f1": round(per.f1, 4), "ms_per_sample": round(1000 * float(np.median(seconds)), 1),
            "samples": len(rows)}


def scorer_data(scorer_dir: str) -> str:
    """What a fine-tuned encoder was trained on, from the recipe record beside it (train_scorer's OUT)."""
    record = os.path.join(os.path.dirname(os.path.normpath(scorer_dir)), "text_scorer_recipe.json")
    if not os.path.isfile(record):
        return os.path.basename(os.path.normpath(scorer_dir))
    with open(record, encoding="utf-8") as f:
        args = json.load(f).get("args", {})
    real, synthetic = args.get("selfsup_queries", 0), args.get("synthetic_rows", 0)
    return (f"{real} self-supervised real-turn queries" + (f" + synthetic triples ({synthetic} rows)" if synthetic
                                                             else ", no synthetic data"))


def baseline_methods(scorer_dirs=()):
    from f2rvlm.baselines import BM25Baseline, EmbeddingBaseline, HybridBaseline, SpeakerHandling
    from f2rvlm.embeddings import MiniLMCaptionEmbedder

    def scored(baseline):
        return lambda dialogue, query: top1(baseline.score(dialogue, query)[0]), None

    speaker_bm25 = BM25Baseline(stem=True, speakers=SpeakerHandling(strip_names=True, boost=0.2))
    minilm = MiniLMCaptionEmbedder()
    speaker_minilm = EmbeddingBaseline(minilm, speakers=SpeakerHandling(speaker_prefix=True, strip_names=True, boost=0.1))
    methods = [
        ("BM25 (bm25s), top-1", *scored(BM25Baseline())),
        ("BM25 + stemming + speaker names dropped from the query", *scored(BM25Baseline(stem=True, speakers=SpeakerHandling(strip_names=True)))),
        ("speaker-aware BM25 (+ boost for the named speaker's turns)", *scored(speaker_bm25)),
        ("MiniLM zero-shot (plain turns)", *scored(EmbeddingBaseline(minilm))),
        ("MiniLM zero-shot, speaker-aware ('speaker: text', names dropped, boost)", *scored(speaker_minilm)),
        ("hybrid: z(speaker-aware BM25) + z(speaker-aware MiniLM)", *scored(HybridBaseline(speaker_bm25, speaker_minilm))),
    ]
    for scorer_dir in scorer_dirs:
        tuned = EmbeddingBaseline(MiniLMCaptionEmbedder(scorer_dir),
                                  speakers=SpeakerHandling(speaker_prefix=True, strip_names=True, boost=0.1))
        data = scorer_data(scorer_dir)
        methods += [
            (f"MiniLM fine-tuned on {data}, speaker-aware", *scored(tuned)),
            (f"fusion: z(speaker-aware BM25) + z(MiniLM fine-tuned on {data})", *scored(HybridBaseline(speaker_bm25, tuned))),
        ]
    return methods


def model_methods(model_dir: str, modes=None):
    import torch

    from f2rvlm.models.hub import load_model
    from f2rvlm.models.registry_f2rvlm import RETRIEVAL_MODES

    torch.set_num_threads(2)
    model, processor = load_model(model_dir)
    declared = model.config.default_retrieval_mode
    methods = []
    for mode in modes or RETRIEVAL_MODES:
        if RETRIEVAL_MODES[mode].needs_relevance_head and model.relevance_head is None and model.text_scorer is None:
            continue
        label = f"F2RVLM {os.path.basename(os.path.normpath(model_dir))}: {mode}" + (" (declared)" if mode == declared else "")
        forget = model.text_scorer.clear_cache if model.text_scorer is not None else None
        methods.append((label, lambda d, q, mode=mode: model.retrieve(d, q, processor=processor, mode=mode).utterance_ids,
                        forget))
    return methods


def latency_32_turns(methods, rows, samples: int = 40) -> dict:
    """Median ms of each method on chats of exactly 32 turns (the first 32 of each sample's
    session, the longer sessions only), first question on the chat: the target is under 1 s."""
    from f2rvlm.core.dialogue import Dialogue
    from f2rvlm.data.schema import row_example

    chats = []
    for row in rows:
        dialogue, query, _, _ = row_example(row)
        if len(dialogue) >= 32:
            chats.append((Dialogue(dialogue.utterances[:32], dialogue.dialogue_id), query))
        if len(chats) == samples:
            break
    out = {}
    for name, predict, forget in methods:
        seconds = []
        for dialogue, query in chats:
            if forget is not None:
                forget()
            start = time.perf_counter()
            predict(dialogue, query)
            seconds.append(time.perf_counter() - start)
        out[name] = round(1000 * float(np.median(seconds)), 1)
    return {"chats": len(chats), "ms": out}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--locomo", required=True, help="LoCoMo zip / JSON / folder (the dev conversations)")
    parser.add_argument("--model", action="append", default=[], help="F2RVLM model folder(s) to evaluate in every mode")
    parser.add_argument("--modes", nargs="+", default=None, help="model modes to run (default: every mode)")
    parser.add_argument("--scorer", action="append", default=[],
                        help="a fine-tuned sentence-transformers folder (lever rows; repeatable)")
    parser.add_argument("--limit", type=int, default=None, help="first N samples only (smoke runs)")
    parser.add_argument("--no-baselines", action="store_true", help="skip the untuned baselines (--scorer rows still run)")
    parser.add_argument("--latency-only", action="store_true",
                        help="only the 32-turn first-question latency of each model mode (run it on an idle machine)")
    parser.add_argument("--out", default=str(HERE / "real_chat" / "results.json"))
    parser.add_argument("--update", action="store_true", help="rewrite the real-chat section of RESULTS.md")
    args = parser.parse_args(argv)

    import torch

    from f2rvlm.data.locomo import locomo_rows
    from f2rvlm.data.schema import row_example

    torch.set_num_threads(2)
    rows, report = locomo_rows(args.locomo)
    rows = rows[: args.limit] if args.limit else rows
    if args.latency_only:
        for model_dir in args.model:
            latency = latency_32_turns(model_methods(model_dir, args.modes), rows)
            print(f"{model_dir}: first question on a 32-turn chat, median of {latency['chats']} chats: "
                  + "; ".join(f"{name}: {ms:.0f} ms" for name, ms in latency["ms"].items()), flush=True)
        return 0
    print(report.summary(), flush=True)
    results = []
    rng = random.Random(0)
    if not args.no_baselines:
        seeds = [random.Random(s) for s in range(20)]
        runs = [evaluate_method("random turn", lambda d, q, r=r: [d.id_offset + r.randrange(len(d))], rows) for r in seeds]
        results.append({**runs[0], "method": "random turn (mean of 20 seeds)",
                        **{k: round(float(np.mean([x[k] for x in runs])), 4) for k in ("precision", "recall", "f1", "per_sample_f1")}})
    methods = baseline_methods(args.scorer)
    if args.no_baselines:  # the fine-tuned encoders' lever rows only (the last two per --scorer)
        methods = methods[len(methods) - 2 * len(args.scorer):]
    for name, predict, _ in methods:
        results.append(evaluate_method(name, predict, rows))
        print(results[-1], flush=True)
    latency = {}
    for model_dir in args.model:
        methods = model_methods(model_dir, args.modes)
        for name, predict, forget in methods:
            results.append(evaluate_method(name, predict, rows))
            print(results[-1], flush=True)
        latency = latency_32_turns(methods, rows)
        print("32-turn latency", latency, flush=True)
    del rng
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump({"samples": len(rows), "conversion": report.summary().split(": ", 1)[-1], "results": results,
                   "latency_32_turns": latency}, f, indent=1)
    header = ["method", "utt P", "utt R", "utt F1 (global)", "per-sample F1", "ms/sample (median)"]
    table = [[r["method"], r["precision"], r["recall"], r["f1"], r["per_sample_f1"], r["ms_per_sample"]] for r in results]
    results_module = runpy.run_path(str(HERE / "results.py"))
    body = (f"LoCoMo dev conversations (5 of 10; Maharana et al., ACL 2024), {len(rows)} samples "
            f"({report.summary().split(': ', 1)[-1]}). Dev numbers: no dev question or evidence is trained on.\n\n"
            + results_module["markdown_table"](header, table))
    if latency.get("ms"):
        turns = float(np.mean([len(row_example(row)[0]) for row in rows]))
        body += (f"\n\nms/sample: per question, each session's turns embedded once for all its questions (the "
                 f"embedding methods and the model's scorer cache a chat's turn vectors). Samples average {turns:.1f} "
                 f"turns. A chat's first question on chats of exactly 32 turns (first 32 turns of "
                 f"{latency['chats']} longer sessions), median: "
                 + "; ".join(f"{name}: {ms:.0f} ms" for name, ms in latency["ms"].items()) + ".")
    print(body)
    if args.update:
        command = "python benchmarks/bench_real_chat.py --locomo ../shared/data/locomo-dev " + " ".join(
            f"--model {m}" for m in args.model) + (f" --modes {' '.join(args.modes)}" if args.modes else "") + (
            "".join(f" --scorer {s}" for s in args.scorer))
        results_module["update_section"]("real_chat", body, command)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
