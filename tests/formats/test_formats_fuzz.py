"""Mutation fuzzing of every chat reader: the only error an upload may raise is `ChatImportError`,
raised by the readers themselves (not the `import_chat` safety net), on one line, naming the file.

Each reader gets a valid seed file that Hypothesis mutates: JSON seeds structurally (a node
replaced by any JSON value, huge numbers and strings, deep nesting, a key dropped) and every seed
byte-wise (flips, cuts, inserted bytes, bare CR, NUL, re-encoding); zipped exports also have their
deflate streams and member names corrupted. The fast run tries `FAST_EXAMPLES` inputs per reader;
`pytest -m slow -s tests/formats/test_formats_fuzz.py` tries `SLOW_EXAMPLES` and prints the counts.
"""

from __future__ import annotations

import copy
import io
import json
import zipfile
from collections import Counter

import pytest
from f2rvlm.core.protocol import render_answer, render_prompt
from f2rvlm.formats import ChatImportError, ImportLimits, import_chat
from f2rvlm.formats.wechat import CSV_HEADER
from helpers import png_bytes

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FAST_EXAMPLES = 250
SLOW_EXAMPLES = 10_000
#: Small limits keep each input cheap while still exercising the limit checks.
LIMITS = ImportLimits(max_upload_bytes=2_000_000, max_members=50, max_total_uncompressed=5_000_000,
                      max_turns=2_000)
COUNTS: Counter = Counter()


# ----------------------------------------------------------------------------------------------
# Seeds: one small valid file per reader
# ----------------------------------------------------------------------------------------------
def _released():
    from f2rvlm.core.dialogue import Dialogue

    dialogue = Dialogue.from_dict({"utterances": [
        {"speaker": "user1", "text": "we went to the lake"},
        {"speaker": "user2", "text": "nice", "images": ["img/a.png"]},
        {"speaker": "user1", "text": "see you"},
    ]})
    return [{
        "messages": [{"role": "system", "content": "system"},
                     {"role": "user", "content": render_prompt(dialogue, "the lake photos")},
                     {"role": "assistant", "content": render_answer([0, 1], [0])}],
        "images": ["img/a.png"], "solution": render_answer([0, 1], [0]), "dialogue_id": "d1",
    }]


JSON_SEEDS = {
    "released": _released,
    "dialogue-json": lambda: {"dialogue_id": "d", "utterances": [
        {"speaker": "a", "text": "hello", "timestamp": "2026-01-01T10:00:00"},
        {"speaker": "b", "text": "", "images": [{"path": "img/a.png", "caption": "lake"}]},
        {"speaker": "a", "text": "bye"}]},
    "annotation": lambda: [{"dialogue_id": "d", "query_text": ["the lake"], "gt_turns": [1], "dialogue": [
        {"speaker": "a", "utterance": "hi"},
        {"speaker": "b", "utterance": [{"image_url": "img/a.png", "caption": "x"}]},
        {"speaker": "a", "utterance": "bye"}]}],
    "telegram": lambda: {"name": "Kim", "type": "personal_chat", "id": 7, "messages": [
        {"id": 1, "type": "service", "date": "2026-09-25T14:20:00", "action": "create_group"},
        {"id": 2, "type": "message", "date": "2026-09-25T14:21:00", "from": "Sam", "text": "hello"},
        {"id": 3, "type": "message", "date": "2026-09-25T14:22:00", "from": "Kim",
         "text": ["look ", {"type": "bold", "text": "this"}]},
        {"id": 4, "type": "message", "date": "2026-09-25T14:23:00", "from": "Kim", "photo": "img/a.png",
         "text": ""},
        {"id": 5, "type": "message", "date": "2026-09-25T14:24:00", "from": "Sam", "file": "img/a.png",
         "mime_type": "image/png", "text": ""},
        {"id": 6, "type": "message", "date": "2026-09-25T14:25:00", "from": "Sam", "file": "v.ogg",
         "media_type": "voice_message", "poll": {"question": "?"}}]},
    "telegram-account": lambda: {"chats": {"list": [
        {"name": "Group", "type": "private_group", "id": 1, "messages": []},
        {"name": "Kim", "type": "personal_chat", "id": 2, "messages": [
            {"id": 1, "type": "message", "date": "2026-09-25T14:21:00", "from": "Sam", "text": "hello"},
            {"id": 2, "type": "message", "date": "2026-09-25T14:22:00", "from": "Kim", "photo": "img/a.png"}]}]}},
    "discord": lambda: {"guild": {"id": "1", "name": "g"}, "channel": {"id": "2", "name": "general"},
                        "messages": [
        {"id": "10", "type": "Default", "timestamp": "2026-09-25T14:22:00+00:00", "content": "hi all",
         "author": {"id": "1", "name": "sam", "nickname": "Sam"}, "attachments": [], "embeds": [],
         "stickers": []},
        {"id": "11", "type": "Reply", "timestamp": "2026-09-25T14:23:00+00:00", "content": "",
         "author": {"id": "2", "name": "kim"}, "attachments": [
             {"id": "5", "url": "img/a.png", "fileName": "a.png", "fileSizeBytes": 70},
             {"id": "6", "url": "https://cdn/x.pdf", "fileName": "x.pdf"}],
         "embeds": [{"title": "t"}], "stickers": [{"name": "s"}]},
        {"id": "12", "type": "ChannelPinnedMessage", "content": "", "author": {"name": "sam"}}]},
}


