"""Tiny F2RVLM models built offline: tokenizer, processor and randomly initialised backbones.

Everything comes from code: a byte-level BPE tokenizer trained in-process on a fixed corpus
(English + Chinese, digits, the protocol templates and tags; digits split one by one like
Qwen), the Qwen special tokens, the protocol tags as added NON-special tokens (TRL strips special
tokens when it decodes completions), a Qwen-VL chat template and a PIL image processor. Models
are deterministic by seed. Tests, the default demo and the CPU recipes use them.

>>> from f2rvlm.models.tiny import build_tiny
>>> model, processor = build_tiny("qwen2_vl", "test", seed=0)
>>> sum(p.numel() for p in model.parameters()) < 2_000_000
True

Sizes (parameters with the ~2k vocabulary): "test" ~1M, "small" ~4M, "base" ~15M.
"""

from __future__ import annotations

from typing import Any

from ..core import protocol
from .registry_f2rvlm import FAMILIES as REGISTERED_FAMILIES
from .registry_f2rvlm import get_family

FAMILIES = tuple(REGISTERED_FAMILIES)  # every registered backbone family builds tiny
VOCAB_SIZE = 2048  # trained BPE vocabulary (special/added tokens come on top)

#: text hidden size, layers, heads, intermediate; vision width, depth, heads
SIZES: dict[str, dict[str, int]] = {
    "test": {"hidden": 128, "layers": 2, "heads": 4, "intermediate": 256, "vision": 32, "vision_depth": 1, "vision_heads": 2},
    "small": {"hidden": 256, "layers": 4, "heads": 4, "intermediate": 512, "vision": 64, "vision_depth": 2, "vision_heads": 4},
    "base": {"hidden": 384, "layers": 8, "heads": 6, "intermediate": 1152, "vision": 128, "vision_depth": 2, "vision_heads": 4},
}

QWEN_SPECIAL_TOKENS = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
    "<|image_pad|>", "<|video_pad|>",
)

