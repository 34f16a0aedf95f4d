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