def _csv_row(i, kind, content, sender="0", sub="0"):
    return f'{i},wxid_kim,{kind},{sub},{sender},1790000000,2,"{content}",2026-09-25 14:2{i}:00,,小金,'


def _lines(lines, end="\n"):
    return end.join(lines) + end


TEXT_SEEDS = {
    "whatsapp": _lines([
        "25/09/2026, 14:20 - Messages and calls are end-to-end encrypted.",
        "25/09/2026, 14:22 - Sam: hello",
        "a second line",
        "25/09/2026, 14:23 - Kim: IMG-20260925-WA0001.png (file attached)",
        "the lake",
        "25/09/2026, 14:24 - Kim: <Media omitted>",
        "25/09/2026, 14:25 - Sam: This message was deleted",
        "26/09/2026, 9:01 pm - Sam: bye",
    ]),
    "whatsapp-ios": _lines([
        "[25.09.26, 14:22:01] Sam: hello",
        "[25.09.26, 14:23:01] Kim: \u200e<attached: 00000001-PHOTO-2026-09-25.png>",
        "[25.09.26, 14:24:01] Kim: \u200eimage omitted",
    ], "\r\n"),
    "wechat-csv": "\ufeff" + _lines([
        CSV_HEADER, _csv_row(1, 10000, "你已添加了小金"), _csv_row(2, 1, "你好, 在吗?"),
        _csv_row(3, 1, "在", sender="1"), _csv_row(4, 3, r"FileStorage\\MsgAttach\\a.png"), _csv_row(5, 3, ""),
        _csv_row(6, 49, "<msg><appmsg><title>好的</title></appmsg></msg>", sub="57"), _csv_row(7, 34, ""),
    ]),
    "wechat-txt": _lines([
        "2026-09-25 14:20:00 小金", "你好", "", "2026-09-25 14:21:00 我", "[图片]", "在的",
        "2026-09-25 14:22:00 小金", "引用:我:在的", "好的", "[语音]",
    ]),
}
SEED_NAMES = {"whatsapp": "WhatsApp Chat with Kim.txt", "whatsapp-ios": "_chat.txt",
              "wechat-csv": "chat.csv", "wechat-txt": "chat.txt"}
READERS = sorted(JSON_SEEDS) + sorted(TEXT_SEEDS) + ["whatsapp-zip", "telegram-zip"]


