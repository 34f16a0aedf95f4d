"""Telegram Desktop result.json: single chat, whole account, text entities, photos, media."""

import json
import zipfile

import pytest
from f2rvlm.formats import ChatImportError, detect_format, import_chat
from helpers import png_bytes


def message(i, **fields):
    base = {
        "id": i,
        "type": "message",
        "date": f"2026-09-25T14:2{i}:00",
        "date_unixtime": "1790000000",
        "from": "Sam",
        "from_id": "user1",
        "text": "",
        "text_entities": [],
    }
    base.update(fields)
    return base


MESSAGES = [
    {
        "id": 1,
        "type": "service",
        "date": "2026-09-25T14:20:00",
        "actor": "Sam",
        "action": "create_group",
    },
    message(2, text="hello"),
    message(3, **{"from": "Kim"}, text=["look at ", {"type": "bold", "text": "this"}, "!"]),
    message(4, photo="photos/photo_1@25-09-2026_14-24-00.jpg", width=3, height=3, text="the lake"),
    message(5, photo="(File not included. Change data exporting settings to download.)"),
    message(6, file="stickers/sticker.webp", media_type="sticker", sticker_emoji="x"),
    message(7, file="voice_messages/audio_1.ogg", media_type="voice_message"),
    message(8, file="files/scan.png", mime_type="image/png", text="scan"),
    message(9, **{"from": None}, text="from a deleted account"),
]


def test_single_chat_folder_export(tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "files").mkdir()
    (tmp_path / "photos" / "photo_1@25-09-2026_14-24-00.jpg").write_bytes(png_bytes())
    (tmp_path / "files" / "scan.png").write_bytes(png_bytes())
    path = tmp_path / "result.json"
    path.write_text(
        json.dumps({"name": "Sam", "type": "personal_chat", "id": 42, "messages": MESSAGES})
    )
    assert detect_format(path) == "telegram"
    result = import_chat(path)
    d = result.dialogue
    assert [u.text for u in d.utterances] == [
        "hello",
        "look at this!",
        "the lake",
        "scan",
        "from a deleted account",
    ]
    assert [u.speaker for u in d.utterances][-1] == "Deleted Account"
    assert d.num_images == 2 and d.image_hosts == [2, 3]
    assert d.utterances[0].timestamp == "2026-09-25T14:22:00" and d.dialogue_id == "42"
    assert {i.kind: i.count for i in result.ignored} == {
        "service message": 1,
        "photo not included in the export": 1,
        "sticker": 1,
        "voice message": 1,
    }
    assert import_chat(tmp_path).format == "telegram"  # the export folder itself


def test_zipped_export_and_missing_photo(tmp_path):
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(
            "ChatExport_2026-09-25/result.json",
            json.dumps({"name": "Sam", "messages": MESSAGES[:5]}),
        )
        zf.writestr("ChatExport_2026-09-25/photos/other.jpg", png_bytes())
    result = import_chat(archive)
    assert result.dialogue.num_images == 0
    assert any(i.kind == "missing image file" for i in result.ignored)


def test_whole_account_picks_first_personal_chat_or_by_name(tmp_path):
    chats = {
        "list": [
            {
                "name": "Group",
                "type": "private_group",
                "id": 1,
                "messages": [message(1, text="group hi")],
            },
            {
                "name": "Kim",
                "type": "personal_chat",
                "id": 2,
                "messages": [message(1, text="kim hi")],
            },
        ]
    }
    path = tmp_path / "result.json"
    path.write_text(json.dumps({"about": "...", "chats": chats}))
    assert import_chat(path).dialogue.utterances[0].text == "kim hi"
    assert import_chat(path, chat="Group").dialogue.utterances[0].text == "group hi"
    assert import_chat(path, chat=0).dialogue.utterances[0].text == "group hi"
    with pytest.raises(ChatImportError, match="no chat named 'Nope'"):
        import_chat(path, chat="Nope")
