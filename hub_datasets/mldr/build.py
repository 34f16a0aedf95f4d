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
    from f2rvlm.data.build import add_build_arguments

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_build_arguments(parser, "mldr")
    return parser


def main(argv: list[str] | None = None) -> int:
    """The same function and options as `f2rvlm data build`."""
    from f2rvlm.cli import run_command
    from f2rvlm.data.build import build_dataset

    args = build_parser().parse_args(argv)
    return run_command(lambda: build_dataset(args, "mldr") and 0)


if __name__ == "__main__":
    sys.exit(main())
