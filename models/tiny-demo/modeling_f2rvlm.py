"""F2RVLM models: Qwen-VL `...ForConditionalGeneration` subclasses with retrieval and heads.

Each class SUBCLASSES its backbone (a wrapper breaks TRL, which reads `generation_config` and
`config.image_token_id` off the model). A shared mixin adds:

- an optional relevance head: one logit per scoring position (the last token of each utterance
  line and each image's `<|vision_end|>` token), trained with BCE beside the answer loss;
- an optional topic head: topic logits at the utterance scoring positions, cross-entropy where
  topic labels exist;
- `retrieve` / `retrieve_batch`: dialogue + query -> `RetrievalResult` (orchestrated by
  `retrieval_f2rvlm.py`: generation, head tagging or head-guided generation, windows).

A checkpoint without heads (the released one) loads unchanged. `forward` takes the standard
kwargs, so TRL's SFT/GRPO trainers work as with the backbone; the head kwargs are optional.
Imports torch, transformers and the sibling F2RVLM files only (travels with the Hub remote code).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import (
    Qwen2_5_VLForConditionalGeneration,
    Qwen2VLForConditionalGeneration,
    Qwen3VLForConditionalGeneration,
)
from transformers.modeling_outputs import ModelOutput

from .configuration_f2rvlm import F2RVLMQwen2_5_VLConfig, F2RVLMQwen2VLConfig, F2RVLMQwen3VLConfig
from .registry_f2rvlm import FAMILIES
from .retrieval_f2rvlm import RetrievalResult, retrieve_batch
from .scorer_f2rvlm import TextScorer


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
        scorer = getattr(self.config, "text_scorer", None)
        self.text_scorer = TextScorer(scorer) if scorer else None

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

    # -- retrieval (orchestration lives in retrieval_f2rvlm.py) ---------------------------
    def retrieve(self, dialogue, query: str, processor=None, *, mode: str | None = None, **kwargs) -> RetrievalResult:
        """Retrieve the fragment of `dialogue` that matches `query` (see `retrieval_f2rvlm.retrieve`).

        >>> from f2rvlm.models.tiny import build_tiny
        >>> model, processor = build_tiny("qwen2_vl", "test")
        >>> result = model.retrieve({"utterances": [{"speaker": "user1", "text": "hello"}]}, "greeting",
        ...                         processor=processor)
        >>> set(result.utterance_ids) <= {0}
        True
        """
        return retrieve_batch(self, [(dialogue, query)], processor, batch_size=1, mode=mode, **kwargs)[0]

    def retrieve_batch(self, pairs, processor=None, batch_size: int = 8, *, mode: str | None = None,
                       **kwargs) -> list[RetrievalResult]:
        """`retrieve` over many (dialogue, query) pairs, batched by prompt length."""
        return retrieve_batch(self, pairs, processor, batch_size=batch_size, mode=mode, **kwargs)


def gather_positions(hidden_states: torch.Tensor, positions: torch.LongTensor) -> torch.Tensor:
    """`hidden_states[b, positions[b, k]]` -> `(batch, num_positions, hidden)`; -1 positions read 0."""
    index = positions.clamp(min=0).unsqueeze(-1).expand(-1, -1, hidden_states.shape[-1])
    gathered = torch.gather(hidden_states, 1, index)
    return gathered * (positions >= 0).unsqueeze(-1).to(gathered.dtype)


# ----------------------------------------------------------------------------------------------
# The model classes
# ----------------------------------------------------------------------------------------------
class F2RVLMQwen2VLForConditionalGeneration(F2RVLMMixin, Qwen2VLForConditionalGeneration):
    """Qwen2-VL with F2RVLM retrieval (the released checkpoint's backbone).

    >>> from f2rvlm.models.tiny import build_tiny
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
MODEL_CLASSES = {family: cls for cls in (F2RVLMQwen2VLForConditionalGeneration,
                                         F2RVLMQwen2_5_VLForConditionalGeneration,
                                         F2RVLMQwen3VLForConditionalGeneration)
                 for family in FAMILIES if FAMILIES[family].model_type == cls.config_class.model_type}
_share_checkpoint_conversions()

__all__ = [
    "MODEL_CLASSES",
    "F2RVLMOutput",
    "F2RVLMQwen2VLForConditionalGeneration",
    "F2RVLMQwen2_5_VLForConditionalGeneration",
    "F2RVLMQwen3VLForConditionalGeneration",
    "RetrievalResult",
]
