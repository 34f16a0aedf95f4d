"""F2RVLM Space: upload a chat export, ask for a fragment, see the retrieved turns and photos.

    python space/app.py [--model DIR_OR_REPO | --endpoint URL]   # http://127.0.0.1:7860 (GRADIO_SERVER_PORT/NAME)

The model comes from `--model`, else a served model (`--endpoint URL` or $F2RVLM_ENDPOINT: calls go
through `f2rvlm.client.RetrievalClient`), else $F2RVLM_MODEL, else a tiny CPU model built on first
run (`f2rvlm_space.engine.make_retriever`, `resolve_default_model`). Tests build the app in-process with `build_demo`
and start it with `launch`, exactly as `main` does.

API (gradio_client): `Client(url).predict(handle_file(path), "query", api_name="/retrieve")`
returns `{utterance_ids, image_ids, spans, turns, images, raw_answer, seconds, chat, ...}`;
an optional third argument picks the method ("generate", "guided", "tagging", "bm25", "embeddings").
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
# the helpers beside this file; a copied f2rvlm/ (a Space) or the repo's modeling/ (a checkout)
for _path in (_HERE, _HERE / "vendor", _HERE.parent / "modeling"):
    if _path.is_dir() and str(_path) not in sys.path:
        sys.path.append(str(_path))
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr
from f2rvlm.core.dialogue import DialogueError
from f2rvlm.formats import ChatImportError, ImportLimits
from f2rvlm_space import archive, engine, render

TITLE = "F2RVLM — find a fragment in your chat"
EMPTY_STATUS = "Upload a chat export or pick an example."
INTRO = """Upload a chat export (WhatsApp `.zip`/`.txt`, Telegram `result.json` or its `.zip`,
Discord JSON, WeChat CSV/TXT) or pick an example, then describe what you are looking for. The model
answers with the ids of the turns and photos that form the matching fragment.
Uploads stay in a temporary folder of your session and are deleted when you leave."""
ARCHIVE_INTRO = f"""Search many chats at once (FFRS corpus search): upload several chat exports (or one zip
of them), press **Add to index**, then search. Each chat is cut into topic fragments; a query
recalls the top-K fragments (embeddings + BM25), a picker marks the turns inside each, and the
hits are shown per conversation, with {archive.CONTEXT_TURNS} turns of context around them.
An export that cannot be read is named and skipped. **The archive index is shared by everyone using
this Space and kept on its disk across restarts** (until someone presses *Delete index*): for
private chats, run the Space yourself."""


#: After a search: bring the first answer into view and, inside each scrollable answer column, its
#: first hit (the columns are already trimmed around the hits; this covers long fragments).
SCROLL_TO_HIT = """() => {
  const result = document.querySelector('#result');
  if (!result) return;
  result.querySelectorAll('.f2-answer .f2-chat').forEach(box => {
    const hit = box.querySelector('.hit');
    if (hit) box.scrollTop = Math.max(0, hit.offsetTop - box.offsetTop - 24);
  });
  const first = result.querySelector('.f2-turn.hit, .f2-img.hit, .f2-error, .f2-answer');
  if (first) first.scrollIntoView({block: 'center'});
}"""


SUPPORTED = ("This Space reads WhatsApp exports (.txt, or .zip with media), Telegram Desktop exports "
             "(result.json or its .zip), DiscordChatExporter JSON, WeChat CSV/TXT exports and F2RVLM dialogue JSON.")


def _plain(message: str) -> str:
    """The reader's message for people: the list of internal format names becomes what to upload."""
    if "not a supported chat export" in message and "Supported:" in message:
        return message.split("Supported:")[0].rstrip() + " " + SUPPORTED
    return message


def _close(session) -> None:
    if session is not None:
        session.close()


