"""A real server: `f2rvlm serve` (transformers serve here: vLLM's CPU build does not run on this
machine, docs/environment.md) on a tiny seeded Qwen2-VL exported with `--for-serving`
(`served_tiny.served`, shared with the Space and corpus tests), driven through `RetrievalClient`
and `f2rvlm retrieve --endpoint`."""

import json
import random
import time

import pytest
from f2rvlm.cli import main
from f2rvlm.client import RetrievalClient
from f2rvlm.models.hub import load_model
from f2rvlm.models.tiny import save_tiny
from serving import served_tiny

pytest.importorskip("openai")
pytest.importorskip("fastapi")
served = served_tiny.served  # the shared server fixture


def _pairs(count, turns=None, split="validation"):
    from f2rvlm.data.synthetic import generate_split

    pairs = []
    for sample in generate_split(split, count, seed=0, language="en"):
        dialogue = sample.dialogue if turns is None else sample.dialogue.window(0, turns)[0]
        pairs.append((dialogue, sample.queries[0].query))
    return pairs


def test_client_round_trip_equals_in_process_greedy(served):
    """Same prompt, same images, same greedy tokens: the served answer text is byte-equal to
    in-process `retrieve(mode="generate")` without the grammar (the server takes none), so are the ids."""
    url, src, _ = served
    pairs = _pairs(4)
    assert sum(d.num_images for d, _ in pairs) >= 4
    client = RetrievalClient(url, concurrency=4)
    served_results = client.retrieve_batch(pairs)
    model, processor = load_model(src)
    for (dialogue, query), remote in zip(pairs, served_results):
        local = model.retrieve(dialogue, query, processor=processor, mode="generate", constrained=False)
        assert remote.text == local.text and len(remote.text) > 20
        assert (remote.utterance_ids, remote.image_ids, remote.spans) == (local.utterance_ids, local.image_ids, local.spans)
    assert client.server_grammar is False and client.stats["grammar_rejected"] >= 1  # the first requests in flight
    assert client.model == served[2]


def _hammer(url, requests):
    """`requests` requests over 10 distinct short pairs in random order: every answer valid, every
    result in its request's place (same pair -> same greedy text)."""
    pairs = _pairs(10, turns=6)
    order = [k % len(pairs) for k in range(requests)]
    random.Random(0).shuffle(order)
    client = RetrievalClient(url, concurrency=16, max_tokens=12, retries=3, server_grammar=False)
    start = time.perf_counter()
    results = client.retrieve_batch([pairs[k] for k in order])
    elapsed = time.perf_counter() - start
    assert len(results) == requests and client.stats["requests"] == requests
    texts = {}
    for k, result in zip(order, results):
        dialogue = pairs[k][0]
        assert set(result.utterance_ids) <= set(dialogue.utterance_ids)
        assert set(result.image_ids) <= set(range(dialogue.num_images))
        assert result.utterance_ids == sorted(set(result.utterance_ids))
        assert texts.setdefault(k, result.text) == result.text
    assert len(set(texts.values())) > 1  # distinct pairs really got distinct answers
    return elapsed


def test_hundreds_of_concurrent_requests_all_valid(served):
    _hammer(served[0], 200)


@pytest.mark.slow
def test_thousands_of_concurrent_requests_all_valid(served):
    _hammer(served[0], 2000)


def test_cli_retrieve_through_the_endpoint(served, tmp_path, capsys):
    dialogue, query = _pairs(1, turns=5)[0]
    path = tmp_path / "chat.json"
    data = dialogue.to_dict()
    for utterance in data["utterances"]:
        utterance.pop("images", None)  # a text-only dialogue file
    path.write_text(json.dumps(data))
    assert main(["retrieve", "--endpoint", served[0], "--dialogue", str(path), "--query", query, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["mode"] == "generate" and set(out["utterance_ids"]) <= set(range(5))
    assert main(["retrieve", "--dialogue", str(path), "--query", query]) == 2  # neither --model nor --endpoint


def test_serve_command_lines(tmp_path, capsys):
    folder = save_tiny(str(tmp_path / "f2rvlm"))
    assert main(["serve", "--model", folder]) == 2
    assert "f2rvlm export --for-serving" in capsys.readouterr().err
    stock = tmp_path / "stock"
    stock.mkdir()
    (stock / "config.json").write_text(json.dumps({"model_type": "qwen2_vl"}))
    assert main(["serve", "--model", str(stock), "--backend", "vllm", "--vllm", "vllm", "--print-command",
                 "--tensor-parallel-size", "2", "--max-model-len", "16384", "--max-images", "32", "--port", "9000",
                 "--gpu-memory-utilization", "0.85"]) == 0
    line = capsys.readouterr().out
    for flag in ("--tensor-parallel-size 2", "--max-model-len 16384", "--gpu-memory-utilization 0.85", "--port 9000",
                 '"{\\"image\\": 32}"', "--served-model-name stock"):
        assert flag in line, flag
    assert main(["serve", "--model", str(stock), "--backend", "transformers", "--print-command"]) == 0
    assert "f2rvlm.serving.transformers_server" in capsys.readouterr().out
