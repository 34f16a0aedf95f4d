"""The small fixed sample set shipped in the package (tests, demo examples)."""

from __future__ import annotations

import json
import os

from ..core.dialogue import Dialogue

# ----------------------------------------------------------------------------------------------
# The small fixed sample set shipped in the package (tests, demo examples)
# ----------------------------------------------------------------------------------------------
from .schema import make_row

SAMPLES_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "assets", "samples")


def write_samples(folder: str = SAMPLES_DIR, seed: int = 7) -> list[str]:
    """(Re)write the sample set: `samples.json` + PNG files; returns the written paths."""
    from .synthetic import generate_split

    os.makedirs(folder, exist_ok=True)
    entries, written = [], []
    picks = [("en", "validation", 2), ("zh", "validation", 1)]
    for language, split, count in picks:
        for sample in generate_split(split, count, seed=seed, language=language):
            for k, image in enumerate(sample.dialogue.images):
                name = f"{sample.dialogue.dialogue_id}-{k}.png"
                with open(os.path.join(folder, name), "wb") as f:
                    f.write(image.to_bytes())
                written.append(os.path.join(folder, name))
                image.source, image.name = name, None
            entries.append({
                "dialogue": sample.dialogue.to_dict(), "language": language, "topics": sample.topics,
                "queries": [{"query": q.query, "query_topic": q.query_topic, "utterance_ids": q.utterance_ids,
                             "image_ids": q.image_ids} for q in sample.queries],
            })
    path = os.path.join(folder, "samples.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(entries, f, ensure_ascii=False, indent=1)
        f.write("\n")
    return [path, *written]


def load_samples(folder: str = SAMPLES_DIR) -> list[dict]:
    """The sample set: `[{"dialogue": Dialogue, "language", "topics", "queries": [...]}]`."""
    with open(os.path.join(folder, "samples.json"), encoding="utf-8") as f:
        entries = json.load(f)
    for entry in entries:
        entry["dialogue"] = Dialogue.from_dict(entry["dialogue"], base_dir=folder)
    return entries


def sample_rows(folder: str = SAMPLES_DIR) -> list[dict]:
    """The sample set as dataset rows (images embedded)."""
    rows = []
    for entry in load_samples(folder):
        for q in entry["queries"]:
            rows.append(make_row(entry["dialogue"], q["query"], q["utterance_ids"], q["image_ids"],
                                 language=entry["language"], source="synthetic", topics=entry["topics"],
                                 query_topic=q["query_topic"]))
    return rows
