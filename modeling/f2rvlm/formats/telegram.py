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

from .base import ChatImport, DialogueBuilder, Fields, json_type
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


def _pick_chat(payload: dict, chat, builder: DialogueBuilder) -> Fields:
    export = Fields(payload, "", builder)
    if "messages" in payload:
        return export
    chats = export.object("chats")
    chats = chats.objects("list") if chats else []
    if isinstance(chat, int) and not isinstance(chat, bool):
        if not -len(chats) <= chat < len(chats):
            raise ChatImportError(
                f"{builder.source_name}: chat {chat} requested; the export has {len(chats)}"
            )
        return chats[chat]
    if isinstance(chat, str):
        for candidate in chats:
            if candidate.text("name") == chat:
                return candidate
        names = ", ".join(repr(c.text("name")[:40]) for c in chats[:10])
        raise ChatImportError(f"{builder.source_name}: no chat named {chat!r}; chats: {names}")
    for candidate in chats:
        if candidate.text("type") == "personal_chat" and candidate.array("messages"):
            return candidate
    for candidate in chats:
        if candidate.array("messages"):
            return candidate
    raise ChatImportError(f"{builder.source_name}: the export contains no chat with messages")


def message_text(value, where: str = "text", builder: DialogueBuilder | None = None) -> str:
    """`text` is a string or a list of strings and `{type, text}` entities; with `builder`, any
    other type is a `ChatImportError` naming `where`."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, list):
        parts = []
        for i, part in enumerate(value):
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict) and builder is not None:
                parts.append(Fields(part, f"{where}[{i}]", builder).text("text"))
            elif isinstance(part, dict):
                parts.append(str(part.get("text", "")))
            elif builder is not None:
                builder.fail(f"{where}[{i}]", f"expected a string or an object, found {json_type(part)}")
        return "".join(parts)
    if builder is not None:
        builder.fail(where, f"expected a string or an array, found {json_type(value)}")
    return ""


def _read_message(message: Fields, builder: DialogueBuilder, folder: str) -> None:
    where = f"message {(message.scalar('id') or message.where)[:40]}"
    kind = message.text("type")
    if kind != "message":
        builder.ignore(
            "service message", f"{where}: {(message.text('action') or kind)[:40]}"
        )
        return
    images = []
    photo = message.get("photo")
    media_type = message.text("media_type")
    if photo is not None:
        photo = message.text("photo")
        if photo.startswith("(File not included"):
            builder.ignore("photo not included in the export", where)
        elif photo:
            image = builder.image(photo, where, folder)
            images = [image] if image else []
    elif "file" in message.value:
        file = message.text("file")
        if (
            not media_type
            and message.text("mime_type").startswith("image/")
            and file
            and not file.startswith("(")
        ):
            image = builder.image(file, where, folder)
            images = [image] if image else []
        else:
            builder.ignore((media_type[:40] or "file").replace("_", " "), where)
    for key in _OTHER_CONTENT:
        if key in message.value:
            builder.ignore(key.split("_")[0], where)
    speaker = message.text("from") or message.text("author") or "Deleted Account"
    text = message_text(message.get("text"), message.path("text"), builder)
    builder.add(speaker, text, images, message.scalar("date"))


def read_telegram(
    payload: dict, builder: DialogueBuilder, *, folder: str = "", chat=None, **_
) -> ChatImport:
    """Every chat and message is type-checked: a wrong type is a `ChatImportError` naming the
    field (`chats.list[2].messages[7].text`)."""
    selected = _pick_chat(payload, chat, builder)
    for message in selected.objects("messages"):
        _read_message(message, builder, folder)
    return builder.build("telegram", selected.scalar("id"))
