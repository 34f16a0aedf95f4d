"""F2RVLM configurations: the Qwen-VL backbone configs plus the retrieval settings.

Each class SUBCLASSES its backbone's config (not a wrapper holding it): TRL, PEFT and
`generate` read `config.image_token_id`, `config.text_config` etc. directly, so an F2RVLM config
is a Qwen-VL config with a few more fields. Imports transformers only (travels with the Hub
remote code).

>>> from f2rvlm.models.configuration_f2rvlm import F2RVLMQwen2VLConfig
>>> config = F2RVLMQwen2VLConfig(relevance_head=True, num_topics=8)
>>> config.model_type, config.prompt_template, config.retrieval_threshold
('f2rvlm_qwen2_vl', 'zh', 0.5)

Retrieval fields (the same on every family):
    prompt_template (`str`, defaults to `"zh"`): the released Chinese template; see
        `protocol.TEMPLATES`. Heads read the last token of each utterance line, so they need a
        query-first template ("zh" or "en").
    relevance_head (`bool`, defaults to `False`): add a binary relevance logit read at the last
        token of every utterance line and at every image's `<|vision_end|>` token.
    relevance_loss_weight (`float`, defaults to 1.0): weight of its BCE loss beside the answer loss.
    num_topics (`int`, defaults to 0): size of the optional topic head (0 = no topic head),
        a cross-entropy over the topic labels of utterance lines where labels exist.
    topic_loss_weight (`float`, defaults to 1.0): weight of the topic loss.
    retrieval_threshold (`float`, defaults to 0.5): default probability threshold of the
        "tagging" and "guided" retrieval modes.
    max_context_tokens (`int`, defaults to 16384): prompt budget (image tokens included) above
        which `retrieve` splits a dialogue into overlapping windows of turns.
    window_overlap (`int`, defaults to 4): turns shared by consecutive windows.
    answer_only_logits (`bool`, defaults to `False`): when `labels` are given, project only the
        supervised positions through the LM head (a measured 1.35x training speed-up); the
        output then carries no `logits`.
    relevance_query_features (`bool`, defaults to `False`): the relevance head also reads the
        query (the hidden state at the `query_end_token_id` token): its input is
        `[line, query, line * query]` instead of `line`, and with a topic head the query position
        is also trained on the topic of its gold fragment (`query_topic_labels`).
    query_end_token_id (`int`, *optional*): token id of `<|query_end|>` (a single token in the
        tiny tokenizers); needed by `relevance_query_features`.
    default_retrieval_mode (`str`, defaults to `"generate"`): the mode `retrieve`, the CLI and
        the Space use when none is asked for (`registry_f2rvlm.RETRIEVAL_MODES`); recipes set it to
        the mode that measured best.
    text_scorer (`dict`, *optional*): the BERT-family config of a pretrained text relevance scorer
        carried in the checkpoint (`scorer_f2rvlm.TextScorer`; its tokenizer lives in the folder's
        `text_scorer/` subfolder). When present, "tagging" and "guided" read its scores instead of
        the relevance head's.
    text_scorer_speaker_boost, text_scorer_margin, text_scorer_min_score, text_scorer_max_length,
    text_scorer_strip_names, text_scorer_bm25_weight: the scorer's settings
        (`scorer_f2rvlm.ScorerSettings`): score bonus for turns of a speaker the query names; items
        within `margin` of the best are selected; nothing when the best cosine is below
        `min_score`; token budget per text; drop speaker names from the query; weight of BM25 in
        the fused (standardised) score, 0 for the encoder alone.
    text_scorer_head_margin (`float`, *optional*): with a scorer AND a relevance head, the
        head's picks (probability above `retrieval_threshold`) join the scorer's selection when the
        scorer's semantic score (cosine + speaker boost) of them is within this margin of its best
        item: the scorer (pretrained text knowledge) vetoes the head where it is lost (real chats),
        the head extends the scorer to whole fragments and photos where it was trained (synthetic
        MLDR). "generate" then decodes under a grammar admitting exactly that selection
        (`generate_shortlist` unused). None: the scorer alone.
    text_scorer_head_gate (`int`, *optional*): the head joins only when it also picks one of the
        scorer's k best turns (`scorer_f2rvlm.select_with_head`); None: no gate.
    generate_shortlist (`int`, defaults to 0): with a scorer, "generate" decodes under a grammar
        that admits only the scorer's top-k utterances (and their images); 0 admits every id.
"""

