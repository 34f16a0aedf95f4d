"""Prediction files (docs/protocol.md §5, §8): the one record format (`prediction_record`), written
and read here (`write_predictions`, `read_predictions`), the released `_split_` shard merge, and
`evaluate_predictions_file` (what `f2rvlm eval` runs). Scoring itself is `core.metrics`.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .metrics import _IMG_TAG, _UTT_TAG, EvalSample, as_answer, evaluate
from .protocol import (
    IMAGE_PLACEHOLDER,
    IMG_IDS_END,
    IMG_IDS_START,
    UTT_IDS_END,
    UTT_IDS_START,
    Answer,
    render_answer,
)

logger = logging.getLogger(__name__)


class PredictionFileError(ValueError):
    """A predictions file is malformed; the message names the file and the line."""


def prompt_universe(prompt: str) -> tuple[int, int, int]:
    """`(num_utterances, num_images, num_turns)` of a rendered prompt, from its id tags.

    `num_utterances`/`num_images` are max id + 1 (0 when the prompt has no tag of that kind);
    `num_turns` is the number of distinct utterance tags.

    >>> prompt_universe("<|utt_id_start|>0<|utt_id_end|> a: hi\\n<|utt_id_start|>1<|utt_id_end|> b: "
    ...                 "<|img_id_start|>0<|img_id_end|><image>")
    (2, 1, 2)
    """
    utt = [int(m) for m in _UTT_TAG.findall(prompt)]
    img = [int(m) for m in _IMG_TAG.findall(prompt)]
    return (max(utt) + 1 if utt else 0, max(img) + 1 if img else 0, len(set(utt)))


def _message_text(content: Any) -> str:
    """Text of a chat message's content: a string, or the text parts of a content list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(_part_text(part) for part in content)
    raise TypeError("message content must be a string or a list of parts")


def _part_text(part: Any) -> str:
    if isinstance(part, Mapping):
        return IMAGE_PLACEHOLDER if part.get("type") == "image" else str(part.get("text") or "")
    return str(part)


def prompt_text(prompt: Any) -> str:
    """The user prompt text of a prompt given as text, chat messages, or one message's content
    (image parts become `<image>`), as TRL passes `prompts` to reward functions."""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list) and prompt and isinstance(prompt[0], Mapping) and "role" in prompt[0]:
        return "".join(_message_text(m.get("content")) for m in prompt if m.get("role") == "user")
    return _message_text(prompt)


class SkippedRecord(Exception):
    """A record the released tool skips (no `labels` or no `response`)."""


def sample_from_record(record: Mapping) -> EvalSample:
    """An `EvalSample` from one record of a predictions file.

    The record format (`prediction_record` writes it; it is the released inference JSONL):
    `{"messages": [system?, user, assistant?], "labels": gold answer text, "response": model text,
    ...}`; the universe comes from the id tags of the first user message (21 ids per modality when
    there is none). A record without `labels` or `response` raises `SkippedRecord` (the released
    tool skips it). Older f2rvlm records are still read: `{"prediction": text | {"utterance_ids",
    "image_ids"}, "gold_utterance_ids", "gold_image_ids", "num_turns", "num_images"}` (`"gold"` /
    `"solution"` answer text may replace the two gold lists, `"prompt"` the two sizes), and
    `{"utterance_ids", "image_ids", "gold_utterance_ids", "gold_image_ids", "num_turns",
    "num_images"}`. Raises `KeyError`/`TypeError`/`ValueError` naming the field when malformed.
    """
    if not isinstance(record, Mapping):
        raise TypeError(f"record must be a JSON object, got {type(record).__name__}")
    if "prediction" in record or ("utterance_ids" in record and "gold_utterance_ids" in record):
        return _legacy_sample(record)
    missing = [k for k in ("labels", "response") if k not in record]
    if missing:
        raise SkippedRecord(f"no {' and no '.join(missing)}")
    gold, response = record["labels"], record["response"]
    if not isinstance(gold, str):
        raise TypeError("'labels' must be the gold answer string")
    if not isinstance(response, str):
        raise TypeError("'response' must be a string")
    prompt = ""
    messages = record.get("messages", [])
    if not isinstance(messages, list) or not all(isinstance(m, Mapping) for m in messages):
        raise TypeError("'messages' must be a list of {role, content} objects")
    for message in messages:  # the first user message, as released
        if message.get("role") == "user":
            prompt = _message_text(message.get("content", ""))
            break
    num_utt, num_img, turns = prompt_universe(prompt)
    return EvalSample(response, gold, num_utt, num_img, turns, _sample_id(record))


