"""Malformed chat files given to the CLI end in one `error:` line naming the file, exit code 2, no
traceback: the cases of issue #10 (corrupt deflate stream, unexpected JSON types, bare CR, huge
fields and numbers, deep nesting, names too long for the file system, other encodings)."""

import io
import json
import zipfile

import pytest
from f2rvlm.cli import main
from f2rvlm.formats.wechat import CSV_HEADER

WHATSAPP = "".join(f"25/09/2026, 14:{i:02d} - Sam: message {i} about the lake and the photos\n" for i in range(40))


def _corrupt_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("_chat.txt", WHATSAPP)
    data = bytearray(buffer.getvalue())
    for offset in range(60, 80):
        data[offset] ^= 0x5A
    return bytes(data)


CASES = {
    "corrupt-deflate.zip": _corrupt_zip(),
    "discord.json": json.dumps({"guild": {}, "channel": {}, "messages": [{"content": "hi", "author": "sam"}]}).encode(),
    "telegram.json": json.dumps({"messages": [{"date": "x", "type": "message", "text": {"a": 1}}]}).encode(),
    "telegram-account.json": json.dumps({"chats": {"list": [{"name": "x", "messages": 0}]}}).encode(),
    "released.json": json.dumps([{"messages": [{"role": "user", "content": 5}], "images": "x"}]).encode(),
    "annotation.json": json.dumps({"dialogue": [{"speaker": "a", "utterance": "hi"}], "query_text": [[1]]}).encode(),
    "dialogue.json": json.dumps({"utterances": [{"speaker": ["a"], "text": "hi"}]}).encode(),
    "bare-cr.csv": (CSV_HEADER + "\n1,x,1,0,0,1790000000,2,\"a\rb\",,,,\n1,x,1,0,0,1,2,\"" + "y" * 131_073 + "\",,,,\n").encode(),
    "create-time.csv": (CSV_HEADER + "\n1,x,34,0,0,100000000000000000000,2,\"a\",,,,\n").encode(),
    "digits.json": b'{"messages": [' + b"9" * 5000 + b"]}",
    "nested.json": b"[" * 100_000 + b"]" * 100_000,
    "long-name.txt": ("25/09/2026, 14:22 - Sam: " + "a" * 400 + ".jpg (file attached)\n").encode(),
    "latin.txt": "Grüße aus Köln, wir sehen uns morgen früh am Bahnhof.\n".encode("cp1252") * 5,
    "binary.bin": bytes(range(256)) * 4,
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_malformed_chat_file_is_one_error_line(name, tmp_path, capsys):
    path = tmp_path / name
    path.write_bytes(CASES[name])
    code = main(["retrieve", "--model", str(tmp_path / "no-model"), "--dialogue", str(path), "--query", "q"])
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and "Traceback" not in "\n".join(err), err
    assert name in errors[0] and len(errors[0]) < 500, errors[0]
