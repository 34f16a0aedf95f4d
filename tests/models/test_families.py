"""Every backbone family (Qwen2-VL, Qwen2.5-VL, Qwen3-VL): retrieve in all modes, SFT collator +
head losses, save/load with identical logits, and remote code in a fresh interpreter."""

import json
import os
import subprocess
import sys

import pytest
import torch
from f2rvlm.core.protocol import parse_answer
from f2rvlm.models.tiny import FAMILIES, build_tiny


@pytest.fixture(scope="module", params=FAMILIES)
def family_model(request):
    model, processor = build_tiny(request.param, "test", seed=1, relevance_head=True, num_topics=3)
    return request.param, model.eval(), processor


def test_retrieve_every_mode(family_model, image_dialogue):
    family, model, processor = family_model
    for mode in ("generate", "guided", "tagging"):
        result = model.retrieve(image_dialogue, "the lake photos", processor=processor, mode=mode, threshold=0.3)
        answer = parse_answer(result.text, "strict")
        assert answer is not None, (family, mode, result.text)
        assert set(result.utterance_ids) <= set(range(5)) and set(result.image_ids) <= set(range(3))


def test_sft_collator_and_head_losses(family_model, dataset_row):
    family, model, processor = family_model
    collator = processor.sft_collator(template="en", relevance=True, topics=False)
    batch = collator([dataset_row, dataset_row])
    out = model(**batch)
    assert torch.isfinite(out.loss) and out.relevance_loss is not None, family
    out.loss.backward()
    assert model.relevance_head.weight.grad is not None
    model.zero_grad(set_to_none=True)


def test_save_load_identical_logits_and_remote_code(family_model, image_dialogue, tmp_path):
    family, model, processor = family_model
    from f2rvlm.models.hub import load_model, save_f2rvlm_folder

    folder = save_f2rvlm_folder(model, processor, str(tmp_path / family))
    assert not [f for f in os.listdir(folder) if f.endswith((".bin", ".pt"))]
    loaded, loaded_processor = load_model(folder)
    inputs = processor.build_inputs([(image_dialogue, "lake")], template="en")
    with torch.no_grad():
        a = model(**inputs).logits
        b = loaded(**loaded_processor.build_inputs([(image_dialogue, "lake")], template="en")).logits
    assert torch.equal(a, b)

    script = (
        "import sys, json\n"
        "sys.path = [p for p in sys.path if 'modeling' not in p]\n"
        "try:\n    import f2rvlm\n    raise SystemExit('f2rvlm importable')\nexcept ImportError:\n    pass\n"
        "from transformers import AutoModel, AutoProcessor\n"
        f"m = AutoModel.from_pretrained({folder!r}, trust_remote_code=True)\n"
        f"p = AutoProcessor.from_pretrained({folder!r}, trust_remote_code=True)\n"
        "d = {'utterances': [{'speaker': 'user1', 'text': 'hello'}, {'speaker': 'user2', 'text': 'the lake'}]}\n"
        "r = m.retrieve(d, 'lake', processor=p)\n"
        "print(json.dumps([type(m).__module__, r.utterance_ids, r.image_ids]))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    proc = subprocess.run([sys.executable, "-I", "-c", script], capture_output=True, text=True, env=env,
                          cwd=str(tmp_path), check=False, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    module, utts, imgs = json.loads(proc.stdout.strip().splitlines()[-1])
    assert module.startswith("transformers_modules") and set(utts) <= {0, 1} and imgs == []
