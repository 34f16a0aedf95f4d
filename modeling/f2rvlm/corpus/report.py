"""An HTML page of a search: per dialogue, its picked utterances grouped into consecutive runs,
`context` turns around each run (from the dialogue's other indexed fragments), images inline."""

from __future__ import annotations

import base64
import html

from ..core.protocol import contiguous_spans
from .index import FragmentIndex, SearchResult

_STYLE = """
body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;color:#222}
h1{font-size:1.3rem} h2{font-size:1.05rem;margin-top:2rem;border-bottom:1px solid #ccc}
.run{border-left:3px solid #3a7;padding:.3rem .8rem;margin:.8rem 0;background:#f7fbf8}
.line{margin:.15rem 0;white-space:pre-wrap}.ctx{color:#888}.hit{font-weight:600}
.id{color:#999;font-size:.8em;margin-right:.4rem}.spk{color:#36c}
img{max-height:160px;max-width:240px;margin:.2rem;border:1px solid #ddd;vertical-align:top}
.meta{color:#777;font-size:.85em}
"""


def _image_html(image: dict) -> str:
    data = image.get("bytes")
    caption = html.escape(image.get("caption") or image.get("path") or "image")
    if not data:
        return f'<span class="meta">[image: {caption}]</span>'
    kind = "png" if data[:4] == b"\x89PNG" else "gif" if data[:3] == b"GIF" else "webp" if data[8:12] == b"WEBP" else "jpeg"
    return f'<img alt="{caption}" title="{caption}" src="data:image/{kind};base64,{base64.b64encode(data).decode()}">'


def dialogue_turns(index: FragmentIndex, dialogue_id: str) -> dict[int, tuple[str, str, list[dict]]]:
    """Global utterance id -> (speaker, text, images) over all indexed fragments of a dialogue."""
    turns: dict[int, tuple[str, str, list[dict]]] = {}
    for fragment in index.fragments:
        if fragment.dialogue_id != dialogue_id:
            continue
        for local, (uid, speaker, text) in enumerate(zip(fragment.utterance_ids, fragment.speakers, fragment.texts)):
            images = [im for host, im in zip(fragment.image_hosts, fragment.images) if host == local]
            turns[uid] = (speaker, text, images)
    return turns


def context_runs(picked_ids, turns: dict, context: int) -> list[list[tuple[int, bool]]]:
    """Per run of consecutive picked turns, the (turn id, picked?) pairs to show: the run and
    `context` existing turns either side (the one grouping both HTML views use).

    >>> context_runs([3, 4, 9], {i: None for i in range(11)}, 1)
    [[(2, False), (3, True), (4, True), (5, False)], [(8, False), (9, True), (10, False)]]
    """
    picked = set(picked_ids)
    return [[(uid, uid in picked) for uid in range(first - context, last + context + 1) if uid in turns]
            for first, last in contiguous_spans(picked_ids)]


def render_html(index: FragmentIndex, result: SearchResult, context: int = 2, max_dialogues: int = 20) -> str:
    parts = [(f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(result.query)}</title>"
             f"<style>{_STYLE}</style></head><body>"),
             f"<h1>Query: {html.escape(result.query)}</h1>",
             (f"<p class='meta'>{len(result.fragments)} fragments recalled; "
             f"{'reranked by F2RVLM' if result.reranked else 'recall only (whole fragments)'}; "
             f"recall {result.timings.get('recall_s', 0) * 1000:.1f} ms</p>")]
    for rank, hit in enumerate(result.dialogues[:max_dialogues], 1):
        turns = dialogue_turns(index, hit.dialogue_id)
        parts.append(f"<h2>{rank}. {html.escape(hit.dialogue_id)} <span class='meta'>score {hit.score:.3f}, "
                     f"{len(hit.utterance_ids)} utterance(s), {len(hit.image_ids)} image(s)</span></h2>")
        if not hit.utterance_ids:
            parts.append("<p class='meta'>nothing picked in this dialogue's recalled fragments</p>")
        for run in context_runs(hit.utterance_ids, turns, context):
            parts.append("<div class='run'>")
            for uid, is_hit in run:
                speaker, text, images = turns[uid]
                cls = "hit" if is_hit else "ctx"
                parts.append(f"<div class='line {cls}'><span class='id'>#{uid}</span><span class='spk'>"
                             f"{html.escape(speaker)}:</span> {html.escape(text)} "
                             + "".join(_image_html(im) for im in images) + "</div>")
            parts.append("</div>")
    parts.append("</body></html>")
    return "\n".join(parts)
