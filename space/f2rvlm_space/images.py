"""Bounded memory for large chats: photos past a pixel budget are replaced, right after import,
by a downscaled JPEG copy in the session folder, so every later consumer (the model's processor,
thumbnails, the results gallery) decodes a small picture instead of a camera-size one.

Measured (issue #10, deliverable 3) on a generated 23 MB WhatsApp export (3,000 turns, 18 photos
of 4000x3000): one tagging search took the process from 409 MB to a 1,412 MB peak and a gallery
of every photo (what `app._gallery` hands Gradio) held 885 MB more; a decoded 12 MP photo is
36 MB (RGB), 48 MB with its `convert` copy, for a picture the page shows at most 480 px wide and
the released processor reads at 602,112 pixels. The copies are made one at a time, JPEGs decoded
at a reduced DCT scale (`Image.draft`), so importing never holds more than one photo.
"""

from __future__ import annotations

import os

#: Pixel budget of one photo in the Space (env F2RVLM_SPACE_IMAGE_PIXELS): about 1460x1095,
#: above the released processor's 602,112 and three times the largest drawn size (480 px).
SPACE_IMAGE_PIXELS = int(os.environ.get("F2RVLM_SPACE_IMAGE_PIXELS", "1600000"))


def _target_size(width: int, height: int, max_pixels: int) -> tuple[int, int]:
    scale = (max_pixels / float(width * height)) ** 0.5
    return max(1, int(width * scale)), max(1, int(height * scale))


def downscale_file(path: str, out_path: str, max_pixels: int = SPACE_IMAGE_PIXELS) -> bool:
    """Write a copy of the picture at `path` within `max_pixels` to `out_path` (JPEG); False (and
    nothing written) when it is already within the budget or cannot be read."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            width, height = image.size
            if width * height <= max_pixels:
                return False
            size = _target_size(width, height, max_pixels)
            image.draft("RGB", size)  # JPEG: decode at 1/2, 1/4 or 1/8 scale, never the full photo
            small = image.convert("RGB")  # pixels as DialogueImage.load() reads them (no EXIF rotation)
            small.thumbnail(size, Image.Resampling.LANCZOS)
            small.save(out_path, format="JPEG", quality=85)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return False  # an unreadable picture stays as it was: the import report and the view name it
    return True


def bound_image_sizes(dialogue, folder: str, max_pixels: int = SPACE_IMAGE_PIXELS) -> int:
    """Point every image of `dialogue` (sources that are files) larger than `max_pixels` at a
    downscaled copy in `folder`; the original file is removed from a session folder. Returns how
    many were replaced."""
    os.makedirs(folder, exist_ok=True)
    replaced = 0
    for index, image in enumerate(dialogue.images):
        source = image.source
        if not isinstance(source, (str, os.PathLike)):
            continue
        path = os.fspath(source)
        out_path = os.path.join(folder, f"small-{index:05d}.jpg")
        if downscale_file(path, out_path, max_pixels):
            image.source = out_path
            replaced += 1
            if os.path.abspath(path).startswith(os.path.abspath(os.path.dirname(folder)) + os.sep):
                os.remove(path)  # the extracted original (session folder only): the disk cap holds too
    return replaced


def release_memory() -> None:
    """Collect garbage and hand freed heap pages back to the system (glibc `malloc_trim`): after a
    large import or search the decoded pictures and activations are gone, but glibc keeps the
    pages of its arenas, so the process would stay at its peak size (measured: 3.1 GB after a
    4.8 GB peak). No-op where glibc is absent."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
