"""DiscordChatExporter JSON with a --media folder."""

import io
import json

from f2rvlm.formats import detect_format, import_chat
from PIL import Image


def test_discord_export_with_media(tmp_path):
    media = tmp_path / "general.json_Files"
    media.mkdir()
    buffer = io.BytesIO()
    Image.new("RGB", (2, 2)).save(buffer, format="PNG")
    (media / "lake photo-1A2B.png").write_bytes(buffer.getvalue())
    author = {"id": "1", "name": "sam", "nickname": "Sam: the boss", "isBot": False}
    messages = [
        {
            "id": "10",
            "type": "Default",
            "timestamp": "2026-09-25T14:22:00+00:00",
            "content": "hi all",
            "author": author,
            "attachments": [],
            "embeds": [],
            "stickers": [],
        },
        {
            "id": "11",
            "type": "Reply",
            "timestamp": "2026-09-25T14:23:00+00:00",
            "content": "",
            "author": {"id": "2", "name": "kim", "nickname": None},
            "attachments": [
                {
                    "id": "a",
                    "url": "general.json_Files/lake%20photo-1A2B.png",
                    "fileName": "lake photo.png",
                    "fileSizeBytes": 70,
                },
                {"id": "b", "url": "general.json_Files/notes.pdf", "fileName": "notes.pdf"},
                {"id": "c", "url": "https://cdn.discordapp.com/x.jpg", "fileName": "x.jpg"},
            ],
            "reference": {"messageId": "10"},
        },
        {
            "id": "12",
            "type": "GuildMemberJoin",
            "timestamp": "2026-09-25T14:24:00+00:00",
            "content": "",
            "author": author,
            "attachments": [],
        },
        {
            "id": "13",
            "type": "Default",
            "timestamp": "2026-09-25T14:25:00+00:00",
            "content": "",
            "author": author,
            "attachments": [],
            "stickers": [{"id": "s", "name": "wave"}],
        },
    ]
    path = tmp_path / "general.json"
    path.write_text(
        json.dumps(
            {
                "guild": {"id": "g", "name": "G"},
                "channel": {"id": "c1", "name": "general"},
                "dateRange": {},
                "exportedAt": "2026-09-26",
                "messages": messages,
                "messageCount": 4,
            }
        )
    )
    assert detect_format(path) == "discord"
    result = import_chat(path)
    d = result.dialogue
    assert [u.speaker for u in d.utterances] == ["Sam the boss", "kim"]
    assert d.num_images == 1 and d.utterances[1].text == ""
    assert d.dialogue_id == "c1"
    assert {i.kind: i.count for i in result.ignored} == {
        "attachment (not an image)": 1,
        "image not downloaded (remote link)": 1,
        "system message": 1,
        "sticker": 1,
    }
