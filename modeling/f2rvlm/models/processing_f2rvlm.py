"""F2RVLM processor: Qwen-VL inputs for (dialogue, query[, answer]) without torchvision.

`F2RVLMProcessor` is a Qwen2-VL processor whose `__init__` takes no video processor (the stock
Qwen-VL processors need torchvision for theirs), paired with `Qwen2VLImageProcessorPil`
(patch 14; 16 for Qwen3-VL). On top of the usual `__call__` it builds model inputs straight from
dialogues via `protocol.build_messages` + the chat template, finds the relevance-head scoring
positions (the last token of each utterance line, each image's `<|vision_end|>`), and offers an
SFT collator (`F2RVLMCollator`) that puts the loss on the answer only.
Imports transformers and the sibling F2RVLM files only (travels with the Hub remote code).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from transformers import BatchFeature
from transformers.models.qwen2_vl.processing_qwen2_vl import Qwen2VLProcessor
from transformers.processing_utils import ProcessorMixin

from ..core import protocol
from ..core.dialogue import Dialogue, as_dialogue

IGNORE_INDEX = -100



class F2RVLMProcessor(Qwen2VLProcessor):
    """Tokenizer + PIL image processor + chat template for F2RVLM (any Qwen-VL family).

    >>> from f2rvlm.models.tiny import build_tiny
    >>> _, processor = build_tiny("qwen2_vl", "test")
    >>> inputs = processor.build_inputs([({"utterances": [{"speaker": "user1", "text": "hi"}]}, "greeting")],
    ...                                 return_relevance=True)
    >>> inputs["relevance_targets"]
    [[('utterance', 0)]]
    """

    #: Where a checkpoint keeps its text scorer's tokenizer (`scorer_f2rvlm`), beside the weights.
    SCORER_SUBFOLDER = "text_scorer"

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        self.image_token = getattr(tokenizer, "image_token", None) or "<|image_pad|>"
        self.video_token = getattr(tokenizer, "video_token", None) or "<|video_pad|>"
        self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
        self.video_token_id = tokenizer.convert_tokens_to_ids(self.video_token)
        self.vision_end_token_id = tokenizer.convert_tokens_to_ids("<|vision_end|>")
        ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template)
        self.scorer_tokenizer = None  # set by from_pretrained when the folder carries one

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """The processor, plus the text scorer's tokenizer when the folder has a `text_scorer/`."""
        processor = super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        from transformers import AutoTokenizer

        try:
            processor.scorer_tokenizer = AutoTokenizer.from_pretrained(
                pretrained_model_name_or_path, subfolder=cls.SCORER_SUBFOLDER,
                **{k: v for k, v in kwargs.items() if k in ("cache_dir", "revision", "token", "local_files_only")})
        except (OSError, ValueError):
            processor.scorer_tokenizer = None  # a checkpoint without a text scorer
        return processor

    def save_pretrained(self, save_directory, *args, **kwargs):
        import os

        out = super().save_pretrained(save_directory, *args, **kwargs)
        if self.scorer_tokenizer is not None:
            self.scorer_tokenizer.save_pretrained(os.path.join(save_directory, self.SCORER_SUBFOLDER))
        return out

    # -- text ------------------------------------------------------------------------------
    def render_chat(self, dialogue, query: str, template: str = protocol.DEFAULT_TEMPLATE,
                    answer: str | None = None) -> str:
        """The chat text (one `<|image_pad|>` per image); ends with the generation prompt, or
        with `answer<|im_end|>\\n` when an answer is given."""
        messages = protocol.build_messages(as_dialogue(dialogue), query, template)
        if answer is not None:
            messages.append({"role": "assistant", "content": [{"type": "text", "text": answer}]})
        return self.apply_chat_template(messages, tokenize=False, add_generation_prompt=answer is None)

    def parse_answer(self, text: str, mode: str = "strict"):
        """`protocol.parse_answer` (kept here beside the input building it mirrors)."""
        return protocol.parse_answer(text, mode)

    # -- token counting (windows) ------------------------------------------------------------
    def image_token_count(self, image) -> int:
        """Vision tokens one image takes in the prompt (after merging)."""
        width, height = image.size
        patches = self.image_processor.get_number_of_image_patches(height, width, {})
        return patches // self.image_processor.merge_size ** 2

    def count_prompt_tokens(self, dialogue: Dialogue, query: str, template: str = protocol.DEFAULT_TEMPLATE) -> int:
        """Prompt tokens (image tokens included) of one (dialogue, query) pair."""
        text = self.render_chat(dialogue, query, template)
        text_tokens = len(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        return text_tokens + sum(self.image_token_count(img.load()) - 1 for img in dialogue.images)

    def count_line_tokens(self, dialogue: Dialogue) -> list[int]:
        """Tokens of each utterance line (plus its newline and image tokens)."""
        counts = []
        for line, utterance in zip(dialogue.line_specs(), dialogue.utterances):
            text = protocol.render_line(line).replace(protocol.IMAGE_PLACEHOLDER, "<|vision_start|><|vision_end|>")
            counts.append(len(self.tokenizer(text + "\n", add_special_tokens=False)["input_ids"])
                          + sum(self.image_token_count(img.load()) for img in utterance.images))
        return counts

    # -- model inputs ----------------------------------------------------------------------
    def build_inputs(
        self,
        rows: Sequence[tuple[Any, str]],
        template: str = protocol.DEFAULT_TEMPLATE,
        answers: Sequence[str] | None = None,
        return_relevance: bool = False,
        padding_side: str | None = None,
    ) -> BatchFeature:
        """Model inputs for a batch of (dialogue, query) pairs, with answers for training.

        Without answers the prompts end with the generation prompt and are LEFT padded (what
        `generate` needs); with answers they are right padded and carry `labels` on the answer
        tokens (and `<|im_end|>`) only.

        Returns a `BatchFeature` with `input_ids`, `attention_mask`, `pixel_values`,
        `image_grid_thw`, `mm_token_type_ids` (`(batch, seq_len)` tensors), `labels` when answers
        are given, and with `return_relevance`: `relevance_positions` (`(batch, num_positions)`,
        -1 padded) plus `relevance_targets`, per row the `("utterance" | "image", id)` each
        position scores (utterance ids global, image ids of the given dialogue).
        """
        dialogues = [as_dialogue(d) for d, _ in rows]
        if answers is not None and len(answers) != len(rows):
            raise ValueError(f"got {len(answers)} answers for {len(rows)} rows")
        padding_side = padding_side or ("left" if answers is None else "right")
        texts, prompt_chars = [], []
        for i, (dialogue, (_, query)) in enumerate(zip(dialogues, rows)):
            prompt = self.render_chat(dialogue, query, template)
            prompt_chars.append(len(prompt))
            texts.append(prompt if answers is None else self.render_chat(dialogue, query, template, answers[i]))
        images = [img.load() for d in dialogues for img in d.images]

        if images:
            image_inputs = self.image_processor(images=images, return_tensors="pt")
            grid = image_inputs["image_grid_thw"]
            counts = (grid.prod(-1) // self.image_processor.merge_size ** 2).tolist()
        else:
            image_inputs, counts = {}, []
        expanded, char_maps, k = [], [], 0
        for text, dialogue in zip(texts, dialogues):
            mine = counts[k: k + dialogue.num_images]
            k += dialogue.num_images
            out, char_map = _expand_image_tokens(text, self.image_token, mine)
            expanded.append(out)
            char_maps.append(char_map)

        encoding = self.tokenizer(expanded, add_special_tokens=False, padding=True, padding_side=padding_side,
                                  return_offsets_mapping=True, return_tensors="pt")
        offsets = encoding.pop("offset_mapping")
        input_ids = encoding["input_ids"]
        data = dict(encoding)
        data.update(image_inputs)
        data["mm_token_type_ids"] = (input_ids == self.image_token_id).to(torch.int32)

        attention = encoding["attention_mask"]
        if answers is not None:
            labels = torch.full_like(input_ids, IGNORE_INDEX)
            for b in range(len(rows)):
                first = _token_at(offsets[b], attention[b], char_maps[b](prompt_chars[b]))
                end_char = char_maps[b](len(texts[b]) - 1)  # the final "\n" after <|im_end|> is not learned
                last = _token_at(offsets[b], attention[b], end_char)
                labels[b, first:last] = input_ids[b, first:last]
            data["labels"] = labels
        if return_relevance:
            positions, targets = [], []
            for b, (dialogue, (_, query)) in enumerate(zip(dialogues, rows)):
                row_positions, row_targets = [], []
                for utt_id, char in zip(dialogue.utterance_ids, _line_end_chars(texts[b], dialogue, query, template)):
                    row_positions.append(_token_at(offsets[b], attention[b], char_maps[b](char)))
                    row_targets.append(("utterance", utt_id))
                vision_ends = (input_ids[b] == self.vision_end_token_id).nonzero().flatten().tolist()
                if len(vision_ends) != dialogue.num_images:
                    raise ValueError(f"row {b}: {len(vision_ends)} <|vision_end|> tokens for {dialogue.num_images} images")
                row_positions += vision_ends
                row_targets += [("image", i) for i in range(dialogue.num_images)]
                positions.append(row_positions)
                targets.append(row_targets)
            width = max(len(p) for p in positions)
            data["relevance_positions"] = torch.tensor([p + [-1] * (width - len(p)) for p in positions], dtype=torch.long)
            data["relevance_targets"] = targets
        return BatchFeature(data=data, tensor_type=None)

    def sft_collator(self, template: str = protocol.DEFAULT_TEMPLATE, relevance: bool = False,
                     topics: Sequence[str] | None = None, query_topics: bool = False) -> F2RVLMCollator:
        """An `SFTTrainer` data collator over dataset rows (see `F2RVLMCollator`)."""
        return F2RVLMCollator(self, template=template, relevance=relevance, topics=topics, query_topics=query_topics)


class F2RVLMCollator:
    """Collates dataset rows (docs/data.md schema) into SFT batches.

    Labels cover the answer (`row["solution"]`) only. With `relevance=True` the batch also has
    `relevance_positions` and `relevance_labels` (1 for gold utterances/images, 0 otherwise);
    with `topics` (the label names, `config.num_topics` of them) also `topic_labels` (the index
    of each utterance's `topic`, -100 where empty/unknown and for images).

    >>> collator = processor.sft_collator(relevance=True)  # doctest: +SKIP
    >>> trainer = SFTTrainer(model, args=SFTConfig(..., remove_unused_columns=False,
    ...                      dataset_kwargs={"skip_prepare_dataset": True}),
    ...                      train_dataset=rows, data_collator=collator, processing_class=processor)  # doctest: +SKIP
    """

    def __init__(self, processor: F2RVLMProcessor, template: str = protocol.DEFAULT_TEMPLATE,
                 relevance: bool = False, topics: Sequence[str] | None = None, query_topics: bool = False):
        self.processor = processor
        self.template = template
        self.relevance = relevance
        self.topic_index = {name: i for i, name in enumerate(topics)} if topics else None
        self.query_topics = query_topics and self.topic_index is not None

    def __call__(self, rows: Sequence[Mapping]) -> dict:
        dialogues = [Dialogue.from_row(row) for row in rows]
        batch = self.processor.build_inputs(
            [(d, row["query"]) for d, row in zip(dialogues, rows)], template=self.template,
            answers=[row["solution"] for row in rows], return_relevance=self.relevance or self.topic_index is not None,
        )
        targets = batch.pop("relevance_targets", None)
        if targets is not None:
            positions = batch["relevance_positions"]
            labels = torch.full(positions.shape, float(IGNORE_INDEX))
            topic_labels = torch.full(positions.shape, IGNORE_INDEX, dtype=torch.long)
            for b, (row, row_targets) in enumerate(zip(rows, targets)):
                gold_utts, gold_imgs = set(row["gold_utterance_ids"]), set(row["gold_image_ids"])
                for k, (kind, item_id) in enumerate(row_targets):
                    labels[b, k] = float(item_id in (gold_utts if kind == "utterance" else gold_imgs))
                    if kind == "utterance" and self.topic_index is not None:
                        topic = row["utterances"][item_id].get("topic") or ""
                        topic_labels[b, k] = self.topic_index.get(topic, IGNORE_INDEX)
            if self.relevance:
                batch["relevance_labels"] = labels
            if self.topic_index is not None:
                batch["topic_labels"] = topic_labels
        if self.query_topics:  # the topic of each row's gold fragment (most frequent), -100 when empty
            query_labels = torch.full((len(rows),), IGNORE_INDEX, dtype=torch.long)
            for b, row in enumerate(rows):
                counts: dict[str, int] = {}
                for i in row["gold_utterance_ids"]:
                    topic = row["utterances"][i].get("topic") or ""
                    if topic in self.topic_index:
                        counts[topic] = counts.get(topic, 0) + 1
                if counts:
                    query_labels[b] = self.topic_index[max(sorted(counts), key=counts.get)]
            batch["query_topic_labels"] = query_labels
        return dict(batch)


def query_end_token_id(tokenizer) -> int:
    """Id of `<|query_end|>` when the tokenizer has it as a single token (the tiny ones do)."""
    ids = tokenizer(protocol.QUERY_END, add_special_tokens=False)["input_ids"]
    if len(ids) != 1:
        raise ValueError(f"{protocol.QUERY_END} is {len(ids)} tokens in this tokenizer; relevance_query_features "
                         "needs it as one token")
    return int(ids[0])


def _expand_image_tokens(text: str, image_token: str, counts: Sequence[int]):
    """Replace the k-th image token by `counts[k]` copies; return the text and a char mapper
    from positions in `text` to positions in the expanded text."""
    pieces = text.split(image_token)
    if len(pieces) - 1 != len(counts):
        raise ValueError(f"prompt has {len(pieces) - 1} image tokens for {len(counts)} images")
    bounds, out, shift = [], [], 0  # (original position of the pad's end, cumulative shift)
    position = 0
    for k, piece in enumerate(pieces):
        out.append(piece)
        position += len(piece)
        if k < len(counts):
            out.append(image_token * counts[k])
            position += len(image_token)
            shift += (counts[k] - 1) * len(image_token)
            bounds.append((position, shift))

    def char_map(char: int) -> int:
        moved = 0
        for end, cumulative in bounds:
            if char >= end:
                moved = cumulative
        return char + moved

    return "".join(out), char_map


def _token_at(offsets: torch.Tensor, attention: torch.Tensor, char: int) -> int:
    """Index of the (non-padding) token whose character span contains `char`."""
    hit = ((offsets[:, 0] <= char) & (offsets[:, 1] > char) & (attention > 0)).nonzero().flatten()
    if len(hit) == 0:
        raise ValueError(f"no token covers character {char} of the prompt")
    return int(hit[0])


def _line_end_chars(chat_text: str, dialogue: Dialogue, query: str, template: str) -> list[int]:
    """Character index (in the chat text) of the last character of each utterance line."""
    head, _, tail = protocol.TEMPLATES[template].partition("{dialogue}")
    search_from = chat_text.index(protocol.QUERY_END) if "{query}" in head else 0
    starts = []
    for line in dialogue.line_specs():
        marker = f"{protocol.UTT_ID_START}{line.utterance_id}{protocol.UTT_ID_END} "
        position = chat_text.index(marker, search_from)
        starts.append(position)
        search_from = position + len(marker)
    dialogue_end = chat_text.index(tail.format(query=query) + "<|im_end|>", search_from)
    return [start - 2 for start in starts[1:]] + [dialogue_end - 1]  # start - 1 is the "\n"


__all__ = ["F2RVLMCollator", "F2RVLMProcessor", "query_end_token_id"]
