"""Dataset build throughput: synthetic generation and Parquet writing (rows/s, MB written).

    python benchmarks/bench_data_build.py [--num-dialogues 200] [--seed 0] [--language en]

Prints one markdown row for benchmarks/RESULTS.md:
| benchmark | dialogues | rows | generate s | write s | rows/s | MB written | machine |
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import tempfile
import time


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num-dialogues", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--language", default="en", choices=["en", "zh"])
    parser.add_argument("--header", action="store_true", help="print the table header too")
    args = parser.parse_args(argv)

    from f2rvlm.data import SYNTHETIC_SPLITS, build_synthetic, synthetic_rows, write_split
    from f2rvlm.data.synthetic import SyntheticConfig, generate_dialogue, split_sizes

    # 1. generation alone (dialogues, images, rows)
    start = time.perf_counter()
    rows = {}
    for split, n in split_sizes(args.num_dialogues).items():
        config = SyntheticConfig.for_split(split)
        samples = [generate_dialogue(random.Random(f"{args.seed}/{split}/{i}"), args.language, config,
                                     dialogue_id=f"d{i}", split=split) for i in range(n)]
        rows[split] = synthetic_rows(samples)
    generate_s = time.perf_counter() - start
    n_rows = sum(len(r) for r in rows.values())

    with tempfile.TemporaryDirectory() as tmp:
        # 2. Parquet writing alone
        start = time.perf_counter()
        for split in SYNTHETIC_SPLITS:
            write_split(rows[split], os.path.join(tmp, "w"), split)
        write_s = time.perf_counter() - start
        # 3. the whole build as users run it (generation + writing + card), for rows/s and size
        start = time.perf_counter()
        out = build_synthetic(os.path.join(tmp, "full"), args.num_dialogues, args.seed, args.language,
                              show_progress=False)
        total_s = time.perf_counter() - start
        size = sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(out) for f in files)

    machine = f"{platform.machine()}, {os.cpu_count()} cpu"
    if args.header:
        print("| benchmark | dialogues | rows | generate s | write s | build rows/s | MB written | machine |")
        print("|---|---:|---:|---:|---:|---:|---:|---|")
    print(f"| data build synthetic-{args.language} | {args.num_dialogues} | {n_rows} | {generate_s:.2f} | "
          f"{write_s:.2f} | {n_rows / total_s:.0f} | {size / 1e6:.2f} | {machine} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
