"""Build the WeChat-MDR test set folder (split `test`; Parquet with embedded images + card).

    # released ms-swift form (prompts parsed back, checked to render byte for byte)
    python hub_datasets/wechat_mdr/build.py --source /data/WeChat_test_set --out outputs/wechat_mdr
    # raw annotation form ({"dialogue": [...], "query_text": [...], "gt_turns": [[...]]}); auto-detected
    python hub_datasets/wechat_mdr/build.py --source annotations.json --image-root /data/images --out outputs/wechat_mdr

`--source` is a JSON file or a folder holding exactly one. In the raw form an image is its own
turn; it becomes an utterance without text carrying the image, and a gold image turn contributes
its image id (`--image-turn-gold both` adds the utterance id too). Bad records stop the build with
an error naming file, record and field; `--on-error skip` leaves them out and reports counts.
"""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    from f2rvlm.data.build import add_build_arguments

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_build_arguments(parser, "wechat_mdr")
    return parser


def main(argv: list[str] | None = None) -> int:
    """The same function and options as `f2rvlm data build` --wechat."""
    from f2rvlm.cli import run_command
    from f2rvlm.data.build import build_dataset

    args = build_parser().parse_args(argv)
    return run_command(lambda: build_dataset(args, "wechat_mdr") and 0)


if __name__ == "__main__":
    sys.exit(main())
