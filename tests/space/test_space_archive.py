"""The Space's archive tab: many exports into one persistent index, searched per conversation.

Unit tests call `f2rvlm_space.archive` directly (hashing embedder: no model download); one test
goes through the app with gradio_client; the real-browser test uploads a zip of the shipped
WhatsApp, Telegram and Discord exports and searches it in Chromium.
"""

from __future__ import annotations

import os
import re
import shutil
import zipfile
from pathlib import Path

import pytest
from f2rvlm.corpus.index import FragmentIndex
from f2rvlm_space import archive, engine

ROOT = Path(__file__).resolve().parents[2]
EXPORTS = ROOT / "modeling" / "f2rvlm" / "assets" / "exports"
THREE = ("whatsapp-chat-with-sam.zip", "telegram-chatexport.zip", "discord-chatexporter.json")
QUERY = "getting passes for the gig and what they cost"  # turn 23 of each shipped export
CHROMIUM = "/usr/bin/chromium"


def write_exports_zip(path: Path, names=THREE, broken: bool = False) -> Path:
    """A zip of shipped exports side by side (the Discord export with its `_Files` media folder);
    with `broken`, also a truncated Telegram result.json."""
    with zipfile.ZipFile(path, "w") as z:
        for name in names:
            z.write(EXPORTS / name, name)
            media = EXPORTS / f"{name}_Files"
            if media.is_dir():
                for picture in sorted(media.iterdir()):
                    z.write(picture, f"{name}_Files/{picture.name}")
        if broken:
            z.writestr("broken-result.json", '{"name": "Sam", "type": "personal_chat", "messages": [')
    return path


def _store(folder, **kwargs) -> archive.ArchiveStore:
    return archive.ArchiveStore(folder, embedder="hashing", **kwargs)


@pytest.fixture()
def built(tmp_path):
    """(store, report) after one upload: the three exports and a broken one, in one zip."""
    store = _store(tmp_path / "index")
    steps = []
    report = store.add_uploads([write_exports_zip(tmp_path / "chats.zip", broken=True)],
                               progress=lambda fraction, desc=None: steps.append((fraction, desc)))
    report.steps = steps
    return store, report


def test_which_uploads_are_archives_of_several_exports(tmp_path):
    for export in EXPORTS.iterdir():  # one export each, zipped or not
        if export.is_file():
            assert not archive.is_export_archive(export), export.name
    assert archive.is_export_archive(write_exports_zip(tmp_path / "three.zip"))
    assert archive.is_export_archive(write_exports_zip(tmp_path / "one.zip", names=THREE[:1]))  # a zip in a zip
    folders = tmp_path / "folders.zip"  # unzipped export folders under one shared folder
    with zipfile.ZipFile(folders, "w") as z:
        z.writestr("exports/alice/result.json", "{}")
        z.writestr("exports/bob/result.json", "{}")
    assert archive.is_export_archive(folders)
    discord = tmp_path / "discord.zip"  # one Discord export with attachments: not several
    with zipfile.ZipFile(discord, "w") as z:
        z.writestr("chat.json", "{}")
        z.writestr("chat.json_Files/notes.txt", "x")
    assert not archive.is_export_archive(discord)


def test_upload_indexes_the_readable_chats_and_names_the_corrupt_one(built):
    store, report = built
    assert sorted(report.read) == sorted(THREE) and report.fragments > 0
    assert [name for name, _ in report.skipped] == ["broken-result.json"]
    assert "skipped `broken-result.json`" in report.markdown() and "3 chat(s) added" in report.markdown()
    assert sorted(store.index.dialogue_ids()) == sorted(THREE)
    # the progress bar moved chat by chat and ended with the save
    fractions = [f for f, _ in report.steps]
    assert fractions == sorted(fractions) and fractions[0] == 0 and fractions[-1] == 1.0
    assert any("whatsapp-chat-with-sam.zip" in (desc or "") for _, desc in report.steps)
    # the Discord export found its pictures in its _Files folder inside the upload
    discord = [f for f in store.index.fragments if f.dialogue_id == "discord-chatexporter.json"]
    assert any(im["bytes"] for f in discord for im in f.images)


def test_index_persists_and_grows_without_rewriting(built):
    store, _ = built
    shard = store.folder / "data" / "shard-00000.parquet"
    stamp = shard.stat().st_mtime_ns
    restarted = _store(store.folder)  # a Space restart: same folder, nothing in memory
    assert sorted(restarted.index.dialogue_ids()) == sorted(THREE)
    assert "3 conversation(s)" in restarted.status_markdown()
    report = restarted.add_uploads([EXPORTS / "wechat-memotrace.zip", EXPORTS / THREE[0]])
    assert report.read == ["wechat-memotrace.zip"]
    assert report.skipped == [(THREE[0], "a chat of this name is already in the index")]
    assert shard.stat().st_mtime_ns == stamp and len(list((store.folder / "data").iterdir())) == 2
    assert len(FragmentIndex.load(str(store.folder)).dialogue_ids()) == 4


