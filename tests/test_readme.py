"""The README runs as written.

Every ```python and ```bash block of README.md is either marked `<!-- readme-test: run -->` on
the line before it (run here) or starts with the visible line
`# not run by tests/test_readme.py: REASON` (a GPU, the network, placeholder paths, or a server
that runs until stopped). A ```text block marked
`<!-- readme-test: output -->` is the exact stdout of the Python block before it.

The bash blocks run first, in order, each in a fresh `bash -e` whose PATH does not contain the
virtual environment (the block must activate it, as a reader's new shell would); the Python blocks
then run in order in one interpreter (later blocks use the names earlier ones define), from the
repository root, offline.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SCRATCH = ROOT / "outputs" / "readme"  # the (git-ignored) folder the README's commands write to
MARKER = re.compile(r"<!-- readme-test: (run|output) -->")
SKIP = re.compile(r"# not run by tests/test_readme\.py: (?P<reason>.+)")
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
SEPARATOR = "@@ readme block end @@"


@dataclass
class Block:
    language: str
    code: str
    marker: str | None
    reason: str | None
    line: int


def blocks(text: str | None = None) -> list[Block]:
    text = README.read_text(encoding="utf-8") if text is None else text
    out = []
    for match in FENCE.finditer(text):
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = MARKER.fullmatch(before.strip())
        skip = SKIP.fullmatch(match.group(2).split("\n", 1)[0].strip())
        kind = marker.group(1) if marker else "skip" if skip else None
        out.append(Block(match.group(1), match.group(2), kind, skip and skip.group("reason"),
                         text[: match.start()].count("\n") + 1))
    return out


def test_every_code_block_is_marked():
    found = blocks()
    for block in found:
        if block.language in ("python", "bash"):
            assert block.marker in ("run", "skip"), f"README line {block.line}: mark the {block.language} block"
        if block.marker == "skip":
            assert block.reason and len(block.reason) > 8, f"README line {block.line}: say why it is not run"
        if block.marker == "output":
            assert block.language == "text"
    runnable = [b for b in found if b.marker == "run"]
    assert {b.language for b in runnable} == {"python", "bash"}
    # outputs follow a run Python block
    for previous, block in itertools.pairwise(found):
        if block.marker == "output":
            assert previous.language == "python" and previous.marker == "run", f"README line {block.line}"
    # no placeholder or missing file in what runs
    for block in runnable:
        assert "flat.jpg" not in block.code and "org/" not in block.code.lower(), block.line


def _fresh_shell_env() -> dict:
    venv_bin = str(ROOT / ".venv" / "bin")
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "F2RVLM_MODEL")}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p and p != venv_bin)
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               TOKENIZERS_PARALLELISM="false", GRADIO_ANALYTICS_ENABLED="False", PYTHONDONTWRITEBYTECODE="1")
    return env


def test_readme_runs_as_written():
    if not (ROOT / ".venv" / "bin" / "activate").exists():
        pytest.skip("no .venv (make install) to activate")
    found = blocks()
    shutil.rmtree(SCRATCH, ignore_errors=True)
    env = _fresh_shell_env()
    try:
        for block in found:
            if block.marker == "run" and block.language == "bash":
                run = subprocess.run(check=False, args=["bash", "-e", "-o", "pipefail", "-c", block.code], cwd=ROOT, env=env,
                                     capture_output=True, text=True, timeout=600)
                assert run.returncode == 0, f"README line {block.line}:\n{run.stdout[-2000:]}\n{run.stderr[-3000:]}"

        python = [(i, b) for i, b in enumerate(found) if b.marker == "run" and b.language == "python"]
        script = "".join(f"{b.code}\nprint({SEPARATOR!r}, flush=True)\n" for _, b in python)
        run = subprocess.run(check=False, args=[sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                             timeout=600)
        assert run.returncode == 0, run.stderr[-3000:]
        outputs = run.stdout.split(SEPARATOR + "\n")
        for (i, block), printed in zip(python, outputs):
            following = found[i + 1] if i + 1 < len(found) else None
            if following is not None and following.marker == "output":
                assert printed == following.code, f"README line {block.line} prints:\n{printed}"
        assert len(outputs) == len(python) + 1
    finally:
        shutil.rmtree(SCRATCH, ignore_errors=True)
