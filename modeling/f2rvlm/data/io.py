"""Parquet folders: atomic writes, shards with embedded images, and `push_to_hub`."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence

# ----------------------------------------------------------------------------------------------
# Writing folders
# ----------------------------------------------------------------------------------------------
from .cards import statistics_by_split
from .schema import features


@contextlib.contextmanager
def atomic_folder(out: str, overwrite: bool = False) -> Iterator[str]:
    """Yield a temporary folder next to `out`; on success it replaces `out` in one rename.

    Refuses an existing `out` unless `overwrite`; on failure the temporary folder is removed and
    `out` is left as it was.
    """
    out = os.path.abspath(out)
    if os.path.lexists(out) and not overwrite:
        raise FileExistsError(f"output folder exists: {out} (pass --overwrite / overwrite=True to replace it)")
    if os.path.exists(out) and not os.path.isdir(out):
        raise NotADirectoryError(f"output path exists and is not a folder: {out}")
    parent = os.path.dirname(out)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(out)}.tmp-", dir=parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; the result is an ordinary folder
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if os.path.exists(out):
        old = tempfile.mkdtemp(prefix=f".{os.path.basename(out)}.old-", dir=parent)
        os.rename(out, os.path.join(old, "previous"))
    os.rename(tmp, out)
    if old:
        shutil.rmtree(old, ignore_errors=True)


def write_split(rows: Sequence[Mapping], folder: str, split: str, rows_per_shard: int = 500) -> list[str]:
    """Parquet shards `data/<split>-0000i-of-0000n.parquet` (images embedded as bytes)."""
    import pyarrow.parquet as pq
    from datasets import Dataset

    feats = features()
    os.makedirs(os.path.join(folder, "data"), exist_ok=True)
    n = max(1, -(-len(rows) // rows_per_shard))
    paths = []
    for i in range(n):
        chunk = list(rows[i * rows_per_shard:(i + 1) * rows_per_shard])
        path = os.path.join(folder, "data", f"{split}-{i:05d}-of-{n:05d}.parquet")
        # The table carries the `huggingface` schema metadata (features), so loaders see `Image()`.
        pq.write_table(Dataset.from_list(chunk, features=feats).data.table, path, row_group_size=100)
        paths.append(path)
    return paths


def write_dataset(out: str, splits: Mapping[str, Sequence[Mapping]], card: str | Callable[[dict], str],
                  overwrite: bool = False, rows_per_shard: int = 500, show_progress: bool = False) -> str:
    """Write a dataset folder atomically: Parquet shards per split + README.md.

    `card` is the card text, or a function of the per-split statistics that returns it.
    """
    stats = statistics_by_split(splits)
    with atomic_folder(out, overwrite) as tmp:
        for split in _progress(list(splits), "write splits", show_progress):
            write_split(splits[split], tmp, split, rows_per_shard)
        text = card(stats) if callable(card) else card
        with open(os.path.join(tmp, "README.md"), "w", encoding="utf-8") as f:
            f.write(text)
    return os.path.abspath(out)


def _progress(items, desc: str, show: bool):
    if not show:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, unit="it", file=sys.stderr)


def push_to_hub(folder: str, repo_id: str, private: bool = False, token: str | None = None,
                commit_message: str = "Upload dataset") -> str:
    """Upload a built folder as a dataset repo (needs network and a token; not run in tests)."""
    from huggingface_hub import HfApi

    if not os.path.isfile(os.path.join(folder, "README.md")):
        raise FileNotFoundError(f"{folder} is not a built dataset folder (no README.md)")
    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    info = api.upload_folder(repo_id=repo_id, folder_path=folder, repo_type="dataset", commit_message=commit_message)
    return str(getattr(info, "commit_url", info))
