"""F2RVLM models: Qwen-VL `...ForConditionalGeneration` subclasses with retrieval and heads.

Each class SUBCLASSES its backbone (a wrapper breaks TRL, which reads `generation_config` and
`config.image_token_id` off the model). A shared mixin adds:

- an optional relevance head: one logit per scoring position (the last token of each utterance
  line and each image's `<|vision_end|>` token), trained with BCE beside the answer loss;
- an optional topic head: topic logits at the utterance scoring positions, cross-entropy where
  topic labels exist;
- `retrieve` / `retrieve_batch`: dialogue + query -> `RetrievalResult`, by grammar-constrained
  generation, head tagging, or head-guided generation, with windows for long dialogues.

A checkpoint without heads (the released one) loads unchanged. `forward` takes the standard
kwargs, so TRL's SFT/GRPO trainers work as with the backbone; the head kwargs are optional.
Imports torch, transformers and the sibling F2RVLM files only (travels with the Hub remote code).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import (
    LogitsProcessorList,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2VLForConditionalGeneration,
    Qwen3VLForConditionalGeneration,
)
from transformers.modeling_outputs import ModelOutput

from .configuration_f2rvlm import F2RVLMQwen2_5_VLConfig, F2RVLMQwen2VLConfig, F2RVLMQwen3VLConfig
from .dialogue import as_dialogue
from .generation_f2rvlm import (
    AnswerConstraint,
    NonEmptyAnswerGrammar,
    max_answer_length,
    merge_window_answers,
    plan_windows,
)
from .protocol import AnswerGrammar, contiguous_spans, parse_answer

RETRIEVAL_MODES = ("generate", "guided", "tagging")



# ----------------------------------------------------------------------------------------------
# Outputs
# ----------------------------------------------------------------------------------------------
@dataclass
class F2RVLMOutput(ModelOutput):
    """Output of `F2RVLM*ForConditionalGeneration.forward`.

    Args:
        loss: answer loss + `relevance_loss_weight * relevance_loss + topic_loss_weight * topic_loss`.
        logits: `(batch, seq_len, vocab)` LM logits (None with `answer_only_logits` training).
        cache, hidden_states, attentions: as the backbone returns them.
        lm_loss, relevance_loss, topic_loss: the parts of `loss` (scalars).
        relevance_logits: `(batch, num_positions)` head logits at `relevance_positions`.
        topic_logits: `(batch, num_positions, num_topics)` topic logits at `relevance_positions`.
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    cache: Any = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None
    lm_loss: torch.FloatTensor | None = None
    relevance_loss: torch.FloatTensor | None = None
    topic_loss: torch.FloatTensor | None = None
    relevance_logits: torch.FloatTensor | None = None
    topic_logits: torch.FloatTensor | None = None


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


