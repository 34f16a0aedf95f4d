"""Released MLDR / WeChat files -> rows: byte-for-byte prompt round trip, image turns, bad input."""

import base64
import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from f2rvlm import Dialogue, render_answer, render_prompt
from f2rvlm.core.protocol import SYSTEM_PROMPTS, TEMPLATES
from f2rvlm.data import (
    RELEASE_FILES,
    DataError,
    build_from_release,
    build_wechat,
    read_released_file,
    read_wechat_file,
)
from f2rvlm.data.synthetic import generate_split
from helpers import write_png

REPO = Path(__file__).resolve().parents[2]


def _released_records(root: Path, split: str, count: int, seed: int, language: str = "zh"):
    """Released-format records (ms-swift) made from synthetic dialogues, images written to disk."""
    records = []
    folder = root / "MLDR_train_images" / f"img{seed % 2}"
    folder.mkdir(parents=True, exist_ok=True)
    for d, sample in enumerate(generate_split(split, count, seed=seed, language=language)):
        paths = []
        for k, image in enumerate(sample.dialogue.images):
            name = f"{split}-{d}-{k}.png"
            (folder / name).write_bytes(image.to_bytes())
            paths.append(f"MLDR_train_images/img{seed % 2}/{name}")
        for q in sample.queries:
            prompt = render_prompt(sample.dialogue, q.query, "zh" if language == "zh" else "en")
            answer = render_answer(q.utterance_ids, q.image_ids)
            images = list(paths)
            if images:  # all accepted image forms: path string, {"path"}, {"path", "bytes"}, foreign absolute path
                images[0] = {"path": images[0]}
            if len(images) > 1:
                images[1] = {"path": images[1], "bytes": base64.b64encode((root / images[1]).read_bytes()).decode()}
            if len(images) > 2:
                images[2] = "/mnt/authors/data/" + images[2]
            records.append({
                "messages": [{"role": "system", "content": SYSTEM_PROMPTS["zh"]},
                             {"role": "user", "content": prompt}, {"role": "assistant", "content": answer}],
                "images": images, "solution": answer, "dialogue_id": sample.dialogue.dialogue_id,
            })
    return records


def _write_release(root: Path, records_by_split=None):
    records_by_split = records_by_split or {
        "train_sft": _released_records(root, "train_sft", 3, 0),
        "train_grpo": _released_records(root, "train_grpo", 2, 1),
        "validation": _released_records(root, "validation", 2, 2, language="en"),
    }
    for split, name in RELEASE_FILES.items():
        (root / name).write_text(json.dumps(records_by_split[split], ensure_ascii=False), encoding="utf-8")
    return records_by_split


def test_released_files_round_trip_to_the_original_prompt(tmp_path):
    release = tmp_path / "MLDR"
    release.mkdir()
    records = _write_release(release)
    out = tmp_path / "mldr"
    path, reports = build_from_release(str(release), str(out), show_progress=False)
    assert all(not r.skipped for r in reports)

    from datasets import load_dataset

    ds = load_dataset(path, cache_dir=str(tmp_path / "cache"))
    assert sorted(ds) == ["train_grpo", "train_sft", "validation"]
    for split, recs in records.items():
        assert len(ds[split]) == len(recs)
        for row, record in zip(ds[split], recs):
            prompt = record["messages"][1]["content"]
            assert render_prompt(Dialogue.from_row(row), row["query"], row["language"]) == prompt
            assert row["solution"] == record["solution"] and row["source"] == "mldr-release"
            assert len(row["images"]) == len(record["images"])
    assert ds["validation"][0]["language"] == "en" and ds["train_sft"][0]["language"] == "zh"
    card = (out / "README.md").read_text(encoding="utf-8")
    assert "config_name: default" in card and "## Conversion report" in card


def _one_file(tmp_path, records, name="MLDR_val.json"):
    path = tmp_path / name
    path.write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")
    return str(path)


@pytest.fixture()
def good(tmp_path):
    return _released_records(tmp_path, "validation", 2, 0)


