"""Telegram Desktop "Export chat history" JSON (`result.json`), alone, in its folder or zipped.

A one-chat export has the messages at the root. A whole-account export nests chats under
`chats.list`: `chat=` picks one by name or index; by default the FIRST chat of type
"personal_chat" is imported, else the first chat with messages. Photos are read from the
export (`photo` is a path relative to result.json); a skip text such as "(File not
included. ...)" is reported. Files sent as images (a `file` with an image mime type and no
`media_type`) count as photos. Stickers, voice and video messages, animations, other files,
polls, locations, contacts and service messages are reported as ignored.
"""

from __future__ import annotations

from .base import ChatImport, DialogueBuilder
from .safety import ChatImportError

_OTHER_CONTENT = (
    "poll",
    "location_information",
    "contact_information",
    "game_title",
    "invoice_information",
)


def is_telegram_export(payload: dict) -> bool:
    chats = payload.get("chats")
    if isinstance(chats, dict) and isinstance(chats.get("list"), list):
        return True
    messages = payload.get("messages")
    return (
        isinstance(messages, list)
        and "guild" not in payload
        and (not messages or isinstance(messages[0], dict) and "date" in messages[0])
    )


def _pick_chat(payload: dict, chat, builder: DialogueBuilder) -> dict:
    if "messages" in payload:
        return payload
    chats = [c for c in payload["chats"]["list"] if isinstance(c, dict)]
    if isinstance(chat, int):
        if not -len(chats) <= chat < len(chats):
            raise ChatImportError(
                f"{builder.source_name}: chat {chat} requested; the export has {len(chats)}"
            )
        return chats[chat]
    if isinstance(chat, str):
        for candidate in chats:
            if candidate.get("name") == chat:
                return candidate
        names = ", ".join(repr(c.get("name")) for c in chats[:10])
        raise ChatImportError(f"{builder.source_name}: no chat named {chat!r}; chats: {names}")
    for candidate in chats:
        if candidate.get("type") == "personal_chat" and candidate.get("messages"):
            return candidate
    for candidate in chats:
        if candidate.get("messages"):
            return candidate
    raise ChatImportError(f"{builder.source_name}: the export contains no chat with messages")


def message_text(value) -> str:
    """`text` is a string or a list of strings and `{type, text}` entities."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(
            part if isinstance(part, str) else str(part.get("text", ""))
            for part in value
            if isinstance(part, (str, dict))
        )
    return ""


def _read_message(message: dict, builder: DialogueBuilder, folder: str) -> None:
    where = f"message {message.get('id')}"
    if message.get("type") != "message":
        builder.ignore(
            "service message", f"{where}: {message.get('action') or message.get('type')}"
        )
        return
    images = []
    photo = message.get("photo")
    media_type = message.get("media_type")
    if isinstance(photo, str):
        if photo.startswith("(File not included"):
            builder.ignore("photo not included in the export", where)
        else:
            image = builder.image(photo, where, folder)
            images = [image] if image else []
    elif "file" in message:
        file = message.get("file")
        if (
            not media_type
            and str(message.get("mime_type", "")).startswith("image/")
            and not str(file).startswith("(")
        ):
            image = builder.image(file, where, folder)
            images = [image] if image else []
        else:
            builder.ignore((media_type or "file").replace("_", " "), where)
    for key in _OTHER_CONTENT:
        if key in message:
            builder.ignore(key.split("_")[0], where)
    speaker = message.get("from") or message.get("author") or "Deleted Account"
    builder.add(speaker, message_text(message.get("text")), images, message.get("date"))


def read_telegram(
    payload: dict, builder: DialogueBuilder, *, folder: str = "", chat=None, **_
) -> ChatImport:
    selected = _pick_chat(payload, chat, builder)
    for message in selected.get("messages") or []:
        if isinstance(message, dict):
            _read_message(message, builder, folder)
    chat_id = selected.get("id")
    return builder.build("telegram", None if chat_id is None else str(chat_id))