# Qwen2-VL / Qwen2.5-VL chat template (the Qwen3-VL one differs only in ways F2RVLM does not use),
# in the training variant: `{% generation %}` marks the assistant turn for assistant-only loss.
CHAT_TEMPLATE = (
    "{%- set image_count = namespace(value=0) %}"
    "{%- for message in messages %}"
    "{%- if loop.first and message['role'] != 'system' %}"
    "{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['role'] == 'assistant' %}{%- generation %}"
    "{%- if message['content'] is string %}{{- message['content'] }}"
    "{%- else %}{%- for content in message['content'] %}{%- if 'text' in content %}{{- content['text'] }}{%- endif %}{%- endfor %}"
    "{%- endif %}{{- '<|im_end|>\\n' }}{%- endgeneration %}"
    "{%- else %}"
    "{%- if message['content'] is string %}{{- message['content'] }}"
    "{%- else %}{%- for content in message['content'] %}"
    "{%- if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{%- set image_count.value = image_count.value + 1 %}"
    "{%- if add_vision_id %}Picture {{ image_count.value }}: {% endif -%}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{%- elif content['type'] == 'video' or 'video' in content %}<|vision_start|><|video_pad|><|vision_end|>"
    "{%- elif 'text' in content %}{{- content['text'] }}"
    "{%- endif %}{%- endfor %}"
    "{%- endif %}{{- '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

_CORPUS_EN = """\
Hello! How are you today? I'm fine, thanks. Did you see the photos from our trip to the lake?
Yes, the sunset was beautiful and the water was so calm. Let's go hiking again next weekend.
I bought a new phone yesterday; the camera is amazing. Can you send me the recipe for that cake?
We visited the flat on Tuesday, it has two bedrooms and a small balcony with a view of the park.
My cat knocked over the plant again. The meeting is at 10:30, room 204. Happy birthday, Anna!
The train leaves at 7:45 from platform 3. Don't forget your passport and the tickets.
What did the doctor say? She said it's nothing serious, just rest for a few days.
Look at this dog, isn't he cute? I think we should adopt him. The football match ended 2-1.
user1 user2 user3 speaker query utterance image dialogue retrieve match fragment photo picture
"""
_CORPUS_ZH = """\
你好！今天过得怎么样？还不错，谢谢。你看到我们去湖边旅行的照片了吗？
看到了，日落很美，湖水很平静。下周末我们再去爬山吧。
我昨天买了新手机，拍照效果特别好。能把那个蛋糕的做法发给我吗？
我们周二去看了房子，有两个卧室和一个能看到公园的小阳台。
我的猫又把花盆打翻了。会议在十点半，二零四房间。生日快乐！
火车七点四十五分从三号站台出发。别忘了带护照和车票。
医生怎么说？她说没什么大问题，休息几天就好。看这只小狗，是不是很可爱？我们领养它吧。
"""


def _training_corpus() -> list[str]:
    corpus = _CORPUS_EN.splitlines() + _CORPUS_ZH.splitlines()
    corpus += list(protocol.TEMPLATES.values()) + list(protocol.SYSTEM_PROMPTS.values())
    corpus += [" ".join(str(i) for i in range(n, n + 40)) for n in range(0, 400, 40)]
    corpus += [protocol.render_answer(range(i, i + 5), range(i % 3)) for i in range(30)]
    return corpus * 4


_TOKENIZER_CACHE: dict[str, Any] = {}


def build_tokenizer(texts=None, vocab_size: int | None = None):
    """A Qwen2 tokenizer (byte-level BPE, ~2k vocab) trained on the built-in corpus; cached.

    `texts` (e.g. a training split's utterances and queries) are added to the corpus and
    `vocab_size` (default 2048, or 4096 with texts) sized to them: the built-in corpus alone
    splits most content words into single characters, which a 1M-parameter model cannot
    re-assemble into words within minutes (measured: no retrieval learned in 4 minutes of SFT)."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, trainers
    from transformers import AddedToken, Qwen2Tokenizer
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    key = "qwen"
    if texts is not None:
        import hashlib

        texts = [str(t) for t in texts]
        vocab_size = vocab_size or 2 * VOCAB_SIZE
        digest = hashlib.sha256("\x00".join(texts).encode("utf-8")).hexdigest()[:16]
        key = f"qwen-{vocab_size}-{digest}"
    elif vocab_size not in (None, VOCAB_SIZE):
        key = f"qwen-{vocab_size}"
    if key not in _TOKENIZER_CACHE:
        bpe = Tokenizer(models.BPE())
        bpe.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated"),  # digits one by one
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ])
        trainer = trainers.BpeTrainer(vocab_size=vocab_size or VOCAB_SIZE, show_progress=False,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        bpe.train_from_iterator(_training_corpus() + list(texts or []), trainer=trainer)
        model = bpe.model
        vocab = bpe.get_vocab()
        import json

        merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m)
                  for m in json.loads(bpe.to_str())["model"]["merges"]]
        del model
        _TOKENIZER_CACHE[key] = (vocab, merges)
    vocab, merges = _TOKENIZER_CACHE[key]
    tokenizer = Qwen2Tokenizer(vocab=dict(vocab), merges=list(merges), unk_token=None, bos_token=None,
                               eos_token="<|im_end|>", pad_token="<|endoftext|>")
    tokenizer.add_special_tokens({"additional_special_tokens": list(QWEN_SPECIAL_TOKENS[1:])})
    tokenizer.add_tokens([AddedToken(tag, special=False, normalized=False) for tag in protocol.PROTOCOL_TAGS])
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.padding_side = "left"
    return tokenizer


def build_processor(family: str = "qwen2_vl", tokenizer_texts=None):
    """`F2RVLMProcessor` with the tiny tokenizer (trained on `tokenizer_texts` too, when given;
    see `build_tokenizer`) and a small-image PIL image processor."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    from .processing_f2rvlm import F2RVLMProcessor

    patch = get_family(family).patch_size
    side = patch * 2  # one merged vision token
    image_processor = Qwen2VLImageProcessorPil(
        patch_size=patch, merge_size=2, temporal_patch_size=2,
        size={"shortest_edge": side * side * 4, "longest_edge": side * side * 16},  # 4..16 tokens per image
    )
    return F2RVLMProcessor(image_processor=image_processor, tokenizer=build_tokenizer(tokenizer_texts),
                           chat_template=CHAT_TEMPLATE)


def build_config(family: str = "qwen2_vl", size: str = "test", relevance_head: bool = False, tokenizer=None,
                 **overrides):
    """The F2RVLM config of a tiny model (token ids taken from the tiny tokenizer)."""
    from .configuration_f2rvlm import CONFIG_CLASSES

    get_family(family)
    if size not in SIZES:
        raise ValueError(f"unknown tiny size {size!r}; choose one of {sorted(SIZES)}")
    tokenizer = tokenizer or build_tokenizer()
    s = SIZES[size]
    head_dim = s["hidden"] // s["heads"]
    half = head_dim // 2  # mrope sections must sum to head_dim / 2
    mrope = [half - 2 * (3 * half // 8), 3 * half // 8, 3 * half // 8]
    ids = {name: tokenizer.convert_tokens_to_ids(token) for name, token in (
        ("image_token_id", "<|image_pad|>"), ("video_token_id", "<|video_pad|>"),
        ("vision_start_token_id", "<|vision_start|>"), ("vision_end_token_id", "<|vision_end|>"))}
    text = {
        "vocab_size": len(tokenizer), "hidden_size": s["hidden"], "intermediate_size": s["intermediate"],
        "num_hidden_layers": s["layers"], "num_attention_heads": s["heads"], "num_key_value_heads": s["heads"] // 2,
        "max_position_embeddings": 32768, "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0,
                                                               "mrope_section": mrope},
        "bos_token_id": tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        "eos_token_id": tokenizer.convert_tokens_to_ids("<|im_end|>"),
        "pad_token_id": tokenizer.pad_token_id,
    }
    if family == "qwen2_vl":
        vision = {"depth": s["vision_depth"], "embed_dim": s["vision"], "hidden_size": s["hidden"],
                  "num_heads": s["vision_heads"], "mlp_ratio": 2, "patch_size": 14}
    elif family == "qwen2_5_vl":
        vision = {"depth": s["vision_depth"], "hidden_size": s["vision"], "intermediate_size": 2 * s["vision"],
                  "num_heads": s["vision_heads"], "out_hidden_size": s["hidden"], "patch_size": 14,
                  "window_size": 56, "fullatt_block_indexes": [s["vision_depth"] - 1]}
    else:
        text["head_dim"] = head_dim
        text["rope_parameters"]["mrope_interleaved"] = True
        vision = {"depth": s["vision_depth"], "hidden_size": s["vision"], "intermediate_size": 2 * s["vision"],
                  "num_heads": s["vision_heads"], "out_hidden_size": s["hidden"], "patch_size": 16,
                  "num_position_embeddings": 64, "deepstack_visual_indexes": [0]}
    config = CONFIG_CLASSES[family](text_config=text, vision_config=vision, relevance_head=relevance_head,
                                    tie_word_embeddings=False, **ids, **overrides)
    config.max_context_tokens = overrides.get("max_context_tokens", 4096)
    return config


#: A tiny BERT-family text scorer (`scorer_f2rvlm`) for tests: the shape of MiniLM, far smaller.
TINY_SCORER = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64,
               "max_position_embeddings": 128}


def build_scorer_tokenizer():
    """A small WordPiece `BertTokenizerFast` trained on the built-in corpus (tiny text scorers)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertTokenizerFast

    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    wordpiece = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    wordpiece.normalizer = normalizers.BertNormalizer(lowercase=True)
    wordpiece.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    wordpiece.train_from_iterator(_training_corpus(), trainers.WordPieceTrainer(
        vocab_size=1000, special_tokens=special, show_progress=False))
    wordpiece.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", wordpiece.token_to_id("[CLS]")), ("[SEP]", wordpiece.token_to_id("[SEP]"))])
    wordpiece.decoder = decoders.WordPiece()
    return BertTokenizerFast(tokenizer_object=wordpiece, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                             sep_token="[SEP]", mask_token="[MASK]")


def build_tiny(family: str = "qwen2_vl", size: str = "test", seed: int = 0, relevance_head: bool = False,
               tokenizer_texts=None, text_scorer: bool = False, **config_overrides):
    """(model, processor): a randomly initialised tiny F2RVLM model, deterministic by seed.

    Extra keyword arguments override config fields (e.g. `num_topics=8`, `max_context_tokens=512`,
    `relevance_query_features=True`). `tokenizer_texts`: extra tokenizer training texts
    (`build_tokenizer`).
    """
    import torch

    from .modeling_f2rvlm import MODEL_CLASSES

    processor = build_processor(family, tokenizer_texts)
    if text_scorer:
        processor.scorer_tokenizer = build_scorer_tokenizer()
        config_overrides["text_scorer"] = {**TINY_SCORER, "vocab_size": len(processor.scorer_tokenizer)}
    if config_overrides.get("relevance_query_features") and config_overrides.get("query_end_token_id") is None:
        from .processing_f2rvlm import query_end_token_id

        config_overrides["query_end_token_id"] = query_end_token_id(processor.tokenizer)
    config = build_config(family, size, relevance_head=relevance_head, tokenizer=processor.tokenizer,
                          **config_overrides)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = MODEL_CLASSES[family](config)
    model.eval()
    model.generation_config.pad_token_id = processor.tokenizer.pad_token_id
    model.generation_config.eos_token_id = [processor.tokenizer.convert_tokens_to_ids("<|im_end|>"),
                                            processor.tokenizer.pad_token_id]
    model.generation_config.do_sample = False
    return model, processor


def save_tiny(out: str, family: str = "qwen2_vl", size: str = "test", seed: int = 0, relevance_head: bool = False,
              **config_overrides) -> str:
    """Build a tiny model and write it as an exported F2RVLM folder (code files + auto_map)."""
    from .hub import save_f2rvlm_folder

    model, processor = build_tiny(family, size, seed, relevance_head, **config_overrides)
    return save_f2rvlm_folder(model, processor, out)


__all__ = [
    "CHAT_TEMPLATE",
    "FAMILIES",
    "SIZES",
    "TINY_SCORER",
    "build_config",
    "build_processor",
    "build_scorer_tokenizer",
    "build_tiny",
    "build_tokenizer",
    "save_tiny",
]
