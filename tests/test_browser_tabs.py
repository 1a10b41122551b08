"""The Entities and Forecast tabs and the model pickers in a real browser (Chromium via Playwright),
on the demo fixture's bundles plus a tiny tagger and forecaster under the user's own folder names.
Screenshots go to ``test-artifacts/demo-entities.png`` / ``demo-forecast.png``."""

from __future__ import annotations

import re
import shutil
import socket
from pathlib import Path

import pytest

from predict_fixtures import tiny_models
from test_browser import ARGS, ARTIFACTS, CHROMIUM, TIMEOUT_MS, expect, shot
from test_demo_fixtures import demo_models  # noqa: F401  (session fixture)

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def page(demo_models, tmp_path_factory):
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"{CHROMIUM} not found: install Debian's chromium (make browser-deps) to run browser tests")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    from rnnkit.demo.app import build_demo, launch_options

    root = tmp_path_factory.mktemp("browser-tabs")
    tiny = tiny_models(root)
    models = root / "bundles"
    for d in demo_models.iterdir():
        shutil.copytree(d, models / d.name)
    shutil.copytree(tiny / "ner-tiny", models / "my-ner")
    shutil.copytree(tiny / "ts-tiny", models / "my-forecast")
    shutil.copytree(demo_models / "sentiment-mr", models / "my-sent")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo = build_demo(models)
    _, url, _ = demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                            **launch_options())
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
            pg = browser.new_page(viewport={"width": 1280, "height": 900})
            pg.set_default_timeout(TIMEOUT_MS)
            pg.goto(url)
            pg.get_by_role("tab", name="Entities").wait_for()
            yield pg
            browser.close()
    finally:
        demo.close()


def test_entities_tab_highlights_the_typed_text(page):
    page.get_by_role("tab", name="Entities").click()
    expect(page.locator("#ne-model input")).to_have_value("my-ner")
    page.locator("#ne-in textarea").fill("John Smith visited Paris .")
    page.locator("#ne-go").click()
    out = page.locator("#ne-out")
    expect(out).to_contain_text("visited")  # the whole text comes back, entities marked in it
    expect(out).to_contain_text("Paris")
    shot(page, "entities")


def test_forecast_tab_plots_history_and_forecast(page):
    page.get_by_role("tab", name="Forecast").click()
    page.locator("#fc-go").click()
    expect(page.locator("#fc-caption")).to_contain_text(re.compile(r"144 values in, 24 forecast"))
    expect(page.locator("#fc-plot canvas, #fc-plot svg").first).to_be_visible()
    shot(page, "forecast")


def test_sentiment_picker_lists_every_classifier(page):
    page.get_by_role("tab", name="Sentiment").click()
    page.locator("#se-model input").click()
    expect(page.get_by_role("option", name="my-sent")).to_be_visible()
    expect(page.get_by_role("option", name="Movie reviews (sentiment-mr)")).to_be_visible()
    page.get_by_role("option", name="my-sent").click()
    page.locator("#se-in textarea").fill("a good film")
    page.locator("#se-go").click()
    expect(page.locator("#se-label")).to_contain_text(re.compile("positive|negative"))
    expect(page.locator(".model-status").filter(has_text="my-sent").first).to_be_visible()
    shot(page, "sentiment-picker")
