"""Constrained decoding (AnswerConstraint over AnswerGrammar) and window planning."""

import random

import pytest
import torch
from f2rvlm.core.protocol import PROTOCOL_TAGS, AnswerGrammar, parse_answer, render_answer
from f2rvlm.models.generation_f2rvlm import (
    AnswerConstraint,
    AnswerVocabulary,
    max_answer_length,
    merge_window_answers,
    plan_windows,
)


class CharTokenizer:
    """A stand-in tokenizer: tags are single tokens, other tokens are characters and a few merges."""

    def __init__(self):
        # Like a byte-level vocabulary: every character is a token; tags and a few merges on top.
        chars = sorted(set("".join(PROTOCOL_TAGS)) | set("0123456789[], ;abc\nx"))
        pieces = ["<|im_end|>", "<|endoftext|>", *PROTOCOL_TAGS, *chars, ", ", "12", "]<"]
        self.vocab = {piece: i for i, piece in enumerate(dict.fromkeys(pieces))}
        self.eos_token_id = self.vocab["<|im_end|>"]

    def __len__(self):
        return len(self.vocab)

    def get_vocab(self):
        return dict(self.vocab)

    def convert_tokens_to_ids(self, token):
        return self.vocab[token]

    def batch_decode(self, ids, **_):
        inverse = {i: t for t, i in self.vocab.items()}
        return ["".join(inverse[i] for i in row) for row in ids]


def _generate(tokenizer, grammar, seed, steps=200):
    """Random 'model': uniform scores, sampled under the constraint."""
    generator = torch.Generator().manual_seed(seed)
    constraint = AnswerConstraint(tokenizer, [grammar], prompt_length=1)
    ids = torch.zeros((1, 1), dtype=torch.long)
    for _ in range(steps):
        scores = constraint(ids, torch.randn((1, len(tokenizer)), generator=generator))
        next_id = torch.multinomial(torch.softmax(scores, -1), 1)
        ids = torch.cat([ids, next_id], dim=1)
        if int(next_id) in constraint.vocabulary.eos_token_ids:
            break
    return tokenizer.batch_decode([ids[0, 1:-1].tolist()])[0], int(ids[0, -1])


@pytest.mark.parametrize("seed", range(30))
def test_random_scores_always_give_a_valid_answer(seed):
    tokenizer = CharTokenizer()
    rng = random.Random(seed)
    num_utts, num_imgs = rng.randint(1, 30), rng.randint(0, 5)
    text, last = _generate(tokenizer, AnswerGrammar(range(num_utts), range(num_imgs)), seed)
    assert last in (tokenizer.vocab["<|im_end|>"], tokenizer.vocab["<|endoftext|>"])
    answer = parse_answer(text, "strict")
    assert answer is not None, text
    assert all(0 <= i < num_utts for i in answer.utterance_ids)
    assert all(0 <= i < num_imgs for i in answer.image_ids)
    assert answer.utterance_ids == sorted(set(answer.utterance_ids))
    assert answer.image_ids == sorted(set(answer.image_ids))


def test_allowed_subset_is_respected():
    tokenizer = CharTokenizer()
    for seed in range(10):
        text, _ = _generate(tokenizer, AnswerGrammar([3, 12, 17], [1]), seed)
        answer = parse_answer(text)
        assert set(answer.utterance_ids) <= {3, 12, 17} and set(answer.image_ids) <= {1}


def test_multi_character_tokens_are_admitted_when_valid():
    tokenizer = CharTokenizer()
    vocabulary = AnswerVocabulary.from_tokenizer(tokenizer)
    grammar = AnswerGrammar(range(20), [])
    state = grammar.advance(grammar.initial, "<|utt_ids_start|>[")
    allowed = {tokenizer.batch_decode([[i]])[0] for i in vocabulary.allowed_tokens(grammar, state)}
    assert {"1", "12", "]"} <= allowed and "," not in allowed and ", " not in allowed
    state = grammar.advance(state, "12")
    allowed = {tokenizer.batch_decode([[i]])[0] for i in vocabulary.allowed_tokens(grammar, state)}
    assert allowed == {",", ", ", "]", "]<"}  # "12" is complete: close the list or go on
    assert grammar.accepts(render_answer([12, 13], []))


def test_finished_rows_only_get_eos():
    tokenizer = CharTokenizer()
    grammar = AnswerGrammar([0], [])
    answer_ids = [tokenizer.vocab[t] for t in ["<|utt_ids_start|>", "[", "0", "]", "<|utt_ids_end|>", ";",
                                               "<|img_ids_start|>", "[", "]", "<|img_ids_end|>"]]
    constraint = AnswerConstraint(tokenizer, [grammar], prompt_length=1)
    ids = torch.zeros((1, 1), dtype=torch.long)
    for token in answer_ids:
        constraint(ids, torch.zeros((1, len(tokenizer))))
        ids = torch.cat([ids, torch.tensor([[token]])], dim=1)
    scores = constraint(ids, torch.zeros((1, len(tokenizer))))
    assert torch.isfinite(scores[0]).nonzero().flatten().tolist() == [tokenizer.vocab["<|im_end|>"], tokenizer.vocab["<|endoftext|>"]]


def test_plan_windows_cover_every_turn_with_overlap():
    windows = plan_windows([5, 7, 3, 9, 2, 8, 4, 6, 1, 5], budget=15, overlap=1)
    covered = set()
    for start, end in windows:
        covered.update(range(start, end))
    assert covered == set(range(10))
    assert all(windows[i + 1][0] == windows[i][1] - 1 for i in range(len(windows) - 1))


def test_plan_windows_never_truncates():
    with pytest.raises(ValueError, match="utterance 2 alone needs 99 tokens"):
        plan_windows([1, 1, 99], budget=50)


def test_merge_maps_image_ids_back():
    assert merge_window_answers([([1, 2], [0], 0), ([2, 7], [1], 3)]) == ([1, 2, 7], [0, 4])


def test_max_answer_length_bounds_render():
    assert len(render_answer(range(12), range(3))) == max_answer_length(12, 3)
