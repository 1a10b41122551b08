"""The demo shows the user's bundles: found by manifest kind (any folder name), every bundle of a
kind in its tab's picker, `rnnkit demo BUNDLE...` opens exactly those; the Entities and Forecast
tabs on a tagger and a forecaster."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import pytest

from predict_fixtures import tiny_models
from test_demo_fixtures import demo_models  # noqa: F401  (session fixture)

pytest.importorskip("gradio")


@pytest.fixture(scope="module")
def user_models(demo_models, tmp_path_factory) -> Path:
    """Bundles under the user's own names: two classifiers, a tagger, a forecaster, a stray folder."""
    root = tmp_path_factory.mktemp("user")
    tiny = tiny_models(root)
    out = root / "bundles"
    out.mkdir()
    shutil.copytree(demo_models / "sentiment-mr", out / "my-sent")
    shutil.copytree(demo_models / "sentiment-mr", out / "other-sent")
    shutil.copytree(tiny / "ner-tiny", out / "my-ner")
    shutil.copytree(tiny / "ts-tiny", out / "my-forecast")
    (out / "notes").mkdir()                       # no manifest: not a bundle, ignored
    (out / "broken").mkdir()
    (out / "broken" / "manifest.json").write_text("{not json")
    return out


def test_bundles_are_found_by_kind_not_by_folder_name(user_models):
    from rnnkit.demo.shelf import load_shelf

    shelf = load_shelf(user_models)
    sent = shelf.tabs["sentiment"]
    assert list(sent.choices) == ["my-sent", "other-sent"] and sent.default == "my-sent"
    assert shelf["sentiment"].engine is not None and "sentiment-mr" not in shelf["sentiment"].status_markdown()
    assert list(shelf.tabs["entities"].choices) == ["my-ner"] and shelf["entities"].engine is not None
    assert list(shelf.tabs["forecast"].choices) == ["my-forecast"]
    assert "No bundle at" in shelf["translate"].problem and "seq2seq" in shelf["translate"].problem
    assert len(shelf.skipped) == 1 and "broken" in shelf.skipped[0] and "not valid JSON" in shelf.skipped[0]


def test_each_tab_runs_the_picked_bundle(user_models):
    from rnnkit.demo import app
    from rnnkit.demo.validation import InputError

    shelf = app.load_shelf(user_models)
    a = app.sentiment(shelf, "a good film", "my-sent")
    b = app.sentiment(shelf, "a good film", "other-sent")
    assert a[-1] == b[-1]  # the same weights under two names
    with pytest.raises(InputError, match="choose one of: my-sent, other-sent"):
        app.sentiment(shelf, "a good film", "sentiment-mr")
    segments, data = app.entities(shelf, "John Smith visited Paris .")
    assert "".join(s for s, _ in segments) == "John Smith visited Paris ."
    assert data["tokens"] == ["John", "Smith", "visited", "Paris", "."]
    table, caption, data = app.forecast(shelf, "date,value\n" + "".join(f"t{i},{100 + i % 12}\n" for i in range(40)), 6)
    assert list(table["part"]).count("forecast") == 7 and len(data["forecast"]) == 6  # joined at the last value
    assert "season of 12" in caption
    with pytest.raises(InputError, match="horizon must be between 1 and 520"):
        app.forecast(shelf, "1 2 3", 0)


def test_only_the_bundles_given_are_opened(user_models, demo_models):
    from rnnkit.demo.shelf import load_shelf

    shelf = load_shelf(bundles=[user_models / "my-ner", demo_models / "char-shakespeare"])
    assert list(shelf.tabs["entities"].choices) == ["my-ner"]
    assert list(shelf.tabs["generate"].choices) == ["Shakespeare (characters)"]
    assert not shelf.tabs["sentiment"].choices and not shelf.tabs["suggest"].choices
    assert "my-ner" in shelf["sentiment"].problem or "No bundle at" in shelf["sentiment"].problem


def test_cli_takes_bundles_or_a_folder(user_models, tmp_path, capsys):
    from rnnkit.cli import build_parser, main

    args = build_parser().parse_args(["demo", str(user_models / "my-sent"), str(user_models / "my-ner")])
    assert args.bundles == [str(user_models / "my-sent"), str(user_models / "my-ner")] and args.models is None
    assert main(["demo", str(user_models / "notes")]) == 2
    assert "not a bundle (no manifest.json)" in capsys.readouterr().err
    assert main(["demo", "--models", str(tmp_path)]) == 2  # an empty folder no longer starts a demo of nothing
    assert "no bundle in it" in capsys.readouterr().err
    assert main(["demo", str(user_models / "my-sent"), "--models", str(user_models)]) == 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_live_demo_serves_the_new_tabs_and_pickers(user_models):
    from gradio_client import Client

    from rnnkit.demo.app import build_demo, launch_options

    demo = build_demo(user_models)
    _, url, _ = demo.launch(server_name="127.0.0.1", server_port=_free_port(), prevent_thread_lock=True, quiet=True,
                            **launch_options())
    try:
        c = Client(url, verbose=False)
        assert {"/entities", "/forecast", "/sentiment"} <= set(
            c.view_api(return_format="dict", print_info=False)["named_endpoints"])
        marked, data = c.predict("Mary Jones works for Google .", api_name="/entities")
        assert "".join(x["token"] for x in marked) == "Mary Jones works for Google ."
        plot, caption, data = c.predict("1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16", 4, api_name="/forecast")
        assert len(data["forecast"]) == 4 and "season of 12" in caption
        label, *_ = c.predict("a good film", "other-sent", api_name="/sentiment")
        assert label["label"] in ("positive", "negative")
    finally:
        demo.close()
