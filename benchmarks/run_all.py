"""Run every benchmarks/bench_*.py in turn (what `make bench` calls).

    python benchmarks/run_all.py [--full] [--only retrieval,data_build] [--keep-going]

Each benchmark runs as its own subprocess (fresh interpreter, so one's memory or threads do not
leak into the next), with `--quick` when its `--help` lists that flag, unless `--full`. The
benchmarks write their own sections of benchmarks/RESULTS.md; the output of one that only
prints (no RESULTS.md section of its own) is saved under "Benchmark output: <name>".
Exit status: 0 when every benchmark succeeded, else 1 (after running all with --keep-going).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def benchmarks(only: list[str] | None = None) -> list[Path]:
    found = sorted(HERE.glob("bench_*.py"))
    if only:
        found = [p for p in found if p.stem.removeprefix("bench_") in only or p.stem in only]
    return found


def supports_quick(script: Path) -> bool:
    """Whether the script accepts --quick (asked through --help; a failing --help means no)."""
    try:
        out = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120,
                             check=False)
    except subprocess.TimeoutExpired:
        return False
    return out.returncode == 0 and "--quick" in out.stdout


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="never pass --quick")
    parser.add_argument("--only", default=None, help="comma-separated names (retrieval, data_build, ...)")
    parser.add_argument("--keep-going", action="store_true", help="run the rest after a failure (default: yes)",
                        default=True)
    args = parser.parse_args(argv)

    sys.path.insert(0, str(HERE))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False",
           "TOKENIZERS_PARALLELISM": "false", "PYTHONWARNINGS": "ignore"}
    failed = []
    for script in benchmarks(args.only.split(",") if args.only else None):
        cmd = [sys.executable, str(script)]
        if not args.full and supports_quick(script):
            cmd.append("--quick")
        shown = " ".join(["python", str(script.relative_to(HERE.parent)), *cmd[2:]])
        print(f"== {shown}", flush=True)
        start = time.perf_counter()
        before = (HERE / "RESULTS.md").read_text() if (HERE / "RESULTS.md").exists() else ""
        proc = subprocess.run(cmd, cwd=HERE.parent, env=env, capture_output=True, text=True, check=False)
        sys.stdout.write(proc.stdout)
        sys.stderr.write(proc.stderr[-4000:] if proc.returncode else "")
        elapsed = time.perf_counter() - start
        if proc.returncode:
            print(f"!! {script.name} failed (exit {proc.returncode}) after {elapsed:.0f} s", flush=True)
            failed.append(script.name)
            if not args.keep_going:
                break
            continue
        after = (HERE / "RESULTS.md").read_text() if (HERE / "RESULTS.md").exists() else ""
        if after == before and proc.stdout.strip():  # a benchmark that only prints: keep its output
            from results import update_section

            update_section(f"Benchmark output: {script.stem}", proc.stdout, shown)
        print(f"-- {script.name}: {elapsed:.0f} s", flush=True)
    if failed:
        print("failed:", ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