def _legacy_sample(record: Mapping) -> EvalSample:
    if "prediction" in record:
        prediction = record["prediction"]
        if isinstance(prediction, Mapping):
            prediction = Answer(_id_list(prediction, "utterance_ids", "prediction."),
                                _id_list(prediction, "image_ids", "prediction."))
        elif prediction is not None and not isinstance(prediction, str):
            raise TypeError("'prediction' must be answer text or {utterance_ids, image_ids}")
    else:
        prediction = Answer(_id_list(record, "utterance_ids"), _id_list(record, "image_ids"))
    if "gold_utterance_ids" in record or "gold_image_ids" in record:
        gold: Any = Answer(_id_list(record, "gold_utterance_ids"), _id_list(record, "gold_image_ids"))
    elif isinstance(record.get("gold", record.get("solution")), str):
        gold = record.get("gold", record.get("solution"))
    else:
        raise KeyError("gold_utterance_ids/gold_image_ids (or gold answer text in 'gold'/'solution')")
    if "num_turns" in record:
        num_utt, num_img = _count(record, "num_turns"), _count(record, "num_images")
        turns = num_utt
    elif isinstance(record.get("prompt"), str):
        num_utt, num_img, turns = prompt_universe(record["prompt"])
    else:
        raise KeyError("num_turns and num_images (or the 'prompt' they come from)")
    if isinstance(gold, Answer):  # this format states the sizes: gold must fit in them
        for name, ids, size in (("gold_utterance_ids", gold.utterance_ids, num_utt),
                                ("gold_image_ids", gold.image_ids, num_img)):
            bad = [i for i in ids if not 0 <= i < size]
            if bad:
                raise ValueError(f"'{name}' has ids {bad} out of range for a sample with {size} "
                                 f"{'turns' if name == 'gold_utterance_ids' else 'images'}")
    return EvalSample(prediction, gold, num_utt, num_img, turns, _sample_id(record))


def prediction_record(prompt: str, response: Any, gold: Any, *, system: str | None = None, **extra) -> dict:
    """One record of a predictions file (the format `read_predictions` and the released tool read).

    `prompt`: the rendered user prompt (its id tags give the universe); `response`: the model's
    answer text, or ids (`Answer` / pair), rendered with `protocol.render_answer`; `gold`: answer
    text or ids. `extra` fields (dialogue_id, query, raw text, latency...) are kept as they are.

    >>> r = prediction_record("<|utt_id_start|>0<|utt_id_end|> a: hi", Answer([0], []), Answer([0], []), dialogue_id="d")
    >>> sorted(r), r["response"] == r["labels"]
    (['dialogue_id', 'labels', 'messages', 'response'], True)
    """
    def text(value):
        if isinstance(value, str):
            return value
        ids = as_answer(value)
        return render_answer(ids.utterance_ids, ids.image_ids)

    labels = text(gold)
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": prompt}, {"role": "assistant", "content": labels}]
    return {"messages": messages, "labels": labels, "response": text(response), **extra}


