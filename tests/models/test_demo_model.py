"""The committed demo model (models/tiny-demo) stays loadable and in step with the package."""

import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO = os.path.join(ROOT, "models", "tiny-demo")


@pytest.mark.skipif(not os.path.isdir(DEMO), reason="no committed demo model")
def test_carried_code_files_match_the_package():
    from f2rvlm.models.hub import remote_code_files

    expected = remote_code_files()
    carried = sorted(f for f in os.listdir(DEMO) if f.endswith(".py"))
    assert carried == sorted(expected), "the demo folder carries other code files than an export writes"
    stale = []
    for name in carried:
        with open(os.path.join(DEMO, name), encoding="utf-8") as f:
            if f.read() != expected[name]:
                stale.append(name)
    assert not stale, f"run `make sync-demo-code`: {stale} differ from the package's remote-code files"
    assert not [f for f in os.listdir(DEMO) if f.endswith((".bin", ".pt", ".pth"))]


@pytest.mark.skipif(not os.path.isdir(DEMO), reason="no committed demo model")
def test_demo_model_retrieves_in_domain_sample():
    from f2rvlm.data import load_samples
    from f2rvlm.models.hub import load_model

    model, processor = load_model(DEMO)
    entry = next(e for e in load_samples() if e["language"] == "en")
    query = max(entry["queries"], key=lambda q: len(q["utterance_ids"]))
    result = model.retrieve(entry["dialogue"], query["query"], processor=processor, mode="tagging", template="en")
    overlap = set(result.utterance_ids) & set(query["utterance_ids"])
    assert len(overlap) >= len(query["utterance_ids"]) // 2, (result.utterance_ids, query["utterance_ids"])
