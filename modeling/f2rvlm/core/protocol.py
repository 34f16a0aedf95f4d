"""The one home of F2RVLM's tags, prompt templates, answer rendering/parsing and answer grammar.

Everything that reads or writes the model's text goes through this module: the processor,
`retrieve`, the dataset converters, the metrics, the GRPO rewards and the Space. It imports the
standard library only, so it travels inside a Hub repo next to the remote-code model files.

Facts follow docs/protocol.md (sections 2 and 3): the released Chinese template is
reproduced byte for byte; the English and query-last templates are this project's additions and
keep every tag identical, so parsing and scoring are language independent.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

# ----------------------------------------------------------------------------------------------
# Tags
# ----------------------------------------------------------------------------------------------
UTT_ID_START, UTT_ID_END = "<|utt_id_start|>", "<|utt_id_end|>"
IMG_ID_START, IMG_ID_END = "<|img_id_start|>", "<|img_id_end|>"
QUERY_START, QUERY_END = "<|query_start|>", "<|query_end|>"
UTT_IDS_START, UTT_IDS_END = "<|utt_ids_start|>", "<|utt_ids_end|>"
IMG_IDS_START, IMG_IDS_END = "<|img_ids_start|>", "<|img_ids_end|>"
THINK_START, THINK_END = "<think>", "</think>"
ANSWER_START, ANSWER_END = "<answer>", "</answer>"
IMAGE_PLACEHOLDER = "<image>"
ANSWER_SEPARATOR = ";"

#: Tags a tokenizer may add as single (non-special, so never stripped on decode) tokens.
PROTOCOL_TAGS: tuple[str, ...] = (
    UTT_ID_START, UTT_ID_END, IMG_ID_START, IMG_ID_END, QUERY_START, QUERY_END,
    UTT_IDS_START, UTT_IDS_END, IMG_IDS_START, IMG_IDS_END,
)

# ----------------------------------------------------------------------------------------------
# Prompt templates
# ----------------------------------------------------------------------------------------------
SYSTEM_PROMPTS: dict[str, str] = {
    "zh": "你是一个多模态信息检索助手。",
    "en": "You are a multimodal information retrieval assistant.",
}

# Released template (docs/protocol.md §2): note the ASCII "," and "." in the first line and the
# trailing space after "要求:". `{dialogue}` is the "\n"-joined utterance lines.
_ZH_RULES = (
    "要求: \n"
    "1.检索结果以句子ID和图片ID输出，若不存在匹配的句子或图片，对应部分返回空列表\n"
    f"2.格式严格遵循:{UTT_IDS_START}[句子ID列表]{UTT_IDS_END};{IMG_IDS_START}[图片ID列表]{IMG_IDS_END}\n"
)
_EN_RULES = (
    "Requirements: \n"
    "1.Answer with utterance IDs and image IDs; if no utterance or no image matches, return an "
    "empty list for that part\n"
    f"2.Follow this format strictly:{UTT_IDS_START}[utterance ID list]{UTT_IDS_END};"
    f"{IMG_IDS_START}[image ID list]{IMG_IDS_END}\n"
)
TEMPLATES: dict[str, str] = {
    "zh": (
        f"请根据下列多模态长对话内容,检索与{QUERY_START}{{query}}{QUERY_END}匹配的句子和图片.\n"
        + _ZH_RULES + "\n对话内容: {dialogue}\n"
    ),
    "en": (
        "Based on the following multimodal long dialogue, retrieve the utterances and images that "
        f"match {QUERY_START}{{query}}{QUERY_END}.\n" + _EN_RULES + "\nDialogue: {dialogue}\n"
    ),
    # Query after the dialogue: one encoded dialogue prefix serves many queries (KV-cache reuse).
    "zh-query-last": (
        "请根据下列多模态长对话内容,检索与对话之后给出的查询匹配的句子和图片.\n"
        + _ZH_RULES + "\n对话内容: {dialogue}\n" + f"查询: {QUERY_START}{{query}}{QUERY_END}\n"
    ),
    "en-query-last": (
        "Based on the following multimodal long dialogue, retrieve the utterances and images that "
        "match the query given after it.\n" + _EN_RULES + "\nDialogue: {dialogue}\n"
        + f"Query: {QUERY_START}{{query}}{QUERY_END}\n"
    ),
}
DEFAULT_TEMPLATE = "zh"


def template_language(template: str) -> str:
    """`"zh"` or `"en"`, the language of a template name (selects the system prompt)."""
    _check_template(template)
    return template.split("-")[0]


def _check_template(template: str) -> None:
    if template not in TEMPLATES:
        raise ValueError(f"unknown prompt template {template!r}; choose one of {sorted(TEMPLATES)}")


# ----------------------------------------------------------------------------------------------
# Rendering a dialogue
# ----------------------------------------------------------------------------------------------
class LineSpec(NamedTuple):
    """One utterance as the protocol sees it (ids are the ids written in the prompt).

    `image_positions`, when given, holds for each image the character offset in `text` where its
    tag sits (non-decreasing, 0..len(text)); None is the default layout (text, then the tags).
    """

    utterance_id: int
    speaker: str
    text: str
    image_ids: tuple[int, ...]
    image_positions: tuple[int, ...] | None = None


def image_tag(image_id: int) -> str:
    """`<|img_id_start|>k<|img_id_end|><image>`, an image as the prompt writes it."""
    return f"{IMG_ID_START}{image_id}{IMG_ID_END}{IMAGE_PLACEHOLDER}"


def check_image_positions(text: str, num_images: int, positions) -> tuple[int, ...] | None:
    """`positions` as a tuple (None stays None); `ValueError` unless there is one per image, each
    in 0..len(text), in non-decreasing order (image ids follow the order of appearance)."""
    if positions is None:
        return None
    positions = tuple(int(p) for p in positions)
    if len(positions) != num_images:
        raise ValueError(f"{len(positions)} image positions for {num_images} images")
    if any(not 0 <= p <= len(text) for p in positions) or list(positions) != sorted(positions):
        raise ValueError(f"image positions {list(positions)} must be non-decreasing offsets in 0..{len(text)}")
    return positions


def render_line(line: LineSpec) -> str:
    """`<|utt_id_start|>u<|utt_id_end|> speaker: text <|img_id_start|>k<|img_id_end|><image>`.

    Default layout (no `image_positions`): images follow the text, separated by one space; an
    image-only turn has no text part. With `image_positions`, each image tag is written at its
    offset in the text, with nothing added (the released builder's layout, docs/protocol.md §2).
    """
    head = f"{UTT_ID_START}{line.utterance_id}{UTT_ID_END} {line.speaker}: "
    positions = line.image_positions
    if positions is None:
        parts = [line.text] if line.text else []
        parts += [image_tag(k) for k in line.image_ids]
        return head + " ".join(parts)
    positions = check_image_positions(line.text, len(line.image_ids), positions)
    pieces, start = [], 0
    for k, position in zip(line.image_ids, positions):
        pieces += [line.text[start:position], image_tag(k)]
        start = position
    pieces.append(line.text[start:])
    return head + "".join(pieces)


def dialogue_lines(dialogue) -> list[LineSpec]:
    """The protocol view of a `Dialogue` (or any object with the same `line_specs()`)."""
    if hasattr(dialogue, "line_specs"):
        return list(dialogue.line_specs())
    return [LineSpec(*line) for line in dialogue]


def render_dialogue(dialogue) -> str:
    return "\n".join(render_line(line) for line in dialogue_lines(dialogue))


def render_prompt(dialogue, query: str, template: str = DEFAULT_TEMPLATE) -> str:
    """The user prompt text, `<image>` placeholders included, exactly as the template says.

    `dialogue` is an `f2rvlm.Dialogue` (or a sequence of `LineSpec`). The released Chinese
    template is the default so that released-format data renders byte for byte.
    """
    _check_template(template)
    if QUERY_START in query or QUERY_END in query:
        raise ValueError("the query must not contain the protocol's query tags")
    return TEMPLATES[template].format(query=query, dialogue=render_dialogue(dialogue))


def build_messages(
    dialogue, query: str, template: str = DEFAULT_TEMPLATE, system_prompt: str | bool = True
) -> list[dict]:
    """Chat messages for a Qwen-VL chat template: text parts interleaved with image parts.

    Each `{"type": "image"}` part sits exactly where its `<image>` placeholder was, i.e. right
    after the image's `<|img_id_start|>k<|img_id_end|>` tag. The images themselves are passed
    to the processor separately, in image-id order (what TRL's `images` column does).
    """
    prompt = render_prompt(dialogue, query, template)
    content: list[dict] = []
    for i, chunk in enumerate(prompt.split(IMAGE_PLACEHOLDER)):
        if i:
            content.append({"type": "image"})
        if chunk:
            content.append({"type": "text", "text": chunk})
    messages = []
    if system_prompt:
        text = SYSTEM_PROMPTS[template_language(template)] if system_prompt is True else system_prompt
        messages.append({"role": "system", "content": [{"type": "text", "text": text}]})
    messages.append({"role": "user", "content": content})
    return messages


# ----------------------------------------------------------------------------------------------
# Parsing a rendered prompt back (released files -> structured rows)
# ----------------------------------------------------------------------------------------------
_LINE_HEAD = re.compile(re.escape(UTT_ID_START) + r"(\d+)" + re.escape(UTT_ID_END) + r" ([^:\n]*): ")
_IMAGE_TAG = re.compile(re.escape(IMG_ID_START) + r"(\d+)" + re.escape(IMG_ID_END) + re.escape(IMAGE_PLACEHOLDER))


@dataclass(frozen=True)
class ParsedPrompt:
    template: str
    query: str
    lines: tuple[LineSpec, ...]


class PromptParseError(ValueError):
    pass


def parse_prompt(prompt: str) -> ParsedPrompt:
    """Inverse of `render_prompt`: template name, query and utterance lines.

    Raises `PromptParseError` naming what is missing. `render_prompt` of the result gives the
    input back byte for byte (tested), which is how released files are checked on conversion.
    """
    for name, template in TEMPLATES.items():
        head, _, rest = template.partition("{query}")
        middle, _, tail = rest.partition("{dialogue}")
        if "{query}" in tail:  # query-last templates: dialogue first
            continue
        if prompt.startswith(head) and prompt.endswith(tail):
            query, sep, dialogue_text = prompt[len(head): len(prompt) - len(tail)].partition(middle)
            if sep:
                return ParsedPrompt(name, query, _parse_dialogue_text(dialogue_text))
    for name, template in TEMPLATES.items():
        head, _, rest = template.partition("{dialogue}")
        middle, _, tail = rest.partition("{query}")
        if "{dialogue}" in tail or not middle:
            continue
        if prompt.startswith(head) and prompt.endswith(tail):
            dialogue_text, sep, query = prompt[len(head): len(prompt) - len(tail)].rpartition(middle)
            if sep:
                return ParsedPrompt(name, query, _parse_dialogue_text(dialogue_text))
    if QUERY_START not in prompt or QUERY_END not in prompt:
        raise PromptParseError("prompt has no query (no <|query_start|>...<|query_end|>)")
    raise PromptParseError("prompt does not follow any known F2RVLM template")


def _parse_dialogue_text(text: str) -> tuple[LineSpec, ...]:
    lines: list[list] = []
    for raw in text.split("\n"):
        head = _LINE_HEAD.match(raw)
        if head is None:
            if not lines:
                raise PromptParseError(f"dialogue does not start with an utterance tag: {raw[:60]!r}")
            lines[-1][2] += "\n" + raw  # a multi-line utterance
            continue
        lines.append([int(head.group(1)), head.group(2), raw[head.end():]])
    if not lines:
        raise PromptParseError("prompt contains no utterance lines")
    return tuple(_parse_line(utt_id, speaker, body) for utt_id, speaker, body in lines)


def _parse_line(utt_id: int, speaker: str, body: str) -> LineSpec:
    """One utterance line's body -> `LineSpec`: the default layout when it renders the body back,
    else the text without the image tags and each tag's offset in it (any layout round-trips)."""
    tags = list(_IMAGE_TAG.finditer(body))
    if not tags:
        return LineSpec(utt_id, speaker, body, ())
    image_ids = tuple(int(m.group(1)) for m in tags)
    default = LineSpec(utt_id, speaker, body[: tags[0].start()].removesuffix(" "), image_ids)
    if render_line(default) == f"{UTT_ID_START}{utt_id}{UTT_ID_END} {speaker}: {body}":
        return default
    pieces, positions, start = [], [], 0
    for match in tags:
        pieces.append(body[start: match.start()])
        positions.append(sum(len(p) for p in pieces))
        start = match.end()
    pieces.append(body[start:])
    return LineSpec(utt_id, speaker, "".join(pieces), image_ids, tuple(positions))


# ----------------------------------------------------------------------------------------------
# Answers
# ----------------------------------------------------------------------------------------------
class Answer(NamedTuple):
    utterance_ids: list[int]
    image_ids: list[int]


#: The released rewards' strict pattern (docs/protocol.md §3), used with `re.match`.
STRICT_ANSWER_PATTERN = (
    r"^<\|utt_ids_start\|>(\[[\d,\s]*\])<\|utt_ids_end\|>;"
    r"<\|img_ids_start\|>(\[[\d,\s]*\])<\|img_ids_end\|>$"
)
_STRICT = re.compile(STRICT_ANSWER_PATTERN)
#: `</think>`, optional whitespace, `<answer>`: the one pattern the reasoning parse searches (linear:
#: a literal, one bounded run of whitespace, a literal). Together with the `str` checks in
#: `extract_answer_text` it gives what `<think>.*?</think>\s*<answer>(.*?)</answer>\s*$` matched,
#: without that pattern's quadratic backtracking over repeated tags.
_THINK_TO_ANSWER = re.compile(re.escape(THINK_END) + r"\s*" + re.escape(ANSWER_START))
PARSE_MODES = ("strict", "lenient", "reasoning")
#: Completions longer than this are not parsed: strict and reasoning give None, lenient an empty
#: answer. A real answer is a few KB (3,000 ids are ~20 KB); the cap bounds the work one hostile
#: or runaway completion can cause.
MAX_ANSWER_CHARS = 1_000_000


def render_answer(utterance_ids: Iterable[int], image_ids: Iterable[int], reasoning: str | None = None) -> str:
    """The canonical answer string (JSON lists, ", " separators, as the released data has)."""
    answer = (
        f"{UTT_IDS_START}{json.dumps([int(i) for i in utterance_ids])}{UTT_IDS_END}{ANSWER_SEPARATOR}"
        f"{IMG_IDS_START}{json.dumps([int(i) for i in image_ids])}{IMG_IDS_END}"
    )
    if reasoning is None:
        return answer
    return f"{THINK_START}{reasoning}{THINK_END}{ANSWER_START}{answer}{ANSWER_END}"


def _json_int_list(text: str) -> list[int] | None:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, list) or not all(type(v) is int for v in value):
        return None
    return value


def _parse_strict(text: str) -> Answer | None:
    match = _STRICT.match(text)
    if match is None:
        return None
    utts, imgs = _json_int_list(match.group(1)), _json_int_list(match.group(2))
    if utts is None or imgs is None:  # e.g. "[1,,2]" passes the pattern but is not JSON
        return None
    return Answer(utts, imgs)


def _between_tags(text: str, start: str, end: str) -> str | None:
    """What the first `start` ... next `end` encloses (the released tool's `start(.*?)end`
    search, in linear time), or None."""
    first = text.find(start)
    if first < 0:
        return None
    inner = first + len(start)
    last = text.find(end, inner)
    return None if last < 0 else text[inner:last]


def extract_answer_text(text: str, mode: str = "strict") -> str | None:
    """The plain answer part of a completion: itself, or what is inside `<answer>` (reasoning).

    Reasoning: the (stripped) text starts with `<think>`, the first `</think>` followed by
    whitespace and `<answer>` closes the thinking, and the text ends with `</answer>`."""
    if mode == "reasoning":
        text = text.strip()
        if len(text) > MAX_ANSWER_CHARS or not text.startswith(THINK_START) or not text.endswith(ANSWER_END):
            return None
        match = _THINK_TO_ANSWER.search(text, len(THINK_START))
        if match is None or match.end() > len(text) - len(ANSWER_END):
            return None
        return text[match.end():len(text) - len(ANSWER_END)].strip()
    return text


def parse_answer(text: str, mode: str = "strict") -> Answer | None:
    """Parse a model answer into `Answer(utterance_ids, image_ids)`.

    - `strict`: the whole text must match the released pattern; otherwise `None`.
    - `lenient`: like the released evaluation tool: each tagged list is searched anywhere in the
      text and parsed as JSON; a missing or unparsable list counts as empty (never `None`).
    - `reasoning`: `<think>...</think><answer>...</answer>`, the answer inside parsed strictly.

    >>> parse_answer("<|utt_ids_start|>[3, 4]<|utt_ids_end|>;<|img_ids_start|>[]<|img_ids_end|>")
    Answer(utterance_ids=[3, 4], image_ids=[])
    """
    if text is None or (len(text) > MAX_ANSWER_CHARS and mode in PARSE_MODES):
        return None if mode != "lenient" else Answer([], [])
    if mode == "strict":
        return _parse_strict(text)
    if mode == "reasoning":
        inner = extract_answer_text(text, "reasoning")
        return None if inner is None else _parse_strict(inner)
    if mode == "lenient":
        lists = []
        for start, end in ((UTT_IDS_START, UTT_IDS_END), (IMG_IDS_START, IMG_IDS_END)):
            inner = _between_tags(text, start, end)
            parsed = _json_int_list(inner.strip()) if inner is not None else None
            lists.append(parsed or [])
        return Answer(*lists)
    raise ValueError(f"unknown parse mode {mode!r}; choose one of {PARSE_MODES}")


def has_duplicates(ids: Sequence[int]) -> bool:
    return len(set(ids)) != len(ids)


def contiguous_spans(ids: Iterable[int]) -> list[tuple[int, int]]:
    """Runs of consecutive ids as inclusive `(first, last)` pairs: [2,3,4,9] -> [(2,4),(9,9)]."""
    spans: list[list[int]] = []
    for i in sorted(set(ids)):
        if spans and i == spans[-1][1] + 1:
            spans[-1][1] = i
        else:
            spans.append([i, i])
    return [(a, b) for a, b in spans]


# ----------------------------------------------------------------------------------------------
# Answer grammar (constrained decoding)
# ----------------------------------------------------------------------------------------------
def answer_regex(utterance_ids: Iterable[int], image_ids: Iterable[int], canonical: bool = True) -> str:
    """A regular expression (full match) of the answers whose ids all exist in one dialogue.

    The server-side twin of `AnswerGrammar`, for engines that take a regex (vLLM / SGLang
    structured outputs). `canonical=True` admits the answers `render_answer` writes (", "
    separators, no other whitespace): every answer `AnswerGrammar` accepts, plus ones a regex cannot
    exclude cheaply (ids out of order or repeated; a client sorts and de-duplicates them).
    `canonical=False` admits exactly what `parse_answer(text, "strict")` parses (JSON whitespace,
    a trailing newline) with every id allowed. Plain syntax only (capturing groups, character
    classes, `?`, `*`), which Python `re`, xgrammar, llguidance and outlines all read.

    >>> pattern = answer_regex([0, 1, 2], range(1))
    >>> bool(re.fullmatch(pattern, "<|utt_ids_start|>[0, 2]<|utt_ids_end|>;<|img_ids_start|>[]<|img_ids_end|>"))
    True
    >>> bool(re.fullmatch(pattern, "<|utt_ids_start|>[3]<|utt_ids_end|>;<|img_ids_start|>[]<|img_ids_end|>"))
    False
    """

    def id_pattern(ids: set[str], prefix: str = "") -> str:
        # A digit trie over the allowed ids; sibling digits with equal sub-patterns share one class.
        children: dict[str, list[str]] = {}
        for digit in sorted({i[len(prefix)] for i in ids if len(i) > len(prefix) and i.startswith(prefix)}):
            rest = id_pattern(ids, prefix + digit)
            children.setdefault(rest, []).append(digit)
        branches = []
        for rest, digits in children.items():
            ranges, start = [], 0
            for k in range(1, len(digits) + 1):  # consecutive digits -> "a-b"
                if k == len(digits) or int(digits[k]) != int(digits[k - 1]) + 1:
                    run = digits[start:k]
                    ranges.append(run[0] if len(run) == 1 else f"{run[0]}-{run[-1]}")
                    start = k
            char = ranges[0] if len(ranges) == 1 and len(ranges[0]) == 1 else f"[{''.join(ranges)}]"
            branches.append(char + rest)
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(" + "|".join(branches) + ")"
        if prefix not in ids:
            return body
        atom = len(body) == 1 or (body.startswith("[") and body.index("]") == len(body) - 1)
        return f"{body}?" if atom else f"({body})?"  # the id may end here

    space = "" if canonical else "[ \\t\\n\\r]*"  # JSON whitespace
    lists = []
    for ids in (utterance_ids, image_ids):
        digits = {str(int(i)) for i in ids if int(i) >= 0}
        one = id_pattern(digits)
        if not digits:
            lists.append(f"\\[{space}\\]")
        elif canonical:
            lists.append(f"\\[({one}(, {one})*)?\\]")
        else:
            lists.append(f"\\[{space}({one}{space}(,{space}{one}{space})*)?\\]")
    tail = "" if canonical else "\\n?"  # the strict parser's `$` admits one trailing newline
    return (re.escape(UTT_IDS_START) + lists[0] + re.escape(UTT_IDS_END) + re.escape(ANSWER_SEPARATOR)
            + re.escape(IMG_IDS_START) + lists[1] + re.escape(IMG_IDS_END) + tail)


class AnswerGrammar:
    """Character-level automaton of the canonical answer for one dialogue.

    Accepts exactly `render_answer(u, i)` for strictly increasing `u` drawn from
    `allowed_utterance_ids` and `i` from `allowed_image_ids`: so a constrained answer always
    parses, every id exists in the dialogue, and no id repeats. States are small tuples, so the
    token-level decoder can explore candidate tokens without copying anything.

    State: (section, position, digits, previous_id) where section 0 is the utterance part,
    1 the image part and 2 done; position indexes the literal being written or is a list
    marker; digits is the id being written.
    """

    _LITERALS = (
        (UTT_IDS_START + "[", "]" + UTT_IDS_END + ANSWER_SEPARATOR + IMG_IDS_START + "["),
        (None, "]" + IMG_IDS_END),
    )
    # list markers (positions >= 0 are offsets in a literal)
    _LIST_OPEN, _AFTER_ID, _AFTER_COMMA = -1, -2, -3

    def __init__(self, allowed_utterance_ids: Iterable[int], allowed_image_ids: Iterable[int]):
        self.allowed = (
            tuple(sorted({int(i) for i in allowed_utterance_ids})),
            tuple(sorted({int(i) for i in allowed_image_ids})),
        )
        self._strings = tuple(tuple(str(i) for i in ids) for ids in self.allowed)
        self.initial = ("head", 0, "", -1)

    def step(self, state: tuple | None, char: str) -> tuple | None:
        """The state after `char`, or None when `char` cannot continue a valid answer."""
        if state is None:
            return None
        where, pos, digits, prev = state
        if where == "head":  # writing "<|utt_ids_start|>["
            literal = self._LITERALS[0][0]
            if literal[pos] != char:
                return None
            return ("head", pos + 1, "", -1) if pos + 1 < len(literal) else (0, self._LIST_OPEN, "", -1)
        if where in ("mid", "tail"):
            literal = self._LITERALS[0][1] if where == "mid" else self._LITERALS[1][1]
            if literal[pos] != char:
                return None
            if pos + 1 < len(literal):
                return (where, pos + 1, "", -1)
            return (1, self._LIST_OPEN, "", -1) if where == "mid" else ("done", 0, "", -1)
        if where == "done":
            return None
        section = where
        if pos == self._LIST_OPEN or pos == self._AFTER_COMMA:
            if char == "]" and pos == self._LIST_OPEN:
                return self._close(section)
            if char.isdigit() and self._id_prefix_ok(section, char, prev):
                return (section, self._AFTER_ID, char, prev)
            return None
        if pos == self._AFTER_ID:
            if char.isdigit():
                candidate = digits + char
                return (section, self._AFTER_ID, candidate, prev) if self._id_prefix_ok(section, candidate, prev) else None
            if char in ",]" and self._id_complete(section, digits, prev):
                if char == "]":
                    return self._close(section)
                if self.allowed[section][-1] <= int(digits):  # no larger id left to list
                    return None
                return (section, "comma", "", int(digits))
            return None
        if pos == "comma" and char == " ":
            return (section, self._AFTER_COMMA, "", prev)
        return None

    def _close(self, section: int) -> tuple:
        # "]" consumed: continue with the rest of the literal after "]".
        return ("mid", 1, "", -1) if section == 0 else ("tail", 1, "", -1)

    def _id_prefix_ok(self, section: int, digits: str, prev: int) -> bool:
        if len(digits) > 1 and digits[0] == "0":
            return False
        return any(s.startswith(digits) and i > prev for i, s in zip(self.allowed[section], self._strings[section]))

    def _id_complete(self, section: int, digits: str, prev: int) -> bool:
        value = int(digits)
        return value > prev and str(value) == digits and value in self.allowed[section]

    def advance(self, state: tuple | None, text: str) -> tuple | None:
        for char in text:
            state = self.step(state, char)
            if state is None:
                return None
        return state

    def is_complete(self, state: tuple | None) -> bool:
        return state is not None and state[0] == "done"

    def accepts(self, text: str) -> bool:
        return self.is_complete(self.advance(self.initial, text))
