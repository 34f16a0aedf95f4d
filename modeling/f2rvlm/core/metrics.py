"""The paper's evaluation (docs/protocol.md §5): global (micro) and per-sample (macro) P/R/F1/MCC.

One metric module for everything that scores an answer: `f2rvlm eval`, `recipes/evaluate.py`, the
model card, the GRPO rewards and the curriculum all call the functions below. Prediction files
(one record format, `prediction_record` / `read_predictions`) live in `core.predictions`.

Counting is exactly that of the released evaluation tool (`eval_multi_modal_retrieval_F1.py`):

- Reading an answer text (`released_id_values`): the first `<|utt_ids_start|>...<|utt_ids_end|>`
  (and img) pair on one line (the released regex has no DOTALL), stripped, parsed with `json.loads`;
  a missing pair or text that is not JSON counts as an empty list. The parsed JSON value is used as
  is: non-integer values count as ids of their own (`"3"` and `1.5` never match gold `3`; `1.0` and
  `true` equal `1` as Python set members), a JSON string counts as the set of its characters, and
  a value `set()` rejects (a number, `null`, a nested list) makes the sample fail as it does in the
  released tool (below).
- Each modality is scored over a per-sample *universe* `{0..max_id}`, where `max_id` is the largest
  id tag of that modality in the first user message of the record's prompt, and 20 when it has none
  (a dialogue without images adds 21 true negatives to the image counts).
- Global counts over id SETS (duplicated ids count once): TP = |pred & gold|, FP = |pred - gold|,
  FN = |gold - pred|, TN = |universe - (pred | gold)|. A predicted id outside the universe (a
  hallucinated or out-of-range id, a negative id) is a false positive: a model that invents ids
  loses precision, as in the paper. Summed over all samples, then P, R, F1, MCC (any zero
  denominator -> 0). Joint: P and R are harmonic means of the two modalities' P and R; F1 and MCC
  arithmetic means. Reported to 4 decimals.
- Per-sample (macro) P/R/F1 count the same sets (hallucinated ids are false positives); a sample
  with empty gold scores (1, 1, 1) for an empty prediction and (0, 0, 0) otherwise. The per-sample
  MCC only looks inside the universe: TP = |pred & gold|, FP = |(pred & universe) - gold|,
  FN = |(gold & universe) - pred|, TN = |universe - pred - gold| (0 for an empty-gold sample, as
  released; `empty_gold_mcc=True` is this project's option that scores it 1 or 0 like F1). The
  per-sample joint P/R are harmonic means per sample, averaged; the averages run over the samples
  that could be scored.
- A sample whose ids `set()` rejects: in the global counts, the utterance counts of a sample whose
  image ids fail are kept (the released loop adds them first), nothing of a sample whose utterance
  ids fail; in the per-sample averages the whole sample is left out. `num_samples` counts it.
  (`num_failed` says how many.)
- Prediction files: a record without `labels` or `response`, or a line that is not JSON, is skipped
  as the released tool skips it (`num_skipped` says how many, with a warning naming the line);
  `strict=True` makes them errors. A `labels`/`response` that is not a string stops the released
  tool; here it is an error naming the line.

>>> from f2rvlm.core.protocol import Answer
>>> report = evaluate([EvalSample(Answer([1, 2], []), Answer([2, 3], []), num_utterances=10, num_images=0)])
>>> report.utterance.f1, report.image.f1, report.joint.f1
(0.5, 0.0, 0.25)
>>> evaluate([EvalSample(Answer([1, 99], []), Answer([1], []), num_utterances=3, num_images=0)]).utterance.precision
0.5
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .protocol import (
    IMG_ID_END,
    IMG_ID_START,
    IMG_IDS_END,
    IMG_IDS_START,
    PARSE_MODES,
    UTT_ID_END,
    UTT_ID_START,
    UTT_IDS_END,
    UTT_IDS_START,
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

    `of` counts as the released tool's global metrics (ids outside the universe are false
    positives); `within` as its per-sample MCC (only ids inside the universe count).

    >>> Counts.of([1, 2, 2, 17], [2, 3], universe_size=10)
    Counts(tp=1, fp=2, fn=1, tn=7)
    >>> Counts.within([1, 2, 2, 17], [2, 3], universe_size=10)
    Counts(tp=1, fp=1, fn=1, tn=7)
    >>> Counts.of([1, 2], [2, 3], universe_size=10).scores()
    Scores(precision=0.5, recall=0.5, f1=0.5, mcc=0.375)
    """

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    @classmethod
    def of(cls, predicted: Iterable[Any], gold: Iterable[Any], universe_size: int) -> Counts:
        """Released global counts: TP = |P & G|, FP = |P - G|, FN = |G - P|, TN = |U - (P | G)|
        over Python sets of the given values (`set()` errors propagate: the caller decides)."""
        pred, true = set(predicted), set(gold)
        universe = set(range(universe_size))
        return cls(len(pred & true), len(pred - true), len(true - pred), len(universe - (pred | true)))

    @classmethod
    def within(cls, predicted: Iterable[Any], gold: Iterable[Any], universe_size: int) -> Counts:
        """Released per-sample MCC counts: TP = |P & G| (anywhere), FP, FN, TN inside the universe."""
        pred, true = set(predicted), set(gold)
        universe = set(range(universe_size))
        return cls(len(pred & true), len((pred & universe) - true), len((true & universe) - pred),
                   len(universe - pred - true))

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


