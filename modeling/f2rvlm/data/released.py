"""The released-format readers: ms-swift MLDR / WeChat records and raw WeChat annotations -> rows.

The one home of released-record parsing: `f2rvlm.formats.released` (uploads) calls it too."""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..core.dialogue import Dialogue, DialogueError, DialogueImage, Utterance
from ..core.protocol import (
    PromptParseError,
    parse_answer,
    parse_prompt,
    render_prompt,
    template_language,
)

# ----------------------------------------------------------------------------------------------
# Images
# ----------------------------------------------------------------------------------------------
from .io import _progress
from .schema import ConversionReport, DataError, _check_on_error, _load_json_list, make_row


def _resolve_image_path(path: str, roots: Sequence[str]) -> str | None:
    """An existing file for `path`: as given, or any trailing part of it under one of `roots`
    (released files may carry the authors' absolute paths)."""
    if os.path.isabs(path) and os.path.isfile(path):
        return path
    parts = [p for p in path.replace("\\", "/").split("/") if p and p != "."]
    for root in roots:
        for i in range(len(parts)):
            candidate = os.path.join(root, *parts[i:])
            if os.path.isfile(candidate):
                return candidate
    return None


def _read_image(value, roots: Sequence[str], where: dict, caption: str | None = None) -> DialogueImage:
    """A `DialogueImage` with the file's bytes embedded; `DataError` when missing or unreadable."""
    from PIL import Image, UnidentifiedImageError

    name = None
    if isinstance(value, Mapping):
        data, path = value.get("bytes"), value.get("path")
        if data is None and not path:
            raise DataError("malformed image", "an image object needs 'path' or 'bytes'", **where)
    elif isinstance(value, str) and value:
        data, path = None, value
    else:
        raise DataError("malformed image", f"expected a path or {{'path', 'bytes'}}, got {value!r}", **where)
    if isinstance(data, str):  # JSON files carry bytes as base64 text
        try:
            data = base64.b64decode(data, validate=True)
        except (ValueError, binascii.Error):
            raise DataError("malformed image", "'bytes' is text but not base64", **where) from None
    if data is None:
        resolved = _resolve_image_path(path, roots)
        if resolved is None:
            raise DataError("missing image", f"image file not found: {path}", **where)
        with open(resolved, "rb") as f:
            data = f.read()
    if path:
        name = os.path.basename(path)
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DataError("unreadable image", f"{path or '<bytes>'} is not a readable picture ({err})", **where) from None
    return DialogueImage(bytes(data), caption, name)


# ----------------------------------------------------------------------------------------------
# Released (ms-swift) records -> rows
# ----------------------------------------------------------------------------------------------
def _message(record: Mapping, role: str, where: dict) -> tuple[int, Any] | None:
    messages = record.get("messages")
    if not isinstance(messages, list):
        raise DataError("malformed record", "'messages' is missing or not a list", **where, field="messages")
    for i, message in enumerate(messages):
        if isinstance(message, Mapping) and message.get("role") == role:
            return i, message.get("content")
    return None


@dataclass
class ReleasedRecord:
    """The parts of one released (ms-swift) record that every reader needs, validated.

    Args:
        prompt: the user message text. prompt_field: where it sits (`messages[k].content`).
        parsed: `protocol.parse_prompt(prompt)` (template, query, lines with speaker/text/image ids).
        images: the record's raw image entries (paths or `{"path", "bytes"}`), index = image id.
    """

    prompt: str
    prompt_field: str
    parsed: Any
    images: list


def parse_released_record(record, where: dict) -> ReleasedRecord:
    """Validate one released record's prompt and image list (docs/protocol.md §4); `DataError`
    names the field. Shared by the dataset converter and the Space's upload reader."""
    if not isinstance(record, Mapping):
        raise DataError("malformed record", f"expected an object, got {type(record).__name__}", **where)
    found = _message(record, "user", where)
    if found is None:
        raise DataError("malformed record", "no user message", **where, field="messages")
    k, prompt = found
    prompt_field = f"messages[{k}].content"
    if not isinstance(prompt, str):
        raise DataError("malformed record", "the user content must be a string", **where, field=prompt_field)
    try:
        parsed = parse_prompt(prompt)
    except PromptParseError as err:
        reason = "prompt without a query" if "no query" in str(err) else "unparsable prompt"
        raise DataError(reason, str(err), **where, field=prompt_field) from None
    lines = parsed.lines
    if [line.utterance_id for line in lines] != list(range(len(lines))):
        raise DataError("unparsable prompt", "utterance ids are not 0..N-1 in order", **where, field=prompt_field)
    image_ids = [i for line in lines for i in line.image_ids]
    if image_ids != list(range(len(image_ids))):
        raise DataError("unparsable prompt", "image ids are not 0..M-1 in order of appearance", **where,
                        field=prompt_field)
    images = record.get("images") or []
    if not isinstance(images, list) or len(images) != len(image_ids):
        raise DataError("image count mismatch", f"the prompt has {len(image_ids)} image tags, the record "
                        f"has {len(images) if isinstance(images, list) else images!r} images", **where, field="images")
    return ReleasedRecord(prompt, prompt_field, parsed, images)


