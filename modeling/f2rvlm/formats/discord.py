"""DiscordChatExporter JSON, alone or with the `--media` folder it downloads.

The speaker is the author's server nickname, else the user name. Image attachments (by
file extension) are read when `url` is a local path relative to the JSON (an export made
with `--media`; the path may be URL-encoded); remote links are reported, as are other
attachments, stickers, embeds and non-chat message types (joins, pins, calls ...).
"""

from __future__ import annotations

from urllib.parse import unquote

from .base import ChatImport, DialogueBuilder
from .safety import looks_like_image_name

_CHAT_TYPES = ("Default", "Reply")


def is_discord_export(payload: dict) -> bool:
    return isinstance(payload.get("messages"), list) and (
        "guild" in payload or "channel" in payload
    )


def _attachment_image(attachment: dict, builder: DialogueBuilder, where: str, folder: str):
    name = str(attachment.get("fileName") or "")
    url = str(attachment.get("url") or "")
    if not looks_like_image_name(name or url):
        builder.ignore("attachment (not an image)", f"{where}: {name}")
        return None
    if url.startswith(("http://", "https://")) or not url:
        builder.ignore("image not downloaded (remote link)", f"{where}: {name}")
        return None
    if (
        builder.media.find(url, folder) is None
        and builder.media.find(unquote(url), folder) is not None
    ):
        url = unquote(url)
    return builder.image(url, where, folder)


def read_discord(payload: dict, builder: DialogueBuilder, *, folder: str = "", **_) -> ChatImport:
    for message in payload["messages"]:
        if not isinstance(message, dict):
            continue
        where = f"message {message.get('id')}"
        if message.get("type", "Default") not in _CHAT_TYPES:
            builder.ignore("system message", f"{where}: {message.get('type')}")
            continue
        author = message.get("author") or {}
        images = [
            image
            for a in message.get("attachments") or []
            if isinstance(a, dict)
            if (image := _attachment_image(a, builder, where, folder)) is not None
        ]
        for _ in message.get("stickers") or []:
            builder.ignore("sticker", where)
        for _ in message.get("embeds") or []:
            builder.ignore("embed (link preview)", where)
        speaker = author.get("nickname") or author.get("name")
        builder.add(speaker, str(message.get("content") or ""), images, message.get("timestamp"))
    channel = payload.get("channel") or {}
    return builder.build("discord", str(channel["id"]) if channel.get("id") is not None else None)
