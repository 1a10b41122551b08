"""The running demo through gradio_client: every endpoint answers with real outputs, and bad
input gets a clear error while the server keeps serving."""

from __future__ import annotations

import socket

import pytest

from test_demo_fixtures import demo_models  # noqa: F401  (session fixture)

pytest.importorskip("gradio")
from gradio_client import Client  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

SHAKESPEARE, ENGLISH = "Shakespeare (characters)", "English (subwords)"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def demo_url(demo_models):
    from rnnkit.demo.app import build_demo, launch_options

    demo = build_demo(demo_models)
    _, url, _ = demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True,
                            quiet=True, **launch_options())
    yield url
    demo.close()


@pytest.fixture(scope="module")
def client(demo_url):
    return Client(demo_url, verbose=False)


def test_every_endpoint_is_named(client):
    names = set(client.view_api(return_format="dict", print_info=False)["named_endpoints"])
    assert {"/generate", "/translate", "/sentiment", "/suggest"} <= names


def test_stop_cancels_both_ways_of_starting_a_generation(demo_models):
    from rnnkit.demo.app import build_demo

    deps = build_demo(demo_models).config["dependencies"]
    ids = {d["api_name"]: d["id"] for d in deps}
    cancelled = {i for d in deps for i in d.get("cancels") or []}
    assert {ids["generate"], ids["generate_on_enter"]} <= cancelled


def test_generate_streams(client):
    job = client.submit(SHAKESPEARE, "ROMEO:", 0.8, 40, 0.95, 200, 3, api_name="/generate")
    updates = list(job)
    final = job.result()
    assert len(updates) >= 2, updates  # streamed: the first token arrives before the end
    assert all(u.startswith("ROMEO:") for u in updates)
    assert final == updates[-1] and len(final) > len("ROMEO:")
    # the same seed gives the same text; top-k 1 ignores the seed
    assert client.predict(SHAKESPEARE, "ROMEO:", 0.8, 40, 0.95, 200, 3, api_name="/generate") == final
    g1 = client.predict(ENGLISH, "the film", 1.0, 1, 1.0, 20, 1, api_name="/generate")
    g2 = client.predict(ENGLISH, "the film", 1.0, 1, 1.0, 20, 99, api_name="/generate")
    assert g1 == g2 and g1.startswith("the film")


def test_translate_returns_text_and_heatmap(client):
    text, heatmap, data = client.predict("in the beginning god created the earth", 3, api_name="/translate")
    attn = data["attention"]
    assert len(attn) == len(data["target"]) and all(len(row) == len(data["source"]) for row in attn)
    assert all(abs(sum(row) - 1.0) < 1e-3 for row in attn)  # each output token's attention sums to 1
    assert "".join(data["source"]).strip() == "in the beginning god created the earth"
    assert isinstance(text, str)  # its exact value is checked against PyTorch in test_demo_engines
    assert heatmap.count("<tr>") == len(data["target"]) + 1  # header row + one row per output token
    assert heatmap.count("<td") == len(data["target"]) * len(data["source"])


def test_sentiment_returns_score_polarity_and_running_score(client):
    label, score_md, tokens, plot, data = client.predict("a dull film with a moving story", api_name="/sentiment")
    confidences = {c["label"]: c["confidence"] for c in label["confidences"]}
    assert set(confidences) == {"positive", "negative"}
    assert abs(sum(confidences.values()) - 1.0) < 1e-3
    assert label["label"] == max(confidences, key=confidences.get)
    assert f"{data['score']:+.2f}" in score_md
    assert abs(data["positive"] - confidences["positive"]) < 1e-3
    assert "".join(data["tokens"]).strip() == "a dull film with a moving story"
    assert len(data["running"]) == len(data["tokens"]) and all(-1 <= x <= 1 for x in data["running"])
    # the whole text is the last prefix (two int8 graphs, quantised separately, agree to ~1e-2)
    assert abs(data["running"][-1] - data["score"]) < 0.02
    assert tokens.count("class='tok'") == len(data["tokens"])
    plot = plot.get("value", plot)  # the line plot comes as an update (it carries the token order)
    assert plot["columns"] == ["token", "score", "position"]
    assert [row[1] for row in plot["data"]] == data["running"]


def test_suggest_returns_suggestions_and_latency(client):
    found, caption, *buttons = client.predict("i would like to th", 3, api_name="/suggest")
    completions = [r for r in found if r["kind"] == "completion"]
    assert completions and all(r["text"].startswith("th") for r in completions)
    assert "completing **th**" in caption and "last keystroke" in caption and " ms" in caption
    nxt, caption, *_ = client.predict("i would like to ", 3, api_name="/suggest")
    assert nxt and {r["kind"] for r in nxt} <= {"next", "phrase"} and "next word" in caption


@pytest.mark.parametrize("api,args,message", [
    ("/translate", ("", 4), "empty"),
    ("/translate", ("a" * 5000, 4), "limit is 1,000"),
    ("/sentiment", ("bad\x00byte",), "U\\+0000"),
    ("/sentiment", ("   ",), "empty"),
    ("/translate", ("hello", 99), "greater than maximum value 8"),  # gradio checks slider bounds
    # API callers can send what the UI cannot; gradio's own component checks answer these
    # (a wrong type is refused without details, since show_error stays off)
    ("/generate", (SHAKESPEARE, "ROMEO:", "hot", 40, 0.9, 10, 1), "raised an exception"),
    ("/generate", ("GPT-9", "hi", 0.8, 40, 0.9, 10, 1), "not in the list of choices"),
    ("/generate", (SHAKESPEARE, "ROMEO:", 0.8, 40, 0.9, 10, -7), "less than minimum value -1"),
    ("/generate", (SHAKESPEARE, "\x1b[31m", 0.8, 40, 0.9, 10, 1), "U\\+001B"),
    ("/suggest", ("x" * 20_000, 3), "limit is 10,000"),
])
def test_bad_input_is_a_clear_error_and_the_server_survives(client, api, args, message):
    with pytest.raises(AppError, match=message):
        client.predict(*args, api_name=api)
    label, *_ = client.predict("a good film", api_name="/sentiment")  # still serving
    assert label["label"] in ("positive", "negative")


def test_missing_bundles_leave_the_other_tabs_working(demo_models, tmp_path):
    import shutil

    from rnnkit.demo.app import build_demo

    shutil.copytree(demo_models / "sentiment-mr", tmp_path / "sentiment-mr")
    demo = build_demo(tmp_path)
    _, url, _ = demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        c = Client(url, verbose=False)
        with pytest.raises(AppError, match="No bundle at"):
            c.predict("hello", 2, api_name="/translate")
        label, *_ = c.predict("a good film", api_name="/sentiment")
        assert label["label"] in ("positive", "negative")
    finally:
        demo.close()