def convert_released_record(record, index: int, file: str, image_roots: Sequence[str] = (),
                            source: str = "mldr-release") -> dict:
    """One released record -> one row. The prompt must render back byte for byte."""
    where = {"file": file, "index": index}
    parts = parse_released_record(record, where)
    prompt, prompt_field, parsed, images = parts.prompt, parts.prompt_field, parts.parsed, parts.images
    lines = parsed.lines
    image_ids = [i for line in lines for i in line.image_ids]
    pictures = [_read_image(value, image_roots, {**where, "field": f"images[{j}]"}) for j, value in enumerate(images)]
    utterances = []
    for line in lines:
        positions = None if line.image_positions is None else list(line.image_positions)
        utterances.append(Utterance(line.speaker, line.text, [pictures[j] for j in line.image_ids],
                                    image_positions=positions))

    # Gold: the assistant answer, else `solution`; both present must agree.
    answers = []
    assistant = _message(record, "assistant", where)
    if assistant is not None:
        answers.append((f"messages[{assistant[0]}].content", assistant[1]))
    if record.get("solution") is not None:
        answers.append(("solution", record["solution"]))
    if not answers:
        raise DataError("unparsable answer", "no assistant message and no 'solution'", **where, field="solution")
    parsed_answers = []
    for name, text in answers:
        answer = parse_answer(text, "strict") if isinstance(text, str) else None
        if answer is None:
            raise DataError("unparsable answer", f"not a strict answer: {str(text)[:80]!r}", **where, field=name)
        parsed_answers.append((name, answer))
    (gold_field, gold), *others = parsed_answers
    for name, other in others:
        if (sorted(set(other.utterance_ids)), sorted(set(other.image_ids))) != (
                sorted(set(gold.utterance_ids)), sorted(set(gold.image_ids))):
            raise DataError("conflicting answers", f"{gold_field} and {name} name different ids", **where, field=name)
    bad_u = [i for i in gold.utterance_ids if not 0 <= i < len(lines)]
    bad_i = [i for i in gold.image_ids if not 0 <= i < len(image_ids)]
    if bad_u or bad_i:
        detail = (f"utterance ids {bad_u} (dialogue has {len(lines)} utterances)" if bad_u
                  else f"image ids {bad_i} (dialogue has {len(image_ids)} images)")
        raise DataError("gold id beyond the dialogue", detail, **where, field=gold_field)

    dialogue_text = prompt[prompt.find("<|utt_id_start|>"):]
    dialogue_id = record.get("dialogue_id") or (
        os.path.splitext(os.path.basename(file))[0] + "-" + hashlib.sha1(dialogue_text.encode()).hexdigest()[:12])
    dialogue = Dialogue(utterances, str(dialogue_id))
    try:
        dialogue.validate()
    except DialogueError as err:
        raise DataError("malformed dialogue", str(err), **where, field=prompt_field) from None
    if render_prompt(dialogue, parsed.query, parsed.template) != prompt:
        raise DataError("prompt does not round-trip", "rendering the parsed dialogue does not give the prompt back",
                        **where, field=prompt_field)
    return make_row(dialogue, parsed.query, gold.utterance_ids, gold.image_ids,
                    language=template_language(parsed.template), source=source, topics=[])


def read_released_file(path: str, image_roots: Sequence[str] = (), source: str = "mldr-release",
                       on_error: str = "raise", show_progress: bool = False) -> tuple[list[dict], ConversionReport]:
    """Rows of one released JSON file (MLDR or WeChat, ms-swift form) and the conversion report."""
    _check_on_error(on_error)
    records = _load_json_list(path)
    roots = [os.path.dirname(os.path.abspath(path)), *image_roots]
    report = ConversionReport(path, "records", total=len(records))
    rows = []
    for index, record in enumerate(_progress(records, f"convert {os.path.basename(path)}", show_progress)):
        try:
            rows.append(convert_released_record(record, index, path, roots, source))
        except DataError as err:
            if on_error == "raise":
                raise
            report.add_skip(err)
    report.converted = report.rows = len(rows)
    return rows, report


