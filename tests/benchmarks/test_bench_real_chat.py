"""benchmarks/bench_real_chat.py's helpers: lever labels from the recipe record, metrics per method,
and the 32-turn first-question latency (fake methods, no model)."""

import importlib.util
import json
import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _bench():
    import sys

    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    spec = importlib.util.spec_from_file_location("bench_real_chat", os.path.join(ROOT, "benchmarks", "bench_real_chat.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rows(turns: int, count: int):
    from f2rvlm.core.dialogue import Dialogue, Utterance
    from f2rvlm.data.schema import make_row

    dialogue = Dialogue([Utterance("Ann" if i % 2 else "Bo", f"turn number {i}") for i in range(turns)])
    return [make_row(dialogue, f"question {k}", [k], [], language="en", source="test") for k in range(count)]


def test_scorer_data_reads_the_recipe_record(tmp_path):
    bench = _bench()
    (tmp_path / "run" / "encoder").mkdir(parents=True)
    (tmp_path / "run" / "text_scorer_recipe.json").write_text(json.dumps({"args": {"selfsup_queries": 5000, "synthetic_rows": 0}}))
    assert bench.scorer_data(str(tmp_path / "run" / "encoder")) == "5000 self-supervised real-turn queries, no synthetic data"
    (tmp_path / "run" / "text_scorer_recipe.json").write_text(json.dumps({"args": {"selfsup_queries": 2500, "synthetic_rows": 400}}))
    assert "+ synthetic triples (400 rows)" in bench.scorer_data(str(tmp_path / "run" / "encoder"))
    assert bench.scorer_data(str(tmp_path / "elsewhere")) == "elsewhere"  # no record: the folder's name


def test_evaluate_method_counts_global_f1_and_latency_forgets_caches():
    bench = _bench()
    rows = _rows(40, 4)
    # gold of row k is turn k: answering turn k exactly for rows 0-1, turn 39 otherwise
    predict = lambda dialogue, query: [int(query.split()[-1])] if query[-1] in "01" else [39]
    result = bench.evaluate_method("fake", predict, rows)
    assert (result["precision"], result["recall"], result["f1"], result["samples"]) == (0.5, 0.5, 0.5, 4)
    forgotten, seen = [], []
    latency = bench.latency_32_turns([("fake", lambda d, q: seen.append(len(d)) or [], lambda: forgotten.append(1))], rows)
    assert latency["chats"] == 4 and set(seen) == {32} and len(forgotten) == 4 and latency["ms"]["fake"] >= 0
