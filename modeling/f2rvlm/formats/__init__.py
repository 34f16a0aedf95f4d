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

import codecs
import json
import logging
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
_LOG = logging.getLogger(__name__)
#: Longest error message shown (a message quotes at most short pieces of the file).
_MAX_MESSAGE_CHARS = 400
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
#: A UTF-8 file with at most this share of invalid bytes (a cut or damaged export) is read as
#: UTF-8 with the bad bytes replaced, not re-detected as some other encoding.
_DAMAGED_UTF8_SHARE = 0.001


@dataclass
class _ChatFile:
    """The chat file found in an upload: display name, folder inside the upload, content."""

    name: str
    folder: str
    format: str
    payload: object
    encoding: str = "utf-8"


class _Undecodable(Exception):
    """Text in an encoding we do not read; `encoding` is the best guess or None (binary)."""

    def __init__(self, encoding: str | None):
        super().__init__(encoding)
        self.encoding = encoding


def decode_text(data: bytes) -> tuple[str, str]:
    """(text, encoding) of a chat file. UTF-8 (with or without BOM) and UTF-16/32 with a BOM are
    read directly; anything else is detected with `charset_normalizer` (exports re-saved by
    Excel or Notepad: GB18030, Windows-1252, UTF-16 without BOM, ...). Raises `_Undecodable`
    naming the guess when no supported encoding fits, with None for binary data."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding), encoding.replace("-sig", "")
            except UnicodeDecodeError:
                raise _Undecodable(f"{encoding.replace('-sig', '')}, damaged") from None
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    text = data.decode("utf-8", "replace")
    bad = text.count("\ufffd")
    if bad <= max(2, _DAMAGED_UTF8_SHARE * len(data)):
        return text, f"utf-8 with {bad} damaged byte sequence{'s' if bad > 1 else ''} replaced"
    try:
        from charset_normalizer import from_bytes
    except ImportError:  # pragma: no cover - a dependency; still give a clear message
        raise _Undecodable("not UTF-8") from None
    best = from_bytes(data[: 1 << 20]).best()
    if best is None:
        raise _Undecodable(None)
    encoding = best.encoding
    try:
        return data.decode(encoding), encoding
    except (UnicodeDecodeError, LookupError):
        raise _Undecodable(encoding) from None


def _parse_json(text: str, name: str):
    """The parsed JSON, or None when `text` is not JSON (an iOS WhatsApp line also starts with
    "["): a `.json` file that does not parse is a `ChatImportError` naming the line."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        if name.lower().endswith(".json"):
            raise ChatImportError(f"{name}: not valid JSON (line {err.lineno}: {err.msg})") from None
    except RecursionError:
        raise ChatImportError(f"{name}: JSON nested too deeply to read") from None
    except ValueError as err:  # a number with more than 4,300 digits (int_max_str_digits)
        reason = "a number has too many digits" if "digits" in str(err) else str(err).split(":")[0]
        raise ChatImportError(f"{name}: not usable JSON ({reason})") from None
    return None


def sniff(data: bytes, name: str) -> tuple[str, object, str] | None:
    """(format, parsed payload, encoding) when `data` is a supported chat file, else None.

    A text file in an encoding that cannot be read, or that reads but is not a chat export,
    is a `ChatImportError` naming the encoding (not "not a supported chat export")."""
    if b"\x00" in data[:4096] and not data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) \
            and not _looks_like_utf16(data):
        return None
    try:
        text, encoding = decode_text(data)
    except _Undecodable as err:
        if err.encoding is None:
            return None
        raise ChatImportError(
            f"{name}: the text is not UTF-8 (it looks like {err.encoding}), and no supported chat export "
            "reads in that encoding; export the chat again, or save the file as UTF-8") from None
    found = _sniff_text(text.lstrip("\ufeff"), name)
    if found is None and encoding != "utf-8" and not encoding.startswith("utf-8 "):
        raise ChatImportError(
            f"{name}: a {encoding} text file, but not a supported chat export; supported: "
            + "; ".join(SUPPORTED_FORMATS.values()))
    return None if found is None else (*found, encoding)


def _looks_like_utf16(data: bytes) -> bool:
    """UTF-16 without a BOM: NUL in most odd (LE) or even (BE) positions of the first bytes."""
    head = data[:512]
    if len(head) < 8:
        return False
    odd, even = head[1::2].count(0), head[0::2].count(0)
    return max(odd, even) > 0.4 * (len(head) // 2) and min(odd, even) < 0.1 * (len(head) // 2)


def _sniff_text(text: str, name: str) -> tuple[str, object] | None:
    stripped = text.lstrip()
    if stripped[:1] in ("{", "["):
        payload = _parse_json(stripped, name)
        if payload is not None or name.lower().endswith(".json"):
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
    if not isinstance(loaded, Path):
        return loaded
    try:
        return read_limited(loaded, source.limits)
    except OSError as err:
        raise ChatImportError(f"{name}: cannot be read ({err.strerror or type(err).__name__})") from None


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
    try:
        data = read_limited(path, limits)
    except OSError as err:
        raise ChatImportError(f"{path.name}: cannot be read ({err.strerror or type(err).__name__})") from None
    found = sniff(data, path.name)
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
    upload_name = Path(path).name or str(path)
    try:
        return _import(path, images_dir, limits, extract_to, chat, record)
    except ChatImportError as err:
        raise _one_line(err, upload_name) from None
    except (MemoryError, RecursionError) as err:
        raise ChatImportError(f"{upload_name}: too large or too deeply nested to read ({type(err).__name__})") from None
    except Exception as err:  # noqa: BLE001 - a reader bug: never a traceback for the user, but logged in full
        _LOG.exception("unexpected error importing %s", upload_name)
        wrapped = ChatImportError(f"{upload_name}: cannot be read ({type(err).__name__}: {err})")
        wrapped.unexpected = True
        raise _one_line(wrapped, upload_name) from None


def _one_line(err: ChatImportError, upload_name: str) -> ChatImportError:
    """The error with its message on one line, at most `_MAX_MESSAGE_CHARS`, naming the upload."""
    message = " ".join(str(err).split())
    if not message.startswith(upload_name):
        message = f"{upload_name}: {message}"
    if len(message) > _MAX_MESSAGE_CHARS:
        message = message[: _MAX_MESSAGE_CHARS - 1] + "…"
    out = type(err)(message)
    out.unexpected = err.unexpected
    return out


def _import(path, images_dir, limits, extract_to, chat, record) -> ChatImport:
    chat_file, upload_media, archive = _open(path, limits, extract_to)
    try:
        extra = MediaFolder(images_dir, limits) if images_dir is not None else None
        builder = DialogueBuilder(chat_file.name, limits, MediaIndex([extra, upload_media]))
        reader = _READERS[chat_file.format]
        imported = reader(chat_file.payload, builder, folder=chat_file.folder, chat=chat, record=record)
        imported.encoding = chat_file.encoding
        return imported
    finally:
        if archive is not None:
            archive.close()


def read_chat(
    path: str | os.PathLike, *, images_dir=None, limits: ImportLimits | None = None, **options
) -> Dialogue:
    """Only the dialogue of `import_chat` (the CLI's entry point)."""
    return import_chat(path, images_dir=images_dir, limits=limits, **options).dialogue
