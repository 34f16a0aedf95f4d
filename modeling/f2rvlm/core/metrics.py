"""The paper's evaluation (docs/protocol.md §5): global (micro) and per-sample (macro) P/R/F1/MCC.

One metric module for everything that scores an answer: `f2rvlm eval`, `recipes/evaluate.py`, the
model card, the GRPO rewards and the curriculum all call the functions below.

Conventions, exactly as the released evaluation tool:

- Each modality (utterances, images) is scored over a per-sample *universe* `{0..max_id}`, where
  `max_id` is the largest id tag of that modality in the sample's prompt, and 20 when the prompt
  has none (a dialogue without images adds 21 true negatives to the image counts).
- Counts are those of two binary vectors over the universe (is the id predicted, is it gold):
  duplicated ids count once and ids outside the universe are not counted at all.
- Global: TP/FP/FN/TN summed over all samples, then P, R, F1, MCC (any zero denominator -> 0).
- Joint: P and R are harmonic means of the two modalities' P and R; F1 and MCC arithmetic means.
- Reported to 4 decimals.

The per-sample (macro) variant averages per-sample scores; a sample with empty gold scores
P = R = F1 = 1 for an empty prediction and 0 otherwise. This project extends the same
convention to the per-sample MCC (1 or 0), which would otherwise be 0 for every empty-gold sample.

>>> from f2rvlm.core.protocol import Answer
>>> report = evaluate([EvalSample(Answer([1, 2], []), Answer([2, 3], []), num_utterances=10, num_images=0)])
>>> report.utterance.f1, report.image.f1, report.joint.f1
(0.5, 0.0, 0.25)
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .protocol import (
    IMAGE_PLACEHOLDER,
    IMG_ID_END,
    IMG_ID_START,
    PARSE_MODES,
    UTT_ID_END,
    UTT_ID_START,
    Answer,
    parse_answer,
)

#: Universe size of a modality the prompt has no tag of (max_id = 20).
NO_TAG_UNIVERSE = 21
#: Dialogue-length buckets of the paper's breakdown (number of turns).
LENGTH_BUCKETS: tuple[str, ...] = ("<35", "35-65", ">65")
DECIMALS = 4

_UTT_TAG = re.compile(re.escape(UTT_ID_START) + r"(\d+)" + re.escape(UTT_ID_END))
_IMG_TAG = re.compile(re.escape(IMG_ID_START) + r"(\d+)" + re.escape(IMG_ID_END))


class PredictionFileError(ValueError):
    """A predictions file is malformed; the message names the file and the line."""


# ----------------------------------------------------------------------------------------------
# Counts and scores
# ----------------------------------------------------------------------------------------------
def _div(num: float, den: float) -> float:
    return num / den if den else 0.0


@dataclass(frozen=True)
class Scores:
    """Precision, recall, F1 and MCC of one modality (or the joint of both)."""

    precision: float
    recall: float
    f1: float
    mcc: float

    def rounded(self, decimals: int = DECIMALS) -> Scores:
        return Scores(*(round(v, decimals) for v in (self.precision, self.recall, self.f1, self.mcc)))

    def to_dict(self, prefix: str = "global_") -> dict[str, float]:
        """`{"global_precision", "global_recall", "global_f1", "global_mcc"}` rounded to 4 decimals."""
        r = self.rounded()
        return {f"{prefix}precision": r.precision, f"{prefix}recall": r.recall, f"{prefix}f1": r.f1, f"{prefix}mcc": r.mcc}


@dataclass(frozen=True)
class Counts:
    """Confusion counts over a universe of ids; they add up across samples.

    >>> c = Counts.of([1, 2, 2], [2, 3], universe_size=10)
    >>> c
    Counts(tp=1, fp=1, fn=1, tn=7)
    >>> c.scores()
    Scores(precision=0.5, recall=0.5, f1=0.5, mcc=0.375)
    """

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    @classmethod
    def of(cls, predicted: Iterable[int], gold: Iterable[int], universe_size: int) -> Counts:
        """Counts of the binary vectors "predicted" and "gold" over ids `0..universe_size-1`."""
        universe = range(universe_size)
        pred = {i for i in predicted if i in universe}
        true = {i for i in gold if i in universe}
        tp = len(pred & true)
        fp, fn = len(pred) - tp, len(true) - tp
        return cls(tp, fp, fn, universe_size - tp - fp - fn)

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn, self.tn + other.tn)

    def scores(self) -> Scores:
        tp, fp, fn, tn = self.tp, self.fp, self.fn, self.tn
        precision, recall = _div(tp, tp + fp), _div(tp, tp + fn)
        f1 = _div(2 * precision * recall, precision + recall)
        den = (tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)
        mcc = _div(tp * tn - fp * fn, math.sqrt(den)) if den else 0.0
        return Scores(precision, recall, f1, mcc)


def harmonic_mean(a: float, b: float) -> float:
    """`2ab / (a + b)`, 0 when `a + b == 0`."""
    return _div(2 * a * b, a + b)


def joint_scores(utterance: Scores, image: Scores) -> Scores:
    """Joint metrics: harmonic means of P and R, arithmetic means of F1 and MCC.

    >>> joint_scores(Scores(1.0, 0.5, 0.6667, 0.5), Scores(0.5, 0.5, 0.5, 0.1))
    Scores(precision=0.6666666666666666, recall=0.5, f1=0.58335, mcc=0.3)
    """
    return Scores(
        harmonic_mean(utterance.precision, image.precision),
        harmonic_mean(utterance.recall, image.recall),
        (utterance.f1 + image.f1) / 2,
        (utterance.mcc + image.mcc) / 2,
    )


def universe_size(num_ids: int) -> int:
    """Universe size of a modality with `num_ids` ids (max id + 1); 21 when there are none."""
    return num_ids if num_ids > 0 else NO_TAG_UNIVERSE


def set_scores(predicted: Iterable[int], gold: Iterable[int], universe: int | None = None) -> Scores:
    """Per-sample scores of one modality (macro convention of §5).

    Empty gold: (1, 1, 1, 1) for an empty prediction, else (0, 0, 0, 0). Otherwise P/R/F1 over id
    sets, and MCC over `universe` ids (0 when `universe` is None).

    >>> set_scores([], []), set_scores([1], [])
    (Scores(precision=1.0, recall=1.0, f1=1.0, mcc=1.0), Scores(precision=0.0, recall=0.0, f1=0.0, mcc=0.0))
    >>> set_scores([1, 2], [2]).f1
    0.6666666666666666
    """
    pred, true = set(predicted), set(gold)
    if universe is not None:
        pred, true = {i for i in pred if 0 <= i < universe}, {i for i in true if 0 <= i < universe}
    if not true:
        return Scores(1.0, 1.0, 1.0, 1.0) if not pred else Scores(0.0, 0.0, 0.0, 0.0)
    if universe is None:
        tp = len(pred & true)
        counts = Counts(tp, len(pred) - tp, len(true) - tp, 0)
        s = counts.scores()
        return Scores(s.precision, s.recall, s.f1, 0.0)
    return Counts.of(pred, true, universe).scores()


def length_bucket(num_turns: int) -> str:
    """`"<35"`, `"35-65"` or `">65"` (the paper's dialogue-length breakdown)."""
    return "<35" if num_turns < 35 else ("35-65" if num_turns <= 65 else ">65")


# ----------------------------------------------------------------------------------------------
# Samples
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SampleScore:
    """Confusion counts of one sample, per modality."""

    utterance: Counts
    image: Counts


def as_answer(prediction: Any, parse_mode: str = "lenient") -> Answer:
    """A prediction as an `Answer`: text is parsed with `parse_mode` (unparsable -> empty lists);
    `Answer`, `{"utterance_ids", "image_ids"}` and `(utterance_ids, image_ids)` are taken as is."""
    if prediction is None or isinstance(prediction, str):
        parsed = parse_answer(prediction, parse_mode) if prediction is not None else None
        return parsed if parsed is not None else Answer([], [])
    if isinstance(prediction, Answer):
        return prediction
    if isinstance(prediction, Mapping):
        return Answer(list(prediction.get("utterance_ids") or []), list(prediction.get("image_ids") or []))
    utterance_ids, image_ids = prediction
    return Answer(list(utterance_ids), list(image_ids))


def score_sample(prediction: Any, gold: Any, num_utterances: int, num_images: int,
                 parse_mode: str = "lenient") -> SampleScore:
    """Counts of one sample. `num_utterances`/`num_images` are the number of ids of each modality in
    the prompt (max id + 1); 0 means "no tag", i.e. the 21-id universe.

    >>> score_sample("<|utt_ids_start|>[0, 1]<|utt_ids_end|>;<|img_ids_start|>[]<|img_ids_end|>",
    ...              Answer([1], []), num_utterances=5, num_images=0)
    SampleScore(utterance=Counts(tp=1, fp=1, fn=0, tn=3), image=Counts(tp=0, fp=0, fn=0, tn=21))
    """
    pred, true = as_answer(prediction, parse_mode), as_answer(gold, "lenient")
    return SampleScore(
        Counts.of(pred.utterance_ids, true.utterance_ids, universe_size(num_utterances)),
        Counts.of(pred.image_ids, true.image_ids, universe_size(num_images)),
    )


@dataclass(frozen=True)
class EvalSample:
    """One (prediction, gold) pair with its universe sizes.

    `prediction` is model text (parsed with the evaluation's parse mode) or ids; `gold` an `Answer`
    or answer text. `num_turns` (for the length breakdown) defaults to `num_utterances`.
    """

    prediction: Any
    gold: Any
    num_utterances: int
    num_images: int
    num_turns: int | None = None
    sample_id: str | None = None

    @property
    def turns(self) -> int:
        return self.num_turns if self.num_turns is not None else self.num_utterances


@dataclass
class EvaluationReport:
    """Global metrics (the paper's numbers), counts, and optionally macro metrics by length."""

    num_samples: int
    utterance: Scores
    image: Scores
    joint: Scores
    utterance_counts: Counts
    image_counts: Counts
    per_sample: dict[str, Scores] | None = None
    by_length: dict[str, EvaluationReport] = field(default_factory=dict)
    num_unparsed: int = 0

    def to_dict(self, per_sample: bool = False) -> dict:
        """The released tool's JSON (`sentence_metrics`, `image_metrics`, `joint_metrics`,
        `num_samples`); with `per_sample`, also `per_sample_metrics`, `by_length` and `counts`."""
        out: dict[str, Any] = {
            "sentence_metrics": self.utterance.to_dict(),
            "image_metrics": self.image.to_dict(),
            "joint_metrics": self.joint.to_dict(),
            "num_samples": self.num_samples,
        }
        if per_sample:
            if self.per_sample is not None:
                out["per_sample_metrics"] = {
                    name: scores.to_dict(prefix="") for name, scores in self.per_sample.items()
                }
            out["by_length"] = {name: sub.to_dict(per_sample=True) for name, sub in self.by_length.items()}
            out["counts"] = {
                "sentence": self.utterance_counts.__dict__.copy(), "image": self.image_counts.__dict__.copy(),
            }
            out["num_unparsed"] = self.num_unparsed
        return out


def evaluate(samples: Sequence[EvalSample], parse_mode: str = "lenient", per_sample: bool = False,
             by_length: bool = False) -> EvaluationReport:
    """Score a set of samples: global metrics always, macro metrics and the length breakdown on request.

    Text predictions that do not parse in `parse_mode` count as empty answers (`num_unparsed` says
    how many); `lenient` is the released tool's behaviour.
    """
    if parse_mode not in PARSE_MODES:
        raise ValueError(f"unknown parse mode {parse_mode!r}; choose one of {PARSE_MODES}")
    utt_total, img_total = Counts(), Counts()
    macro = {"sentence": [0.0] * 4, "image": [0.0] * 4}
    unparsed = 0
    for sample in samples:
        if isinstance(sample.prediction, str) and parse_answer(sample.prediction, parse_mode) is None:
            unparsed += 1
        pred, gold = as_answer(sample.prediction, parse_mode), as_answer(sample.gold, "lenient")
        u_size, i_size = universe_size(sample.num_utterances), universe_size(sample.num_images)
        utt_total += Counts.of(pred.utterance_ids, gold.utterance_ids, u_size)
        img_total += Counts.of(pred.image_ids, gold.image_ids, i_size)
        if per_sample:
            for name, p, g, size in (("sentence", pred.utterance_ids, gold.utterance_ids, u_size),
                                     ("image", pred.image_ids, gold.image_ids, i_size)):
                s = set_scores(p, g, size)
                for k, v in enumerate((s.precision, s.recall, s.f1, s.mcc)):
                    macro[name][k] += v
    n = len(samples)
    utterance, image = utt_total.scores(), img_total.scores()
    report = EvaluationReport(n, utterance, image, joint_scores(utterance, image), utt_total, img_total,
                              num_unparsed=unparsed)
    if per_sample:
        u_macro = Scores(*(_div(v, n) for v in macro["sentence"]))
        i_macro = Scores(*(_div(v, n) for v in macro["image"]))
        report.per_sample = {"sentence": u_macro, "image": i_macro, "joint": joint_scores(u_macro, i_macro)}
    if by_length:
        for bucket in LENGTH_BUCKETS:
            subset = [s for s in samples if length_bucket(s.turns) == bucket]
            if subset:
                report.by_length[bucket] = evaluate(subset, parse_mode, per_sample=per_sample)
    return report


# ----------------------------------------------------------------------------------------------
# Prediction files
# ----------------------------------------------------------------------------------------------
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


def sample_from_record(record: Mapping) -> EvalSample:
    """An `EvalSample` from one record of a predictions file (released inference JSONL or ours).

    Released: `{"messages": [system?, user, assistant], "labels": gold text, "response": text}`;
    the universe comes from the user prompt's id tags, gold from `labels` (else the assistant
    message). Ours: `{"prediction": text | {"utterance_ids", "image_ids"}, "gold_utterance_ids",
    "gold_image_ids", "num_turns", "num_images"}` (`"gold"`/`"solution"` answer text may replace
    the two gold lists, and `"prompt"` the two sizes). Raises `KeyError`/`TypeError`/`ValueError`
    naming the field when the record is malformed.
    """
    if not isinstance(record, Mapping):
        raise TypeError(f"record must be a JSON object, got {type(record).__name__}")
    if "messages" in record:
        messages = record["messages"]
        if not isinstance(messages, list) or not all(isinstance(m, Mapping) for m in messages):
            raise TypeError("'messages' must be a list of {role, content} objects")
        users = [m for m in messages if m.get("role") == "user"]
        if not users:
            raise ValueError("'messages' has no user message (the prompt)")
        prompt = _message_text(users[0].get("content"))
        if "response" not in record:
            raise KeyError("response")
        gold = record.get("labels")
        if gold is None:
            assistants = [m for m in messages if m.get("role") == "assistant"]
            if not assistants:
                raise KeyError("labels (and no assistant message to take the gold answer from)")
            gold = _message_text(assistants[-1].get("content"))
        if not isinstance(gold, str):
            raise TypeError("'labels' must be the gold answer string")
        response = record["response"]
        if response is not None and not isinstance(response, str):
            raise TypeError("'response' must be a string")
        num_utt, num_img, turns = prompt_universe(prompt)
        return EvalSample(response, gold, num_utt, num_img, turns, _sample_id(record))
    if "prediction" in record:
        prediction = record["prediction"]
        if isinstance(prediction, Mapping):
            prediction = Answer(_id_list(prediction, "utterance_ids", "prediction."),
                                _id_list(prediction, "image_ids", "prediction."))
        elif prediction is not None and not isinstance(prediction, str):
            raise TypeError("'prediction' must be answer text or {utterance_ids, image_ids}")
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
        if isinstance(gold, Answer):  # our format states the sizes: gold must fit in them
            for name, ids, size in (("gold_utterance_ids", gold.utterance_ids, num_utt),
                                    ("gold_image_ids", gold.image_ids, num_img)):
                bad = [i for i in ids if not 0 <= i < size]
                if bad:
                    raise ValueError(f"'{name}' has ids {bad} out of range for a sample with {size} "
                                     f"{'turns' if name == 'gold_utterance_ids' else 'images'}")
        return EvalSample(prediction, gold, num_utt, num_img, turns, _sample_id(record))
    raise KeyError("'messages' (released inference format) or 'prediction' (f2rvlm format)")


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


def read_predictions(path: str | os.PathLike) -> list[EvalSample]:
    """All samples of a predictions file: JSON Lines (one record a line, blank lines skipped) or a
    JSON list. `PredictionFileError` names the file and line of the first malformed record."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise PredictionFileError(f"predictions file not found: {path}")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if text.lstrip().startswith("["):
        try:
            records = json.loads(text)
        except json.JSONDecodeError as err:
            raise PredictionFileError(f"{path}: not valid JSON (line {err.lineno}: {err.msg})") from None
        located = [(f"record {i}", r) for i, r in enumerate(records)]
    else:
        located = []
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                located.append((f"line {lineno}", json.loads(line)))
            except json.JSONDecodeError as err:
                raise PredictionFileError(f"{path}, line {lineno}: not valid JSON ({err.msg})") from None
    samples = []
    for where, record in located:
        try:
            samples.append(sample_from_record(record))
        except KeyError as err:
            raise PredictionFileError(f"{path}, {where}: missing field {err.args[0]}") from None
        except (TypeError, ValueError) as err:
            raise PredictionFileError(f"{path}, {where}: {err}") from None
    if not samples:
        raise PredictionFileError(f"{path}: no predictions in the file")
    return samples


def evaluate_predictions_file(path: str | os.PathLike, parse_mode: str = "lenient", per_sample: bool = False) -> dict:
    """The metrics of a predictions file as a JSON-ready dict (what `f2rvlm eval` prints).

    Without `per_sample` the dict has exactly the released tool's structure (drop-in replacement);
    with it, macro metrics, the length breakdown and the raw counts are added.
    """
    report = evaluate(read_predictions(path), parse_mode, per_sample=per_sample, by_length=per_sample)
    return report.to_dict(per_sample=per_sample)


def format_report(report: Mapping) -> str:
    """A readable table of a `evaluate_predictions_file` dict."""
    lines = [f"samples: {report['num_samples']}", _table(report)]
    if "per_sample_metrics" in report:
        lines += ["", "per-sample (macro):", _table(report["per_sample_metrics"], prefix="")]
    for bucket, sub in (report.get("by_length") or {}).items():
        lines += ["", f"dialogues with {bucket} turns ({sub['num_samples']} samples):", _table(sub)]
    if report.get("num_unparsed"):
        lines += ["", f"unparsable responses (scored as empty answers): {report['num_unparsed']}"]
    return "\n".join(lines)


def _table(metrics: Mapping, prefix: str = "global_") -> str:
    rows = [f"{'':<10}{'P':>9}{'R':>9}{'F1':>9}{'MCC':>9}"]
    for label, key in (("utterance", "sentence"), ("image", "image"), ("joint", "joint")):
        m = metrics[f"{key}_metrics"] if f"{key}_metrics" in metrics else metrics[key]
        rows.append(f"{label:<10}" + "".join(f"{m[prefix + k]:>9.4f}" for k in ("precision", "recall", "f1", "mcc")))
    return "\n".join(rows)
