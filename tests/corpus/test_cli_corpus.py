"""`f2rvlm corpus index|search|eval` end to end with the hashing embedder (no model download)."""

import json
import os
import zipfile
from pathlib import Path

from f2rvlm.cli import main
from f2rvlm.corpus.index import FragmentIndex
from f2rvlm.embeddings import HashingEmbedder
from helpers import png_bytes

LINES = {"cat": "cat kitten sofa purr", "car": "engine oil garage tyre", "cake": "flour oven sugar bake"}


def _chat(topics):
    utterances = []
    for topic in topics:
        for k in range(4):
            u = {"speaker": "user1" if k % 2 else "user2", "text": f"{LINES[topic]} {k}"}
            if k == 2:
                u["images"] = [f"{topic}.png"]
            utterances.append(u)
    return json.dumps({"utterances": utterances})


def _archive(tmp_path):
    path = tmp_path / "exports.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("alice.json", _chat(["cat", "car"]))
        z.writestr("broken.json", '{"utterances": [{"speaker": "x", ')  # truncated export
        z.writestr("bob.json", _chat(["cake"]))
        for topic in LINES:
            z.writestr(f"{topic}.png", png_bytes())
    return path


def test_index_skips_a_corrupt_export_and_indexes_the_rest(tmp_path, capsys):
    out = str(tmp_path / "idx")
    # the pictures sit beside the chats inside the archive (not entries themselves)
    assert main(["corpus", "index", "--archive", str(_archive(tmp_path)), "--out", out, "--embedder", "hashing",
                 "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "skipped broken.json" in captured.err
    assert "2 chat(s) indexed" in captured.out and "1 skipped" in captured.out
    index = FragmentIndex.load(out, embedder=HashingEmbedder())
    assert index.dialogue_ids() == ["alice.json", "bob.json"]
    assert index.fragments[0].images and index.fragments[0].images[0]["bytes"] == png_bytes()


def test_add_search_html_and_json(tmp_path, capsys):
    out = str(tmp_path / "idx")
    first = tmp_path / "first.json"
    first.write_text(_chat(["cat", "car"]))
    second = tmp_path / "second.json"
    second.write_text(_chat(["cake"]))
    for topic in LINES:
        (tmp_path / f"{topic}.png").write_bytes(png_bytes())
    assert main(["corpus", "index", str(first), "--out", out, "--embedder", "hashing", "--quiet"]) == 0
    shard = os.path.join(out, "data", "shard-00000.parquet")
    stamp = os.stat(shard).st_mtime_ns
    assert main(["corpus", "index", str(second), str(first), "--out", out, "--add", "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "skipped first.json: already in the index" in captured.err and os.stat(shard).st_mtime_ns == stamp
    html_path = str(tmp_path / "hits.html")
    assert main(["corpus", "search", "--index", out, "--query", "flour oven bake", "--top-k", "3",
                 "--html", html_path, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["dialogues"][0]["dialogue_id"] == "second.json" and not result["reranked"]
    page = Path(html_path).read_text(encoding="utf-8")
    assert "flour oven sugar bake" in page and "data:image/png;base64," in page and "<div class='run'>" in page


def test_errors_are_one_line(tmp_path, capsys):
    assert main(["corpus", "search", "--index", str(tmp_path / "nope"), "--query", "x"]) == 2
    assert "not a fragment index" in capsys.readouterr().err
    assert main(["corpus", "index", "--out", str(tmp_path / "i"), "--add", "--embedder", "hashing"]) == 2


def test_eval_command(capsys):
    assert main(["corpus", "eval", "--num-dialogues", "4", "--split", "validation", "--embedder", "hashing"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["dialogues"] == 4 and 0 <= out["recall@20"] <= 1 and "embedding" in out["segmentation"]


def test_discord_media_folder_is_not_an_entry(tmp_path):
    from f2rvlm.corpus.archive import ArchiveReport, open_archive

    (tmp_path / "chat.json").write_text(_chat(["cat"]))
    (tmp_path / "chat.json_Files").mkdir()
    (tmp_path / "other_Files").mkdir()  # no export of that name: an entry (and skipped as unreadable)
    report = ArchiveReport()
    with open_archive(str(tmp_path), report) as dialogues:
        assert [d.dialogue_id for d in dialogues] == ["chat.json"]
    assert [name for name, _ in report.skipped] == ["other_Files"]


def test_cli_indexes_and_searches_with_the_qdrant_engine(tmp_path, capsys):
    import pytest

    pytest.importorskip("qdrant_client")
    out = str(tmp_path / "idx")
    chat = tmp_path / "chat.json"
    chat.write_text(_chat(["cat", "car", "cake"]))
    assert main(["corpus", "index", str(chat), "--out", out, "--embedder", "hashing", "--backend", "qdrant",
                 "--quiet"]) == 0
    assert "(qdrant)" in capsys.readouterr().out
    assert main(["corpus", "search", "--index", out, "--query", "oven sugar", "--top-k", "1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["dialogues"][0]["utterance_ids"] == [8, 9, 10, 11]  # the cake turns (third topic)


from serving import served_tiny  # the shared `f2rvlm serve` fixture (tests/serving/served_tiny.py)

served = served_tiny.served


def test_search_reranks_through_a_served_model(served, tmp_path, capsys):
    """`corpus search --endpoint`: every recalled fragment goes to a real `f2rvlm serve` (tiny
    model); the picks lie inside their fragments and equal `EndpointReranker`'s own."""
    from f2rvlm.corpus.rerank import EndpointReranker

    url, _, name = served
    out = str(tmp_path / "idx")
    chats = []
    for stem, topics in (("first", ["cat", "car"]), ("second", ["cake", "cat"])):
        chats.append(tmp_path / f"{stem}.json")
        chats[-1].write_text(_chat(topics))
    for topic in LINES:
        (tmp_path / f"{topic}.png").write_bytes(png_bytes())
    assert main(["corpus", "index", *map(str, chats), "--out", out, "--embedder", "hashing", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["corpus", "search", "--index", out, "--query", "flour oven bake", "--top-k", "3", "--json",
                 "--endpoint", url, "--endpoint-model", name, "--quiet"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["reranked"] and len(result["fragments"]) == 3
    for hit in result["fragments"]:
        assert set(hit["utterance_ids"]) <= set(hit["fragment_utterance_ids"])
    direct = FragmentIndex.load(out).search("flour oven bake", top_k=3, reranker=EndpointReranker(url, model=name))
    assert [h["utterance_ids"] for h in result["fragments"]] == [h.utterance_ids for h in direct.fragments]
    assert main(["corpus", "search", "--index", out, "--query", "x", "--endpoint", url, "--mode", "tagging"]) == 2
