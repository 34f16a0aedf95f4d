"""The dataset row schema: columns, `datasets` features, row <-> Dialogue, errors and reports."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ..core.dialogue import Dialogue, DialogueError
from ..core.protocol import (
    render_answer,
)

SYNTHETIC_SPLITS = ("train_sft", "train_grpo", "validation", "test_heldout")
RELEASE_SPLITS = ("train_sft", "train_grpo", "validation")
#: Released file name of each split (docs/protocol.md §4).
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
    """The `datasets.Features` of a row (docs/data.md)."""
    from datasets import Features, Image, List, Value

    return Features({
        "dialogue_id": Value("string"),
        "query": Value("string"),
        "language": Value("string"),
        "utterances": List({
            "id": Value("int32"), "speaker": Value("string"), "text": Value("string"),
            "image_ids": List(Value("int32")), "topic": Value("string"),
            # Offsets of the images in `text` (docs/data.md); [] = default layout. Rows written
            # before this column load unchanged (Dialogue.from_row reads it when present).
            "image_positions": List(Value("int32")),
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
    """Rows of `f2rvlm.data.synthetic.SyntheticSample`s (one per query)."""
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
