"""WeChat desktop exports (WeChatMsg / MemoTrace): CSV and TXT.

CSV columns `localId,TalkerId,Type,SubType,IsSender,CreateTime,Status,StrContent,StrTime,
Remark,NickName,Sender` (UTF-8 with BOM). Type 1 is text, 3 an image, 49 with SubType 57 a
quoted reply (its text is kept, the quoted message is not repeated), 34 voice, 43 video,
47 sticker, 10000 system; everything else is reported by type number. The speaker is
`Sender` when filled, else "me" for `IsSender == 1`, else `Remark`, `NickName` or `TalkerId`.

TXT blocks `{StrTime} {name}` + content lines; placeholders `[图片]` image, `[语音]` voice,
`[视频]` video, `[表情包]` sticker, `[文件]` file; a `引用:{name}:{content}` line (a quoted
reply) is left out of the text and reported.

These exports do not carry images. With `images_dir` (or image files next to the export)
an image row takes the file named in its content when there is one, otherwise the next
unused image in file-name order; without images it is reported as "image without its file".
"""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime
from pathlib import PurePosixPath

from .base import ChatImport, DialogueBuilder
from .safety import looks_like_image_name

CSV_HEADER = "localId,TalkerId,Type,SubType,IsSender,CreateTime,Status,StrContent,StrTime,Remark,NickName,Sender"
_TXT_HEADER = re.compile(r"^(?P<time>\d{4}-\d{2}-\d{2} \d{1,2}:\d{2}:\d{2}) (?P<name>\S.*)$")
_TYPE_NAMES = {
    "34": "voice message",
    "43": "video",
    "47": "sticker",
    "10000": "system message",
    "42": "contact card",
    "48": "location",
    "50": "call",
    "49": "shared link or file",
}
_PLACEHOLDERS = {
    "[语音]": "voice message",
    "[视频]": "video",
    "[表情包]": "sticker",
    "[文件]": "file",
    "[动画表情]": "sticker",
    "[位置]": "location",
    "[名片]": "contact card",
}
_IMAGE_PLACEHOLDER = "[图片]"
_QUOTE_PREFIX = "引用:"
_XML_TITLE = re.compile(r"<title>(.*?)</title>", re.DOTALL)


def looks_like_csv(text: str) -> bool:
    first = text.lstrip("\ufeff").split("\n", 1)[0].strip()
    return first.startswith("localId,") and "StrContent" in first and "Type" in first


def looks_like_txt(text: str) -> bool:
    lines = [line for line in text.lstrip("\ufeff").splitlines()[:3] if line.strip()]
    return bool(lines) and _TXT_HEADER.match(lines[0]) is not None


#: Unix seconds a `CreateTime` may hold (1970 .. 2200); anything else is not a time.
_MAX_UNIX_SECONDS = 7_258_118_400


def _iso(str_time: str, create_time: str) -> str | None:
    if str_time and re.match(r"\d{4}-\d{2}-\d{2} \d", str_time):
        return str_time.strip()[:32].replace(" ", "T", 1)
    create_time = create_time.strip()
    if re.fullmatch(r"[0-9]{1,11}", create_time) and int(create_time) <= _MAX_UNIX_SECONDS:
        try:
            return datetime.fromtimestamp(int(create_time)).isoformat()
        except (OverflowError, OSError, ValueError):
            return None
    return None


def _csv_speaker(row: dict) -> str:
    if row.get("Sender"):
        return row["Sender"]
    if row.get("IsSender") == "1":
        return "me"
    return row.get("Remark") or row.get("NickName") or row.get("TalkerId") or "unknown"


def _image_for(content: str, builder: DialogueBuilder, where: str, folder: str, used: set):
    """The image named in `content` if such a file exists, else the next unused one."""
    name = PurePosixPath(content.replace("\\", "/")).name if content else ""
    if name and looks_like_image_name(name):
        found = builder.media.find(name, folder)
        if found is not None and (id(found[0]), found[1]) not in used:
            used.add((id(found[0]), found[1]))
            return builder.image(name, where, folder)
    return builder.next_image_in_order(where, used)


def _rows(text: str, builder: DialogueBuilder):
    """(line number, row) per CSV record; a bare CR ends a line as in Excel's CSV. A broken
    record (a field over the csv module's 131,072-character limit, a NUL) is a `ChatImportError`
    naming its line."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff"), newline=""))
    while True:
        line = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            builder.fail(f"line {line}", f"not a readable CSV record ({err})")
        yield line, row


def _cell(row: dict, key: str) -> str:
    value = row.get(key)
    return value if isinstance(value, str) else ""


def read_wechat_csv(text: str, builder: DialogueBuilder, *, folder: str = "", **_) -> ChatImport:
    used: set = set()
    for number, raw in _rows(text, builder):
        row = {key: _cell(raw, key) for key in CSV_HEADER.split(",")}
        where = f"line {number}"
        kind, content = (row.get("Type") or "").strip(), row.get("StrContent") or ""
        timestamp = _iso(row.get("StrTime") or "", row.get("CreateTime") or "")
        if kind == "1":
            builder.add(_csv_speaker(row), content, (), timestamp)
        elif kind == "3":
            image = _image_for(content, builder, where, folder, used)
            builder.add(_csv_speaker(row), "", [image] if image else [], timestamp)
        elif kind == "49" and (row.get("SubType") or "").strip() == "57":
            title = _XML_TITLE.search(content)
            builder.add(_csv_speaker(row), title.group(1) if title else content, (), timestamp)
            builder.ignore("quoted message (reply kept)", where)
        else:
            builder.ignore(_TYPE_NAMES.get(kind, f"message type {kind}"), where)
    return builder.build("wechat-csv")


def _txt_blocks(text: str):
    """(line number, time, name, content lines) per `{StrTime} {name}` block."""
    block = None
    for number, line in enumerate(text.lstrip("\ufeff").splitlines(), start=1):
        header = _TXT_HEADER.match(line)
        if header:
            if block:
                yield block
            block = (number, header.group("time"), header.group("name"), [])
        elif block:
            block[3].append(line)
    if block:
        yield block


def read_wechat_txt(text: str, builder: DialogueBuilder, *, folder: str = "", **_) -> ChatImport:
    used: set = set()
    for number, time, name, lines in _txt_blocks(text):
        where = f"line {number}"
        kept, images = [], []
        for line in lines:
            stripped = line.strip()
            if stripped == _IMAGE_PLACEHOLDER:
                image = builder.next_image_in_order(where, used)
                images += [image] if image else []
            elif stripped in _PLACEHOLDERS:
                builder.ignore(_PLACEHOLDERS[stripped], where)
            elif stripped.startswith(_QUOTE_PREFIX):
                builder.ignore("quoted message (reply kept)", where)
            else:
                kept.append(line)
        builder.add(name, "\n".join(kept), images, time.replace(" ", "T", 1))
    return builder.build("wechat-txt")
