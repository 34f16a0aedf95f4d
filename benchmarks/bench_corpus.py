"""Corpus search (issue #13): segmentation, recall, end-to-end LoCoMo, recall latency, build speed.

    python benchmarks/bench_corpus.py --locomo ../shared/data/locomo-dev [--model models/tiny-demo]
        [--model-limit 100] [--update]

1. Segmentation on synthetic MLDR dialogues (utterance `topic` = the reference): boundary F1
   (exact and +-1 turn), Pk, WindowDiff; the CPU embedding segmenter vs fixed windows.
2. Synthetic corpus recall@{1,5,20}: a query hits when a recalled fragment is from its own
   dialogue and holds a gold turn (strict), or holds turns of the query's topic in any dialogue
   (topic). The generator has 12 topics, so at 100 dialogues each topic recurs in ~25 of them
   and the strict task is ambiguous by construction; both are shown per corpus size.
3. LoCoMo dev as one corpus (all sessions of the five dev conversations, one dialogue per
   conversation, session dates as timestamps): every non-adversarial question with evidence is
   searched over the whole corpus; utterance P/R/F1 (global, core.metrics counting) of
   (conversation, turn) pairs, next to BM25 and dense MiniLM over all turns of the same corpus.
4. Recall-stage latency p50/p95 at 1k/10k/100k fragments (random unit vectors, 384-d): FAISS
   IndexFlatIP vs numpy brute force in the same run; query embedding time apart.
5. Index build throughput (segment + embed + index) on the LoCoMo corpus.

LoCoMo: Maharana et al., ACL 2024 (snap-research/locomo); read from outside the repository, never
committed; its questions are not trained on.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import time
from datetime import datetime

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from results import markdown_table, update_section


def _threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)  # FAISS keeps its own default (FaissBackend: 1 thread per query)


# ----------------------------------------------------------------------------------------------
def bench_segmentation(embedder, num_dialogues: int, seed: int) -> tuple[str, dict]:
    from f2rvlm.corpus.segmentation import (
        EmbeddingSegmenter,
        FixedSegmenter,
        boundary_scores,
        f1,
        pk,
        topic_segmentation,
        utterance_texts,
        window_diff,
    )
    from f2rvlm.data.synthetic import generate_split

    samples = generate_split("test_heldout", num_dialogues, seed=seed)
    vectors = [embedder.embed_texts(utterance_texts(s.dialogue)) for s in samples]
    turns = sum(len(s.dialogue) for s in samples)
    ref_frags = sum(len(topic_segmentation(s.dialogue)) for s in samples)
    mean_len = round(turns / ref_frags)
    rows, out = [], {}
    for name, seg in (("embedding segmenter (MiniLM, TextTiling, min 2 / max 24)", EmbeddingSegmenter(embedder)),
                      ("fixed windows of 8", FixedSegmenter(8)),
                      (f"fixed windows of {mean_len} (the reference mean length)", FixedSegmenter(mean_len))):
        tp = tp1 = npred = nref = 0
        pks, wds = [], []
        for s, v in zip(samples, vectors):
            d = s.dialogue
            ref, pred = topic_segmentation(d), seg(d, v)
            a, b, c = boundary_scores(pred, ref, len(d))
            tp1 += boundary_scores(pred, ref, len(d), tolerance=1)[0]
            tp, npred, nref = tp + a, npred + b, nref + c
            pks.append(pk(pred, ref, len(d)))
            wds.append(window_diff(pred, ref, len(d)))
        out[name] = f1(tp, npred, nref)
        rows.append([name, f"{f1(tp, npred, nref):.3f}", f"{f1(tp1, npred, nref):.3f}", f"{np.mean(pks):.3f}",
                     f"{np.mean(wds):.3f}", f"{(npred + len(samples)) / len(samples):.1f}"])
    table = markdown_table(["segmenter", "boundary F1", "boundary F1 (+-1 turn)", "Pk (lower is better)",
                            "WindowDiff", "fragments / dialogue"], rows)
    text = (f"### Segmentation (synthetic MLDR `test_heldout`, {num_dialogues} dialogues, seed {seed}, {turns} turns, "
            f"{ref_frags / num_dialogues:.1f} reference fragments / dialogue)\n\nSegmenter settings were picked on "
            f"other dialogues (seed 1).\n\n{table}\n")
    return text, out


def bench_synthetic_recall(embedder, sizes, seed: int) -> tuple[str, dict]:
    from collections import Counter

    from f2rvlm.corpus.index import FragmentIndex
    from f2rvlm.data.synthetic import generate_split

    rows, out = [], {}
    for size in sizes:
        samples = generate_split("validation", size, seed=seed)
        index = FragmentIndex.build([s.dialogue for s in samples], embedder=embedder)
        topics = {s.dialogue.dialogue_id: [u.topic for u in s.dialogue.utterances] for s in samples}
        queries = [(s.dialogue.dialogue_id, q) for s in samples for q in s.queries if q.utterance_ids]
        recalled = index.recall([q.query for _, q in queries], 20)
        sharing = np.mean([sum(q.query_topic in s.topics for s in samples) for _, q in queries])
        for k in (1, 5, 20):
            strict = np.mean([any(f.dialogue_id == did and set(f.utterance_ids) & set(q.utterance_ids) for _, f in hits[:k])
                              for (did, q), hits in zip(queries, recalled)])
            topic = np.mean([any(Counter(topics[f.dialogue_id][i] for i in f.utterance_ids).most_common(1)[0][0] == q.query_topic
                                 for _, f in hits[:k]) for (_, q), hits in zip(queries, recalled)])
            out[(size, k)] = (float(strict), float(topic))
        rows.append([size, len(index), len(queries), f"{sharing:.1f}",
                     *[f"{out[(size, k)][0]:.3f}" for k in (1, 5, 20)], *[f"{out[(size, k)][1]:.3f}" for k in (1, 5, 20)]])
    table = markdown_table(["dialogues", "fragments", "queries", "dialogues sharing the query's topic",
                            "strict R@1", "strict R@5", "strict R@20", "topic R@1", "topic R@5", "topic R@20"], rows)
    text = (f"### Synthetic corpus recall (MLDR `validation` dialogues, seed {seed}; MiniLM fragment vectors = mean "
            f"of their turns; FAISS)\n\nStrict: a recalled fragment of the query's own dialogue holds a gold turn. "
            f"Topic: a recalled fragment's main topic is the query's topic (any dialogue). The generator draws "
            f"3 of 12 topics per dialogue, so strict recall is bounded by how many dialogues share the topic.\n\n{table}\n")
    return text, out


# ----------------------------------------------------------------------------------------------
def locomo_corpus(path):
    """(dialogues, questions): one Dialogue per conversation (all sessions; session date as each
    turn's timestamp), questions = (question, conversation id, gold global turn ids)."""
    from f2rvlm.core.dialogue import Dialogue, Utterance
    from f2rvlm.data.locomo import ADVERSARIAL_CATEGORY, read_conversations, sessions, turn_text

    dialogues, questions = [], []
    for name, conversation in read_conversations(path):
        utterances, where = [], {}
        for number, turns in sessions(conversation):
            stamp = conversation.get(f"session_{number}_date_time", "")
            try:
                ts = datetime.strptime(str(stamp), "%I:%M %p on %d %B, %Y").timestamp()
            except ValueError:
                ts = number * 10 * 86400.0
            for k, turn in enumerate(turns):
                where[str(turn.get("dia_id"))] = len(utterances)
                utterances.append(Utterance(str(turn.get("speaker", "")), turn_text(turn), timestamp=str(ts + k)))
        dialogues.append(Dialogue(utterances, name))
        for qa in conversation.get("qa", []):
            if qa.get("category") == ADVERSARIAL_CATEGORY:
                continue
            ids = []
            for entry in qa.get("evidence", []) or []:
                for part in re.split(r"[;,\s]+", str(entry).strip()):
                    m = re.match(r"^D:?(\d+):(\d+)$", part)
                    if m and f"D{int(m.group(1))}:{int(m.group(2))}" in where:
                        ids.append(where[f"D{int(m.group(1))}:{int(m.group(2))}"])
            if ids:
                questions.append((str(qa.get("question", "")), name, sorted(set(ids))))
    return dialogues, questions


def prf(predicted: list[set], gold: list[set]) -> tuple[float, float, float, float]:
    from f2rvlm.core.metrics import set_scores

    tp = sum(len(p & g) for p, g in zip(predicted, gold))
    npred = sum(len(p) for p in predicted)
    ngold = sum(len(g) for g in gold)
    p = tp / npred if npred else 0.0
    r = tp / ngold if ngold else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    macro = float(np.mean([set_scores(sorted(map(str, a)), sorted(map(str, b))).f1 for a, b in zip(predicted, gold)]))
    return p, r, f, macro


def bench_locomo(path, embedder, model_dirs, model_limit, top_k=20) -> tuple[str, dict]:
    import bm25s
    from f2rvlm.baselines import tokenize
    from f2rvlm.corpus.index import FragmentIndex
    from f2rvlm.corpus.rerank import EmbeddingPicker
    from f2rvlm.corpus.segmentation import utterance_texts

    dialogues, questions = locomo_corpus(path)
    turns = sum(len(d) for d in dialogues)
    t0 = time.perf_counter()
    index = FragmentIndex.build(dialogues, embedder=embedder)
    build_s = time.perf_counter() - t0
    gold = [{(did, i) for i in ids} for _, did, ids in questions]
    flat = [(d.dialogue_id, i) for d in dialogues for i in range(len(d))]
    texts = [t for d in dialogues for t in utterance_texts(d)]

    methods: dict[str, list[set]] = {}
    timing: dict[str, float] = {}
    # BM25 over every turn of the corpus, top-1 turn
    t = time.perf_counter()
    bm25 = bm25s.BM25()
    bm25.index([tokenize(x) or ["\x00"] for x in texts], show_progress=False)
    preds = []
    for q, _, _ in questions:
        scores = bm25.get_scores(tokenize(q) or ["\x00"])
        preds.append({flat[int(np.argmax(scores))]})
    methods["BM25 (bm25s) over all turns of the corpus, top-1 turn"] = preds
    timing["BM25 (bm25s) over all turns of the corpus, top-1 turn"] = (time.perf_counter() - t) / len(questions)
    # dense MiniLM over every turn, top-1 (no segmentation)
    t = time.perf_counter()
    turn_vectors = embedder.embed_texts(texts)
    query_vectors = embedder.embed_texts([q for q, _, _ in questions])
    methods["MiniLM over all turns (no fragments), top-1 turn"] = [{flat[int(np.argmax(turn_vectors @ v))]} for v in query_vectors]
    timing["MiniLM over all turns (no fragments), top-1 turn"] = (time.perf_counter() - t) / len(questions)
    # ours: recall only -> the top fragment as a whole
    t = time.perf_counter()
    recalled = index.recall([q for q, _, _ in questions], top_k)
    name = "fragment index, recall only: the top-1 fragment, whole"
    methods[name] = [{(hits[0][1].dialogue_id, i) for i in hits[0][1].utterance_ids} if hits else set()
                     for hits in recalled]
    timing[name] = (time.perf_counter() - t) / len(questions)
    frag_recall = {k: float(np.mean([any((f.dialogue_id, i) in g for _, f in hits[:k] for i in f.utterance_ids)
                                     for g, hits in zip(gold, recalled)])) for k in (1, 5, 20)}
    hybrid = index.recall([q for q, _, _ in questions], top_k, lexical=1.0)
    hybrid_recall = {k: float(np.mean([any((f.dialogue_id, i) in g for _, f in hits[:k] for i in f.utterance_ids)
                                       for g, hits in zip(gold, hybrid)])) for k in (1, 5, 20)}
    # ours: recall top-K (dense, then hybrid) + in-fragment embedding picker, best pick overall
    picker = EmbeddingPicker(embedder)
    for lexical, label in ((0.0, "dense"), (1.0, "hybrid dense+BM25 (RRF)")):
        name = f"fragment index, {label} recall top-{top_k} + in-fragment MiniLM pick, best pick"
        t = time.perf_counter()
        preds = []
        for q, _, _ in questions:
            result = index.search(q, top_k=top_k, reranker=picker, lexical=lexical)
            scored = [(h.rerank_scores["utterances"][h.fragment.utterance_ids.index(u)], h.dialogue_id, u)
                      for h in result.fragments for u in h.utterance_ids]
            best = max(scored) if scored else None
            preds.append({(best[1], best[2])} if best else set())
        methods[name] = preds
        timing[name] = (time.perf_counter() - t) / len(questions)

    rows = []
    for name, preds in methods.items():
        p, r, f, macro = prf(preds, gold)
        rows.append([name, len(questions), f"{p:.3f}", f"{r:.3f}", f"{f:.3f}", f"{macro:.3f}", f"{timing[name] * 1000:.1f}"])

    # F2RVLM rerank (slow on a CPU): a prefix of the questions, with BM25 on the same prefix
    for model_dir in model_dirs:
        from f2rvlm.models.hub import load_model

        model, processor = load_model(model_dir)
        subset = list(range(min(model_limit, len(questions))))
        t = time.perf_counter()
        preds = []
        for k in subset:
            result = index.search(questions[k][0], top_k=top_k, reranker=model, processor=processor, lexical=1.0)
            top = result.dialogues[0] if result.dialogues and result.dialogues[0].utterance_ids else None
            preds.append({(top.dialogue_id, i) for i in top.utterance_ids} if top else set())
        per_q = (time.perf_counter() - t) / len(subset)
        label = f"fragment index, hybrid recall top-{top_k} + F2RVLM {os.path.basename(os.path.normpath(model_dir))} " \
                f"({model.config.default_retrieval_mode}), top dialogue's picks"
        sub_gold = [gold[k] for k in subset]
        p, r, f, macro = prf(preds, sub_gold)
        rows.append([label, len(subset), f"{p:.3f}", f"{r:.3f}", f"{f:.3f}", f"{macro:.3f}", f"{per_q * 1000:.1f}"])
        bm = [methods["BM25 (bm25s) over all turns of the corpus, top-1 turn"][k] for k in subset]
        p, r, f, macro = prf(bm, sub_gold)
        rows.append(["BM25, same questions", len(subset), f"{p:.3f}", f"{r:.3f}", f"{f:.3f}", f"{macro:.3f}", ""])

    table = markdown_table(["method", "questions", "utterance P", "utterance R", "utterance F1 (global)",
                            "mean per-question F1", "ms / question"], rows)
    text = (f"### End to end on the LoCoMo dev corpus ({len(dialogues)} conversations as one corpus, {turns} turns, "
            f"{len(index)} fragments, {len(questions)} questions)\n\nEvery non-adversarial question with evidence is "
            f"searched over the whole corpus; a prediction is a set of (conversation, turn) pairs. Fragment "
            f"recall (a recalled fragment holds an evidence turn): R@1 {frag_recall[1]:.3f}, R@5 {frag_recall[5]:.3f}, "
            f"R@20 {frag_recall[20]:.3f} (dense MiniLM); hybrid dense + BM25 by reciprocal rank fusion (`lexical=1.0`, "
            f"equal weights; 0.5 and 2 were also measured on this set, docs/corpus.md): R@1 {hybrid_recall[1]:.3f}, R@5 {hybrid_recall[5]:.3f}, R@20 {hybrid_recall[20]:.3f}."
            f"\n\n{table}\n\n"
            f"### Index build throughput\n\n{turns} turns -> {len(index)} fragments in {build_s:.1f} s "
            f"({turns / build_s:.0f} turns/s, {len(index) / build_s:.1f} fragments/s: MiniLM on the CPU, segmentation, "
            f"FAISS add).\n")
    return text, {"frag_recall": frag_recall, "build_s": build_s}


# ----------------------------------------------------------------------------------------------
def bench_latency(embedder, sizes=(1_000, 10_000, 100_000), queries: int = 200, dim: int = 384) -> tuple[str, dict]:
    from f2rvlm.corpus.backends import FaissBackend, NumpyBackend

    rng = np.random.default_rng(0)
    rows, out = [], {}
    for n in sizes:
        data = rng.normal(size=(n, dim)).astype(np.float32)
        data /= np.linalg.norm(data, axis=1, keepdims=True)
        qs = rng.normal(size=(queries, dim)).astype(np.float32)
        qs /= np.linalg.norm(qs, axis=1, keepdims=True)
        for backend in (FaissBackend(dim), NumpyBackend(dim)):
            backend.add(data)
            backend.search(qs[:5], 20)  # warm up
            times = []
            for q in qs:
                t = time.perf_counter()
                backend.search(q[None], 20)
                times.append((time.perf_counter() - t) * 1000)
            p50, p95 = statistics.median(times), float(np.percentile(times, 95))
            out[(n, backend.name)] = p50
            rows.append([f"{n:,}", backend.name, f"{p50:.3f}", f"{p95:.3f}"])
    for n in sizes:
        rows.append([f"{n:,}", "faiss / numpy (p50)", f"{out[(n, 'faiss')] / out[(n, 'numpy')]:.2f}x", ""])
    embedder.embed_texts(["warm-up: the model loads on first use"])
    t = time.perf_counter()
    for q in ["what did she paint last week?"] * 20:
        embedder.embed_texts([q + str(time.perf_counter())])
    embed_ms = (time.perf_counter() - t) / 20 * 1000
    table = markdown_table(["fragments", "engine", "p50 ms", "p95 ms"], rows)
    text = (f"### Recall-stage latency (top-20 of random 384-d unit vectors, one query at a time, {queries} queries)\n\n"
            f"{table}\n\nEmbedding the query with MiniLM on this CPU adds {embed_ms:.1f} ms (not included above).\n")
    return text, out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--locomo", default=None, help="LoCoMo dev conversations (folder / zip / JSON)")
    parser.add_argument("--model", action="append", default=[], help="F2RVLM model folder(s) as reranker")
    parser.add_argument("--model-limit", type=int, default=100, help="questions for the F2RVLM rerank rows")
    parser.add_argument("--seg-dialogues", type=int, default=40)
    parser.add_argument("--sizes", default="12,50,100", help="synthetic corpus sizes (dialogues)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (2 measured ~30x slower per query embedding on this shared machine)")
    parser.add_argument("--steps", default="latency,segmentation,recall,locomo")
    parser.add_argument("--update", action="store_true", help="write the `corpus` section of RESULTS.md")
    args = parser.parse_args(argv)
    _threads(args.threads)
    from f2rvlm.corpus.rerank import CachedEmbedder
    from f2rvlm.embeddings import MiniLMCaptionEmbedder

    embedder = CachedEmbedder(MiniLMCaptionEmbedder())
    embedder.spec = "minilm"
    parts = []
    for step in args.steps.split(","):
        t = time.perf_counter()
        if step == "latency":
            text, _ = bench_latency(embedder)
        elif step == "segmentation":
            text, _ = bench_segmentation(embedder, args.seg_dialogues, seed=0)
        elif step == "recall":
            text, _ = bench_synthetic_recall(embedder, [int(s) for s in args.sizes.split(",")], seed=0)
        elif args.locomo:
            text, _ = bench_locomo(args.locomo, embedder, args.model, args.model_limit)
        else:
            continue
        print(text, flush=True)
        print(f"[{step}: {time.perf_counter() - t:.0f} s]", file=sys.stderr, flush=True)
        parts.append(text)
    if args.update:
        command = "python benchmarks/bench_corpus.py" + (" --locomo ../shared/data/locomo-dev" if args.locomo else "") \
            + "".join(f" --model {m}" for m in args.model) + (f" --model-limit {args.model_limit}" if args.model else "") + " --update"
        update_section("corpus", "\n".join(parts), command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
