"""Curriculum (docs/protocol.md §7) on hand-made sets, ties and tiny sets."""

import doctest
import math

import numpy as np
import pytest
from f2rvlm.core.protocol import Answer
from f2rvlm.core.protocol import render_answer as A
from f2rvlm.training import curriculum
from f2rvlm.training.curriculum import (
    CurriculumSample,
    Quartiles,
    assign_difficulty,
    average_f1,
    build_curriculum,
    predictive_entropy,
    sequence_entropy,
)


def test_doctests():
    assert doctest.testmod(curriculum).failed == 0


def test_entropy_by_hand():
    # p = softmax([0, ln 3]) = [1/4, 3/4]
    h = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    assert sequence_entropy([0.0, math.log(3)]) == pytest.approx(h)
    assert sequence_entropy([-1000.0, -1000.0 + math.log(3)]) == pytest.approx(h)  # stable
    # released: -sum p log(p + 1e-12), so one token gives -log(1 + 1e-12), not exactly 0
    assert sequence_entropy([]) == 10.0 and sequence_entropy([-5.0]) == pytest.approx(0.0, abs=1e-11)
    assert predictive_entropy([0.5, 1.5]) == 1.0 and predictive_entropy(None) == 10.0


def test_average_f1_conventions():
    assert average_f1(A([], []), Answer([], [])) == 1.0
    assert average_f1(A([1], []), Answer([], [])) == 0.5
    assert average_f1("garbage", Answer([1], [0])) == 0.0
    assert average_f1(A([1, 2], [0]), Answer([2], [0])) == pytest.approx((2 / 3 + 1) / 2)


def test_quartiles_use_numpy_linear():
    assert Quartiles.of([0, 1, 2, 3, 4]) == Quartiles(1.0, 2.0, 3.0)
    assert Quartiles.of([0, 1]) == Quartiles(0.25, 0.5, 0.75)
    assert Quartiles.of([3, 1, 2, 10]).q75 == pytest.approx(np.quantile([3, 1, 2, 10], 0.75))


def test_buckets_with_ties():
    # every F1 equal and every H equal: all quartiles equal -> every row is easy
    labels, _qf, _qh = assign_difficulty([0.5] * 4, [1.0] * 4)
    assert labels == ["easy"] * 4
    # F1 Q25/50/75 = 0.25/0.5/0.75 over [0, .25, .5, .75, 1]; H quartiles 1/2/3 over [0..4]
    f1 = [1.0, 0.75, 0.5, 0.25, 0.0]
    h = [0.0, 1.0, 2.0, 3.0, 4.0]
    assert assign_difficulty(f1, h)[0] == ["easy", "easy", "middle", "confusing", "hard"]
    # high F1 but high entropy is not easy; boundary values count as inside (>=, <=)
    # F1 quartiles 0/0.5/1, H quartiles 0/2.5/5: the H = 5 rows sit exactly on Q75 -> confusing
    assert assign_difficulty([1.0, 1.0, 0.0, 0.0], [5.0, 0.0, 0.0, 5.0])[0] == ["confusing", "easy", "confusing", "confusing"]


def _rows(spec):
    """spec: (f1 in {1, 0}, logprobs, gold empty?) -> samples."""
    out = []
    for good, lps, empty in spec:
        gold = ([], []) if empty else ([1], [])
        pred = gold if good else ([7], [])
        out.append(CurriculumSample(A(*pred), gold[0], gold[1], logprobs=lps))
    return out


