"""F2RVLM: fine-grained fragment retrieval in long multimodal dialogues.

Light at import: protocol and dialogue helpers are plain Python; the model classes (and their
registration with transformers' Auto classes) load on first use of `f2rvlm.F2RVLM*` or when
`f2rvlm.register()` is called.
"""

from .dialogue import Dialogue, DialogueError, DialogueImage, Utterance, as_dialogue
from .protocol import (
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
