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