def test_drop_keep_and_order():
    rows = []
    # 20 confident-and-right rows (10 with empty gold), 20 unsure-but-right, 20 wrong-and-unsure
    for k in range(20):
        rows.append(CurriculumSample(A([1], []) if k % 2 else A([], []), [1] if k % 2 else [], [], logprobs=[-0.01] * 4 + [-0.001 * k]))
    for k in range(20):
        rows.append(CurriculumSample(A([1, 2], []), [1], [], logprobs=[-0.1 * (1 + k % 3), -2.0, -0.5 * k]))
    for k in range(20):
        rows.append(CurriculumSample(A([5], []), [1], [], logprobs=None))
    result = build_curriculum(rows)
    s = result.summary
    assert sum(v["total"] for v in s.values()) == 60
    for name in ("easy", "middle"):
        kept = [i for i in result.order if result.difficulty[i] == name]
        assert all(not rows[i].gold_is_empty for i in kept)
        assert s[name]["dropped_empty_gold"] == sum(rows[i].gold_is_empty for i, d in enumerate(result.difficulty) if d == name)
    remaining_middle = s["middle"]["total"] - s["middle"]["dropped_empty_gold"]
    assert s["middle"]["kept"] == int(remaining_middle * 0.1)
    assert s["confusing"]["kept"] == int(s["confusing"]["total"] * 0.5)
    assert s["hard"]["kept"] == s["hard"]["total"]
    # F1 = 0 is the Q25 and H = 10 the Q75 here (ties at the quartiles): wrong rows are "confusing"
    assert {result.difficulty[i] for i in range(40, 60)} == {"confusing"}
    # order: buckets easy -> middle -> confusing -> hard, dataset order inside a bucket
    rank = {"easy": 0, "middle": 1, "confusing": 2, "hard": 3}
    keys = [(rank[result.difficulty[i]], i) for i in result.order]
    assert keys == sorted(keys) and len(result.order) == sum(v["kept"] for v in s.values())


# -- reference: released course_sample_v1.py (bucketing) + course_sample_v2.py (selection, order) ----
def ref_released_order(rows):
    """Row indices in the released scripts' output order (written from the scripts, numpy only)."""
    import json as _json
    import re as _re

    def ids(text):
        out = {}
        for key, tag in (("s", "utt_ids"), ("i", "img_ids")):
            m = _re.search(r"<\|%s_start\|>(.*?)<\|%s_end\|>" % (tag, tag), text)
            try:
                out[key] = _json.loads(m.group(1).strip()) if m else []
            except _json.JSONDecodeError:
                out[key] = []
        return out

    def prf(gt, pred):
        g, p = set(gt), set(pred)
        if not g:
            return 1.0 if not p else 0.0
        inter = g & p
        pr, rc = (len(inter) / len(p) if p else 0.0), len(inter) / len(g)
        return 2 * pr * rc / (pr + rc) if pr + rc > 0 else 0

    samples = []
    for idx, r in enumerate(rows):
        gold_text = A(r.gold_utterance_ids, r.gold_image_ids)
        gt, pred = ids(gold_text), ids(r.completion)
        f1 = (prf(gt["s"], pred["s"]) + prf(gt["i"], pred["i"])) / 2
        if r.logprobs:
            p = np.exp(np.array(r.logprobs))
            p /= p.sum()
            h = -np.sum(p * np.log(p + 1e-12))
        else:
            h = 10.0
        samples.append((idx, f1, h, gt))
    fq = np.percentile([x[1] for x in samples], [25, 50, 75])
    hq = np.percentile([x[2] for x in samples], [25, 50, 75])
    out = []
    for idx, f1, h, gt in samples:
        if f1 >= fq[2] and h <= hq[0]:
            level = "easy"
        elif f1 >= fq[1] and h <= hq[1]:
            level = "middle"
        elif f1 >= fq[0] and h <= hq[2]:
            level = "confusing"
        else:
            level = "hard"
        if level in ("easy", "middle") and not gt["s"] and not gt["i"]:
            continue
        out.append({"idx": idx, "difficulty": level, "avg_f1": f1})
    groups = {}
    for s_ in out:
        groups.setdefault(s_["difficulty"], []).append(s_)
    selected = []
    for diff, items in groups.items():
        if diff in ("middle", "confusing"):
            n = max(1, int(len(items) * (0.1 if diff == "middle" else 0.5)))
            selected.extend(sorted(items, key=lambda x: x.get("avg_f1", 0), reverse=True)[:n])
        else:
            selected.extend(items)
    rank = {"easy": 0, "middle": 1, "confusing": 2, "hard": 3}
    selected.sort(key=lambda x: rank[x["difficulty"]])
    return [x["idx"] for x in selected]


def _random_rows(rng, n):
    rows = []
    for _ in range(n):
        gold_u = sorted(rng.sample(range(8), rng.randint(0, 3)))
        gold_i = sorted(rng.sample(range(3), rng.randint(0, 1)))
        kind = rng.randrange(5)
        if kind == 0:
            pred = A(gold_u, gold_i)
        elif kind == 1:
            pred = A(sorted(set(gold_u[:1] + [rng.randrange(10)])), gold_i)
        elif kind == 2:
            pred = "garbage"
        else:
            pred = A(sorted(rng.sample(range(10), rng.randint(0, 4))), [])
        lps = None if rng.random() < 0.15 else [round(-rng.random() * rng.choice([0.1, 1, 3]), 1)
                                                  for _ in range(rng.randint(1, 6))]
        rows.append(CurriculumSample(pred, gold_u, gold_i, logprobs=lps))
    return rows