def build_demo(model_path: str | None = None, limits: ImportLimits | None = None,
               retriever: engine.Retriever | None = None, store: archive.ArchiveStore | None = None) -> gr.Blocks:
    """The Space as a `gr.Blocks` (queue configured); the model is loaded here, before launch.
    `store`: the archive tab's index (default: `archive.ArchiveStore` in `archive.archive_dir()`)."""
    limits = limits or engine.SPACE_LIMITS
    retriever = retriever or engine.make_retriever(model_path)
    store = store or archive.ArchiveStore()
    store.retriever = store.retriever or retriever  # the archive's "model" picker is this model
    choices = retriever.choices()
    labels = dict(engine.METHOD_LABELS)

    # -- handlers ------------------------------------------------------------------------------
    def _loaded(make, old):
        """(session, status, chat view, query update) from `make()`, or the import error shown."""
        _close(old)
        try:
            session = make()
        except ChatImportError as err:  # said once, in the status line; the chat view is emptied
            return None, f"⚠️ Could not import this file: {_plain(str(err))}", "", gr.skip()
        view = render.chat_html(session.dialogue, session.thumbnails, limit=render.PREVIEW_TURNS)
        queries = session.imported.queries
        query_update = "\n".join(queries[: engine.MAX_QUERIES]) if queries else gr.skip()
        return session, render.import_report_md(session.summary()), view, query_update

    def load_chat(path, redact, old):
        """Import an upload: (session, status, chat view, query update)."""
        if path is None:
            _close(old)
            return None, EMPTY_STATUS, "", gr.skip()
        return _loaded(lambda: engine.import_upload(path, limits, bool(redact)), old)

    def pick_example(index, redact, old):
        """(upload cleared, example dropdown, session, status, chat view, query update)."""
        if index is None:
            return (gr.skip(),) * 6
        return (None, gr.skip()) + _loaded(lambda: engine.load_example(index, bool(redact)), old)

    def toggle_redaction(redact, old):
        if old is None or not old.source:
            return (gr.skip(),) * 4
        kind, where = old.source
        if kind == "example":
            return _loaded(lambda: engine.load_example(where, bool(redact)), old)
        return _loaded(lambda: engine.import_upload(where, limits, bool(redact)), old)

    def clear_example(_path):
        return None

    def clear_results():
        """A new chat: the previous answers (or error) go."""
        return "", gr.Gallery(None, visible=False), None, None

    def search(session, text, methods, progress=gr.Progress(track_tqdm=True)):  # noqa: B008 - Gradio's API
        """(result html, gallery, raw json, download file)."""
        if session is None:
            message = "Upload a chat (or pick an example) first."
            return render.message_html(message), gr.Gallery(None, visible=False), None, None
        try:
            queries = engine.parse_queries(text)
            keys = retriever.normalise_methods(methods)
        except ValueError as err:
            return render.message_html(str(err)), gr.Gallery(None, visible=False), None, None
        document = engine.run_search(retriever, session, queries, keys, progress)
        view = render.results_html(session.dialogue, document, session.thumbnails, labels)
        items = _gallery(session, document)
        # one picture per column up to 4: a single retrieved photo fills the gallery, not a 1/6 strip
        gallery = gr.Gallery(items, columns=max(1, min(4, len(items))), height=360 if len(items) <= 2 else 280,
                             object_fit="scale-down", visible=bool(items))  # never cropped, never blown up into a smear
        download = Path(session.workdir) / "f2rvlm-result.json"
        download.write_text(json.dumps(document, ensure_ascii=False, indent=2), encoding="utf-8")
        return view, gallery, document, str(download)

    def api_retrieve(path, query, method):
        """One query on one uploaded file, as JSON; bad input raises a clear `gr.Error`."""
        try:
            session = engine.import_upload(path, limits)
        except ChatImportError as err:
            raise gr.Error(f"Could not import this file: {err}") from None
        try:
            queries = [query.strip()] if query and query.strip() else []
            if not queries or len(queries[0]) > engine.MAX_QUERY_CHARS:
                engine.parse_queries(query if queries else "")  # raises with the right message
            key = retriever.normalise_methods([method or "generate"])[0]
            out = retriever.run(key, session.dialogue, queries[0])
            record = engine.result_record(session, queries[0], out)
            record["chat"] = session.summary()
            return record
        except (ValueError, engine.EndpointError) as err:
            raise gr.Error(str(err)) from None
        finally:
            session.close()

    # -- archive tab ---------------------------------------------------------------------------
    def archive_add(paths, progress=gr.Progress()):  # noqa: B008 - Gradio's API
        """(index status, what this upload did, upload cleared)."""
        try:
            report = store.add_uploads(paths, progress)
        except ValueError as err:
            return store.status_markdown(), f"⚠️ {err}", gr.skip()
        except Exception as err:  # said in plain words; the saved index is untouched
            logging.getLogger(__name__).exception("archive build failed")
            return (store.status_markdown(),
                    f"⚠️ Indexing failed ({type(err).__name__}: {err}); the saved index was left as it was.", gr.skip())
        return store.status_markdown(), report.markdown(), None

    def archive_delete():
        """(index status, message, results cleared)."""
        removed = store.delete()
        return store.status_markdown(), "The archive index was deleted." if removed else "There was no index.", ""

    def archive_search(text, top_k, picker):
        picker = picker or store.default_picker()
        try:
            found = store.search(text, top_k, picker)
        except (ValueError, engine.EndpointError) as err:
            return render.message_html(str(err))
        return archive.results_html(store.index, found, store.answered_label(picker))

    # -- layout --------------------------------------------------------------------------------
    with gr.Blocks(title=TITLE, delete_cache=(600, 3600)) as demo:
        model_info = gr.Markdown(f"# {TITLE}\n{INTRO}\n\n**Model:** {retriever.description}", elem_id="model-info")
        with gr.Tab("One chat", id="chat-tab", elem_id="chat-tab"):
            session = gr.State(None, time_to_live=3600, delete_callback=_close)
            with gr.Row():
                with gr.Column(scale=1):
                    upload = gr.File(label="Chat export", elem_id="upload", file_count="single", type="filepath")
                    example = gr.Dropdown(engine.sample_choices(), value=None, label="…or pick an example",
                                          elem_id="example", allow_custom_value=False)
                    redact = gr.Checkbox(False, label="Hide phone numbers and e-mail addresses", elem_id="redact")
                    status = gr.Markdown(EMPTY_STATUS, elem_id="import-status")
                    chat_view = gr.HTML("", elem_id="chat", padding=True)
                with gr.Column(scale=1):
                    query = gr.Textbox(label="What are you looking for? (one query per line)", lines=3,
                                       elem_id="query", placeholder="the photos from our trip to the lake")
                    methods = gr.CheckboxGroup(choices, value=[retriever.default_method], label="Methods (pick several to compare)",
                                               elem_id="methods")
                    search_button = gr.Button("Search", variant="primary", elem_id="search")
                    result = gr.HTML("", elem_id="result", padding=True)
                    gallery = gr.Gallery(label="Retrieved images", elem_id="gallery", columns=4, height=280,
                                         object_fit="scale-down", preview=False, allow_preview=True, visible=False)
                    with gr.Accordion("Raw answers, spans and timings", open=False):
                        raw = gr.JSON(label="Result", elem_id="raw")
                    download = gr.File(label="Download the result (JSON)", elem_id="download", interactive=False)
        with gr.Tab("Archive: many chats", id="archive-tab", elem_id="archive-tab"):
            gr.Markdown(ARCHIVE_INTRO)
            with gr.Row():
                with gr.Column(scale=1):
                    archive_files = gr.File(label="Chat exports (several files, or one zip of them)",
                                            elem_id="archive-upload", file_count="multiple", type="filepath")
                    archive_add_button = gr.Button("Add to index", variant="primary", elem_id="archive-add")
                    archive_status = gr.Markdown(store.status_markdown(), elem_id="archive-status")
                    archive_report = gr.Markdown("", elem_id="archive-report")
                    archive_delete_button = gr.Button("Delete index", variant="stop", elem_id="archive-delete")
                with gr.Column(scale=2):
                    archive_query = gr.Textbox(label="What are you looking for?", elem_id="archive-query",
                                               placeholder="the flat we viewed last spring")
                    archive_top_k = gr.Slider(1, archive.TOP_K_MAX, value=archive.TOP_K_DEFAULT, step=1,
                                              label="Top-K fragments recalled", elem_id="archive-topk")
                    archive_picker = gr.Radio(store.picker_choices(), value=store.default_picker(),
                                              label="Turns inside each fragment are picked by", elem_id="archive-picker")
                    archive_search_button = gr.Button("Search the archive", variant="primary", elem_id="archive-search")
                    archive_result = gr.HTML("", elem_id="archive-result", padding=True)
        with gr.Row(visible=False):
            api_method = gr.Textbox("generate", label="method")
            api_output = gr.JSON(label="result")
            api_button = gr.Button("retrieve")

        # -- events ----------------------------------------------------------------------------
        loaded = [session, status, chat_view, query]
        answers = [result, gallery, raw, download]
        upload.upload(load_chat, [upload, redact, session], loaded, api_name="load_chat").then(
            clear_results, None, answers, api_visibility="private")
        upload.upload(clear_example, upload, example, api_visibility="private")
        upload.clear(load_chat, [upload, redact, session], loaded, api_visibility="private").then(
            clear_results, None, answers, api_visibility="private")
        example.input(pick_example, [example, redact, session], [upload, example] + loaded,
                      api_name="load_example").then(clear_results, None, answers, api_visibility="private")
        redact.input(toggle_redaction, [redact, session], loaded, api_visibility="private")
        search_button.click(search, [session, query, methods], answers, api_name="search").then(
            None, None, None, js=SCROLL_TO_HIT)
        query.submit(search, [session, query, methods], answers, api_visibility="private").then(
            None, None, None, js=SCROLL_TO_HIT)
        api_button.click(api_retrieve, [upload, query, api_method], api_output, api_name="retrieve")
        archive_add_button.click(archive_add, archive_files, [archive_status, archive_report, archive_files],
                                 api_name="archive_add", concurrency_limit=1)
        archive_delete_button.click(archive_delete, None, [archive_status, archive_report, archive_result],
                                    api_name="archive_delete", concurrency_limit=1)
        archive_inputs = [archive_query, archive_top_k, archive_picker]
        archive_search_button.click(archive_search, archive_inputs, archive_result, api_name="archive_search")
        archive_query.submit(archive_search, archive_inputs, archive_result, api_visibility="private")
        demo.load(store.status_markdown, None, archive_status, api_visibility="private")  # what others added since
        if retriever.is_endpoint:  # what the server did with the answer grammar is known after its first answer
            demo.load(lambda: f"# {TITLE}\n{INTRO}\n\n**Model:** {retriever.description}", None, model_info,
                      api_visibility="private")
    demo.queue(default_concurrency_limit=int(os.environ.get("F2RVLM_CONCURRENCY", "4")), max_size=64)
    demo.f2rvlm_retriever = retriever  # tests compare against the same model
    demo.f2rvlm_limits = limits
    demo.f2rvlm_archive = store
    return demo