# ----------------------------------------------------------------------------------------------
# The shared mixin
# ----------------------------------------------------------------------------------------------
class F2RVLMMixin:
    """Heads, the head-aware `forward` and the retrieval API, shared by every backbone family."""

    def _init_f2rvlm_heads(self) -> None:
        hidden = self.config.get_text_config().hidden_size
        width = 3 * hidden if getattr(self.config, "relevance_query_features", False) else hidden
        self.relevance_head = nn.Linear(width, 1) if self.config.relevance_head else None
        self.topic_head = nn.Linear(hidden, self.config.num_topics) if self.config.num_topics else None

    # -- forward ---------------------------------------------------------------------------
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Any = None,
        inputs_embeds: torch.FloatTensor | None = None,
        labels: torch.LongTensor | None = None,
        pixel_values: torch.Tensor | None = None,
        pixel_values_videos: torch.Tensor | None = None,
        image_grid_thw: torch.LongTensor | None = None,
        video_grid_thw: torch.LongTensor | None = None,
        mm_token_type_ids: torch.IntTensor | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        mm_encoder_outputs: Any = None,
        relevance_positions: torch.LongTensor | None = None,
        relevance_labels: torch.FloatTensor | None = None,
        topic_labels: torch.LongTensor | None = None,
        query_topic_labels: torch.LongTensor | None = None,
        **kwargs,
    ) -> F2RVLMOutput:
        r"""The backbone forward plus the optional heads.

        relevance_positions (`torch.LongTensor` of shape `(batch, num_positions)`, *optional*):
            Token indices of the scoring positions (line ends and `<|vision_end|>`s), `-1` for
            padding. `F2RVLMProcessor` builds them (`return_relevance=True` or its SFT collator).
        relevance_labels (`torch.FloatTensor` of shape `(batch, num_positions)`, *optional*):
            1 when the utterance/image is in the gold fragment, 0 when not, -100 to ignore.
        topic_labels (`torch.LongTensor` of shape `(batch, num_positions)`, *optional*):
            Topic index of each utterance position, -100 where unknown (and for images).
        query_topic_labels (`torch.LongTensor` of shape `(batch,)`, *optional*):
            Topic index of each row's gold fragment, -100 when none (`relevance_query_features`).
        """
        if (relevance_labels is not None or topic_labels is not None) and relevance_positions is None:
            raise ValueError("relevance_labels/topic_labels need relevance_positions")
        if relevance_labels is not None and self.relevance_head is None:
            raise ValueError("relevance_labels given but the model has no relevance head (config.relevance_head=False)")
        if topic_labels is not None and self.topic_head is None:
            raise ValueError("topic_labels given but the model has no topic head (config.num_topics=0)")

        outputs = self.model(
            input_ids=input_ids,
            pixel_values=pixel_values,
            pixel_values_videos=pixel_values_videos,
            image_grid_thw=image_grid_thw,
            video_grid_thw=video_grid_thw,
            mm_token_type_ids=mm_token_type_ids,
            position_ids=position_ids,
            attention_mask=attention_mask,
            cache=cache,
            inputs_embeds=inputs_embeds,
            mm_encoder_outputs=mm_encoder_outputs,
            **kwargs,
        )
        hidden_states = outputs.last_hidden_state  # (batch, seq_len, hidden)
        vocab_size = self.config.get_text_config().vocab_size

        logits, lm_loss = None, None
        if labels is not None and self.config.answer_only_logits:
            # Project only the supervised positions: (num_supervised, hidden) -> (num_supervised, vocab)
            shift_labels = labels[:, 1:]
            mask = shift_labels != -100
            selected = hidden_states[:, :-1][mask]
            lm_loss = F.cross_entropy(self.lm_head(selected).float(), shift_labels[mask], reduction="sum")
            num_items = kwargs.get("num_items_in_batch")
            denominator = mask.sum() if num_items is None else torch.as_tensor(num_items, device=lm_loss.device)
            lm_loss = lm_loss / denominator.clamp(min=1)
        else:
            if isinstance(logits_to_keep, int):
                kept = hidden_states[:, -logits_to_keep:] if logits_to_keep else hidden_states
            else:
                kept = hidden_states[:, logits_to_keep]
            logits = self.lm_head(kept)
            if labels is not None:
                lm_loss = self.loss_function(logits=logits, labels=labels, vocab_size=vocab_size, **kwargs)

        relevance_logits = topic_logits = relevance_loss = topic_loss = None
        if relevance_positions is not None and (self.relevance_head is not None or self.topic_head is not None):
            gathered = gather_positions(hidden_states, relevance_positions)  # (batch, num_positions, hidden)
            query_state = self._query_state(input_ids, hidden_states)  # (batch, hidden) or None
            if self.relevance_head is not None:
                features = gathered
                if getattr(self.config, "relevance_query_features", False):
                    if query_state is None:
                        raise ValueError("relevance_query_features needs input_ids with the query_end_token_id token")
                    query = query_state.unsqueeze(1).expand_as(gathered)
                    features = torch.cat([gathered, query, gathered * query], dim=-1)
                relevance_logits = self.relevance_head(features).squeeze(-1)  # (batch, num_positions)
            if self.topic_head is not None:
                topic_logits = self.topic_head(gathered)  # (batch, num_positions, num_topics)
            if relevance_labels is not None:
                keep = (relevance_labels != -100) & (relevance_positions >= 0)
                relevance_loss = (
                    F.binary_cross_entropy_with_logits(relevance_logits[keep].float(), relevance_labels[keep].float())
                    if keep.any() else relevance_logits.sum() * 0.0
                )
            if topic_labels is not None:
                keep = (topic_labels != -100) & (relevance_positions >= 0)
                topic_loss = (
                    F.cross_entropy(topic_logits[keep].float(), topic_labels[keep].long())
                    if keep.any() else topic_logits.sum() * 0.0
                )
                if query_topic_labels is not None and query_state is not None:
                    keep_q = query_topic_labels != -100
                    if keep_q.any():
                        query_logits = self.topic_head(query_state[keep_q]).float()
                        topic_loss = topic_loss + F.cross_entropy(query_logits, query_topic_labels[keep_q].long())

        loss = None
        for part, weight in ((lm_loss, 1.0), (relevance_loss, self.config.relevance_loss_weight),
                             (topic_loss, self.config.topic_loss_weight)):
            if part is not None:
                loss = weight * part if loss is None else loss + weight * part

        return F2RVLMOutput(
            loss=loss,
            logits=logits,
            cache=getattr(outputs, "cache", None),
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            lm_loss=lm_loss,
            relevance_loss=relevance_loss,
            topic_loss=topic_loss,
            relevance_logits=relevance_logits,
            topic_logits=topic_logits,
        )

    def _query_state(self, input_ids, hidden_states):
        """Hidden state at each row's first `query_end_token_id` token, `(batch, hidden)` (zeros for
        rows without one); None when the config names no such token or no input_ids are given."""
        token_id = getattr(self.config, "query_end_token_id", None)
        if token_id is None or input_ids is None or not getattr(self.config, "relevance_query_features", False):
            return None
        mask = input_ids == token_id
        index = mask.int().argmax(dim=1)  # first occurrence (0 when absent)
        state = hidden_states[torch.arange(hidden_states.shape[0], device=hidden_states.device), index]
        return state * mask.any(dim=1, keepdim=True).to(state.dtype)

    # -- retrieval -------------------------------------------------------------------------
    def retrieve(
        self,
        dialogue,
        query: str,
        processor=None,
        *,
        mode: str = "generate",
        template: str | None = None,
        constrained: bool = True,
        threshold: float | None = None,
        max_new_tokens: int | None = None,
        show_progress: bool = False,
    ) -> RetrievalResult:
        """Retrieve the fragment of `dialogue` that matches `query`.

        >>> from f2rvlm.tiny import build_tiny
        >>> model, processor = build_tiny("qwen2_vl", "test")
        >>> result = model.retrieve({"utterances": [{"speaker": "user1", "text": "hello"}]}, "greeting",
        ...                         processor=processor)
        >>> set(result.utterance_ids) <= {0}
        True

        Args:
            dialogue: an `f2rvlm.Dialogue` or its plain-data form (`{"utterances": [...]}`).
            query: the text query.
            processor: an `F2RVLMProcessor`; None loads it from `self.name_or_path`.
            mode: "generate" (grammar-constrained greedy decoding), "tagging" (one forward pass,
                relevance head probability > threshold) or "guided" (generation whose grammar only
                admits ids the head scores above threshold).
            template: prompt template name; defaults to `config.prompt_template`.
            constrained: grammar-constrained decoding (generate mode); False parses leniently.
            threshold: head probability threshold; defaults to `config.retrieval_threshold`.
            max_new_tokens: generation budget; defaults to the longest possible answer.
            show_progress: print a progress bar over windows.
        """
        return self.retrieve_batch([(dialogue, query)], processor, batch_size=1, mode=mode, template=template,
                                   constrained=constrained, threshold=threshold, max_new_tokens=max_new_tokens,
                                   show_progress=show_progress)[0]

    @torch.no_grad()
    def retrieve_batch(
        self,
        pairs: Sequence[tuple[Any, str]],
        processor=None,
        batch_size: int = 8,
        *,
        mode: str = "generate",
        template: str | None = None,
        constrained: bool = True,
        threshold: float | None = None,
        max_new_tokens: int | None = None,
        show_progress: bool = False,
    ) -> list[RetrievalResult]:
        """`retrieve` over many (dialogue, query) pairs, batched by prompt length.

        Windows of all pairs are sorted by length and run `batch_size` at a time with left
        padding; results come back in input order and equal one-by-one results.
        """
        if mode not in RETRIEVAL_MODES:
            raise ValueError(f"unknown retrieval mode {mode!r}; choose one of {RETRIEVAL_MODES}")
        if mode in ("tagging", "guided") and self.relevance_head is None:
            raise ValueError(f"mode {mode!r} needs a relevance head, and this model has none "
                             "(config.relevance_head=False); use mode='generate'")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if mode == "tagging" and self.device.type == "cpu":
            # Measured (benchmarks/RESULTS.md): with no decoding to share, padded CPU batches only add
            # padding and push attention off the fast causal path; results are identical either way.
            batch_size = 1
        if processor is None:
            processor = _load_processor(self)
        template = template or self.config.prompt_template
        threshold = self.config.retrieval_threshold if threshold is None else threshold

        # 1. windows of every pair
        jobs = []  # (pair index, window dialogue, image offset, query, prompt length)
        num_windows = []
        for index, (dialogue, query) in enumerate(pairs):
            dialogue = as_dialogue(dialogue)
            windows = self._plan_windows(dialogue, query, processor, template)
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
            for j, answer in zip(batch, self._answer_batch(rows, processor, mode, template, constrained, threshold,
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
                    for key, window_scores in answer[3].items():
                        offset = job[2] if key == "images" else 0
                        for i, p in window_scores.items():
                            scores[key][i + offset] = max(p, scores[key].get(i + offset, 0.0))
            results.append(RetrievalResult(
                utterance_ids=utterance_ids, image_ids=image_ids, spans=contiguous_spans(utterance_ids),
                text="\n".join(answer[0] for _, answer in mine), mode=mode, num_windows=num_windows[index],
                scores=scores,
            ))
        return results

    def _plan_windows(self, dialogue, query, processor, template):
        """[(window dialogue, image offset, prompt tokens)]: the whole dialogue when it fits."""
        budget = self.config.max_context_tokens
        length = processor.count_prompt_tokens(dialogue, query, template)
        if length <= budget:
            return [(dialogue, 0, length)]
        line_counts = processor.count_line_tokens(dialogue)
        overhead = length - sum(line_counts)
        answer_room = max_answer_length(len(dialogue), dialogue.num_images) // 2 + 8
        if overhead + answer_room >= budget:
            raise ValueError(f"the prompt without dialogue lines needs {overhead} tokens, "
                             f"more than max_context_tokens={budget}")
        windows = []
        for start, end in plan_windows(line_counts, budget - overhead - answer_room, self.config.window_overlap):
            window, image_offset = dialogue.window(start, end)
            windows.append((window, image_offset, processor.count_prompt_tokens(window, query, template)))
        return windows

    def _answer_batch(self, rows, processor, mode, template, constrained, threshold, max_new_tokens):
        """[(text, global utterance ids, window image ids, window scores)] for one batch of windows."""
        dialogues = [d for d, _ in rows]
        inputs = processor.build_inputs(rows, template=template, return_relevance=self.relevance_head is not None)
        positions = inputs.pop("relevance_positions", None)
        position_map = inputs.pop("relevance_targets", None)
        inputs = inputs.to(self.device)

        probs = None
        if mode in ("tagging", "guided"):
            out = self(**inputs, relevance_positions=positions.to(self.device), logits_to_keep=1)
            probs = torch.sigmoid(out.relevance_logits.float()).cpu()  # (batch, num_positions)

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
            if mode == "guided":
                scores = _position_scores(position_map[b], probs[b])
                utt_ids = [i for i in utt_ids if scores["utterances"].get(i, 0.0) > threshold]
                img_ids = [i for i in img_ids if scores["images"].get(i, 0.0) > threshold]
            grammars.append(NonEmptyAnswerGrammar(utt_ids, img_ids) if mode == "guided" else AnswerGrammar(utt_ids, img_ids))
            window_scores.append(scores)

        prompt_length = inputs["input_ids"].shape[1]
        budget = max_new_tokens or max(max_answer_length(len(d), d.num_images) for d in dialogues) + 1
        processors = LogitsProcessorList()
        if constrained or mode == "guided":
            processors.append(AnswerConstraint(processor.tokenizer, grammars, prompt_length))
        tokenizer = processor.tokenizer
        generated = self.generate(
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


def gather_positions(hidden_states: torch.Tensor, positions: torch.LongTensor) -> torch.Tensor:
    """`hidden_states[b, positions[b, k]]` -> `(batch, num_positions, hidden)`; -1 positions read 0."""
    index = positions.clamp(min=0).unsqueeze(-1).expand(-1, -1, hidden_states.shape[-1])
    gathered = torch.gather(hidden_states, 1, index)
    return gathered * (positions >= 0).unsqueeze(-1).to(gathered.dtype)


def _position_scores(targets, probs: torch.Tensor) -> dict:
    """{"utterances": {global id: p}, "images": {window image id: p}} from a row's position map."""
    scores: dict = {"utterances": {}, "images": {}}
    for k, (kind, item_id) in enumerate(targets):
        scores["utterances" if kind == "utterance" else "images"][item_id] = float(probs[k])
    return scores


def _render(utterance_ids, image_ids) -> str:
    from .protocol import render_answer

    return render_answer(utterance_ids, image_ids)


def _eos_ids(tokenizer) -> list[int]:
    ids = {tokenizer.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|endoftext|>") if t in tokenizer.get_vocab()}
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return sorted(ids)


def _load_processor(model):
    """The processor saved beside the model, loaded once and kept on it (not on every retrieve)."""
    cached = getattr(model, "_f2rvlm_processor", None)
    if cached is not None:
        return cached
    from transformers import AutoProcessor

    source = getattr(model, "name_or_path", "") or ""
    if not source:
        raise ValueError("retrieve needs a processor: the model was built in memory (no name_or_path to load one from)")
    processor = AutoProcessor.from_pretrained(source, trust_remote_code=True)
    object.__setattr__(model, "_f2rvlm_processor", processor)  # a plain attribute, not a sub-module
    return processor


# ----------------------------------------------------------------------------------------------
# The model classes
# ----------------------------------------------------------------------------------------------
class F2RVLMQwen2VLForConditionalGeneration(F2RVLMMixin, Qwen2VLForConditionalGeneration):
    """Qwen2-VL with F2RVLM retrieval (the released checkpoint's backbone).

    >>> from f2rvlm.tiny import build_tiny
    >>> model, processor = build_tiny("qwen2_vl", "test", relevance_head=True)
    >>> type(model).__name__, model.relevance_head is not None
    ('F2RVLMQwen2VLForConditionalGeneration', True)
    """

    config_class = F2RVLMQwen2VLConfig

    def __init__(self, config: F2RVLMQwen2VLConfig):
        super().__init__(config)
        self._init_f2rvlm_heads()
        self.post_init()


class F2RVLMQwen2_5_VLForConditionalGeneration(F2RVLMMixin, Qwen2_5_VLForConditionalGeneration):
    """Qwen2.5-VL with F2RVLM retrieval."""

    config_class = F2RVLMQwen2_5_VLConfig

    def __init__(self, config: F2RVLMQwen2_5_VLConfig):
        super().__init__(config)
        self._init_f2rvlm_heads()
        self.post_init()


class F2RVLMQwen3VLForConditionalGeneration(F2RVLMMixin, Qwen3VLForConditionalGeneration):
    """Qwen3-VL with F2RVLM retrieval."""

    config_class = F2RVLMQwen3VLConfig

    def __init__(self, config: F2RVLMQwen3VLConfig):
        super().__init__(config)
        self._init_f2rvlm_heads()
        self.post_init()


def _share_checkpoint_conversions() -> None:
    """Give each F2RVLM model type its backbone's checkpoint key conversions, so stock Qwen-VL
    checkpoints (legacy key names, e.g. the released base) load into F2RVLM classes."""
    try:
        from transformers.conversion_mapping import (
            get_checkpoint_conversion_mapping,
            register_checkpoint_conversion_mapping,
        )
    except ImportError:  # pragma: no cover - other transformers versions
        return
    for ours in MODEL_CLASSES.values():
        backbone = ours.__mro__[2]  # (ours, F2RVLMMixin, backbone, ...)
        # conversions are keyed by class name (then model_type); reuse the backbone class's entry
        mapping = get_checkpoint_conversion_mapping(backbone.__name__)
        if mapping is None:
            mapping = get_checkpoint_conversion_mapping(backbone.config_class.model_type)
        if mapping is not None and get_checkpoint_conversion_mapping(ours.__name__) is None:
            register_checkpoint_conversion_mapping(ours.__name__, mapping)

#: Backbone family name -> F2RVLM model class.
MODEL_CLASSES = {
    "qwen2_vl": F2RVLMQwen2VLForConditionalGeneration,
    "qwen2_5_vl": F2RVLMQwen2_5_VLForConditionalGeneration,
    "qwen3_vl": F2RVLMQwen3VLForConditionalGeneration,
}
_share_checkpoint_conversions()

__all__ = [
    "MODEL_CLASSES",
    "F2RVLMOutput",
    "F2RVLMQwen2VLForConditionalGeneration",
    "F2RVLMQwen2_5_VLForConditionalGeneration",
    "F2RVLMQwen3VLForConditionalGeneration",
    "RetrievalResult",
]
