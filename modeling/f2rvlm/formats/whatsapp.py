"""WhatsApp "Export chat" text (Android and iOS, any locale), alone or zipped with media.

Parser choice: our own, small and stdlib-only. The maintained PyPI parsers were considered:
`whatstk` (0.7) and `chat-miner` (0.5) both turn a chat into a table of (date, user,
message), but they drop or mangle what this project needs: attachment lines are kept as
plain text (no link to the zip member), system lines and continuation lines are merged or
dropped without a report, day/month order is a caller argument (whatstk) or inferred from
the first lines only, and both pull in pandas. Reading the media references ourselves is
the bulk of the work, so a dependency would not save code.

What is recognised (docs/formats.md): a message starts with a timestamp header, Android
`DD/MM/YYYY, HH:MM - ` (also `M/D/YY, H:MM<U+202F>PM - `) or iOS `[DD/MM/YYYY, HH:MM:SS] `
(optionally after U+200E, any of `/ . -` as date separators, `klo` before the time as in
Finnish exports). Day/month order is inferred from ALL dates in the file: a first field over
12 means day first, a second field over 12 means month first; when no date decides, a
12-hour clock means month first (US), otherwise day first. A line without a header continues
the previous message. A header without `Sender: ` (or an iOS body starting with U+200E that
is not media) is a system message and is reported, not imported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .base import ChatImport, DialogueBuilder
from .safety import IMAGE_SUFFIXES

_DATE = r"\d{1,4}[./-]\d{1,2}[./-]\d{1,4}\.?"
_TIME = r"\d{1,2}[:.]\d{2}(?:[:.]\d{2})?(?:[\s\u202f\u00a0]?[AaPp]\.?\s?[Mm]\.?)?"
_HEADER = re.compile(
    rf"^[\u200e\u200f]?(?:"
    rf"\[(?P<bdate>{_DATE}),?\s+(?:klo\s+)?(?P<btime>{_TIME})\]\s?(?P<brest>.*)"
    rf"|(?P<adate>{_DATE}),?\s+(?:klo\s+)?(?P<atime>{_TIME})\s[-\u2013]\s(?P<arest>.*))$"
)
_SENDER = re.compile(r"^(?P<sender>[^:\n]{1,100}?): (?P<body>.*)$", re.DOTALL)
_ATTACHED_IOS = re.compile(
    r"^<(?:attached|Anhang|adjunto|anexo|allegato|pièce jointe)\s?: (?P<name>.+)>$"
)
_ATTACHED_ANDROID = re.compile(
    r"^(?P<name>.+?\.\w{1,5}) \((?:file attached|Datei angehängt|archivo adjunto|arquivo anexado|"
    r"fichier joint|file allegato|bestand bijgevoegd)\)$"
)
_OMITTED = re.compile(
    r"^(?:<(?:Media omitted|Medien ausgeschlossen|Multimedia omitido|Mídia oculta|Médias omis)>"
    r"|(?P<what>image|video|audio|sticker|GIF|document|Contact card|.+ document) omitted)$",
    re.IGNORECASE,
)
_DELETED = {
    "This message was deleted",
    "You deleted this message",
    "This message was deleted.",
    "You deleted this message.",
    "Diese Nachricht wurde gelöscht.",
    "Du hast diese Nachricht gelöscht.",
}
_EDITED_SUFFIX = re.compile(r"\s*<This message was edited>$")


def looks_like_whatsapp(text: str) -> bool:
    first = next((line for line in text.splitlines() if line.strip()), "")
    return _HEADER.match(first.lstrip("\ufeff")) is not None


@dataclass
class _Message:
    line: int
    date: tuple[int, ...]
    time: str
    rest: str
    more: list[str] = field(default_factory=list)


def _split_messages(text: str, builder: DialogueBuilder) -> list[_Message]:
    messages: list[_Message] = []
    for number, line in enumerate(text.lstrip("\ufeff").splitlines(), start=1):
        header = _HEADER.match(line)
        if header is None:
            if messages:
                messages[-1].more.append(line)
            elif line.strip():
                builder.ignore("text before the first message", f"line {number}")
            continue
        date = header.group("bdate") or header.group("adate")
        time = header.group("btime") or header.group("atime")
        rest = header.group("brest") if header.group("bdate") else header.group("arest")
        fields = tuple(int(x) for x in re.split(r"[./-]", date.rstrip(".")))
        messages.append(_Message(number, fields, time, rest))
    return messages


def _day_first(messages: list[_Message]) -> bool:
    """Day/month order from every date of the file (module docstring)."""
    dates = [m.date for m in messages if m.date[0] < 1000]
    if any(d[0] > 12 for d in dates):
        return True
    if any(d[1] > 12 for d in dates):
        return False
    twelve_hour = any(re.search(r"[AaPp]\.?\s?[Mm]", m.time) for m in messages)
    return not twelve_hour


def _timestamp(message: _Message, day_first: bool) -> str:
    a, b, c = message.date
    if a >= 1000:
        year, month, day = a, b, c
    else:
        day, month = (a, b) if day_first else (b, a)
        year = c + 2000 if c < 100 else c
    clock = re.match(
        r"(\d{1,2})[:.](\d{2})(?:[:.](\d{2}))?\s*([AaPp])?", message.time.replace("\u202f", " ")
    )
    hour, minute, second = int(clock.group(1)), int(clock.group(2)), int(clock.group(3) or 0)
    if clock.group(4):
        hour = hour % 12 + (12 if clock.group(4).lower() == "p" else 0)
    return f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}"


def media_kind(name: str) -> str:
    """What an attached file is, from WhatsApp's naming (IMG-, STK-, PTT-, -PHOTO- ...)."""
    upper = name.upper()
    suffix = name.lower().rsplit(".", 1)[-1]
    if upper.startswith("STK-") or "-STICKER-" in upper:
        return "sticker"
    if (
        upper.startswith("PTT-")
        or "-AUDIO-" in upper
        or suffix in ("opus", "m4a", "mp3", "aac", "ogg")
    ):
        return "voice note / audio"
    if upper.startswith("VID-") or "-VIDEO-" in upper or suffix in ("mp4", "mov", "3gp", "webm"):
        return "video"
    if "." + suffix in IMAGE_SUFFIXES:
        return "image"
    return "document"