# ----------------------------------------------------------------------------------------------
# Mutations
# ----------------------------------------------------------------------------------------------
_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=10**18, max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
    st.sampled_from(["", "0", "-1", "1e400", "image/png", "message", "personal_chat", "Default", "../../etc/passwd",
                     "/etc/passwd", "a" * 300 + ".png", "img/a.png", "img", "<|utt_id_start|>", "<image>", ":", "\r",
                     "(File not included)", "\x00", "\ud800".encode("utf-8", "surrogatepass").decode("latin-1")]),
)
_json_values = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(
        ["id", "type", "text", "speaker", "messages", "utterances", "images", "path", "from", "author", "name",
         "attachments", "photo", "file", "list", "chats", "role", "content", "dialogue", "utterance",
         "channel", "guild", "date"]), inner, max_size=4)), max_leaves=8)


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _paths(value, prefix + (i,))


def _replace(root, path, value):
    if not path:
        return value
    parent = root
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    return root


def _delete(root, path):
    parent = root
    for key in path[:-1]:
        parent = parent[key]
    del parent[path[-1]]
    return root


@st.composite
def mutated_json(draw, seed):
    doc = copy.deepcopy(seed)
    for _ in range(draw(st.integers(1, 3))):
        paths = list(_paths(doc))
        path = draw(st.sampled_from(paths))
        action = draw(st.sampled_from(["replace", "replace", "delete", "nest", "huge", "long"]))
        if action == "delete" and path:
            doc = _delete(doc, path)
        elif action == "nest":
            depth = draw(st.sampled_from([50, 900, 5000]))
            doc = _replace(doc, path, json.loads("[" * depth + "1" + "]" * depth) if depth < 1000 else "NEST")
            if depth >= 1000:
                text = json.dumps(doc).replace('"NEST"', "[" * depth + "]" * depth)
                return text.encode()
        elif action == "huge":
            doc = _replace(doc, path, "HUGE")
            return json.dumps(doc).replace('"HUGE"', "9" * draw(st.sampled_from([30, 4400, 5000]))).encode()
        elif action == "long":
            doc = _replace(doc, path, "x" * draw(st.sampled_from([131_073, 300_000])))
        else:
            doc = _replace(doc, path, draw(_json_values))
    return json.dumps(doc, ensure_ascii=draw(st.booleans()), allow_nan=True).encode()


