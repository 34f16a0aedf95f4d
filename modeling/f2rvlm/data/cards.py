"""Dataset cards: statistics computed from the rows, the card text with its YAML `configs:` block."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence

from ..core.protocol import (
    contiguous_spans,
)

# ----------------------------------------------------------------------------------------------
# Statistics and cards
# ----------------------------------------------------------------------------------------------
from .schema import CITATION, STATS_BEGIN, STATS_END, ConversionReport


def compute_statistics(rows: Iterable[Mapping]) -> dict:
    """Statistics of rows (images are not needed: counts come from `image_captions`)."""
    dialogues: dict[str, Mapping] = {}
    queries = empty = 0
    frag_utts, frag_imgs, frag_spans = [], [], []
    for row in rows:
        queries += 1
        dialogues.setdefault(row["dialogue_id"], row)
        u, i = row["gold_utterance_ids"], row["gold_image_ids"]
        if not u and not i:
            empty += 1
            continue
        frag_utts.append(len(u))
        frag_imgs.append(len(i))
        frag_spans.append(len(contiguous_spans(u)))
    turns = [d["num_turns"] for d in dialogues.values()]
    images = [len(d["image_captions"] or []) for d in dialogues.values()]
    topics = [len(d["topics"] or []) for d in dialogues.values()]

    def mean(values):
        return round(statistics.fmean(values), 2) if values else 0.0

    return {
        "dialogues": len(dialogues), "queries": queries,
        "turns_mean": mean(turns), "turns_max": max(turns, default=0),
        "images_per_dialogue_mean": mean(images), "images_per_dialogue_max": max(images, default=0),
        "topics_per_dialogue_mean": mean(topics),
        "fragment_utterances_mean": mean(frag_utts), "fragment_images_mean": mean(frag_imgs),
        "fragment_spans_mean": mean(frag_spans),
        "empty_gold_share": round(empty / queries, 4) if queries else 0.0,
    }


_STAT_COLUMNS = (
    ("dialogues", "dialogues"), ("queries", "queries"), ("turns_mean", "turns (mean)"),
    ("turns_max", "turns (max)"), ("images_per_dialogue_mean", "images / dialogue (mean)"),
    ("images_per_dialogue_max", "images / dialogue (max)"), ("topics_per_dialogue_mean", "topics / dialogue"),
    ("fragment_utterances_mean", "gold utterances / query"), ("fragment_images_mean", "gold images / query"),
    ("fragment_spans_mean", "runs / fragment"), ("empty_gold_share", "empty-gold queries"),
)


def statistics_table(stats_by_split: Mapping[str, Mapping]) -> str:
    """Markdown table, one row per split (the block the card carries)."""
    head = "| split | " + " | ".join(label for _, label in _STAT_COLUMNS) + " |"
    rule = "|---|" + "---:|" * len(_STAT_COLUMNS)
    lines = [head, rule]
    for split, stats in stats_by_split.items():
        cells = []
        for key, _ in _STAT_COLUMNS:
            value = stats[key]
            cells.append(f"{value:.1%}" if key == "empty_gold_share" else str(value))
        lines.append(f"| {split} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def statistics_by_split(splits: Mapping[str, Sequence[Mapping]]) -> dict[str, dict]:
    return {split: compute_statistics(rows) for split, rows in splits.items()}


def card_statistics_block(card: str) -> str:
    """The statistics table inside a card (between the statistics markers)."""
    start, end = card.find(STATS_BEGIN), card.find(STATS_END)
    if start < 0 or end < 0:
        raise ValueError("the card has no statistics block")
    return card[start + len(STATS_BEGIN): end].strip()


_FEATURES_DOC = """| column | type | meaning |
|---|---|---|
| `dialogue_id` | string | one dialogue appears in as many rows as it has queries |
| `query` | string | the text query |
| `language` | string | `en` or `zh` (the prompt template to render with) |
| `utterances` | list of `{id: int32, speaker: string, text: string, image_ids: list<int32>, topic: string, image_positions: list<int32>}` | `id` is 0..N-1; `image_ids` index `images`; `topic` is `""` when unknown; `image_positions` is `[]` for the default layout (text, then the image tags) or each image's character offset in `text` |
| `images` | `List(Image())` | every picture of the dialogue, embedded; index = image id (order of appearance) |
| `image_captions` | list<string> (nullable) | one per image |
| `gold_utterance_ids` | list<int32> | sorted; utterance ids of the fragment |
| `gold_image_ids` | list<int32> | sorted; image ids of the fragment |
| `solution` | string | the gold answer, `<\\|utt_ids_start\\|>[..]<\\|utt_ids_end\\|>;<\\|img_ids_start\\|>[..]<\\|img_ids_end\\|>` |
| `num_turns` | int32 | number of utterances |
| `topics` | list<string> | distinct topics of the dialogue (empty when unknown) |
| `query_topic` | string | the topic the query is about; `""` when nothing matches or unknown |
| `source` | string | `synthetic`, `mldr-release`, `wechat-release`, `wechat-raw` |
| `difficulty` | string (nullable) | filled by the curriculum: easy / middle / confusing / hard |

Both gold lists empty means "nothing in the dialogue matches the query"."""

_USAGE = """```python
from datasets import load_dataset
from f2rvlm import Dialogue, render_prompt

ds = load_dataset("{repo}", "{config}", split="{split}")
row = ds[0]
dialogue = Dialogue.from_row(row)                           # images decoded as PIL
prompt = render_prompt(dialogue, row["query"], template=row["language"])
row["solution"]                                             # the answer the model should write
```"""


def render_card(*, title: str, config_name: str, splits: Sequence[str], stats: Mapping[str, Mapping],
                description: str, license: str, license_note: str, languages: Sequence[str],
                reports: Sequence[ConversionReport] = (), repo: str = "org/mldr", extra: str = "") -> str:
    """A dataset card: YAML front matter with `configs:`, features, statistics, citation."""
    total = sum(s["queries"] for s in stats.values())
    size = "n<1K" if total < 1000 else "1K<n<10K" if total < 10_000 else "10K<n<100K" if total < 100_000 else "100K<n<1M"
    yaml_lines = [
        "---", f"license: {license}", "language:", *[f"- {lang}" for lang in languages],
        f"pretty_name: {title}", "task_categories:", "- visual-question-answering", "- text-retrieval",
        "tags:", "- multimodal", "- dialogue", "- retrieval", "- f2rvlm", "size_categories:", f"- {size}",
        "configs:", f"- config_name: {config_name}", "  default: true", "  data_files:",
    ]
    for split in splits:
        yaml_lines += [f"  - split: {split}", f"    path: data/{split}-*.parquet"]
    yaml_lines.append("---")
    parts = [
        "\n".join(yaml_lines), f"# {title}", description.strip(),
        "## Loading",
        _USAGE.format(repo=repo, config=config_name, split="validation" if "validation" in splits else splits[-1]),
        "## Features", _FEATURES_DOC,
        "## Statistics",
        ("Computed from the data when the folder was built (turn and image counts per dialogue, "
         "fragment sizes per non-empty query)."),
        f"{STATS_BEGIN}\n{statistics_table(stats)}\n{STATS_END}",
    ]
    if reports:
        lines = [f"- {r.summary()}" for r in reports]
        parts += ["## Conversion report", "\n".join(lines)]
    if extra:
        parts.append(extra.strip())
    parts += ["## License", license_note.strip(), "## Citation", f"```bibtex\n{CITATION}\n```"]
    return "\n\n".join(parts) + "\n"