def write_predictions(records: Iterable[Mapping], path: str | os.PathLike) -> str:
    """Write prediction records as JSON Lines (UTF-8, one record a line); returns the path."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(dict(r), ensure_ascii=False) + "\n" for r in records)
    return path


#: Window suffix of the released sliding-window inference: `<dialogue_id>_split_<k>`.
SPLIT_MARKER = "_split_"
_DIGITS = re.compile(r"\d+")


def _image_path(image: Any) -> Any:
    return image.get("path") if isinstance(image, Mapping) else image


def merge_split_predictions(shard_records: Iterable[Mapping], original_records: Sequence[Mapping]) -> list[dict]:
    """One prediction record per dialogue from the released sliding-window inference shards, as the
    released `sliding_infer_result_concat.py` merges them (docs/protocol.md §8).

    Shards are grouped by `dialogue_id.split("_split_")[0]`; from each shard's `response` the
    tagged lists are read (DOTALL) and every run of digits in them is an id; utterance ids are
    global and unioned; a window's image id k is its `images[k]` path, mapped to the id of that
    path in the original record's `images`. Each merged record takes `labels` (the original's
    `solution`), `messages` and `images` from the original record of that dialogue id (the last one
    when several records share it, as released); the response is
    `<|utt_ids_start|>[sorted ids]<|utt_ids_end|>;<|img_ids_start|>[sorted ids]<|img_ids_end|>`.
    Dialogues missing from the original file are left out with a warning, as released. (Released
    images may be paths or `{"path": ...}` objects; both are read here, the released script needs
    paths in the original file.)

    >>> shards = [{"dialogue_id": "d_split_0", "response": render_answer([1], [0]), "images": [{"path": "b.png"}]},
    ...           {"dialogue_id": "d_split_1", "response": render_answer([30, 1], [0]), "images": [{"path": "c.png"}]}]
    >>> merged = merge_split_predictions(shards, [{"dialogue_id": "d", "solution": "g", "images": ["a.png", "b.png", "c.png"]}])
    >>> merged[0]["response"], merged[0]["labels"]
    ('<|utt_ids_start|>[1, 30]<|utt_ids_end|>;<|img_ids_start|>[1, 2]<|img_ids_end|>', 'g')
    """
    original: dict[str, Mapping] = {}
    for record in original_records:
        original[record["dialogue_id"]] = record
    groups: dict[str, tuple[set, set]] = {}
    for record in shard_records:
        base_id = str(record["dialogue_id"]).split(SPLIT_MARKER)[0]
        utts, paths = groups.setdefault(base_id, (set(), set()))
        response = record["response"]
        lists = []
        for start, end in ((UTT_IDS_START, UTT_IDS_END), (IMG_IDS_START, IMG_IDS_END)):
            i = response.find(start)
            j = response.find(end, i + len(start)) if i >= 0 else -1
            content = response[i + len(start):j].strip() if j >= 0 else "[]"
            lists.append([] if content == "[]" else [int(d) for d in _DIGITS.findall(content)])
        utts.update(lists[0])
        window_images = {k: _image_path(img) for k, img in enumerate(record.get("images") or [])}
        paths.update(window_images[k] for k in lists[1] if k in window_images)
    merged = []
    for base_id, (utts, paths) in groups.items():
        if base_id not in original:
            logger.warning("dialogue_id=%s is not in the original file; left out (as released)", base_id)
            continue
        source = original[base_id]
        path_to_id = {_image_path(img): k for k, img in enumerate(source.get("images") or [])}
        image_ids = sorted({path_to_id[p] for p in paths if p in path_to_id})
        merged.append({
            "dialogue_id": base_id,
            "response": f"{UTT_IDS_START}{sorted(utts)}{UTT_IDS_END};{IMG_IDS_START}{image_ids}{IMG_IDS_END}",
            "labels": source.get("solution", ""),
            "messages": source.get("messages", []),
            "images": source.get("images", []),
        })
    return merged


def _sample_id(record: Mapping) -> str | None:
    value = record.get("id", record.get("dialogue_id"))
    return None if value is None else str(value)


def _id_list(record: Mapping, key: str, prefix: str = "") -> list[int]:
    value = record.get(key)
    if not isinstance(value, list) or not all(type(v) is int for v in value):
        raise TypeError(f"'{prefix}{key}' must be a list of integers")
    return value


def _count(record: Mapping, key: str) -> int:
    value = record.get(key)
    if type(value) is not int or value < 0:
        raise TypeError(f"'{key}' must be a non-negative integer")
    return value


@dataclass
class PredictionFile:
    """The samples of a predictions file and how many records were skipped (as released)."""

    samples: list[EvalSample]
    skipped: list[str] = field(default_factory=list)


def read_prediction_file(path: str | os.PathLike, strict: bool = False) -> PredictionFile:
    """All samples of a predictions file: JSON Lines (one record a line) or a JSON list.

    As the released tool, a line that is not JSON or a record without `labels`/`response` is
    skipped (each one logged as a warning naming the file and line; blank lines too, silently);
    `strict=True` makes them errors. Any other malformed record raises `PredictionFileError`
    naming the file and line."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise PredictionFileError(f"predictions file not found: {path}")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    skipped: list[str] = []

    def skip(where: str, why: str) -> None:
        if strict:
            raise PredictionFileError(f"{path}, {where}: {why}")
        skipped.append(f"{where}: {why}")
        logger.warning("%s, %s: %s; skipped, as the released evaluation tool skips it", path, where, why)

    if text.lstrip().startswith("["):
        try:
            records = json.loads(text)
        except json.JSONDecodeError as err:
            raise PredictionFileError(f"{path}: not valid JSON (line {err.lineno}: {err.msg})") from None
        located = [(f"record {i}", r) for i, r in enumerate(records)]
    else:
        located = []
        for lineno, line in enumerate(text.split("\n"), 1):
            if not line.strip():
                continue
            try:
                located.append((f"line {lineno}", json.loads(line)))
            except json.JSONDecodeError as err:
                skip(f"line {lineno}", f"not valid JSON ({err.msg})")
    samples = []
    for where, record in located:
        try:
            samples.append(sample_from_record(record))
        except SkippedRecord as err:
            skip(where, f"missing field: {err}")
        except KeyError as err:
            raise PredictionFileError(f"{path}, {where}: missing field {err.args[0]}") from None
        except (TypeError, ValueError) as err:
            raise PredictionFileError(f"{path}, {where}: {err}") from None
    if not samples:
        raise PredictionFileError(f"{path}: no predictions in the file")
    return PredictionFile(samples, skipped)