def set_scores(predicted: Iterable[Any], gold: Iterable[Any], universe: int | None = None,
               empty_gold_mcc: bool = False) -> Scores:
    """Per-sample scores of one modality, as the released tool's `calculate_prf` / `calculate_mcc`.

    Empty gold: P = R = F1 = 1 for an empty prediction, else 0. Otherwise P/R/F1 over id sets (a
    hallucinated id is a false positive). MCC over `universe` ids (`Counts.within`; 0 when
    `universe` is None); with `empty_gold_mcc`, an empty-gold sample's MCC is its F1 (1 or 0).

    >>> set_scores([], []), set_scores([1], [])
    (Scores(precision=1.0, recall=1.0, f1=1.0, mcc=0.0), Scores(precision=0.0, recall=0.0, f1=0.0, mcc=0.0))
    >>> set_scores([1, 2], [2]).f1, set_scores([1, 99], [1], universe=5).precision
    (0.6666666666666666, 0.5)
    """
    pred, true = set(predicted), set(gold)
    mcc = Counts.within(pred, true, universe).scores().mcc if universe is not None else 0.0
    if not true:
        value = 1.0 if not pred else 0.0
        return Scores(value, value, value, value if empty_gold_mcc else mcc)
    tp = len(pred & true)
    precision, recall = _div(tp, len(pred)), tp / len(true)
    return Scores(precision, recall, _div(2 * precision * recall, precision + recall), mcc)


# ----------------------------------------------------------------------------------------------
# Reading answers as the released tool does
# ----------------------------------------------------------------------------------------------
def _released_tagged(text: str, start: str, end: str) -> tuple[Any, bool]:
    """`re.search(start + "(.*?)" + end)` without DOTALL, in linear time: the first line (split on
    "\n" only, as `.` excludes only "\n") whose first `start` is followed by an `end`."""
    for line in text.split("\n"):
        i = line.find(start)
        if i < 0:
            continue
        j = line.find(end, i + len(start))
        if j < 0:
            continue
        try:
            return json.loads(line[i + len(start):j].strip()), True
        except (ValueError, RecursionError):  # JSONDecodeError (RecursionError: released crashes)
            return [], False
    return [], True


