"""Synthetic MLDR: long multimodal dialogues with paraphrased queries and exact gold fragments.

>>> from f2rvlm.data.synthetic import SyntheticConfig, generate_split
>>> samples = generate_split("validation", num_dialogues=2, seed=0, language="en")
>>> dialogue, queries = samples[0].dialogue, samples[0].queries
>>> len(queries) > 0 and all(u.topic for u in dialogue.utterances)
True

Deterministic by seed: every dialogue draws from its own `random.Random` seeded with the string
`"{seed}/{split}/{index}"`, so a dialogue does not depend on how many others were generated, and
the same seed gives the same bytes (images are PNGs drawn with PIL, no timestamps anywhere).

What a dialogue looks like (defaults in `SyntheticConfig`): ~25 turns, three topics, two
speakers (`user1`/`user2`), 2-5 pictures (each on its own turn, drawn per topic with a caption).
The topic turns are laid out as one dense block per topic, or scattered (each topic cut into
2-3 chunks and interleaved). Queries paraphrase a whole topic, one aspect of it, or its pictures;
~15% ask about a topic that is absent (gold: both lists empty). `test_heldout` has long dialogues
(~75 turns, five topics) that use held-out topics and held-out sentence and query templates.
"""

from __future__ import annotations

import io
import itertools
import random
from dataclasses import dataclass, field

from ..core.dialogue import Dialogue, DialogueImage, Utterance
from .synthetic_topics import (
    HELDOUT_TOPICS,
    PHOTO_LINES,
    REACTIONS,
    SHARED_SLOTS,
    TOPICS,
    TRAIN_TOPICS,
)

LANGUAGES = ("en", "zh")
SPLITS = ("train_sft", "train_grpo", "validation", "test_heldout")
#: Share of `num_dialogues` per split (each split gets at least one dialogue).
SPLIT_SHARES = {"train_sft": 0.6, "train_grpo": 0.2, "validation": 0.1, "test_heldout": 0.1}
SPEAKERS = ("user1", "user2")


@dataclass(frozen=True)
class SyntheticConfig:
    """Shape of generated dialogues; `heldout()` gives the long test_heldout variant."""

    mean_turns: float = 25.0
    topics_per_dialogue: int = 3
    queries_per_dialogue: int = 3
    min_images: int = 2
    max_images: int = 5
    empty_query_rate: float = 0.15
    scattered_rate: float = 0.4
    reaction_rate: float = 0.15
    image_size: tuple[int, int] = (64, 112)
    heldout: bool = False

    @classmethod
    def for_split(cls, split: str, **overrides) -> SyntheticConfig:
        if split == "test_heldout":
            base = {"mean_turns": 75.0, "topics_per_dialogue": 5, "queries_per_dialogue": 4,
                    "min_images": 4, "max_images": 8, "heldout": True}
            base.update(overrides)
            return cls(**base)
        return cls(**overrides)


@dataclass
class SyntheticQuery:
    query: str
    query_topic: str  # "" when nothing matches
    kind: str  # "topic" | "aspect" | "photo" | "absent"
    utterance_ids: list[int]
    image_ids: list[int]


@dataclass
class SyntheticSample:
    """One dialogue and its queries (a dataset has one row per query)."""

    dialogue: Dialogue
    topics: list[str]
    queries: list[SyntheticQuery]
    layout: str  # "dense" | "scattered"
    language: str
    split: str
    aspects: list[str] = field(default_factory=list)  # per utterance: aspect name, "reaction" or "photo"


