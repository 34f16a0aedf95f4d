"""`RetrievalClient` against a fake OpenAI-compatible server (stdlib HTTP, no model): the request it
sends (prompt, images, grammar), grammar fallback, retries, id filtering, order under concurrency,
and corpus search through `EndpointReranker`."""

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from f2rvlm.client import RetrievalClient, chat_messages, grammar_fields
from f2rvlm.core.dialogue import Dialogue, DialogueImage, Utterance
from f2rvlm.core.protocol import QUERY_END, QUERY_START, answer_regex, build_messages, render_answer
from f2rvlm.corpus.rerank import EndpointReranker
from helpers import png_bytes

pytest.importorskip("openai")


def dialogue(turns=6):
    return Dialogue([Utterance(f"user{1 + k % 2}", f"turn {k}", [DialogueImage(png_bytes((10 * k, 0, 0)))] if k % 3 == 1 else [])
                     for k in range(turns)], dialogue_id="d")


class FakeServer:
    """Answers `<|utt_ids_start|>[k, k, 999]...` for the query `q<k>` (a duplicate and an id outside
    every dialogue), image ids [0, 50]; optionally rejects the grammar field or fails first."""

    def __init__(self, reject_grammar=False, failures=0):
        self.reject_grammar, self.failures, self.bodies = reject_grammar, failures, []
        lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status, payload):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self._send(200, {"object": "list", "data": [{"id": "fake-model", "object": "model", "created": 0,
                                                             "owned_by": "me"}]})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with lock:
                    fake.bodies.append(body)
                    fail = fake.failures > 0
                    fake.failures -= fail
                if fail:
                    return self._send(500, {"error": "busy"})
                if fake.reject_grammar and "structured_outputs" in body:
                    return self._send(422, {"detail": "Unexpected fields in the request: {'structured_outputs'}"})
                text = "".join(p["text"] for m in body["messages"] for p in m["content"] if p["type"] == "text")
                k = int(re.search(re.escape(QUERY_START) + r"q(\d+)" + re.escape(QUERY_END), text).group(1))
                answer = render_answer([k, k, 999], [0, 50])
                self._send(200, {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                                 "choices": [{"index": 0, "finish_reason": "stop",
                                              "message": {"role": "assistant", "content": answer}}]})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def fake():
    servers = []

    def make(**kwargs):
        servers.append(FakeServer(**kwargs))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


def test_messages_are_the_released_prompt_with_data_urls():
    d = dialogue()
    messages = chat_messages(d, "q1", "en")
    reference = build_messages(d, "q1", "en")
    assert [m["role"] for m in messages] == [m["role"] for m in reference]
    for ours, theirs in zip(messages, reference):
        assert len(ours["content"]) == len(theirs["content"])
        for a, b in zip(ours["content"], theirs["content"]):
            if b["type"] == "image":
                assert a["type"] == "image_url" and a["image_url"]["url"].startswith("data:image/png;base64,")
            else:
                assert a == b
    assert sum(p["type"] == "image_url" for p in messages[-1]["content"]) == d.num_images == 2


def test_grammar_sent_and_answers_filtered_in_order(fake):
    server = fake()
    client = RetrievalClient(server.url, concurrency=4)
    assert client.grammar_status == "unknown"
    d = dialogue()
    results = client.retrieve_batch([(d, f"q{k}") for k in range(6)])
    assert [r.utterance_ids for r in results] == [[k] for k in range(6)]  # input order; 999 dropped, duplicate merged
    assert all(r.image_ids == [0] and r.mode == "generate" and r.spans == [(r.utterance_ids[0],) * 2] for r in results)
    body = server.bodies[0]
    assert body["structured_outputs"] == grammar_fields(range(6), range(2))["structured_outputs"]
    assert body["structured_outputs"]["regex"] == answer_regex(range(6), range(2))
    assert body["model"] == "fake-model" and body["temperature"] == 0 and body["max_tokens"] > 0
    assert client.stats["requests"] == 6 and client.stats["strict"] == 6
    assert client.grammar_status == "accepted"


def test_grammar_dropped_once_when_the_server_rejects_it(fake, caplog):
    server = fake(reject_grammar=True)
    client = RetrievalClient(server.url, concurrency=1)
    results = client.retrieve_batch([(dialogue(), f"q{k}") for k in range(3)])
    assert [r.utterance_ids for r in results] == [[0], [1], [2]]
    assert client.server_grammar is False and client.stats["grammar_rejected"] == 1
    assert client.grammar_status == "rejected" and RetrievalClient(server.url, server_grammar=False).grammar_status == "off"
    assert sum("structured_outputs" in b for b in server.bodies) == 1 and len(server.bodies) == 4
    assert "does not take the answer grammar" in caplog.text
    with pytest.raises(Exception, match="422"):  # server_grammar=True: the grammar is required
        RetrievalClient(server.url, server_grammar=True).retrieve(dialogue(), "q0")


def test_retries_a_failing_server(fake):
    server = fake(failures=2)
    assert RetrievalClient(server.url, retries=2).retrieve(dialogue(), "q3").utterance_ids == [3]
    server = fake(failures=2)
    with pytest.raises(Exception, match="500"):
        RetrievalClient(server.url, retries=1).retrieve(dialogue(), "q3")


def test_retrieve_batch_inside_a_running_event_loop(fake):
    import asyncio

    server = fake()

    async def caller():  # the sync API from async code (notebooks, Gradio) runs in a thread of its own
        return RetrievalClient(server.url).retrieve(dialogue(), "q2").utterance_ids

    assert asyncio.run(caller()) == [2]


def test_corpus_search_reranks_through_an_endpoint(fake):
    from f2rvlm.corpus.index import FragmentIndex
    from f2rvlm.corpus.segmentation import FixedSegmenter
    from f2rvlm.embeddings import HashingEmbedder

    server = fake()
    corpus = [Dialogue([Utterance("user1", f"cat kitten sofa {k}") for k in range(8)], dialogue_id="d0")]
    index = FragmentIndex.build(corpus, embedder=HashingEmbedder(), segmenter=FixedSegmenter(4))
    result = index.search("q1", top_k=2, reranker=EndpointReranker(server.url, concurrency=2))
    assert result.reranked and len(server.bodies) == 2
    # each fragment's local pick 1 maps to a global id: 1 in the first fragment, 5 in the second
    assert sorted(h.utterance_ids[0] for h in result.fragments) == [1, 5]
