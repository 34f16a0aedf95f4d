"""What every reader shares: the import result, the ignored-items report, media lookup and
the builder that turns messages into a validated `Dialogue`.

Speakers are sanitised the same way for every format (`clean_speaker`): bidi marks are
dropped, ':' and line breaks become spaces, runs of spaces collapse, and an empty name
becomes "unknown" — `Dialogue` forbids ':' and line breaks in speakers because the prompt
line is `speaker: text`. Protocol tags and `<image>` are neutralised in text (`clean_text`)
so that a message cannot fake an utterance, an answer or an image slot in the prompt.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ..core.dialogue import Dialogue, DialogueError, DialogueImage, Utterance
from ..core.protocol import IMAGE_PLACEHOLDER, PROTOCOL_TAGS
from .safety import (
    ChatImportError,
    ImportLimits,
    SafeZip,
    image_problem,
    looks_like_image_name,
    safe_member_name,
)

_EXAMPLES_KEPT = 5


@dataclass
class IgnoredItem:
    """One kind of content left out of the dialogue, e.g. `IgnoredItem("sticker", 3, ["line 12"])`."""

    kind: str
    count: int = 0
    examples: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        where = (
            f" ({'; '.join(self.examples)}{', ...' if self.count > len(self.examples) else ''})"
            if self.examples
            else ""
        )
        return f"{self.count} x {self.kind}{where}"


@dataclass
class ChatImport:
    """An imported chat: the dialogue, what was left out, the detected format and any queries
    the file carries (released records and annotations)."""

    dialogue: Dialogue
    ignored: list[IgnoredItem]
    format: str
    queries: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line per ignored kind, for the Space ("" when nothing was left out)."""
        return "\n".join(f"ignored: {item}" for item in self.ignored)


# ----------------------------------------------------------------------------------------------
# Text clean-up shared by all readers
# ----------------------------------------------------------------------------------------------
_BIDI_MARKS = re.compile("[\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]")


def clean_speaker(name) -> str:
    name = _BIDI_MARKS.sub("", str(name or ""))
    name = re.sub(r"\s+", " ", re.sub(r"[:\r\n]", " ", name)).strip()
    return name or "unknown"


def clean_text(text: str) -> str:
    text = _BIDI_MARKS.sub("", text).replace("\r\n", "\n").replace("\r", "\n")
    for tag in PROTOCOL_TAGS:
        text = text.replace(tag, "")
    return text.replace(IMAGE_PLACEHOLDER, "[image]").strip()


# ----------------------------------------------------------------------------------------------
# Media: files shipped next to the chat (a folder, a zip, or an explicit images folder)
# ----------------------------------------------------------------------------------------------
class MediaFolder:
    """Files below one root folder: exact relative paths are checked directly; file names are
    searched for lazily (at most `max_members` files are listed, so a huge folder is cheap)."""

    def __init__(self, root: str | os.PathLike, limits: ImportLimits):
        self.root = Path(root).resolve()
        self.limits = limits
        self._listing: list[str] | None = None

    def has(self, name: str) -> bool:
        path = (self.root / name).resolve()
        return self.root in path.parents and path.is_file() and not (self.root / name).is_symlink()

    def listing(self) -> list[str]:
        if self._listing is None:
            self._listing = []
            for dirpath, dirnames, filenames in os.walk(self.root):
                dirnames.sort()
                for filename in sorted(filenames):
                    if len(self._listing) >= self.limits.max_members:
                        return self._listing
                    self._listing.append(Path(dirpath, filename).relative_to(self.root).as_posix())
        return self._listing

    def load(self, name: str):
        path = self.root / name
        if path.stat().st_size > self.limits.max_upload_bytes:
            raise ChatImportError(f"{name}: file is larger than the upload limit")
        return path


class MediaZip:
    """Members of a checked `SafeZip`; loaded as bytes, or extracted below `extract_to`."""

    def __init__(self, archive: SafeZip, extract_to: str | os.PathLike | None):
        self.archive = archive
        self.extract_to = extract_to

    def has(self, name: str) -> bool:
        return name in self.archive

    def listing(self) -> list[str]:
        return self.archive.names

    def load(self, name: str):
        if self.extract_to is None:
            return self.archive.read(name)
        return self.archive.extract(name, self.extract_to)


