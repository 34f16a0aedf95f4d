"""`protocol.answer_regex` (the server-side answer grammar) against the strict parser and the
in-process `AnswerGrammar`, on many random answers."""

import re

from f2rvlm.core.protocol import AnswerGrammar, answer_regex, parse_answer, render_answer
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

TAGS = ("<|utt_ids_start|>", "<|utt_ids_end|>", ";", "<|img_ids_start|>", "<|img_ids_end|>")
SEPARATORS = (", ", ",", " , ", ",\n", ", \t", ",,", " ", "")
PADDING = ("", "", " ", "\n", "\t", "\r\n", "\x0b", "\u3000")
allowed_ids = st.sets(st.integers(0, 260), max_size=40)


@st.composite
def id_text(draw, allowed):
    """One id as a model might write it: mostly an allowed number, sometimes another or a malformed one."""
    value = draw(st.sampled_from(sorted(allowed))) if allowed and draw(st.integers(0, 4)) else draw(st.integers(0, 260))
    if draw(st.integers(0, 7)):
        return str(value)
    return draw(st.sampled_from([f"0{value}", f"-{value}", f"{value}.0", "٣", "1e2", "x", ""]))


@st.composite
def id_list(draw, allowed):
    ids = draw(st.lists(id_text(allowed), max_size=6))
    separator = ", " if draw(st.integers(0, 2)) else draw(st.sampled_from(SEPARATORS))
    padding = ("", "") if draw(st.integers(0, 2)) else (draw(st.sampled_from(PADDING)), draw(st.sampled_from(PADDING)))
    return padding[0] + separator.join(ids) + padding[1]


@st.composite
def completions(draw):
    """(allowed utterance ids, allowed image ids, a completion): mostly answer-shaped, some
    canonical, with random damage."""
    utterance_ids, image_ids = draw(allowed_ids), draw(allowed_ids)
    parts = [TAGS[0], f"[{draw(id_list(utterance_ids))}]", TAGS[1], TAGS[2], TAGS[3],
             f"[{draw(id_list(image_ids))}]", TAGS[4]]
    if draw(st.integers(0, 9)) == 0:  # break one piece
        k = draw(st.integers(0, len(parts) - 1))
        parts[k] = parts[k][:-1]
    text = "".join(parts)
    if not draw(st.integers(0, 3)):
        text = draw(st.sampled_from([" ", "ok "])) + text + draw(st.sampled_from(["", "\n", " ", "\n\n", "."]))
    return utterance_ids, image_ids, text


def _allowed(answer, utterance_ids, image_ids) -> bool:
    return set(answer.utterance_ids) <= set(utterance_ids) and set(answer.image_ids) <= set(image_ids)


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=completions())
@example(case=({0, 1, 2}, set(), "<|utt_ids_start|>[0, 2]<|utt_ids_end|>;<|img_ids_start|>[]<|img_ids_end|>\n"))
@example(case=({10}, {1}, "<|utt_ids_start|>[ 10 ,10]<|utt_ids_end|>;<|img_ids_start|>[1]<|img_ids_end|>"))
def test_regex_accepts_exactly_what_the_strict_parser_accepts(case):
    utterance_ids, image_ids, text = case
    parsed = parse_answer(text, "strict")
    expected = parsed is not None and _allowed(parsed, utterance_ids, image_ids)
    assert (re.fullmatch(answer_regex(utterance_ids, image_ids, canonical=False), text) is not None) == expected
    canonical = expected and render_answer(*parsed) == text
    assert (re.fullmatch(answer_regex(utterance_ids, image_ids), text) is not None) == canonical


@st.composite
def canonical_answer(draw):
    utterance_ids = draw(st.sets(st.integers(0, 1200), min_size=1, max_size=60))
    image_ids = draw(st.sets(st.integers(0, 150), max_size=20))
    utts = draw(st.lists(st.sampled_from(sorted(utterance_ids)), max_size=8))
    imgs = draw(st.lists(st.sampled_from(sorted(image_ids)), max_size=4)) if image_ids else []
    if draw(st.booleans()):
        utts, imgs = sorted(set(utts)), sorted(set(imgs))
    return utterance_ids, image_ids, render_answer(utts, imgs)


@settings(max_examples=400, deadline=None)
@given(case=canonical_answer())
def test_regex_and_in_process_grammar_agree(case):
    """`AnswerGrammar` (in-process) accepts exactly the regex's answers with ascending, unique ids."""
    utterance_ids, image_ids, text = case
    grammar = AnswerGrammar(utterance_ids, image_ids)
    matched = re.fullmatch(answer_regex(utterance_ids, image_ids), text) is not None
    answer = parse_answer(text, "strict")
    ascending = all(ids == sorted(set(ids)) for ids in answer)
    assert matched  # every canonical answer over allowed ids
    assert grammar.accepts(text) == (matched and ascending)


def test_regex_is_plain_and_compact():
    """No lookarounds, backreferences or non-capturing groups (portable to xgrammar / llguidance);
    a 1000-turn dialogue's regex stays small."""
    pattern = answer_regex(range(1000), range(200))
    assert not re.search(r"\(\?", pattern) and "\\d" not in pattern and "\\s" not in pattern
    assert len(pattern) < 400
    assert re.fullmatch(pattern, render_answer([0, 999], [199]))
    assert not re.fullmatch(pattern, render_answer([1000], []))
    empty = answer_regex([], [])
    assert re.fullmatch(empty, render_answer([], [])) and not re.fullmatch(empty, render_answer([0], []))
