"""Loading, exporting and converting F2RVLM model folders.

- `load_model(path_or_repo, device)`: a folder or a Hub repo id (the HF cache works offline).
- `export_model(src, out)`: a Hub-ready folder: safetensors weights, config with `auto_map`
  (AutoConfig, AutoModel, AutoModelForImageTextToText), processor files with `auto_map`
  (AutoProcessor) and the remote-code files (configuration/modeling/processing/generation
  _f2rvlm.py, protocol.py, dialogue.py), written atomically.
- `convert_released(base, adapter, out)`: the released PEFT LoRA adapter merged into its
  Qwen2-VL base, saved as an F2RVLM folder.
- `export_for_serving(src, out)`: the backbone in its native architecture (a stock Qwen-VL folder
  that vLLM, SGLang or transformers load without custom code), heads kept in a subfolder.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile

from .registry_f2rvlm import FAMILIES, family_for_model_type

#: Released image budget (`MAX_PIXELS=602112` in the released SFT, GRPO and inference scripts):
#: 602112 = 768 * 28 * 28, at most 768 merged vision tokens per image.
RELEASED_MAX_PIXELS = 602112

#: The remote-code files every exported folder carries, by package location (layer/module).
CODE_FILES = ("models/registry_f2rvlm.py", "models/configuration_f2rvlm.py", "models/modeling_f2rvlm.py",
              "models/retrieval_f2rvlm.py", "models/scorer_f2rvlm.py", "models/processing_f2rvlm.py", "models/generation_f2rvlm.py",
              "core/protocol.py", "core/dialogue.py")
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: In the package the model files reach the protocol core one layer down (`from ..core.protocol`);
#: a Hub folder is flat, so the same import reads `from .protocol` there.
_CORE_IMPORT = re.compile(r"^(\s*)from \.\.core(\.(\w+))? import ", re.MULTILINE)


def remote_code_files() -> dict[str, str]:
    """{file name: source} of the remote-code files as a flat Hub folder carries them."""
    files = {}
    for rel_path in CODE_FILES:
        with open(os.path.join(_PACKAGE_DIR, rel_path), encoding="utf-8") as f:
            source = f.read()
        files[os.path.basename(rel_path)] = _CORE_IMPORT.sub(
            lambda m: f"{m.group(1)}from .{m.group(3) or ''} import ", source)
    return files


def write_remote_code(out: str) -> list[str]:
    """Write the remote-code files into a model folder (export, and `make sync-demo-code`)."""
    written = []
    for name, source in remote_code_files().items():
        with open(os.path.join(out, name), "w", encoding="utf-8") as f:
            f.write(source)
        written.append(name)
    return written


#: Released LoRA adapter key names (ms-swift on transformers 4.4x: Qwen2-VL's language model at
#: `model.layers`, the vision tower at `visual`) -> this package's layout (`model.language_model`,
#: `model.visual`). Without it PEFT silently skips every released LoRA weight (tests pin it).
RELEASED_ADAPTER_KEY_MAP = (
    (re.compile(r"^base_model\.model\.model\.(?!language_model\.|visual\.)"), "base_model.model.model.language_model."),
    (re.compile(r"^base_model\.model\.visual\."), "base_model.model.model.visual."),
)


def released_adapter_key(name: str) -> str:
    """Our name of a released adapter weight (names already in our layout pass unchanged).

    >>> released_adapter_key("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight")
    'base_model.model.model.language_model.layers.0.self_attn.q_proj.lora_A.weight'
    """
    for pattern, replacement in RELEASED_ADAPTER_KEY_MAP:
        name = pattern.sub(replacement, name)
    return name


def _adapter_in_our_layout(adapter: str, workdir: str) -> str:
    """The adapter folder, or a copy under `workdir` with released key names mapped to ours."""
    from safetensors.torch import load_file, save_file

    weights = os.path.join(adapter, "adapter_model.safetensors")
    if not os.path.isfile(weights):
        return adapter
    state = load_file(weights)
    mapped = {released_adapter_key(k): v for k, v in state.items()}
    if list(mapped) == list(state):
        return adapter
    shutil.copytree(adapter, workdir, dirs_exist_ok=True)
    save_file(mapped, os.path.join(workdir, "adapter_model.safetensors"))
    return workdir


class ModelFolderError(ValueError):
    """A path is not a loadable F2RVLM model folder; the message says why in one line."""


def register() -> None:
    """Register the F2RVLM classes with AutoConfig / AutoModel / AutoModelForImageTextToText /
    AutoProcessor (idempotent)."""
    from transformers import AutoConfig, AutoModel, AutoModelForImageTextToText, AutoProcessor

    from .configuration_f2rvlm import CONFIG_CLASSES
    from .modeling_f2rvlm import MODEL_CLASSES
    from .processing_f2rvlm import F2RVLMProcessor

    for family, config_class in CONFIG_CLASSES.items():
        AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
        for auto in (AutoModel, AutoModelForImageTextToText):
            auto.register(config_class, MODEL_CLASSES[family], exist_ok=True)
        AutoProcessor.register(config_class, F2RVLMProcessor, exist_ok=True)


def _check_folder(path: str) -> None:
    config_file = os.path.join(path, "config.json")
    if not os.path.isfile(config_file):
        raise ModelFolderError(f"{path}: not a model folder (no config.json)")
    with open(config_file, encoding="utf-8") as f:
        model_type = json.load(f).get("model_type")
    if model_type not in {family.model_type for family in FAMILIES.values()}:
        raise ModelFolderError(f"{path}: not an F2RVLM model folder (model_type {model_type!r}); "
                               "convert a stock Qwen-VL model with `f2rvlm convert`")
    if not any(name.endswith(".safetensors") for name in os.listdir(path)):
        raise ModelFolderError(f"{path}: the folder has no .safetensors weights")


def load_model(path_or_repo: str, device: str = "cpu", dtype=None):
    """(model, processor) from an F2RVLM folder or Hub repo id (offline from the HF cache).

    >>> model, processor = load_model("outputs/demo-model")  # doctest: +SKIP
    """
    from transformers import AutoModelForImageTextToText, AutoProcessor

    register()
    if os.path.isdir(path_or_repo):
        _check_folder(path_or_repo)
    elif os.path.sep in path_or_repo.rstrip("/").lstrip("./") and path_or_repo.count("/") > 1:
        raise ModelFolderError(f"{path_or_repo}: no such folder")
    try:
        model = AutoModelForImageTextToText.from_pretrained(path_or_repo, dtype=dtype or "auto")
        processor = AutoProcessor.from_pretrained(path_or_repo)
    except OSError as err:
        raise ModelFolderError(f"{path_or_repo}: cannot load an F2RVLM model ({str(err).splitlines()[0]})") from None
    if getattr(model.config, "model_type", None) not in {family.model_type for family in FAMILIES.values()}:
        raise ModelFolderError(f"{path_or_repo}: not an F2RVLM model ({type(model).__name__})")
    model.to(device).eval()
    return model, processor


def load_with_text_scorer(vlm: str, scorer_config: dict, scorer_state: dict, scorer_tokenizer, settings: dict):
    """(model, processor): the F2RVLM folder `vlm` with a text scorer inside: its BERT config
    (`config.text_scorer`), encoder weights and tokenizer, and the `text_scorer_*` settings on the config.
    The VLM's own weights are kept as they are (recipes/train_scorer.py attaches a fine-tuned encoder;
    recipes/ablation.py puts the default model's scorer around each stage's VLM)."""
    from .modeling_f2rvlm import MODEL_CLASSES

    base, processor = load_model(vlm)
    config = base.config
    config.text_scorer = dict(scorer_config)
    for key, value in settings.items():
        setattr(config, key, value)
    model = MODEL_CLASSES[family_for_model_type(config.model_type).name](config)
    missing, unexpected = model.load_state_dict(base.state_dict(), strict=False)
    if unexpected or any(not k.startswith("text_scorer.") for k in missing):
        raise RuntimeError(f"VLM weights of {vlm} did not map: missing {missing[:5]}, unexpected {unexpected[:5]}")
    model.text_scorer.encoder.load_state_dict(scorer_state)
    processor.scorer_tokenizer = scorer_tokenizer
    return model.eval(), processor


def save_f2rvlm_folder(model, processor, out: str) -> str:
    """save_pretrained with remote code: safetensors, code files, auto_map for every Auto class."""
    from .modeling_f2rvlm import F2RVLMMixin

    if not isinstance(model, F2RVLMMixin):
        raise TypeError(f"expected an F2RVLM model, got {type(model).__name__}")
    os.makedirs(out, exist_ok=True)
    # auto_map is written by hand: transformers' own remote-code copy (register_for_auto_class)
    # follows relative imports on disk, and ours reach the protocol core one package up.
    model.save_pretrained(out)
    processor.save_pretrained(out)
    write_remote_code(out)
    model_ref = f"modeling_f2rvlm.{type(model).__name__}"
    _set_auto_map(os.path.join(out, "config.json"), {
        "AutoConfig": f"configuration_f2rvlm.{type(model.config).__name__}",
        "AutoModel": model_ref,
        "AutoModelForImageTextToText": model_ref,
    })
    processor_ref = {"AutoProcessor": f"processing_f2rvlm.{type(processor).__name__}"}
    for name in ("processor_config.json", "tokenizer_config.json"):
        if os.path.isfile(os.path.join(out, name)):
            _set_auto_map(os.path.join(out, name), processor_ref)
    leftovers = [n for n in os.listdir(out) if n.endswith((".bin", ".pt", ".pth"))]
    if leftovers:
        raise RuntimeError(f"non-safetensors weights were written: {leftovers}")
    return out


def _set_auto_map(path: str, auto_map: dict) -> None:
    """Add `auto_map` to a saved JSON file (and to a nested image_processor block, as transformers does)."""
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    data["auto_map"] = auto_map
    if isinstance(data.get("image_processor"), dict):
        data["image_processor"]["auto_map"] = auto_map
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")


def _atomic_write(out: str, overwrite: bool, write) -> str:
    out = os.path.abspath(out)
    if os.path.exists(out) and (not os.path.isdir(out) or os.listdir(out)) and not overwrite:
        raise FileExistsError(f"{out} exists and is not empty; pass overwrite=True (--overwrite) to replace it")
    parent = os.path.dirname(out)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".f2rvlm-", dir=parent)
    try:
        write(tmp)
        if os.path.exists(out):
            old = tempfile.mkdtemp(prefix=".f2rvlm-old-", dir=parent)
            os.rename(out, os.path.join(old, "x"))
            os.rename(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def export_model(src: str, out: str, overwrite: bool = False) -> str:
    """Write `src` (an F2RVLM folder, repo id or trained checkpoint) as a Hub-ready folder."""
    model, processor = load_model(src)
    return _atomic_write(out, overwrite, lambda tmp: save_f2rvlm_folder(model, processor, tmp))


def convert_released(base: str, adapter: str, out: str, overwrite: bool = False, family: str | None = None,
                     max_pixels: int | None = RELEASED_MAX_PIXELS) -> str:
    """Merge the released LoRA adapter into its stock Qwen-VL base and save an F2RVLM folder.

    `base` is a stock Qwen2-VL(-7B-Instruct) folder or repo id; the stock AutoProcessor needs
    torchvision, so the processor is rebuilt from the base's tokenizer + image processor files.
    The processor keeps the released image budget (`max_pixels`, written as the image
    processor's `size.longest_edge`; None keeps the base's).
    """
    import torch
    from peft import PeftModel
    from transformers import AutoConfig, AutoTokenizer
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    from .configuration_f2rvlm import CONFIG_CLASSES
    from .modeling_f2rvlm import MODEL_CLASSES
    from .processing_f2rvlm import F2RVLMProcessor

    register()
    base_config = AutoConfig.from_pretrained(base)
    if family is None:
        try:
            family = family_for_model_type(base_config.model_type).name
        except ValueError:
            raise ModelFolderError(f"{base}: base model_type {base_config.model_type!r} is not a supported "
                                   "Qwen-VL backbone") from None
    config = CONFIG_CLASSES[family](**{k: v for k, v in base_config.to_dict().items()
                                       if k not in ("model_type", "architectures", "auto_map", "transformers_version")})
    model = MODEL_CLASSES[family].from_pretrained(base, config=config, dtype=torch.float32 if
                                                  base_config.dtype in (None, "float32") else "auto")
    with tempfile.TemporaryDirectory() as workdir:
        adapter_dir = _adapter_in_our_layout(adapter, os.path.join(workdir, "adapter"))
        model = PeftModel.from_pretrained(model, adapter_dir)
        loaded = {n for n, _ in model.named_parameters() if "lora_" in n}
        if not loaded:
            raise ModelFolderError(f"{adapter}: no LoRA weights matched the base model's modules")
        model = model.merge_and_unload()
    tokenizer = AutoTokenizer.from_pretrained(base)
    image_processor = Qwen2VLImageProcessorPil.from_pretrained(
        base, **({} if max_pixels is None else {"max_pixels": int(max_pixels)}))
    processor = F2RVLMProcessor(image_processor=image_processor, tokenizer=tokenizer,
                                chat_template=getattr(tokenizer, "chat_template", None))
    return _atomic_write(out, overwrite, lambda tmp: save_f2rvlm_folder(model, processor, tmp))


#: Family -> the stock transformers classes of its backbone (config, model), by name.
STOCK_CLASSES = {
    "qwen2_vl": ("Qwen2VLConfig", "Qwen2VLForConditionalGeneration"),
    "qwen2_5_vl": ("Qwen2_5_VLConfig", "Qwen2_5_VLForConditionalGeneration"),
    "qwen3_vl": ("Qwen3VLConfig", "Qwen3VLForConditionalGeneration"),
}
#: Stock processor class per family (written into the processor files; never instantiated here:
#: the stock Qwen-VL processors need torchvision for their video processor).
STOCK_PROCESSORS = {"qwen2_vl": "Qwen2VLProcessor", "qwen2_5_vl": "Qwen2_5_VLProcessor", "qwen3_vl": "Qwen3VLProcessor"}
#: Where a serving folder keeps what served generation does not use (heads, text scorer, F2RVLM config).
SERVING_EXTRAS = "f2rvlm_extras"
_HEAD_PREFIXES = ("relevance_head.", "topic_head.", "text_scorer.")
_SERVING_README = """# {name} (serving export)