class MediaIndex:
    """Looks media up across sources (an explicit images folder first, then the upload)."""

    def __init__(self, sources=()):
        self.sources = [s for s in sources if s is not None]

    def find(self, name: str, folder: str = ""):
        """(source, member name) for `name` relative to `folder`, else by unique file name."""
        try:
            relative = name.replace("\\", "/")
            wanted = safe_member_name(f"{folder}/{relative}" if folder else relative)
        except ChatImportError:
            return None
        base = PurePosixPath(wanted).name
        for source in self.sources:
            if source.has(wanted):
                return source, wanted
        for source in self.sources:
            matches = [n for n in source.listing() if PurePosixPath(n).name == base]
            if len(matches) == 1:
                return source, matches[0]
        return None

    def image_names(self) -> list[tuple[object, str]]:
        """Every image file of the first source that has any, in name order (for order matching)."""
        for source in self.sources:
            names = sorted(n for n in source.listing() if looks_like_image_name(n))
            if names:
                return [(source, n) for n in names]
        return []


# ----------------------------------------------------------------------------------------------
# The builder every reader feeds
# ----------------------------------------------------------------------------------------------
class DialogueBuilder:
    """Collects turns and ignored items; `build` checks the turn limit and validates."""

    def __init__(self, source_name: str, limits: ImportLimits, media: MediaIndex | None = None):
        self.source_name = source_name
        self.limits = limits
        self.media = media or MediaIndex([])
        self.utterances: list[Utterance] = []
        self._ignored: dict[str, IgnoredItem] = {}
        self._used_paths: set[Path] = set()

    def ignore(self, kind: str, where: str = "") -> None:
        item = self._ignored.setdefault(kind, IgnoredItem(kind))
        item.count += 1
        if where and len(item.examples) < _EXAMPLES_KEPT:
            item.examples.append(where)

    def add(self, speaker, text: str, images=(), timestamp: str | None = None) -> None:
        """Append a turn; a turn with neither text nor images is skipped silently (its
        content, if any, was already reported through `ignore`)."""
        text = clean_text(text or "")
        images = list(images)
        if text or images:
            self.utterances.append(Utterance(clean_speaker(speaker), text, images, timestamp))

    def image(
        self, name: str, where: str, folder: str = "", caption: str | None = None
    ) -> DialogueImage | None:
        """The named media file as a checked image, or None after reporting why it is unusable."""
        found = self.media.find(name, folder)
        if found is None:
            self.ignore("missing image file", f"{where}: {name}")
            return None
        return self._checked_image(*found, where=where, caption=caption)

    def next_image_in_order(self, where: str, used: set) -> DialogueImage | None:
        """The first image file (by name) not yet used; for exports that only say "[image]"."""
        for source, name in self.media.image_names():
            if (id(source), name) not in used:
                used.add((id(source), name))
                return self._checked_image(source, name, where=where)
        self.ignore("image without its file", where)
        return None

    def _checked_image(
        self, source, name: str, where: str, caption: str | None = None
    ) -> DialogueImage | None:
        loaded = source.load(name)
        if isinstance(loaded, Path):
            if loaded in self._used_paths:  # Dialogue allows one turn per image file
                self.ignore("image attached twice", f"{where}: {name}")
                return None
            self._used_paths.add(loaded)
        problem = image_problem(loaded, PurePosixPath(name).name, self.limits)
        if problem:
            self.ignore("unreadable image", f"{where}: {problem}")
            return None
        return DialogueImage(str(loaded) if isinstance(loaded, Path) else loaded, caption)

    @property
    def ignored(self) -> list[IgnoredItem]:
        return list(self._ignored.values())

    def build(self, format_name: str, dialogue_id: str | None = None, queries=()) -> ChatImport:
        if len(self.utterances) > self.limits.max_turns:
            raise ChatImportError(
                f"{self.source_name}: chat has {len(self.utterances)} turns; the limit is {self.limits.max_turns}"
            )
        if not self.utterances:
            raise ChatImportError(f"{self.source_name}: no messages with text or images were found")
        dialogue = Dialogue(self.utterances, dialogue_id)
        try:
            dialogue.validate()
        except DialogueError as err:
            raise ChatImportError(f"{self.source_name}: {err}") from None
        return ChatImport(dialogue, self.ignored, format_name, list(queries))