# ----------------------------------------------------------------------------------------------
# Pictures
# ----------------------------------------------------------------------------------------------
def draw_topic_image(topic: str, rng: random.Random, size: tuple[int, int] = (64, 112)) -> bytes:
    """A small PNG whose shapes, colours and layout depend on the topic (drawn, never copied)."""
    from PIL import Image, ImageDraw

    style = TOPICS[topic]["image"]
    w, h = rng.randint(*size), rng.randint(*size)

    def jitter(color, amount=25):
        return tuple(max(0, min(255, c + rng.randint(-amount, amount))) for c in color)

    c1, c2, c3 = (jitter(c) for c in style["colors"])
    image = Image.new("RGB", (w, h), jitter(style["bg"], 15))
    d = ImageDraw.Draw(image)
    s = min(w, h)
    cx, cy = w // 2 + rng.randint(-w // 10, w // 10), h // 2 + rng.randint(-h // 10, h // 10)
    shape = style["shape"]
    if shape == "house":
        d.rectangle([cx - s // 3, cy - s // 8, cx + s // 3, cy + s // 3], fill=c2)
        d.polygon([(cx - s // 2.4, cy - s // 8), (cx + s // 2.4, cy - s // 8), (cx, cy - s // 2.3)], fill=c1)
        d.rectangle([cx - s // 14, cy + s // 8, cx + s // 14, cy + s // 3], fill=c3)
    elif shape == "boxes":
        for i in range(rng.randint(3, 6)):
            bx, by = rng.randint(0, w - s // 3), rng.randint(h // 3, h - s // 4)
            d.rectangle([bx, by, bx + s // 3, by + s // 4], fill=(c1, c2)[i % 2], outline=c3)
    elif shape == "mountain":
        for i in range(rng.randint(2, 3)):
            px = rng.randint(s // 5, w - s // 5)
            top = rng.randint(h // 8, h // 2)
            d.polygon([(px - s // 2, h), (px + s // 2, h), (px, top)], fill=c1)
            d.polygon([(px - s // 10, top + s // 8), (px + s // 10, top + s // 8), (px, top)], fill=c2)
    elif shape == "beach":
        d.rectangle([0, h * 2 // 3, w, h], fill=c3)
        d.rectangle([0, h // 2, w, h * 2 // 3], fill=c2)
        r = s // 7
        sx, sy = rng.randint(r, w - r), rng.randint(r, h // 3)
        d.ellipse([sx - r, sy - r, sx + r, sy + r], fill=c1)
    elif shape == "cake":
        for i, (width, color) in enumerate(((s * 0.7, c1), (s * 0.5, c2))):
            y0 = cy + s // 6 - i * s // 5
            d.rectangle([cx - width / 2, y0 - s // 5, cx + width / 2, y0], fill=color)
        for i in range(rng.randint(2, 5)):
            x = cx - s // 5 + i * s // 10
            d.rectangle([x, cy - s // 3, x + 2, cy - s // 5 - s // 20], fill=c3)
    elif shape == "pot":
        d.ellipse([cx - s // 3, cy - s // 6, cx + s // 3, cy + s // 3], fill=c1)
        d.ellipse([cx - s // 4, cy - s // 8, cx + s // 4, cy + s // 12], fill=c2)
        d.rectangle([cx + s // 3, cy, cx + s // 2, cy + s // 16], fill=c1)
        for _ in range(3):
            x, y = rng.randint(cx - s // 5, cx + s // 5), rng.randint(cy - s // 10, cy + s // 20)
            d.ellipse([x - 3, y - 3, x + 3, y + 3], fill=c3)
    elif shape == "car":
        d.rectangle([cx - s // 2.5, cy - s // 10, cx + s // 2.5, cy + s // 8], fill=c1)
        d.rectangle([cx - s // 5, cy - s // 4, cx + s // 6, cy - s // 10], fill=c1)
        for wx in (cx - s // 4, cx + s // 4):
            d.ellipse([wx - s // 9, cy + s // 16, wx + s // 9, cy + s // 4], fill=c2)
        d.rectangle([cx - s // 7, cy - s // 5, cx + s // 9, cy - s // 8], fill=c3)
    elif shape == "document":
        d.rectangle([cx - s // 3, cy - s * 0.42, cx + s // 3, cy + s * 0.42], fill=c1, outline=c3)
        for i in range(rng.randint(4, 7)):
            y = cy - s * 0.35 + i * s // 9
            d.line([cx - s // 4, y, cx + rng.randint(0, s // 4), y], fill=c2, width=2)
    elif shape == "cat":
        r = s // 4
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=c1)
        for sign in (-1, 1):
            d.polygon([(cx + sign * r * 0.9, cy - r * 0.3), (cx + sign * r * 0.2, cy - r * 0.9),
                       (cx + sign * r, cy - r * 1.5)], fill=c1)
            d.ellipse([cx + sign * r // 2 - 3, cy - 4, cx + sign * r // 2 + 3, cy + 2], fill=c2)
        d.ellipse([cx - 2, cy + r // 3, cx + 2, cy + r // 3 + 3], fill=c3)
    elif shape == "notes":
        for _ in range(rng.randint(2, 4)):
            x, y = rng.randint(s // 6, w - s // 6), rng.randint(h // 2, h - s // 8)
            color = rng.choice((c1, c2, c3))
            d.ellipse([x - s // 12, y - s // 16, x + s // 12, y + s // 16], fill=color)
            d.line([x + s // 12, y, x + s // 12, y - s // 3], fill=color, width=2)
    elif shape == "ball":
        d.rectangle([0, h * 3 // 4, w, h], fill=c3)
        r = s // 4
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=c1, outline=c2)
        d.regular_polygon((cx, cy, r // 2.5), 5, fill=c2)
    elif shape == "flower":
        for _ in range(rng.randint(1, 3)):
            x, y = rng.randint(s // 5, w - s // 5), rng.randint(h // 4, h // 2)
            d.line([x, y, x, h], fill=c3, width=3)
            for k in range(5):
                dx, dy = ((-1, 0), (1, 0), (0, -1), (0, 1), (0, 0))[k]
                pr = s // 10
                d.ellipse([x + dx * pr - pr, y + dy * pr - pr, x + dx * pr + pr, y + dy * pr + pr],
                          fill=c1 if k < 4 else c2)
    elif shape == "bicycle":
        r = s // 5
        for wx in (cx - s // 4, cx + s // 4):
            d.ellipse([wx - r, cy - r // 2, wx + r, cy + r * 1.5], outline=c2, width=3)
        d.line([cx - s // 4, cy + r // 2, cx, cy - r // 2, cx + s // 4, cy + r // 2], fill=c1, width=3)
    elif shape == "tooth":
        d.rounded_rectangle([cx - s // 4, cy - s // 4, cx + s // 4, cy + s // 8], radius=s // 10, fill=c1)
        for sign in (-1, 1):
            d.rectangle([cx + sign * s // 8 - s // 16, cy, cx + sign * s // 8 + s // 16, cy + s // 3], fill=c1)
        d.ellipse([cx - 3, cy - s // 6, cx + 3, cy - s // 6 + 6], fill=c3)
    elif shape == "rings":
        r = s // 5
        d.ellipse([cx - r * 1.6, cy - r, cx + r * 0.4, cy + r], outline=c1, width=4)
        d.ellipse([cx - r * 0.4, cy - r, cx + r * 1.6, cy + r], outline=c1, width=4)
        d.regular_polygon((cx - r * 0.6, cy - r, 4), 4, fill=c2)
    elif shape == "book":
        d.rectangle([cx - s // 3, cy - s // 4, cx, cy + s // 4], fill=c2, outline=c1, width=3)
        d.rectangle([cx, cy - s // 4, cx + s // 3, cy + s // 4], fill=c2, outline=c1, width=3)
        for i in range(3):
            y = cy - s // 8 + i * s // 10
            d.line([cx - s // 4, y, cx - s // 20, y], fill=c3)
            d.line([cx + s // 20, y, cx + s // 4, y], fill=c3)
    else:  # pragma: no cover - every topic names a known shape
        raise ValueError(f"unknown shape {shape!r}")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


# ----------------------------------------------------------------------------------------------
# Text
# ----------------------------------------------------------------------------------------------
def _fill(template: str, topic: str, language: str, rng: random.Random) -> str:
    slots = {**SHARED_SLOTS[language], **TOPICS[topic][language].get("slots", {})}
    values = {name: rng.choice(choices) for name, choices in slots.items() if "{" + name + "}" in template}
    return template.format(**values)


def _templates(topic: str, language: str, aspect: str, heldout: bool) -> list[str]:
    lines = TOPICS[topic][language]["aspects"][aspect]
    if topic in HELDOUT_TOPICS:
        return list(lines)
    # The last template of each training-topic aspect is reserved for test_heldout.
    return lines[-1:] if heldout else lines[:-1]


def _topic_queries(topic: str, language: str, heldout: bool) -> list[str]:
    queries = TOPICS[topic][language]["topic"]
    if topic in HELDOUT_TOPICS:
        return list(queries)
    return queries[-1:] if heldout else queries[:-1]


def topic_pool(heldout: bool) -> tuple[str, ...]:
    """Topics a split draws from: training topics, or (test_heldout) held-out plus training ones."""
    return HELDOUT_TOPICS + TRAIN_TOPICS if heldout else TRAIN_TOPICS


# ----------------------------------------------------------------------------------------------
# Dialogues
# ----------------------------------------------------------------------------------------------
def _split_counts(total: int, parts: int, rng: random.Random, minimum: int) -> list[int]:
    counts = [minimum] * parts
    for _ in range(max(0, total - minimum * parts)):
        counts[rng.randrange(parts)] += 1
    return counts


def generate_dialogue(
    rng: random.Random, language: str = "en", config: SyntheticConfig = SyntheticConfig(),
    dialogue_id: str = "synthetic-0", split: str = "train_sft",
) -> SyntheticSample:
    """One dialogue with its queries and gold fragments, drawn from `rng`."""
    if language not in LANGUAGES:
        raise ValueError(f"language must be one of {LANGUAGES}, got {language!r}")
    pool = topic_pool(config.heldout)
    if config.heldout:  # at least two held-out topics in every held-out dialogue
        chosen = rng.sample(HELDOUT_TOPICS, 2) + rng.sample(TRAIN_TOPICS, config.topics_per_dialogue - 2)
        rng.shuffle(chosen)
    else:
        chosen = rng.sample(pool, config.topics_per_dialogue)
    k = len(chosen)
    num_turns = max(3 * k + config.max_images, round(rng.gauss(config.mean_turns, config.mean_turns * 0.2)))
    num_images = rng.randint(config.min_images, config.max_images)
    per_topic = _split_counts(num_turns - num_images, k, rng, minimum=3)
    images_per_topic = _split_counts(num_images, k, rng, minimum=0)

    # Per topic: a run of (aspect, text, image) turns: first aspect, then the second one.
    runs: dict[str, list[tuple[str, str, bytes | None, str | None]]] = {}
    for topic, count, n_img in zip(chosen, per_topic, images_per_topic):
        aspects = list(TOPICS[topic][language]["aspects"])
        rng.shuffle(aspects)
        first = rng.randint(1, count - 1)
        decks: dict[str, list[str]] = {}
        turns = []
        for i in range(count):
            aspect = aspects[0] if i < first else aspects[1]
            if i > 0 and rng.random() < config.reaction_rate:
                turns.append(("reaction", rng.choice(REACTIONS[language]), None, None))
                continue
            if not decks.get(aspect):  # draw templates without replacement, reshuffle when used up
                decks[aspect] = rng.sample(_templates(topic, language, aspect, config.heldout),
                                           len(_templates(topic, language, aspect, config.heldout)))
            text = _fill(decks[aspect].pop(), topic, language, rng)
            turns.append((aspect, text[:1].upper() + text[1:], None, None))
        for _ in range(n_img):
            picture = draw_topic_image(topic, rng, config.image_size)
            caption = rng.choice(TOPICS[topic][language]["captions"])
            turns.insert(rng.randint(1, len(turns)), ("photo", rng.choice(PHOTO_LINES[language]), picture, caption))
        runs[topic] = turns

    scattered = rng.random() < config.scattered_rate
    if scattered:  # cut each run into 2-3 chunks and interleave them, never two chunks of a topic in a row
        chunks: list[tuple[str, list]] = []
        for topic in chosen:
            turns = runs[topic]
            n = min(len(turns) // 2, rng.randint(2, 3))
            cuts = sorted(rng.sample(range(1, len(turns)), n - 1)) if n > 1 else []
            bounds = [0, *cuts, len(turns)]
            chunks += [(topic, turns[a:b]) for a, b in itertools.pairwise(bounds)]
        order = _interleave(chunks, rng)
    else:
        order = [(topic, runs[topic]) for topic in chosen]

    utterances, aspect_labels = [], []
    speaker = rng.randrange(2)
    for topic, turns in order:
        for aspect, text, picture, caption in turns:
            if utterances and rng.random() > 0.15:  # mostly alternate, sometimes a double turn
                speaker = 1 - speaker
            images = [DialogueImage(picture, caption, f"{dialogue_id}-{sum(len(u.images) for u in utterances)}.png")] \
                if picture is not None else []
            utterances.append(Utterance(SPEAKERS[speaker], text, images, topic=topic))
            aspect_labels.append(aspect)
    dialogue = Dialogue(utterances, dialogue_id)
    queries = _make_queries(dialogue, aspect_labels, chosen, language, config, rng)
    return SyntheticSample(dialogue, list(chosen), queries, "scattered" if scattered else "dense",
                           language, split, aspect_labels)


def _interleave(chunks: list[tuple[str, list]], rng: random.Random) -> list[tuple[str, list]]:
    """A random order of the chunks in which no topic follows itself where avoidable; chunks of
    one topic keep their order (a conversation does not run backwards)."""
    labels = [topic for topic, _ in chunks]
    rng.shuffle(labels)
    order: list[str] = []
    while labels:
        choices = [i for i, t in enumerate(labels) if not order or t != order[-1]]
        order.append(labels.pop(rng.choice(choices) if choices else 0))
    queues: dict[str, list] = {}
    for topic, turns in chunks:
        queues.setdefault(topic, []).append(turns)
    result: list[tuple[str, list]] = []
    for topic in order:
        turns = queues[topic].pop(0)
        if result and result[-1][0] == topic:
            result[-1] = (topic, result[-1][1] + turns)
        else:
            result.append((topic, turns))
    return result


def _make_queries(dialogue, aspects, chosen, language, config, rng) -> list[SyntheticQuery]:
    hosts = dialogue.image_hosts
    topics = [u.topic for u in dialogue.utterances]
    absent = [t for t in topic_pool(config.heldout) if t not in chosen]
    queries: list[SyntheticQuery] = []
    seen: set[tuple[str, str]] = set()
    for _ in range(config.queries_per_dialogue * 4):
        if len(queries) == config.queries_per_dialogue:
            break
        if rng.random() < config.empty_query_rate:
            topic = rng.choice(absent)
            key = ("absent", topic)
            text = rng.choice(_topic_queries(topic, language, config.heldout))
            if key not in seen:
                seen.add(key)
                queries.append(SyntheticQuery(text, "", "absent", [], []))
            continue
        topic = rng.choice(chosen)
        topic_images = [k for k, h in enumerate(hosts) if topics[h] == topic]
        kind = rng.choices(("topic", "aspect", "photo"), weights=(0.5, 0.35, 0.15))[0]
        if kind == "photo" and not topic_images:
            kind = "topic"
        data = TOPICS[topic][language]
        if kind == "topic":
            text = rng.choice(_topic_queries(topic, language, config.heldout))
            utts = [i for i, t in enumerate(topics) if t == topic]
            imgs, key = topic_images, ("topic", topic)
        elif kind == "aspect":
            aspect = rng.choice(sorted(data["aspect_queries"]))
            text = rng.choice(data["aspect_queries"][aspect])
            utts = [i for i, (t, a) in enumerate(zip(topics, aspects)) if t == topic and a == aspect]
            imgs, key = [], ("aspect", topic + "/" + aspect)
        else:
            text = rng.choice(data["photo"])
            imgs = topic_images
            utts = sorted({hosts[k] for k in imgs})
            key = ("photo", topic)
        if key in seen or not (utts or imgs):
            continue
        seen.add(key)
        queries.append(SyntheticQuery(text, topic, kind, sorted(utts), sorted(imgs)))
    return queries


def split_sizes(num_dialogues: int) -> dict[str, int]:
    """Dialogues per split for a build of `num_dialogues` (each split at least one)."""
    if num_dialogues < len(SPLITS):
        raise ValueError(f"num_dialogues must be at least {len(SPLITS)} (one per split), got {num_dialogues}")
    sizes = {s: max(1, int(num_dialogues * SPLIT_SHARES[s])) for s in SPLITS}
    sizes["train_sft"] += num_dialogues - sum(sizes.values())
    return sizes


def generate_split(
    split: str, num_dialogues: int, seed: int = 0, language: str = "en", **config_overrides
) -> list[SyntheticSample]:
    """`num_dialogues` samples of one split; `config_overrides` adjust `SyntheticConfig` fields."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")
    config = SyntheticConfig.for_split(split, **config_overrides)
    return [
        generate_dialogue(random.Random(f"{seed}/{split}/{i}"), language, config,
                          dialogue_id=f"synthetic-{language}-{split}-{i:05d}", split=split)
        for i in range(num_dialogues)
    ]
