"""The Space in a real browser (Debian Chromium driven by Playwright): upload, query, screenshot.

The screenshot lands in the test's tmp folder and is copied to outputs/screenshots/ for humans.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM),
                       reason=f"{CHROMIUM} is absent (install Debian's chromium: apt-get install -y chromium)"),
]
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def test_upload_query_screenshot(tmp_path):
    pytest.importorskip("gradio")
    sync_api = pytest.importorskip("playwright.sync_api")
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    import app
    from f2rvlm.formats import import_chat
    from f2rvlm.models.tiny import save_tiny
    from f2rvlm_space import fixtures

    model_dir = save_tiny(str(tmp_path / "model"), relevance_head=True)
    demo = app.build_demo(model_dir)
    app.launch(demo, prevent_thread_lock=True, server_name="127.0.0.1", server_port=None, quiet=True)
    upload = fixtures.write_whatsapp_zip(tmp_path / "WhatsApp Chat with Alex.zip")
    query = "the photo of the spot by the pier"
    retriever = demo.f2rvlm_retriever
    want = retriever.model.retrieve(import_chat(upload).dialogue, query, processor=retriever.processor)
    shot = tmp_path / "space-result.png"
    try:
        with sync_api.sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True, args=FLAGS,
                viewport={"width": 1400, "height": 1000})
            try:
                page = context.new_page()
                page.goto(demo.local_url)
                page.locator("#upload input[type=file]").set_input_files(str(upload))
                page.locator("#chat .f2-turn").first.wait_for(timeout=30_000)
                assert "whatsapp" in page.locator("#import-status").inner_text()
                assert page.locator("#chat .f2-turn").count() == 9
                page.locator("#query textarea").fill(query)
                page.locator("#search").click()
                page.locator("#result .f2-answer").first.wait_for(timeout=60_000)
                hits = [int(x) for x in page.locator("#result .f2-turn.hit").evaluate_all(
                    "els => els.map(e => e.dataset.turnId)")]
                images = [int(x) for x in page.locator("#result .f2-img.hit").evaluate_all(
                    "els => els.map(e => e.dataset.imageId)")]
                assert hits == want.utterance_ids and images == want.image_ids
                page.screenshot(path=str(shot), full_page=True)
            finally:
                context.close()
    finally:
        demo.close()
    assert shot.stat().st_size > 10_000
    keep = ROOT / "outputs" / "screenshots"
    keep.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, keep / shot.name)


def _in_viewport(page, selector: str) -> bool:
    return page.locator(selector).first.evaluate(
        "e => { const r = e.getBoundingClientRect(); return r.top >= 0 && r.bottom <= window.innerHeight && r.height > 0; }")


def test_space_states_in_a_browser(tmp_path):
    """The demo model on the shipped exports: an import error said once and gone after picking an
    example; two methods side by side with the first hit in view and the retrieved photo legible;
    a long chat's generate request refused once, by name, while tagging answers. Screenshots of
    each state go to outputs/screenshots/."""
    pytest.importorskip("gradio")
    sync_api = pytest.importorskip("playwright.sync_api")
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ["F2RVLM_SPACE_TMP"] = str(tmp_path / "sessions")
    import app
    from f2rvlm_space import engine, fixtures

    demo = app.build_demo(str(ROOT / "models" / "tiny-demo"))
    app.launch(demo, prevent_thread_lock=True, server_name="127.0.0.1", server_port=None, quiet=True)
    bad = fixtures.write_fake_png(tmp_path / "photo.png")
    long_chat = fixtures.write_long_chat(tmp_path / "long-chat.txt", turns=engine.MAX_GENERATE_TURNS + 100)
    exports = engine.load_exports()
    whatsapp = next(k for k, e in enumerate(exports) if e["format"] == "whatsapp")
    label = {v: k for k, v in engine.sample_choices()}[len(engine.load_samples()) + whatsapp]
    shots, keep = [], ROOT / "outputs" / "screenshots"
    keep.mkdir(parents=True, exist_ok=True)

    def shot(page, name, full=False):
        path = tmp_path / f"{name}.png"
        page.screenshot(path=str(path), full_page=full)
        shutil.copy(path, keep / path.name)
        shots.append(path)

    try:
        with sync_api.sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True, args=FLAGS,
                viewport={"width": 1400, "height": 1000})
            try:
                page = context.new_page()
                page.goto(demo.local_url)
                assert "tiny-demo" in page.locator("#model-info").inner_text()

                # 1. an upload that is not a chat: one message, in plain words, once
                page.locator("#upload input[type=file]").set_input_files(str(bad))
                page.get_by_text("Could not import this file").first.wait_for(timeout=30_000)
                page.wait_for_timeout(1000)
                assert page.get_by_text("Could not import this file").count() == 1
                assert page.get_by_text("not a supported chat export").count() == 1
                assert "This Space reads WhatsApp" in page.locator("#import-status").inner_text()
                assert "ms-swift" not in page.content()  # internal format names stay internal
                assert page.locator(".toast-body").count() == 0
                assert not page.locator("#gallery").is_visible()  # no empty box before a search
                shot(page, "space-error")

                # 2. a shipped export from the examples list: the error goes, its queries come
                page.locator("#example input").click()
                page.get_by_role("option", name=label).click()
                page.locator("#chat .f2-turn").first.wait_for(timeout=30_000)
                page.wait_for_timeout(500)
                assert page.get_by_text("Could not import this file").count() == 0
                assert page.locator("#chat .f2-turn").count() == 24
                assert "whatsapp" in page.locator("#import-status").inner_text()
                query = exports[whatsapp]["queries"][1]["query"]  # the kitty: 11 turns and a photo
                page.locator("#query textarea").fill(query)
                page.locator("#methods").get_by_label(engine.METHOD_LABELS["bm25"]).check()
                page.locator("#search").click()
                page.locator("#result .f2-answer").nth(1).wait_for(timeout=60_000)
                page.locator("#gallery img").first.wait_for(timeout=30_000)
                page.wait_for_timeout(1000)

                # side by side: one row, two columns, compact
                boxes = [page.locator("#result .f2-answer").nth(i).bounding_box() for i in range(2)]
                assert abs(boxes[0]["y"] - boxes[1]["y"]) < 2 and boxes[1]["x"] > boxes[0]["x"] + boxes[0]["width"] - 2
                assert max(b["height"] for b in boxes) < 700
                # the hit is in view without scrolling by hand
                assert _in_viewport(page, "#result .f2-turn.hit")
                hits = [int(x) for x in page.locator('#result .f2-answer[data-method="tagging"] .f2-turn.hit')
                        .evaluate_all("els => els.map(e => e.dataset.turnId)")]
                # the highlighted turns are the model's answer (what retrieve returns in process), and they
                # overlap the export's annotated fragment
                from f2rvlm.formats import import_chat
                from f2rvlm.models.hub import load_model

                model, processor = load_model(str(ROOT / "models" / "tiny-demo"))
                chat = import_chat(engine.exports_dir() / exports[whatsapp]["file"])
                answer = model.retrieve(chat.dialogue, query, processor=processor, mode="tagging")
                assert hits == answer.utterance_ids
                assert set(hits) & set(exports[whatsapp]["queries"][1]["utterance_ids"])
                # the retrieved photo is legible: inline and in the gallery
                inline = page.locator('#result .f2-answer[data-method="tagging"] .f2-img.hit img').first
                natural, shown = inline.evaluate("e => [e.naturalWidth, e.getBoundingClientRect().width]")
                assert natural >= 240 and shown >= 150, (natural, shown)
                gallery = page.locator("#gallery img").first
                natural, shown, fit = gallery.evaluate(
                    "e => [e.naturalWidth, e.getBoundingClientRect().width, getComputedStyle(e).objectFit]")
                # at its own size or smaller (never cropped, never blown up), in a box wider than it
                assert natural >= 192 and shown >= natural and fit in ("scale-down", "contain"), (natural, shown, fit)
                shot(page, "space-compare")
                shot(page, "space-compare-full", full=True)
                height = page.evaluate("document.documentElement.scrollHeight")
                assert height < 2600, height

                # 3. a long chat: generate refused once with the limit named; tagging answers
                page.locator("#upload input[type=file]").set_input_files(str(long_chat))
                page.get_by_text("long-chat.txt").first.wait_for(timeout=30_000)
                page.locator("#result .f2-answer").first.wait_for(state="detached", timeout=30_000)
                page.locator("#methods").get_by_label(engine.METHOD_LABELS["bm25"]).uncheck()
                page.locator("#methods").get_by_label(engine.METHOD_LABELS["generate"]).check()
                page.locator("#query textarea").fill("message 7")
                page.locator("#search").click()
                page.locator("#result .f2-answer").nth(1).wait_for(timeout=120_000)
                errors = page.locator("#result .f2-error")
                assert errors.count() == 1
                assert f"at most {engine.MAX_GENERATE_TURNS} turns" in errors.inner_text()
                assert page.get_by_text("per request").count() == 1
                assert page.locator('#result .f2-answer[data-method="tagging"] .f2-meta').count() == 1
                shot(page, "space-limit")
            finally:
                context.close()
    finally:
        demo.close()
        os.environ.pop("F2RVLM_SPACE_TMP", None)
    assert all(p.stat().st_size > 10_000 for p in shots)
