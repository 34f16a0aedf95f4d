"""Dataset builds write aside and swap; a build killed at any point is recovered or cleaned by the
next start (issue #10): `out` is never left missing and no hidden folder stays behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from f2rvlm.data import atomic_folder, recover_build

#: A child process that builds `out` with atomic_folder and dies (os._exit, like SIGKILL: no
#: cleanup runs) at the named point: inside the build, after N renames of the swap.
CHILD = textwrap.dedent("""
    import os, sys, time
    from f2rvlm.data import io as dio
    out, where = sys.argv[1], sys.argv[2]
    real_rename, calls = os.rename, []
    def rename(a, b):
        calls.append(a)
        if where == f"rename{len(calls)}":
            os._exit(137)
        real_rename(a, b)
    dio.os.rename = rename
    with dio.atomic_folder(out, overwrite=True) as tmp:
        with open(os.path.join(tmp, "data.txt"), "w") as f:
            f.write("new")
        if where == "writing":
            os._exit(137)
        if where == "sleep":
            print("ready", flush=True)
            time.sleep(60)
""")


def build(out, content):
    with atomic_folder(str(out), overwrite=True) as tmp, open(os.path.join(tmp, "data.txt"), "w") as f:
        f.write(content)


def killed_build(out, where):
    proc = subprocess.run([sys.executable, "-c", CHILD, str(out), where], capture_output=True, text=True, check=False)
    assert proc.returncode == 137, proc.stderr


def hidden(parent):
    return sorted(n for n in os.listdir(parent) if n.startswith("."))


@pytest.mark.parametrize("where, expected", [
    ("writing", "old"),   # killed while writing: the previous folder stays
    ("rename1", "old"),   # killed just before setting the previous folder aside
    ("rename2", "new"),   # killed between the two renames: the complete new build is swapped in
])
def test_killed_build_is_recovered_at_the_next_start(tmp_path, where, expected):
    out = tmp_path / "ds"
    build(out, "old")
    killed_build(out, where)
    if where == "rename2":
        assert not out.exists() and len(hidden(tmp_path)) == 2  # the state the issue describes
    assert hidden(tmp_path)
    actions = recover_build(str(out))
    assert actions and (out / "data.txt").read_text() == expected
    assert hidden(tmp_path) == [] and sorted(os.listdir(out)) == ["data.txt"]
    build(out, "again")  # the next build works as usual
    assert (out / "data.txt").read_text() == "again" and hidden(tmp_path) == []


def test_first_build_killed_leaves_nothing_after_the_next_start(tmp_path):
    out = tmp_path / "ds"
    killed_build(out, "writing")
    assert not out.exists() and hidden(tmp_path)
    build(out, "new")  # atomic_folder recovers first
    assert (out / "data.txt").read_text() == "new" and hidden(tmp_path) == []


def test_sigkilled_build_is_cleaned_and_a_running_one_is_left_alone(tmp_path):
    out = tmp_path / "ds"
    build(out, "old")
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(out), "sleep"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        assert recover_build(str(out)) == [] and len(hidden(tmp_path)) == 1  # still running: untouched
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    time.sleep(0.05)
    assert recover_build(str(out)) and hidden(tmp_path) == []
    assert (out / "data.txt").read_text() == "old"
