"""`retrieve()` without a processor loads the saved one without running the folder's code unless
the caller says so (issue #10: it hard-coded `trust_remote_code=True`)."""

from __future__ import annotations

import pytest
import transformers
from f2rvlm.models import retrieval_f2rvlm

DIALOGUE = {"utterances": [{"speaker": "user1", "text": "we went to the lake"}, {"speaker": "user2", "text": "ok"}]}


@pytest.fixture
def model(tiny_model_folder):
    from f2rvlm.models.hub import load_model

    model, _ = load_model(tiny_model_folder)
    retrieval_f2rvlm._load_processor.cache_clear()
    yield model
    retrieval_f2rvlm._load_processor.cache_clear()


@pytest.fixture
def auto_calls(monkeypatch):
    calls = []
    real = transformers.AutoProcessor.from_pretrained

    def spy(*args, **kwargs):
        calls.append(kwargs.get("trust_remote_code"))
        return real(*args, **kwargs)

    monkeypatch.setattr(transformers.AutoProcessor, "from_pretrained", spy)
    return calls


def test_default_runs_no_folder_code_for_a_package_model(model, auto_calls):
    result = model.retrieve(DIALOGUE, "the lake")
    assert auto_calls == [] and set(result.utterance_ids) <= {0, 1}
    assert type(retrieval_f2rvlm._load_processor(model.name_or_path, False)).__name__ == "F2RVLMProcessor"


def test_caller_decides(model, auto_calls):
    model.retrieve(DIALOGUE, "the lake", trust_remote_code=True)
    assert auto_calls == [True]
    model.retrieve(DIALOGUE, "the lake", trust_remote_code=False)
    assert auto_calls == [True]


def test_default_follows_a_remote_code_model():
    remote = type("F2RVLMRemote", (), {"__module__": "transformers_modules.repo.modeling_f2rvlm"})()
    local = type("F2RVLMLocal", (), {"__module__": "f2rvlm.models.modeling_f2rvlm"})()
    assert retrieval_f2rvlm._trust_remote_code(remote, None) is True
    assert retrieval_f2rvlm._trust_remote_code(local, None) is False
    assert retrieval_f2rvlm._trust_remote_code(remote, False) is False
