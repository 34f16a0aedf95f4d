"""Assemble a deployable Hugging Face Space folder (`make space-bundle OUT=build/space`).

    python scripts/space_bundle.py --out build/space [--no-model]

The folder holds what a Space runs, and nothing else:

    README.md            space/README.md (its front matter configures the Space)
    app.py, f2rvlm_space/, requirements.txt
    vendor/f2rvlm/       the package (app.py puts vendor/ on sys.path)
    models/tiny-demo/    the committed demo model, served when F2RVLM_MODEL is not set
                         (--no-model leaves it out: then set F2RVLM_MODEL to a model repo)

Push it with `huggingface-cli upload <user>/<space> build/space . --repo-type space` (or git).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", "*.egg-info")


def build(out: str | Path, model: bool = True) -> Path:
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    space = ROOT / "space"
    shutil.copy2(space / "app.py", out / "app.py")
    shutil.copy2(space / "README.md", out / "README.md")
    shutil.copy2(space / "requirements.txt", out / "requirements.txt")
    shutil.copytree(space / "f2rvlm_space", out / "f2rvlm_space", ignore=IGNORE)
    shutil.copytree(ROOT / "modeling" / "f2rvlm", out / "vendor" / "f2rvlm", ignore=IGNORE)
    if model:
        shutil.copytree(ROOT / "models" / "tiny-demo", out / "models" / "tiny-demo", ignore=IGNORE)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "build" / "space"))
    parser.add_argument("--no-model", action="store_true", help="leave models/tiny-demo out (set F2RVLM_MODEL)")
    args = parser.parse_args(argv)
    out = build(args.out, model=not args.no_model)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"Space folder: {out} ({size / 1e6:.1f} MB); run it with: python {out / 'app.py'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
