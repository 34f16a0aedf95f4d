"""Paper metrics: hand-computed cases, and equality with an independent re-implementation of the
released evaluation tool (written from docs/protocol.md §3/§5 with plain loops) on generated files."""

import doctest
import json
import math
import random
import re

import pytest
from f2rvlm.core import metrics, predictions
from f2rvlm.core.dialogue import Dialogue, DialogueImage, Utterance
from f2rvlm.core.metrics import (
    Counts,
    EvalSample,
    Scores,
    evaluate,
    length_bucket,
    score_sample,
    set_scores,
)
from f2rvlm.core.predictions import (
    PredictionFileError,
    evaluate_predictions_file,
    prompt_universe,
)
from f2rvlm.core.protocol import Answer, render_answer, render_prompt


def test_doctests():
    assert doctest.testmod(metrics).failed == 0


# ----------------------------------------------------------------------------------------------
# Reference: the released tool (eval_multi_modal_retrieval_F1.py), re-coded independently here
# (no f2rvlm imports): re.search without DOTALL, json.loads, Python sets, its exception handling.
# ----------------------------------------------------------------------------------------------
def ref_extract(text):
    out = {}
    for key, tag in (("sentence_ids", "utt_ids"), ("image_ids", "img_ids")):
        m = re.search(r"<\|%s_start\|>(.*?)<\|%s_end\|>" % (tag, tag), text)
        value = []
        if m:
            try:
                value = json.loads(m.group(1).strip())
            except json.JSONDecodeError:
                value = []
        out[key] = value
    return out


def ref_load(path):
    samples = []
    for line in open(path, encoding="utf-8").readlines():
        try:
            data = json.loads(line)
            gt, pred = ref_extract(data["labels"]), ref_extract(data["response"])
            mu, mi = 20, 20
            for msg in data.get("messages", []):
                if msg.get("role") == "user":
                    c = msg.get("content", "")
                    u = re.findall(r"<\|utt_id_start\|>(\d+)<\|utt_id_end\|>", c)
                    i = re.findall(r"<\|img_id_start\|>(\d+)<\|img_id_end\|>", c)
                    mu = max(int(x) for x in u) if u else 20
                    mi = max(int(x) for x in i) if i else 20
                    break
            samples.append((gt, pred, mu, mi))
        except (KeyError, json.JSONDecodeError):
            continue
    return samples


def ref_prf(gt, pred):
    g, p = set(gt), set(pred)
    if not g:
        return (1.0, 1.0, 1.0) if not p else (0.0, 0.0, 0.0)
    inter = g & p
    pr = len(inter) / len(p) if p else 0.0
    rc = len(inter) / len(g)
    return pr, rc, (2 * pr * rc / (pr + rc) if pr + rc > 0 else 0)


def ref_mcc(gt, pred, max_id):
    g, p = set(gt), set(pred)
    u = set(range(max_id + 1))
    tp, fp, tn, fn = len(p & g), len(p & (u - g)), len((u - p) & (u - g)), len((u - p) & g)
    d = math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return 0.0 if d == 0 else (tp * tn - fp * fn) / d


def ref_scores(tp, fp, fn, tn):
    p = tp / (tp + fp) if tp + fp > 0 else 0.0
    r = tp / (tp + fn) if tp + fn > 0 else 0.0
    f = 2 * p * r / (p + r) if p + r > 0 else 0.0
    d = ((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)) ** 0.5
    m = (tp * tn - fp * fn) / d if d > 0 else 0.0
    return p, r, f, m


def hm(a, b):
    return 2 * a * b / (a + b) if a + b > 0 else 0.0


def ref_global(samples):
    t = {"u": [0, 0, 0, 0], "i": [0, 0, 0, 0]}
    for gt, pred, mu, mi in samples:
        try:
            for key, name, m in (("u", "sentence_ids", mu), ("i", "image_ids", mi)):
                g, p = set(gt.get(name, [])), set(pred.get(name, []))
                u = set(range(m + 1))
                t[key][0] += len(g & p)
                t[key][1] += len(p - g)
                t[key][2] += len(g - p)
                t[key][3] += len(u - (g | p))
        except Exception:
            continue
    u, i = ref_scores(*t["u"]), ref_scores(*t["i"])
    joint = (hm(u[0], i[0]), hm(u[1], i[1]), (u[2] + i[2]) / 2, (u[3] + i[3]) / 2)
    names = ("global_precision", "global_recall", "global_f1", "global_mcc")
    return {
        "sentence_metrics": dict(zip(names, (round(v, 4) for v in u))),
        "image_metrics": dict(zip(names, (round(v, 4) for v in i))),
        "joint_metrics": dict(zip(names, (round(v, 4) for v in joint))),
        "num_samples": len(samples),
    }


