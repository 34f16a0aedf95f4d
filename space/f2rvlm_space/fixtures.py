"""Small chat exports and hostile uploads written on the fly, for the Space's tests and its load
benchmark (nothing is downloaded; every picture is drawn here)."""

from __future__ import annotations

import io
import json
import stat
import zipfile
from pathlib import Path


def png_bytes(color=(200, 120, 40), size=(32, 24)) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg_bytes(color=(40, 120, 200), size=(32, 24)) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="JPEG")
    return buffer.getvalue()


WHATSAPP_LINES = [
    "25/09/2026, 09:00 - Messages and calls are end-to-end encrypted.",
    "25/09/2026, 09:01 - Sam: Morning! Are we still going to the lake on Saturday?",
    "25/09/2026, 09:02 - Alex: Yes, I'll bring the tent and the kayak",
    "25/09/2026, 09:03 - Sam: IMG-20260925-WA0001.jpg (file attached)",
    "25/09/2026, 09:03 - Sam: this is the spot by the pier",
    "25/09/2026, 09:05 - Alex: <Media omitted>",
    "25/09/2026, 09:06 - Alex: STK-20260925-WA0002.webp (file attached)",
    "25/09/2026, 12:30 - Sam: lunch: pasta or ramen?",
    "25/09/2026, 12:31 - Alex: ramen, the new place on Main street",
    "25/09/2026, 12:32 - Alex: IMG-20260925-WA0003.jpg (file attached)",
    "25/09/2026, 12:40 - Sam: PTT-20260925-WA0004.opus (file attached)",
    "25/09/2026, 18:10 - Sam: my new number is +44 20 7946 0958, mail sam@example.com",
    "25/09/2026, 18:11 - Alex: saved",
]


def write_whatsapp_zip(path: str | Path) -> Path:
    """An Android WhatsApp export with media: 2 photos, a sticker, a voice note, an omitted medium."""
    path = Path(path)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("WhatsApp Chat with Alex.txt", "\n".join(WHATSAPP_LINES) + "\n")
        archive.writestr("IMG-20260925-WA0001.jpg", jpeg_bytes((30, 144, 255)))
        archive.writestr("STK-20260925-WA0002.webp", b"RIFF....WEBP")
        archive.writestr("IMG-20260925-WA0003.jpg", jpeg_bytes((230, 90, 40)))
        archive.writestr("PTT-20260925-WA0004.opus", b"OggS" + b"\x00" * 60)
    return path


def telegram_export() -> dict:
    messages = [
        {"id": 1, "type": "service", "date": "2026-07-12T09:00:00", "actor": "Mia", "action": "create_group",
         "text": "", "text_entities": []},
        {"id": 2, "type": "message", "date": "2026-07-12T09:01:00", "from": "Mia", "from_id": "user1",
         "text": "The museum opens at 10, shall we meet at the entrance?", "text_entities": []},
        {"id": 3, "type": "message", "date": "2026-07-12T09:02:00", "from": "Leo", "from_id": "user2",
         "text": ["sure, see ", {"type": "bold", "text": "you"}, " there"], "text_entities": []},
        {"id": 4, "type": "message", "date": "2026-07-12T11:15:00", "from": "Mia", "from_id": "user1",
         "photo": "photos/photo_1@12-07-2026_11-15-00.jpg", "width": 32, "height": 24,
         "text": "the dinosaur skeleton!", "text_entities": []},
        {"id": 5, "type": "message", "date": "2026-07-12T11:16:00", "from": "Leo", "from_id": "user2",
         "file": "stickers/sticker.webp", "media_type": "sticker", "text": "", "text_entities": []},
        {"id": 6, "type": "message", "date": "2026-07-12T13:00:00", "from": "Leo", "from_id": "user2",
         "text": "lunch at the cafe on the roof?", "text_entities": []},
        {"id": 7, "type": "message", "date": "2026-07-12T13:05:00", "from": "Mia", "from_id": "user1",
         "file": "voice_messages/audio_1.ogg", "media_type": "voice_message", "text": "", "text_entities": []},
        {"id": 8, "type": "message", "date": "2026-07-12T13:30:00", "from": "Mia", "from_id": "user1",
         "photo": "photos/photo_2@12-07-2026_13-30-00.jpg", "width": 32, "height": 24,
         "text": "view from the roof", "text_entities": []},
    ]
    return {"name": "Leo", "type": "personal_chat", "id": 42, "messages": messages}


