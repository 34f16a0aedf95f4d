"""Datasets: the row schema, the released-format readers, Parquet folders with embedded images,
dataset cards, the synthetic generator, and one build function per dataset.

One row per (dialogue, query) pair (columns in docs/data.md). A built folder is

    OUT/README.md                       card: YAML `configs:` + features + statistics + citation
    OUT/data/<split>-00000-of-0000N.parquet

and loads with `datasets.load_dataset(OUT)` or `load_dataset(OUT, <config>, split=...)`.
"""

from .build import build_from_release, build_synthetic, build_wechat
from .cards import (
    card_statistics_block,
    compute_statistics,
    render_card,
    statistics_by_split,
    statistics_table,
)
from .io import atomic_folder, push_to_hub, recover_build, write_dataset, write_split
from .released import read_released_file, read_wechat_file
from .samples import SAMPLES_DIR, load_samples, sample_rows, write_samples
from .schema import (
    COLUMNS,
    RELEASE_FILES,
    RELEASE_SPLITS,
    SYNTHETIC_SPLITS,
    ConversionReport,
    DataError,
    features,
    make_row,
    row_example,
    synthetic_rows,
)

__all__ = [
    "COLUMNS", "RELEASE_FILES", "RELEASE_SPLITS", "SAMPLES_DIR", "SYNTHETIC_SPLITS", "ConversionReport", "DataError",
    "atomic_folder", "build_from_release", "build_synthetic", "build_wechat", "card_statistics_block",
    "compute_statistics", "features", "load_samples", "make_row", "push_to_hub", "read_released_file",
    "read_wechat_file", "recover_build", "render_card", "row_example", "sample_rows", "statistics_by_split", "statistics_table",
    "synthetic_rows", "write_dataset", "write_samples", "write_split",
]
