"""ZeroGPU and CPU Basic: with the `spaces` package importable (a fake one here, as on a ZeroGPU
Space) the functions that run the model are `spaces.GPU`-wrapped and the UI's handlers go through
the wrappers; without it the same app imports and answers unchanged. And the README's front
matter names a hardware flavour Hugging Face knows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("gradio")
ROOT = Path(__file__).resolve().parents[2]

#: Records each call through a `spaces.GPU` wrapper (the decorator's plain and called forms).
FAKE_SPACES = '''
CALLS = []

def GPU(fn=None, **options):
    def decorate(f):
        def wrapper(*args, **kwargs):
            CALLS.append(f.__name__)
            return f(*args, **kwargs)
        wrapper.__wrapped__ = f
        wrapper.zerogpu = True
        return wrapper
    return decorate(fn) if callable(fn) else decorate
'''

#: Builds the app as `python space/app.py` does and calls the UI's own handlers (`demo.fns`).
SCRIPT = textwrap.dedent('''
    import json, sys
    sys.path[:0] = [sys.argv[1], sys.argv[2]]  # the fake `spaces` (or an empty folder), then space/
    import app
    from f2rvlm_space import archive, engine, fixtures
    from f2rvlm.models.tiny import save_tiny
    try:
        import spaces
        calls = spaces.CALLS
    except ImportError:
        spaces, calls = None, []
    tmp = sys.argv[3]
    model = save_tiny(tmp + "/model", relevance_head=True)
    store = archive.ArchiveStore(tmp + "/index", embedder="hashing")
    demo = app.build_demo(model, store=store)
    handlers = {f.api_name: f.fn for f in demo.fns.values() if f.api_name}
    chat = fixtures.write_whatsapp_zip(tmp + "/WhatsApp Chat with Alex.zip")
    answer = handlers["retrieve"](str(chat), "the photo by the water", "generate")
    after_chat = list(calls)
    handlers["archive_add"]([str(chat)])
    handlers["archive_search"]("the photo by the water", 2, "model")
    print(json.dumps({"spaces": spaces is not None, "calls_after_chat": after_chat, "calls": calls,
                      "wrapped": [getattr(engine._run_model, "zerogpu", False), getattr(archive._rerank, "zerogpu", False)],
                      "ids": answer["utterance_ids"], "error": answer.get("error")}))
''')


def _run_app(tmp_path, with_spaces: bool) -> dict:
    fake = tmp_path / "site"
    fake.mkdir()
    if with_spaces:
        (fake / "spaces.py").write_text(FAKE_SPACES)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False",
           "F2RVLM_SPACE_TMP": str(tmp_path / "sessions"), "PYTHONPATH": str(ROOT / "modeling")}
    for name in ("F2RVLM_ENDPOINT", "F2RVLM_MODEL", "SPACES_ZERO_GPU"):
        env.pop(name, None)
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(fake), str(ROOT / "space"), str(tmp_path)],
                          check=False, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_spaces_gpu_wraps_what_the_ui_calls(tmp_path):
    got = _run_app(tmp_path, with_spaces=True)
    assert got["spaces"] and got["wrapped"] == [True, True]
    assert got["calls_after_chat"] == ["_run_model"]  # /retrieve's model call went through spaces.GPU
    assert got["calls"] == ["_run_model", "_rerank"]  # and so did the archive's model picker
    assert got["error"] is None


def test_without_spaces_the_app_runs_unchanged(tmp_path):
    got = _run_app(tmp_path, with_spaces=False)
    assert not got["spaces"] and got["wrapped"] == [False, False] and got["calls"] == []
    assert got["error"] is None and isinstance(got["ids"], list)


def test_readme_front_matter_names_a_known_hardware():
    yaml = pytest.importorskip("yaml")
    from huggingface_hub import SpaceHardware

    text = (ROOT / "space" / "README.md").read_text(encoding="utf-8")
    meta = yaml.safe_load(text.split("---\n")[1])
    assert meta["suggested_hardware"] in {h.value for h in SpaceHardware}
    assert meta["sdk"] == "gradio" and meta["app_file"] == "app.py"
    for heading in ("ZeroGPU", "CPU Basic", "F2RVLM_ENDPOINT"):
        assert heading in text