def _break(records, how):
    records = copy.deepcopy(records)
    record = records[1]
    if how == "missing image":
        record["images"][0] = {"path": "MLDR_train_images/img0/nope.png"}
    elif how == "gold id beyond the dialogue":
        record["solution"] = record["messages"][2]["content"] = render_answer([999], [])
    elif how == "prompt without a query":
        prompt = record["messages"][1]["content"]
        start, end = prompt.index("<|query_start|>"), prompt.index("<|query_end|>") + len("<|query_end|>")
        record["messages"][1]["content"] = prompt[:start] + prompt[end:]
    elif how == "unparsable answer":
        record["solution"] = record["messages"][2]["content"] = "utterances 3 and 4"
    return records


CASES = {
    "missing image": "images[0]",
    "gold id beyond the dialogue": "messages[2].content",
    "prompt without a query": "messages[1].content",
    "unparsable answer": "messages[2].content",
}


@pytest.mark.parametrize("how", list(CASES))
def test_bad_input_names_file_record_and_field(tmp_path, good, how):
    path = _one_file(tmp_path, _break(good, how))
    with pytest.raises(DataError) as info:
        read_released_file(path)
    message = str(info.value)
    assert path in message and "record 1" in message and CASES[how] in message and how in message
    assert info.value.reason == how and info.value.index == 1 and info.value.field == CASES[how]


def test_on_error_skip_counts_what_was_skipped(tmp_path, good):
    records = good + _break(good, "missing image")[1:2] + _break(good, "unparsable answer")[1:2]
    rows, report = read_released_file(_one_file(tmp_path, records), on_error="skip")
    assert len(rows) == len(good) and report.total == len(good) + 2
    assert report.skipped == {"missing image": 1, "unparsable answer": 1}
    assert "skipped 2: 1 missing image, 1 unparsable answer" in report.summary()


def test_build_script_fails_by_default_and_reports_skips(tmp_path):
    release = tmp_path / "MLDR"
    release.mkdir()
    recs = _write_release(release)
    recs["validation"].append(_break(recs["validation"], "gold id beyond the dialogue")[1])
    _write_release(release, recs)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, str(REPO / "hub_datasets/mldr/build.py"), "--from-release", str(release), "--quiet"]
    failed = subprocess.run(cmd + ["--out", str(tmp_path / "a")], capture_output=True, text=True, env=env, timeout=240, check=False)
    assert failed.returncode == 2 and "gold id beyond the dialogue" in failed.stderr
    assert "MLDR_val.json" in failed.stderr and f"record {len(recs['validation']) - 1}" in failed.stderr
    assert not (tmp_path / "a").exists()
    ok = subprocess.run(cmd + ["--out", str(tmp_path / "b"), "--on-error", "skip"], capture_output=True,
                        text=True, env=env, timeout=240, check=False)
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert "skipped 1: 1 gold id beyond the dialogue" in ok.stdout + ok.stderr
    assert "skipped 1: 1 gold id beyond the dialogue" in (tmp_path / "b" / "README.md").read_text(encoding="utf-8")


# ---- WeChat -----------------------------------------------------------------------------------
def _raw_record(tmp_path):
    (tmp_path / "imgs").mkdir(exist_ok=True)
    write_png(tmp_path / "imgs" / "a.png", (200, 0, 0), (70, 80))
    write_png(tmp_path / "imgs" / "b.png", (0, 200, 0), (70, 80))
    write_png(tmp_path / "imgs" / "c.png", (0, 0, 200), (70, 80))
    return {
        "dialogue_id": "wx-1",
        "dialogue": [
            {"speaker": "小王", "utterance_idx": 1, "utterance": "周末去爬山吗？"},
            {"speaker": "阿丽", "utterance_idx": 2, "utterance": "好啊，我带相机。"},
            {"speaker": "阿丽", "utterance_idx": 3, "utterance": [{"image_url": "imgs/a.png", "caption": "山顶"}]},
            {"speaker": "小王", "utterance_idx": 4, "utterance": "晚上吃火锅。"},
            {"speaker": "小王", "utterance_idx": 5,
             "utterance": [{"image_url": "imgs/b.png", "caption": "火锅"}, {"image_url": "imgs/c.png", "caption": "菜单"}]},
        ],
        "query_text": ["爬山的照片和对话", "晚饭", "买车的事"],
        "gt_turns": [[1, 2, 3], [4, 5], []],
    }