from __future__ import annotations

from dataclasses import dataclass

from transformers import Qwen2_5_VLConfig, Qwen2VLConfig, Qwen3VLConfig

from .registry_f2rvlm import FAMILIES, RETRIEVAL_MODES


@dataclass(repr=False, kw_only=True)
class F2RVLMConfigMixin:
    """The retrieval fields (documented above), declared once for every backbone family.

    A dataclass so that transformers, which turns each config subclass into a dataclass, collects
    these fields through the MRO exactly as if each family had declared them itself.
    """

    prompt_template: str = "zh"
    relevance_head: bool = False
    relevance_loss_weight: float = 1.0
    num_topics: int = 0
    topic_loss_weight: float = 1.0
    retrieval_threshold: float = 0.5
    max_context_tokens: int = 16384
    window_overlap: int = 4
    answer_only_logits: bool = False
    relevance_query_features: bool = False
    query_end_token_id: int | None = None
    default_retrieval_mode: str = "generate"
    text_scorer: dict | None = None
    text_scorer_speaker_boost: float = 0.0
    text_scorer_margin: float = 0.05
    text_scorer_min_score: float = -1.0
    text_scorer_max_length: int = 64
    text_scorer_strip_names: bool = False
    text_scorer_bm25_weight: float = 0.0
    text_scorer_head_margin: float | None = None
    text_scorer_head_gate: int | None = None
    generate_shortlist: int = 0

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if not 0.0 < self.retrieval_threshold < 1.0:
            raise ValueError(f"retrieval_threshold must lie in (0, 1), got {self.retrieval_threshold}")
        if self.num_topics < 0:
            raise ValueError(f"num_topics must be >= 0, got {self.num_topics}")
        if self.max_context_tokens < 64:
            raise ValueError(f"max_context_tokens must be at least 64, got {self.max_context_tokens}")
        if self.default_retrieval_mode not in RETRIEVAL_MODES:
            raise ValueError(f"default_retrieval_mode must be one of {tuple(RETRIEVAL_MODES)}, "
                             f"got {self.default_retrieval_mode!r}")
        if self.generate_shortlist < 0:
            raise ValueError(f"generate_shortlist must be >= 0, got {self.generate_shortlist}")
        if self.window_overlap < 0:
            raise ValueError(f"window_overlap must be >= 0, got {self.window_overlap}")


class F2RVLMQwen2VLConfig(F2RVLMConfigMixin, Qwen2VLConfig):
    """Qwen2-VL (the released checkpoint's backbone) plus the F2RVLM retrieval fields."""

    model_type = FAMILIES["qwen2_vl"].model_type


class F2RVLMQwen2_5_VLConfig(F2RVLMConfigMixin, Qwen2_5_VLConfig):
    """Qwen2.5-VL plus the F2RVLM retrieval fields."""

    model_type = FAMILIES["qwen2_5_vl"].model_type


class F2RVLMQwen3VLConfig(F2RVLMConfigMixin, Qwen3VLConfig):
    """Qwen3-VL plus the F2RVLM retrieval fields."""

    model_type = FAMILIES["qwen3_vl"].model_type


#: Backbone family name -> F2RVLM config class.
CONFIG_CLASSES = {family: cls for cls in (F2RVLMQwen2VLConfig, F2RVLMQwen2_5_VLConfig, F2RVLMQwen3VLConfig)
                  for family in FAMILIES if FAMILIES[family].model_type == cls.model_type}
if set(CONFIG_CLASSES) != set(FAMILIES):  # a registry entry without its config class
    raise ImportError(f"registered families without a config class: {set(FAMILIES) - set(CONFIG_CLASSES)}")

__all__ = ["CONFIG_CLASSES", "F2RVLMQwen2VLConfig", "F2RVLMQwen2_5_VLConfig", "F2RVLMQwen3VLConfig"]
