"""Paper metrics: hand-computed cases, and equality with an independent re-implementation of the
released evaluation tool (written from docs/protocol.md §3/§5 with plain loops) on generated files."""

import doctest
import json
import math
import random

import pytest
from f2rvlm.core import metrics
from f2rvlm.core.dialogue import Dialogue, DialogueImage, Utterance
from f2rvlm.core.metrics import (
    Counts,
    EvalSample,
    PredictionFileError,
    Scores,
    evaluate,
    evaluate_predictions_file,
    format_report,
    length_bucket,
    prompt_universe,
    score_sample,
    set_scores,
)
from f2rvlm.core.protocol import Answer, render_answer, render_prompt


def test_doctests():
    assert doctest.testmod(metrics).failed == 0


# ----------------------------------------------------------------------------------------------
# Reference: the released tool's behaviour, coded independently (no f2rvlm imports)
# ----------------------------------------------------------------------------------------------
def ref_tagged_list(text, start, end):
    if text is None:
        return []
    i = text.find(start)
    if i < 0:
        return []
    j = text.find(end, i + len(start))
    if j < 0:
        return []
    try:
        value = json.loads(text[i + len(start):j].strip())
    except ValueError:
        return []
    return value if isinstance(value, list) else []


def ref_max_id(prompt, start, end):
    best = -1
    pos = 0
    while True:
        i = prompt.find(start, pos)
        if i < 0:
            break
        j = prompt.find(end, i)
        digits = prompt[i + len(start):j]
        if digits.isdigit():
            best = max(best, int(digits))
        pos = i + 1
    return best if best >= 0 else 20


def ref_counts(pred, gold, max_id):
    tp = fp = fn = tn = 0
    for i in range(max_id + 1):
        p, g = i in pred, i in gold
        if p and g:
            tp += 1
        elif p:
            fp += 1
        elif g:
            fn += 1
        else:
            tn += 1
    return tp, fp, fn, tn


def ref_scores(tp, fp, fn, tn):
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    d = (tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)
    m = (tp * tn - fp * fn) / math.sqrt(d) if d else 0.0
    return p, r, f, m


def ref_evaluate(path):
    totals = {"utt": [0, 0, 0, 0], "img": [0, 0, 0, 0]}
    n = 0
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            rec = json.loads(line)
            prompt = next(m for m in rec["messages"] if m["role"] == "user")["content"]
            gold = rec["labels"]
            for key, (ls, le), (ts, te) in (
                ("utt", ("<|utt_ids_start|>", "<|utt_ids_end|>"), ("<|utt_id_start|>", "<|utt_id_end|>")),
                ("img", ("<|img_ids_start|>", "<|img_ids_end|>"), ("<|img_id_start|>", "<|img_id_end|>")),
            ):
                pred = set(ref_tagged_list(rec["response"], ls, le))
                true = set(ref_tagged_list(gold, ls, le))
                c = ref_counts(pred, true, ref_max_id(prompt, ts, te))
                totals[key] = [a + b for a, b in zip(totals[key], c)]
            n += 1
    u, i = ref_scores(*totals["utt"]), ref_scores(*totals["img"])
    hm = lambda a, b: 2 * a * b / (a + b) if a + b else 0.0
    joint = (hm(u[0], i[0]), hm(u[1], i[1]), (u[2] + i[2]) / 2, (u[3] + i[3]) / 2)
    names = ("global_precision", "global_recall", "global_f1", "global_mcc")
    return {
        "sentence_metrics": dict(zip(names, (round(v, 4) for v in u))),
        "image_metrics": dict(zip(names, (round(v, 4) for v in i))),
        "joint_metrics": dict(zip(names, (round(v, 4) for v in joint))),
        "num_samples": n,
    }


# ----------------------------------------------------------------------------------------------
# Generated released-format prediction files
# ----------------------------------------------------------------------------------------------
def random_dialogue(rng, with_images=True):
    n = rng.randint(1, 80)
    utterances = []
    for u in range(n):
        images = [DialogueImage(f"img_{u}_{k}.png") for k in range(rng.choice([0, 0, 0, 1, 2]))] if with_images else []
        utterances.append(Utterance(rng.choice(["user1", "user2"]), f"turn {u}" if rng.random() < 0.9 or not images else "", images))
    return Dialogue(utterances, f"d{rng.randint(0, 10**6)}")


