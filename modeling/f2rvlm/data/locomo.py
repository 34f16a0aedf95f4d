"""LoCoMo conversations -> fragment-retrieval rows (the real-chat development data).

LoCoMo ("Evaluating Very Long-Term Conversational Memory of LLM Agents", Maharana et al., ACL
2024; public repository snap-research/locomo, `data/locomo10.zip`) holds long two-person chats in
sessions, with questions whose `evidence` names the supporting turns (`D3:12` = session 3, turn
`dia_id` "D3:12"). Each non-adversarial question whose evidence lies in ONE session becomes a row
over that session (joined with the next sessions while it has fewer than `min_turns` turns);
gold = the evidence turns. Photo turns cannot carry their picture (only an unfetchable URL), so
the BLIP caption is kept in the text: "text [photo: caption]". Category 5 (adversarial, no
answer in the chat) is skipped; skips are counted in the `ConversionReport`. docs/real_chats.md.

Accepted inputs: `locomo10.zip`, `locomo10.json` (a list of conversations with a `conversation`
field), one conversation per JSON file (fields at the top level), or a folder of such files.

>>> conversation = {"speaker_a": "Ann", "speaker_b": "Bo", "session_1": [
...     {"speaker": "Ann", "dia_id": "D1:1", "text": "I adopted a cat"},
...     {"speaker": "Bo", "dia_id": "D1:2", "text": "so cute", "blip_caption": "a kitten"}],
...     "qa": [{"question": "What did Ann adopt?", "evidence": ["D1:1"], "category": 1},
...            {"question": "Who is Ann's boss?", "evidence": [], "category": 5}]}
>>> rows, report = locomo_rows(conversation, min_turns=1)
>>> [(r["query"], r["gold_utterance_ids"]) for r in rows], dict(report.skipped)
([('What did Ann adopt?', [0])], {'adversarial question': 1})
>>> rows[0]["utterances"][1]["text"]
'so cute [photo: a kitten]'
"""

from __future__ import annotations

import json
import os
import re
import zipfile
from collections.abc import Iterator, Mapping

from ..core.dialogue import Dialogue, Utterance
from .schema import ConversionReport, DataError, make_row

ADVERSARIAL_CATEGORY = 5
_SESSION_KEY = re.compile(r"^session_(\d+)$")
_DIA_ID = re.compile(r"^D:?(\d+):(\d+)$")  # "D3:12"; the data also has the malformed "D:11:26"


def read_conversations(source) -> Iterator[tuple[str, Mapping]]:
    """(name, conversation) pairs from a zip, a JSON file (one conversation or a list) or a folder."""
    if isinstance(source, Mapping):
        yield str(source.get("sample_id", "conversation")), source
        return
    if os.path.isdir(source):
        for name in sorted(os.listdir(source)):
            if name.endswith((".json", ".zip")):
                yield from read_conversations(os.path.join(source, name))
        return
    if zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as archive:
            for member in sorted(n for n in archive.namelist() if n.endswith(".json") and "__MACOSX" not in n):
                yield from _conversations_in(json.loads(archive.read(member)), f"{source}:{member}")
        return
    with open(source, encoding="utf-8") as f:
        yield from _conversations_in(json.load(f), source)


def _conversations_in(payload, where: str) -> Iterator[tuple[str, Mapping]]:
    items = payload if isinstance(payload, list) else [payload]
    for k, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise DataError("malformed conversation", f"expected an object, got {type(item).__name__}",
                            file=where, index=k)
        # locomo10.json nests the sessions under "conversation"; per-conversation files do not
        conversation = {**item.get("conversation", {}), "qa": item.get("qa", [])} if "conversation" in item else item
        yield str(item.get("sample_id") or os.path.splitext(os.path.basename(where))[0]), conversation


def sessions(conversation: Mapping) -> list[tuple[int, list[Mapping]]]:
    """(session number, turns) in order; turns are the raw LoCoMo turn objects."""
    found = [(int(m.group(1)), value) for key, value in conversation.items()
             if (m := _SESSION_KEY.match(key)) and isinstance(value, list) and value]
    return sorted(found, key=lambda item: item[0])


def turn_text(turn: Mapping) -> str:
    """A turn's text with its photo caption kept in brackets (the picture itself is not available)."""
    text = str(turn.get("text", "")).strip()
    caption = turn.get("blip_caption")
    return f"{text} [photo: {caption}]".strip() if caption else text


def conversation_turns(source) -> Iterator[tuple[str, str]]:
    """(speaker, text) of every turn of every conversation: the turns alone, no questions (what
    self-supervised training data may use)."""
    for _, conversation in read_conversations(source):
        for _, turns in sessions(conversation):
            for turn in turns:
                yield str(turn.get("speaker", "")), turn_text(turn)


def _blocks(conversation: Mapping, min_turns: int) -> list[list[tuple[int, list[Mapping]]]]:
    """Sessions joined greedily until each block has >= min_turns turns (a short tail joins the last)."""
    blocks, current = [], []
    for number, turns in sessions(conversation):
        current.append((number, turns))
        if sum(len(t) for _, t in current) >= min_turns:
            blocks.append(current)
            current = []
    if current:
        if blocks:
            blocks[-1] = blocks[-1] + current
        else:
            blocks.append(current)
    return blocks


def locomo_rows(source, min_turns: int = 20) -> tuple[list[dict], ConversionReport]:
    """Rows (the project's row schema, `source="locomo"`) and a report of what was skipped and why."""
    rows: list[dict] = []
    report = ConversionReport(str(source if not isinstance(source, Mapping) else "conversation"), "questions")
    for name, conversation in read_conversations(source):
        blocks = _blocks(conversation, min_turns)
        where: dict[str, tuple[int, int]] = {}
        for b, block in enumerate(blocks):
            position = 0
            for _, turns in block:
                for turn in turns:
                    where.setdefault(str(turn.get("dia_id")), (b, position))
                    position += 1
        for q, qa in enumerate(conversation.get("qa", [])):
            report.total += 1
            if qa.get("category") == ADVERSARIAL_CATEGORY:
                report.add_skip(DataError("adversarial question", "category 5", file=name, index=q))
                continue
            ids = []
            for entry in qa.get("evidence", []) or []:
                for part in re.split(r"[;,\s]+", str(entry).strip()):
                    if (m := _DIA_ID.match(part)) is not None:
                        ids.append(f"D{int(m.group(1))}:{int(m.group(2))}")
            found = [where[i] for i in ids if i in where]
            if not found:
                report.add_skip(DataError("no evidence turn found", f"evidence {qa.get('evidence')}", file=name, index=q))
                continue
            if len({b for b, _ in found}) > 1:
                report.add_skip(DataError("evidence across sessions", f"evidence {ids}", file=name, index=q))
                continue
            block = blocks[found[0][0]]
            dialogue = Dialogue([Utterance(str(t.get("speaker", "")), turn_text(t)) for _, turns in block for t in turns],
                                f"{name}-s{block[0][0]}-{block[-1][0]}")
            rows.append(make_row(dialogue, str(qa.get("question", "")), sorted({i for _, i in found}), [],
                                 language="en", source="locomo", topics=[]))
            report.converted += 1
            report.rows += 1
    return rows, report