def test_a_failed_add_leaves_the_saved_index(built, monkeypatch):
    store, _ = built
    before = len(store.index)

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(FragmentIndex, "_write_shard", disk_full)
    with pytest.raises(OSError):
        store.add_uploads([EXPORTS / "wechat-memotrace.zip"])
    monkeypatch.undo()
    assert len(FragmentIndex.load(str(store.folder))) == before  # the folder: the old index, readable
    assert len(store.index) == before and "wechat-memotrace.zip" not in store.index.dialogue_ids()


def test_a_failed_first_build_leaves_no_index(tmp_path, monkeypatch):
    store = _store(tmp_path / "index")
    monkeypatch.setattr(FragmentIndex, "_write_shard", lambda *a, **k: (_ for _ in ()).throw(OSError("disk")))
    with pytest.raises(OSError):
        store.add_uploads([EXPORTS / "wechat-memotrace.zip"])
    assert not store.exists() and store.index is None
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".index")]  # no half-built folder left


def test_nothing_readable_writes_nothing(tmp_path):
    bad = tmp_path / "photo.png"
    bad.write_bytes(b"\x89PNG not really")
    store = _store(tmp_path / "index")
    report = store.add_uploads([bad])
    assert report.read == [] and report.skipped[0][0] == "photo.png" and not store.exists()
    with pytest.raises(ValueError, match="upload one or more"):
        store.add_uploads([])


def test_search_groups_hits_by_conversation(built):
    store, _ = built
    result = store.search(QUERY, top_k=20, picker="embeddings")
    assert result.reranked and {d.dialogue_id for d in result.dialogues} == set(THREE)
    page = archive.results_html(store.index, result, store.picker_label("embeddings"))
    sections = re.findall(r'<section class=\'f2-conv\' data-dialogue-id="([^"]+)"', page)
    assert sections == [d.dialogue_id for d in result.dialogues]  # one section per conversation, best first
    for hit, section in zip(result.dialogues, page.split("<section")[1:]):
        picked = [int(x) for x in re.findall(r"f2-turn hit' data-turn-id='(\d+)'", section)]
        assert picked == hit.utterance_ids and picked
        assert "f2-turn ctx" in section  # context around the picked turns
    assert "embedding picker" in page
    # the top-K slider bounds the fragments recalled; without a picker, whole fragments count
    assert len(store.search(QUERY, top_k=1, picker="none").fragments) == 1
    whole = store.search(QUERY, top_k=50, picker="none")
    assert not whole.reranked and len(whole.fragments) == len(store.index)


def test_search_says_what_is_wrong(built, tmp_path):
    store, _ = built
    for query, top_k, message in (("", 20, "type what"), ("x", 0, "between 1 and 50"), ("x", 51, "between 1 and 50"),
                                  ("x" * (engine.MAX_QUERY_CHARS + 1), 20, "limit")):
        with pytest.raises(ValueError, match=message):
            store.search(query, top_k)
    with pytest.raises(ValueError, match="unknown picker"):
        store.search("x", 20, picker="oracle")
    with pytest.raises(ValueError, match="empty"):
        _store(tmp_path / "none").search("x")


def test_delete_removes_the_index(built):
    store, _ = built
    assert store.delete() and not store.folder.exists() and store.index is None
    assert not [p for p in store.folder.parent.iterdir() if "deleting" in p.name]
    assert "No archive index yet" in store.status_markdown()
    assert not store.delete()


def test_names_are_escaped(tmp_path):
    chat = tmp_path / "<b>chat&.json"
    shutil.copy(EXPORTS / "discord-chatexporter.json", chat)
    store = _store(tmp_path / "index")
    store.add_uploads([chat])
    page = archive.results_html(store.index, store.search(QUERY, picker="none"), "x")
    assert "<b>chat" not in page and "&lt;b&gt;chat&amp;.json" in page


def test_archive_dir_env_and_default(monkeypatch, tmp_path):
    monkeypatch.setenv("F2RVLM_ARCHIVE_DIR", str(tmp_path / "here"))
    assert archive.archive_dir() == tmp_path / "here"
    monkeypatch.delenv("F2RVLM_ARCHIVE_DIR")
    monkeypatch.delenv("SPACE_ID", raising=False)
    monkeypatch.setenv("F2RVLM_CACHE", str(tmp_path / "cache"))
    assert archive.archive_dir() == tmp_path / "cache" / "archive-index"


def test_the_spaces_model_picks_turns(built, tiny_model_folder):
    store, _ = built
    store.retriever = engine.Retriever(tiny_model_folder, device="cpu")
    assert [key for _, key in store.picker_choices()] == ["model", "embeddings", "none"]
    assert store.default_picker() == "embeddings"  # a small demo model is not a reranker
    assert "tagging mode" in store.picker_label("model")
    result = store.search(QUERY, top_k=3, picker="model")
    assert result.reranked and len(result.fragments) == 3
    for hit in result.fragments:  # picks are global ids inside the recalled fragment
        assert set(hit.utterance_ids) <= set(hit.fragment.utterance_ids)


