"""`f2rvlm corpus index|search|eval` (the subparser the `f2rvlm` command mounts).

    f2rvlm corpus index --out IDX chat1.txt chat2.zip --archive exports.zip [--add]
    f2rvlm corpus search --index IDX --query "the flat we viewed" [--top-k 20] [--model DIR] [--html hits.html]
    f2rvlm corpus search --index IDX --query "..." --endpoint http://127.0.0.1:8000/v1 [--endpoint-model NAME]
    f2rvlm corpus eval --num-dialogues 40 [--embedder hashing]
"""

from __future__ import annotations

import json
import os
import sys


def _segmenter(args, embedder):
    from .segmentation import EmbeddingSegmenter

    return EmbeddingSegmenter(embedder, max_size=args.max_size, min_size=args.min_size)


def cmd_index(args) -> int:
    from ..embeddings import build_embedder
    from .archive import ArchiveReport, open_archive, read_exports
    from .index import FragmentIndex

    report = ArchiveReport()
    exists = os.path.exists(os.path.join(args.out, "manifest.json"))
    if args.add and not exists:
        raise ValueError(f"--add needs an existing index: {args.out}")
    if args.add:
        index = FragmentIndex.load(args.out)
    else:
        index = FragmentIndex(build_embedder(args.embedder), backend=args.backend)
    index.segmenter = _segmenter(args, index.embedder)
    known = set(index.dialogue_ids())

    def dialogues():
        sources = [("export", p) for p in args.inputs] + [("archive", p) for p in args.archive]
        for kind, path in sources:
            if kind == "export":
                yield from read_exports([path], report, args.images_dir)
            else:
                try:
                    with open_archive(path, report, args.images_dir) as found:
                        yield from found
                except (ValueError, OSError) as err:
                    report.skipped.append((os.path.basename(path), " ".join(str(err).split())[:300]))

    def fresh():
        for d in dialogues():
            if d.dialogue_id in known:
                report.skipped.append((d.dialogue_id, "already in the index"))
                report.read.remove(d.dialogue_id)
                continue
            known.add(d.dialogue_id)
            yield d

    added = index.add_dialogues(fresh(), show_progress=not args.quiet, persist=args.add)
    if not args.add:
        index.save(args.out, overwrite=args.overwrite)
    for name, reason in report.skipped:
        print(f"skipped {name}: {reason}", file=sys.stderr)
    for name, note in report.notes:
        print(f"note: {name}: {note}", file=sys.stderr)
    print(f"{len(report.read)} chat(s) indexed ({added} fragments), {len(report.skipped)} skipped; "
          f"index {os.path.abspath(args.out)}: {len(index)} fragments of {len(index.dialogue_ids())} dialogues "
          f"({index.backend.name})")
    return 0


def cmd_search(args) -> int:
    from .index import FragmentIndex
    from .report import render_html

    if args.model and args.endpoint:
        raise ValueError("give at most one of --model (in process) and --endpoint (a served model)")
    if args.endpoint and args.mode not in (None, "generate"):
        raise ValueError("a served model answers in generate mode only")
    index = FragmentIndex.load(args.index)
    reranker = processor = None
    if args.model:
        from ..models.hub import load_model

        reranker, processor = load_model(args.model, device=args.device)
    elif args.endpoint:
        from .rerank import EndpointReranker

        reranker = EndpointReranker(args.endpoint, model=args.endpoint_model, concurrency=args.concurrency,
                                    timeout=args.timeout, retries=args.retries,
                                    api_key=os.environ.get("F2RVLM_ENDPOINT_API_KEY") or "EMPTY",
                                    **({"template": args.template} if args.template else {}))
    kwargs = {"mode": args.mode} if args.model else {}
    result = index.search(args.query, top_k=args.top_k, reranker=reranker, processor=processor, lexical=args.lexical,
                          show_progress=not args.quiet and reranker is not None, **kwargs)
    if args.html:
        with open(args.html, "w", encoding="utf-8") as f:
            f.write(render_html(index, result, context=args.context))
    if args.json:
        print(json.dumps(result.to_dict(), ensure_ascii=False, indent=2))
    else:
        for rank, hit in enumerate(result.dialogues, 1):
            print(f"{rank}. {hit.dialogue_id} (score {hit.score:.3f}): utterances {hit.utterance_ids} images {hit.image_ids}")
        if args.html:
            print(f"HTML report: {args.html}")
    return 0


