"""A client for an F2RVLM model served behind an OpenAI-compatible endpoint (vLLM, SGLang,
`transformers serve`; `f2rvlm serve` starts one).

>>> from f2rvlm.client import RetrievalClient
>>> client = RetrievalClient("http://127.0.0.1:8000/v1", concurrency=32)  # doctest: +SKIP
>>> client.retrieve(dialogue, "the flat we viewed").utterance_ids  # doctest: +SKIP
[3, 4, 5]

Each (dialogue, query) pair becomes one chat-completions request: the released prompt from
`protocol.build_messages` (the renderer the processor uses, so the served model reads the same
chat text as in process), images as PNG data URLs in image-id order, greedy decoding, and the
answer grammar of that dialogue (`protocol.answer_regex`) in the request body (`grammar_fields`,
the one place that names the server's field). The answer is parsed strictly, then leniently; ids
that are not in the dialogue are dropped and the rest sorted, so every result is valid even when
the server cannot enforce the grammar (`transformers serve` rejects the field: the client then
drops it and says so once). Results are `RetrievalResult`s, as `model.retrieve` returns them.
"""

from __future__ import annotations

import asyncio
import base64
import io
import logging
import threading
from collections import Counter
from collections.abc import Sequence
from typing import Any

from .core import protocol
from .core.dialogue import as_dialogue
from .models.generation_f2rvlm import max_answer_length
from .models.retrieval_f2rvlm import RetrievalResult

logger = logging.getLogger(__name__)


def grammar_fields(utterance_ids, image_ids) -> dict:
    """The request-body fields that carry the answer grammar: vLLM's `structured_outputs` (its
    documented OpenAI-API extra since v0.12, replacing `guided_regex`). The only place that
    names them."""
    return {"structured_outputs": {"regex": protocol.answer_regex(utterance_ids, image_ids)}}


def image_data_url(image) -> str:
    """A `DialogueImage` as a PNG data URL (decoded first: lossless, the pixels the model sees
    in process)."""
    buffer = io.BytesIO()
    image.load().save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def chat_messages(dialogue, query: str, template: str = protocol.DEFAULT_TEMPLATE) -> list[dict]:
    """OpenAI chat messages of one pair: `protocol.build_messages` with each image part carrying
    its image as a data URL."""
    dialogue = as_dialogue(dialogue)
    urls = iter([image_data_url(image) for image in dialogue.images])
    messages = []
    for message in protocol.build_messages(dialogue, query, template):
        content = [{"type": "image_url", "image_url": {"url": next(urls)}} if part["type"] == "image" else part
                   for part in message["content"]]
        messages.append({"role": message["role"], "content": content})
    return messages


def parse_completion(text: str, dialogue) -> tuple[list[int], list[int], bool]:
    """(utterance ids, image ids, strict) of an answer: strict parse, else lenient; ids not in the
    dialogue dropped, the rest sorted and unique (what `retrieve` does with a generated answer)."""
    dialogue = as_dialogue(dialogue)
    answer = protocol.parse_answer(text, "strict")
    strict = answer is not None
    if answer is None:
        answer = protocol.parse_answer(text, "lenient")
    valid = set(dialogue.utterance_ids)
    utterance_ids = sorted({i for i in answer.utterance_ids if i in valid})
    image_ids = sorted({i for i in answer.image_ids if 0 <= i < dialogue.num_images})
    return utterance_ids, image_ids, strict


