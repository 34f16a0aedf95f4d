"""Hostile and broken uploads: zip slip, links, bombs, lying headers, limits, garbage."""

import io
import struct
import zipfile

import pytest
from f2rvlm.formats import ChatImportError, ImportLimits, detect_format, import_chat, read_chat
from f2rvlm.formats.safety import SafeZip, image_problem, safe_member_name
from PIL import Image

CHAT = "25/09/2026, 14:22 - Sam: hello\n"


def make_zip(path, members):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


@pytest.mark.parametrize(
    "name", ["../evil.txt", "a/../../evil.txt", "/etc/passwd", "C:/x.txt", "C:\\x.txt", "..\\x.txt"]
)
def test_zip_slip_is_refused(tmp_path, name):
    archive = make_zip(tmp_path / "chat.zip", {"_chat.txt": CHAT, name: "x"})
    with pytest.raises(ChatImportError, match="escapes the archive"):
        read_chat(archive)


def test_member_names_are_normalised():
    assert safe_member_name("media\\IMG 1.jpg") == "media/IMG 1.jpg"
    assert safe_member_name("./a/./b.txt") == "a/b.txt"


def test_symlink_member_is_refused(tmp_path):
    archive = tmp_path / "chat.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("_chat.txt", CHAT)
        link = zipfile.ZipInfo("IMG-1.jpg")
        link.create_system = 3
        link.external_attr = 0o120777 << 16
        zf.writestr(link, "/etc/passwd")
    with pytest.raises(ChatImportError, match="symbolic link"):
        read_chat(archive)


def test_zip_bomb_ratio_is_refused(tmp_path):
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("_chat.txt", CHAT)
        with zf.open("IMG-1.jpg", "w") as member:  # 4 MiB of zeros, streamed: ~4 KB compressed
            for _ in range(64):
                member.write(bytes(1 << 16))
    with pytest.raises(ChatImportError, match="decompression bomb"):
        read_chat(archive)


def test_total_uncompressed_limit(tmp_path):
    archive = make_zip(tmp_path / "chat.zip", {"_chat.txt": CHAT, "big.bin": b"x" * 5000})
    with pytest.raises(ChatImportError, match="unpacks to"):
        read_chat(archive, limits=ImportLimits(max_total_uncompressed=4000))


def test_member_count_limit(tmp_path):
    archive = make_zip(tmp_path / "chat.zip", {f"f{i}.txt": "x" for i in range(12)})
    with pytest.raises(ChatImportError, match="12 members; the limit is 10"):
        read_chat(archive, limits=ImportLimits(max_members=10))


def test_member_lying_about_its_size_is_caught(tmp_path):
    archive = make_zip(tmp_path / "chat.zip", {"_chat.txt": CHAT * 50})
    data = bytearray(archive.read_bytes())
    true_size = len(CHAT * 50)
    # shrink the declared size in the local header (offset 22) and the central directory (offset 24)
    local = data.index(b"PK\x03\x04")
    struct.pack_into("<I", data, local + 22, 10)
    central = data.index(b"PK\x01\x02")
    struct.pack_into("<I", data, central + 24, 10)
    archive.write_bytes(bytes(data))
    assert true_size > 10
    with SafeZip(archive) as safe, pytest.raises(ChatImportError):
        safe.read("_chat.txt")


def test_nested_archive_is_not_followed(tmp_path):
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as zf:
        zf.writestr("_chat.txt", CHAT)
    archive = make_zip(tmp_path / "outer.zip", {"inner.zip": inner.getvalue()})
    with pytest.raises(ChatImportError, match="not a supported chat export"):
        read_chat(archive)
    with SafeZip(archive) as safe, pytest.raises(ChatImportError, match="nested archives"):
        safe.read("inner.zip")


def test_too_many_turns(tmp_path):
    path = tmp_path / "chat.txt"
    path.write_text(CHAT * 30)
    with pytest.raises(ChatImportError, match="chat has 30 turns; the limit is 20"):
        read_chat(path, limits=ImportLimits(max_turns=20))


def test_upload_size_limit(tmp_path):
    path = tmp_path / "chat.txt"
    path.write_text(CHAT * 100)
    with pytest.raises(ChatImportError, match="the limit is"):
        read_chat(path, limits=ImportLimits(max_upload_bytes=1000))


def test_empty_file(tmp_path):
    path = tmp_path / "chat.txt"
    path.write_bytes(b"")
    with pytest.raises(ChatImportError, match="chat.txt: file is empty"):
        read_chat(path)


def test_missing_file(tmp_path):
    with pytest.raises(ChatImportError, match="file not found"):
        read_chat(tmp_path / "nope.txt")


def test_binary_garbage_lists_supported_formats(tmp_path):
    path = tmp_path / "chat.txt"
    path.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(ChatImportError, match="not a supported chat export.*WhatsApp.*Telegram"):
        detect_format(path)


def test_unknown_json_and_broken_json(tmp_path):
    (tmp_path / "a.json").write_text('{"hello": 1}')
    with pytest.raises(ChatImportError, match="not a supported chat export"):
        read_chat(tmp_path / "a.json")
    (tmp_path / "b.json").write_text('{"messages": [')
    with pytest.raises(ChatImportError, match="b.json: not valid JSON"):
        read_chat(tmp_path / "b.json")