def released_id_values(text: str | None) -> tuple[Any, Any, bool]:
    """`(utterance value, image value, parsed)` of an answer text as the released tool reads it:
    the JSON value of each tagged list (`[]` when the tags are missing or the text is not JSON);
    `parsed` is False when a tagged list was present but not JSON.

    >>> released_id_values('x <|utt_ids_start|>[1, 1, "2"]<|utt_ids_end|>;<|img_ids_start|>[0,<|img_ids_end|>')
    ([1, 1, '2'], [], False)
    >>> released_id_values("<|utt_ids_start|>[1,\\n2]<|utt_ids_end|>")  # the list spans a newline: not found
    ([], [], True)
    """
    if text is None:
        return [], [], True
    utt, ok_u = _released_tagged(text, UTT_IDS_START, UTT_IDS_END)
    img, ok_i = _released_tagged(text, IMG_IDS_START, IMG_IDS_END)
    return utt, img, ok_u and ok_i


def length_bucket(num_turns: int) -> str:
    """`"<35"`, `"35-65"` or `">65"` (the paper's dialogue-length breakdown)."""
    return "<35" if num_turns < 35 else ("35-65" if num_turns <= 65 else ">65")


# ----------------------------------------------------------------------------------------------
# Samples
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SampleScore:
    """Confusion counts of one sample, per modality (released global counting)."""

    utterance: Counts
    image: Counts


def as_answer(prediction: Any, parse_mode: str = "lenient") -> Answer:
    """A prediction as an `Answer` of integer ids (for code that needs ids, e.g. the curriculum):
    text is parsed with `parse_mode` (lenient: the released reading; values that are not integers
    are dropped here, unlike `id_values`); `Answer`, `{"utterance_ids", "image_ids"}` and
    `(utterance_ids, image_ids)` are taken as is."""
    utt, img, _ = id_values(prediction, parse_mode)
    return Answer(*([v for v in value if type(v) is int] if isinstance(value, list) else [] for value in (utt, img)))


def id_values(prediction: Any, parse_mode: str = "lenient") -> tuple[Any, Any, bool]:
    """`(utterance ids, image ids, parsed)` of a prediction or gold, as counted by the metrics.

    Text in `lenient` mode is read as the released tool reads it (`released_id_values`: the raw
    JSON values); in `strict` / `reasoning` mode it must parse (`protocol.parse_answer`), else both
    lists are empty and `parsed` is False. `Answer`, mappings and pairs are taken as is."""
    if prediction is None or isinstance(prediction, str):
        if parse_mode == "lenient":
            return released_id_values(prediction)
        if parse_mode not in PARSE_MODES:
            raise ValueError(f"unknown parse mode {parse_mode!r}; choose one of {PARSE_MODES}")
        parsed = parse_answer(prediction, parse_mode) if prediction is not None else None
        return (parsed.utterance_ids, parsed.image_ids, True) if parsed is not None else ([], [], False)
    if isinstance(prediction, Answer):
        return prediction.utterance_ids, prediction.image_ids, True
    if isinstance(prediction, Mapping):
        return list(prediction.get("utterance_ids") or []), list(prediction.get("image_ids") or []), True
    utterance_ids, image_ids = prediction
    return list(utterance_ids), list(image_ids), True


def score_sample(prediction: Any, gold: Any, num_utterances: int, num_images: int,
                 parse_mode: str = "lenient") -> SampleScore:
    """Counts of one sample. `num_utterances`/`num_images` are the number of ids of each modality in
    the prompt (max id + 1); 0 means "no tag", i.e. the 21-id universe. Raises `TypeError` where the
    released tool fails on the sample.

    >>> score_sample("<|utt_ids_start|>[0, 1, 9]<|utt_ids_end|>;<|img_ids_start|>[]<|img_ids_end|>",
    ...              Answer([1], []), num_utterances=5, num_images=0)
    SampleScore(utterance=Counts(tp=1, fp=2, fn=0, tn=3), image=Counts(tp=0, fp=0, fn=0, tn=21))
    """
    pu, pi, _ = id_values(prediction, parse_mode)
    gu, gi, _ = id_values(gold, "lenient")
    return SampleScore(Counts.of(pu, gu, universe_size(num_utterances)), Counts.of(pi, gi, universe_size(num_images)))