def _gallery(session: engine.ChatSession, document: dict, limit: int = 48) -> list:
    items, seen = [], set()
    for record in document["results"]:
        for image_id in record["image_ids"]:
            if image_id in seen or len(items) >= limit:
                continue
            seen.add(image_id)
            try:
                items.append((session.dialogue.images[image_id].load(), f"image {image_id}"))
            except (DialogueError, OSError, ValueError):  # unreadable late: the result view names it
                continue
    return items


def launch(demo: gr.Blocks, **overrides):
    """`demo.launch` with the Space's settings (upload cap, styles); keyword arguments override."""
    limits = getattr(demo, "f2rvlm_limits", engine.SPACE_LIMITS)
    options = {"max_file_size": limits.max_upload_bytes, "css": render.CSS + archive.CSS, "show_error": True}
    options.update(overrides)
    return demo.launch(**options)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None,
                        help="F2RVLM model folder or Hub repo id (default: $F2RVLM_MODEL, else the tiny CPU model)")
    parser.add_argument("--endpoint", default=None,
                        help="OpenAI base URL of a served F2RVLM model (f2rvlm serve; default: $F2RVLM_ENDPOINT)")
    parser.add_argument("--endpoint-model", default=None, help="served model name (default: the first the server lists)")
    args = parser.parse_args(argv)
    demo = build_demo(retriever=engine.make_retriever(args.model, endpoint=args.endpoint,
                                                      endpoint_model=args.endpoint_model))
    print(f"F2RVLM Space: {demo.f2rvlm_retriever.description}", flush=True)
    launch(demo, prevent_thread_lock=True)
    print(f"F2RVLM Space running at {demo.local_url}", flush=True)
    demo.block_thread()


if __name__ == "__main__":
    main()
