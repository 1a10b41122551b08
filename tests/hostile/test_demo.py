"""Hostile requests to the demo: bounded work per request, caps before the work, one clear
message (``InputError``) or a graceful answer, and a request fence (Host, Origin, uploads, body
size) in front of Gradio. Runs on the shipped bundles."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import pytest

from conftest import MODELS, bounded

pytest.importorskip("gradio")

from rnnkit.demo import app  # noqa: E402
from rnnkit.demo.validation import (MAX_SOURCE_TOKENS, MAX_TYPING_CHARS, InputError,  # noqa: E402
                                    check_number)

EN, SH = "English (subwords)", "Shakespeare (characters)"
EMOJI = "\U0001F600"


@pytest.fixture(scope="module")
def shelf():
    from rnnkit.demo.shelf import load_shelf

    s = load_shelf(MODELS)
    assert all(s[n].engine is not None for n in ("shakespeare", "english", "sentiment", "translate", "suggest"))
    return s


def refused(call, match: str, seconds: float = 2.0) -> str:
    with bounded(seconds, mb=200), pytest.raises(InputError) as e:
        call()
    msg = str(e.value)
    assert match in msg and "\n" not in msg and len(msg) < 300, msg
    return msg


# --------------------------------------------------------------------------- tapping a suggestion
@pytest.mark.parametrize("text", ["x" * MAX_TYPING_CHARS, "word " * 2000, " " * MAX_TYPING_CHARS,
                                  "a" * (MAX_TYPING_CHARS - 1) + " "])
def test_accept_is_linear_at_the_largest_allowed_text(text):
    t0 = time.perf_counter()
    with bounded(1.0):
        for _ in range(20):
            app.accept(text[:MAX_TYPING_CHARS - 10], {"text": "xylophone", "kind": "completion"})
    assert (time.perf_counter() - t0) / 20 < 0.02  # the quadratic regex took seconds here


def test_accept_refuses_100k_characters_at_once():
    refused(lambda: app.accept("x" * 100_000, {"text": "y"}), "limit is 10,000", seconds=0.5)


@pytest.mark.parametrize("suggestion", [None, [], "thank", 5, {"text": 5}, {"text": None}, {"text": ""},
                                        {"text": "x" * 1_000_000}, {"kind": "next"}, {"text": ["a"]},
                                        {"text": "x\ud800"}, {"text": "ok\x00"},
                                        {"text": "thank", "typed": "i would like to t"}])  # stale: made for another text
def test_accept_ignores_a_hostile_suggestion(suggestion):
    with bounded(0.5):
        assert app.accept("i would like to th", suggestion) == "i would like to th"


@pytest.mark.parametrize("text", [None, 5, ["a"], {"a": 1}])
def test_accept_text_of_the_wrong_type(text):
    if text is None:
        assert app.accept(text, {"text": "hello"}) == "hello "
    else:
        refused(lambda: app.accept(text, {"text": "hello"}), "must be text")


@pytest.mark.parametrize("i, found", [(0, None), (5, [{"text": "a"}]), (-1, [{"text": "a"}]), (0, "abc"),
                                      (0, [1, 2, 3]), (0, {"0": {"text": "a"}}), (2, [None] * 10 ** 5)])
def test_accept_pick_with_hostile_state(i, found):
    with bounded(0.5):
        assert app.accept_pick(i, "hello wor", found) == "hello wor"


def test_accept_keeps_the_text_within_its_limit():
    text = "a " * ((MAX_TYPING_CHARS - 4) // 2)
    assert app.accept(text, {"text": "b" * 150}) == text


# --------------------------------------------------------------------------- numbers
@pytest.mark.parametrize("value", ["abc", [1], {"a": 1}, None, True, 10 ** 5000, "1e999", "nan", "inf",
                                   float("inf"), float("nan"), "9" * 1_000_000, b"3", -(10 ** 400), 2.5],
                         ids=lambda v: type(v).__name__ + (str(v)[:8] if isinstance(v, (str, float)) else ""))
def test_sliders_with_non_numeric_or_absurd_values(value):
    with bounded(0.5), pytest.raises(InputError) as e:
        check_number(value, "length", 1, 1000, integer=True)
    msg = str(e.value)
    assert msg.startswith("length must") and len(msg) < 120, msg


@pytest.mark.parametrize("call, match", [
    (lambda s: list(app.generate(s, EN, "hi", "hot", 40, 0.9, 10, 1)), "temperature must be a number"),
    (lambda s: list(app.generate(s, EN, "hi", 0.8, 40, 0.9, 10 ** 9, 1)), "length must be between"),
    (lambda s: list(app.generate(s, EN, "hi", 0.8, [40], 0.9, 10, 1)), "top-k must be a number"),
    (lambda s: list(app.generate(s, EN, "hi", 0.8, 40, 0.9, 10, 10 ** 5000)), "seed must be a number, got a huge"),
    (lambda s: list(app.generate(s, "GPT-9", "hi", 0.8, 40, 0.9, 10, 1)), "unknown model"),
    (lambda s: app.translate(s, "hello", 10 ** 9), "beam width must be between"),
    (lambda s: app.translate(s, "hello", "wide"), "beam width must be a number"),
    (lambda s: app.suggest(s, None, "hello", 10 ** 6), "k must be between"),
    (lambda s: app.suggest(s, None, "hello", None), "k must be a number"),
])
def test_handlers_check_numbers_first(shelf, call, match):
    refused(lambda: call(shelf), match)


# --------------------------------------------------------------------------- text and token caps
@pytest.mark.parametrize("call, match", [
    (lambda s: app.translate(s, EMOJI * 1000, 4), f"the limit is {MAX_SOURCE_TOKENS}"),
    (lambda s: app.translate(s, "and the word " * 76, 4), f"the limit is {MAX_SOURCE_TOKENS}"),
    (lambda s: app.translate(s, "x" * 100_000, 4), "limit is 1,000"),
    (lambda s: app.sentiment(s, EMOJI * 1000), "the limit is 256"),
    (lambda s: app.sentiment(s, "x" * 10 ** 6), "limit is 1,000"),
    (lambda s: list(app.generate(s, EN, EMOJI * 2000, 0.8, 40, 0.9, 10, 1)), "the limit is 2,048"),
    (lambda s: list(app.generate(s, SH, "x" * 10 ** 6, 0.8, 40, 0.9, 10, 1)), "limit is 2,000"),
    (lambda s: app.suggest(s, None, "x" * 100_000, 3), "limit is 10,000"),
    (lambda s: app.sentiment(s, "\x00\x1b[2J"), "control or invalid characters"),
    (lambda s: app.translate(s, "   \n ", 4), "is empty"),
    (lambda s: app.translate(s, "a\n" * 400, 4), "translate at most 16"),
    (lambda s: app.translate(s, (EMOJI * 10 + " hello\n") * 14, 4), "over all its lines"),
])
def test_caps_apply_before_the_work(shelf, call, match):
    refused(lambda: call(shelf), match, seconds=3)


def test_worst_translation_the_caps_allow_is_bounded(shelf):
    """Source at the token cap, widest beam: output and attention map proportional and capped."""
    text = "and the word " * 42  # ~126 tokens
    with bounded(15, mb=300):
        german, heat, data = app.translate(shelf, text, 8)
    assert len(data["source"]) <= MAX_SOURCE_TOKENS and len(data["target"]) <= 160
    assert len(heat) < 1_000_000 and len(json.dumps(data)) < 1_000_000


def test_worst_typing_the_caps_allow_is_bounded(shelf):
    text = ("see you tomorrow " * 700)[:MAX_TYPING_CHARS]
    with bounded(10, mb=300):
        found, caption, key = app.suggest(shelf, None, text, 5)
    assert isinstance(key, str) and len(caption) < 1000


def test_many_fresh_sessions_keep_a_bounded_number_of_typing_states(shelf):
    """Every API call is a new browser session: the engine keeps at most MAX_TYPINGS of them."""
    from rnnkit.demo.suggest import MAX_TYPINGS

    engine = shelf["suggest"].get()
    with bounded(30, mb=300):
        for i in range(MAX_TYPINGS + 30):
            app.suggest(shelf, None, f"hello number {i} ", 3)
    assert len(engine._typings) <= MAX_TYPINGS


@pytest.mark.parametrize("typing", ["forged-key", "0" * 32, "x" * 10_000])
def test_a_forged_typing_key_gets_a_fresh_session(shelf, typing):
    found, _, key = app.suggest(shelf, typing, "i would like to ", 3)
    assert found and isinstance(key, str) and len(key) == 32


# --------------------------------------------------------------------------- the request fence (ASGI)
def _call_guard(path="/gradio_api/queue/join", method="POST", headers=None, body=b"", scope_type="http"):
    from rnnkit.demo.guard import RequestGuard

    seen = {}

    async def inner(scope, receive, send):
        got = b""
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                seen["disconnected"] = True
                break
            got += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        seen["body"] = len(got)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    chunks = [body[i:i + 65536] for i in range(0, len(body), 65536)] or [b""]

    async def receive():
        if chunks:
            chunk = chunks.pop(0)
            return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}
        return {"type": "http.disconnect"}

    sent = []

    async def send(msg):
        sent.append(msg)

    hdrs = [(k.encode(), v.encode()) for k, v in {"host": "127.0.0.1:7860", **(headers or {})}.items()]
    scope = {"type": scope_type, "method": method, "path": path, "headers": hdrs}
    asyncio.run(RequestGuard(inner, hosts={"127.0.0.1", "localhost", "::1"})(scope, receive, send))
    status = next((m["status"] for m in sent if m["type"] == "http.response.start"), None)
    return status, sent, seen


@pytest.mark.parametrize("headers, status", [
    ({}, 200),
    ({"origin": "http://127.0.0.1:7860"}, 200),
    ({"host": "localhost:7860", "origin": "http://localhost:7860"}, 200),
    ({"host": "[::1]:7860"}, 200),
    ({"host": "evil.example:7860"}, 421),              # DNS rebinding
    ({"host": "127.0.0.1.evil.example"}, 421),
    ({"host": ""}, 421),
    ({"origin": "http://evil.example"}, 403),          # cross-origin
    ({"origin": "http://127.0.0.1:9999"}, 403),        # another port is another origin
    ({"origin": "null"}, 403),
    ({"origin": "file://"}, 403),
    ({"content-length": str(10 ** 9)}, 413),
    ({"content-length": "lots"}, 400),
])
def test_guard_headers(headers, status):
    assert _call_guard(headers=headers)[0] == status


@pytest.mark.parametrize("path", ["/gradio_api/upload", "/upload", "/gradio_api/upload/"])
def test_guard_refuses_uploads(path):
    assert _call_guard(path=path, body=b"x" * 100)[0] == 403


def test_guard_stops_reading_a_chunked_body_past_the_cap():
    from rnnkit.demo.guard import MAX_BODY_BYTES

    status, _, seen = _call_guard(body=b"x" * (MAX_BODY_BYTES + 200_000))
    assert seen.get("disconnected") and seen["body"] <= MAX_BODY_BYTES


def test_guard_closes_a_websocket_from_another_host():
    _, sent, _ = _call_guard(scope_type="websocket", headers={"host": "evil.example"})
    assert sent == [{"type": "websocket.close", "code": 1008}]


def test_launch_options_carry_the_fences():
    opts = app.launch_options()
    assert opts["max_file_size"] == "1kb" and opts["state_session_capacity"] <= 256
    assert opts["app_kwargs"]["middleware"][0].cls.__name__ == "RequestGuard"


# --------------------------------------------------------------------------- a live server
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    demo = app.build_demo(MODELS)
    port = _free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                **app.launch_options())
    yield demo, f"http://127.0.0.1:{port}"
    demo.close()


def _fn_index(demo, api_name: str) -> int:
    return next(i for i, d in enumerate(demo.config["dependencies"]) if d.get("api_name") == api_name)


def _queue_call(http, url: str, fn_index: int, data: list) -> tuple[str, object]:
    """Call an event by its number (what the UI does; private events too): (event, output or error)."""
    join = http.post(f"{url}/gradio_api/queue/join",
                     json={"data": data, "fn_index": fn_index, "session_hash": f"hostile{fn_index}"})
    join.raise_for_status()
    with http.stream("GET", f"{url}/gradio_api/queue/data", params={"session_hash": f"hostile{fn_index}"}) as s:
        for line in s.iter_lines():
            if line.startswith("data:"):
                msg = json.loads(line[5:])
                if msg.get("msg") == "process_completed":
                    return ("ok" if msg.get("success") else "error"), msg.get("output")
    return "none", None


def test_live_server_fences_and_the_accept_event_by_number(server):
    import httpx

    demo, url = server
    with httpx.Client(timeout=30) as http:
        assert http.post(f"{url}/gradio_api/upload", files={"files": ("a.txt", b"x" * 100)}).status_code == 403
        assert http.get(f"{url}/config", headers={"host": "evil.example"}).status_code == 421
        cross = http.post(f"{url}/gradio_api/call/translate", json={"data": ["hello", 2]},
                          headers={"origin": "http://evil.example"})
        assert cross.status_code == 403
        assert http.post(f"{url}/gradio_api/call/translate", content=b"x" * (1 << 20),
                         headers={"content-type": "application/json"}).status_code == 413
        t0 = time.perf_counter()
        event, out = _queue_call(http, url, _fn_index(demo, "accept_suggestion_0"),
                                 ["y" * 100_000, [{"text": "yes", "kind": "completion"}]])
        assert time.perf_counter() - t0 < 5 and event == "error"
        event, out = _queue_call(http, url, _fn_index(demo, "accept_suggestion_0"),
                                 ["i would like to th", [{"text": "thank", "kind": "completion"}]])
        assert event == "ok" and out["data"][0] == "i would like to thank "


def test_idle_typing_sessions_are_dropped(shelf):
    engine = shelf["suggest"].get()
    for i in range(5):
        app.suggest(shelf, None, f"idle session {i} ", 3)
    assert engine.drop_idle(0) >= 5 and not engine._typings
