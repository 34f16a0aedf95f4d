"""Session folders never outlive an import that failed, however it failed, and one upload cannot
write more than the per-session disk cap (issue #10: a 212 KB zip used to leave 182 MB behind)."""

from __future__ import annotations

import asyncio
import gc
import io
import json
import zipfile

import pytest

pytest.importorskip("gradio")
from f2rvlm.formats import ChatImportError
from f2rvlm_space import engine, fixtures

REPEATS = 20


@pytest.fixture
def sessions(tmp_path, monkeypatch):
    root = tmp_path / "sessions"
    monkeypatch.setenv("F2RVLM_SPACE_TMP", str(root))
    return root


def amplifying_telegram_zip(path, images: int = 100) -> int:
    """A Telegram export whose photos are 1 MB files that compress ~1000x (each under the 1 MiB
    ratio check): ~100 KB on the wire, ~100 MB unpacked. Returns the zip's size."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (577, 577), (10, 200, 30)).save(buffer, format="BMP")  # ~1,000 KB, flat
    bmp = buffer.getvalue()
    assert len(bmp) < 1 << 20
    export = {"name": "Kim", "type": "personal_chat", "id": 1, "messages": [
        {"id": i, "type": "message", "date": "2026-09-25T14:20:00", "from": "Kim", "text": f"photo {i}",
         "photo": f"photos/p{i}.bmp"} for i in range(images)]}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr("result.json", json.dumps(export))
        for i in range(images):
            zf.writestr(f"photos/p{i}.bmp", bmp)
    return path.stat().st_size


def test_per_session_disk_cap_bounds_amplification(sessions, tmp_path):
    size = amplifying_telegram_zip(tmp_path / "amplify.zip")
    session = engine.import_upload(tmp_path / "amplify.zip")
    used = engine.sessions_disk_usage()
    print(f"\n{size / 1e3:.0f} KB zip (100 MB unpacked) -> {used / 1e6:.1f} MB on disk")
    assert used <= 10 * 1_000_000  # max(10 MB floor, 10 x the zip), not 100 MB
    kinds = {item.kind: item.count for item in session.imported.ignored}
    assert kinds["image over the disk cap"] > 0 and len(session.dialogue) == 100  # the chat still imports
    session.close()
    assert engine.session_folders() == []


def _crash_after_extracting(kind):
    def crashing_import(path, *, limits, extract_to, **_):
        (extract_to / "partial.bin" if hasattr(extract_to, "joinpath") else
         __import__("pathlib").Path(extract_to) / "partial.bin").write_bytes(b"x" * 1_000_000)
        raise kind("a reader bug")
    return crashing_import


@pytest.mark.parametrize("error", [RuntimeError, KeyError, asyncio.CancelledError, KeyboardInterrupt])
def test_repeated_crashing_upload_leaves_no_folder(sessions, tmp_path, monkeypatch, error):
    """A reader that crashes after writing 1 MB (an unknown bug, or the client going away) twenty
    times: no session folder and no byte is left."""
    monkeypatch.setattr(engine, "import_chat", _crash_after_extracting(error))
    path = fixtures.write_telegram_zip(tmp_path / "export.zip")
    for _ in range(REPEATS):
        with pytest.raises(ChatImportError if issubclass(error, Exception) else error):
            engine.import_upload(path)
    assert engine.session_folders() == [] and engine.sessions_disk_usage() == 0


def test_repeated_hostile_uploads_leave_no_folder(sessions, tmp_path):
    """The issue's inputs (wrong JSON types in a zip with photos, corrupt deflate stream), and every
    hostile fixture, twenty times each."""
    export = fixtures.telegram_export()
    export["messages"][1]["text"] = {"not": "text"}
    bad_types = tmp_path / "types.zip"
    with zipfile.ZipFile(bad_types, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("result.json", json.dumps(export))
        for i in range(5):
            zf.writestr(f"photos/p{i}.png", fixtures.png_bytes())
    uploads = [bad_types] + [writer(tmp_path / name) for writer, name, _ in fixtures.HOSTILE.values()]
    for path in uploads:
        for _ in range(REPEATS):
            with pytest.raises(ChatImportError):
                engine.import_upload(path)
    assert engine.session_folders() == [] and engine.sessions_disk_usage() == 0


def test_session_folder_goes_with_the_session_object(sessions, tmp_path):
    session = engine.import_upload(fixtures.write_whatsapp_zip(tmp_path / "chat.zip"))
    assert engine.session_folders() == [session.workdir]
    del session
    gc.collect()
    assert engine.session_folders() == []


def test_disk_budget_refuses_new_uploads_and_sweeps_stale_folders(sessions, tmp_path, monkeypatch):
    import os
    import time

    monkeypatch.setattr(engine, "SESSIONS_DISK_BUDGET", 1_000)
    stale = engine.new_workdir()
    with open(os.path.join(stale, "big.bin"), "wb") as f:
        f.write(b"x" * 2_000)
    with pytest.raises(ChatImportError, match="short of disk space"):
        engine.new_workdir()
    old = time.time() - engine.STALE_SESSION_SECONDS - 60
    os.utime(stale, (old, old))
    fresh = engine.new_workdir()  # the stale folder is swept, the upload goes ahead
    assert engine.session_folders() == [fresh]
