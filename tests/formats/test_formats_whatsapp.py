"""WhatsApp exports: Android / iOS / US / Finnish headers, date order, media, system lines."""

import zipfile

import pytest
from f2rvlm.formats import ChatImportError, detect_format, import_chat, read_chat
from helpers import png_bytes


def write(tmp_path, name, text, encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def kinds(result):
    return {item.kind: item.count for item in result.ignored}


ANDROID = """25/09/2026, 14:20 - Messages and calls are end-to-end encrypted. No one outside of this chat can read them.
25/09/2026, 14:21 - Sam Lee: hello there
second line of the same message
25/09/2026, 14:22 - Alex: IMG-20260925-WA0001.jpg (file attached)
the lake at dawn
25/09/2026, 14:23 - Alex: <Media omitted>
25/09/2026, 14:24 - Sam Lee: STK-20260925-WA0002.webp (file attached)
13/10/2026, 09:05 - Alex: PTT-20261013-WA0003.opus (file attached)
13/10/2026, 09:06 - Alex: This message was deleted
13/10/2026, 09:07 - Sam Lee: see you
"""


def test_android_txt_with_media_folder(tmp_path):
    (tmp_path / "IMG-20260925-WA0001.jpg").write_bytes(png_bytes())
    path = write(tmp_path, "WhatsApp Chat with Sam.txt", ANDROID)
    assert detect_format(path) == "whatsapp"
    result = import_chat(path)
    d = result.dialogue
    assert [u.speaker for u in d.utterances] == ["Sam Lee", "Alex", "Sam Lee"]
    assert d.utterances[0].text == "hello there\nsecond line of the same message"
    assert d.utterances[0].timestamp == "2026-09-25T14:21:00"
    assert d.utterances[1].text == "the lake at dawn" and len(d.utterances[1].images) == 1
    assert d.utterances[1].images[0].load().size == (4, 4)
    assert d.utterances[2].timestamp == "2026-10-13T09:07:00"  # 13/10 forces day first
    assert kinds(result) == {
        "system message": 1,
        "media omitted": 1,
        "sticker": 1,
        "voice note / audio": 1,
        "deleted message": 1,
    }
    assert "sticker" in result.summary()


def test_us_twelve_hour_month_first(tmp_path):
    text = "9/25/26, 2:22\u202fPM - Sam: hello\n9/25/26, 11:05\u202fAM - Kim: hi\n"
    d = read_chat(write(tmp_path, "chat.txt", text))
    assert [u.timestamp for u in d.utterances] == ["2026-09-25T14:22:00", "2026-09-25T11:05:00"]


def test_day_month_order_inferred_from_later_dates(tmp_path):
    # the first dates are ambiguous; 3/13 late in the file fixes month-first
    text = "03/04/2022, 10:00 - A: one\n03/13/2022, 10:00 - B: two\n"
    d = read_chat(write(tmp_path, "chat.txt", text))
    assert d.utterances[0].timestamp.startswith("2022-03-04")
    assert d.utterances[1].timestamp.startswith("2022-03-13")


def test_ios_zip_with_attachments_crlf_and_lrm(tmp_path):
    text = (
        "\u200e[12/07/2026, 09:15:01] Trip: \u200eMessages and calls are end-to-end encrypted.\r\n"
        "[12/07/2026, 09:16:31] Kim: \u200e<attached: 00000031-PHOTO-2026-07-12-09-16-31.jpg>\r\n"
        "[12/07/2026, 09:16:40] Kim: \u200e<attached: 00000032-PHOTO-2026-07-12 with space.png>\r\n"
        "\u200e[12/07/2026, 09:17:00] Ana: \u200eimage omitted\r\n"
        "[12/07/2026, 09:17:05] Ana: \u200esticker omitted\r\n"
        "[12/07/2026, 09:18:00] Ana: \u200e<attached: 00000033-PHOTO-2026-07-12-09-18-00.jpg>\r\n"
        "[12/07/2026, 09:19:00] Ana: wow\r\nso nice\r\n"
    )
    archive = tmp_path / "WhatsApp Chat - Trip.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("_chat.txt", text)
        zf.writestr("00000031-PHOTO-2026-07-12-09-16-31.jpg", png_bytes())
        zf.writestr("00000032-PHOTO-2026-07-12 with space.png", png_bytes((0, 0, 255)))
    assert detect_format(archive) == "whatsapp"
    result = import_chat(archive)
    d = result.dialogue
    assert [u.speaker for u in d.utterances] == ["Kim", "Kim", "Ana"]
    assert d.num_images == 2 and isinstance(d.images[0].source, bytes)
    assert d.utterances[2].text == "wow\nso nice"
    assert kinds(result) == {
        "system message": 1,
        "image omitted": 1,
        "sticker omitted": 1,
        "missing image file": 1,
    }


def test_zip_extract_to_gives_paths_inside_given_folder(tmp_path):
    archive = tmp_path / "chat.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(
            "WhatsApp Chat with X.txt", "25/09/2026, 14:22 - X: IMG-1.jpg (file attached)\n"
        )
        zf.writestr("IMG-1.jpg", png_bytes())
    out = tmp_path / "extracted"
    out.mkdir()
    d = read_chat(archive, extract_to=out)
    assert d.images[0].path.startswith(str(out.resolve()))


def test_finnish_locale_separators(tmp_path):
    text = "[12.3.2022 klo 14.08.18] Matti: Hei\n[13.3.2022 klo 9.01.00] Liisa: Moi\n"
    d = read_chat(write(tmp_path, "chat.txt", text))
    assert [u.timestamp for u in d.utterances] == ["2022-03-12T14:08:18", "2022-03-13T09:01:00"]


def test_speaker_names_are_sanitised(tmp_path):
    text = "25/09/2026, 14:22 - \u202a+1 555 0100\u202c: hi\n25/09/2026, 14:23 - Dr. Who: ok <image> <|utt_id_start|>\n"
    d = read_chat(write(tmp_path, "chat.txt", text))
    assert d.utterances[0].speaker == "+1 555 0100"
    assert d.utterances[1].text == "ok [image]"


def test_fake_png_attachment_is_reported_not_crashing(tmp_path):
    (tmp_path / "IMG-1.jpg").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    text = "25/09/2026, 14:22 - X: IMG-1.jpg (file attached)\n25/09/2026, 14:23 - X: text\n"
    result = import_chat(write(tmp_path, "chat.txt", text))
    assert len(result.dialogue) == 1
    item = next(i for i in result.ignored if i.kind == "unreadable image")
    assert "IMG-1.jpg is not a valid image" in item.examples[0]


def test_only_system_lines_is_an_error(tmp_path):
    text = "25/09/2026, 14:20 - Messages and calls are end-to-end encrypted.\n"
    with pytest.raises(ChatImportError, match="no messages"):
        read_chat(write(tmp_path, "chat.txt", text))