@dataclass(frozen=True)
class EvalSample:
    """One (prediction, gold) pair with its universe sizes.

    `prediction` is model text (parsed with the evaluation's parse mode) or ids; `gold` an `Answer`
    or answer text (read as the released tool reads `labels`). `num_turns` (for the length
    breakdown) defaults to `num_utterances`.
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
    num_failed: int = 0
    num_skipped: int = 0

    def to_dict(self, per_sample: bool = False) -> dict:
        """The released tool's JSON (`sentence_metrics`, `image_metrics`, `joint_metrics`,
        `num_samples`); with `per_sample`, also `per_sample_metrics` (the released per-sample
        function's structure: `avg_precision`, ...), `by_length`, `counts` and the number of
        unparsed / failed / skipped records."""
        out: dict[str, Any] = {
            "sentence_metrics": self.utterance.to_dict(),
            "image_metrics": self.image.to_dict(),
            "joint_metrics": self.joint.to_dict(),
            "num_samples": self.num_samples,
        }
        if per_sample:
            if self.per_sample is not None:
                out["per_sample_metrics"] = {
                    f"{name}_metrics": scores.to_dict(prefix="avg_") for name, scores in self.per_sample.items()
                }
                out["per_sample_metrics"]["num_samples"] = self.num_samples
            out["by_length"] = {name: sub.to_dict(per_sample=True) for name, sub in self.by_length.items()}
            out["counts"] = {
                "sentence": self.utterance_counts.__dict__.copy(), "image": self.image_counts.__dict__.copy(),
            }
            out["num_unparsed"] = self.num_unparsed
            out["num_failed"] = self.num_failed
            out["num_skipped"] = self.num_skipped
        return out


def evaluate(samples: Sequence[EvalSample], parse_mode: str = "lenient", per_sample: bool = False,
             by_length: bool = False, empty_gold_mcc: bool = False) -> EvaluationReport:
    """Score a set of samples: global metrics always, macro metrics and the length breakdown on request.

    `lenient` (default) reads answer texts as the released tool does; in `strict` / `reasoning`
    mode a text that does not parse counts as an empty answer. `num_unparsed` counts texts with
    an unparsable list, `num_failed` samples the released tool fails on (module docstring).
    """
    if parse_mode not in PARSE_MODES:
        raise ValueError(f"unknown parse mode {parse_mode!r}; choose one of {PARSE_MODES}")
    utt_total, img_total = Counts(), Counts()
    rows: list[tuple[Scores, Scores, Scores]] = []
    unparsed = failed = 0
    for sample in samples:
        pu, pi, ok = id_values(sample.prediction, parse_mode)
        unparsed += not ok
        gu, gi, _ = id_values(sample.gold, "lenient")
        u_size, i_size = universe_size(sample.num_utterances), universe_size(sample.num_images)
        try:  # the released loop adds the utterance counts before it reads the image ids
            utt_total += Counts.of(pu, gu, u_size)
            img_total += Counts.of(pi, gi, i_size)
        except TypeError:
            failed += 1
            continue
        if per_sample:
            u = set_scores(pu, gu, u_size, empty_gold_mcc)
            i = set_scores(pi, gi, i_size, empty_gold_mcc)
            rows.append((u, i, joint_scores(u, i)))
    n = len(samples)
    utterance, image = utt_total.scores(), img_total.scores()
    report = EvaluationReport(n, utterance, image, joint_scores(utterance, image), utt_total, img_total,
                              num_unparsed=unparsed, num_failed=failed)
    if per_sample:
        report.per_sample = {
            name: Scores(*(_div(sum(getattr(r[k], f) for r in rows), len(rows))
                           for f in ("precision", "recall", "f1", "mcc")))
            for k, name in enumerate(("sentence", "image", "joint"))
        }
    if by_length:
        for bucket in LENGTH_BUCKETS:
            subset = [s for s in samples if length_bucket(s.turns) == bucket]
            if subset:
                report.by_length[bucket] = evaluate(subset, parse_mode, per_sample=per_sample,
                                                    empty_gold_mcc=empty_gold_mcc)
    return report