# ----------------------------------------------------------------------------------------------
# WeChat raw annotations -> rows
# ----------------------------------------------------------------------------------------------
def convert_wechat_raw_record(record, index: int, file: str, image_roots: Sequence[str] = (),
                              image_turn_gold: str = "image", language: str = "zh",
                              on_error: str = "raise", report: ConversionReport | None = None) -> list[dict]:
    """One raw annotation record (one dialogue, several queries) -> rows.

    An image is a turn of its own in the raw form (`utterance` is `[{"image_url", "caption"}]`):
    it becomes an utterance without text carrying that image, keeping one utterance per turn.
    A gold turn that is an image contributes its image ids (and, with
    `image_turn_gold="both"`, its utterance id too); a text turn contributes its utterance id.
    Speakers are renamed `user1`, `user2`, ... in order of appearance (docs/protocol.md §2).
    """
    where = {"file": file, "index": index}
    if not isinstance(record, Mapping):
        raise DataError("malformed record", f"expected an object, got {type(record).__name__}", **where)
    turns = record.get("dialogue")
    if not isinstance(turns, list) or not turns:
        raise DataError("malformed record", "'dialogue' is missing, empty or not a list", **where, field="dialogue")
    speakers: dict[str, str] = {}
    utterances, turn_position, turn_images = [], {}, []
    next_image = 0
    for t, turn in enumerate(turns):
        tf = f"dialogue[{t}]"
        if not isinstance(turn, Mapping) or "utterance" not in turn:
            raise DataError("malformed record", "a turn needs 'speaker' and 'utterance'", **where, field=tf)
        key = turn.get("utterance_idx", t)
        if key in turn_position:
            raise DataError("malformed record", f"utterance_idx {key!r} appears twice", **where, field=f"{tf}.utterance_idx")
        turn_position[key] = t
        speaker = speakers.setdefault(str(turn.get("speaker")), f"user{len(speakers) + 1}")
        content = turn["utterance"]
        if isinstance(content, str):
            utterances.append(Utterance(speaker, content))
            turn_images.append([])
            continue
        if not isinstance(content, list) or not content:
            raise DataError("malformed record", "'utterance' must be text or a list of images", **where,
                            field=f"{tf}.utterance")
        texts, pictures = [], []
        for j, item in enumerate(content):
            if isinstance(item, str):
                texts.append(item)
                continue
            if not isinstance(item, Mapping) or not item.get("image_url"):
                raise DataError("malformed image", "an image item needs 'image_url'", **where,
                                field=f"{tf}.utterance[{j}]")
            pictures.append(_read_image(item["image_url"], image_roots, {**where, "field": f"{tf}.utterance[{j}].image_url"},
                                        caption=item.get("caption")))
        utterances.append(Utterance(speaker, " ".join(texts), pictures))
        turn_images.append(list(range(next_image, next_image + len(pictures))))
        next_image += len(pictures)
    dialogue = Dialogue(utterances, str(record.get("dialogue_id") or f"{os.path.basename(file)}-{index}"))
    try:
        dialogue.validate()
    except DialogueError as err:
        raise DataError("malformed dialogue", str(err), **where, field="dialogue") from None

    queries, gold_turns = record.get("query_text"), record.get("gt_turns")
    if isinstance(queries, str):
        queries, gold_turns = [queries], [gold_turns] if gold_turns and not isinstance(gold_turns[0], list) else gold_turns
    if not isinstance(queries, list) or not isinstance(gold_turns, list) or len(queries) != len(gold_turns):
        raise DataError("malformed record", "'query_text' and 'gt_turns' must be lists of equal length", **where,
                        field="gt_turns")
    rows = []
    for q, (query, gold) in enumerate(zip(queries, gold_turns)):
        try:
            if not isinstance(query, str) or not query.strip():
                raise DataError("prompt without a query", "empty query", **where, field=f"query_text[{q}]")
            if not isinstance(gold, list):
                raise DataError("unparsable answer", f"expected a list of turn indices, got {gold!r}", **where,
                                field=f"gt_turns[{q}]")
            utts, imgs = set(), set()
            for turn_key in gold:
                if turn_key not in turn_position:
                    raise DataError("gold id beyond the dialogue", f"turn {turn_key!r} is not in the dialogue "
                                    f"({len(turns)} turns)", **where, field=f"gt_turns[{q}]")
                t = turn_position[turn_key]
                if turn_images[t]:
                    imgs.update(turn_images[t])
                    if image_turn_gold == "both" or utterances[t].text:
                        utts.add(t)
                else:
                    utts.add(t)
            rows.append(make_row(dialogue, query, utts, imgs, language=language, source="wechat-raw", topics=[]))
        except DataError as err:
            if on_error == "raise" or report is None:
                raise
            report.add_skip(err)
    return rows


def read_wechat_file(path: str, image_roots: Sequence[str] = (), on_error: str = "raise",
                     image_turn_gold: str = "image", show_progress: bool = False) -> tuple[list[dict], ConversionReport]:
    """Rows of a WeChat test file in either form (auto-detected per file from its first record)."""
    _check_on_error(on_error)
    if image_turn_gold not in ("image", "both"):
        raise ValueError(f"image_turn_gold must be 'image' or 'both', got {image_turn_gold!r}")
    records = _load_json_list(path)
    if records and isinstance(records[0], Mapping) and "messages" in records[0]:
        return read_released_file(path, image_roots, "wechat-release", on_error, show_progress)
    roots = [os.path.dirname(os.path.abspath(path)), *image_roots]
    report = ConversionReport(path, "queries")
    rows = []
    for index, record in enumerate(_progress(records, f"convert {os.path.basename(path)}", show_progress)):
        n_queries = len(record.get("query_text") or []) if isinstance(record, Mapping) else 1
        report.total += max(1, n_queries)
        try:
            rows += convert_wechat_raw_record(record, index, path, roots, image_turn_gold, on_error=on_error,
                                              report=report)
        except DataError as err:
            if on_error == "raise":
                raise
            for _ in range(max(1, n_queries)):  # the whole dialogue is unusable: all its queries
                report.add_skip(err)
    report.converted = report.rows = len(rows)
    return rows, report
