"""One real `f2rvlm serve` per test process, shared by every folder that needs an endpoint
(`tests/serving`, `tests/space`, `tests/corpus`): a tiny seeded Qwen2-VL exported with
`--for-serving`, served by `transformers serve` on CPU (vLLM's CPU build does not run here,
docs/environment.md).

    from serving import served_tiny
    served = served_tiny.served  # a pytest fixture

    def test_something(served):
        url, f2rvlm_folder, serving_folder = served

Starting the server takes the longest part of these tests on a 2-core machine, so the first test
that asks for it starts it and the rest of the session reuses it (one process-wide server, stopped
at the end of the session by the fixture that started it).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import pytest

_SERVER: dict = {}


def start_served_tiny(root) -> tuple[subprocess.Popen, tuple[str, str, str]]:
    """(process, (base URL, F2RVLM folder, serving folder)) of a freshly started `f2rvlm serve`."""
    from f2rvlm.cli import main
    from f2rvlm.models.tiny import save_tiny

    src = save_tiny(str(root / "f2rvlm"), family="qwen2_vl", seed=0)
    out = str(root / "serving")
    assert main(["export", "--model", src, "--out", out, "--for-serving"]) == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    with open(root / "server.log", "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "f2rvlm.cli", "serve", "--model", out, "--port", "0", "--backend", "transformers",
             "--device", "cpu", "--startup-timeout", "240"],
            stdout=subprocess.PIPE, stderr=log, text=True, env=env, start_new_session=True)
    line = process.stdout.readline()  # printed once the server answers /health
    match = re.search(r" at (http://\S+/v1) \(backend transformers", line)
    if not match:
        stop(process)
        raise AssertionError(f"f2rvlm serve printed {line!r}; log: {(root / 'server.log').read_text()[-2000:]}")
    return process, (match.group(1), src, out)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)


@pytest.fixture(scope="session")
def served(request, tmp_path_factory):
    """(base URL, F2RVLM folder, serving folder) of the running tiny server."""
    pytest.importorskip("openai")
    pytest.importorskip("fastapi")
    if "value" not in _SERVER:
        process, value = start_served_tiny(tmp_path_factory.mktemp("served"))
        _SERVER["value"] = value

        def finish():
            _SERVER.pop("value", None)
            stop(process)

        request.addfinalizer(finish)
    return _SERVER["value"]
