"""Model cards for trained F2RVLM models: how it was trained, `model-index` metrics, the
evaluation table and the limitations, generated from the recipe record (`f2rvlm_recipe.json`,
written by every recipe stage) and evaluation reports (`recipes/evaluate.py`'s metrics.json).

>>> card = render_model_card({"sft": {"ModelArguments": {"model_name_or_path": "tiny:qwen2_vl:test"}}},
...                          {"validation": {"generate": {"joint_metrics": {"global_f1": 0.5}}}}, name="demo")
>>> "model-index" in card and "| validation | generate |" in card
True
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from typing import Any

#: A Hub repo id (`org/name`), as opposed to a folder on the machine that trained the model.
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_STAGES = ("sft", "curriculum", "grpo")

LIMITATIONS = """- Trained and evaluated on the data named above only. A tiny CPU model (`tiny:` base) is a demo of
  the pipeline on synthetic dialogues: it is not a general-purpose retriever and its numbers are
  not comparable with the paper's (Qwen2-VL-7B: joint F1 87.25 on MLDR validation, 62.07 on WeChat).
- `test_heldout` uses topics and templates absent from training; the gap to `validation` is the
  generalisation gap to expect on new conversations, and real chats differ further.
- The relevance head (modes `tagging`, `guided`) judges each utterance/image from the query-first
  prompt; query-last templates break it.
- Images are judged by a small vision tower (frozen in training); fine visual detail is not
  recognised. Very long dialogues are split into windows whose answers are unioned.
- Retrieval results can expose private conversation content: run it on chats you may process."""


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) else "-"


def evaluation_table(results: Mapping[str, Mapping[str, Mapping]]) -> str:
    """Markdown table: split x mode -> utterance / image / joint P, R, F1, MCC and latency."""
    header = ("| split | mode | utt P | utt R | utt F1 | utt MCC | img P | img R | img F1 | img MCC "
              "| joint P | joint R | joint F1 | joint MCC | s/query |")
    lines = [header, "|" + "---|" * 15]
    for split, modes in results.items():
        for mode, m in modes.items():
            cells = [split, mode]
            for key in ("sentence_metrics", "image_metrics", "joint_metrics"):
                block = m.get(key, {})
                cells += [_fmt(block.get(f"global_{k}")) for k in ("precision", "recall", "f1", "mcc")]
            sec = m.get("seconds_per_query")
            cells.append(f"{sec:.3f}" if isinstance(sec, (int, float)) else "-")
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def model_index(name: str, results: Mapping[str, Mapping[str, Mapping]], dataset: str) -> list[dict]:
    """The Hub `model-index` block: one result per split, joint/utterance/image F1 and MCC of the
    best mode (by joint F1)."""
    entries = []
    for split, modes in results.items():
        if not modes:
            continue
        mode, m = max(modes.items(), key=lambda kv: kv[1].get("joint_metrics", {}).get("global_f1", -1))
        metrics = []
        for key, label in (("joint_metrics", "joint"), ("sentence_metrics", "utterance"), ("image_metrics", "image")):
            for k in ("f1", "mcc"):
                v = m.get(key, {}).get(f"global_{k}")
                if v is not None:
                    metrics.append({"type": f"{label}_{k}", "value": float(v), "name": f"{label} {k.upper()} ({mode})"})
        entries.append({"task": {"type": "fragment-retrieval", "name": "Fine-grained fragment retrieval"},
                        "dataset": {"name": dataset, "type": dataset, "split": split}, "metrics": metrics})
    return [{"name": name, "results": entries}]


def hub_id(value) -> str | None:
    """`value` when it names a Hub repo (not a local folder), else the Hub id recorded in a local
    model folder's config (`_name_or_path`) or dataset card, else None."""
    if not isinstance(value, str) or not value or value.startswith("tiny:"):
        return None
    if not os.path.exists(value):
        return value if _HUB_ID.match(value) else None
    config = os.path.join(value, "config.json")
    try:
        with open(config, encoding="utf-8") as f:
            recorded = json.load(f).get("_name_or_path")
    except (OSError, ValueError, AttributeError):
        recorded = None
    if isinstance(recorded, str) and _HUB_ID.match(recorded) and not os.path.exists(recorded):
        return recorded
    return None


def _shown_path(value) -> str:
    """A path as the card may show it: a Hub id as is, a folder of the training machine as the Hub id
    it records, else by name only."""
    text = str(value)
    if not (os.path.isabs(text) or text.startswith(("~", ".")) or os.path.exists(text)):
        return text  # a Hub id or a plain name
    return hub_id(text) or f"<local>/{os.path.basename(os.path.normpath(text))}"


def _recorded(recipe: Mapping, block: str, key: str) -> list:
    return [recipe.get(stage, {}).get(block, {}).get(key) for stage in _STAGES
            if isinstance(recipe.get(stage), Mapping) and isinstance(recipe[stage].get(block), Mapping)]


