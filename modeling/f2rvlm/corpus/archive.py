"""Many chat exports at once: a folder or a zip whose top-level entries are exports (a chat file,
an export's zip, or an unzipped export folder). Each entry is read with `f2rvlm.formats.import_chat`;
one that cannot be read is reported by name and skipped, the others are indexed."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field

from ..core.dialogue import Dialogue, DialogueError

#: Top-level files with these extensions are media beside the chats, not exports.
MEDIA_EXTENSIONS = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp", ".heic", ".mp4", ".mov", ".opus", ".ogg",
                    ".mp3", ".m4a", ".wav", ".pdf")

#: Refuse archives that would unpack to more than this (bytes).
MAX_ARCHIVE_BYTES = 4 << 30


@dataclass
class ArchiveReport:
    read: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (entry name, one-line reason)
    notes: list[tuple[str, str]] = field(default_factory=list)  # (entry name, what was left out)

    def summary(self) -> str:
        lines = [f"{len(self.read)} chat(s) read, {len(self.skipped)} skipped"]
        lines += [f"skipped {name}: {reason}" for name, reason in self.skipped]
        return "\n".join(lines)


def _extract(archive: str, into: str) -> None:
    with zipfile.ZipFile(archive) as z:
        members = z.infolist()
        if sum(m.file_size for m in members) > MAX_ARCHIVE_BYTES:
            raise DialogueError(f"{os.path.basename(archive)}: unpacks to more than {MAX_ARCHIVE_BYTES >> 30} GB")
        root = os.path.realpath(into)
        for member in members:
            name = member.filename.replace("\\", "/")
            if not name or name.startswith(("/", "__MACOSX")) or ".." in name.split("/"):
                continue
            target = os.path.realpath(os.path.join(into, name))
            if not target.startswith(root + os.sep):
                continue
            if member.is_dir():
                os.makedirs(target, exist_ok=True)
                continue
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with z.open(member) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)


def _exports(folder: str) -> list[str]:
    names = set(os.listdir(folder))
    return [os.path.join(folder, n) for n in sorted(names)
            if not n.startswith(".") and not n.lower().endswith(MEDIA_EXTENSIONS)
            # DiscordChatExporter writes an export's media to "<export>_Files" beside it
            and not (n.endswith("_Files") and n[: -len("_Files")] in names)]


@contextlib.contextmanager
def archive_entries(path: str) -> Iterator[tuple[str, list[str]]]:
    """Paths of the top-level entries of a folder or zip (a zip is unpacked to a temporary folder,
    removed afterwards), with the folder they sit in (where chats look for their images).
    Media files at the top level are not entries."""
    if os.path.isdir(path):
        yield path, _exports(path)
        return
    if not zipfile.is_zipfile(path):
        raise DialogueError(f"{path}: not a folder or a zip archive of chat exports")
    tmp = tempfile.mkdtemp(prefix="f2rvlm-archive-")
    try:
        _extract(path, tmp)
        root = tmp
        entries = _exports(tmp)
        if len(entries) == 1 and os.path.isdir(entries[0]):  # a zip holding one folder of exports
            root = entries[0]
            entries = _exports(root)
        yield root, entries
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def read_exports(paths: list[str], report: ArchiveReport, images_dir: str | None = None) -> Iterator[Dialogue]:
    """Dialogues of the given exports in order; a failing one goes to `report.skipped`. Each
    dialogue's id is its entry's file name (made unique with `#k`)."""
    from ..formats import import_chat

    used: set[str] = set()
    for path in paths:
        name = os.path.basename(os.path.normpath(path))
        try:
            imported = import_chat(path, images_dir=images_dir)
            dialogue = imported.dialogue
            if not len(dialogue):
                raise DialogueError("no messages")
        except (ValueError, OSError) as err:  # ChatImportError and DialogueError are ValueErrors
            report.skipped.append((name, " ".join(str(err).split())[:300]))
            continue
        did, k = name, 1
        while did in used:
            k += 1
            did = f"{name}#{k}"
        used.add(did)
        dialogue.dialogue_id = did
        if imported.ignored:
            report.notes.append((name, imported.summary().replace("\n", "; ")))
        report.read.append(name)
        yield dialogue


@contextlib.contextmanager
def open_archive(path: str, report: ArchiveReport, images_dir: str | None = None) -> Iterator[Iterator[Dialogue]]:
    with archive_entries(path) as (root, entries):
        yield read_exports(entries, report, images_dir or root)