@pytest.mark.parametrize("seed", range(6))
def test_order_equals_released_scripts(seed):
    import random

    rows = _random_rows(random.Random(seed), random.Random(seed).choice([7, 40, 300]))
    assert build_curriculum(rows).order == ref_released_order(rows)


def test_released_selection_by_hand():
    # middle bucket of 3 rows with equal F1: the released stable sort keeps the FIRST in file order
    # (not the lowest entropy), and max(1, int(3 * 10%)) = 1 row is kept.
    rows = [CurriculumSample(A([1], []), [1], [], logprobs=[-0.5, -0.1]),   # H higher
            CurriculumSample(A([1], []), [1], [], logprobs=[-0.1]),         # H lower
            CurriculumSample(A([1], []), [1], [], logprobs=[-0.3, -0.3])]
    labels = ["middle"] * 3
    import unittest.mock as mock

    with mock.patch.object(curriculum, "assign_difficulty", lambda f, h: (labels, Quartiles(0, 0, 0), Quartiles(0, 0, 0))):
        assert build_curriculum(rows).order == [0]
        assert build_curriculum(rows, tie_break="entropy").order == [1]
        assert build_curriculum(rows, min_keep=0).order == []
    # confusing rows are written in F1-descending order (released), or dataset order (option)
    rows = [CurriculumSample(A([1, 5], []), [1], [], logprobs=[-1.0]),     # F1 2/3
            CurriculumSample(A([7], []), [1], [], logprobs=[-1.0]),        # F1 0
            CurriculumSample(A([1], []), [1], [], logprobs=[-1.0]),        # F1 1
            CurriculumSample(A([1, 5, 6], []), [1], [], logprobs=[-1.0])]  # F1 1/2
    labels = ["confusing"] * 4
    with mock.patch.object(curriculum, "assign_difficulty", lambda f, h: (labels, Quartiles(0, 0, 0), Quartiles(0, 0, 0))):
        assert build_curriculum(rows).order == [2, 0]
        assert build_curriculum(rows, bucket_order="dataset").order == [0, 2]


def test_unscorable_row_is_left_out_as_released():
    rows = [CurriculumSample(A([1], []), [1], [], logprobs=[-0.1]),
            CurriculumSample("<|utt_ids_start|>5<|utt_ids_end|>", [1], [], logprobs=[-0.1])]
    result = build_curriculum(rows)
    assert result.difficulty[1] is None and result.unscored == [1] and 1 not in result.order


def test_best_of_bucket_tie_breaking():
    # 4 confusing rows with identical F1: the best 50% are the two with the lowest entropy,
    # and between equal entropies the lower index wins.
    rows = [CurriculumSample(A([], []), [], [], logprobs=lp) for lp in ([0, 0, 0], [0, 0], [0, 0], [0])]
    f1s, hs = [1.0] * 4, [sequence_entropy(r.logprobs) for r in rows]
    ranked = sorted(range(4), key=lambda i: (-f1s[i], hs[i], i))
    assert ranked[:2] == [3, 1]
    # through build_curriculum: put all four in one bucket by giving them equal scores except H
    result = build_curriculum(rows, keep_fractions={"easy": 0.5, "middle": 0.5}, tie_break="entropy")
    assert sorted(result.order) == result.order
    assert build_curriculum(rows).order == build_curriculum(list(rows)).order


def test_tiny_sets_and_token_option():
    assert build_curriculum([]).order == []
    one = build_curriculum([CurriculumSample(A([1], []), [1], [], logprobs=[-0.1])])
    assert one.difficulty == ["easy"] and one.order == [0]
    rows = [CurriculumSample(A([1], []), [1], [], token_entropies=[0.1]),
            CurriculumSample(A([1], []), [1], [], token_entropies=[3.0])]
    result = build_curriculum(rows, entropy="token")
    assert result.entropy == [0.1, 3.0] and result.difficulty[0] == "easy"
    with pytest.raises(ValueError):
        build_curriculum(rows, entropy="nope")
