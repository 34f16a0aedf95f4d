"""Dialogue model: plain-data and row round trips, windows, validation errors."""


import pytest
from f2rvlm import Dialogue, DialogueError, DialogueImage, as_dialogue
from helpers import png_bytes
from PIL import Image


def test_ids_follow_the_protocol():
    d = Dialogue.from_dict({"utterances": [
        {"speaker": "a", "text": "x", "images": [{"bytes": png_bytes(), "caption": "red"}]},
        {"speaker": "b", "text": "y"},
        {"speaker": "a", "text": "", "images": [{"bytes": png_bytes((0, 0, 255))}, {"bytes": png_bytes((0, 255, 0))}]},
    ]})
    assert d.utterance_ids == [0, 1, 2]
    assert d.image_hosts == [0, 2, 2]
    assert [s.image_ids for s in d.line_specs()] == [(0,), (), (1, 2)]
    assert d.images[0].caption == "red"


def test_row_round_trip_is_lossless():
    d = Dialogue.from_dict({"dialogue_id": "d1", "utterances": [
        {"speaker": "a", "text": "x", "images": [{"bytes": png_bytes(), "caption": "red"}]},
        {"speaker": "b", "text": "y", "images": [{"bytes": png_bytes((1, 2, 3))}]},
    ]})
    back = Dialogue.from_row(d.to_row())
    assert back.to_dict() == d.to_dict()


def test_window_keeps_global_ids_and_maps_images():
    d = Dialogue.from_dict({"utterances": [
        {"speaker": "a", "text": str(i), "images": [{"bytes": png_bytes((i, i, i))}] if i % 2 else []} for i in range(6)
    ]})
    window, image_offset = d.window(3, 6)
    assert window.utterance_ids == [3, 4, 5]
    assert [s.image_ids for s in window.line_specs()] == [(0,), (), (1,)]
    assert image_offset == 1 and d.image_hosts[image_offset] == 3


def test_images_load_from_path_bytes_and_pil(tmp_path):
    path = tmp_path / "p.png"
    path.write_bytes(png_bytes())
    for source in (str(path), png_bytes(), Image.new("L", (4, 4))):
        assert DialogueImage(source).load().mode == "RGB"


@pytest.mark.parametrize("data,message", [
    ({"utterances": []}, "no utterances"),
    ({}, "'utterances' is missing"),
    ([1], "must be an object"),
    ({"utterances": [{"text": "hi"}]}, "'speaker' is missing"),
    ({"utterances": [{"speaker": "a", "text": "x", "id": 1}]}, "id 1 breaks the order"),
    ({"utterances": [{"speaker": "a", "text": "x", "images": ["p.png"]}, {"speaker": "b", "images": ["p.png"]}]},
     "already attached to utterance 0"),
    ({"utterances": [{"speaker": "a", "text": ""}]}, "neither text nor images"),
    ({"utterances": [{"speaker": "a: b", "text": "x"}]}, "must not contain"),
    ({"utterances": [{"speaker": "a", "images": [{"caption": "c"}]}]}, "needs 'path' or 'bytes'"),
])
def test_validation_errors_name_the_problem(data, message):
    with pytest.raises(DialogueError, match=message):
        Dialogue.from_dict(data) if isinstance(data, dict) else Dialogue.from_dict(data[0])


def test_unreadable_images_are_reported(tmp_path):
    bad = tmp_path / "fake.png"
    bad.write_bytes(b"not a png at all")
    with pytest.raises(DialogueError, match="not a readable picture: .*fake.png"):
        Dialogue.from_dict({"utterances": [{"speaker": "a", "images": [str(bad)]}]}).validate(check_images=True)
    with pytest.raises(DialogueError, match="image file not found: .*missing.png"):
        DialogueImage(str(tmp_path / "missing.png")).load()


def test_as_dialogue_accepts_plain_lists():
    assert len(as_dialogue([{"speaker": "a", "text": "hi"}])) == 1


def test_image_positions_validate_and_round_trip():
    def make(positions, text="abc", n=2):
        return Dialogue.from_dict({"utterances": [
            {"speaker": "a", "text": text, "images": [{"bytes": png_bytes((k, 0, 0))} for k in range(n)],
             "image_positions": positions}]})

    d = make([0, 3])
    assert d.utterances[0].image_positions == [0, 3]
    assert Dialogue.from_row(d.to_row()).to_dict() == d.to_dict()
    assert Dialogue.from_dict(d.to_dict()).utterances[0].image_positions == [0, 3]
    assert d.to_row()["utterances"][0]["image_positions"] == [0, 3]
    assert make(None).to_row()["utterances"][0]["image_positions"] == []  # [] = default layout
    for bad, message in (([0], "1 image positions for 2 images"), ([2, 1], "non-decreasing"),
                         ([0, 4], "non-decreasing offsets in 0..3"), ([-1, 0], "0..3")):
        with pytest.raises(DialogueError, match=message):
            make(bad)
    row = d.to_row()
    row["utterances"][0]["image_positions"] = [3, 0]
    with pytest.raises(DialogueError, match="utterance 0: image positions"):
        Dialogue.from_row(row)


def test_rows_without_image_positions_still_load():
    d = Dialogue.from_dict({"utterances": [{"speaker": "a", "text": "x", "images": [{"bytes": png_bytes()}]}]})
    row = d.to_row()
    for utterance in row["utterances"]:
        del utterance["image_positions"]  # rows written before the column existed
    back = Dialogue.from_row(row)
    assert back.utterances[0].image_positions is None and back.to_dict() == d.to_dict()
