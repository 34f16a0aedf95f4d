"""Dialogues: utterances with speakers, text and attached images; validation with clear errors.

Ids follow docs/protocol.md §2: utterance ids are positions 0..N-1 (plus `id_offset` for a window of
a longer dialogue); image ids are 0..M-1 in order of appearance across the dialogue. This module
imports the standard library (and Pillow lazily), so it travels with the Hub remote code.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .protocol import LineSpec, check_image_positions


class DialogueError(ValueError):
    """A dialogue (or a file describing one) is malformed; the message names what and where."""


@dataclass
class DialogueImage:
    """An image attached to an utterance: a file path, encoded bytes or a PIL image."""

    source: Any
    caption: str | None = None
    #: File name kept for bytes/PIL sources (a dataset row's `path`), so rows round-trip.
    name: str | None = None

    def __post_init__(self):
        if not isinstance(self.source, (str, os.PathLike, bytes, bytearray)) and not _is_pil(self.source):
            raise DialogueError(f"image must be a path, bytes or a PIL image, got {type(self.source).__name__}")

    @property
    def path(self) -> str | None:
        if isinstance(self.source, (str, os.PathLike)):
            return os.fspath(self.source)
        return getattr(self.source, "filename", None) or None if _is_pil(self.source) else None

    def load(self):
        """The image as an RGB PIL image; `DialogueError` naming the file when it cannot be read."""
        from PIL import Image, UnidentifiedImageError

        if _is_pil(self.source):
            return self.source.convert("RGB") if self.source.mode != "RGB" else self.source
        what = os.fspath(self.source) if isinstance(self.source, (str, os.PathLike)) else f"<{len(self.source)} bytes>"
        try:
            data = bytes(self.source) if isinstance(self.source, (bytes, bytearray)) else None
            if data is None:
                with open(self.source, "rb") as f:
                    data = f.read()
            image = Image.open(io.BytesIO(data))
            image.load()
        except FileNotFoundError:
            raise DialogueError(f"image file not found: {what}") from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
            raise DialogueError(f"image is not a readable picture: {what} ({err})") from None
        return image.convert("RGB")

    def to_bytes(self) -> bytes:
        """Encoded bytes (the file's own bytes when possible, else PNG)."""
        if isinstance(self.source, (bytes, bytearray)):
            return bytes(self.source)
        if isinstance(self.source, (str, os.PathLike)):
            try:
                with open(self.source, "rb") as f:
                    return f.read()
            except OSError as err:
                raise DialogueError(f"image file cannot be read: {os.fspath(self.source)} ({err.strerror})") from None
        buffer = io.BytesIO()
        self.source.save(buffer, format="PNG")
        return buffer.getvalue()


def _is_pil(obj) -> bool:
    return type(obj).__module__.startswith("PIL.") and hasattr(obj, "convert")


@dataclass
class Utterance:
    speaker: str
    text: str = ""
    images: list[DialogueImage] = field(default_factory=list)
    timestamp: str | None = None
    #: Topic label ("" when unknown); synthetic data fills it for the auxiliary topic head.
    topic: str = ""
    #: Where each image sits in `text`: one character offset per image, non-decreasing (several
    #: images may share one). None: the default layout, text first and then the images, one space
    #: apart. Released prompts put the image tags anywhere (docs/protocol.md §2); their utterances
    #: keep `text` without the tags plus these offsets, so they render back byte for byte.
    image_positions: list[int] | None = None


@dataclass
class Dialogue:
    """A multimodal dialogue.

    >>> d = Dialogue.from_dict({"utterances": [{"speaker": "user1", "text": "hi"},
    ...                                        {"speaker": "user2", "text": "look", "images": ["a.png"]}]})
    >>> len(d), d.num_images, d.image_hosts
    (2, 1, [1])
    """

    utterances: list[Utterance]
    dialogue_id: str | None = None
    #: Id of the first utterance: 0 for a whole dialogue, the window start for a window.
    id_offset: int = 0

    # -- views ------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.utterances)

    @property
    def num_turns(self) -> int:
        return len(self.utterances)

    @property
    def utterance_ids(self) -> list[int]:
        return list(range(self.id_offset, self.id_offset + len(self.utterances)))

    @property
    def images(self) -> list[DialogueImage]:
        """All images in id order."""
        return [image for utterance in self.utterances for image in utterance.images]

    @property
    def num_images(self) -> int:
        return sum(len(u.images) for u in self.utterances)

    @property
    def image_hosts(self) -> list[int]:
        """For each image id, the id of the utterance carrying it."""
        return [self.id_offset + i for i, u in enumerate(self.utterances) for _ in u.images]

    def line_specs(self) -> Iterator[LineSpec]:
        """The protocol view: (utterance id, speaker, text, image ids) per utterance."""
        next_image = 0
        for i, utterance in enumerate(self.utterances):
            ids = tuple(range(next_image, next_image + len(utterance.images)))
            next_image += len(utterance.images)
            positions = getattr(utterance, "image_positions", None)
            yield LineSpec(self.id_offset + i, utterance.speaker, utterance.text, ids,
                           None if positions is None else tuple(positions))

    def window(self, start: int, end: int) -> tuple[Dialogue, int]:
        """Utterances [start, end) as a dialogue keeping global utterance ids.

        Returns the window and the global id of its first image: image ids restart at 0 inside a
        window (docs/protocol.md §8) and are mapped back by adding that offset.
        """
        start, end = max(0, start), min(len(self.utterances), end)
        image_offset = sum(len(u.images) for u in self.utterances[:start])
        return Dialogue(self.utterances[start:end], self.dialogue_id, self.id_offset + start), image_offset

    # -- validation -------------------------------------------------------------------------
    def validate(self, check_images: bool = False) -> Dialogue:
        """Raise `DialogueError` on an empty dialogue, a bad speaker, a re-used image, and (with
        `check_images`) an image that cannot be read."""
        if not self.utterances:
            raise DialogueError("dialogue has no utterances")
        seen: dict[int, int] = {}
        for i, utterance in enumerate(self.utterances):
            where = f"utterance {self.id_offset + i}"
            if not isinstance(utterance.speaker, str) or not utterance.speaker.strip():
                raise DialogueError(f"{where}: speaker must be a non-empty string")
            if ":" in utterance.speaker or "\n" in utterance.speaker:
                raise DialogueError(f"{where}: speaker {utterance.speaker!r} must not contain ':' or a line break")
            if not isinstance(utterance.text, str):
                raise DialogueError(f"{where}: text must be a string")
            for image in utterance.images:
                key = id(image.source) if not isinstance(image.source, (str, os.PathLike)) else hash(os.fspath(image.source))
                if key in seen and not isinstance(image.source, (bytes, bytearray)):
                    raise DialogueError(f"{where}: image {image.path or '<object>'} is already attached to utterance {seen[key]}")
                seen[key] = self.id_offset + i
                if check_images:
                    try:
                        image.load()
                    except DialogueError as err:
                        raise DialogueError(f"{where}: {err}") from None
            if not utterance.text and not utterance.images:
                raise DialogueError(f"{where}: has neither text nor images")
            try:
                check_image_positions(utterance.text, len(utterance.images), utterance.image_positions)
            except ValueError as err:
                raise DialogueError(f"{where}: {err}") from None
        return self

    # -- plain data -------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Mapping, base_dir: str | None = None) -> Dialogue:
        """Build from `{"utterances": [{"speaker", "text", "images": [path | {"path"|"bytes", "caption"?}]}]}`.

        Optional `"id"` fields on utterances must be 0..N-1 in order. Relative image paths are
        resolved against `base_dir` when given.
        """
        if not isinstance(data, Mapping):
            raise DialogueError(f"dialogue must be an object with 'utterances', got {type(data).__name__}")
        raw = data.get("utterances")
        if not isinstance(raw, list):
            raise DialogueError("dialogue field 'utterances' is missing or not a list")
        utterances = []
        for i, item in enumerate(raw):
            if not isinstance(item, Mapping):
                raise DialogueError(f"utterances[{i}] must be an object")
            if "id" in item and item["id"] != i:
                raise DialogueError(f"utterances[{i}]: id {item['id']!r} breaks the order 0..N-1 (expected {i})")
            if "speaker" not in item:
                raise DialogueError(f"utterances[{i}]: field 'speaker' is missing")
            text = item.get("text", "")
            if text is None:
                text = ""
            images = item.get("images") or []
            if not isinstance(images, list):
                raise DialogueError(f"utterances[{i}].images must be a list")
            positions = item.get("image_positions")
            if positions is not None and not isinstance(positions, list):
                raise DialogueError(f"utterances[{i}].image_positions must be a list of offsets")
            utterances.append(Utterance(
                speaker=item["speaker"], text=text,
                images=[_image_from_plain(img, f"utterances[{i}].images[{j}]", base_dir) for j, img in enumerate(images)],
                timestamp=item.get("timestamp"), topic=item.get("topic") or "", image_positions=positions,
            ))
        dialogue = cls(utterances, data.get("dialogue_id"))
        return dialogue.validate()

    def to_dict(self) -> dict:
        out: dict[str, Any] = {"utterances": []}
        if self.dialogue_id is not None:
            out["dialogue_id"] = self.dialogue_id
        for u in self.utterances:
            item: dict[str, Any] = {"speaker": u.speaker, "text": u.text}
            if u.images:
                item["images"] = [_image_to_plain(img) for img in u.images]
            if u.timestamp is not None:
                item["timestamp"] = u.timestamp
            if u.topic:
                item["topic"] = u.topic
            if u.image_positions is not None:
                item["image_positions"] = list(u.image_positions)
            out["utterances"].append(item)
        return out

    # -- dataset rows (hub_datasets schema) ---------------------------------------------------
    @classmethod
    def from_row(cls, row: Mapping) -> Dialogue:
        """Build from a dataset row (`utterances` with `image_ids`, `images`, `image_captions`).

        Images may be decoded (PIL) or raw (`{"bytes", "path"}`), as `datasets` gives them. An
        utterance's `image_positions` (absent in older rows) empty or missing is the default layout.
        """
        images = list(row.get("images") or [])
        captions = list(row.get("image_captions") or [None] * len(images))
        used: set[int] = set()
        utterances = []
        for i, item in enumerate(row["utterances"]):
            if item.get("id", i) != i:
                raise DialogueError(f"row {row.get('dialogue_id')}: utterances[{i}] has id {item.get('id')}")
            attached = []
            for k in item.get("image_ids") or []:
                if not 0 <= k < len(images):
                    raise DialogueError(f"row {row.get('dialogue_id')}: utterance {i} references image {k}, row has {len(images)}")
                if k in used:
                    raise DialogueError(f"row {row.get('dialogue_id')}: image {k} is attached twice")
                used.add(k)
                attached.append(DialogueImage(
                    _image_source(images[k]), captions[k] if k < len(captions) else None, _image_name(images[k])
                ))
            positions = item.get("image_positions")
            utterances.append(Utterance(
                item["speaker"], item.get("text") or "", attached, item.get("timestamp"), item.get("topic") or "",
                list(positions) if positions and attached else None,
            ))
        dialogue = cls(utterances, row.get("dialogue_id"))
        for i, utterance in enumerate(utterances):
            try:
                check_image_positions(utterance.text, len(utterance.images), utterance.image_positions)
            except ValueError as err:
                raise DialogueError(f"row {row.get('dialogue_id')}: utterance {i}: {err}") from None
        if [k for spec in dialogue.line_specs() for k in spec.image_ids] != [
            k for item in row["utterances"] for k in (item.get("image_ids") or [])
        ] or len(used) != len(images):
            raise DialogueError(f"row {row.get('dialogue_id')}: image ids must be 0..M-1 in order of appearance")
        return dialogue

    def to_row(self) -> dict:
        """The dialogue columns of a dataset row; images as `{"bytes", "path"}` dicts (`image_positions`
        is `[]` for the default layout)."""
        line_specs = list(self.line_specs())
        return {
            "dialogue_id": self.dialogue_id,
            "utterances": [
                {"id": s.utterance_id, "speaker": s.speaker, "text": s.text, "image_ids": list(s.image_ids),
                 "topic": u.topic or "", "image_positions": list(s.image_positions or [])}
                for s, u in zip(line_specs, self.utterances)
            ],
            "images": [
                {"bytes": img.to_bytes(), "path": os.path.basename(img.path) if img.path else img.name}
                for img in self.images
            ],
            "image_captions": [img.caption for img in self.images],
            "num_turns": len(self.utterances),
        }


def _image_from_plain(value, where: str, base_dir: str | None) -> DialogueImage:
    caption = None
    if isinstance(value, Mapping):
        caption = value.get("caption")
        if value.get("bytes") is not None:
            value = value["bytes"]
        elif value.get("path"):
            value = value["path"]
        else:
            raise DialogueError(f"{where}: an image object needs 'path' or 'bytes'")
    if isinstance(value, str):
        if not value:
            raise DialogueError(f"{where}: empty image path")
        if base_dir and not os.path.isabs(value):
            value = os.path.join(base_dir, value)
    try:
        return DialogueImage(value, caption)
    except DialogueError as err:
        raise DialogueError(f"{where}: {err}") from None


def _image_to_plain(image: DialogueImage):
    source = image.source
    if _is_pil(source):
        source = image.to_bytes()
    if isinstance(source, (bytes, bytearray)):
        plain: dict[str, Any] = {"bytes": bytes(source)}
    else:
        plain = {"path": os.fspath(source)}
    if image.caption is not None:
        plain["caption"] = image.caption
    return plain if (image.caption is not None or "bytes" in plain) else plain["path"]


def _image_name(value) -> str | None:
    if isinstance(value, Mapping) and value.get("bytes") is not None and value.get("path"):
        return os.path.basename(value["path"])
    return None


def _image_source(value):
    if isinstance(value, Mapping):
        if value.get("bytes") is not None:
            return value["bytes"]
        return value.get("path")
    return value


def as_dialogue(value) -> Dialogue:
    """Accept a `Dialogue`, its plain-data form, or a sequence of utterance dicts.

    Duck-typed on purpose: Hub remote code loads the modeling and processing files as separate
    module copies, so a `Dialogue` made by one copy is not an instance of the other's class.
    """
    if isinstance(value, Dialogue) or (hasattr(value, "line_specs") and hasattr(value, "utterances")):
        return value
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        value = {"utterances": list(value)}
    return Dialogue.from_dict(value)
