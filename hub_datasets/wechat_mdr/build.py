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
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", "--from-release", "--raw", dest="source", required=True,
                        help="the WeChat test JSON file (either form) or a folder with exactly one")
    parser.add_argument("--out", required=True, help="output folder (written atomically)")
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--on-error", default="raise", choices=["raise", "skip"])
    parser.add_argument("--image-root", action="append", default=[], metavar="DIR")
    parser.add_argument("--image-turn-gold", default="image", choices=["image", "both"],
                        help="raw form: what a gold image turn contributes")
    parser.add_argument("--rows-per-shard", type=int, default=500)
    parser.add_argument("--push-to-hub", metavar="REPO")
    parser.add_argument("--private", action="store_true")
    parser.add_argument("--quiet", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    from f2rvlm.cli import run_command
    from f2rvlm.data import build_wechat, push_to_hub

    args = build_parser().parse_args(argv)

    def build() -> None:
        path, reports = build_wechat(args.source, args.out, args.overwrite, args.on_error, args.image_root,
                                     args.image_turn_gold, not args.quiet, args.rows_per_shard)
        for report in reports:
            print(report.summary())
        print(f"dataset written to {path}")
        if args.push_to_hub:
            print(f"pushed: {push_to_hub(path, args.push_to_hub, private=args.private)}")

    return run_command(build)


if __name__ == "__main__":
    sys.exit(main())
