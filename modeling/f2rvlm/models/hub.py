"""Loading, exporting and converting F2RVLM model folders.

- `load_model(path_or_repo, device)`: a folder or a Hub repo id (the HF cache works offline).
- `export_model(src, out)`: a Hub-ready folder: safetensors weights, config with `auto_map`
  (AutoConfig, AutoModel, AutoModelForImageTextToText), processor files with `auto_map`
  (AutoProcessor) and the remote-code files (configuration/modeling/processing/generation
  _f2rvlm.py, protocol.py, dialogue.py), written atomically.
- `convert_released(base, adapter, out)`: the released PEFT LoRA adapter merged into its
  Qwen2-VL base, saved as an F2RVLM folder.
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


__all__ = ["ModelFolderError", "convert_released", "export_model", "load_model", "register", "save_f2rvlm_folder"]
