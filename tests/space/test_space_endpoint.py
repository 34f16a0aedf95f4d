"""The Space on a served model (`F2RVLM_ENDPOINT`): a real `f2rvlm serve` on a tiny exported
checkpoint (`serving.served_tiny`), the single-chat search and the archive picker going through
`RetrievalClient` / `EndpointReranker`, the answer naming the server, mode and grammar; a server
that does not answer shown as a message."""

from __future__ import annotations

import pytest

pytest.importorskip("gradio")
pytest.importorskip("openai")
from f2rvlm.client import RetrievalClient
from f2rvlm.serving import find_free_port
from f2rvlm_space import archive, engine, fixtures, render
from serving import served_tiny

served = served_tiny.served  # the shared server fixture
QUERY = "the photo of the spot by the water"


@pytest.fixture
def endpoint_env(served, monkeypatch):
    url, _, serving_folder = served
    monkeypatch.setenv("F2RVLM_ENDPOINT", url)
    monkeypatch.setenv("F2RVLM_ENDPOINT_MODEL", serving_folder)
    return url, serving_folder


def _model_info(demo) -> str:
    return next(b.value for b in demo.blocks.values() if getattr(b, "elem_id", None) == "model-info")


def test_single_chat_search_through_the_endpoint(endpoint_env, tmp_path, monkeypatch):
    url, name = endpoint_env
    monkeypatch.setenv("F2RVLM_SPACE_TMP", str(tmp_path / "sessions"))
    retriever = engine.make_retriever()
    assert isinstance(retriever, engine.EndpointRetriever) and retriever.methods[0] == "generate"
    assert retriever.normalise_methods([]) == ["generate"]
    assert "guided" not in retriever.methods and "tagging" not in retriever.methods
    session = engine.import_upload(fixtures.write_whatsapp_zip(tmp_path / "WhatsApp Chat with Alex.zip"))
    try:
        document = engine.run_search(retriever, session, [QUERY], ["generate"])
        expected = RetrievalClient(url, model=name).retrieve(session.dialogue, QUERY)
        record = document["results"][0]
        assert "error" not in record
        assert (record["utterance_ids"], record["image_ids"]) == (expected.utterance_ids, expected.image_ids)
        assert record["raw_answer"] == expected.text
        # transformers serve refuses the grammar field: the line says so, and names server and mode
        line = record["answered_by"]
        assert line == f"served model {name} at {url}, generate mode, " + line.split(", generate mode, ")[1]
        assert "grammar enforced by server: no" in line
        assert document["model"] == f"{name} at {url}"
        page = render.results_html(session.dialogue, document, session.thumbnails, engine.METHOD_LABELS)
        assert f"answered by served model {name} at {url}, generate mode" in page
    finally:
        session.close()
    assert f"served model {name} at {url}" in retriever.description and "no (the server refused it" in retriever.description


def test_app_and_archive_picker_through_the_endpoint(endpoint_env, tmp_path):
    import app

    url, name = endpoint_env
    store = archive.ArchiveStore(tmp_path / "index", embedder="hashing")
    demo = app.build_demo(store=store)  # no model argument: F2RVLM_ENDPOINT decides
    retriever = demo.f2rvlm_retriever
    assert retriever.is_endpoint and f"served model {name} at {url}" in _model_info(demo)
    assert store.default_picker() == "model" and url in store.picker_label("model")
    store.add_uploads([fixtures.write_whatsapp_zip(tmp_path / "WhatsApp Chat with Alex.zip"),
                       fixtures.write_telegram_json(tmp_path / "result.json")])
    requests = retriever.client.stats["requests"]
    result = store.search(QUERY, top_k=3, picker="model")
    assert result.reranked and retriever.client.stats["requests"] == requests + len(result.fragments)
    for hit in result.fragments:
        assert set(hit.utterance_ids) <= set(hit.fragment.utterance_ids)
    assert f"served model {name} at {url}, generate mode" in store.answered_label("model")
    page = archive.results_html(store.index, result, store.answered_label("model"))
    assert f"served model {name} at {url}" in page
    demo.close()


def test_a_server_that_does_not_answer_is_a_message(tmp_path, monkeypatch):
    url = f"http://127.0.0.1:{find_free_port()}/v1"  # nobody listens there
    monkeypatch.setenv("F2RVLM_SPACE_TMP", str(tmp_path / "sessions"))
    retriever = engine.make_retriever(endpoint=url, endpoint_model="f2rvlm")
    assert retriever.startup_error is None  # a named model: nothing asked at start-up
    assert "⚠️" in engine.make_retriever(endpoint=url).description  # asked, and no answer: said at once
    session = engine.load_example(0)
    try:
        document = engine.run_search(retriever, session, ["the lake"], ["generate", "bm25"])
    finally:
        session.close()
    failed, baseline = document["results"]
    assert failed["error"].startswith(f"The model server at {url} did not answer (APIConnectionError")
    assert "error" not in baseline  # the other method still answers
    store = archive.ArchiveStore(tmp_path / "index", embedder="hashing", retriever=retriever)
    store.add_uploads([fixtures.write_telegram_json(tmp_path / "result.json")])
    with pytest.raises(engine.EndpointError, match="did not answer"):
        store.search("the lake", top_k=2, picker="model")


def test_a_server_that_takes_the_grammar_is_named_so(tmp_path):
    """A stdlib OpenAI-compatible server that accepts the grammar field (tests/serving/test_client.py)."""
    from f2rvlm.core.dialogue import Dialogue, Utterance
    from serving.test_client import FakeServer

    server = FakeServer()
    try:
        retriever = engine.make_retriever(endpoint=server.url)
        assert retriever.client.model == "fake-model"  # asked at start-up
        assert "not known before the first answer" in retriever.description
        out = retriever.run("generate", Dialogue([Utterance("a", "hi"), Utterance("b", "yo")]), "q1")
        assert out["utterance_ids"] == [1] and server.bodies[-1]["structured_outputs"]["regex"]
        assert out["answered_by"] == (f"served model fake-model at {server.url}, generate mode, "
                                      "grammar enforced by server: yes (sent with each request and accepted)")
    finally:
        server.close()
