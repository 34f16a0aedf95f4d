"""Prompt templates, answer render/parse (strict, lenient, reasoning) and the answer grammar."""

import pytest
from f2rvlm import (
    Dialogue,
    build_messages,
    parse_answer,
    parse_prompt,
    render_answer,
    render_prompt,
)
from f2rvlm.core.protocol import (
    IMAGE_PLACEHOLDER,
    STRICT_ANSWER_PATTERN,
    TEMPLATES,
    AnswerGrammar,
    PromptParseError,
    contiguous_spans,
)

# docs/protocol.md §2, written out by hand (not from the module) so the test can catch a drift.
RELEASED_ZH = (
    "请根据下列多模态长对话内容,检索与<|query_start|>我们看的房子<|query_end|>匹配的句子和图片.\n"
    "要求: \n"
    "1.检索结果以句子ID和图片ID输出，若不存在匹配的句子或图片，对应部分返回空列表\n"
    "2.格式严格遵循:<|utt_ids_start|>[句子ID列表]<|utt_ids_end|>;<|img_ids_start|>[图片ID列表]<|img_ids_end|>\n"
    "\n"
    "对话内容: <|utt_id_start|>0<|utt_id_end|> user1: 你好\n"
    "<|utt_id_start|>1<|utt_id_end|> user2: <|img_id_start|>0<|img_id_end|><image>\n"
    "<|utt_id_start|>2<|utt_id_end|> user1: 房租多少 <|img_id_start|>1<|img_id_end|><image>\n"
)


@pytest.fixture
def dialogue():
    return Dialogue.from_dict({"utterances": [
        {"speaker": "user1", "text": "你好"},
        {"speaker": "user2", "images": ["a.png"]},
        {"speaker": "user1", "text": "房租多少", "images": ["b.png"]},
    ]})


def test_released_template_is_byte_identical(dialogue):
    assert render_prompt(dialogue, "我们看的房子") == RELEASED_ZH
    assert render_prompt(dialogue, "我们看的房子", template="zh").encode() == RELEASED_ZH.encode()


@pytest.mark.parametrize("template", sorted(TEMPLATES))
def test_prompt_round_trip(dialogue, template):
    prompt = render_prompt(dialogue, "the flat", template)
    parsed = parse_prompt(prompt)
    assert (parsed.template, parsed.query) == (template, "the flat")
    assert render_prompt(parsed.lines, parsed.query, parsed.template) == prompt
    assert prompt.count(IMAGE_PLACEHOLDER) == 2


def test_templates_share_every_tag(dialogue):
    for template in TEMPLATES:
        prompt = render_prompt(dialogue, "q", template)
        for tag in ("<|utt_ids_start|>", "<|img_ids_end|>", "<|query_start|>", "<|utt_id_start|>2<|utt_id_end|>"):
            assert tag in prompt


def test_query_last_puts_query_after_dialogue(dialogue):
    prompt = render_prompt(dialogue, "q", "en-query-last")
    assert prompt.index("<|query_start|>") > prompt.rindex("<|utt_id_start|>")


def test_multiline_utterance_round_trips():
    d = Dialogue.from_dict({"utterances": [{"speaker": "a", "text": "line one\nline two"}, {"speaker": "b", "text": "ok"}]})
    prompt = render_prompt(d, "q", "en")
    assert render_prompt(parse_prompt(prompt).lines, "q", "en") == prompt


def test_parse_prompt_errors():
    with pytest.raises(PromptParseError, match="no query"):
        parse_prompt("对话内容: <|utt_id_start|>0<|utt_id_end|> a: hi\n")
    with pytest.raises(ValueError, match="query tags"):
        render_prompt([(0, "a", "hi", ())], "<|query_end|>")


def test_messages_put_each_image_after_its_tag(dialogue):
    messages = build_messages(dialogue, "q", "en")
    assert messages[0]["role"] == "system"
    parts = messages[1]["content"]
    images = [i for i, p in enumerate(parts) if p["type"] == "image"]
    assert len(images) == 2
    for i in images:
        assert parts[i - 1]["text"].endswith("<|img_id_end|>")
    assert "".join(p.get("text", IMAGE_PLACEHOLDER) for p in parts) == render_prompt(dialogue, "q", "en")


