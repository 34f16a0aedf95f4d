"""`parse_answer` in linear time (issue #10: the lenient and reasoning regexes took 26 s on a
272 KB string), with the same results as the released-tool regexes on every other input."""

from __future__ import annotations

import json
import re
import time

import pytest
from f2rvlm.core import protocol
from f2rvlm.core.protocol import (
    ANSWER_END,
    ANSWER_START,
    IMG_IDS_END,
    IMG_IDS_START,
    MAX_ANSWER_CHARS,
    THINK_END,
    THINK_START,
    UTT_IDS_END,
    UTT_IDS_START,
    Answer,
    parse_answer,
    render_answer,
)

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings
from hypothesis import strategies as st

# The patterns parse_answer used before (the released evaluation tool's), as the reference.
_OLD_REASONING = re.compile(
    re.escape(THINK_START) + r".*?" + re.escape(THINK_END) + r"\s*"
    + re.escape(ANSWER_START) + r"(.*?)" + re.escape(ANSWER_END) + r"\s*$", re.DOTALL)
_OLD_LENIENT = [re.compile(re.escape(a) + r"(.*?)" + re.escape(b), re.DOTALL)
                for a, b in ((UTT_IDS_START, UTT_IDS_END), (IMG_IDS_START, IMG_IDS_END))]


def old_parse(text, mode):
    if mode == "strict":
        return protocol._parse_strict(text)
    if mode == "reasoning":
        match = _OLD_REASONING.match(text.strip())
        return None if match is None else protocol._parse_strict(match.group(1).strip())
    lists = []
    for pattern in _OLD_LENIENT:
        match = pattern.search(text)
        parsed = protocol._json_int_list(match.group(1).strip()) if match else None
        lists.append(parsed or [])
    return Answer(*lists)


_pieces = st.sampled_from([THINK_START, THINK_END, ANSWER_START, ANSWER_END, UTT_IDS_START, UTT_IDS_END,
                           IMG_IDS_START, IMG_IDS_END, ";", "[", "]", "[1, 2]", "[]", "3", ",", " ", "\n", "\t",
                           "x", "<", ">", "\u3000", render_answer([1, 2], [0]), render_answer([], [])])


@settings(max_examples=600, deadline=None, database=None, derandomize=True)
@given(st.lists(_pieces, max_size=14).map("".join), st.sampled_from(protocol.PARSE_MODES))
def test_same_results_as_the_released_regexes(text, mode):
    assert parse_answer(text, mode) == old_parse(text, mode)


@pytest.mark.parametrize("mode", protocol.PARSE_MODES)
def test_normal_answers_unchanged(mode):
    answer = render_answer([3, 4, 9], [0, 2])
    text = f"{THINK_START}the lake turns{THINK_END}\n{ANSWER_START}{answer}{ANSWER_END}\n" if mode == "reasoning" \
        else f"sure: {answer} done" if mode == "lenient" else answer
    assert parse_answer(text, mode) == Answer([3, 4, 9], [0, 2]) == old_parse(text, mode)


@pytest.mark.parametrize("text", [
    THINK_START + (THINK_END + " " + ANSWER_START) * 17_000,         # many closings, no final </answer>
    THINK_START + THINK_END * 35_000 + ANSWER_START + ANSWER_END,      # ~270 KB
    UTT_IDS_START * 20_000 + IMG_IDS_START * 20_000,                 # opening tags never closed
    THINK_START + (" " * 50 + THINK_END) * 5_000 + ANSWER_END,
])
def test_adversarial_272_kb_strings_parse_in_linear_time(text):
    assert len(text) > 270_000
    start = time.perf_counter()
    for mode in protocol.PARSE_MODES:
        parse_answer(text, mode)
    assert time.perf_counter() - start < 0.5


def test_size_cap():
    huge = render_answer([1], [0]) + " " * MAX_ANSWER_CHARS
    assert parse_answer(huge, "strict") is None and parse_answer(huge, "reasoning") is None
    assert parse_answer(huge, "lenient") == Answer([], [])
    assert parse_answer(json.dumps([1]) * 10, "lenient") == Answer([], [])
