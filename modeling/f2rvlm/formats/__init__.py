"""Chat exports and released data files -> `Dialogue`, with a report of what was left out.

>>> from f2rvlm.formats import import_chat, read_chat       # doctest: +SKIP
>>> result = import_chat("WhatsApp Chat with Sam.zip")      # doctest: +SKIP
>>> result.format, len(result.dialogue), result.summary()   # doctest: +SKIP
('whatsapp', 212, 'ignored: 3 x sticker omitted (line 40; line 77; line 90)')

The format is detected from the file's content, never from its name alone: a zip is opened
(safely, `safety.SafeZip`) and the chat file inside is sniffed; JSON is classified by its
keys; text by its first message line. `SUPPORTED_FORMATS` lists what is recognised.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..core.dialogue import Dialogue
from . import discord, released, telegram, wechat, whatsapp
from .base import ChatImport, DialogueBuilder, IgnoredItem, MediaFolder, MediaIndex, MediaZip
from .safety import (
    DEFAULT_LIMITS,
    ChatImportError,
    ImportLimits,
    SafeZip,
    check_upload,
    is_nested_archive,
    is_zip,
    read_limited,
)

__all__ = [
    "SUPPORTED_FORMATS",
    "ChatImport",
    "ChatImportError",
    "IgnoredItem",
    "ImportLimits",
    "detect_format",
    "import_chat",
    "read_chat",
]

#: Format name -> what it is (the names `detect_format` returns and `ChatImport.format` holds).
SUPPORTED_FORMATS: dict[str, str] = {
    "released": "released MLDR / WeChat test record(s), ms-swift JSON with messages + images",
    "dialogue-json": 'F2RVLM dialogue JSON {"utterances": [...]}',
    "annotation": "raw MLDR annotation JSON (dialogue, query_text, gt_turns)",
    "whatsapp": "WhatsApp 'Export chat' text, alone or zipped with its media",
    "telegram": "Telegram Desktop result.json, alone, in its folder or zipped with its photos",
    "discord": "DiscordChatExporter JSON, alone or with its --media folder",
    "wechat-csv": "WeChat desktop export CSV (WeChatMsg / MemoTrace)",
    "wechat-txt": "WeChat desktop export TXT (WeChatMsg / MemoTrace)",
}

_READERS = {
    "released": released.read_released,
    "dialogue-json": released.read_dialogue_json,
    "annotation": released.read_annotation,
    "whatsapp": whatsapp.read_whatsapp,
    "telegram": telegram.read_telegram,
    "discord": discord.read_discord,
    "wechat-csv": wechat.read_wechat_csv,
    "wechat-txt": wechat.read_wechat_txt,
}
#: Chat files inside an archive or folder that are tried first, in this order.
_PREFERRED_NAMES = ("result.json", "_chat.txt")
_CHAT_SUFFIXES = (".txt", ".json", ".csv")
_MAX_CANDIDATES = 20


@dataclass
class _ChatFile:
    """The chat file found in an upload: display name, folder inside the upload, content."""

    name: str
    folder: str
    format: str
    payload: object


def sniff(data: bytes, name: str) -> tuple[str, object] | None:
    """(format, parsed payload) when `data` is a supported chat file, else None."""
    if b"\x00" in data[:4096]:
        return None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None
    stripped = text.lstrip()
    if stripped[:1] in ("{", "["):
        try:
            payload = json.loads(stripped)
        except json.JSONDecodeError as err:  # an iOS WhatsApp line also starts with "["
            if name.lower().endswith(".json"):
                raise ChatImportError(
                    f"{name}: not valid JSON (line {err.lineno}: {err.msg})"
                ) from None
        else:
            found = _json_format(payload)
            return (found, payload) if found else None
    for format_name, matches in (
        ("wechat-csv", wechat.looks_like_csv),
        ("wechat-txt", wechat.looks_like_txt),
        ("whatsapp", whatsapp.looks_like_whatsapp),
    ):
        if matches(text):
            return format_name, text
    return None


def _json_format(payload) -> str | None:
    first = payload[0] if isinstance(payload, list) and payload else payload
    if not isinstance(first, dict):
        return None
    if released.is_released_record(first):
        return "released"
    if "utterances" in first and isinstance(payload, dict):
        return "dialogue-json"
    if isinstance(first.get("dialogue"), list):
        return "annotation"
    if isinstance(payload, dict) and discord.is_discord_export(payload):
        return "discord"
    if isinstance(payload, dict) and telegram.is_telegram_export(payload):
        return "telegram"
    return None


def _unsupported(name: str) -> ChatImportError:
    kinds = "; ".join(SUPPORTED_FORMATS.values())
    return ChatImportError(f"{name}: not a supported chat export. Supported: {kinds}")


def _candidates(names: list[str]) -> list[str]:
    chat_like = [
        n for n in names if n.lower().endswith(_CHAT_SUFFIXES) and not is_nested_archive(n)
    ]
    preferred = [n for p in _PREFERRED_NAMES for n in chat_like if PurePosixPath(n).name == p]
    whatsapp_named = [n for n in chat_like if PurePosixPath(n).name.startswith("WhatsApp Chat")]
    rest = sorted(chat_like, key=lambda n: (n.count("/"), n))
    ordered = list(dict.fromkeys(preferred + whatsapp_named + rest))
    return ordered[:_MAX_CANDIDATES]


def _find_chat(source, upload_name: str) -> _ChatFile:
    for name in _candidates(source.listing()):
        found = sniff(_read_member(source, name), name)
        if found:
            return _ChatFile(name, str(PurePosixPath(name).parent).strip("."), *found)
    raise _unsupported(upload_name)


def _read_member(source, name: str) -> bytes:
    loaded = source.load(name) if isinstance(source, MediaFolder) else source.archive.read(name)
    return read_limited(loaded, source.limits) if isinstance(loaded, Path) else loaded


def _open(path, limits: ImportLimits, extract_to):
    """(chat file, media source, archive to close or None) for a file, zip or folder upload."""
    path = check_upload(path, limits)
    if path.is_dir():
        folder = MediaFolder(path, limits)
        return _find_chat(folder, path.name), folder, None
    if is_zip(path):
        archive = SafeZip(path, limits)
        try:
            return (
                _find_chat(MediaZip(archive, extract_to), path.name),
                MediaZip(archive, extract_to),
                archive,
            )
        except BaseException:
            archive.close()
            raise
    found = sniff(read_limited(path, limits), path.name)
    if not found:
        raise _unsupported(path.name)
    # a loose file's media may sit beside it (an unzipped export)
    return _ChatFile(path.name, "", *found), MediaFolder(path.parent, limits), None


def detect_format(path: str | os.PathLike, *, limits: ImportLimits | None = None) -> str:
    """The name (a key of `SUPPORTED_FORMATS`) of the format of `path`, from its content."""
    chat, _, archive = _open(path, limits or DEFAULT_LIMITS, None)
    if archive is not None:
        archive.close()
    return chat.format


def import_chat(
    path: str | os.PathLike,
    *,
    images_dir: str | os.PathLike | None = None,
    limits: ImportLimits | None = None,
    extract_to: str | os.PathLike | None = None,
    chat: str | int | None = None,
    record: int = 0,
) -> ChatImport:
    """Read a chat export or released data file into a `ChatImport`.

    Args:
        path: a chat file, a zip of an export, or an unzipped export folder.
        images_dir: a folder with the chat's images (WeChat CSV/TXT, released records);
            searched before the upload's own files.
        limits: `ImportLimits`; the defaults suit the Space.
        extract_to: a folder (which the caller owns and cleans up) to extract zipped images
            into; without it zipped images are kept in memory as bytes.
        chat: Telegram whole-account export: a chat name or index (default: the first
            personal chat, else the first chat).
        record: which record of a released or annotation file holding several (default 0).

    Raises:
        ChatImportError: with a message naming the file and the problem.
    """
    limits = limits or DEFAULT_LIMITS
    chat_file, upload_media, archive = _open(path, limits, extract_to)
    try:
        extra = MediaFolder(images_dir, limits) if images_dir is not None else None
        builder = DialogueBuilder(chat_file.name, limits, MediaIndex([extra, upload_media]))
        reader = _READERS[chat_file.format]
        return reader(chat_file.payload, builder, folder=chat_file.folder, chat=chat, record=record)
    finally:
        if archive is not None:
            archive.close()


def read_chat(
    path: str | os.PathLike, *, images_dir=None, limits: ImportLimits | None = None, **options
) -> Dialogue:
    """Only the dialogue of `import_chat` (the CLI's entry point)."""
    return import_chat(path, images_dir=images_dir, limits=limits, **options).dialogue
