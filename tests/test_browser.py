"""The demo in a real browser: Debian's Chromium driven by Playwright.

Opens each tab, types, presses the buttons and checks what is visible; screenshots go to
``test-artifacts/`` (look at them: they are how the UI is reviewed). Skipped, with the
reason, where Chromium or Playwright is missing (``make browser-deps`` installs Chromium).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from test_demo_client import demo_url  # noqa: F401  (module fixture: the demo on a free port)
from test_demo_fixtures import demo_models  # noqa: F401

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("RNNKIT_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
TIMEOUT_MS = 30_000  # the shared CI machine can be slow; a wait ends as soon as the text shows


@pytest.fixture(scope="module")
def page(demo_url):
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"{CHROMIUM} not found: install Debian's chromium (make browser-deps) to run browser tests")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        pg = browser.new_page(viewport={"width": 1280, "height": 900})
        pg.set_default_timeout(TIMEOUT_MS)
        pg.goto(demo_url)
        pg.get_by_role("tab", name="Generate").wait_for()
        yield pg
        browser.close()


def expect(locator):
    from playwright.sync_api import expect as pw_expect

    return pw_expect(locator)


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"demo-{name}.png"), full_page=True)


def test_generate_tab_streams_text(page):
    page.get_by_role("tab", name="Generate").click()
    page.get_by_label("Shakespeare (characters)").check()
    page.locator("#gen-prompt textarea").fill("ROMEO:")
    page.locator("#gen-go").click()
    expect(page.locator("#gen-out textarea")).to_have_value(re.compile(r"^ROMEO:.{150,}", re.S), timeout=TIMEOUT_MS)
    shot(page, "generate")


def test_empty_prompt_shows_a_friendly_error(page):
    page.get_by_role("tab", name="Generate").click()
    page.locator("#gen-prompt textarea").fill("   ")
    page.locator("#gen-go").click()
    expect(page.get_by_text("type some text first").first).to_be_visible()
    shot(page, "generate-error")
    page.locator(".toast-close").first.click()  # dismiss the toast


def test_unknown_characters_give_a_warning_not_an_error(page):
    page.get_by_role("tab", name="Generate").click()
    page.get_by_label("Shakespeare (characters)").check()
    page.locator("#gen-prompt textarea").fill("ROMEO: \u2603")
    page.locator("#gen-go").click()
    expect(page.get_by_text("unknown to this model").first).to_be_visible()
    expect(page.locator("#gen-out textarea")).to_have_value(re.compile("^ROMEO: \u2603.{5,}", re.S))
    page.locator(".toast-close").first.click()
    page.locator("#gen-prompt textarea").fill("ROMEO:")


def test_translate_tab_shows_translation_and_heatmap(page, demo_models):
    from rnnkit.edge.predict_text import Translator

    text = "in the beginning god created the earth"
    # what the page must show: the engine's own output at the UI's default beam (4), whatever
    # the toy model makes of the sentence (its exact value is checked against PyTorch elsewhere)
    want = Translator(demo_models / "translate-en-de").translate(text, 4)
    page.get_by_role("tab", name="Translate").click()
    page.locator("#tr-in textarea").fill(text)
    page.locator("#tr-go").click()
    expect(page.locator("#tr-attn table")).to_be_visible()
    expect(page.locator("#tr-out textarea")).to_have_value(want.text)
    assert len(want.src_pieces) >= 7 and len(want.tgt_pieces) >= 1
    assert page.locator("#tr-attn td").count() == len(want.src_pieces) * len(want.tgt_pieces)  # one cell each
    shot(page, "translate")


def test_sentiment_tab_shows_polarity_score_and_running_score(page):
    page.get_by_role("tab", name="Sentiment").click()
    page.locator("#se-in textarea").fill("a dull film with a moving story")
    page.locator("#se-go").click()
    expect(page.locator("#se-score")).to_contain_text("Score")
    expect(page.locator("#se-label")).to_contain_text(re.compile("positive|negative"))
    expect(page.locator("#se-tokens")).to_contain_text("story")
    expect(page.locator("#se-plot canvas, #se-plot svg").first).to_be_visible()  # drawn by the browser
    shot(page, "sentiment")


def test_suggest_tab_updates_while_typing(page):
    page.get_by_role("tab", name="Suggest").click()
    box = page.locator("#su-in textarea")
    box.fill("")
    box.press_sequentially("i would like to th", delay=40)
    # the chips update on every keystroke; wait for the ones of the last keystroke
    expect(page.locator("#su-pick0")).to_have_text(re.compile(r"^\s*th"))
    expect(page.locator("#su-latency")).to_contain_text("completing th")
    expect(page.locator("#su-latency")).to_contain_text("ms")
    shot(page, "suggest")
    page.locator("#su-pick0").click()  # tapping a suggestion completes the word
    expect(box).to_have_value(re.compile(r"^i would like to th\S* $"))
