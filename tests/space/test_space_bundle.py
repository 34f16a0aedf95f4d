"""The deploy steps of space/README.md: `make space-bundle` builds a folder that runs on its own
(the vendored package, not the checkout's; the bundled demo model)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import json, sys
bundle = sys.argv[1]
sys.path.insert(0, bundle + "/vendor")  # an installed (editable) f2rvlm must not mask the copy
sys.path.insert(0, bundle)
import torch; torch.set_num_threads(1)
import app, f2rvlm, f2rvlm_space
demo = app.build_demo()
print(json.dumps({"f2rvlm": f2rvlm.__file__, "space": f2rvlm_space.__file__, "app": app.__file__,
                  "model": demo.f2rvlm_retriever.model_path, "api": sorted(demo.fns and [
                      f.api_name for f in demo.fns.values() if f.api_name])}))
"""


def test_space_bundle_builds_and_imports(tmp_path):
    pytest.importorskip("gradio")
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import space_bundle
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    out = space_bundle.build(tmp_path / "space")
    for rel in ("README.md", "app.py", "requirements.txt", "f2rvlm_space/engine.py", "vendor/f2rvlm/__init__.py",
                "vendor/f2rvlm/assets/exports/exports.json", "models/tiny-demo/model.safetensors"):
        assert (out / rel).is_file(), rel
    assert not list(out.rglob("__pycache__"))
    assert (out / "README.md").read_text(encoding="utf-8").startswith("---\ntitle:")
    env = {k: v for k, v in os.environ.items() if k not in ("F2RVLM_MODEL", "F2RVLM_GPU_MODEL", "PYTHONPATH")}
    env.update(HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False", PYTHONDONTWRITEBYTECODE="1")
    run = subprocess.run(check=False, args=[sys.executable, "-c", PROBE, str(out)], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    got = json.loads(run.stdout.strip().splitlines()[-1])
    for key in ("f2rvlm", "space", "app"):
        assert got[key].startswith(str(out)), (key, got[key])
    assert got["model"] == str(out / "models" / "tiny-demo")
    assert "retrieve" in got["api"]
