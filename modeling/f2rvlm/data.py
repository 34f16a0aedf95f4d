"""Datasets: the row schema, Parquet folders with embedded images, dataset cards, converters.

One row per (dialogue, query) pair, columns as docs/CONTRACTS.md says. A built folder is

    OUT/README.md                       card: YAML `configs:` + features + statistics + citation
    OUT/data/<split>-00000-of-0000N.parquet

and loads with `datasets.load_dataset(OUT)` or `load_dataset(OUT, <config>, split=...)`.

Sources:
- `build_synthetic(out, num_dialogues, seed, language)`: synthetic MLDR (`f2rvlm.synthetic`).
- `build_from_release(release_dir, out)`: the released MLDR files (ms-swift JSON). Every prompt
  is parsed back with `protocol.parse_prompt` and must render back byte for byte.
- `build_wechat(source, out)`: the WeChat test set, released form or raw annotation form.

Bad input raises `DataError` naming the file, record index and field. With `on_error="skip"` the
bad records are left out, counted by reason, printed and written into the card.
Output folders are written next to OUT under a temporary name and renamed into place.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import io
import json
import os
import shutil
import statistics
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .dialogue import Dialogue, DialogueError, DialogueImage, Utterance
from .protocol import (
    PromptParseError,
    contiguous_spans,
    parse_answer,
    parse_prompt,
    render_answer,
    render_prompt,
    template_language,
)

SYNTHETIC_SPLITS = ("train_sft", "train_grpo", "validation", "test_heldout")
RELEASE_SPLITS = ("train_sft", "train_grpo", "validation")
#: Released file name of each split (PROTOCOL.md §4).
RELEASE_FILES = {
    "train_sft": "MLDR_train_cold_start.json",
    "train_grpo": "MLDR_train_GRPO.json",
    "validation": "MLDR_val.json",
}
COLUMNS = (
    "dialogue_id", "query", "language", "utterances", "images", "image_captions",
    "gold_utterance_ids", "gold_image_ids", "solution", "num_turns", "topics", "query_topic",
    "source", "difficulty",
)
ON_ERROR = ("raise", "skip")
CITATION = """@inproceedings{f2rvlm2026,
  title     = {F2RVLM: Boosting Fine-grained Fragment Retrieval for Multi-Modal Long-form Dialogue with Vision Language Model},
  booktitle = {Proceedings of the AAAI Conference on Artificial Intelligence (AAAI-26)},
  year      = {2026},
  eprint    = {2508.17714},
  archivePrefix = {arXiv},
  url       = {https://arxiv.org/abs/2508.17714}
}"""
STATS_BEGIN, STATS_END = "<!-- statistics:begin -->", "<!-- statistics:end -->"


# ----------------------------------------------------------------------------------------------
# Schema and rows
# ----------------------------------------------------------------------------------------------
def features():
    """The `datasets.Features` of a row (docs/CONTRACTS.md)."""
    from datasets import Features, Image, List, Value

    return Features({
        "dialogue_id": Value("string"),
        "query": Value("string"),
        "language": Value("string"),
        "utterances": List({
            "id": Value("int32"), "speaker": Value("string"), "text": Value("string"),
            "image_ids": List(Value("int32")), "topic": Value("string"),
        }),
        "images": List(Image()),
        "image_captions": List(Value("string")),
        "gold_utterance_ids": List(Value("int32")),
        "gold_image_ids": List(Value("int32")),
        "solution": Value("string"),
        "num_turns": Value("int32"),
        "topics": List(Value("string")),
        "query_topic": Value("string"),
        "source": Value("string"),
        "difficulty": Value("string"),
    })


def make_row(
    dialogue: Dialogue, query: str, utterance_ids: Iterable[int], image_ids: Iterable[int], *,
    language: str, source: str, topics: Sequence[str] | None = None, query_topic: str = "",
    difficulty: str | None = None,
) -> dict:
    """A dataset row for one (dialogue, query) pair; gold ids are sorted and de-duplicated."""
    utts, imgs = sorted({int(i) for i in utterance_ids}), sorted({int(i) for i in image_ids})
    if utts and not 0 <= utts[0] <= utts[-1] < len(dialogue):
        raise DialogueError(f"gold utterance ids {utts} are outside the dialogue (0..{len(dialogue) - 1})")
    if imgs and not 0 <= imgs[0] <= imgs[-1] < dialogue.num_images:
        raise DialogueError(f"gold image ids {imgs} are outside the dialogue's {dialogue.num_images} images")
    row = dialogue.to_row()
    if topics is None:
        topics = list(dict.fromkeys(u.topic for u in dialogue.utterances if u.topic))
    row.update(
        query=query, language=language, gold_utterance_ids=utts, gold_image_ids=imgs,
        solution=render_answer(utts, imgs), topics=list(topics), query_topic=query_topic or "",
        source=source, difficulty=difficulty,
    )
    return {name: row[name] for name in COLUMNS}


def row_example(row: Mapping) -> tuple[Dialogue, str, list[int], list[int]]:
    """`(dialogue, query, gold_utterance_ids, gold_image_ids)` of a row."""
    return Dialogue.from_row(row), row["query"], list(row["gold_utterance_ids"]), list(row["gold_image_ids"])


def synthetic_rows(samples) -> list[dict]:
    """Rows of `f2rvlm.synthetic.SyntheticSample`s (one per query)."""
    rows = []
    for sample in samples:
        for q in sample.queries:
            rows.append(make_row(
                sample.dialogue, q.query, q.utterance_ids, q.image_ids, language=sample.language,
                source="synthetic", topics=sample.topics, query_topic=q.query_topic,
            ))
    return rows


# ----------------------------------------------------------------------------------------------
# Errors and conversion reports
# ----------------------------------------------------------------------------------------------
class DataError(DialogueError):
    """Bad input data; the message names file, record index and field."""

    def __init__(self, reason: str, detail: str, file: str | None = None, index: int | None = None,
                 field: str | None = None):
        self.reason, self.detail, self.file, self.index, self.field = reason, detail, file, index, field
        where = ", ".join(p for p in (
            file, f"record {index}" if index is not None else None, f"field {field!r}" if field else None) if p)
        super().__init__(f"{where}: {reason}: {detail}" if where else f"{reason}: {detail}")


@dataclass
class ConversionReport:
    """What a conversion read, wrote and (with `on_error="skip"`) left out, by reason."""

    file: str
    unit: str = "records"
    total: int = 0
    converted: int = 0
    rows: int = 0
    skipped: Counter = field(default_factory=Counter)
    messages: list[str] = field(default_factory=list)

    def add_skip(self, error: DataError) -> None:
        self.skipped[error.reason] += 1
        self.messages.append(str(error))

    def summary(self) -> str:
        text = f"{self.file}: converted {self.converted} of {self.total} {self.unit} ({self.rows} rows)"
        if self.skipped:
            reasons = ", ".join(f"{n} {reason}" for reason, n in sorted(self.skipped.items()))
            text += f"; skipped {sum(self.skipped.values())}: {reasons}"
        return text


def _check_on_error(on_error: str) -> None:
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")


def _load_json_list(path: str) -> list:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"data file not found: {path}")
    with open(path, encoding="utf-8") as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as err:
            raise DataError("not valid JSON", f"line {err.lineno}: {err.msg}", file=path) from None
    if isinstance(data, dict):  # a single record
        data = [data]
    if not isinstance(data, list):
        raise DataError("malformed file", f"expected a JSON list of records, got {type(data).__name__}", file=path)
    return data


# ----------------------------------------------------------------------------------------------
# Images
# ----------------------------------------------------------------------------------------------
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


def convert_released_record(record, index: int, file: str, image_roots: Sequence[str] = (),
                            source: str = "mldr-release") -> dict:
    """One released record -> one row. The prompt must render back byte for byte."""
    where = {"file": file, "index": index}
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
    pictures = [_read_image(value, image_roots, {**where, "field": f"images[{j}]"}) for j, value in enumerate(images)]
    utterances = []
    for line in lines:
        utterances.append(Utterance(line.speaker, line.text, [pictures[j] for j in line.image_ids]))

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
    Speakers are renamed `user1`, `user2`, ... in order of appearance (PROTOCOL.md §2).
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


# ----------------------------------------------------------------------------------------------
# Statistics and cards
# ----------------------------------------------------------------------------------------------
def compute_statistics(rows: Iterable[Mapping]) -> dict:
    """Statistics of rows (images are not needed: counts come from `image_captions`)."""
    dialogues: dict[str, Mapping] = {}
    queries = empty = 0
    frag_utts, frag_imgs, frag_spans = [], [], []
    for row in rows:
        queries += 1
        dialogues.setdefault(row["dialogue_id"], row)
        u, i = row["gold_utterance_ids"], row["gold_image_ids"]
        if not u and not i:
            empty += 1
            continue
        frag_utts.append(len(u))
        frag_imgs.append(len(i))
        frag_spans.append(len(contiguous_spans(u)))
    turns = [d["num_turns"] for d in dialogues.values()]
    images = [len(d["image_captions"] or []) for d in dialogues.values()]
    topics = [len(d["topics"] or []) for d in dialogues.values()]

    def mean(values):
        return round(statistics.fmean(values), 2) if values else 0.0

    return {
        "dialogues": len(dialogues), "queries": queries,
        "turns_mean": mean(turns), "turns_max": max(turns, default=0),
        "images_per_dialogue_mean": mean(images), "images_per_dialogue_max": max(images, default=0),
        "topics_per_dialogue_mean": mean(topics),
        "fragment_utterances_mean": mean(frag_utts), "fragment_images_mean": mean(frag_imgs),
        "fragment_spans_mean": mean(frag_spans),
        "empty_gold_share": round(empty / queries, 4) if queries else 0.0,
    }


_STAT_COLUMNS = (
    ("dialogues", "dialogues"), ("queries", "queries"), ("turns_mean", "turns (mean)"),
    ("turns_max", "turns (max)"), ("images_per_dialogue_mean", "images / dialogue (mean)"),
    ("images_per_dialogue_max", "images / dialogue (max)"), ("topics_per_dialogue_mean", "topics / dialogue"),
    ("fragment_utterances_mean", "gold utterances / query"), ("fragment_images_mean", "gold images / query"),
    ("fragment_spans_mean", "runs / fragment"), ("empty_gold_share", "empty-gold queries"),
)


def statistics_table(stats_by_split: Mapping[str, Mapping]) -> str:
    """Markdown table, one row per split (the block the card carries)."""
    head = "| split | " + " | ".join(label for _, label in _STAT_COLUMNS) + " |"
    rule = "|---|" + "---:|" * len(_STAT_COLUMNS)
    lines = [head, rule]
    for split, stats in stats_by_split.items():
        cells = []
        for key, _ in _STAT_COLUMNS:
            value = stats[key]
            cells.append(f"{value:.1%}" if key == "empty_gold_share" else str(value))
        lines.append(f"| {split} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def statistics_by_split(splits: Mapping[str, Sequence[Mapping]]) -> dict[str, dict]:
    return {split: compute_statistics(rows) for split, rows in splits.items()}


def card_statistics_block(card: str) -> str:
    """The statistics table inside a card (between the statistics markers)."""
    start, end = card.find(STATS_BEGIN), card.find(STATS_END)
    if start < 0 or end < 0:
        raise ValueError("the card has no statistics block")
    return card[start + len(STATS_BEGIN): end].strip()


_FEATURES_DOC = """| column | type | meaning |
|---|---|---|
| `dialogue_id` | string | one dialogue appears in as many rows as it has queries |
| `query` | string | the text query |
| `language` | string | `en` or `zh` (the prompt template to render with) |
| `utterances` | list of `{id: int32, speaker: string, text: string, image_ids: list<int32>, topic: string}` | `id` is 0..N-1; `image_ids` index `images`; `topic` is `""` when unknown |
| `images` | `List(Image())` | every picture of the dialogue, embedded; index = image id (order of appearance) |
| `image_captions` | list<string> (nullable) | one per image |
| `gold_utterance_ids` | list<int32> | sorted; utterance ids of the fragment |
| `gold_image_ids` | list<int32> | sorted; image ids of the fragment |
| `solution` | string | the gold answer, `<\\|utt_ids_start\\|>[..]<\\|utt_ids_end\\|>;<\\|img_ids_start\\|>[..]<\\|img_ids_end\\|>` |
| `num_turns` | int32 | number of utterances |
| `topics` | list<string> | distinct topics of the dialogue (empty when unknown) |
| `query_topic` | string | the topic the query is about; `""` when nothing matches or unknown |
| `source` | string | `synthetic`, `mldr-release`, `wechat-release`, `wechat-raw` |
| `difficulty` | string (nullable) | filled by the curriculum: easy / middle / confusing / hard |

Both gold lists empty means "nothing in the dialogue matches the query"."""

_USAGE = """```python
from datasets import load_dataset
from f2rvlm import Dialogue, render_prompt

ds = load_dataset("{repo}", "{config}", split="{split}")
row = ds[0]
dialogue = Dialogue.from_row(row)                           # images decoded as PIL
prompt = render_prompt(dialogue, row["query"], template=row["language"])
row["solution"]                                             # the answer the model should write
```"""


def render_card(*, title: str, config_name: str, splits: Sequence[str], stats: Mapping[str, Mapping],
                description: str, license: str, license_note: str, languages: Sequence[str],
                reports: Sequence[ConversionReport] = (), repo: str = "org/mldr", extra: str = "") -> str:
    """A dataset card: YAML front matter with `configs:`, features, statistics, citation."""
    total = sum(s["queries"] for s in stats.values())
    size = "n<1K" if total < 1000 else "1K<n<10K" if total < 10_000 else "10K<n<100K" if total < 100_000 else "100K<n<1M"
    yaml_lines = [
        "---", f"license: {license}", "language:", *[f"- {lang}" for lang in languages],
        f"pretty_name: {title}", "task_categories:", "- visual-question-answering", "- text-retrieval",
        "tags:", "- multimodal", "- dialogue", "- retrieval", "- f2rvlm", "size_categories:", f"- {size}",
        "configs:", f"- config_name: {config_name}", "  default: true", "  data_files:",
    ]
    for split in splits:
        yaml_lines += [f"  - split: {split}", f"    path: data/{split}-*.parquet"]
    yaml_lines.append("---")
    parts = [
        "\n".join(yaml_lines), f"# {title}", description.strip(),
        "## Loading",
        _USAGE.format(repo=repo, config=config_name, split="validation" if "validation" in splits else splits[-1]),
        "## Features", _FEATURES_DOC,
        "## Statistics",
        ("Computed from the data when the folder was built (turn and image counts per dialogue, "
         "fragment sizes per non-empty query)."),
        f"{STATS_BEGIN}\n{statistics_table(stats)}\n{STATS_END}",
    ]
    if reports:
        lines = [f"- {r.summary()}" for r in reports]
        parts += ["## Conversion report", "\n".join(lines)]
    if extra:
        parts.append(extra.strip())
    parts += ["## License", license_note.strip(), "## Citation", f"```bibtex\n{CITATION}\n```"]
    return "\n\n".join(parts) + "\n"


# ----------------------------------------------------------------------------------------------
# Writing folders
# ----------------------------------------------------------------------------------------------
@contextlib.contextmanager
def atomic_folder(out: str, overwrite: bool = False) -> Iterator[str]:
    """Yield a temporary folder next to `out`; on success it replaces `out` in one rename.

    Refuses an existing `out` unless `overwrite`; on failure the temporary folder is removed and
    `out` is left as it was.
    """
    out = os.path.abspath(out)
    if os.path.lexists(out) and not overwrite:
        raise FileExistsError(f"output folder exists: {out} (pass --overwrite / overwrite=True to replace it)")
    if os.path.exists(out) and not os.path.isdir(out):
        raise NotADirectoryError(f"output path exists and is not a folder: {out}")
    parent = os.path.dirname(out)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(out)}.tmp-", dir=parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; the result is an ordinary folder
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if os.path.exists(out):
        old = tempfile.mkdtemp(prefix=f".{os.path.basename(out)}.old-", dir=parent)
        os.rename(out, os.path.join(old, "previous"))
    os.rename(tmp, out)
    if old:
        shutil.rmtree(old, ignore_errors=True)


def write_split(rows: Sequence[Mapping], folder: str, split: str, rows_per_shard: int = 500) -> list[str]:
    """Parquet shards `data/<split>-0000i-of-0000n.parquet` (images embedded as bytes)."""
    import pyarrow.parquet as pq
    from datasets import Dataset

    feats = features()
    os.makedirs(os.path.join(folder, "data"), exist_ok=True)
    n = max(1, -(-len(rows) // rows_per_shard))
    paths = []
    for i in range(n):
        chunk = list(rows[i * rows_per_shard:(i + 1) * rows_per_shard])
        path = os.path.join(folder, "data", f"{split}-{i:05d}-of-{n:05d}.parquet")
        # The table carries the `huggingface` schema metadata (features), so loaders see `Image()`.
        pq.write_table(Dataset.from_list(chunk, features=feats).data.table, path, row_group_size=100)
        paths.append(path)
    return paths


def write_dataset(out: str, splits: Mapping[str, Sequence[Mapping]], card: str | Callable[[dict], str],
                  overwrite: bool = False, rows_per_shard: int = 500, show_progress: bool = False) -> str:
    """Write a dataset folder atomically: Parquet shards per split + README.md.

    `card` is the card text, or a function of the per-split statistics that returns it.
    """
    stats = statistics_by_split(splits)
    with atomic_folder(out, overwrite) as tmp:
        for split in _progress(list(splits), "write splits", show_progress):
            write_split(splits[split], tmp, split, rows_per_shard)
        text = card(stats) if callable(card) else card
        with open(os.path.join(tmp, "README.md"), "w", encoding="utf-8") as f:
            f.write(text)
    return os.path.abspath(out)


def _progress(items, desc: str, show: bool):
    if not show:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, unit="it", file=sys.stderr)


# ----------------------------------------------------------------------------------------------
# Builds
# ----------------------------------------------------------------------------------------------
SYNTHETIC_DESCRIPTION = """Synthetic MLDR: long multimodal two-person dialogues with text queries and gold
fragments (utterance ids + image ids), in the format of the MLDR dataset of F2RVLM
(arXiv 2508.17714). Generated by `f2rvlm.synthetic` (seed {seed}, language `{language}`,
{num_dialogues} dialogues): every dialogue mixes several everyday topics (flat viewing, hiking trip,
birthday cake, car repair, ...), laid out as dense blocks or scattered and interleaved; pictures are
drawn procedurally per topic (small PNGs, nothing copied) and captioned. Queries paraphrase a whole
topic, one aspect of it or its pictures; about 15% ask about an absent topic (both gold lists
empty). Every utterance carries its topic label (`utterances.topic`) for auxiliary topic heads.

Splits: `train_sft` (supervised warm-up), `train_grpo` (RL), `validation`, and `test_heldout`:
long dialogues (~75 turns, like the WeChat test set) using held-out topics and held-out sentence
and query templates, to measure generalisation beyond the training templates.

Rebuild byte for byte: `python hub_datasets/mldr/build.py --synthetic --num-dialogues {num_dialogues} --seed {seed} --language {language} --out OUT`."""

RELEASE_DESCRIPTION = """MLDR (Multi-modal Long-form Dialogue Retrieval), the training and validation data of
F2RVLM (arXiv 2508.17714), converted from the released ms-swift JSON files into Parquet with
the images embedded. Each released prompt was parsed back into utterances, images and query, and
rendering a row with `f2rvlm.render_prompt(Dialogue.from_row(row), row["query"], row["language"])`
gives the released prompt back byte for byte (checked for every row at conversion).
MLDR averages about 25 turns and three topics per dialogue; the released data carries no topic
labels (`topic` is `""`).

Splits: `train_sft` (MLDR_train_cold_start.json), `train_grpo` (MLDR_train_GRPO.json),
`validation` (MLDR_val.json, the paper's in-domain numbers)."""

WECHAT_DESCRIPTION = """WeChat-MDR, the real-world Chinese test set of F2RVLM (arXiv 2508.17714): long chats
(about 75 turns on average) from 12 volunteers, with text queries and gold fragments. It has no
affiliation with the WeChat platform. Converted into Parquet with the images embedded, from the
released ms-swift form (prompts parsed back and checked to render byte for byte) or from the raw
annotation form (an image is its own turn there; it becomes an utterance without text carrying
that image, and a gold image turn contributes its image id)."""

SYNTHETIC_LICENSE = ("The synthetic data and the code that generates it are Apache-2.0 (this project). Text "
                     "templates and pictures were written and drawn for this project.")
RELEASE_LICENSE = ("The MLDR and WeChat-MDR data are released by the F2RVLM authors under their own terms; this "
                   "card and the conversion code are Apache-2.0. Check the authors' terms before redistributing; "
                   "the WeChat-MDR chats come from volunteers and are for research evaluation only.")


def build_synthetic(out: str, num_dialogues: int = 200, seed: int = 0, language: str = "en",
                    overwrite: bool = False, show_progress: bool = True, rows_per_shard: int = 500,
                    **config_overrides) -> str:
    """Generate synthetic MLDR (four splits) and write it as a dataset folder with its card.

    Splits get 60/20/10/10% of `num_dialogues` (`f2rvlm.synthetic.split_sizes`). Prints the
    statistics table, which the card carries too. Same arguments -> identical bytes.
    """
    import random

    from .synthetic import LANGUAGES, SyntheticConfig, generate_dialogue, split_sizes

    if language not in LANGUAGES:
        raise ValueError(f"language must be one of {LANGUAGES}, got {language!r}")
    out_abs = os.path.abspath(out)
    if os.path.lexists(out_abs) and not overwrite:  # fail before generating anything
        raise FileExistsError(f"output folder exists: {out_abs} (pass --overwrite / overwrite=True to replace it)")
    sizes = split_sizes(num_dialogues)
    splits: dict[str, list[dict]] = {}
    for split in SYNTHETIC_SPLITS:
        config = SyntheticConfig.for_split(split, **config_overrides)
        samples = [
            generate_dialogue(random.Random(f"{seed}/{split}/{i}"), language, config,
                              dialogue_id=f"synthetic-{language}-{split}-{i:05d}", split=split)
            for i in _progress(range(sizes[split]), f"generate {split}", show_progress)
        ]
        splits[split] = synthetic_rows(samples)
    config_name = f"synthetic_{language}"

    def card(stats):
        return render_card(
            title=f"Synthetic MLDR ({language})", config_name=config_name, splits=SYNTHETIC_SPLITS, stats=stats,
            description=SYNTHETIC_DESCRIPTION.format(seed=seed, language=language, num_dialogues=num_dialogues),
            license="apache-2.0", license_note=SYNTHETIC_LICENSE, languages=[language],
        )

    path = write_dataset(out, splits, card, overwrite=overwrite, rows_per_shard=rows_per_shard,
                         show_progress=show_progress)
    if show_progress:
        print(statistics_table(statistics_by_split(splits)))
    return path


def build_from_release(release_dir: str, out: str, overwrite: bool = False, on_error: str = "raise",
                       image_roots: Sequence[str] = (), show_progress: bool = True,
                       rows_per_shard: int = 500) -> tuple[str, list[ConversionReport]]:
    """Convert the released MLDR files in `release_dir` (PROTOCOL.md §4) into a dataset folder."""
    _check_on_error(on_error)
    if not os.path.isdir(release_dir):
        raise NotADirectoryError(f"release folder not found: {release_dir}")
    out_abs = os.path.abspath(out)
    if os.path.lexists(out_abs) and not overwrite:
        raise FileExistsError(f"output folder exists: {out_abs} (pass --overwrite / overwrite=True to replace it)")
    missing = [name for name in RELEASE_FILES.values() if not os.path.isfile(os.path.join(release_dir, name))]
    if missing:
        raise FileNotFoundError(f"{release_dir}: released file(s) missing: {', '.join(missing)}")
    roots = [release_dir, os.path.join(release_dir, "MLDR_train_images"), *image_roots]
    splits, reports = {}, []
    for split, name in RELEASE_FILES.items():
        rows, report = read_released_file(os.path.join(release_dir, name), roots, "mldr-release", on_error,
                                          show_progress)
        splits[split] = rows
        reports.append(report)
        _report(report, show_progress)

    def card(stats):
        return render_card(
            title="MLDR", config_name="default", splits=RELEASE_SPLITS, stats=stats,
            description=RELEASE_DESCRIPTION, license="other", license_note=RELEASE_LICENSE,
            languages=sorted({r["language"] for rows in splits.values() for r in rows}) or ["zh"],
            reports=reports,
        )

    path = write_dataset(out, splits, card, overwrite, rows_per_shard, show_progress)
    if show_progress:
        print(statistics_table(statistics_by_split(splits)))
    return path, reports


def build_wechat(source: str, out: str, overwrite: bool = False, on_error: str = "raise",
                 image_roots: Sequence[str] = (), image_turn_gold: str = "image", show_progress: bool = True,
                 rows_per_shard: int = 500) -> tuple[str, list[ConversionReport]]:
    """Convert the WeChat test set (a JSON file, or a folder with exactly one) into split `test`."""
    _check_on_error(on_error)
    if os.path.isdir(source):
        files = sorted(f for f in os.listdir(source) if f.endswith(".json"))
        if len(files) != 1:
            raise FileNotFoundError(f"{source}: expected exactly one .json file, found {files or 'none'}")
        image_roots = [source, *image_roots]
        source = os.path.join(source, files[0])
    out_abs = os.path.abspath(out)
    if os.path.lexists(out_abs) and not overwrite:
        raise FileExistsError(f"output folder exists: {out_abs} (pass --overwrite / overwrite=True to replace it)")
    rows, report = read_wechat_file(source, image_roots, on_error, image_turn_gold, show_progress)
    _report(report, show_progress)

    def card(stats):
        return render_card(
            title="WeChat-MDR", config_name="default", splits=["test"], stats=stats,
            description=WECHAT_DESCRIPTION, license="other", license_note=RELEASE_LICENSE, languages=["zh"],
            reports=[report], repo="org/wechat_mdr",
        )

    path = write_dataset(out, {"test": rows}, card, overwrite, rows_per_shard, show_progress)
    if show_progress:
        print(statistics_table(statistics_by_split({"test": rows})))
    return path, [report]


def _report(report: ConversionReport, show: bool) -> None:
    # Skips are always reported (never silent), progress bars or not; callers print the summary.
    if report.skipped:
        print(report.summary(), file=sys.stderr)
    for message in report.messages[:20]:
        print(f"  skipped: {message}", file=sys.stderr)
    if len(report.messages) > 20:
        print(f"  ... and {len(report.messages) - 20} more", file=sys.stderr)


def push_to_hub(folder: str, repo_id: str, private: bool = False, token: str | None = None,
                commit_message: str = "Upload dataset") -> str:
    """Upload a built folder as a dataset repo (needs network and a token; not run in tests)."""
    from huggingface_hub import HfApi

    if not os.path.isfile(os.path.join(folder, "README.md")):
        raise FileNotFoundError(f"{folder} is not a built dataset folder (no README.md)")
    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    info = api.upload_folder(repo_id=repo_id, folder_path=folder, repo_type="dataset", commit_message=commit_message)
    return str(getattr(info, "commit_url", info))


# ----------------------------------------------------------------------------------------------
# The small fixed sample set shipped in the package (tests, demo examples)
# ----------------------------------------------------------------------------------------------
SAMPLES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets", "samples")


def write_samples(folder: str = SAMPLES_DIR, seed: int = 7) -> list[str]:
    """(Re)write the sample set: `samples.json` + PNG files; returns the written paths."""
    from .synthetic import generate_split

    os.makedirs(folder, exist_ok=True)
    entries, written = [], []
    picks = [("en", "validation", 2), ("zh", "validation", 1)]
    for language, split, count in picks:
        for sample in generate_split(split, count, seed=seed, language=language):
            for k, image in enumerate(sample.dialogue.images):
                name = f"{sample.dialogue.dialogue_id}-{k}.png"
                with open(os.path.join(folder, name), "wb") as f:
                    f.write(image.to_bytes())
                written.append(os.path.join(folder, name))
                image.source, image.name = name, None
            entries.append({
                "dialogue": sample.dialogue.to_dict(), "language": language, "topics": sample.topics,
                "queries": [{"query": q.query, "query_topic": q.query_topic, "utterance_ids": q.utterance_ids,
                             "image_ids": q.image_ids} for q in sample.queries],
            })
    path = os.path.join(folder, "samples.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(entries, f, ensure_ascii=False, indent=1)
        f.write("\n")
    return [path, *written]


def load_samples(folder: str = SAMPLES_DIR) -> list[dict]:
    """The sample set: `[{"dialogue": Dialogue, "language", "topics", "queries": [...]}]`."""
    with open(os.path.join(folder, "samples.json"), encoding="utf-8") as f:
        entries = json.load(f)
    for entry in entries:
        entry["dialogue"] = Dialogue.from_dict(entry["dialogue"], base_dir=folder)
    return entries


def sample_rows(folder: str = SAMPLES_DIR) -> list[dict]:
    """The sample set as dataset rows (images embedded)."""
    rows = []
    for entry in load_samples(folder):
        for q in entry["queries"]:
            rows.append(make_row(entry["dialogue"], q["query"], q["utterance_ids"], q["image_ids"],
                                 language=entry["language"], source="synthetic", topics=entry["topics"],
                                 query_topic=q["query_topic"]))
    return rows