The backbone of an F2RVLM checkpoint in its native `{model_type}` architecture
(`{architecture}`): vLLM, SGLang and transformers load this folder without custom code.

    vllm serve . --limit-mm-per-prompt '{{"image": 64}}'    # or: f2rvlm serve --model .

Served generation is the paper's generate mode: the model writes
`<|utt_ids_start|>[...]<|utt_ids_end|>;<|img_ids_start|>[...]<|img_ids_end|>`. Send the answer
grammar with each request (`f2rvlm.core.protocol.answer_regex`, as vLLM `structured_outputs`);
`f2rvlm.client.RetrievalClient` renders the released prompt, sends it and parses the answer.

`{extras}/` holds what served generation does NOT use: {extras_list}. They serve the in-process
"tagging" / "guided" modes (`f2rvlm.models.hub.load_model` on the original F2RVLM folder).
"""


def export_for_serving(src: str, out: str, overwrite: bool = False) -> str:
    """Write `src` (an F2RVLM folder or Hub repo id) as a stock Qwen-VL folder for serving.

    - `config.json`: the stock config (`model_type` qwen2_vl / qwen2_5_vl / qwen3_vl, no `auto_map`),
      the retrieval fields removed; for Qwen2-VL / Qwen2.5-VL the text settings are also written at
      the top level and the rope settings also as `rope_scaling` / `rope_theta`, the way
      transformers 4.x (and the released folders) write them, so engines pinned to transformers 4
      read it too.
    - weights: saved by the stock `...ForConditionalGeneration` class (its checkpoint key names);
      every backbone weight must load, only head weights may be left over.
    - tokenizer files, `chat_template.jinja` (also inside `tokenizer_config.json`),
      `preprocessor_config.json` (the image processor, `max_pixels` / `min_pixels` included),
      `generation_config.json`.
    - `f2rvlm_extras/`: relevance/topic head weights (`heads.safetensors`), the text scorer's
      weights and tokenizer, and the F2RVLM `config.json` they belong to; `README.md` says that
      served generation does not use them.
    """
    import dataclasses

    import torch
    import transformers
    from huggingface_hub import snapshot_download
    from safetensors import safe_open
    from safetensors.torch import save_file
    from transformers import AutoConfig, GenerationConfig

    from .configuration_f2rvlm import F2RVLMConfigMixin
    from .processing_f2rvlm import F2RVLMProcessor

    register()
    if os.path.isdir(src):
        _check_folder(src)
        folder = src
    else:
        folder = snapshot_download(src)
    config = AutoConfig.from_pretrained(folder)
    family = family_for_model_type(config.model_type).name
    config_name, model_name = STOCK_CLASSES[family]
    retrieval_fields = {f.name for f in dataclasses.fields(F2RVLMConfigMixin)}
    stock_config = getattr(transformers, config_name)(**{
        k: v for k, v in config.to_dict().items()
        if k not in retrieval_fields and k not in ("model_type", "architectures", "auto_map", "transformers_version")})
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # the head weights left over are expected: checked below
    try:
        model, info = getattr(transformers, model_name).from_pretrained(
            folder, config=stock_config, dtype="auto", output_loading_info=True)
    finally:
        transformers.logging.set_verbosity(verbosity)
    leftover = [k for k in info["unexpected_keys"] if not k.startswith(_HEAD_PREFIXES)]
    if info["missing_keys"] or leftover or info.get("mismatched_keys"):
        raise ModelFolderError(f"{src}: the backbone weights do not fit {model_name} (missing "
                               f"{sorted(info['missing_keys'])[:5]}, unexpected {leftover[:5]})")
    processor = F2RVLMProcessor.from_pretrained(folder)
    heads = {}
    for name in sorted(n for n in os.listdir(folder) if n.endswith(".safetensors")):
        with safe_open(os.path.join(folder, name), "pt") as f:  # a safetensors handle: keys() only
            heads.update({k: f.get_tensor(k) for k in f.keys() if k.startswith(_HEAD_PREFIXES)})  # noqa: SIM118

    def write(tmp: str) -> None:
        model.save_pretrained(tmp)
        try:
            GenerationConfig.from_pretrained(folder).save_pretrained(tmp)
        except OSError:
            pass  # no generation_config.json: the stock one written by save_pretrained stays
        _write_stock_processor(processor, tmp, STOCK_PROCESSORS[family])
        if family in ("qwen2_vl", "qwen2_5_vl"):  # released under transformers 4.x (Qwen3-VL: 4.57+, v5 keys)
            _add_legacy_config_keys(os.path.join(tmp, "config.json"))
        extras = os.path.join(tmp, SERVING_EXTRAS)
        os.makedirs(extras)
        config.save_pretrained(extras)
        _drop_auto_map(os.path.join(extras, "config.json"))
        kept = ["the F2RVLM `config.json` (retrieval settings)"]
        if heads:
            save_file({k: v.contiguous() for k, v in heads.items()}, os.path.join(extras, "heads.safetensors"))
            kept.append("head / text-scorer weights (`heads.safetensors`: "
                        + ", ".join(sorted({k.split(".")[0] for k in heads})) + ")")
        if processor.scorer_tokenizer is not None:
            processor.scorer_tokenizer.save_pretrained(os.path.join(extras, F2RVLMProcessor.SCORER_SUBFOLDER))
            kept.append(f"the text scorer's tokenizer (`{F2RVLMProcessor.SCORER_SUBFOLDER}/`)")
        with open(os.path.join(tmp, "README.md"), "w", encoding="utf-8") as f:
            f.write(_SERVING_README.format(name=os.path.basename(os.path.abspath(out)), model_type=family,
                                           architecture=model_name, extras=SERVING_EXTRAS, extras_list="; ".join(kept)))
        leftovers = [n for n in os.listdir(tmp) if n.endswith((".py", ".bin", ".pt", ".pth"))]
        if leftovers:
            raise RuntimeError(f"a serving folder must hold no code or pickled weights: {leftovers}")

    with torch.no_grad():
        return _atomic_write(out, overwrite, write)


def _write_stock_processor(processor, out: str, processor_class: str) -> None:
    """Tokenizer + image processor + chat template in the stock Qwen-VL file layout (what the
    released Qwen2-VL folders carry), with no reference to F2RVLM code."""
    processor.tokenizer.save_pretrained(out)
    processor.image_processor.save_pretrained(out)
    template = processor.chat_template or processor.tokenizer.chat_template
    with open(os.path.join(out, "chat_template.jinja"), "w", encoding="utf-8") as f:
        f.write(template)
    for name in ("tokenizer_config.json", "preprocessor_config.json"):
        path = os.path.join(out, name)
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        data.pop("auto_map", None)
        data["processor_class"] = processor_class
        if name == "tokenizer_config.json":
            data["chat_template"] = template
        else:  # transformers 4.x reads the pixel budget under these names
            data["image_processor_type"] = "Qwen2VLImageProcessor"
            size = data.get("size") or {}
            if "shortest_edge" in size and "longest_edge" in size:
                data["min_pixels"], data["max_pixels"] = size["shortest_edge"], size["longest_edge"]
        with open(path, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, sort_keys=True, ensure_ascii=False)
            f.write("\n")


def _add_legacy_config_keys(path: str) -> None:
    """Top-level text settings and `rope_scaling` / `rope_theta` (transformers 4.x names) beside
    the nested v5 ones; transformers 5 reads the folder the same (tested)."""
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    text = data.get("text_config") or {}
    rope = text.get("rope_parameters") or {}
    if "mrope_section" in rope:
        legacy = {"type": "mrope", "mrope_section": rope["mrope_section"]}
        text.setdefault("rope_scaling", legacy)
        data.setdefault("rope_scaling", legacy)
    if "rope_theta" in rope:
        text.setdefault("rope_theta", rope["rope_theta"])
        data.setdefault("rope_theta", rope["rope_theta"])
    for key, value in text.items():
        if key not in ("model_type", "dtype", "rope_parameters", "layer_types"):
            data.setdefault(key, value)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")


def _drop_auto_map(path: str) -> None:
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    data.pop("auto_map", None)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")


__all__ = ["STOCK_CLASSES", "ModelFolderError", "convert_released", "export_for_serving", "export_model", "load_model",
           "register", "save_f2rvlm_folder"]
