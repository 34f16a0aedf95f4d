"""Build the MLDR dataset folder (Parquet shards with embedded images + dataset card).

    # the released files (MLDR_train_cold_start.json, MLDR_train_GRPO.json, MLDR_val.json + images)
    python hub_datasets/mldr/build.py --from-release /data/MLDR --out outputs/mldr [--on-error skip]
    # synthetic MLDR (deterministic by seed; English or Chinese)
    python hub_datasets/mldr/build.py --synthetic --num-dialogues 200 --seed 0 --language en --out outputs/mldr-syn
    # then, with network and a token:  ... --push-to-hub org/mldr

The folder loads with `datasets.load_dataset(OUT)`. Bad records stop the build with an error that
names file, record and field; `--on-error skip` leaves them out and reports how many, and why.
"""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--from-release", metavar="DIR", help="folder with the released MLDR JSON files and images")
    source.add_argument("--synthetic", action="store_true", help="generate synthetic MLDR")
    parser.add_argument("--out", required=True, help="output folder (written atomically)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    parser.add_argument("--on-error", default="raise", choices=["raise", "skip"],
                        help="bad released records: stop (default) or skip them and report counts")
    parser.add_argument("--image-root", action="append", default=[], metavar="DIR",
                        help="extra folder to look for released images in (repeatable)")
    parser.add_argument("--num-dialogues", type=int, default=200, help="synthetic: dialogues over all splits")
    parser.add_argument("--seed", type=int, default=0, help="synthetic: seed (same seed -> same bytes)")
    parser.add_argument("--language", default="en", choices=["en", "zh"], help="synthetic: language")
    parser.add_argument("--mean-turns", type=float, default=None, help="synthetic: mean turns (train splits)")
    parser.add_argument("--rows-per-shard", type=int, default=500)
    parser.add_argument("--push-to-hub", metavar="REPO", help="upload the built folder as a dataset repo")
    parser.add_argument("--private", action="store_true", help="with --push-to-hub: a private repo")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def main(argv: list[str] | None = None) -> int:
    from f2rvlm.cli import run_command
    from f2rvlm.data import build_from_release, build_synthetic, push_to_hub

    args = build_parser().parse_args(argv)

    def build() -> None:
        if args.synthetic:
            overrides = {} if args.mean_turns is None else {"mean_turns": args.mean_turns}
            path = build_synthetic(args.out, args.num_dialogues, args.seed, args.language, args.overwrite,
                                   show_progress=not args.quiet, rows_per_shard=args.rows_per_shard, **overrides)
        else:
            path, reports = build_from_release(args.from_release, args.out, args.overwrite, args.on_error,
                                               args.image_root, not args.quiet, args.rows_per_shard)
            for report in reports:
                print(report.summary())
        print(f"dataset written to {path}")
        if args.push_to_hub:
            print(f"pushed: {push_to_hub(path, args.push_to_hub, private=args.private)}")

    return run_command(build)


if __name__ == "__main__":
    sys.exit(main())
