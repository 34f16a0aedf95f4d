"""Parquet folders: atomic writes, shards with embedded images, and `push_to_hub`."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence

# ----------------------------------------------------------------------------------------------
# Writing folders
# ----------------------------------------------------------------------------------------------
from .cards import statistics_by_split
from .schema import features

#: In a build's temporary folder while it is written: "pid@host" of the writing process.
_OWNER = ".f2rvlm-build-owner"
#: Written into the temporary folder once every file is in place, just before the swap.
_COMPLETE = ".f2rvlm-build-complete"
#: A temporary folder of another host is only cleaned once this old (seconds).
_FOREIGN_BUILD_SECONDS = 24 * 3600
_log = logging.getLogger(__name__)


def _mark_owner(folder: str) -> None:
    with open(os.path.join(folder, _OWNER), "w", encoding="utf-8") as f:
        f.write(f"{os.getpid()}@{socket.gethostname()}")


def _owner_alive(folder: str) -> bool:
    """Whether the process that made `folder` (its owner file) may still be writing it."""
    try:
        with open(os.path.join(folder, _OWNER), encoding="utf-8") as f:
            pid_text, _, host = f.read().strip().partition("@")
        pid = int(pid_text)
    except (OSError, ValueError):
        return False  # no owner file: a build killed before it wrote one, or a pre-marker folder
    if host != socket.gethostname():
        try:
            return time.time() - os.stat(folder).st_mtime < _FOREIGN_BUILD_SECONDS
        except OSError:
            return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def recover_build(out: str) -> list[str]:
    """Clean up or finish what a killed `atomic_folder` build of `out` left beside it.

    - a build killed between its two renames (`out` missing): its complete new folder becomes
      `out`; without one, the previous `out` set aside is put back;
    - temporary folders of dead builds (`.NAME.tmp-*`) and folders set aside (`.NAME.old-*`)
      are removed; those of a build still running (owner process alive) are left alone.

    Returns one line per action (also logged). Called at the start of every `atomic_folder`.
    """
    out = os.path.abspath(out)
    parent, name = os.path.dirname(out), os.path.basename(out)
    try:
        entries = os.listdir(parent)
    except OSError:
        return []
    actions: list[str] = []
    tmps = [os.path.join(parent, e) for e in entries if e.startswith(f".{name}.tmp-")]
    olds = [os.path.join(parent, e) for e in entries if e.startswith(f".{name}.old-")]
    dead_tmps = [t for t in tmps if not _owner_alive(t)]
    dead_olds = [o for o in olds if not _owner_alive(o)]
    if not os.path.lexists(out):
        complete = [t for t in dead_tmps if os.path.exists(os.path.join(t, _COMPLETE))]
        previous = [os.path.join(o, "previous") for o in dead_olds if os.path.isdir(os.path.join(o, "previous"))]
        if complete:  # the new build was whole: finish its swap
            newest = max(complete, key=os.path.getmtime)
            os.rename(newest, out)
            dead_tmps.remove(newest)
            actions.append(f"finished an interrupted build: {os.path.basename(newest)} -> {name}")
        elif previous:  # the new build was not whole: put the previous folder back
            newest = max(previous, key=os.path.getmtime)
            os.rename(newest, out)
            actions.append(f"restored the previous {name} set aside by an interrupted build")
    for marker in (_OWNER, _COMPLETE):
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            os.remove(os.path.join(out, marker))
    for folder in dead_tmps + (dead_olds if os.path.lexists(out) else []):
        shutil.rmtree(folder, ignore_errors=True)
        actions.append(f"removed {os.path.basename(folder)} left by an interrupted build")
    for action in actions:
        _log.warning("%s: %s", out, action)
    return actions


@contextlib.contextmanager
def atomic_folder(out: str, overwrite: bool = False) -> Iterator[str]:
    """Yield a temporary folder next to `out`; on success it replaces `out`.

    Refuses an existing `out` unless `overwrite`; on failure the temporary folder is removed and
    `out` is left as it was. The swap is two renames (`out` aside, the new folder in); a build
    killed at any point is recovered by the next one (`recover_build`): `out` is then either the
    previous folder or the complete new one, never missing, and no hidden folder stays behind.
    """
    out = os.path.abspath(out)
    recover_build(out)
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
        _mark_owner(tmp)
        yield tmp
        with open(os.path.join(tmp, _COMPLETE), "w", encoding="utf-8"):
            pass
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if os.path.exists(out):
        old = tempfile.mkdtemp(prefix=f".{os.path.basename(out)}.old-", dir=parent)
        _mark_owner(old)
        os.rename(out, os.path.join(old, "previous"))
    os.rename(tmp, out)
    for marker in (_OWNER, _COMPLETE):
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(out, marker))
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
