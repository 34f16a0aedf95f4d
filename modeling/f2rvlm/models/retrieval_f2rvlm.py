"""Retrieval orchestration: dialogue + query -> `RetrievalResult`, for every F2RVLM model.

The model classes keep the network (backbone, heads, `forward`); this file keeps what `retrieve`
does around it: the mode (from `registry_f2rvlm`), windows for long dialogues (answer room per
window), length-sorted batches, grammar-constrained decoding, head scores, and the union of the
windows' answers mapped back to global ids. Images are decoded once per call. Imports torch,
transformers and the sibling F2RVLM files only (travels with the Hub remote code).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from transformers import LogitsProcessorList

from ..core.dialogue import as_dialogue
from ..core.protocol import AnswerGrammar, contiguous_spans, parse_answer, render_answer
from .generation_f2rvlm import (
    AnswerConstraint,
    NonEmptyAnswerGrammar,
    max_answer_length,
    merge_window_answers,
    plan_windows,
)
from .registry_f2rvlm import get_mode
from .scorer_f2rvlm import ScorerSettings, select, select_with_head


@dataclass
class RetrievalResult:
    """The retrieved fragment of one (dialogue, query) pair.

    Args:
        utterance_ids: sorted global utterance ids.
        image_ids: sorted global image ids.
        spans: contiguous runs of `utterance_ids` as inclusive `(first, last)` pairs.
        text: the raw answer text (one per window, joined by newlines, for windowed dialogues).
        mode: "generate", "guided" or "tagging".
        num_windows: how many windows the dialogue was split into (1 when it fit).
        scores: head probabilities, `{"utterances": {id: p}, "images": {id: p}}` (head modes only).
    """

    utterance_ids: list[int]
    image_ids: list[int]
    spans: list[tuple[int, int]]
    text: str
    mode: str
    num_windows: int = 1
    scores: dict | None = None

    def to_dict(self) -> dict:
        out = asdict(self)
        out["spans"] = [list(span) for span in self.spans]
        return out



@torch.no_grad()
def retrieve_batch(
    model,
    pairs: Sequence[tuple[Any, str]],
    processor=None,
    batch_size: int = 8,
    *,
    mode: str | None = None,
    template: str | None = None,
    constrained: bool = True,
    threshold: float | None = None,
    max_new_tokens: int | None = None,
    show_progress: bool = False,
    trust_remote_code: bool | None = None,
) -> list[RetrievalResult]:
    """`retrieve` over many (dialogue, query) pairs, batched by prompt length.

    Windows of all pairs are sorted by length and run `batch_size` at a time with left
    padding; results come back in input order and equal one-by-one results.

    Args:
        model: an F2RVLM model.
        pairs: (dialogue, query) pairs; a dialogue is an `f2rvlm.Dialogue` or its plain-data form
            (`{"utterances": [...]}`).
        processor: an `F2RVLMProcessor`; None loads the one saved beside the model (once per folder).
        batch_size: windows per forward / generate call.
        mode: a name in `registry_f2rvlm.RETRIEVAL_MODES`; None uses `config.default_retrieval_mode`.
        template: prompt template name; defaults to `config.prompt_template`.
        constrained: grammar-constrained decoding (generating modes); False parses leniently.
        threshold: head probability threshold; defaults to `config.retrieval_threshold`.
        max_new_tokens: generation budget; defaults to the longest possible answer.
        show_progress: a progress bar over batches.
        trust_remote_code: only used when `processor` is None, for loading the saved processor:
            True runs the folder's own processor code (`AutoProcessor`, `trust_remote_code=True`);
            False uses this module's `F2RVLMProcessor` class and runs no code from the folder.
            None (default): True only when the model itself was loaded from remote code (its
            loader already trusted that folder), else False. Never decided on the caller's behalf.
    """
    mode = mode or getattr(model.config, "default_retrieval_mode", None) or "generate"
    scorer = getattr(model, "text_scorer", None)
    if get_mode(mode).needs_relevance_head and model.relevance_head is None and scorer is None:
        raise ValueError(f"mode {mode!r} needs a relevance head or a text scorer, and this model has neither "
                         "(config.relevance_head=False, no config.text_scorer); use mode='generate'")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if mode == "tagging" and model.device.type == "cpu":
        # Measured (benchmarks/RESULTS.md): with no decoding to share, padded CPU batches only add
        # padding and push attention off the fast causal path; results are identical either way.
        batch_size = 1
    if processor is None:
        processor = _load_processor(getattr(model, "name_or_path", "") or "",
                                     _trust_remote_code(model, trust_remote_code))
    template = template or model.config.prompt_template
    threshold = model.config.retrieval_threshold if threshold is None else threshold

    # 1. windows of every pair
    jobs = []  # (pair index, window dialogue, image offset, query, prompt length)
    num_windows = []
    for index, (dialogue, query) in enumerate(pairs):
        dialogue = _decoded(as_dialogue(dialogue))
        windows = _plan_windows(model, dialogue, query, processor, template)
        num_windows.append(len(windows))
        for window, image_offset, length in windows:
            jobs.append((index, window, image_offset, query, length))

    # 2. length-sorted batches (stable, so ties keep input order: deterministic)
    order = sorted(range(len(jobs)), key=lambda j: jobs[j][4])
    answers: list[tuple[str, list[int], list[int], dict | None]] = [None] * len(jobs)  # type: ignore
    batches = [order[i: i + batch_size] for i in range(0, len(order), batch_size)]
    iterator = batches
    if show_progress:
        from tqdm.auto import tqdm

        iterator = tqdm(batches, desc="retrieving", unit="batch")
    for batch in iterator:
        rows = [(jobs[j][1], jobs[j][3]) for j in batch]
        for j, answer in zip(batch, _answer_batch(model, rows, processor, mode, template, constrained, threshold,
                                                      max_new_tokens)):
            answers[j] = answer

    # 3. per pair: union of the windows' answers
    results = []
    for index in range(len(pairs)):
        mine = [(jobs[j], answers[j]) for j in range(len(jobs)) if jobs[j][0] == index]
        utterance_ids, image_ids = merge_window_answers(
            (answer[1], answer[2], job[2]) for job, answer in mine
        )
        scores = None
        if mode != "generate":
            scores = {"utterances": {}, "images": {}}
            for job, answer in mine:
                for key in ("utterances", "images"):
                    offset = job[2] if key == "images" else 0
                    for i, p in answer[3][key].items():
                        scores[key][i + offset] = max(p, scores[key].get(i + offset, float("-inf")))
        results.append(RetrievalResult(
            utterance_ids=utterance_ids, image_ids=image_ids, spans=contiguous_spans(utterance_ids),
            text="\n".join(answer[0] for _, answer in mine), mode=mode, num_windows=num_windows[index],
            scores=scores,
        ))
    return results

def _plan_windows(model, dialogue, query, processor, template):
    """[(window dialogue, image offset, prompt tokens)]: the whole dialogue when it fits.

    Answer room is reserved per window, as many turns as fit: each turn costs its line's tokens
    plus what its ids add to the longest answer the window could give (an upper bound), so a long
    chat is cut into a few full windows, never one-turn ones.
    """
    budget = model.config.max_context_tokens
    length = processor.count_prompt_tokens(dialogue, query, template)
    answer_fixed = max_answer_length(0, 0) // 2 + 8
    if length + max_answer_length(len(dialogue), dialogue.num_images) // 2 + 8 <= budget:
        return [(dialogue, 0, length)]
    line_counts = processor.count_line_tokens(dialogue)
    overhead = length - sum(line_counts)
    if overhead + answer_fixed >= budget:
        raise ValueError(f"the prompt without dialogue lines needs {overhead} tokens, "
                         f"more than max_context_tokens={budget}")
    # answer characters per turn: its id and ", " (and the same for each image), ~2 chars a token
    image_digits = len(str(max(dialogue.num_images - 1, 0)))
    costs = [count + (len(str(utt_id)) + 2 + len(utt.images) * (image_digits + 2) + 1) // 2
             for count, utt_id, utt in zip(line_counts, dialogue.utterance_ids, dialogue.utterances)]
    windows = []
    for start, end in plan_windows(costs, budget - overhead - answer_fixed, model.config.window_overlap):
        window, image_offset = dialogue.window(start, end)
        windows.append((window, image_offset, processor.count_prompt_tokens(window, query, template)))
    return windows


def _answer_batch(model, rows, processor, mode, template, constrained, threshold, max_new_tokens):
    """[(text, global utterance ids, window image ids, window scores)] for one batch of windows."""
    dialogues = [d for d, _ in rows]
    scorer_scores = _scorer_scores(model, rows, processor, mode)
    settings = _scorer_settings(model.config)
    with_head = scorer_scores is not None and settings.head_margin is not None and model.relevance_head is not None
    if mode == "tagging" and scorer_scores is not None and not with_head:  # the scorer answers alone: no VLM pass
        results = []
        for scores in scorer_scores:
            utts, imgs = select(scores, settings)
            results.append((_render(utts, imgs), utts, imgs, scores))
        return results
    inputs = processor.build_inputs(rows, template=template, return_relevance=model.relevance_head is not None)
    positions = inputs.pop("relevance_positions", None)
    position_map = inputs.pop("relevance_targets", None)
    inputs = inputs.to(model.device)

    probs = None
    if mode in ("tagging", "guided") and (scorer_scores is None or with_head) or (mode == "generate" and with_head):
        out = model(**inputs, relevance_positions=positions.to(model.device), logits_to_keep=1)
        probs = torch.sigmoid(out.relevance_logits.float()).cpu()  # (batch, num_positions)
    if with_head:  # the scorer's selection, extended by the head's picks it does not veto
        selections = [select_with_head(scores, _position_scores(position_map[b], probs[b]), threshold, settings)
                      for b, scores in enumerate(scorer_scores)]
        if mode == "tagging":
            return [(_render(u, i), u, i, scores) for (u, i), scores in zip(selections, scorer_scores)]

    results = []
    if mode == "tagging":
        for b, dialogue in enumerate(dialogues):
            scores = _position_scores(position_map[b], probs[b])
            utts = sorted(i for i, p in scores["utterances"].items() if p > threshold)
            imgs = sorted(i for i, p in scores["images"].items() if p > threshold)
            results.append((_render(utts, imgs), utts, imgs, scores))
        return results

    grammars, window_scores = [], []
    for b, dialogue in enumerate(dialogues):
        utt_ids, img_ids = dialogue.utterance_ids, list(range(dialogue.num_images))
        scores = None
        if scorer_scores is not None:
            scores = scorer_scores[b]
            if with_head:
                utt_ids, img_ids = selections[b]
            elif mode == "guided":
                utt_ids, img_ids = select(scores, settings)
            else:  # generate: the VLM picks among the scorer's shortlist
                utt_ids, img_ids = _shortlist(scores, dialogue, model.config.generate_shortlist)
        elif mode == "guided":
            scores = _position_scores(position_map[b], probs[b])
            utt_ids = [i for i in utt_ids if scores["utterances"].get(i, 0.0) > threshold]
            img_ids = [i for i in img_ids if scores["images"].get(i, 0.0) > threshold]
        # guided answers never come back empty; nor does generation under the scorer's choices when the
        # scorer found a match (whether anything matches is the scorer's call, which ids the VLM's)
        non_empty = mode == "guided" or (scores is not None and scorer_scores is not None and bool(utt_ids or img_ids))
        grammars.append(NonEmptyAnswerGrammar(utt_ids, img_ids) if non_empty else AnswerGrammar(utt_ids, img_ids))
        window_scores.append(scores)

    prompt_length = inputs["input_ids"].shape[1]
    budget = max_new_tokens or max(max_answer_length(len(d), d.num_images) for d in dialogues) + 1
    processors = LogitsProcessorList()
    if constrained or mode == "guided" or scorer_scores is not None:
        processors.append(AnswerConstraint(processor.tokenizer, grammars, prompt_length))
    tokenizer = processor.tokenizer
    generated = model.generate(
        **inputs, max_new_tokens=budget, do_sample=False, num_beams=1, logits_processor=processors,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=_eos_ids(tokenizer),
        temperature=None, top_p=None, top_k=None,
    )
    texts = tokenizer.batch_decode(generated[:, prompt_length:], skip_special_tokens=True,
                                   clean_up_tokenization_spaces=False)
    for b, (dialogue, text) in enumerate(zip(dialogues, texts)):
        text = text.strip()
        answer = parse_answer(text, "strict") if constrained else None
        if answer is None:
            answer = parse_answer(text, "lenient")
        valid_utts = set(dialogue.utterance_ids)
        utts = sorted({i for i in answer.utterance_ids if i in valid_utts})
        imgs = sorted({i for i in answer.image_ids if 0 <= i < dialogue.num_images})
        results.append((text, utts, imgs, window_scores[b]))
    return results



def _scorer_settings(config) -> ScorerSettings:
    return ScorerSettings(config.text_scorer_speaker_boost, config.text_scorer_margin, config.text_scorer_min_score,
                          config.text_scorer_max_length, config.text_scorer_strip_names,
                          config.text_scorer_bm25_weight, getattr(config, "text_scorer_head_margin", None),
                          getattr(config, "text_scorer_head_gate", None))


def _scorer_scores(model, rows, processor, mode) -> list[dict] | None:
    """Per window, the text scorer's scores when this mode reads them (else None)."""
    scorer = getattr(model, "text_scorer", None)
    uses_scorer = model.config.generate_shortlist or (getattr(model.config, "text_scorer_head_margin", None) is not None
                                                      and model.relevance_head is not None)
    if scorer is None or (mode == "generate" and not uses_scorer):
        return None
    tokenizer = getattr(processor, "scorer_tokenizer", None)
    if tokenizer is None:
        raise ValueError("this model carries a text scorer but the processor has no scorer_tokenizer "
                         "(load the processor from the model folder: it reads the text_scorer/ subfolder)")
    settings = _scorer_settings(model.config)
    return [scorer.score_dialogue(dialogue, query, tokenizer, settings) for dialogue, query in rows]