def test_wechat_raw_form_maps_image_turns(tmp_path):
    path = _one_file(tmp_path, [_raw_record(tmp_path)], "wechat_raw.json")
    rows, report = read_wechat_file(path)
    assert report.total == 3 and len(rows) == 3
    dialogue = Dialogue.from_row(rows[0])
    assert [u.speaker for u in dialogue.utterances] == ["user1", "user2", "user2", "user1", "user1"]
    assert [u.text for u in dialogue.utterances][2] == "" and dialogue.image_hosts == [2, 4, 4]
    assert rows[0]["image_captions"] == ["山顶", "火锅", "菜单"]
    assert (rows[0]["gold_utterance_ids"], rows[0]["gold_image_ids"]) == ([0, 1], [0])
    assert (rows[1]["gold_utterance_ids"], rows[1]["gold_image_ids"]) == ([3], [1, 2])
    assert (rows[2]["gold_utterance_ids"], rows[2]["gold_image_ids"]) == ([], [])
    assert all(r["language"] == "zh" and r["num_turns"] == 5 for r in rows)
    both, _ = read_wechat_file(path, image_turn_gold="both")
    assert both[1]["gold_utterance_ids"] == [3, 4]
    prompt = render_prompt(dialogue, rows[0]["query"])
    assert "<|utt_id_start|>2<|utt_id_end|> user2: <|img_id_start|>0<|img_id_end|><image>" in prompt


def test_wechat_raw_bad_gold_turn_and_skip(tmp_path):
    record = _raw_record(tmp_path)
    record["gt_turns"][1] = [4, 9]
    path = _one_file(tmp_path, [record], "wechat_raw.json")
    with pytest.raises(DataError, match=r"record 0, field 'gt_turns\[1\]': gold id beyond the dialogue"):
        read_wechat_file(path)
    rows, report = read_wechat_file(path, on_error="skip")
    assert len(rows) == 2 and report.skipped == {"gold id beyond the dialogue": 1}
    record = _raw_record(tmp_path)
    record["dialogue"][2]["utterance"][0]["image_url"] = "imgs/missing.png"
    path = _one_file(tmp_path, [record], "wechat_raw.json")
    with pytest.raises(DataError, match=r"dialogue\[2\]\.utterance\[0\]\.image_url'?: missing image"):
        read_wechat_file(path)
    rows, report = read_wechat_file(path, on_error="skip")
    assert rows == [] and report.skipped == {"missing image": 3}


