"""Difficulty-aware curriculum (docs/protocol.md §7): score, bucket, filter and order the GRPO set.

Input per training row: the SFT model's sampled answer, its token log-probabilities (or, for the
per-token option, its per-token predictive entropies) and the gold ids. Then:

1. avgF1 = mean of the utterance and image F1 (per-sample convention of `metrics`: empty gold
   scores 1 for an empty prediction, else 0); the answer is read as the released scripts read it
   (`metrics.id_values`, lenient by default). A row whose ids the released reading rejects (e.g.
   `<|utt_ids_start|>5<|utt_ids_end|>`) is dropped before the quartiles, as the released script
   skips it (difficulty `None`).
2. H (released rule, `entropy="sequence"`): p_t = exp(lp_t) / sum exp(lp),
   H = -sum p_t log(p_t + 1e-12); no log-probs -> H = 10. Option `entropy="token"`: the mean
   per-token predictive entropy (needs full distributions, so the caller passes per-token
   entropies); none -> 10.
3. Quartiles of avgF1 and H over the whole set with `numpy.quantile(method="linear")` (numpy's
   default). easy: F1 >= Q75(F1) and H <= Q25(H); else middle: F1 >= Q50 and H <= Q50; else
   confusing: F1 >= Q25 and H <= Q75; else hard.
4. Drop easy and middle rows whose gold is empty (no utterance and no image). Keep the best 10%
   of the remaining middle rows and the best 50% of confusing ones, `max(1, int(n * fraction))`
   rows (at least one per non-empty bucket, as released); "best" = higher avgF1, ties in dataset
   order (a stable sort, as released). All easy and hard rows are kept.
5. Order easy -> middle -> confusing -> hard; easy and hard rows keep their dataset order, the kept
   middle and confusing rows are in avgF1-descending order (as released: the released script
   writes the sorted selection).

Options (this project's variants; the defaults are the released scripts, `course_sample_v1/v2.py`):
`tie_break="entropy"` breaks avgF1 ties by lower H, then dataset order; `bucket_order="dataset"`
writes the kept rows of every bucket in dataset order; `min_keep=0` lets a small bucket keep none
(`int(n * fraction)` rows).

>>> from f2rvlm.core.protocol import render_answer as A
>>> rows = [CurriculumSample(A([1], []), [1], [], logprobs=[-0.01, -0.02]),
...         CurriculumSample(A([2], []), [1], [], logprobs=[-2.0, -0.1, -3.0]),
...         CurriculumSample(A([], []), [], [], logprobs=None)]
>>> result = build_curriculum(rows)
>>> result.difficulty, result.order  # max(1, int(1 * 10%)) = 1 middle row kept, as released
(['middle', 'hard', 'hard'], [0, 1, 2])
>>> build_curriculum(rows, min_keep=0).order  # int(1 * 10%) = 0
[1, 2]
"""

from __future__ import annotations

import math  # noqa: F401  (used by a doctest)
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core.metrics import id_values, set_scores
from ..core.protocol import Answer

#: H of a row without log-probabilities (or per-token entropies).
NO_LOGPROB_ENTROPY = 10.0
DIFFICULTIES: tuple[str, ...] = ("easy", "middle", "confusing", "hard")
#: Fraction of each bucket kept (after dropping empty-gold easy/middle rows).
KEEP_FRACTIONS: dict[str, float] = {"easy": 1.0, "middle": 0.1, "confusing": 0.5, "hard": 1.0}
QUANTILE_METHOD = "linear"
#: Rows kept at least per non-empty middle / confusing bucket (released: `max(1, ...)`).
MIN_KEEP = 1
TIE_BREAKS = ("dataset", "entropy")
BUCKET_ORDERS = ("f1", "dataset")


@dataclass(frozen=True)
class CurriculumSample:
    """One GRPO training row as the curriculum sees it.

    Args:
        completion: the SFT model's sampled answer (text, or an `Answer`).
        gold_utterance_ids / gold_image_ids: the gold ids.
        logprobs: log-probabilities of the answer's tokens (released entropy rule).
        token_entropies: per-token predictive entropies (option `entropy="token"`).
    """

    completion: Any
    gold_utterance_ids: Sequence[int]
    gold_image_ids: Sequence[int]
    logprobs: Sequence[float] | None = None
    token_entropies: Sequence[float] | None = None

    @property
    def gold_is_empty(self) -> bool:
        return not self.gold_utterance_ids and not self.gold_image_ids


def average_f1(prediction: Any, gold: Answer, parse_mode: str = "lenient") -> float:
    """Mean of utterance and image F1 with the per-sample convention.

    >>> average_f1("<|utt_ids_start|>[1, 2]<|utt_ids_end|>;<|img_ids_start|>[]<|img_ids_end|>", Answer([1], []))
    0.8333333333333333
    """
    pu, pi, _ = id_values(prediction, parse_mode)
    return (set_scores(pu, gold.utterance_ids).f1 + set_scores(pi, gold.image_ids).f1) / 2


def sequence_entropy(logprobs: Sequence[float] | None) -> float:
    """Entropy of the token probabilities normalised over the answer (released rule, with its
    `+ 1e-12` inside the log).

    >>> round(sequence_entropy([-1.0, -1.0]), 6) == round(math.log(2), 6), sequence_entropy(None)
    (True, 10.0)
    """
    if logprobs is None or len(logprobs) == 0:
        return NO_LOGPROB_ENTROPY
    lp = np.asarray(logprobs, dtype=np.float64)
    probs = np.exp(lp - lp.max())  # exp(lp_t) / sum exp(lp), without underflow for very negative log-probs
    probs /= probs.sum()
    return float(-np.sum(probs * np.log(probs + 1e-12)))


