"""Start an OpenAI-compatible server on a serving folder (`f2rvlm export --for-serving`).

>>> command = server_command("outputs/serving", backend="vllm", port=8001, max_model_len=16384)
>>> command.argv[:3], command.base_url
(['vllm', 'serve', 'outputs/serving'], 'http://127.0.0.1:8001/v1')
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

BACKENDS = ("auto", "vllm", "transformers")


@dataclass(frozen=True)
class ServerCommand:
    """What `start_server` runs.

    Args:
        backend: "vllm" or "transformers".
        argv: the command line.
        base_url: the OpenAI base URL it will answer on (`http://host:port/v1`).
        model: the model name requests must carry (None: whatever `/v1/models` lists).
        grammar: whether the server enforces the answer grammar sent with each request.
    """

    backend: str
    argv: list[str]
    base_url: str
    model: str | None
    grammar: bool


def pick_backend(vllm: str = "vllm") -> str:
    """"vllm" when the `vllm` command is on PATH or the package imports here, else "transformers"."""
    if shutil.which(vllm) or importlib.util.find_spec("vllm") is not None:
        return "vllm"
    return "transformers"


def server_command(model: str, backend: str = "auto", host: str = "127.0.0.1", port: int = 8000,
                   served_model_name: str | None = None, tensor_parallel_size: int = 1,
                   max_model_len: int | None = None, max_images: int = 64, gpu_memory_utilization: float = 0.9,
                   device: str = "auto", dtype: str = "auto", vllm: str = "vllm",
                   extra_args: tuple[str, ...] = ()) -> ServerCommand:
    """The command line serving `model` (a serving folder) with `backend`.

    vLLM: `vllm serve FOLDER --tensor-parallel-size --max-model-len --limit-mm-per-prompt
    --gpu-memory-utilization` (`python -m vllm.entrypoints.openai.api_server --model FOLDER ...`
    when only the package is importable); it enforces the grammar (structured outputs).
    transformers: `transformers serve` pinned to the folder, on `device`; it takes no grammar, and
    neither tensor parallelism nor the vLLM memory settings mean anything there.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {BACKENDS}")
    if backend == "auto":
        backend = pick_backend(vllm)
    base_url = f"http://{host}:{port}/v1"
    if backend == "vllm":
        name = served_model_name or os.path.basename(os.path.normpath(model))
        if shutil.which(vllm) or importlib.util.find_spec("vllm") is None:
            head = [vllm, "serve", model]
        else:  # the package without its console script (a CPU build's `vllm` entry point can fail)
            head = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model]
        argv = head + ["--host", host, "--port", str(port), "--served-model-name", name,
                       "--tensor-parallel-size", str(tensor_parallel_size),
                       "--limit-mm-per-prompt", json.dumps({"image": max_images}),
                       "--gpu-memory-utilization", str(gpu_memory_utilization), "--dtype", dtype]
        if max_model_len:
            argv += ["--max-model-len", str(max_model_len)]
        return ServerCommand("vllm", argv + list(extra_args), base_url, name, True)
    argv = [sys.executable, "-m", "f2rvlm.serving.transformers_server", model, "--host", host, "--port", str(port),
            "--device", device, "--dtype", dtype]
    return ServerCommand("transformers", argv + list(extra_args), base_url, model, False)


def find_free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def wait_until_ready(base_url: str, timeout: float = 600.0, process: subprocess.Popen | None = None) -> None:
    """Block until `GET {server}/health` answers 200 (both vLLM and `transformers serve` have it);
    `RuntimeError` when `process` exits first, `TimeoutError` after `timeout` seconds."""
    health = base_url.rstrip("/").removesuffix("/v1") + "/health"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server exited with code {process.returncode} before answering on {health}")
        try:
            with urllib.request.urlopen(health, timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        time.sleep(0.5)
    raise TimeoutError(f"no answer from {health} within {timeout:.0f} s")


def start_server(command: ServerCommand, timeout: float = 600.0, log=None, env: dict | None = None) -> subprocess.Popen:
    """Start `command` (its own process group, output to `log` or inherited) and wait until it
    answers; the process is stopped again when it does not."""
    process = subprocess.Popen(command.argv, stdout=log, stderr=subprocess.STDOUT if log else None,
                               env={**os.environ, **(env or {})}, start_new_session=True)
    try:
        wait_until_ready(command.base_url, timeout, process)
    except BaseException:
        stop_server(process)
        raise
    return process


def stop_server(process: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM the server's process group, SIGKILL it after `grace` seconds."""
    import signal

    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass


__all__ = ["BACKENDS", "ServerCommand", "find_free_port", "pick_backend", "server_command", "start_server",
           "stop_server", "wait_until_ready"]