def test_build_wechat_both_forms(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    _one_file(raw, [_raw_record(raw)], "wechat_raw.json")
    path, _ = build_wechat(str(raw), str(tmp_path / "w1"), show_progress=False)
    released = tmp_path / "rel"
    released.mkdir()
    _one_file(released, _released_records(released, "test_heldout", 1, 0), "WeChat_test.json")
    path2, _ = build_wechat(str(released), str(tmp_path / "w2"), show_progress=False)
    from datasets import load_dataset

    for p, source in ((path, "wechat-raw"), (path2, "wechat-release")):
        ds = load_dataset(p, "default", split="test", cache_dir=str(tmp_path / "cache"))
        assert len(ds) > 0 and ds[0]["source"] == source and ds[0]["images"][0].size
    assert "WeChat-MDR" in (tmp_path / "w2" / "README.md").read_text(encoding="utf-8")


def test_cli_data_build_from_release(tmp_path, capsys):
    from f2rvlm.cli import main

    release = tmp_path / "MLDR"
    release.mkdir()
    _write_release(release)
    assert main(["data", "build", "--from-release", str(release), "--out", str(tmp_path / "o")]) == 0
    assert "converted" in capsys.readouterr().out and (tmp_path / "o" / "data").is_dir()
    assert main(["data", "build", "--from-release", str(tmp_path / "nope"), "--out", str(tmp_path / "p")]) == 2
    assert "release folder not found" in capsys.readouterr().err


# ---- image tags anywhere (the released builder writes each tag where the image sits) ------------
# Lines as the released builder's input has them ("speaker: text" with `<image>` where each picture
# sits); `_builder_prompt` numbers the tags the way the released builder does (a re-coding of its
# annotate step, independent of protocol.render_line).
MIXED_LINES = [
    "user1: 你好", "user2: 看这个<image>", "user1: <image>", "user2: <image><image>", "user1: <image> 这是什么",
    "user2: 左<image>中<image>右", "user1: 房租多少 <image>", "user2: <image> <image>", "user1: a<image> b<image>",
    "user2: 好的", "user1: 两行\n第二行<image>",
]


def _builder_prompt(query, lines, template="zh"):
    block, k = [], 0
    for i, line in enumerate(lines):
        pieces = line.split("<image>")
        out = pieces[0]
        for piece in pieces[1:]:
            out += f"<|img_id_start|>{k}<|img_id_end|><image>" + piece
            k += 1
        block.append(f"<|utt_id_start|>{i}<|utt_id_end|> {out}")
    head = TEMPLATES[template].partition("{query}")[0] + query
    rest = TEMPLATES[template].partition("{query}")[2].partition("{dialogue}")
    return head + rest[0] + "\n".join(block) + rest[2], k


def _mixed_records(root: Path, count: int, seed: int, template: str = "zh"):
    folder = root / "imgs"
    records = []
    for r in range(count):
        lines = MIXED_LINES[r % 3:] if r % 2 else MIXED_LINES[: len(MIXED_LINES) - r % 4]
        prompt, num_images = _builder_prompt(f"查询{seed}-{r}", lines, template)
        paths = [str(write_png(folder / f"{seed}-{r}-{k}.png", (k * 20 % 256, r, seed), (6, 5)).relative_to(root))
                 for k in range(num_images)]
        answer = render_answer([1, 2], [0] if num_images else [])
        records.append({"messages": [{"role": "system", "content": SYSTEM_PROMPTS["zh"]},
                                     {"role": "user", "content": prompt}, {"role": "assistant", "content": answer}],
                        "images": paths, "solution": answer, "dialogue_id": f"mixed-{seed}-{r}"})
    return records


def _assert_rows_render_the_prompts(ds, records):
    assert len(ds) == len(records)
    for row, record in zip(ds, records):
        prompt = record["messages"][1]["content"]
        rendered = render_prompt(Dialogue.from_row(row), row["query"], row["language"])
        assert rendered.encode("utf-8") == prompt.encode("utf-8")
        assert len(row["images"]) == len(record["images"]) == prompt.count("<image>")


def test_released_image_layouts_round_trip_through_parquet(tmp_path):
    from datasets import load_dataset

    release = tmp_path / "MLDR"
    release.mkdir()
    records = {"train_sft": _mixed_records(release, 4, 0), "train_grpo": _mixed_records(release, 3, 1),
               "validation": _mixed_records(release, 2, 2, "en")}
    _write_release(release, records)
    path, reports = build_from_release(str(release), str(tmp_path / "mldr"), show_progress=False)
    assert all(not r.skipped for r in reports)
    ds = load_dataset(path, cache_dir=str(tmp_path / "cache"))
    for split, recs in records.items():
        _assert_rows_render_the_prompts(ds[split], recs)
    utterances = ds["train_sft"][0]["utterances"]
    assert (utterances[1]["text"], utterances[1]["image_positions"]) == ("看这个", [3])
    assert (utterances[6]["text"], utterances[6]["image_positions"]) == ("房租多少", [])  # default layout
    assert (utterances[3]["text"], utterances[3]["image_ids"], utterances[3]["image_positions"]) == ("", [2, 3], [0, 0])

    wechat = tmp_path / "wechat"
    wechat.mkdir()
    wx = _mixed_records(wechat, 3, 3)
    _one_file(wechat, wx, "WeChat_test.json")
    path, _ = build_wechat(str(wechat), str(tmp_path / "wx"), show_progress=False)
    _assert_rows_render_the_prompts(load_dataset(path, "default", split="test", cache_dir=str(tmp_path / "cache")), wx)