def random_response(rng, n_utt, n_img, gold):
    utt = sorted(rng.sample(range(n_utt + 3), rng.randint(0, min(6, n_utt + 3))))
    img = sorted(rng.sample(range(max(n_img, 1) + 25), rng.randint(0, 3)))
    kind = rng.randrange(10)
    if kind == 0:
        return gold
    if kind == 1:
        return "Sure! " + render_answer(utt, img) + " hope this helps"
    if kind == 2:
        return "<|utt_ids_start|>[1,,2]<|utt_ids_end|>;<|img_ids_start|>" + json.dumps(img) + "<|img_ids_end|>"
    if kind == 3:
        return "<|utt_ids_start|>" + json.dumps(utt) + "<|utt_ids_end|>;<|img_ids_start|>[0, 1"
    if kind == 4:
        return "I cannot find anything."
    if kind == 5:
        return render_answer(utt + utt[:2], img)  # duplicates
    if kind == 6:
        return "<think>x</think><answer>" + render_answer(utt, img) + "</answer>"
    if kind == 7:
        return ""
    return render_answer(utt, img)


def write_released_file(path, rng, num_samples):
    with open(path, "w") as f:
        for _ in range(num_samples):
            dialogue = random_dialogue(rng, with_images=rng.random() < 0.6)
            n_utt, n_img = len(dialogue), dialogue.num_images
            if rng.random() < 0.25:
                gold_u, gold_i = [], []
            else:
                gold_u = sorted(rng.sample(range(n_utt), rng.randint(0, min(5, n_utt))))
                gold_i = sorted(rng.sample(range(n_img), rng.randint(0, min(2, n_img))))
            gold = render_answer(gold_u, gold_i)
            prompt = render_prompt(dialogue, "the query")
            rec = {
                "messages": [{"role": "system", "content": "你是一个多模态信息检索助手。"},
                             {"role": "user", "content": prompt}, {"role": "assistant", "content": gold}],
                "labels": gold, "response": random_response(rng, n_utt, n_img, gold),
            }
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_matches_reference_tool(tmp_path, seed):
    path = tmp_path / "preds.jsonl"
    write_released_file(path, random.Random(seed), num_samples=60)
    assert evaluate_predictions_file(path) == ref_evaluate(path)


def test_per_sample_output_extends_released_structure(tmp_path):
    path = tmp_path / "preds.jsonl"
    write_released_file(path, random.Random(7), num_samples=40)
    full = evaluate_predictions_file(path, per_sample=True)
    base = evaluate_predictions_file(path)
    assert {k: full[k] for k in base} == base
    assert set(full["by_length"]) <= {"<35", "35-65", ">65"}
    assert sum(b["num_samples"] for b in full["by_length"].values()) == base["num_samples"]
    text = format_report(full)
    assert "per-sample" in text and "joint" in text


# ----------------------------------------------------------------------------------------------
# Hand-computed cases
# ----------------------------------------------------------------------------------------------
def test_counts_over_universe():
    # universe {0..4}: pred {0,1,7(out)}, gold {1,2}
    assert Counts.of([0, 1, 7, 1], [1, 2], 5) == Counts(tp=1, fp=1, fn=1, tn=2)


def test_no_image_dialogue_adds_21_true_negatives():
    s = score_sample(Answer([0], []), Answer([0], []), num_utterances=3, num_images=0)
    assert s.image == Counts(0, 0, 0, 21)
    assert s.utterance == Counts(1, 0, 0, 2)


def test_zero_denominators_give_zero():
    assert Counts(0, 0, 0, 21).scores() == Scores(0.0, 0.0, 0.0, 0.0)


def test_global_and_joint_by_hand():
    samples = [
        EvalSample(Answer([1, 2], [0]), Answer([2, 3], [0]), num_utterances=10, num_images=2),
        EvalSample(Answer([], []), Answer([], [1]), num_utterances=4, num_images=2),
    ]
    r = evaluate(samples)
    # utterances: tp=1 fp=1 fn=1 tn=7+4=11 ; images: tp=1 fp=0 fn=1 tn=1+1=2
    assert r.utterance_counts == Counts(1, 1, 1, 11) and r.image_counts == Counts(1, 0, 1, 2)
    assert r.utterance.f1 == 0.5
    assert r.image.precision == 1.0 and r.image.recall == 0.5
    assert r.joint.precision == pytest.approx(2 * 0.5 * 1.0 / 1.5)
    assert r.joint.recall == pytest.approx(0.5)
    assert r.joint.f1 == pytest.approx((0.5 + 2 / 3) / 2)
    mcc_u = (1 * 11 - 1 * 1) / math.sqrt(2 * 2 * 12 * 12)
    mcc_i = (1 * 2 - 0) / math.sqrt(1 * 2 * 2 * 3)
    assert r.joint.mcc == pytest.approx((mcc_u + mcc_i) / 2)
    d = r.to_dict()
    assert list(d) == ["sentence_metrics", "image_metrics", "joint_metrics", "num_samples"]
    assert d["joint_metrics"]["global_f1"] == round((0.5 + 2 / 3) / 2, 4)