def ref_per_sample(samples):
    cols = {k: [] for k in ("sp", "sr", "sf", "sm", "ip", "ir", "if", "im", "jp", "jr", "jf", "jm")}
    for gt, pred, mu, mi in samples:
        try:
            sp, sr, sf = ref_prf(gt.get("sentence_ids", []), pred.get("sentence_ids", []))
            sm = ref_mcc(gt.get("sentence_ids", []), pred.get("sentence_ids", []), mu)
            ip, ir, if1 = ref_prf(gt.get("image_ids", []), pred.get("image_ids", []))
            im = ref_mcc(gt.get("image_ids", []), pred.get("image_ids", []), mi)
        except Exception:
            continue
        for k, v in zip(cols, (sp, sr, sf, sm, ip, ir, if1, im, hm(sp, ip), hm(sr, ir), (sf + if1) / 2, (sm + im) / 2)):
            cols[k].append(v)
    avg = {k: (sum(v) / len(v) if v else 0.0) for k, v in cols.items()}
    names = ("avg_precision", "avg_recall", "avg_f1", "avg_mcc")
    return {f"{m}_metrics": dict(zip(names, (round(avg[p + x], 4) for x in ("p", "r", "f", "m"))))
            for m, p in (("sentence", "s"), ("image", "i"), ("joint", "j"))}


def ref_evaluate(path):
    return ref_global(ref_load(path))


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
    img = sorted(rng.sample(range(max(n_img, 1) + 25), rng.randint(0, 3)))  # hallucinated image ids
    kind = rng.randrange(18)
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
        return render_answer(utt + utt[:2], img + img[:1])  # duplicates
    if kind == 6:
        return "<think>x</think><answer>" + render_answer(utt, img) + "</answer>"
    if kind == 7:
        return ""
    if kind == 8:  # values that are not integers
        odd = rng.choice(['["3", 1.0, true, null]', "[1.5, -1, 1e3]", '"12"', '{"1": 2}', "[0.0, false]"])
        return "<|utt_ids_start|>" + odd + "<|utt_ids_end|>;<|img_ids_start|>" + json.dumps(img) + "<|img_ids_end|>"
    if kind == 9:  # values the released tool cannot make a set of: the sample fails
        odd = rng.choice(["5", "null", "[[1], 2]", "[{}]", "true"])
        if rng.random() < 0.5:
            return "<|utt_ids_start|>" + odd + "<|utt_ids_end|>;<|img_ids_start|>[0]<|img_ids_end|>"
        return "<|utt_ids_start|>" + json.dumps(utt) + "<|utt_ids_end|>;<|img_ids_start|>" + odd + "<|img_ids_end|>"
    if kind == 10:  # a list spanning a newline (not found by the released regex), then a second answer
        return "<|utt_ids_start|>[1,\n2]<|utt_ids_end|>\n" + render_answer(utt, img)
    if kind == 11:
        return render_answer(utt, img) + "\n"
    if kind == 12:  # far out of range
        return render_answer(utt + [10 ** 6], img + [999])
    return render_answer(utt, img)


def write_released_file(path, rng, num_samples, broken=False):
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
            if broken and rng.random() < 0.05:
                del rec["labels" if rng.random() < 0.5 else "response"]
            if broken and rng.random() < 0.03:
                rec.pop("messages")  # no prompt: 21 ids per modality
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
            if broken and rng.random() < 0.03:
                f.write("{not json\n")


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_matches_reference_tool(tmp_path, seed):
    path = tmp_path / "preds.jsonl"
    write_released_file(path, random.Random(seed), num_samples=150, broken=True)
    assert evaluate_predictions_file(path) == ref_evaluate(path)
    full = evaluate_predictions_file(path, per_sample=True)
    per_sample = dict(full["per_sample_metrics"])
    assert per_sample.pop("num_samples") == full["num_samples"]
    assert per_sample == ref_per_sample(ref_load(path))


