"""DiscordChatExporter JSON, alone or with the `--media` folder it downloads.

The speaker is the author's server nickname, else the user name. Image attachments (by
file extension) are read when `url` is a local path relative to the JSON (an export made
with `--media`; the path may be URL-encoded); remote links are reported, as are other
attachments, stickers, embeds and non-chat message types (joins, pins, calls ...).
"""

from __future__ import annotations

from urllib.parse import unquote

from .base import ChatImport, DialogueBuilder, Fields
from .safety import looks_like_image_name

_CHAT_TYPES = ("Default", "Reply")


def is_discord_export(payload: dict) -> bool:
    return isinstance(payload.get("messages"), list) and (
        "guild" in payload or "channel" in payload
    )


def _attachment_image(attachment: Fields, builder: DialogueBuilder, where: str, folder: str):
    name = attachment.text("fileName")
    url = attachment.text("url")
    if not looks_like_image_name(name or url):
        builder.ignore("attachment (not an image)", f"{where}: {name[:80]}")
        return None
    if url.startswith(("http://", "https://")) or not url:
        builder.ignore("image not downloaded (remote link)", f"{where}: {name[:80]}")
        return None
    if (
        builder.media.find(url, folder) is None
        and builder.media.find(unquote(url), folder) is not None
    ):
        url = unquote(url)
    return builder.image(url, where, folder)


def read_discord(payload: dict, builder: DialogueBuilder, *, folder: str = "", **_) -> ChatImport:
    """Every message, attachment and author is type-checked: a wrong type is a `ChatImportError`
    naming the field (`messages[3].author`)."""
    export = Fields(payload, "", builder)
    for message in export.objects("messages"):
        where = f"message {(message.scalar('id') or message.where)[:40]}"
        kind = message.text("type", "Default")
        if kind not in _CHAT_TYPES:
            builder.ignore("system message", f"{where}: {kind[:40]}")
            continue
        author = message.object("author")
        images = [
            image
            for a in message.objects("attachments")
            if (image := _attachment_image(a, builder, where, folder)) is not None
        ]
        for _ in message.array("stickers"):
            builder.ignore("sticker", where)
        for _ in message.array("embeds"):
            builder.ignore("embed (link preview)", where)
        speaker = (author.text("nickname") or author.text("name")) if author else ""
        builder.add(speaker, message.text("content"), images, message.scalar("timestamp"))
    channel = export.object("channel")
    return builder.build("discord", channel.scalar("id") if channel else None)
