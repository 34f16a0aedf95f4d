"""Memory stays bounded for a large chat with camera-size photos (issue #10, deliverable 3): the
import replaces every photo past `images.SPACE_IMAGE_PIXELS` by a downscaled copy, so drawing
every thumbnail and holding every photo (what the results gallery does) costs megabytes, not
36 MB per 12 MP photo. Peak RSS is measured in a fresh interpreter (Pillow's pixel buffers are
not visible to tracemalloc)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile

import pytest

pytest.importorskip("gradio")

SPACE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "space")
PHOTOS = 8
WIDTH, HEIGHT = 4000, 3000  # a 12 MP phone photo: 36 MB decoded (RGB)


def camera_whatsapp_zip(path, photos: int = PHOTOS, turns: int = 3000) -> int:
    """A WhatsApp export of `turns` turns with `photos` 12 MP JPEGs (one photo, different names)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (HEIGHT // 50, WIDTH // 50, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(small).resize((WIDTH, HEIGHT), Image.Resampling.BILINEAR).save(buffer, "JPEG", quality=85)
    names = [f"IMG-20260502-WA{i:04d}.jpg" for i in range(1, photos + 1)]
    lines = ["02/05/2026, 18:00 - Messages and calls are end-to-end encrypted. No one outside of this chat can read them."]
    every = turns // photos
    for t in range(turns - 1):
        hh, mm = divmod(t, 60)
        stamp = f"{2 + hh // 24:02d}/05/2026, {hh % 24:02d}:{mm:02d}"
        who = "Alex" if t % 2 else "Sam"
        text = f"{names[t // every]} (file attached)" if t % every == 0 and t // every < photos else f"message {t} about the vet"
        lines.append(f"{stamp} - {who}: {text}")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("WhatsApp Chat with Sam.txt", "\n".join(lines) + "\n")
        for name in names:
            z.writestr(name, buffer.getvalue())
    return os.path.getsize(path)


CHILD = r"""
import gc, json, os, sys
sys.path.insert(0, {space!r})
def kb(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1])
from PIL import Image
from f2rvlm_space import engine, images, render
Image.new("RGB", (8, 8)).save("/dev/null", format="JPEG")  # Pillow's codecs loaded before the baseline
gc.collect()
base = kb("VmRSS")
session = engine.import_upload({zip!r})
after_import = kb("VmHWM")
dialogue = session.dialogue
cache = {{}}
for i in range(dialogue.num_images):  # every thumbnail, at the hit size
    render.thumbnail(dialogue, i, cache, render.HIT_PX)
held = [dialogue.images[i].load() for i in range(dialogue.num_images)]  # the results gallery, all photos
sizes = [im.size for im in held]
result = {{"import_peak_mb": (after_import - base) / 1024, "peak_mb": (kb("VmHWM") - base) / 1024,
          "held_mb": (kb("VmRSS") - base) / 1024, "sizes": sizes, "images": dialogue.num_images,
          "media": sorted(os.listdir(os.path.join(session.workdir, "media")))}}
print("RESULT" + json.dumps(result))
"""


def _measure(zip_path, tmp_path, env_extra=None) -> dict:
    env = {**os.environ, "F2RVLM_SPACE_TMP": str(tmp_path / "sessions"), "OMP_NUM_THREADS": "1", **(env_extra or {})}
    out = subprocess.run([sys.executable, "-c", CHILD.format(space=SPACE, zip=str(zip_path))], env=env,
                         capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(next(line for line in out.stdout.splitlines() if line.startswith("RESULT"))[6:])


@pytest.fixture(scope="module")
def camera_zip(tmp_path_factory):
    path = tmp_path_factory.mktemp("chat") / "WhatsApp Chat with Sam.zip"
    camera_whatsapp_zip(path)
    return path


def test_large_chat_memory_is_bounded(camera_zip, tmp_path):
    from f2rvlm_space.images import SPACE_IMAGE_PIXELS

    bounded = _measure(camera_zip, tmp_path)
    unbounded = _measure(camera_zip, tmp_path, {"F2RVLM_SPACE_IMAGE_PIXELS": str(10**9)})  # the behaviour before
    print(f"\n{os.path.getsize(camera_zip) / 1e6:.1f} MB export, {PHOTOS} photos of {WIDTH}x{HEIGHT}: "
          f"bounded import peak {bounded['import_peak_mb']:.0f} MB, peak {bounded['peak_mb']:.0f} MB, held "
          f"{bounded['held_mb']:.0f} MB; unbounded peak {unbounded['peak_mb']:.0f} MB, held {unbounded['held_mb']:.0f} MB")
    assert bounded["images"] == PHOTOS
    assert all(w * h <= SPACE_IMAGE_PIXELS for w, h in bounded["sizes"])
    assert min(max(w, h) for w, h in bounded["sizes"]) >= 2 * 240  # still sharp at the largest drawn size
    # every photo held at once costs at most 3 bytes per budgeted pixel each (+ slack), one photo's
    # decode at a time during import; before: 36 MB per photo held
    budget_mb = PHOTOS * SPACE_IMAGE_PIXELS * 3 / 2**20
    assert bounded["held_mb"] < budget_mb + 40
    assert bounded["peak_mb"] < budget_mb + 80
    assert bounded["import_peak_mb"] < 80
    assert unbounded["held_mb"] > PHOTOS * 30  # the measurement sees the difference
    assert bounded["media"] == []  # the extracted originals are gone: only the small copies are on disk


def test_small_pictures_are_left_alone(tmp_path):
    from f2rvlm.core.dialogue import Dialogue, DialogueImage, Utterance
    from f2rvlm_space.images import bound_image_sizes, downscale_file
    from PIL import Image

    small = tmp_path / "small.png"
    Image.new("RGB", (640, 480), "red").save(small)
    assert not downscale_file(str(small), str(tmp_path / "out.jpg"), max_pixels=640 * 480)
    assert not (tmp_path / "out.jpg").exists()
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a picture")
    assert not downscale_file(str(broken), str(tmp_path / "out.jpg"), max_pixels=10)

    dialogue = Dialogue([Utterance("A", "", images=[DialogueImage(str(small))])])
    assert bound_image_sizes(dialogue, str(tmp_path / "copies"), max_pixels=100 * 100) == 1
    with Image.open(dialogue.images[0].source) as image:
        assert image.size[0] * image.size[1] <= 100 * 100 and image.size[0] / image.size[1] == pytest.approx(4 / 3, 0.05)