def write_telegram_zip(path: str | Path) -> Path:
    """A Telegram Desktop one-chat export (result.json + photos), zipped: 2 photos, a sticker, a voice note."""
    path = Path(path)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("ChatExport_2026-07-12/result.json", json.dumps(telegram_export(), indent=1))
        archive.writestr("ChatExport_2026-07-12/photos/photo_1@12-07-2026_11-15-00.jpg", jpeg_bytes((90, 200, 90)))
        archive.writestr("ChatExport_2026-07-12/photos/photo_2@12-07-2026_13-30-00.jpg", jpeg_bytes((200, 200, 90)))
    return path


def write_telegram_json(path: str | Path) -> Path:
    """The same export as a bare result.json (photos missing: reported, not fatal)."""
    path = Path(path)
    path.write_text(json.dumps(telegram_export(), indent=1), encoding="utf-8")
    return path


# ----------------------------------------------------------------------------------------------
# Hostile uploads
# ----------------------------------------------------------------------------------------------
def write_zip_slip(path: str | Path) -> Path:
    path = Path(path)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("WhatsApp Chat with Eve.txt", "\n".join(WHATSAPP_LINES[:3]) + "\n")
        archive.writestr("../../evil.txt", "owned")
    return path


def write_zip_symlink(path: str | Path) -> Path:
    path = Path(path)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("WhatsApp Chat with Eve.txt", "\n".join(WHATSAPP_LINES[:3]) + "\n")
        info = zipfile.ZipInfo("IMG-20260925-WA0001.jpg")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(info, "/etc/passwd")
    return path


def write_zip_bomb(path: str | Path, megabytes: int = 64) -> Path:
    """A small zip whose one member inflates to `megabytes` MB of zeros (~1000x)."""
    path = Path(path)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("WhatsApp Chat with Eve.txt", "\n".join(WHATSAPP_LINES[:3]) + "\n")
        with archive.open("IMG-20260925-WA0009.jpg", "w", force_zip64=True) as member:
            block = b"\x00" * (1 << 20)
            for _ in range(megabytes):
                member.write(block)
    return path


def write_long_chat(path: str | Path, turns: int = 10_000) -> Path:
    path = Path(path)
    lines = [f"25/09/2026, {9 + i // 3600 % 12:02d}:{i // 60 % 60:02d} - {'Sam' if i % 2 else 'Alex'}: message {i}"
             for i in range(turns)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_fake_png(path: str | Path) -> Path:
    path = Path(path)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"this is not really a picture" * 10)
    return path


def write_empty(path: str | Path) -> Path:
    path = Path(path)
    path.write_bytes(b"")
    return path


def write_corrupt_image_zip(path: str | Path) -> Path:
    """A WhatsApp zip whose photo is not a picture: imported, with the photo reported."""
    path = Path(path)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("WhatsApp Chat with Eve.txt", "\n".join(WHATSAPP_LINES[:5]) + "\n")
        archive.writestr("IMG-20260925-WA0001.jpg", b"\xff\xd8 definitely not a jpeg")
    return path


HOSTILE = {
    "zip slip": (write_zip_slip, "zip-slip.zip", "escapes the archive"),
    "zip symlink": (write_zip_symlink, "symlink.zip", "symbolic link"),
    "zip bomb": (write_zip_bomb, "bomb.zip", "decompression bomb"),
    "10k turns": (write_long_chat, "long-chat.txt", "the limit is"),
    "fake png": (write_fake_png, "photo.png", "not a supported chat export"),
    "empty file": (write_empty, "empty.txt", "empty"),
}
