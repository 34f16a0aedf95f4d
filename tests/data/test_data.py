"""Row schema, lossless rows, synthetic dataset folders (load_dataset in a fresh process), cards."""

import json
import os
import subprocess
import sys

import pytest
from f2rvlm import Dialogue, render_prompt
from f2rvlm.cli import main as cli_main
from f2rvlm.data import (
    COLUMNS,
    atomic_folder,
    build_synthetic,
    card_statistics_block,
    compute_statistics,
    features,
    load_samples,
    make_row,
    row_example,
    sample_rows,
    statistics_by_split,
    statistics_table,
    synthetic_rows,
)
from f2rvlm.data.synthetic import generate_split

CONTRACT_COLUMNS = [
    "dialogue_id", "query", "language", "utterances", "images", "image_captions", "gold_utterance_ids",
    "gold_image_ids", "solution", "num_turns", "topics", "query_topic", "source", "difficulty",
]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("build") / "syn"
    build_synthetic(str(out), num_dialogues=8, seed=5, language="en", show_progress=False)
    return out


def test_features_follow_the_contract():
    from datasets import Image, List, Value

    feats = features()
    assert list(feats) == CONTRACT_COLUMNS == list(COLUMNS)
    assert feats["images"] == List(Image())
    assert feats["utterances"].feature == {
        "id": Value("int32"), "speaker": Value("string"), "text": Value("string"),
        "image_ids": List(Value("int32")), "topic": Value("string"), "image_positions": List(Value("int32"))}
    for name in ("gold_utterance_ids", "gold_image_ids"):
        assert feats[name] == List(Value("int32"))


def test_row_dialogue_round_trip_is_lossless():
    sample = generate_split("validation", 1, seed=0)[0]
    q = sample.queries[0]
    row = make_row(sample.dialogue, q.query, q.utterance_ids, q.image_ids, language="en", source="synthetic",
                   topics=sample.topics, query_topic=q.query_topic)
    dialogue, query, utts, imgs = row_example(row)
    again = dialogue.to_row()
    for key in ("dialogue_id", "utterances", "images", "image_captions", "num_turns"):
        assert again[key] == row[key], key
    assert [u.topic for u in dialogue.utterances] == [u.topic for u in sample.dialogue.utterances]
    assert render_prompt(dialogue, query, "zh") == render_prompt(sample.dialogue, query, "zh")
    assert (utts, imgs) == (q.utterance_ids, q.image_ids)


def test_make_row_rejects_gold_outside_the_dialogue():
    dialogue = Dialogue.from_dict({"utterances": [{"speaker": "user1", "text": "hi"}]})
    with pytest.raises(ValueError, match="outside the dialogue"):
        make_row(dialogue, "q", [3], [], language="en", source="x")