def test_render_answer_matches_released_form():
    assert render_answer([3, 4, 5], [0, 1]) == "<|utt_ids_start|>[3, 4, 5]<|utt_ids_end|>;<|img_ids_start|>[0, 1]<|img_ids_end|>"
    assert render_answer([], []) == "<|utt_ids_start|>[]<|utt_ids_end|>;<|img_ids_start|>[]<|img_ids_end|>"


@pytest.mark.parametrize("text,expected", [
    ("<|utt_ids_start|>[3, 4]<|utt_ids_end|>;<|img_ids_start|>[]<|img_ids_end|>", ([3, 4], [])),
    ("<|utt_ids_start|>[3,4]<|utt_ids_end|>;<|img_ids_start|>[ 1 ]<|img_ids_end|>", ([3, 4], [1])),
    ("<|utt_ids_start|>[1, 1]<|utt_ids_end|>;<|img_ids_start|>[]<|img_ids_end|>", ([1, 1], [])),  # parses; format reward judges repeats
    (" <|utt_ids_start|>[3]<|utt_ids_end|>;<|img_ids_start|>[]<|img_ids_end|>", None),
    ("<|utt_ids_start|>[3]<|utt_ids_end|>;<|img_ids_start|>[]<|img_ids_end|> extra", None),
    ("<|utt_ids_start|>[1,,2]<|utt_ids_end|>;<|img_ids_start|>[]<|img_ids_end|>", None),
    ("<|utt_ids_start|>[a]<|utt_ids_end|>;<|img_ids_start|>[]<|img_ids_end|>", None),
    ("", None),
])
def test_parse_strict(text, expected):
    answer = parse_answer(text, "strict")
    assert (None if answer is None else (answer.utterance_ids, answer.image_ids)) == expected


@pytest.mark.parametrize("text,expected", [
    ("Sure! <|utt_ids_start|>[2, 3]<|utt_ids_end|> and <|img_ids_start|>[0]<|img_ids_end|>.", ([2, 3], [0])),
    ("<|utt_ids_start|>[2, 3<|utt_ids_end|>;<|img_ids_start|>[0]<|img_ids_end|>", ([], [0])),
    ("<|img_ids_start|>[5]<|img_ids_end|>", ([], [5])),
    ("garbage", ([], [])),
    ('<|utt_ids_start|>["1"]<|utt_ids_end|>', ([], [])),
])
def test_parse_lenient(text, expected):
    answer = parse_answer(text, "lenient")
    assert (answer.utterance_ids, answer.image_ids) == expected


def test_parse_reasoning():
    inner = render_answer([1], [2])
    assert parse_answer(render_answer([1], [2], reasoning="topic is rent"), "reasoning") == ([1], [2])
    assert parse_answer(f"<think>a</think>\n<answer>{inner}</answer>", "reasoning") == ([1], [2])
    assert parse_answer(inner, "reasoning") is None
    assert parse_answer(f"<think>a</think><answer>{inner} x</answer>", "reasoning") is None


def test_strict_pattern_is_the_released_one():
    assert STRICT_ANSWER_PATTERN.startswith("^<\\|utt_ids_start\\|>(\\[[\\d,\\s]*\\])")


def test_spans():
    assert contiguous_spans([9, 2, 3, 4, 3]) == [(2, 4), (9, 9)]
    assert contiguous_spans([]) == []


