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

from ..dialogue import Dialogue, DialogueError, DialogueImage, Utterance
from ..protocol import IMAGE_PLACEHOLDER, PROTOCOL_TAGS
from .safety import ChatImportError, ImportLimits, SafeZip, image_problem, looks_like_image_name, safe_member_name

_EXAMPLES_KEPT = 5


@dataclass
class IgnoredItem:
    """One kind of content left out of the dialogue, e.g. `IgnoredItem("sticker", 3, ["line 12"])`."""

    kind: str
    count: int = 0
    examples: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        where = f" ({'; '.join(self.examples)}{', ...' if self.count > len(self.examples) else ''})" if self.examples else ""
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
    """Files below one root folder, looked up by relative path or by unique file name."""

    def __init__(self, root: str | os.PathLike, limits: ImportLimits):
        self.root = Path(root).resolve()
        self.limits = limits
        self.files: dict[str, Path] = {}
        for dirpath, _, filenames in os.walk(self.root):
            for filename in sorted(filenames):
                path = Path(dirpath, filename)
                if path.is_symlink():
                    continue
                self.files[path.relative_to(self.root).as_posix()] = path
                if len(self.files) > limits.max_members:
                    raise ChatImportError(f"{self.root.name}: folder has more than {limits.max_members} files")

    def load(self, name: str):
        path = self.files[name]
        if path.stat().st_size > self.limits.max_upload_bytes:
            raise ChatImportError(f"{name}: file is larger than the upload limit")
        return path


class MediaZip:
    """Members of a checked `SafeZip`; loaded as bytes, or extracted below `extract_to`."""

    def __init__(self, archive: SafeZip, extract_to: str | os.PathLike | None):
        self.archive = archive
        self.extract_to = extract_to
        self.files = {name: name for name in archive.names}

    def load(self, name: str):
        if self.extract_to is None:
            return self.archive.read(name)
        return self.archive.extract(name, self.extract_to)


class MediaIndex:
    """Looks media up across sources (an explicit images folder first, then the upload)."""

    def __init__(self, sources):
        self.sources = [s for s in sources if s is not None]

    def find(self, name: str, folder: str = ""):
        """(source, member name) for `name` relative to `folder`, else by file name; None if absent."""
        try:
            wanted = safe_member_name(str(PurePosixPath(folder) / name.replace("\\", "/")) if folder else name)
        except ChatImportError:
            return None
        base = PurePosixPath(wanted).name
        for source in self.sources:
            if wanted in source.files:
                return source, wanted
            matches = [n for n in source.files if PurePosixPath(n).name == base]
            if len(matches) == 1:
                return source, matches[0]
        return None

    def image_names(self) -> list[tuple[object, str]]:
        """Every image file of the first source that has any, in name order (for order matching)."""
        for source in self.sources:
            names = sorted(n for n in source.files if looks_like_image_name(n))
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

    def image(self, name: str, where: str, folder: str = "", caption: str | None = None) -> DialogueImage | None:
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

    def _checked_image(self, source, name: str, where: str, caption: str | None = None) -> DialogueImage | None:
        loaded = source.load(name)
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
                f"{self.source_name}: chat has {len(self.utterances)} turns; the limit is {self.limits.max_turns}")
        if not self.utterances:
            raise ChatImportError(f"{self.source_name}: no messages with text or images were found")
        dialogue = Dialogue(self.utterances, dialogue_id)
        try:
            dialogue.validate()
        except DialogueError as err:
            raise ChatImportError(f"{self.source_name}: {err}") from None
        return ChatImport(dialogue, self.ignored, format_name, list(queries))
