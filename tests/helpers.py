"""Plain helpers shared by tests in every folder (`pythonpath = ["tests"]` in pyproject.toml).

Fixtures live in conftest.py; these are ordinary functions because tests call them with arguments
inside their own helpers too.
"""

from __future__ import annotations

import io
from pathlib import Path


def png_bytes(color=(200, 30, 30), size=(4, 4)) -> bytes:
    """An encoded PNG of one flat colour."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def write_png(path: Path, color=(0, 0, 0), size=(2, 2)) -> Path:
    """Write `png_bytes(color, size)` to `path` (parents created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(color, size))
    return path


def stock_base_with_lora(tmp_path: Path):
    """A tiny stock Qwen2-VL base saved at `tmp_path/base` (weights, tokenizer, image processor) and
    a random LoRA adapter on it saved at `tmp_path/adapter`; returns the merged reference model."""
    import torch
    from f2rvlm.models.tiny import build_config, build_processor
    from peft import LoraConfig, get_peft_model
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

    processor = build_processor("qwen2_vl")
    ours = build_config("qwen2_vl", "test", tokenizer=processor.tokenizer).to_dict()
    stock = Qwen2VLConfig(**{k: v for k, v in ours.items() if k in ("text_config", "vision_config")
                             or k.endswith("token_id")})
    torch.manual_seed(0)
    base = Qwen2VLForConditionalGeneration(stock).eval()
    base.save_pretrained(tmp_path / "base")
    processor.tokenizer.save_pretrained(tmp_path / "base")
    processor.image_processor.save_pretrained(tmp_path / "base")
    lora = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                           init_lora_weights=False))
    lora.save_pretrained(tmp_path / "adapter")
    return lora.merge_and_unload().eval()


def load_recipe(name: str):
    """A recipes/NAME.py script imported as a module (recipes are scripts, not a package)."""
    import importlib.util
    import os

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    spec = importlib.util.spec_from_file_location(f"recipe_{name}", os.path.join(root, "recipes", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