def read_predictions(path: str | os.PathLike, strict: bool = False) -> list[EvalSample]:
    """The samples of a predictions file (`read_prediction_file`)."""
    return read_prediction_file(path, strict).samples


def evaluate_predictions_file(path: str | os.PathLike, parse_mode: str = "lenient", per_sample: bool = False,
                              strict: bool = False, empty_gold_mcc: bool = False) -> dict:
    """The metrics of a predictions file as a JSON-ready dict (what `f2rvlm eval` prints).

    Without `per_sample` the dict is exactly the released tool's output; with it, the released
    per-sample metrics, the length breakdown, the raw counts and the unparsed / failed / skipped
    numbers are added.
    """
    loaded = read_prediction_file(path, strict)
    report = evaluate(loaded.samples, parse_mode, per_sample=per_sample, by_length=per_sample,
                      empty_gold_mcc=empty_gold_mcc)
    report.num_skipped = len(loaded.skipped)
    return report.to_dict(per_sample=per_sample)


def format_report(report: Mapping) -> str:
    """A readable table of a `evaluate_predictions_file` dict."""
    lines = [f"samples: {report['num_samples']}", _table(report)]
    if "per_sample_metrics" in report:
        lines += ["", "per-sample (macro):", _table(report["per_sample_metrics"], prefix="avg_")]
    for bucket, sub in (report.get("by_length") or {}).items():
        lines += ["", f"dialogues with {bucket} turns ({sub['num_samples']} samples):", _table(sub)]
    if report.get("num_unparsed"):
        lines += ["", f"responses with an unparsable id list (scored as empty lists): {report['num_unparsed']}"]
    if report.get("num_failed"):
        lines += [f"samples the released tool fails on (ids that are not a list of values): {report['num_failed']}"]
    if report.get("num_skipped"):
        lines += [f"records skipped (not JSON, or no labels / response): {report['num_skipped']}"]
    return "\n".join(lines)


def _table(metrics: Mapping, prefix: str = "global_") -> str:
    rows = [f"{'':<10}{'P':>9}{'R':>9}{'F1':>9}{'MCC':>9}"]
    for label, key in (("utterance", "sentence"), ("image", "image"), ("joint", "joint")):
        m = metrics[f"{key}_metrics"] if f"{key}_metrics" in metrics else metrics[key]
        rows.append(f"{label:<10}" + "".join(f"{m[prefix + k]:>9.4f}" for k in ("precision", "recall", "f1", "mcc")))
    return "\n".join(rows)