def test_per_sample_empty_gold_convention():
    samples = [
        EvalSample(Answer([], []), Answer([], []), num_utterances=5, num_images=0),
        EvalSample(Answer([1], []), Answer([], []), num_utterances=5, num_images=0),
    ]
    r = evaluate(samples, per_sample=True)
    assert r.per_sample["sentence"] == Scores(0.5, 0.5, 0.5, 0.5)
    assert r.per_sample["image"] == Scores(1.0, 1.0, 1.0, 1.0)
    assert set_scores([1, 2], [2, 3], 10).f1 == 0.5


def test_length_buckets():
    assert [length_bucket(n) for n in (1, 34, 35, 65, 66)] == ["<35", "<35", "35-65", "35-65", ">65"]


def test_prompt_universe_reads_id_tags():
    d = Dialogue([Utterance("user1", "a"), Utterance("user2", "", [DialogueImage("x.png"), DialogueImage("y.png")])])
    assert prompt_universe(render_prompt(d, "q")) == (2, 2, 2)
    assert prompt_universe("no tags") == (0, 0, 0)


def test_parse_modes():
    text = "<think>x</think><answer>" + render_answer([1], [0]) + "</answer>"
    gold = Answer([1], [0])
    s_len = evaluate([EvalSample(text, gold, 3, 1)], parse_mode="lenient")
    s_strict = evaluate([EvalSample(text, gold, 3, 1)], parse_mode="strict")
    s_reason = evaluate([EvalSample(text, gold, 3, 1)], parse_mode="reasoning")
    assert s_len.joint.f1 == 1.0 and s_reason.joint.f1 == 1.0
    assert s_strict.joint.f1 == 0.0 and s_strict.num_unparsed == 1


# ----------------------------------------------------------------------------------------------
# Files
# ----------------------------------------------------------------------------------------------
def test_own_format_and_gold_fallback(tmp_path):
    path = tmp_path / "ours.jsonl"
    rows = [
        {"prediction": render_answer([1, 2], []), "gold_utterance_ids": [2], "gold_image_ids": [],
         "num_turns": 4, "num_images": 0},
        {"prediction": {"utterance_ids": [0], "image_ids": [1]}, "gold": render_answer([0], [1]),
         "num_turns": 4, "num_images": 2},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    r = evaluate_predictions_file(path)
    assert r["num_samples"] == 2
    assert r["sentence_metrics"]["global_precision"] == round(2 / 3, 4)
    # released record whose gold comes from the assistant message (no `labels`)
    rel = tmp_path / "rel.jsonl"
    prompt = render_prompt(Dialogue([Utterance("user1", "a"), Utterance("user2", "b")]), "q")
    rel.write_text(json.dumps({"messages": [{"role": "user", "content": prompt},
                                            {"role": "assistant", "content": render_answer([1], [])}],
                               "response": render_answer([1], [])}) + "\n")
    assert evaluate_predictions_file(rel)["sentence_metrics"]["global_f1"] == 1.0


@pytest.mark.parametrize("line, message", [
    ("{not json", "line 2: not valid JSON"),
    ('{"foo": 1}', "line 2: missing field"),
    ('{"prediction": "x", "gold_utterance_ids": [1], "gold_image_ids": [], "num_turns": 3}', "line 2: 'num_images'"),
    ('{"messages": [{"role": "user", "content": "p"}], "labels": "g"}', "line 2: missing field response"),
])
def test_malformed_lines_name_file_and_line(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    good = {"prediction": "", "gold_utterance_ids": [], "gold_image_ids": [], "num_turns": 3, "num_images": 0}
    path.write_text(json.dumps(good) + "\n" + line + "\n")
    with pytest.raises(PredictionFileError, match=message) as err:
        evaluate_predictions_file(path)
    assert str(path) in str(err.value)
