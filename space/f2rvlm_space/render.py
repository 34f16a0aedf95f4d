"""HTML views of a chat and of retrieval results (escaped text, inline thumbnails).

Every turn carries `data-turn-id` and every picture `data-image-id`; retrieved turns and pictures
also carry the class `hit`, so browser tests read the highlighted ids straight from the page.
"""

from __future__ import annotations

import base64
import html
import io

from f2rvlm.core.dialogue import Dialogue, DialogueError

THUMB_PX = 96
#: Retrieved pictures are drawn from a larger copy, shown up to this many CSS pixels wide.
HIT_PX = 240
#: Pictures shown inline per view; beyond this a picture is named, not drawn (page weight).
MAX_THUMBS = 200
#: A result shows the hits with this many turns either side, the rest as "… N turns …" (the hits
#: are in view without scrolling; the whole chat stays in the chat view on the left).
CONTEXT_TURNS = 2
#: Characters of the raw answer shown per column (the whole answer is in the JSON).
RAW_CHARS = 200
#: Turns in the upload preview; the rest are summarised.
PREVIEW_TURNS = 400

CSS = """
.f2-chat { font-size: 14px; line-height: 1.35; max-height: 560px; overflow-y: auto; }
.f2-turn { padding: 4px 8px; margin: 2px 0; border-radius: 6px; border-left: 3px solid transparent; }
.f2-turn.hit { background: #fff3bf; border-left-color: #f08c00; color: #1a1a1a; }
.f2-id { display: inline-block; min-width: 3.2em; color: #868e96; font-family: monospace; }
.f2-time { color: #868e96; font-size: 12px; margin-right: 4px; }
.f2-imgs { display: flex; flex-wrap: wrap; gap: 6px; margin: 4px 0 0 3.2em; }
.f2-imgs figure { margin: 0; text-align: center; font-size: 11px; color: #868e96; }
.f2-imgs figure.hit img { outline: 3px solid #f08c00; }
.f2-imgs img { width: 96px; height: 96px; object-fit: cover; border-radius: 4px; }
.f2-imgs figure.hit img { width: auto; height: auto; max-width: min(240px, 100%); max-height: 240px; object-fit: contain; }
.f2-query { margin-bottom: 14px; }
.f2-query > h4 { margin: 0 0 6px 0; }
.f2-compare { display: grid; gap: 8px; align-items: start; }
.f2-compare .f2-chat { max-height: 380px; font-size: 13px; }
.f2-compare .f2-imgs { margin-left: 0; }
.f2-gap { color: #868e96; font-style: italic; padding: 2px 8px; }
.f2-answer { border: 1px solid #dee2e6; border-radius: 8px; padding: 8px; min-width: 0; }
.f2-answer h5 { margin: 0 0 4px 0; font-size: 14px; }
.f2-meta { color: #495057; font-size: 13px; margin-bottom: 6px; }
.f2-note { color: #c92a2a; }
.f2-meta code { font-size: 11px; word-break: break-all; }
"""


def thumbnail(dialogue: Dialogue, image_id: int, cache: dict, px: int = THUMB_PX) -> str | None:
    """A JPEG data URI of one image at up to twice `px` (sharp on high-density screens; cached per
    session), None when it cannot be drawn."""
    key = image_id if px == THUMB_PX else (image_id, px)
    if key in cache:
        return cache[key]
    uri = None
    try:
        image = dialogue.images[image_id].load()
        image.thumbnail((px * 2, px * 2))
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, format="JPEG", quality=80)
        uri = "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
    except (DialogueError, OSError, ValueError):  # a picture failing late is named, never breaks the view
        uri = None
    cache[key] = uri
    return uri


def _turn_html(dialogue: Dialogue, index: int, image_start: int, hit_turns: set, hit_images: set,
               cache: dict, budget: list) -> str:
    utterance = dialogue.utterances[index]
    turn_id = dialogue.id_offset + index
    hit = " hit" if turn_id in hit_turns else ""
    time_html = f'<span class="f2-time">{html.escape(utterance.timestamp)}</span>' if utterance.timestamp else ""
    text = html.escape(utterance.text).replace("\n", "<br>")
    parts = [(f'<div class="f2-turn{hit}" data-turn-id="{turn_id}"><span class="f2-id">#{turn_id}</span>'
              f'{time_html}<b>{html.escape(utterance.speaker)}</b>: {text}')]
    if utterance.images:
        parts.append('<div class="f2-imgs">')
        for k in range(len(utterance.images)):
            image_id = image_start + k
            image_hit = " hit" if image_id in hit_images else ""
            uri = None
            if budget[0] > 0:
                uri = thumbnail(dialogue, image_id, cache, HIT_PX if image_hit else THUMB_PX)
                budget[0] -= 1
            img = f'<img src="{uri}" alt="image {image_id}">' if uri else ""
            parts.append(f'<figure class="f2-img{image_hit}" data-image-id="{image_id}">{img}'
                         f"<figcaption>img {image_id}</figcaption></figure>")
        parts.append("</div>")
    parts.append("</div>")
    return "".join(parts)