def cmd_eval(args) -> int:
    import numpy as np

    from ..data.synthetic import generate_split
    from ..embeddings import build_embedder
    from .index import FragmentIndex
    from .segmentation import (
        FixedSegmenter,
        boundary_scores,
        f1,
        pk,
        topic_segmentation,
        utterance_texts,
        window_diff,
    )

    samples = generate_split(args.split, args.num_dialogues, seed=args.seed)
    embedder = build_embedder(args.embedder)
    segmenter = _segmenter(args, embedder)
    vectors = [embedder.embed_texts(utterance_texts(s.dialogue)) for s in samples]
    lines = {}
    for name, seg in (("embedding", segmenter), (f"fixed-{args.fixed}", FixedSegmenter(args.fixed))):
        tp = npred = nref = 0
        pks, wds = [], []
        for sample, v in zip(samples, vectors):
            d = sample.dialogue
            ref, pred = topic_segmentation(d), seg(d, v)
            a, b, c = boundary_scores(pred, ref, len(d))
            tp, npred, nref = tp + a, npred + b, nref + c
            pks.append(pk(pred, ref, len(d)))
            wds.append(window_diff(pred, ref, len(d)))
        lines[name] = {"boundary_f1": round(f1(tp, npred, nref), 4), "pk": round(float(np.mean(pks)), 4),
                       "window_diff": round(float(np.mean(wds)), 4)}
    index = FragmentIndex.build([s.dialogue for s in samples], embedder=embedder, segmenter=segmenter)
    queries = [(s.dialogue.dialogue_id, q) for s in samples for q in s.queries if q.utterance_ids]
    recalled = index.recall([q.query for _, q in queries], 20)
    recall = {f"recall@{k}": round(sum(any(f.dialogue_id == did and set(f.utterance_ids) & set(q.utterance_ids)
                                           for _, f in hits[:k]) for (did, q), hits in zip(queries, recalled))
                                   / max(len(queries), 1), 4) for k in (1, 5, 20)}
    out = {"dialogues": len(samples), "fragments": len(index), "queries": len(queries), "segmentation": lines, **recall}
    print(json.dumps(out, indent=2))
    return 0


def add_corpus_parser(sub) -> None:
    """Mount `corpus index|search|eval` on the `f2rvlm` subparsers."""
    p = sub.add_parser("corpus", help="search many chats: topic fragments, a fragment index, recall + F2RVLM rerank")
    corpus_sub = p.add_subparsers(dest="corpus_command", required=True)

    q = corpus_sub.add_parser("index", help="segment, embed and index chat exports (a corrupt one is reported and skipped)")
    q.add_argument("inputs", nargs="*", help="chat exports (a file, an export's zip or folder)")
    q.add_argument("--archive", action="append", default=[], help="a folder or zip of many exports (repeatable)")
    q.add_argument("--out", required=True, help="index folder")
    q.add_argument("--add", action="store_true", help="add to the existing index at --out (only the new chats are written)")
    q.add_argument("--overwrite", action="store_true", help="replace an existing index (atomically)")
    q.add_argument("--embedder", default="minilm", help="minilm (default, offline) or hashing")
    q.add_argument("--backend", default=None, choices=["faiss", "numpy", "qdrant"],
                   help="vector engine (default: faiss when installed; qdrant: local mode, or the server named by F2RVLM_QDRANT_URL)")
    q.add_argument("--images-dir", default=None)
    q.add_argument("--max-size", type=int, default=24, help="most turns in a fragment")
    q.add_argument("--min-size", type=int, default=2)
    q.add_argument("--quiet", action="store_true")
    q.set_defaults(func=cmd_index)

    q = corpus_sub.add_parser("search", help="recall the top-K fragments for a query; rerank them with an F2RVLM model")
    q.add_argument("--index", required=True)
    q.add_argument("--query", required=True)
    q.add_argument("--top-k", type=int, default=20)
    q.add_argument("--lexical", type=float, default=1.0,
                   help="BM25 weight in the hybrid recall (reciprocal rank fusion with the dense ranks); 0 = dense only")
    q.add_argument("--model", default=None, help="F2RVLM model folder: picks utterances/images inside each fragment")
    q.add_argument("--mode", default=None, help="retrieval mode (default: the model's)")
    q.add_argument("--device", default="cpu")
    q.add_argument("--endpoint", default=None,
                   help="instead of --model: the OpenAI base URL of a served F2RVLM model (f2rvlm serve); the recalled "
                        "fragments are sent concurrently (EndpointReranker); API key from $F2RVLM_ENDPOINT_API_KEY")
    q.add_argument("--endpoint-model", "--served-model", dest="endpoint_model", default=None,
                   help="with --endpoint: the served model name (default: the first the server lists)")
    q.add_argument("--concurrency", type=int, default=32, help="with --endpoint: requests in flight")
    q.add_argument("--timeout", type=float, default=300.0, help="with --endpoint: seconds per request")
    q.add_argument("--retries", type=int, default=2, help="with --endpoint: retries of a failed request")
    q.add_argument("--template", default=None, help="with --endpoint: the model's prompt template (default: the released one)")
    q.add_argument("--html", default=None, help="write an HTML report of the hits here")
    q.add_argument("--context", type=int, default=2, help="context turns around each run in the HTML report")
    q.add_argument("--json", action="store_true")
    q.add_argument("--quiet", action="store_true")
    q.set_defaults(func=cmd_search)

    q = corpus_sub.add_parser("eval", help="segmentation (boundary F1, Pk, WindowDiff vs fixed windows) and recall@K "
                              "on a synthetic MLDR corpus")
    q.add_argument("--num-dialogues", type=int, default=40)
    q.add_argument("--split", default="test_heldout")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--embedder", default="minilm")
    q.add_argument("--fixed", type=int, default=8, help="fixed-window baseline size")
    q.add_argument("--max-size", type=int, default=24)
    q.add_argument("--min-size", type=int, default=2)
    q.set_defaults(func=cmd_eval)