def test_corrupt_zip(tmp_path):
    path = tmp_path / "chat.zip"
    path.write_bytes(b"PK\x03\x04" + b"garbage" * 10)
    with pytest.raises(ChatImportError, match="not a readable zip"):
        read_chat(path)


def test_image_checks(tmp_path):
    buffer = io.BytesIO()
    Image.new("RGB", (100, 100)).save(buffer, format="PNG")
    limits = ImportLimits(max_image_pixels=5000)
    assert "100x100 pixels" in image_problem(buffer.getvalue(), "big.png", limits)
    assert image_problem(buffer.getvalue(), "ok.png", ImportLimits()) is None
    assert (
        image_problem(b"\x89PNG\r\n\x1a\n\x00", "IMG-1.jpg", limits)
        == "IMG-1.jpg is not a valid image (UnidentifiedImageError)"
    )


def test_extract_stays_inside_given_folder(tmp_path):
    long_name = "a" * 300 + ".JPG"  # longer than a file name may be
    archive = make_zip(tmp_path / "chat.zip", {"_chat.txt": CHAT, "media/IMG 1.jpg": b"x", "media": b"file",
                                               long_name: b"y"})
    out = tmp_path / "out"
    out.mkdir()
    with SafeZip(archive) as safe:  # flat, numbered names: no folder/file clash, no name too long
        target = safe.extract("media/IMG 1.jpg", out)
        assert safe.extract("media", out).read_bytes() == b"file"
        assert safe.extract(long_name, out).name == "m00003.jpg"
        assert safe.extract("media/IMG 1.jpg", out) == target
    assert target == out.resolve() / "m00001.jpg" and target.read_bytes() == b"x"
    assert sorted(p.name for p in out.iterdir()) == ["m00001.jpg", "m00002", "m00003.jpg"]
    assert import_chat(archive).format == "whatsapp"


def test_corrupt_deflate_stream_is_an_import_error(tmp_path):
    chat = "".join(f"25/09/2026, 14:{i:02d} - Sam: message number {i} about the lake\n" for i in range(60))
    archive = make_zip(tmp_path / "chat.zip", {"_chat.txt": chat})
    data = bytearray(archive.read_bytes())
    start = data.index(b"_chat.txt") + len("_chat.txt")
    for offset in range(20, 40):  # inside the deflate stream
        data[start + offset] ^= 0x5A
    archive.write_bytes(bytes(data))
    with pytest.raises(ChatImportError, match=r"^chat\.zip: zip member '_chat\.txt' cannot be read: damaged archive"):
        import_chat(archive)


def test_damaged_image_member_is_reported_not_fatal(tmp_path):
    from helpers import png_bytes

    archive = make_zip(tmp_path / "chat.zip", {
        "_chat.txt": "25/09/2026, 14:22 - Sam: IMG-1.png (file attached)\nhello\n", "IMG-1.png": png_bytes() * 40})
    data = bytearray(archive.read_bytes())
    with zipfile.ZipFile(archive) as zf:
        start = zf.getinfo("IMG-1.png").header_offset + 30 + len("IMG-1.png")
    for offset in range(10, 30):
        data[start + offset] ^= 0x5A
    archive.write_bytes(bytes(data))
    result = import_chat(archive, extract_to=tmp_path)
    assert [item.kind for item in result.ignored] == ["unreadable image"]
    assert "damaged archive" in result.summary() and result.dialogue.utterances[0].text == "hello"


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "gb18030", "utf-8-sig"])
def test_other_encodings_are_read_and_named(tmp_path, codec):
    text = "2026-09-25 14:20:00 小金\n你好，我们明天去湖边散步吧，带上相机拍照。\n2026-09-25 14:21:00 我\n好的，下午三点在公园门口见面，不见不散。\n" * 3
    path = tmp_path / "chat.txt"
    path.write_bytes(text.encode(codec))
    result = import_chat(path)
    assert result.format == "wechat-txt" and result.dialogue.utterances[0].text.startswith("你好")
    expected = {"utf-16-le": "utf_16_le", "utf-8-sig": "utf-8"}.get(codec, codec)
    assert result.encoding.replace("-", "_") == expected.replace("-", "_")
    assert ("not UTF-8" in result.summary()) == (codec != "utf-8-sig")


def test_unreadable_encoding_is_named_not_called_unsupported(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_bytes("Grüße aus Köln, wir sehen uns morgen früh am Bahnhof. Schöne Grüße!\n".encode("cp1252") * 5)
    with pytest.raises(ChatImportError, match=r"notes\.txt: a (cp1252|cp1250|latin_1|iso8859_\d+) text file, but not a supported"):
        import_chat(path)


def test_damaged_utf8_byte_is_replaced_not_redetected(tmp_path):
    path = tmp_path / "chat.txt"
    path.write_bytes(b"25/09/2026, 14:22 - Sam: hello \xff there\n" + b"25/09/2026, 14:23 - Kim: fine\n" * 20)
    result = import_chat(path)
    assert result.dialogue.utterances[0].text == "hello \ufffd there"
    assert result.encoding == "utf-8 with 1 damaged byte sequence replaced"