def _read_message(message: _Message, timestamp: str, builder: DialogueBuilder, folder: str) -> None:
    where = f"line {message.line}"
    sender_match = _SENDER.match(message.rest)
    if (
        sender_match is None
        or sender_match.group("body").startswith("\u200e")
        and not _is_media(sender_match.group("body"))
    ):
        builder.ignore("system message", where)
        return
    sender = sender_match.group("sender")
    body_lines = [sender_match.group("body")] + message.more
    first = body_lines[0].strip().lstrip("\u200e")
    images = []
    attached = _ATTACHED_IOS.match(first) or _ATTACHED_ANDROID.match(first)
    omitted = _OMITTED.match(first)
    if attached:
        body_lines = body_lines[1:]
        name = attached.group("name").strip()
        kind = media_kind(name)
        if kind == "image":
            image = builder.image(name, where, folder)
            images = [image] if image else []
        else:
            builder.ignore(kind, f"{where}: {name}")
    elif omitted:
        body_lines = body_lines[1:]
        what = (omitted.group("what") or "media").lower()
        builder.ignore(f"{'document' if what.endswith('document') else what} omitted", where)
    elif first in _DELETED:
        builder.ignore("deleted message", where)
        return
    elif first == "null":  # a view-once photo or video
        builder.ignore("view-once media", where)
        return
    text = _EDITED_SUFFIX.sub("", "\n".join(body_lines))
    builder.add(sender, text, images, timestamp)


def _is_media(body: str) -> bool:
    first = body.strip().lstrip("\u200e")
    return bool(
        _ATTACHED_IOS.match(first) or _ATTACHED_ANDROID.match(first) or _OMITTED.match(first)
    )


def read_whatsapp(text: str, builder: DialogueBuilder, *, folder: str = "", **_) -> ChatImport:
    messages = _split_messages(text, builder)
    day_first = _day_first(messages)
    for message in messages:
        _read_message(message, _timestamp(message, day_first), builder, folder)
    return builder.build("whatsapp")