def test_hallucinated_ids_lose_precision(tmp_path):
    """400 generated predictions with hallucinated image ids: the released tool's numbers."""
    path = tmp_path / "preds.jsonl"
    write_released_file(path, random.Random(11), num_samples=400)
    ours, ref = evaluate_predictions_file(path), ref_evaluate(path)
    assert ours == ref
    # dropping ids outside the universe (this package before) reads a higher image precision
    samples = predictions.read_predictions(path)
    kept = [EvalSample(Answer(*[[i for i in ids if 0 <= i < metrics.universe_size(n)] for ids, n in
                               ((a.utterance_ids, s.num_utterances), (a.image_ids, s.num_images))]),
                       s.gold, s.num_utterances, s.num_images) for s in samples
            for a in [metrics.as_answer(s.prediction)]]
    assert evaluate(kept).image.precision > ours["image_metrics"]["global_precision"]


# ----------------------------------------------------------------------------------------------
# Hand-computed cases
# ----------------------------------------------------------------------------------------------
def test_counts_over_universe():
    # universe {0..4}: pred {0,1,7(out)}, gold {1,2}: the hallucinated 7 is a false positive (global)
    assert Counts.of([0, 1, 7, 1], [1, 2], 5) == Counts(tp=1, fp=2, fn=1, tn=2)
    # the per-sample MCC only counts inside the universe
    assert Counts.within([0, 1, 7, 1], [1, 2], 5) == Counts(tp=1, fp=1, fn=1, tn=2)


def _one(response, gold="<|utt_ids_start|>[1, 2]<|utt_ids_end|>;<|img_ids_start|>[0]<|img_ids_end|>", n_utt=5, n_img=2):
    return evaluate([EvalSample(response, gold, n_utt, n_img)], per_sample=True)


def test_rule_hallucinated_and_out_of_range_ids_are_false_positives():
    r = _one(render_answer([1, 2, 40, -1], [0, 7]))
    assert r.utterance_counts == Counts(tp=2, fp=2, fn=0, tn=3)  # 40 and -1: FP, TN over {0..4} untouched
    assert r.image_counts == Counts(tp=1, fp=1, fn=0, tn=1)
    assert r.utterance.precision == 0.5 and r.per_sample["sentence"].precision == 0.5
    # per-sample MCC inside the universe: tp=2 fp=0 fn=0 tn=3 -> 1
    assert r.per_sample["sentence"].mcc == 1.0


def test_rule_duplicates_count_once():
    r = _one(render_answer([1, 1, 2, 2], [0, 0]))
    assert r.utterance_counts == Counts(2, 0, 0, 3) and r.utterance.f1 == 1.0


def test_rule_unparsable_list_counts_as_empty():
    r = _one("<|utt_ids_start|>[1,,2]<|utt_ids_end|>;<|img_ids_start|>[0]<|img_ids_end|>")
    assert r.utterance_counts == Counts(0, 0, 2, 3) and r.image_counts == Counts(1, 0, 0, 1)
    assert r.num_unparsed == 1
    # a list spanning a line break is not found (the released regex has no DOTALL): empty, not unparsed
    r = _one("<|utt_ids_start|>[1,\n2]<|utt_ids_end|>;<|img_ids_start|>[0]<|img_ids_end|>")
    assert r.utterance_counts == Counts(0, 0, 2, 3) and r.num_unparsed == 0


def test_rule_non_integer_values():
    # "1" never matches 1; 2.0 and true equal 2 and 1 as set members; null is a false positive
    r = _one('<|utt_ids_start|>["1", 2.0, true, null]<|utt_ids_end|>;<|img_ids_start|>[0]<|img_ids_end|>')
    assert r.utterance_counts == Counts(tp=2, fp=2, fn=0, tn=3)
    # a JSON string is the set of its characters
    r = _one('<|utt_ids_start|>"12"<|utt_ids_end|>;<|img_ids_start|>[0]<|img_ids_end|>')
    assert r.utterance_counts == Counts(tp=0, fp=2, fn=2, tn=3)


