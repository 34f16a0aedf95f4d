"""Load check of the Space: N concurrent gradio_client clients, each uploading a chat and asking
for a fragment through `/retrieve`; every answer must equal `model.retrieve` on the same input.

    .venv/bin/python benchmarks/bench_space_load.py [--clients 20] [--rounds 1] [--model DIR]

Prints a markdown table of latency percentiles and writes the "Space load" section of
benchmarks/RESULTS.md. Latency is measured per request from the client's side (upload + queue
wait + import + retrieval + download of the JSON).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "space"))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

QUERIES = ["the photo of the spot by the pier", "where do we have lunch", "the museum photos", "lake trip"]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    low, high = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=1, help="requests per client")
    parser.add_argument("--model", default=None, help="model folder (default: the Space's default tiny model)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = parser.parse_args(argv)

    import app
    from f2rvlm.formats import import_chat
    from f2rvlm_space import fixtures
    from gradio_client import Client, handle_file

    scratch = Path(tempfile.mkdtemp(prefix="bench-space-"))
    uploads = [fixtures.write_whatsapp_zip(scratch / "WhatsApp Chat with Alex.zip"),
               fixtures.write_telegram_zip(scratch / "Telegram.zip")]
    demo = app.build_demo(args.model)
    app.launch(demo, prevent_thread_lock=True, server_name="127.0.0.1", server_port=None, quiet=True)
    retriever = demo.f2rvlm_retriever
    expected = {}
    for upload in uploads:
        dialogue = import_chat(upload).dialogue
        for query in QUERIES:
            expected[(str(upload), query)] = retriever.model.retrieve(dialogue, query, processor=retriever.processor)

    latencies, failures, lock = [], [], threading.Lock()
    barrier = threading.Barrier(args.clients)

    def client_thread(index: int) -> None:
        client = Client(demo.local_url, verbose=False)
        barrier.wait()
        for r in range(args.rounds):
            upload = uploads[(index + r) % len(uploads)]
            query = QUERIES[(index + r) % len(QUERIES)]
            start = time.perf_counter()
            try:
                answer = client.predict(handle_file(str(upload)), query, api_name="/retrieve")
                want = expected[(str(upload), query)]
                ok = answer["utterance_ids"] == want.utterance_ids and answer["image_ids"] == want.image_ids
                problem = None if ok else f"client {index}: {answer['utterance_ids']} != {want.utterance_ids}"
            except Exception as err:  # noqa: BLE001 - a failed request is a result to report
                problem = f"client {index}: {type(err).__name__}: {err}"
            elapsed = time.perf_counter() - start
            with lock:
                latencies.append(elapsed)
                if problem:
                    failures.append(problem)

    wall = time.perf_counter()
    threads = [threading.Thread(target=client_thread, args=(i,)) for i in range(args.clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - wall
    demo.close()

    from results import markdown_table, update_section

    total = len(latencies)
    rows = [[args.clients, total, total - len(failures), f"{percentile(latencies, 0.5):.2f}",
             f"{percentile(latencies, 0.9):.2f}", f"{percentile(latencies, 0.95):.2f}", f"{max(latencies):.2f}",
             f"{statistics.mean(latencies):.2f}", f"{total / wall:.2f}"]]
    table = markdown_table(["clients", "requests", "correct", "p50 s", "p90 s", "p95 s", "max s", "mean s",
                            "req/s"], rows)
    concurrency = os.environ.get("F2RVLM_CONCURRENCY", "4")
    body = (f"{table}\n\nModel: `{retriever.model_path}` ({retriever.device}), method `generate`; each request "
            f"uploads a small WhatsApp or Telegram zip (9 / 5 turns, 2 photos) to `/retrieve`. Queue "
            f"default_concurrency_limit={concurrency}; model calls are serialised (one model, shared "
            f"tokenizer). Wall time {wall:.1f} s.")
    print(body)
    for failure in failures:
        print("FAILED:", failure)
    if not args.no_write:
        update_section("Space load", body, "python benchmarks/bench_space_load.py --clients "
                       f"{args.clients} --rounds {args.rounds}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
