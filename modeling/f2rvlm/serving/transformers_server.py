"""`transformers serve` pinned to one serving folder:

    python -m f2rvlm.serving.transformers_server FOLDER [--host 127.0.0.1] [--port 8000] [--device auto]

The stock command (`transformers serve FOLDER`), with one difference: when the stock Qwen-VL
processor cannot load (it needs torchvision for its video processor, and torchvision does not
install beside this project's CPU torch, docs/environment.md), the folder's tokenizer, image
processor and chat template are loaded into `F2RVLMProcessor`, the same processor minus video.
Requests and answers are untouched. `transformers serve` takes no answer grammar (it rejects
unknown request fields and ignores `response_format`): `RetrievalClient` notices and makes the
answers valid on its side.
"""

from __future__ import annotations

import argparse
import os


def _processor_without_torchvision() -> None:
    """Make `transformers serve` fall back to `F2RVLMProcessor` when the stock processor needs torchvision."""
    from transformers.cli.serving import model_manager

    stock_load = model_manager.ModelManager._load_processor

    def load_processor(self, model_id_and_revision, gguf_file=None):
        try:
            return stock_load(self, model_id_and_revision, gguf_file=gguf_file)
        except ImportError as err:
            if "torchvision" not in str(err).lower():
                raise
        from ..models.processing_f2rvlm import F2RVLMProcessor

        model_id, revision = model_manager.split_revision(model_id_and_revision)
        return F2RVLMProcessor.from_pretrained(model_id, revision=revision)

    model_manager.ModelManager._load_processor = load_processor


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m f2rvlm.serving.transformers_server", description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a serving folder (f2rvlm export --for-serving)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--device", default="auto", help="'auto', 'cpu', 'cuda:0', ...")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)

    _processor_without_torchvision()
    from transformers.cli.serve import Serve

    Serve(force_model=args.model, host=args.host, port=args.port, device=args.device, dtype=args.dtype,
          log_level=args.log_level)  # returns when uvicorn has shut down (SIGTERM, Ctrl-C)
    os._exit(0)  # its inference thread is not a daemon and would keep the process alive


if __name__ == "__main__":
    main()