def test_same_seed_gives_identical_files(built, tmp_path):
    again = tmp_path / "again"
    build_synthetic(str(again), num_dialogues=8, seed=5, language="en", show_progress=False)
    files = sorted(p.relative_to(built) for p in built.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    assert any(str(f).endswith(".parquet") for f in files)
    for f in files:
        assert (built / f).read_bytes() == (again / f).read_bytes(), f


def test_load_dataset_in_a_fresh_process(built):
    script = f"""
import json
from datasets import load_dataset
folder = {str(built)!r}
full = load_dataset(folder)
val = load_dataset(folder, "synthetic_en", split="validation")
row = val[0]
print(json.dumps({{
    "splits": sorted(full), "rows": {{k: len(v) for k, v in full.items()}},
    "features": {{k: repr(v) for k, v in val.features.items()}},
    "image": [row["images"][0].size, row["images"][0].mode],
    "num_images": len(row["images"]), "captions": len(row["image_captions"]),
}}))
"""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_CACHE": str(built.parent / "cache")}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=240, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    info = json.loads(result.stdout.strip().splitlines()[-1])
    assert info["splits"] == sorted(["train_sft", "train_grpo", "validation", "test_heldout"])
    assert "List(Image(" in info["features"]["images"]
    assert info["features"]["gold_utterance_ids"] == "List(Value('int32'))"
    w, h = info["image"][0]
    assert 64 <= w <= 112 and 64 <= h <= 112 and info["image"][1] == "RGB"
    assert info["num_images"] == info["captions"] > 0


def test_card_statistics_match_the_data(built):
    from datasets import load_dataset

    card = (built / "README.md").read_text(encoding="utf-8")
    assert "default: true" in card and "2508.17714" in card and "## License" in card
    for split in ("train_sft", "train_grpo", "validation", "test_heldout"):
        assert f"split: {split}" in card
    ds = load_dataset(str(built), cache_dir=str(built.parent / "cache2"))
    stats = {split: compute_statistics(ds[split].remove_columns("images")) for split in
             ("train_sft", "train_grpo", "validation", "test_heldout")}
    assert card_statistics_block(card) == statistics_table(stats)
    assert stats["train_sft"]["topics_per_dialogue_mean"] == 3.0
    # decoded rows rebuild dialogues with images
    row = ds["validation"][0]
    dialogue = Dialogue.from_row(row)
    assert dialogue.num_images == len(row["images"]) and dialogue.images[0].load().size == row["images"][0].size


def test_refuses_existing_folder_and_overwrites_atomically(built, tmp_path, monkeypatch):
    with pytest.raises(FileExistsError, match="exists"):
        build_synthetic(str(built), num_dialogues=8, seed=5, show_progress=False)
    out = tmp_path / "out"
    build_synthetic(str(out), num_dialogues=4, seed=0, show_progress=False)
    before = (out / "README.md").read_bytes()
    from f2rvlm.data import io as data_io

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(data_io, "write_split", boom)
    with pytest.raises(RuntimeError):
        build_synthetic(str(out), num_dialogues=8, seed=1, overwrite=True, show_progress=False)
    assert (out / "README.md").read_bytes() == before  # the good folder is untouched
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temporary folder left behind
    monkeypatch.undo()
    build_synthetic(str(out), num_dialogues=8, seed=1, overwrite=True, show_progress=False)
    assert (out / "README.md").read_bytes() != before
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_atomic_folder_refuses_a_file(tmp_path):
    target = tmp_path / "f"
    target.write_text("x")
    with pytest.raises(NotADirectoryError), atomic_folder(str(target), overwrite=True):
        pass


def test_cli_data_synth(tmp_path, capsys):
    out = tmp_path / "cli"
    assert cli_main(["data", "synth", "--num-dialogues", "4", "--seed", "1", "--language", "zh", "--out", str(out)]) == 0
    assert (out / "README.md").exists() and "synthetic_zh" in (out / "README.md").read_text(encoding="utf-8")
    assert cli_main(["data", "synth", "--num-dialogues", "4", "--out", str(out)]) == 2
    assert "exists" in capsys.readouterr().err


def test_statistics_of_known_rows():
    rows = synthetic_rows(generate_split("validation", 3, seed=0))
    stats = statistics_by_split({"validation": rows})["validation"]
    assert stats["dialogues"] == 3 and stats["queries"] == len(rows)
    empty = sum(not r["gold_utterance_ids"] and not r["gold_image_ids"] for r in rows)
    assert stats["empty_gold_share"] == round(empty / len(rows), 4)


def test_sample_set_ships_with_the_package():
    samples = load_samples()
    assert len(samples) == 3 and {s["language"] for s in samples} == {"en", "zh"}
    for s in samples:
        s["dialogue"].validate(check_images=True)
        assert s["dialogue"].num_images >= 2 and s["queries"]
    rows = sample_rows()
    assert rows and all(r["images"] and r["images"][0]["bytes"] for r in rows)


def test_committed_card_is_the_default_build(tmp_path):
    out = tmp_path / "default"
    build_synthetic(str(out), num_dialogues=200, seed=0, language="en", show_progress=False)
    committed = os.path.join(os.path.dirname(__file__), "..", "..", "hub_datasets", "mldr", "README.md")
    with open(committed, encoding="utf-8") as f:
        assert f.read() == (out / "README.md").read_text(encoding="utf-8"), \
            "regenerate: python hub_datasets/mldr/build.py --synthetic --out OUT, copy OUT/README.md"
