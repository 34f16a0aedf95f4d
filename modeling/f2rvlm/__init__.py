"""F2RVLM: fine-grained fragment retrieval in long multimodal dialogues.

Light at import: protocol and dialogue helpers are plain Python; the model classes (and their
registration with transformers' Auto classes) load on first use of `f2rvlm.F2RVLM*` or when
`f2rvlm.register()` is called.
"""

from .core.dialogue import Dialogue, DialogueError, DialogueImage, Utterance, as_dialogue
from .core.protocol import (
    Answer,
    AnswerGrammar,
    build_messages,
    contiguous_spans,
    parse_answer,
    parse_prompt,
    render_answer,
    render_prompt,
)

__version__ = "0.1.0"

__all__ = [
    "Answer", "AnswerGrammar", "Dialogue", "DialogueError", "DialogueImage", "Utterance", "as_dialogue",
    "build_messages", "contiguous_spans", "parse_answer", "parse_prompt", "register", "render_answer",
    "render_prompt",
]

# Model classes load lazily (torch + transformers take seconds to import). Accessing any of them,
# or calling `register()`, registers the F2RVLM classes with AutoConfig / AutoModel /
# AutoModelForImageTextToText / AutoProcessor, so `AutoModel.from_pretrained(folder)` then works
# without trust_remote_code. `import f2rvlm` alone does not register (measured: it would add ~4 s).
_LAZY = {
    "F2RVLMQwen2VLConfig": "models.configuration_f2rvlm",
    "F2RVLMQwen2_5_VLConfig": "models.configuration_f2rvlm",
    "F2RVLMQwen3VLConfig": "models.configuration_f2rvlm",
    "F2RVLMQwen2VLForConditionalGeneration": "models.modeling_f2rvlm",
    "F2RVLMQwen2_5_VLForConditionalGeneration": "models.modeling_f2rvlm",
    "F2RVLMQwen3VLForConditionalGeneration": "models.modeling_f2rvlm",
    "F2RVLMOutput": "models.modeling_f2rvlm",
    "RetrievalResult": "models.retrieval_f2rvlm",
    "F2RVLMProcessor": "models.processing_f2rvlm",
    "F2RVLMCollator": "models.processing_f2rvlm",
    "load_model": "models.hub",
}


def register() -> None:
    """Register the F2RVLM classes with the transformers Auto classes (idempotent)."""
    from .models.hub import register as _register

    _register()


def __getattr__(name):
    if name in _LAZY:
        import importlib

        register()
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
