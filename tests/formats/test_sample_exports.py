"""The shipped sample exports (modeling/f2rvlm/assets/exports/, written by
scripts/make_sample_exports.py) are what the script writes, and every reader accepts its file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from f2rvlm.formats import import_chat

ROOT = Path(__file__).resolve().parents[2]
EXPORTS = ROOT / "modeling" / "f2rvlm" / "assets" / "exports"
MANIFEST = json.loads((EXPORTS / "exports.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("entry", MANIFEST, ids=[e["format"] for e in MANIFEST])
def test_reader_accepts_shipped_export(entry, tmp_path):
    imported = import_chat(str(EXPORTS / entry["file"]), extract_to=str(tmp_path))
    assert imported.format.startswith(entry["format"])
    assert len(imported.dialogue) == 24 and imported.dialogue.num_images == 2
    assert {u.speaker for u in imported.dialogue.utterances} == {"Sam", "Alex"}
    for image in imported.dialogue.images:
        assert min(image.load().size) >= 192  # legible in the Space
    assert [i.kind for i in imported.ignored] in ([], ["system message"])


def test_script_rewrites_identical_files(tmp_path):
    subprocess.run([sys.executable, str(ROOT / "scripts" / "make_sample_exports.py"), "--out", str(tmp_path)],
                   check=True, capture_output=True)
    shipped = sorted(p.relative_to(EXPORTS) for p in EXPORTS.rglob("*") if p.is_file())
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file()) == shipped
    for rel in shipped:
        assert (tmp_path / rel).read_bytes() == (EXPORTS / rel).read_bytes(), rel