class RetrievalClient:
    """F2RVLM retrieval through an OpenAI-compatible chat-completions endpoint.

    >>> client = RetrievalClient("http://127.0.0.1:8000/v1", concurrency=8, timeout=60, retries=2)  # doctest: +SKIP
    >>> results = client.retrieve_batch([(dialogue, "the lake photos"), (dialogue, "dinner plans")])  # doctest: +SKIP

    Args:
        base_url: the server's OpenAI base URL (ending in `/v1`).
        model: the served model name; None asks the server (`/v1/models`, first entry).
        concurrency: requests in flight at once.
        timeout: seconds per request (connect + generation).
        retries: retries of a request that failed on a connection error, a timeout, 408/409/429
            or a 5xx answer (the `openai` client's policy, exponential back-off).
        template: prompt template (`protocol.TEMPLATES`); the model's own (`config.prompt_template`).
        server_grammar: send the answer grammar: True always, False never, None (default) until the
            server rejects the field (`transformers serve` answers 422), then never.
        max_tokens: generation budget; None is the longest answer the dialogue allows, plus one.
        api_key: sent as a bearer token (vLLM `--api-key`); any string when the server has none.
    """

    def __init__(self, base_url: str, model: str | None = None, *, concurrency: int = 8, timeout: float = 120.0,
                 retries: int = 2, template: str = protocol.DEFAULT_TEMPLATE, server_grammar: bool | None = None,
                 max_tokens: int | None = None, api_key: str = "EMPTY"):
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        protocol.template_language(template)  # ValueError for an unknown template
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.concurrency = concurrency
        self.timeout = timeout
        self.retries = retries
        self.template = template
        self.server_grammar = server_grammar
        self.max_tokens = max_tokens
        self.api_key = api_key
        #: Counters over this client's life: requests, strict (answers that parsed strictly),
        #: lenient (answers that needed the lenient parse), grammar_sent, grammar_rejected.
        self.stats: Counter = Counter()

    @property
    def grammar_status(self) -> str:
        """What became of the answer grammar so far: "off" (never sent: `server_grammar=False`),
        "rejected" (the server refused the field; answers are made valid on this side), "accepted"
        (sent with every request and answered: vLLM enforces it) or "unknown" (no answer yet)."""
        if self.stats["grammar_rejected"]:
            return "rejected"
        if self.server_grammar is False:
            return "off"
        return "accepted" if self.stats["requests"] else "unknown"

    # -- public API --------------------------------------------------------------------------
    def retrieve(self, dialogue, query: str) -> RetrievalResult:
        return self.retrieve_batch([(dialogue, query)])[0]

    def retrieve_batch(self, pairs: Sequence[tuple[Any, str]], processor=None, batch_size: int | None = None,
                       show_progress: bool = False, **ignored) -> list[RetrievalResult]:
        """Results in input order. The signature of `model.retrieve_batch` (so corpus search can
        use a client as its reranker); `processor` and `batch_size` have no meaning here: the
        server batches, `concurrency` bounds what is in flight."""
        mode = ignored.get("mode")
        if mode not in (None, "generate"):
            raise ValueError(f"a served model answers in generate mode only, not {mode!r}")
        return _run(self.aretrieve_batch(pairs, show_progress=show_progress))

    async def aretrieve_batch(self, pairs: Sequence[tuple[Any, str]], show_progress: bool = False) -> list[RetrievalResult]:
        """`retrieve_batch` for callers already inside an event loop."""
        from openai import AsyncOpenAI

        async with AsyncOpenAI(base_url=self.base_url, api_key=self.api_key, timeout=self.timeout,
                               max_retries=self.retries) as client:
            model = self.model or await self._served_model(client)
            gate = asyncio.Semaphore(self.concurrency)
            progress = None
            if show_progress:
                from tqdm.auto import tqdm

                progress = tqdm(total=len(pairs), desc="retrieving", unit="pair")

            async def one(dialogue, query):
                async with gate:
                    result = await self._request(client, model, as_dialogue(dialogue), query)
                if progress is not None:
                    progress.update()
                return result

            try:
                return list(await asyncio.gather(*(one(d, q) for d, q in pairs)))
            finally:
                if progress is not None:
                    progress.close()

    # -- one request -------------------------------------------------------------------------
    async def _served_model(self, client) -> str:
        page = await client.models.list()
        if not page.data:
            raise ValueError(f"{self.base_url}: the server lists no model; pass model=...")
        self.model = page.data[0].id
        return self.model

    async def _request(self, client, model: str, dialogue, query: str) -> RetrievalResult:
        import openai

        request = {
            "model": model, "messages": chat_messages(dialogue, query, self.template), "temperature": 0.0,
            "max_tokens": self.max_tokens or max_answer_length(len(dialogue), dialogue.num_images) + 1,
        }
        grammar = grammar_fields(dialogue.utterance_ids, range(dialogue.num_images))
        if self.server_grammar is not False:
            try:
                self.stats["grammar_sent"] += 1
                response = await client.chat.completions.create(**request, extra_body=grammar)
            except openai.UnprocessableEntityError as err:
                detail = f"{err} {err.body} {err.response.text}"
                if self.server_grammar is True or not any(name in detail for name in grammar):
                    raise
                if self.server_grammar is None:
                    logger.warning("%s does not take the answer grammar (%s); sending requests without it, "
                                   "answers are made valid by parsing and filtering", self.base_url, list(grammar))
                self.server_grammar = False
                self.stats["grammar_rejected"] += 1
                response = await client.chat.completions.create(**request)
        else:
            response = await client.chat.completions.create(**request)
        text = (response.choices[0].message.content or "").strip()
        utterance_ids, image_ids, strict = parse_completion(text, dialogue)
        self.stats["requests"] += 1
        self.stats["strict" if strict else "lenient"] += 1
        return RetrievalResult(utterance_ids=utterance_ids, image_ids=image_ids,
                               spans=protocol.contiguous_spans(utterance_ids), text=text, mode="generate")


def _run(coroutine):
    """Run a coroutine to completion from sync code, also when the caller's thread already runs
    an event loop (a notebook, Gradio): then in a thread of its own."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    box: dict = {}

    def target():
        try:
            box["value"] = asyncio.run(coroutine)
        except BaseException as err:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = err

    thread = threading.Thread(target=target, name="f2rvlm-client")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


__all__ = ["RetrievalClient", "chat_messages", "grammar_fields", "image_data_url", "parse_completion"]