def test_app_archive_tab_through_the_api(tmp_path):
    pytest.importorskip("gradio")
    gradio_client = pytest.importorskip("gradio_client")
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    import app
    from f2rvlm.models.tiny import save_tiny

    store = _store(tmp_path / "index")
    demo = app.build_demo(save_tiny(str(tmp_path / "model"), relevance_head=True), store=store)
    app.launch(demo, prevent_thread_lock=True, server_name="127.0.0.1", server_port=None, quiet=True)
    try:
        client = gradio_client.Client(demo.local_url, verbose=False)
        upload = [gradio_client.handle_file(str(write_exports_zip(tmp_path / "chats.zip", broken=True)))]
        status, report, _ = client.predict(upload, api_name="/archive_add")
        assert "3 conversation(s)" in status and "skipped `broken-result.json`" in report
        page = client.predict(QUERY, 20, "embeddings", api_name="/archive_search")
        assert len(re.findall("class='f2-conv'", page)) == 3 and "f2-turn hit" in page
        assert "type what" in client.predict("", 20, "embeddings", api_name="/archive_search")
        status, message, cleared = client.predict(api_name="/archive_delete")
        assert "No archive index yet" in status and "deleted" in message and cleared == ""
        assert not store.exists()
    finally:
        demo.close()


@pytest.mark.browser
@pytest.mark.skipif(not os.path.exists(CHROMIUM),
                    reason=f"{CHROMIUM} is absent (install Debian's chromium: apt-get install -y chromium)")
def test_archive_tab_in_a_browser(tmp_path):
    """Chromium: upload one zip of the shipped WhatsApp, Telegram and Discord exports (and a broken
    one), index it, search it; the hits come back in one section per conversation. Screenshot to
    outputs/screenshots/space-archive.png."""
    pytest.importorskip("gradio")
    sync_api = pytest.importorskip("playwright.sync_api")
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    import app
    from f2rvlm.models.tiny import save_tiny
    from test_space_browser import FLAGS

    store = _store(tmp_path / "index")
    demo = app.build_demo(save_tiny(str(tmp_path / "model"), relevance_head=True), store=store)
    app.launch(demo, prevent_thread_lock=True, server_name="127.0.0.1", server_port=None, quiet=True)
    upload = write_exports_zip(tmp_path / "three-chats.zip", broken=True)
    shot = tmp_path / "space-archive.png"
    try:
        with sync_api.sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True, args=FLAGS,
                viewport={"width": 1400, "height": 1000})
            try:
                page = context.new_page()
                page.goto(demo.local_url)
                page.locator("#archive-tab-button").click()
                assert "No archive index yet" in page.locator("#archive-status").inner_text()
                slider = page.locator("#archive-topk input[type=range]")
                assert [slider.get_attribute(a) for a in ("min", "max")] + [slider.input_value()] == ["1", "50", "20"]
                pickers = page.locator("#archive-picker").inner_text()
                assert "embedding picker" in pickers and "(tagging mode)" in pickers

                page.locator("#archive-upload input[type=file]").set_input_files(str(upload))
                page.locator("#archive-upload").get_by_text("three-chats.zip").first.wait_for(timeout=30_000)
                page.locator("#archive-add").click()
                page.locator("#archive-status").get_by_text("3 conversation(s)").wait_for(timeout=120_000)
                report = page.locator("#archive-report").inner_text()
                assert "3 chat(s) added" in report and "broken-result.json" in report

                page.locator("#archive-query textarea").fill(QUERY)
                page.locator("#archive-search").click()
                page.locator("#archive-result .f2-conv").first.wait_for(timeout=60_000)
                conversations = page.locator("#archive-result .f2-conv").evaluate_all(
                    "els => els.map(e => [e.dataset.dialogueId, e.querySelectorAll('.f2-turn.hit').length])")
                assert sorted(name for name, _ in conversations) == sorted(THREE)
                assert all(hits >= 1 for _, hits in conversations)
                page.screenshot(path=str(shot), full_page=True)

                # the Space's own model as the picker, named in the result
                page.locator("#archive-picker").get_by_text("tagging mode").click()
                page.locator("#archive-search").click()
                page.locator("#archive-result").get_by_text("turns picked by F2RVLM model").wait_for(timeout=60_000)

                page.locator("#archive-delete").click()
                page.locator("#archive-status").get_by_text("No archive index yet").wait_for(timeout=30_000)
                assert page.locator("#archive-result .f2-conv").count() == 0
            finally:
                context.close()
    finally:
        demo.close()
    assert not store.exists() and shot.stat().st_size > 10_000
    keep = ROOT / "outputs" / "screenshots"
    keep.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, keep / shot.name)