@st.composite
def mutated_bytes(draw, data: bytes):
    data = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(["flip", "insert", "delete", "cut", "line", "encode"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if action == "flip" and data:
            data[pos] = draw(st.integers(0, 255))
        elif action == "insert":
            data[pos:pos] = draw(st.sampled_from([b"\r", b"\x00", b"\n", b'"', b",", b"\xff\xfe", b"\xe4\xbd",
                                                  b"[", b"{", b":", b"\n25/09/2026, 14:22 - ", b"9" * 25,
                                                  b"x" * 131_073, b"\n2026-09-25 14:20:00 ", b"\x1b"]))
        elif action == "delete":
            del data[pos:pos + draw(st.integers(1, 40))]
        elif action == "cut":
            del data[pos:]
        elif action == "line":
            line = draw(st.sampled_from([
                '99,x,1,0,0,100000000000000000000,2,"big",,,,', '9,x,1,0,0,' + "9" * 5000 + ',2,"a",,,,',
                '9,x,3,0,0,1,2,"' + "a" * 300 + '.png",,,,', "25/09/2026, 14:22 - Sam: " + "a" * 300 + ".jpg (file attached)",
                "[25/13/2026, 99:99:99] Sam: <attached: " + "b" * 300 + ".png>", "00/00/0000, 0:00 - :",
                '9,x,1,0,0,1,2,"' + "y" * 131_073 + '",,,,', "2026-99-99 99:99:99 \u202e",
            ]))
            data[pos:pos] = ("\n" + line + "\n").encode()
        elif action == "encode":
            text = bytes(data).decode("utf-8", "replace")
            codec = draw(st.sampled_from(["utf-16", "utf-16-le", "gb18030", "latin-1", "cp1252", "utf-32"]))
            data = bytearray(text.encode(codec, "replace"))
    return bytes(data)


def _zip_bytes(chat_name: str, chat: bytes, members=None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(chat_name, chat)
        for name, data in (members or {"img/a.png": png_bytes()}).items():
            zf.writestr(name, data)
    return buffer.getvalue()


@st.composite
def mutated_zip(draw, chat_name: str, chat: bytes):
    kind = draw(st.sampled_from(["bytes", "names", "chat"]))
    if kind == "chat":
        return _zip_bytes(chat_name, draw(mutated_bytes(chat)))
    if kind == "names":
        name = draw(st.sampled_from(["img", "img/a.png/x.png", "a" * 300 + ".png", "IMG-20260925-WA0001.png/",
                                     "x/" * 200 + "a.png", "Img/A.PNG", "\u202e.png", "nested.zip", "00000001-PHOTO-2026-09-25.png"]))
        return _zip_bytes(chat_name, chat, {"img/a.png": png_bytes(), name: png_bytes()})
    data = bytearray(_zip_bytes(chat_name, chat))
    for _ in range(draw(st.integers(1, 3))):  # corrupt inside the first members' deflate streams
        pos = draw(st.integers(30, max(31, len(data) - 100)))
        data[pos] = draw(st.integers(0, 255))
    return bytes(data)


def _input_for(reader):
    if reader in JSON_SEEDS:
        seed = JSON_SEEDS[reader]()
        return st.one_of(mutated_json(seed), mutated_bytes(json.dumps(seed, ensure_ascii=False).encode())), (
            "result.json" if reader.startswith("telegram") else f"{reader}.json")
    if reader in TEXT_SEEDS:
        return mutated_bytes(TEXT_SEEDS[reader].encode()), SEED_NAMES[reader]
    if reader == "whatsapp-zip":
        return mutated_zip("WhatsApp Chat with Kim.txt", TEXT_SEEDS["whatsapp"].replace(
            "IMG-20260925-WA0001.png", "img/a.png").encode()), "chat.zip"
    seed = json.dumps(JSON_SEEDS["telegram"]()).encode()
    return mutated_zip("result.json", seed), "export.zip"


# ----------------------------------------------------------------------------------------------
# The check
# ----------------------------------------------------------------------------------------------
def check_upload(data: bytes, name: str, folder) -> str:
    """Import `data` saved as `name` under `folder`; 'ok' or 'refused'. Fails the test on any
    other exception, on the safety net's error, or on a message that is not one line naming the file."""
    import shutil

    shutil.rmtree(folder, ignore_errors=True)
    (folder / "img").mkdir(parents=True)
    (folder / "img" / "a.png").write_bytes(png_bytes())
    (folder / "media").mkdir()
    path = folder / name
    path.write_bytes(data)
    try:
        result = import_chat(path, limits=LIMITS, extract_to=folder / "media")
    except ChatImportError as err:
        message = str(err)
        assert not getattr(err, "unexpected", False), f"reader error escaped to the safety net: {message}"
        assert "\n" not in message and len(message) < 2_000, message[:500]
        assert message.startswith(f"{name}:") or name in message, message
        return "refused"
    result.dialogue.validate()
    assert all(isinstance(q, str) for q in result.queries)
    result.summary()
    return "ok"


def _fuzz(reader: str, examples: int, tmp_path_factory):
    strategy, name = _input_for(reader)
    folder = tmp_path_factory.mktemp(f"fuzz-{reader}")
    outcomes: Counter = Counter()

    @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def run(data):
        outcomes[check_upload(data, name, folder / "case")] += 1

    run()
    COUNTS[reader] = sum(outcomes.values())
    return outcomes


@pytest.mark.parametrize("reader", READERS)
def test_fuzz_reader(reader, tmp_path_factory):
    outcomes = _fuzz(reader, FAST_EXAMPLES, tmp_path_factory)
    assert sum(outcomes.values()) >= FAST_EXAMPLES * 0.9


@pytest.mark.slow
@pytest.mark.timeout(7200)
@pytest.mark.parametrize("reader", READERS)
def test_fuzz_reader_slow(reader, tmp_path_factory):
    outcomes = _fuzz(reader, SLOW_EXAMPLES, tmp_path_factory)
    print(f"\nfuzz {reader}: {sum(outcomes.values())} inputs, {outcomes['ok']} imported, "
          f"{outcomes['refused']} refused with ChatImportError, 0 uncaught")
    assert sum(outcomes.values()) >= SLOW_EXAMPLES * 0.9
