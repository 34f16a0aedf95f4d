"""Write the shipped sample chat exports: modeling/f2rvlm/assets/exports/ (committed).

    python scripts/make_sample_exports.py [--out modeling/f2rvlm/assets/exports]

One synthetic English dialogue (validation style: topics the demo model was trained on, pictures
drawn per topic, never copied) written four times, as each messenger exports it (facts in
docs/formats.md):

- ``whatsapp-chat-with-sam.zip``  Android "Export chat" with media (``WhatsApp Chat with Sam.txt`` + IMG-*.jpg)
- ``telegram-chatexport.zip``     Telegram Desktop JSON export (``ChatExport_*/result.json`` + photos/)
- ``discord-chatexporter.json`` + ``discord-chatexporter.json_Files/``   DiscordChatExporter JSON with --media
- ``wechat-memotrace.zip``        WeChat CSV (MemoTrace/WeChatMsg columns) + its image folder

``exports.json`` lists each file with its format, the queries of the dialogue and the gold ids
of the first query as the synthetic generator made them (ids of the exported chat differ for
WeChat, where a photo is its own turn). Deterministic: re-running rewrites identical files.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import json
import random
import shutil
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "modeling"))

from f2rvlm.data.synthetic import SyntheticConfig, generate_dialogue

DEFAULT_OUT = ROOT / "modeling" / "f2rvlm" / "assets" / "exports"
NAMES = {"user1": "Sam", "user2": "Alex"}
START = dt.datetime(2026, 5, 2, 18, 0)
#: Pictures are drawn 3x the training size so that they read at a glance in the Space; the model's
#: processor scales them to its pixel budget anyway.
IMAGE_SIZE = (192, 336)
FIXED_ZIP_TIME = (2026, 5, 2, 18, 0, 0)


def sample(seed: int = 7):
    config = SyntheticConfig(image_size=IMAGE_SIZE)
    return generate_dialogue(random.Random(seed), "en", config, dialogue_id="sample", split="validation")


def _jpeg(png: bytes) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.open(io.BytesIO(png)).convert("RGB").save(buffer, format="JPEG", quality=88)
    return buffer.getvalue()


def _zip(path: Path, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(zipfile.ZipInfo(name, FIXED_ZIP_TIME), data)


def _turns(s):
    """(time, speaker name, text, [jpeg bytes]) per utterance."""
    out = []
    for i, u in enumerate(s.dialogue.utterances):
        when = START + dt.timedelta(minutes=2 * i)
        out.append((when, NAMES.get(u.speaker, u.speaker), u.text, [_jpeg(im.to_bytes()) for im in u.images]))
    return out


def write_whatsapp(turns, out: Path) -> str:
    lines, media, k = [], {}, 0
    for when, name, text, images in turns:
        stamp = when.strftime("%d/%m/%Y, %H:%M")
        for data in images:
            k += 1
            file = f"IMG-{when:%Y%m%d}-WA{k:04d}.jpg"
            media[file] = data
            lines.append(f"{stamp} - {name}: {file} (file attached)")
        if text:
            lines.append(f"{stamp} - {name}: {text}")
    head = f"{START:%d/%m/%Y, %H:%M} - Messages and calls are end-to-end encrypted. No one outside of this chat can read them."
    members = {"WhatsApp Chat with Sam.txt": ("\n".join([head, *lines]) + "\n").encode("utf-8"), **media}
    name = "whatsapp-chat-with-sam.zip"
    _zip(out / name, members)
    return name


def write_telegram(turns, out: Path) -> str:
    folder = f"ChatExport_{START:%Y-%m-%d}"
    messages, media, k = [], {}, 0
    for i, (when, name, text, images) in enumerate(turns):
        message = {"id": i + 1, "type": "message", "date": when.strftime("%Y-%m-%dT%H:%M:%S"),
                   "date_unixtime": str(int(when.replace(tzinfo=dt.UTC).timestamp())),
                   "from": name, "from_id": f"user{1 + (name == 'Alex')}",
                   "text": text, "text_entities": [{"type": "plain", "text": text}] if text else []}
        for data in images[:1]:  # Telegram: one photo per message
            k += 1
            rel = f"photos/photo_{k}@{when:%d-%m-%Y_%H-%M-%S}.jpg"
            media[f"{folder}/{rel}"] = data
            message.update({"photo": rel, "width": IMAGE_SIZE[0], "height": IMAGE_SIZE[1]})
        messages.append(message)
    payload = {"name": "Alex", "type": "personal_chat", "id": 4242, "messages": messages}
    name = "telegram-chatexport.zip"
    _zip(out / name, {f"{folder}/result.json": json.dumps(payload, ensure_ascii=False, indent=1).encode("utf-8"), **media})
    return name


def write_discord(turns, out: Path) -> str:
    name = "discord-chatexporter.json"
    files = out / f"{name}_Files"
    files.mkdir(exist_ok=True)
    messages, k = [], 0
    for i, (when, author, text, images) in enumerate(turns):
        attachments = []
        for data in images:
            k += 1
            file = f"photo-{k}.jpg"
            (files / file).write_bytes(data)
            attachments.append({"id": str(9000 + k), "url": f"{name}_Files/{file}", "fileName": file,
                                "fileSizeBytes": len(data)})
        messages.append({"id": str(1000 + i), "type": "Default", "timestamp": when.strftime("%Y-%m-%dT%H:%M:%S+00:00"),
                         "content": text, "author": {"id": str(10 + (author == "Alex")), "name": author.lower(),
                                                     "nickname": author, "isBot": False},
                         "attachments": attachments, "embeds": [], "stickers": [], "reactions": []})
    payload = {"guild": {"id": "1", "name": "Direct Messages"}, "channel": {"id": "2", "type": "DirectTextChat",
               "name": "sam-alex"}, "dateRange": {"after": None, "before": None},
               "exportedAt": f"{START:%Y-%m-%d}T20:00:00+00:00", "messages": messages, "messageCount": len(messages)}
    (out / name).write_text(json.dumps(payload, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return name


def _wechat_row(row: int, kind: int, content: str, when: dt.datetime, name: str) -> list:
    stamp = int(when.replace(tzinfo=dt.UTC).timestamp())
    return [row, 1, kind, 0, int(name == "Sam"), stamp, 2, content, when.strftime("%Y-%m-%d %H:%M:%S"), "", name, name]


def write_wechat(turns, out: Path) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["localId", "TalkerId", "Type", "SubType", "IsSender", "CreateTime", "Status", "StrContent",
                     "StrTime", "Remark", "NickName", "Sender"])
    media, row, k = {}, 0, 0
    for when, name, text, images in turns:
        for data in images:
            k += 1
            file = f"image_{k:03d}.jpg"
            media[f"images/{file}"] = data
            row += 1
            writer.writerow(_wechat_row(row, 3, file, when, name))
        if text:
            row += 1
            writer.writerow(_wechat_row(row, 1, text, when, name))
    name = "wechat-memotrace.zip"
    _zip(out / name, {"messages.csv": ("\ufeff" + buffer.getvalue()).encode("utf-8"), **media})
    return name


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    args = parser.parse_args(argv)
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    s = sample()
    turns = _turns(s)
    formats = {"whatsapp": write_whatsapp, "telegram": write_telegram, "discord": write_discord, "wechat": write_wechat}
    queries = [{"query": q.query, "utterance_ids": q.utterance_ids, "image_ids": q.image_ids} for q in s.queries]
    manifest = [{"file": write(turns, out), "format": fmt, "queries": queries} for fmt, write in formats.items()]
    (out / "exports.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {len(manifest)} exports of a {len(turns)}-turn dialogue to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
