"""Released data files and our own JSON: ms-swift records, raw annotations, dialogue JSON.

- Released MLDR / WeChat test records (docs/protocol.md §4): parsed and validated by
  `data.released.parse_released_record` (the dataset converter's own parser); image id k is `images[k]`. A file may
  hold one record or a list; `record=` picks one. The record's query is returned in
  `ChatImport.queries`.
- Raw annotations: `{"dialogue": [{"speaker", "utterance": str | [{"image_url", "caption"}]}],
  "query_text": [...]}`; an image entry is a turn of its own, as in the annotation.
- Dialogue JSON: `Dialogue.from_dict` (`{"utterances": [...]}`).

Image files are looked up only inside the upload, its folder and `images_dir` (never at an
arbitrary absolute path: a record must not make the Space read another file on the server);
each is checked like any chat image. A missing or unreadable image is left out and reported;
a turn left without text or images keeps the text "[image]" so that utterance ids stay those
of the file. Image ids then no longer match the record's gold answer: pass `images_dir`.
"""

from __future__ import annotations

from ..core.dialogue import Dialogue, DialogueError, DialogueImage
from ..data.released import parse_released_record
from ..data.schema import DataError
from .base import ChatImport, DialogueBuilder, Fields, as_text, json_type
from .safety import ChatImportError


def is_released_record(item: dict) -> bool:
    messages = item.get("messages")
    return isinstance(messages, list) and any(isinstance(m, dict) and "role" in m for m in messages)


def _pick_record(payload, record: int, builder: DialogueBuilder) -> dict:
    if isinstance(payload, dict):
        return payload
    if not -len(payload) <= record < len(payload):
        raise ChatImportError(
            f"{builder.source_name}: record {record} requested; the file has {len(payload)}"
        )
    item = payload[record]
    if not isinstance(item, dict):
        raise ChatImportError(f"{builder.source_name}: record {record} is not an object")
    return item


def _record_where(payload, record: int) -> str:
    return f"[{record}]" if isinstance(payload, list) else ""


def _image_ref(builder: DialogueBuilder, value, folder: str, where: str) -> DialogueImage | None:
    """The image as found in the upload or `images_dir` and checked, else None (reported)."""
    caption = None
    if isinstance(value, dict):
        entry = Fields(value, where, builder)
        caption = entry.text("caption", None)
        value = entry.text("path") or entry.text("image_url")
    if not isinstance(value, str) or not value:
        raise ChatImportError(f"{builder.source_name}: {where}: image needs a path")
    return builder.image(value.lstrip("/"), where, folder, caption)


def _add_keeping_turn(builder: DialogueBuilder, speaker, text: str, images, timestamp=None) -> None:
    """Add a turn; one whose images all went missing keeps "[image]" so ids stay aligned."""
    images = [image for image in images if image is not None]
    builder.add(speaker, text if (text.strip() or images) else "[image]", images, timestamp)


def read_released(
    payload, builder: DialogueBuilder, *, folder: str = "", record: int = 0, **_
) -> ChatImport:
    item = _pick_record(payload, record, builder)
    where = _record_where(payload, record)
    try:  # the one released-record parser (data.released), shared with the dataset converter
        parts = parse_released_record(item, {"file": builder.source_name, "index": record})
    except DataError as err:
        raise ChatImportError(str(err)) from None
    except (TypeError, AttributeError, KeyError, IndexError, ValueError) as err:  # a type it does not check
        builder.fail(f"record {record}", f"malformed record ({type(err).__name__})")
    parsed, images = parts.parsed, parts.images
    for line in parsed.lines:
        attached = [_image_ref(builder, images[k], folder, f"{where}.images[{k}]" if where else f"images[{k}]") for k in line.image_ids]
        _add_keeping_turn(builder, line.speaker, line.text, attached)
    dialogue_id = Fields(item, where, builder).scalar("dialogue_id")
    return builder.build("released", dialogue_id, [parsed.query])


def read_annotation(
    payload, builder: DialogueBuilder, *, folder: str = "", record: int = 0, **_
) -> ChatImport:
    item = Fields(_pick_record(payload, record, builder), _record_where(payload, record), builder)
    if not isinstance(item.get("dialogue"), list):
        builder.fail(item.path("dialogue"), f"expected an array of turns, found {json_type(item.get('dialogue'))}")
    for turn in item.objects("dialogue"):
        content = turn.get("utterance")
        if isinstance(content, list):
            images = [_image_ref(builder, entry, folder, f"{turn.path('utterance')}[{k}]")
                      for k, entry in enumerate(content)]
            _add_keeping_turn(builder, turn.text("speaker"), "", images)
        else:
            builder.add(turn.text("speaker"), turn.text("utterance"))
    queries = item.get("query_text")
    if isinstance(queries, str) or queries is None:
        queries = [queries] if queries else []
    elif isinstance(queries, list):
        queries = [as_text(q, item.path(f"query_text[{k}]"), builder) for k, q in enumerate(queries)]
    else:
        builder.fail(item.path("query_text"), f"expected a string or an array, found {json_type(queries)}")
    return builder.build("annotation", item.scalar("dialogue_id"), queries)


def _check_dialogue_types(payload, builder: DialogueBuilder) -> None:
    """The types `Dialogue.from_dict` takes on trust (ids, timestamps, captions) checked first."""
    root = Fields(payload, "", builder)
    root.scalar("dialogue_id")
    for utterance in root.objects("utterances"):
        utterance.scalar("timestamp")
        utterance.text("topic")
        for k, image in enumerate(utterance.array("images")):
            if isinstance(image, dict):
                entry = Fields(image, utterance.path(f"images[{k}]"), builder)
                entry.text("path"), entry.text("caption")
                if not isinstance(image.get("bytes"), (str, type(None))):
                    builder.fail(entry.path("bytes"), f"expected a string, found {json_type(image.get('bytes'))}")
            elif not isinstance(image, str):
                builder.fail(utterance.path(f"images[{k}]"), f"expected a path or an object, found {json_type(image)}")


def read_dialogue_json(payload, builder: DialogueBuilder, *, folder: str = "", **_) -> ChatImport:
    _check_dialogue_types(payload, builder)
    try:
        dialogue = Dialogue.from_dict(payload)
    except DialogueError as err:
        raise ChatImportError(f"{builder.source_name}: {err}") from None
    for i, utterance in enumerate(dialogue.utterances):
        images = [
            _image_ref(
                builder, {"path": img.path, "caption": img.caption}, folder, f"utterances[{i}]"
            )
            if img.path
            else img
            for img in utterance.images
        ]
        timestamp = None if utterance.timestamp is None else str(utterance.timestamp)
        _add_keeping_turn(builder, utterance.speaker, utterance.text, images, timestamp)
    return builder.build("dialogue-json", None if dialogue.dialogue_id is None else str(dialogue.dialogue_id))