def test_grammar_accepts_exactly_canonical_answers():
    grammar = AnswerGrammar([0, 1, 2, 10, 11], [0, 1])
    for utts, imgs in [([0, 2, 10], [1]), ([], []), ([11], [0, 1]), ([0, 1, 2, 10, 11], [])]:
        assert grammar.accepts(render_answer(utts, imgs))
    for text in [render_answer([2, 0], []), render_answer([0, 0], []), render_answer([3], []),
                 render_answer([], [2]), render_answer([1], []) + " ",
                 "<|utt_ids_start|>[01]<|utt_ids_end|>;<|img_ids_start|>[]<|img_ids_end|>",
                 "<|utt_ids_start|>[1,2]<|utt_ids_end|>;<|img_ids_start|>[]<|img_ids_end|>"]:
        assert not grammar.accepts(text), text
    # a comma after the largest allowed id would lead nowhere
    assert grammar.advance(grammar.initial, "<|utt_ids_start|>[11,") is None


# ---- image tags anywhere in the line (released builder: the tag goes where the image sat) --------
def _tag(k):
    return f"<|img_id_start|>{k}<|img_id_end|>{IMAGE_PLACEHOLDER}"


LAYOUTS = {  # utterance body -> (text, image positions); None = the default layout
    "text then image, no space": ("看这个" + _tag(0), ("看这个", (3,))),
    "image before the text": (_tag(0) + " 好看吗", (" 好看吗", (0,))),
    "image between texts": ("左边" + _tag(0) + "右边", ("左边右边", (2,))),
    "several images in a row": ("a" + _tag(0) + _tag(1) + "b " + _tag(2), ("ab ", (1, 1, 3))),
    "image-only, adjacent": (_tag(0) + _tag(1), ("", (0, 0))),
    "image-only, space apart (default)": (_tag(0) + " " + _tag(1), ("", None)),
    "text space image (default)": ("房租多少 " + _tag(0), ("房租多少", None)),
    "two spaces before the image (default)": ("hi  " + _tag(0), ("hi ", None)),
    "leading space": (" " + _tag(0), (" ", (1,))),
    "trailing space": (_tag(0) + " ", (" ", (0,))),
    "multi-line text": ("one\ntwo" + _tag(0) + "\nthree", ("one\ntwo\nthree", (7,))),
}


@pytest.mark.parametrize("name", list(LAYOUTS))
@pytest.mark.parametrize("template", ["zh", "en-query-last"])
def test_image_tags_anywhere_round_trip(name, template):
    body, (text, positions) = LAYOUTS[name]
    head = render_prompt(Dialogue.from_dict({"utterances": [{"speaker": "user1", "text": "你好"}]}), "q", template)
    count = body.count(IMAGE_PLACEHOLDER)
    shifted = body
    for k in reversed(range(count)):  # ids 1.. so the first utterance's image is id 0
        shifted = shifted.replace(f">{k}<|img_id_end|>", f">{k + 1}<|img_id_end|>")
    line0 = "<|utt_id_start|>0<|utt_id_end|> user1: 你好 " + _tag(0)
    prompt = head.replace("<|utt_id_start|>0<|utt_id_end|> user1: 你好",
                          f"{line0}\n<|utt_id_start|>1<|utt_id_end|> user2: {shifted}")
    parsed = parse_prompt(prompt)
    line = parsed.lines[1]
    assert (line.text, line.image_ids, line.image_positions) == (text, tuple(range(1, count + 1)), positions)
    assert parsed.lines[0].image_positions is None
    assert render_prompt(parsed.lines, parsed.query, parsed.template) == prompt
    d = Dialogue.from_dict({"utterances": [
        {"speaker": "user1", "text": "你好", "images": ["x.png"]},
        {"speaker": "user2", "text": text, "images": [f"{k}.png" for k in range(count)], "image_positions":
            None if positions is None else list(positions)}]})
    assert render_prompt(d, "q", template) == prompt
    assert "".join(p.get("text", IMAGE_PLACEHOLDER) for p in build_messages(d, "q", template)[1]["content"]) == prompt


def test_default_layout_is_unchanged(dialogue):
    # Dialogues without positions render as before (synthetic data, chat imports, the demo model).
    assert all(line.image_positions is None for line in dialogue.line_specs())
    assert all(line.image_positions is None for line in parse_prompt(RELEASED_ZH).lines)
    assert render_prompt(parse_prompt(RELEASED_ZH).lines, "我们看的房子") == RELEASED_ZH
