"""The committed demo model (models/tiny-demo) stays loadable and in step with the package."""

import filecmp
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(ROOT, "models", "tiny-demo")
PACKAGE = os.path.join(ROOT, "modeling", "f2rvlm")


@pytest.mark.skipif(not os.path.isdir(DEMO), reason="no committed demo model")
def test_carried_code_files_match_the_package():
    carried = sorted(f for f in os.listdir(DEMO) if f.endswith(".py"))
    assert {"modeling_f2rvlm.py", "protocol.py", "dialogue.py"} <= set(carried)
    stale = [f for f in carried if not filecmp.cmp(os.path.join(DEMO, f), os.path.join(PACKAGE, f), shallow=False)]
    assert not stale, f"re-export models/tiny-demo (or copy the files): {stale} differ from modeling/f2rvlm"
    assert not [f for f in os.listdir(DEMO) if f.endswith((".bin", ".pt", ".pth"))]


@pytest.mark.skipif(not os.path.isdir(DEMO), reason="no committed demo model")
def test_demo_model_retrieves_in_domain_sample():
    from f2rvlm.data import load_samples
    from f2rvlm.hub import load_model

    model, processor = load_model(DEMO)
    entry = next(e for e in load_samples() if e["language"] == "en")
    query = max(entry["queries"], key=lambda q: len(q["utterance_ids"]))
    result = model.retrieve(entry["dialogue"], query["query"], processor=processor, mode="tagging", template="en")
    overlap = set(result.utterance_ids) & set(query["utterance_ids"])
    assert len(overlap) >= len(query["utterance_ids"]) // 2, (result.utterance_ids, query["utterance_ids"])