def test_rule_values_set_rejects_fail_the_sample_as_released():
    good = EvalSample(render_answer([1], [0]), render_answer([1], [0]), 5, 2)
    # image ids `5` (not iterable): the utterance counts of that sample are kept, the images not
    bad_img = EvalSample("<|utt_ids_start|>[1]<|utt_ids_end|>;<|img_ids_start|>5<|img_ids_end|>",
                         render_answer([1, 2], [0]), 5, 2)
    bad_utt = EvalSample("<|utt_ids_start|>[[1]]<|utt_ids_end|>;<|img_ids_start|>[0]<|img_ids_end|>",
                         render_answer([1], [0]), 5, 2)
    r = evaluate([good, bad_img, bad_utt], per_sample=True)
    assert r.num_samples == 3 and r.num_failed == 2
    assert r.utterance_counts == Counts(1, 0, 0, 4) + Counts(1, 0, 1, 3)
    assert r.image_counts == Counts(1, 0, 0, 1)
    assert r.per_sample["joint"] == Scores(1.0, 1.0, 1.0, 1.0)  # only `good` is averaged


def test_rule_missing_labels_or_response_skip_the_record(tmp_path):
    prompt = render_prompt(Dialogue([Utterance("user1", "a"), Utterance("user2", "b")]), "q")
    good = {"messages": [{"role": "user", "content": prompt}], "labels": render_answer([1], []),
            "response": render_answer([1], [])}
    path = tmp_path / "p.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in (good, {k: v for k, v in good.items() if k != "labels"},
                                                        {k: v for k, v in good.items() if k != "response"}))
                    + "\n{not json\n")
    full = evaluate_predictions_file(path, per_sample=True)
    assert full["num_samples"] == 1 and full["num_skipped"] == 3
    assert full["sentence_metrics"]["global_f1"] == 1.0
    with pytest.raises(PredictionFileError, match="line 4: not valid JSON"):
        evaluate_predictions_file(path, strict=True)
    path.write_text("\n".join(json.dumps(r) for r in (good, {k: v for k, v in good.items() if k != "labels"})))
    with pytest.raises(PredictionFileError, match="line 2: missing field: no labels"):
        evaluate_predictions_file(path, strict=True)


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
    # released: the per-sample MCC of an empty-gold sample is 0 (zero denominator)
    assert r.per_sample["sentence"] == Scores(0.5, 0.5, 0.5, 0.0)
    assert r.per_sample["image"] == Scores(1.0, 1.0, 1.0, 0.0)
    assert r.per_sample["joint"] == Scores(0.5, 0.5, 0.75, 0.0)  # per-sample joints (hm(0, 1) = 0), averaged
    option = evaluate(samples, per_sample=True, empty_gold_mcc=True)
    assert option.per_sample["sentence"] == Scores(0.5, 0.5, 0.5, 0.5)
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
    # released record without `labels`: skipped as the released tool skips it
    rel = tmp_path / "rel.jsonl"
    prompt = render_prompt(Dialogue([Utterance("user1", "a"), Utterance("user2", "b")]), "q")
    rel.write_text(json.dumps({"messages": [{"role": "user", "content": prompt},
                                            {"role": "assistant", "content": render_answer([1], [])}],
                               "response": render_answer([1], [])}) + "\n")
    with pytest.raises(PredictionFileError, match="no predictions"):
        evaluate_predictions_file(rel)


@pytest.mark.parametrize("line, message, strict", [
    ("{not json", "line 2: not valid JSON", True),
    ('{"foo": 1}', "line 2: missing field", True),
    ('{"prediction": "x", "gold_utterance_ids": [1], "gold_image_ids": [], "num_turns": 3}', "line 2: 'num_images'", False),
    ('{"messages": [{"role": "user", "content": "p"}], "labels": "g"}', "line 2: missing field: no response", True),
    ('{"labels": null, "response": "x"}', "line 2: 'labels' must be", False),
])
def test_malformed_lines_name_file_and_line(tmp_path, line, message, strict):
    path = tmp_path / "bad.jsonl"
    good = {"prediction": "", "gold_utterance_ids": [], "gold_image_ids": [], "num_turns": 3, "num_images": 0}
    path.write_text(json.dumps(good) + "\n" + line + "\n")
    with pytest.raises(PredictionFileError, match=message) as err:
        evaluate_predictions_file(path, strict=strict)
    assert str(path) in str(err.value)
