"""Released ms-swift records, raw annotations and our own dialogue JSON."""

import json

import pytest
from f2rvlm.core.dialogue import Dialogue
from f2rvlm.core.protocol import render_answer, render_prompt
from f2rvlm.formats import ChatImportError, detect_format, import_chat, read_chat
from helpers import write_png


def sample_dialogue():
    return Dialogue.from_dict(
        {
            "utterances": [
                {"speaker": "user1", "text": "we went to the lake"},
                {"speaker": "user2", "text": "nice", "images": ["MLDR_train_images/img0/a.jpg"]},
                {"speaker": "user1", "text": "", "images": ["MLDR_train_images/img1/b.jpg"]},
            ]
        }
    )


def record(query="the lake photos", dialogue_id="d1"):
    return {
        "messages": [
            {"role": "system", "content": "你是一个多模态信息检索助手。"},
            {"role": "user", "content": render_prompt(sample_dialogue(), query)},
            {"role": "assistant", "content": render_answer([0, 1], [0])},
        ],
        "images": ["MLDR_train_images/img0/a.jpg", {"path": "MLDR_train_images/img1/b.jpg"}],
        "solution": render_answer([0, 1], [0]),
        "dialogue_id": dialogue_id,
    }


def test_released_record_list_and_index(tmp_path):
    write_png(tmp_path / "MLDR_train_images/img0/a.jpg")
    write_png(tmp_path / "MLDR_train_images/img1/b.jpg")
    path = tmp_path / "MLDR_val.json"
    path.write_text(json.dumps([record(), record("second query", "d2")], ensure_ascii=False))
    assert detect_format(path) == "released"
    result = import_chat(path, record=1)
    assert result.queries == ["second query"] and result.dialogue.dialogue_id == "d2"
    d = result.dialogue
    assert [u.text for u in d.utterances] == ["we went to the lake", "nice", ""]
    assert d.image_hosts == [1, 2] and d.images[1].load().size == (2, 2)
    assert render_prompt(d, "second query").count("<image>") == 2
    with pytest.raises(ChatImportError, match="record 5 requested; the file has 2"):
        import_chat(path, record=5)


def test_released_record_missing_images_keep_turns(tmp_path):
    path = tmp_path / "one.json"
    path.write_text(json.dumps(record(), ensure_ascii=False))
    result = import_chat(path)
    d = result.dialogue
    assert d.num_images == 0 and [u.text for u in d.utterances] == [
        "we went to the lake",
        "nice",
        "[image]",
    ]
    assert result.ignored[0].kind == "missing image file" and result.ignored[0].count == 2


def test_released_images_never_read_outside_the_upload(tmp_path):
    outside = tmp_path / "secret" / "a.jpg"
    write_png(outside)
    upload = tmp_path / "upload"
    upload.mkdir()
    rec = record()
    rec["images"] = [str(outside), "../secret/a.jpg"]
    (upload / "r.json").write_text(json.dumps(rec, ensure_ascii=False))
    assert import_chat(upload / "r.json").dialogue.num_images == 0
    # the same absolute path is found by file name inside an images folder the caller gives
    assert import_chat(upload / "r.json", images_dir=tmp_path / "secret").dialogue.num_images == 1


def test_raw_annotation_images_are_their_own_turns(tmp_path):
    write_png(tmp_path / "imgs/x.jpg")
    data = {
        "dialogue_id": "a1",
        "dialogue": [
            {"speaker": "user1", "utterance_idx": 0, "utterance": "look"},
            {
                "speaker": "user1",
                "utterance_idx": 1,
                "utterance": [{"image_url": "imgs/x.jpg", "caption": "a lake"}],
            },
        ],
        "query_text": ["lake"],
        "gt_turns": [[0, 1]],
    }
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(data))
    assert detect_format(path) == "annotation"
    result = import_chat(path)
    assert len(result.dialogue) == 2 and result.dialogue.images[0].caption == "a lake"
    assert result.queries == ["lake"]


def test_dialogue_json(tmp_path):
    write_png(tmp_path / "p.png")
    path = tmp_path / "d.json"
    path.write_text(
        json.dumps(
            {
                "utterances": [
                    {"speaker": "a", "text": "hi", "images": [{"path": "p.png", "caption": "c"}]}
                ]
            }
        )
    )
    assert detect_format(path) == "dialogue-json"
    d = read_chat(path)
    assert d.images[0].caption == "c" and d.images[0].path.endswith("p.png")