def predictive_entropy(token_entropies: Sequence[float] | None) -> float:
    """Mean per-token predictive entropy (the per-token option); none -> 10."""
    if token_entropies is None or len(token_entropies) == 0:
        return NO_LOGPROB_ENTROPY
    return float(np.mean(np.asarray(token_entropies, dtype=np.float64)))


@dataclass(frozen=True)
class Quartiles:
    q25: float
    q50: float
    q75: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Quartiles:
        q = np.quantile(np.asarray(values, dtype=np.float64), [0.25, 0.5, 0.75], method=QUANTILE_METHOD)
        return cls(float(q[0]), float(q[1]), float(q[2]))


def assign_difficulty(f1s: Sequence[float], entropies: Sequence[float]) -> tuple[list[str], Quartiles, Quartiles]:
    """Bucket of every row from the quartiles of avgF1 and H over the whole set.

    >>> assign_difficulty([1.0, 0.5, 0.0, 1.0], [0.1, 1.0, 5.0, 0.1])[0]
    ['easy', 'confusing', 'hard', 'easy']
    """
    if len(f1s) != len(entropies):
        raise ValueError(f"{len(f1s)} F1 values but {len(entropies)} entropies")
    if not len(f1s):
        return [], Quartiles(0, 0, 0), Quartiles(0, 0, 0)
    qf, qh = Quartiles.of(f1s), Quartiles.of(entropies)
    labels = []
    for f, h in zip(f1s, entropies):
        if f >= qf.q75 and h <= qh.q25:
            labels.append("easy")
        elif f >= qf.q50 and h <= qh.q50:
            labels.append("middle")
        elif f >= qf.q25 and h <= qh.q75:
            labels.append("confusing")
        else:
            labels.append("hard")
    return labels, qf, qh


@dataclass
class CurriculumResult:
    """Kept row indices in training order, the difficulty of every row, the scores and a summary."""

    order: list[int]
    difficulty: list[str]
    f1: list[float]
    entropy: list[float]
    f1_quartiles: Quartiles
    entropy_quartiles: Quartiles
    summary: dict[str, dict[str, int]] = field(default_factory=dict)
    #: Rows the released reading could not score (difficulty None; left out, as released).
    unscored: list[int] = field(default_factory=list)


def build_curriculum(samples: Sequence[CurriculumSample], entropy: str = "sequence", parse_mode: str = "lenient",
                     keep_fractions: dict[str, float] | None = None, tie_break: str = "dataset",
                     bucket_order: str = "f1", min_keep: int = MIN_KEEP) -> CurriculumResult:
    """Score, bucket, filter and order rows (module docstring). `entropy`: "sequence" (released
    rule, default) or "token" (mean per-token predictive entropy); `tie_break`, `bucket_order`,
    `min_keep`: released by default, this project's variants as options."""
    if entropy not in ("sequence", "token"):
        raise ValueError(f"entropy must be 'sequence' or 'token', got {entropy!r}")
    if tie_break not in TIE_BREAKS:
        raise ValueError(f"tie_break must be one of {TIE_BREAKS}, got {tie_break!r}")
    if bucket_order not in BUCKET_ORDERS:
        raise ValueError(f"bucket_order must be one of {BUCKET_ORDERS}, got {bucket_order!r}")
    fractions = dict(KEEP_FRACTIONS, **(keep_fractions or {}))
    f1s: list[float] = []
    scored: list[int] = []
    for i, s in enumerate(samples):
        try:
            f1s.append(average_f1(s.completion, Answer(list(s.gold_utterance_ids), list(s.gold_image_ids)), parse_mode))
            scored.append(i)
        except TypeError:  # ids the released reading cannot make a set of: the released script skips the row
            f1s.append(float("nan"))
    hs = [sequence_entropy(s.logprobs) if entropy == "sequence" else predictive_entropy(s.token_entropies)
          for s in samples]
    scored_labels, qf, qh = assign_difficulty([f1s[i] for i in scored], [hs[i] for i in scored])
    labels: list[str | None] = [None] * len(samples)
    for i, label in zip(scored, scored_labels):
        labels[i] = label
    summary = {name: {"total": 0, "dropped_empty_gold": 0, "dropped_by_rank": 0, "kept": 0} for name in DIFFICULTIES}
    order: list[int] = []
    for name in DIFFICULTIES:
        rows = [i for i, label in enumerate(labels) if label == name]
        summary[name]["total"] = len(rows)
        if name in ("easy", "middle"):
            empty = [i for i in rows if samples[i].gold_is_empty]
            summary[name]["dropped_empty_gold"] = len(empty)
            rows = [i for i in rows if not samples[i].gold_is_empty]
        if fractions[name] >= 1:
            keep, ranked = len(rows), list(rows)
        else:
            keep = min(len(rows), max(min_keep, int(len(rows) * fractions[name])))
            key = (lambda i: (-f1s[i], hs[i], i)) if tie_break == "entropy" else (lambda i: (-f1s[i], i))
            ranked = sorted(rows, key=key)
        best = ranked[:keep]
        summary[name]["dropped_by_rank"] = len(rows) - keep
        summary[name]["kept"] = keep
        order += best if bucket_order == "f1" else sorted(best)
    result = CurriculumResult(order, labels, f1s, hs, qf, qh, summary)
    result.unscored = [i for i, label in enumerate(labels) if label is None]
    return result