def card_data(recipe: Mapping, results: Mapping | None = None, *, name: str = "F2RVLM", dataset: str = "mldr"):
    """The card's metadata as `huggingface_hub.ModelCardData`: `base_model` and `datasets` as Hub
    ids (local folders are resolved through their recorded Hub id, or left out), `model-index`
    from the best mode per split."""
    from huggingface_hub import EvalResult, ModelCardData

    bases = [b for b in (hub_id(v) for v in _recorded(recipe, "ModelArguments", "model_name_or_path")) if b]
    datasets = list(dict.fromkeys(d for d in (hub_id(v) for v in _recorded(recipe, "ScriptArguments", "dataset_path"))
                                  if d))
    eval_results = []
    for entry in model_index(name, results or {}, dataset)[0]["results"]:
        for metric in entry["metrics"]:
            eval_results.append(EvalResult(
                task_type=entry["task"]["type"], task_name=entry["task"]["name"],
                dataset_type=datasets[0] if datasets else dataset, dataset_name=dataset,
                dataset_split=entry["dataset"]["split"], metric_type=metric["type"], metric_value=metric["value"],
                metric_name=metric["name"]))
    return ModelCardData(
        model_name=name, library_name="transformers", pipeline_tag="image-text-to-text", license="apache-2.0",
        tags=["f2rvlm", "fragment-retrieval", "multimodal-dialogue", "trl", "grpo"],
        base_model=bases[0] if bases else None, datasets=datasets or None, eval_results=eval_results or None)


def render_model_card(recipe: Mapping, results: Mapping | None = None, *, name: str = "F2RVLM",
                      dataset: str = "mldr", command: str | None = None, notes: str = "") -> str:
    """Card text: front matter (model-index) + how it was trained + evaluation + limitations."""
    results = results or {}
    data = card_data(recipe, results, name=name, dataset=dataset)
    base = data.base_model or next((b for b in _recorded(recipe, "ModelArguments", "model_name_or_path") if b), None)
    stages = [s for s in _STAGES if s in recipe]
    parts = [f"---\n{data.to_yaml()}\n---\n", f"# {name}\n",
             ("Fine-grained fragment retrieval in long multimodal dialogues (F2RVLM, AAAI-2026, arXiv 2508.17714): "
              "given a dialogue with images and a query, the model answers "
              "`<|utt_ids_start|>[...]<|utt_ids_end|>;<|img_ids_start|>[...]<|img_ids_end|>`.\n"),
             ("```python\nfrom transformers import AutoModel, AutoProcessor\n"
              "model = AutoModel.from_pretrained(PATH, trust_remote_code=True)\n"
              "processor = AutoProcessor.from_pretrained(PATH, trust_remote_code=True)\n"
              "out = model.retrieve(dialogue, \"the photos from the lake\", processor=processor, mode=\"generate\")\n```\n"),
             "## How it was trained\n",
             (f"Base: `{_shown_path(base)}`. Stages: {' -> '.join(stages) or 'none recorded'} "
              "(recipes/sft.py, recipes/curriculum.py, recipes/grpo.py).\n")]
    if command:
        parts.append(f"Reproduce: `{command}`\n")
    if notes:
        parts.append(notes.strip() + "\n")
    parts.append("<details><summary>Recipe (every stage's resolved arguments)</summary>\n\n```json\n"
                 + json.dumps(_compact(recipe), indent=1, sort_keys=True) + "\n```\n</details>\n")
    parts.append("## Evaluation\n")
    if results:
        parts.append("Global (micro) metrics of the paper (docs/protocol.md §5); s/query: one query at a time on the "
                     "evaluation machine.\n\n" + evaluation_table(results) + "\n")
    else:
        parts.append("Not evaluated yet: run `python recipes/evaluate.py --model_name_or_path PATH ...`.\n")
    parts.append("## Limitations\n\n" + LIMITATIONS + "\n")
    return "\n".join(parts)


_NOISY = ("logging_dir", "hub_", "push_to_hub", "fsdp", "deepspeed", "ddp_", "dataloader_", "torch_", "tf32",
          "jit_", "neftune", "ray_", "optim_target", "liger", "accelerator_config", "debug", "past_index",
          "include_", "eval_", "prediction_", "label_", "mp_parameters", "full_determinism", "torchdynamo",
          "restore_callback", "skip_memory", "use_liger", "average_tokens", "batch_eval", "vllm_server",
          "vllm_gpu", "vllm_tensor", "vllm_model", "vllm_enable", "vllm_group", "vllm_importance", "vllm_max",
          "ds3", "parallelism", "trackio", "project", "chat_template_path")


def _compact(recipe: Mapping) -> dict:
    """The recipe record without the trainer arguments nobody tunes (keeps it readable)."""
    out = {}
    for stage, blocks in recipe.items():
        if not isinstance(blocks, Mapping):
            out[stage] = blocks
            continue
        out[stage] = {}
        for block, values in blocks.items():
            if isinstance(values, Mapping):
                values = {k: _shown_path(v) if isinstance(v, str) and ("path" in k or "dir" in k) else v
                          for k, v in values.items() if not k.startswith(_NOISY) and v not in (None, [], {})}
            out[stage][block] = values
    return out


def read_recipe(folder: str) -> dict:
    path = os.path.join(folder, "f2rvlm_recipe.json")
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def write_model_card(folder: str, recipe: Mapping | None = None, results: Mapping | None = None, **kwargs) -> str:
    """Write README.md (the card) and f2rvlm_recipe.json into an exported model folder."""
    recipe = dict(recipe if recipe is not None else read_recipe(folder))
    with open(os.path.join(folder, "README.md"), "w", encoding="utf-8") as f:
        f.write(render_model_card(recipe, results, **kwargs))
    with open(os.path.join(folder, "f2rvlm_recipe.json"), "w", encoding="utf-8") as f:
        json.dump(recipe, f, indent=1, sort_keys=True)
    if results:
        with open(os.path.join(folder, "eval_results.json"), "w", encoding="utf-8") as f:
            json.dump(results, f, indent=1)
    return os.path.join(folder, "README.md")
