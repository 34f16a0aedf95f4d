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
    DamagedMemberError,
    ImportLimits,
    MediaSkipped,
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
    #: The text encoding the chat file was read in ("utf-8" unless it was detected otherwise).
    encoding: str = "utf-8"

    def summary(self) -> str:
        """One line per ignored kind, for the Space ("" when nothing was left out), after a line
        naming the encoding when the file was not UTF-8."""
        lines = [] if self.encoding == "utf-8" else [f"read as {self.encoding} (the file is not UTF-8)"]
        return "\n".join(lines + [f"ignored: {item}" for item in self.ignored])


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
# Type checks for JSON exports: a wrong type is a `ChatImportError` naming the field
# ----------------------------------------------------------------------------------------------
_JSON_TYPE_NAMES = {dict: "an object", list: "an array", str: "a string", bool: "true/false", int: "a number",
                    float: "a number", type(None): "null"}
#: Field values longer than this are cut in messages.
_SHOWN_CHARS = 60


def json_type(value) -> str:
    """'an object', 'a string', ... for a parsed JSON value (for error messages)."""
    return _JSON_TYPE_NAMES.get(type(value), type(value).__name__)


def shown(value) -> str:
    """`repr(value)`, cut to a readable length for an error message."""
    text = repr(value)
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 1] + "…"


def _is_scalar(value) -> bool:
    return isinstance(value, (str, int, float)) and not isinstance(value, bool)


def as_text(value, where: str, builder: DialogueBuilder, default: str = "") -> str:
    """A JSON value that should be text: a string, a number (as its digits) or null (`default`);
    anything else is a `ChatImportError` naming `where`."""
    if value is None:
        return default
    if isinstance(value, str):
        return value
    if _is_scalar(value):
        return str(value)
    builder.fail(where, f"expected a string, found {json_type(value)}")


class Fields:
    """Typed access to one JSON object of an export, failing with the file and the field path.

    >>> from f2rvlm.formats.safety import DEFAULT_LIMITS
    >>> f = Fields({"id": 3, "text": ["x"]}, "messages[2]", DialogueBuilder("result.json", DEFAULT_LIMITS))
    >>> f.scalar("id"), f.text("missing")
    ('3', '')
    >>> f.text("text")
    Traceback (most recent call last):
    ...
    f2rvlm.formats.safety.ChatImportError: result.json: messages[2].text: expected a string, found an array
    """

    def __init__(self, value, where: str, builder: DialogueBuilder):
        self.where, self.builder = where, builder
        if not isinstance(value, dict):
            builder.fail(where, f"expected an object, found {json_type(value)}")
        self.value = value

    def path(self, key) -> str:
        return f"{self.where}.{key}" if self.where else str(key)

    def get(self, key, default=None):
        return self.value.get(key, default)

    def text(self, key, default: str = "") -> str:
        """A string field; a number is accepted as its digits; null or missing gives `default`."""
        return as_text(self.value.get(key), self.path(key), self.builder, default)

    def scalar(self, key) -> str | None:
        """An id-like field (string or number) as a string, or None."""
        value = self.value.get(key)
        return None if value is None else self.text(key)

    def array(self, key) -> list:
        """A list field; null or missing gives []."""
        value = self.value.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            self.builder.fail(self.path(key), f"expected an array, found {json_type(value)}")
        return value

    def object(self, key) -> Fields | None:
        value = self.value.get(key)
        return None if value is None else Fields(value, self.path(key), self.builder)

    def objects(self, key) -> list[Fields]:
        """A list of objects; every item must be an object."""
        return [Fields(item, f"{self.path(key)}[{i}]", self.builder) for i, item in enumerate(self.array(key))]


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
        try:  # a name longer than the file system allows, or a component that is a file
            path = (self.root / name).resolve()
            return self.root in path.parents and path.is_file() and not (self.root / name).is_symlink()
        except (OSError, ValueError, RuntimeError):
            return False

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
        try:
            size = path.stat().st_size
        except (OSError, ValueError) as err:
            raise DamagedMemberError(f"{shown(name)}: cannot be read ({type(err).__name__})") from None
        if size > self.limits.max_upload_bytes:
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

    def fail(self, where: str, problem: str):
        """Raise the readers' error: `{file}: {where}: {problem}`."""
        raise ChatImportError(f"{self.source_name}: {where}: {problem}" if where else f"{self.source_name}: {problem}")

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
        try:
            loaded = source.load(name)
        except MediaSkipped as err:  # damaged, or over the disk cap: left out, reported
            self.ignore(err.kind, f"{where}: {err}")
            return None
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
