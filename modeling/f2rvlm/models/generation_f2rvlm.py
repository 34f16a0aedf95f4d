"""Grammar-constrained answer decoding and long-dialogue windows.

`AnswerConstraint` is a transformers `LogitsProcessor` that lets the model write only answers
accepted by `protocol.AnswerGrammar`: the answer always parses, every id exists in its dialogue
(or window), ids are unique and ascending. Tokens are checked through a trie of the decoded
strings of the tokens that can occur in an answer, walked together with the grammar automaton,
so a step costs a handful of dictionary look-ups rather than a pass over the vocabulary.

Why not xgrammar / outlines / lm-format-enforcer: the language here depends on each dialogue
(allowed ids, ascending order, no repeats — not a regular language one compiles once), and this
file ships inside Hub repos whose remote code may import only torch and transformers.

Imports torch, transformers and `.protocol` only (travels with the Hub remote code).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch
from transformers import LogitsProcessor

from ..core.protocol import (
    ANSWER_SEPARATOR,
    IMG_IDS_END,
    IMG_IDS_START,
    UTT_IDS_END,
    UTT_IDS_START,
    AnswerGrammar,
)

#: Every character an answer may contain.
ANSWER_ALPHABET = frozenset(
    "0123456789[], " + ANSWER_SEPARATOR + UTT_IDS_START + UTT_IDS_END + IMG_IDS_START + IMG_IDS_END
)


class _TrieNode:
    __slots__ = ("children", "token_ids")

    def __init__(self):
        self.children: dict[str, _TrieNode] = {}
        self.token_ids: list[int] = []


class AnswerVocabulary:
    """The tokens whose text can occur inside an answer, arranged as a character trie.

    Built once per tokenizer (cached on it): one `batch_decode` of the vocabulary.
    """

    def __init__(self, token_strings: dict[int, str], eos_token_ids: Iterable[int], vocab_size: int):
        self.root = _TrieNode()
        self.vocab_size = vocab_size
        self.eos_token_ids = sorted({int(i) for i in eos_token_ids})
        for token_id, text in token_strings.items():
            if not text or not set(text) <= ANSWER_ALPHABET:
                continue
            node = self.root
            for char in text:
                node = node.children.setdefault(char, _TrieNode())
            node.token_ids.append(token_id)

    @classmethod
    def from_tokenizer(cls, tokenizer) -> AnswerVocabulary:
        cached = getattr(tokenizer, "_f2rvlm_answer_vocabulary", None)
        if cached is not None:
            return cached
        vocab_size = len(tokenizer)
        texts = tokenizer.batch_decode([[i] for i in range(vocab_size)], skip_special_tokens=False,
                                       clean_up_tokenization_spaces=False)
        eos = {tokenizer.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|endoftext|>") if t in tokenizer.get_vocab()}
        if tokenizer.eos_token_id is not None:
            eos.add(tokenizer.eos_token_id)
        vocabulary = cls(dict(enumerate(texts)), eos, vocab_size)
        try:
            tokenizer._f2rvlm_answer_vocabulary = vocabulary
        except AttributeError:  # pragma: no cover - exotic tokenizer objects
            pass
        return vocabulary

    def allowed_tokens(self, grammar: AnswerGrammar, state: tuple | None) -> list[int]:
        """Ids of the tokens that keep the text a valid answer prefix (EOS once it is complete)."""
        if state is None:
            return list(self.eos_token_ids)
        allowed: list[int] = []
        stack = [(self.root, state)]
        while stack:
            node, node_state = stack.pop()
            for char, child in node.children.items():
                child_state = grammar.step(node_state, char)
                if child_state is None:
                    continue
                allowed.extend(child.token_ids)
                if child.children:
                    stack.append((child, child_state))
        if grammar.is_complete(state):
            allowed.extend(self.eos_token_ids)
        return allowed


class NonEmptyAnswerGrammar(AnswerGrammar):
    """`AnswerGrammar` whose utterance list may not close empty while it admits any id: head-guided
    decoding, where the head already found the candidates and the model only chooses among them
    (a small model's greedy first step otherwise prefers `]`, the single most frequent token after `[`).

    >>> NonEmptyAnswerGrammar([3], []).accepts("<|utt_ids_start|>[]<|utt_ids_end|>;<|img_ids_start|>[]<|img_ids_end|>")
    False
    >>> NonEmptyAnswerGrammar([], []).accepts("<|utt_ids_start|>[]<|utt_ids_end|>;<|img_ids_start|>[]<|img_ids_end|>")
    True
    """

    def step(self, state, char):
        if (state is not None and char == "]" and state[0] == 0 and state[1] == self._LIST_OPEN
                and self.allowed[0]):
            return None
        return super().step(state, char)


class AnswerConstraint(LogitsProcessor):
    """Masks the logits so that row `b` can only continue a valid answer for `grammars[b]`.

    >>> constraint = AnswerConstraint(tokenizer, [AnswerGrammar(range(25), range(3))], prompt_length)  # doctest: +SKIP
    >>> model.generate(**inputs, logits_processor=LogitsProcessorList([constraint]))  # doctest: +SKIP

    Args:
        tokenizer: the model's tokenizer (answer tags may be single added tokens or plain text).
        grammars: one `AnswerGrammar` per batch row (the allowed ids of that row's dialogue).
        prompt_length: length of the (left-padded) prompt; generated tokens start there.
        num_return_sequences: rows per grammar (GRPO-style groups share one grammar).
    """

    def __init__(self, tokenizer, grammars: Sequence[AnswerGrammar], prompt_length: int, num_return_sequences: int = 1):
        self.vocabulary = AnswerVocabulary.from_tokenizer(tokenizer)
        self.grammars = [g for g in grammars for _ in range(num_return_sequences)]
        self.prompt_length = prompt_length
        self.states: list[tuple | None] = [g.initial for g in self.grammars]
        # Allowed-token cache per state, shared by the rows whose grammars admit the same ids
        # (GRPO groups, repeated dialogues): the trie walk is the costly part of a step.
        caches: dict[tuple, dict] = {}
        self._cache: list[dict] = [caches.setdefault((type(g), g.allowed), {}) for g in self.grammars]
        self._text_of = self._build_text_lookup()

    def _build_text_lookup(self) -> dict[int, str]:
        lookup: dict[int, str] = {}
        stack = [(self.vocabulary.root, "")]
        while stack:
            node, prefix = stack.pop()
            for char, child in node.children.items():
                for token_id in child.token_ids:
                    lookup[token_id] = prefix + char
                stack.append((child, prefix + char))
        return lookup

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        batch_size = input_ids.shape[0]
        if batch_size != len(self.grammars):
            raise ValueError(f"AnswerConstraint was built for {len(self.grammars)} rows, got a batch of {batch_size}")
        generated = input_ids.shape[1] - self.prompt_length
        last_tokens = input_ids[:, -1].tolist() if generated > 0 else None  # one device->host copy
        blocked_rows = []
        for row in range(batch_size):
            grammar = self.grammars[row]
            if last_tokens is not None:
                state = self.states[row]
                if state is not None and not grammar.is_complete(state):
                    text = self._text_of.get(last_tokens[row])
                    self.states[row] = None if text is None else grammar.advance(state, text)
                else:
                    self.states[row] = None  # finished: only EOS / padding from now on
            state = self.states[row]
            blocked = self._cache[row].get(state)
            if blocked is None:
                # A boolean "blocked" row per state, kept on the device: a step is then one
                # masked_fill (plus a stack for batches), which matters where a decode step is ~ms (GPU).
                allowed = self.vocabulary.allowed_tokens(grammar, state) or self.vocabulary.eos_token_ids
                blocked = torch.ones(scores.shape[-1], dtype=torch.bool, device=scores.device)
                blocked[torch.tensor(allowed, dtype=torch.long, device=scores.device)] = False
                self._cache[row][state] = blocked
            blocked_rows.append(blocked)
        blocked = blocked_rows[0].unsqueeze(0) if batch_size == 1 else torch.stack(blocked_rows)
        return scores.masked_fill(blocked, -math.inf)


def max_answer_length(num_utterances: int, num_images: int) -> int:
    """Characters of the longest possible answer (an upper bound on its tokens)."""
    def list_length(n: int) -> int:
        return 2 + sum(len(str(i)) for i in range(n)) + 2 * max(n - 1, 0)
    fixed = len(UTT_IDS_START + UTT_IDS_END + ANSWER_SEPARATOR + IMG_IDS_START + IMG_IDS_END)
    return fixed + list_length(num_utterances) + list_length(num_images)


# ----------------------------------------------------------------------------------------------
# Long dialogues: windows of turns (docs/protocol.md §8)
# ----------------------------------------------------------------------------------------------
def plan_windows(line_token_counts: Sequence[int], budget: int, overlap: int = 4) -> list[tuple[int, int]]:
    """Split turns into windows `[start, end)` whose token counts fit `budget`.

    Each window after the first re-reads the last `overlap` turns of the previous one, so a
    fragment crossing a boundary is seen whole at least once. A single turn larger than the
    budget is an error (it could only be truncated, and we never truncate silently).

    >>> plan_windows([10] * 10, budget=40, overlap=1)
    [(0, 4), (3, 7), (6, 10)]
    """
    n = len(line_token_counts)
    if n == 0:
        return []
    for i, count in enumerate(line_token_counts):
        if count > budget:
            raise ValueError(f"utterance {i} alone needs {count} tokens, more than the model's budget of {budget}")
    windows: list[tuple[int, int]] = []
    start = 0
    while True:
        end, used = start, 0
        while end < n and used + line_token_counts[end] <= budget:
            used += line_token_counts[end]
            end += 1
        windows.append((start, end))
        if end >= n:
            return windows
        start = max(end - overlap, start + 1)


def merge_window_answers(answers: Iterable[tuple[Sequence[int], Sequence[int], int]]) -> tuple[list[int], list[int]]:
    """Union of window answers: (global utterance ids, window image ids, window image offset)."""
    utterance_ids: set[int] = set()
    image_ids: set[int] = set()
    for utts, imgs, image_offset in answers:
        utterance_ids.update(int(i) for i in utts)
        image_ids.update(image_offset + int(i) for i in imgs)
    return sorted(utterance_ids), sorted(image_ids)