def chat_html(dialogue: Dialogue, cache: dict, hit_turns=(), hit_images=(), limit: int | None = None,
              context: int | None = None, around=None) -> str:
    """The conversation: every turn (up to `limit`), or, with `context`, only turns within
    `context` of a hit (or of the turn ids in `around`), gaps shown as "… N turns …"."""
    hit_turns, hit_images = set(hit_turns), set(hit_images)
    n = len(dialogue)
    if context is None:
        shown = set(range(min(n, limit or n)))
    else:
        centres = {i - dialogue.id_offset for i in (around if around is not None else hit_turns)}
        shown = {j for i in centres for j in range(i - context, i + context + 1) if 0 <= j < n}
    image_starts, next_image = [], 0
    for utterance in dialogue.utterances:
        image_starts.append(next_image)
        next_image += len(utterance.images)
    budget = [MAX_THUMBS]
    out, gap = ['<div class="f2-chat">'], 0
    for index in range(n):
        if index not in shown:
            gap += 1
            continue
        if gap:
            out.append(f'<div class="f2-gap">… {gap} turn{"s" * (gap > 1)} …</div>')
            gap = 0
        out.append(_turn_html(dialogue, index, image_starts[index], hit_turns, hit_images, cache, budget))
    if gap:
        out.append(f'<div class="f2-gap">… {gap} more turn{"s" * (gap > 1)} …</div>')
    out.append("</div>")
    return "".join(out)


def import_report_md(summary: dict) -> str:
    """Markdown: what was imported and what was left out."""
    lines = [(f"**{html.escape(summary['file'])}** — format `{summary['format']}`: "
              f"{summary['num_turns']} turns, {summary['num_images']} images.")]
    if summary["ignored"]:
        lines.append("Left out: " + "; ".join(html.escape(s) for s in summary["ignored"]) + ".")
    else:
        lines.append("Nothing was left out.")
    if summary["redacted"]:
        lines.append(f"Phone numbers and e-mail addresses redacted ({summary['redacted_turns']} turns changed).")
    return "  \n".join(lines)


def _spans_text(spans) -> str:
    return ", ".join(f"{a}–{b}" if a != b else f"{a}" for a, b in spans) or "none"


def _answer_html(dialogue: Dialogue, record: dict, cache: dict, labels: dict) -> str:
    label = labels.get(record["method"], record["method"])
    head = (f'<div class="f2-answer" data-method="{html.escape(record["method"])}" '
            f'data-query="{html.escape(record["query"])}"><h5>{html.escape(label)}</h5>')
    if record.get("error"):
        return head + f'<div class="f2-note f2-error">{html.escape(record["error"])}</div></div>'
    meta = (f'{record["seconds"]:.2f} s · turns: {_spans_text(record["spans"])} · '
            f'images: {", ".join(map(str, record["image_ids"])) or "none"}'
            + (f' · {record["num_windows"]} windows' if record["num_windows"] > 1 else ""))
    if record["utterance_ids"] or record["image_ids"]:
        hit_turns = set(record["utterance_ids"]) | {t["turn"] for t in record.get("images", [])}
        body = chat_html(dialogue, cache, record["utterance_ids"], record["image_ids"],
                         context=CONTEXT_TURNS, around=hit_turns)
    else:
        body = '<div class="f2-gap">Nothing in the chat matches this query.</div>'
    raw = record["raw_answer"] if len(record["raw_answer"]) <= RAW_CHARS else record["raw_answer"][:RAW_CHARS] + " …"
    answered_by = (f'<br><span class="f2-answered-by">answered by {html.escape(record["answered_by"])}</span>'
                   if record.get("answered_by") else "")
    return (head + f'<div class="f2-meta">{html.escape(meta)}{answered_by}<br><code>{html.escape(raw)}</code>'
            f"</div>{body}</div>")


def results_html(dialogue: Dialogue, document: dict, cache: dict, labels: dict) -> str:
    """Per query, the methods side by side (one column each): meta line, raw answer, and the hits
    highlighted with `CONTEXT_TURNS` turns around them (gaps summarised)."""
    by_query: dict[str, list[dict]] = {}
    for record in document["results"]:
        by_query.setdefault(record["query"], []).append(record)
    out = []
    for query, records in by_query.items():
        columns = f"repeat({len(records)}, minmax(0, 1fr))"
        out.append(f'<section class="f2-query"><h4>{html.escape(query)}</h4>'
                   f'<div class="f2-compare" style="grid-template-columns: {columns}">')
        out.extend(_answer_html(dialogue, record, cache, labels) for record in records)
        out.append("</div></section>")
    return "".join(out)


def message_html(message: str) -> str:
    return f'<div class="f2-note">{html.escape(message)}</div>'