def _shortlist(scores: dict, dialogue, k: int) -> tuple[list[int], list[int]]:
    """The k best-scored utterances and the images they carry (what generation may answer)."""
    best = sorted(scores["utterances"], key=lambda i: -scores["utterances"][i])[:k]
    hosts = dialogue.image_hosts
    return sorted(best), [j for j, host in enumerate(hosts) if host in best]


def _position_scores(targets, probs: torch.Tensor) -> dict:
    """{"utterances": {global id: p}, "images": {window image id: p}} from a row's position map."""
    scores: dict = {"utterances": {}, "images": {}}
    for k, (kind, item_id) in enumerate(targets):
        scores["utterances" if kind == "utterance" else "images"][item_id] = float(probs[k])
    return scores


def _render(utterance_ids, image_ids) -> str:
    return render_answer(utterance_ids, image_ids)


def _decoded(dialogue):
    """The dialogue with every image decoded once: windows, token counts and inputs reuse it."""
    if not dialogue.num_images:
        return dialogue
    from dataclasses import replace

    from ..core.dialogue import DialogueImage

    utterances = [replace(u, images=[DialogueImage(img.load(), caption=img.caption, name=img.name) for img in u.images])
                  for u in dialogue.utterances]
    return replace(dialogue, utterances=utterances)


def _eos_ids(tokenizer) -> list[int]:
    ids = {tokenizer.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|endoftext|>") if t in tokenizer.get_vocab()}
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return sorted(ids)


def _trust_remote_code(model, trust_remote_code: bool | None) -> bool:
    """The caller's choice; by default True only for a model whose own class came from remote code
    (`transformers_modules.*`: whoever loaded it chose to trust that folder's code)."""
    if trust_remote_code is not None:
        return bool(trust_remote_code)
    return type(model).__module__.startswith("transformers_modules")


@functools.lru_cache(maxsize=8)
def _load_processor(source: str, trust_remote_code: bool = False):
    """The processor saved beside a model folder, loaded once per folder (not on every retrieve):
    with `trust_remote_code` through `AutoProcessor` (the folder's code), else with this module's
    own `F2RVLMProcessor` class (no code from the folder runs)."""
    if not source:
        raise ValueError("retrieve needs a processor: the model was built in memory (no name_or_path to load one from)")
    if trust_remote_code:
        from transformers import AutoProcessor

        return AutoProcessor.from_pretrained(source, trust_remote_code=True)
    from .processing_f2rvlm import F2RVLMProcessor

    return F2RVLMProcessor.from_pretrained(source)
