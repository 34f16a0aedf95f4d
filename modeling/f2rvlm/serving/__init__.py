"""Serving an exported F2RVLM backbone behind an OpenAI-compatible endpoint (`f2rvlm serve`).

- `launch.py`: which server (vLLM when it is installed, else `transformers serve`), its command
  line, a free port, waiting until it answers.
- `transformers_server.py`: `transformers serve` pinned to one folder, started as
  `python -m f2rvlm.serving.transformers_server` (loads the processor without torchvision).

The client is `f2rvlm.client.RetrievalClient`; docs/serving.md has the whole picture.
"""

from .launch import (
    ServerCommand,
    find_free_port,
    pick_backend,
    server_command,
    start_server,
    stop_server,
    wait_until_ready,
)

__all__ = ["ServerCommand", "find_free_port", "pick_backend", "server_command", "start_server", "stop_server",
           "wait_until_ready"]
