"""Hostile input to ``rnnkit suggest --json``: every line is answered exactly once, in order,
whatever it holds, and the loop goes on. One line in, one line out."""

from __future__ import annotations

import io
import json

import pytest

from conftest import MODELS, bounded, run
from rnnkit.edge.cli import MAX_LINE_BYTES, json_loop

OK = b'{"text": "Thank you f", "k": 2}'

# (line bytes, what its answer must be: "ok" for suggestions, else a piece of the error)
LINES = {
    "blank": (b"", "empty line"),
    "spaces": (b"   \t ", "empty line"),
    "file-separator": (b"\x1c", "empty line"),
    "group-separator": (b"\x1d\x1e", "empty line"),
    "raw-cr-inside-string": (b'{"text": "a\rb"}', "not JSON"),
    "cr-between-objects": (OK + b"\r" + OK, "not JSON"),
    "crlf": (OK + b"\r", "ok"),
    "nel-u0085": ('{"text": "a\u0085b "}'.encode(), "ok"),
    "line-separator-u2028": ('{"text": "a\u2028b "}'.encode(), "ok"),
    "k-4301-digits": (b'{"text": "hi ", "k": ' + b"9" * 4301 + b"}", "not JSON"),
    "k-4000-digits": (b'{"text": "hi ", "k": ' + b"9" * 4000 + b"}", "k must be an int from 1 to 20"),
    "k-float": (b'{"text": "hi ", "k": 2.5}', "k must be an int"),
    "k-true": (b'{"text": "hi ", "k": true}', "k must be an int"),
    "k-negative": (b'{"text": "hi ", "k": -1}', "k must be an int"),
    "k-string": (b'{"text": "hi ", "k": "3"}', "k must be an int"),
    "text-number": (b'{"text": 5}', "expected an object"),
    "text-null": (b'{"text": null}', "expected an object"),
    "not-an-object": (b'"hello"', "expected an object"),
    "array": (b"[1, 2, 3]", "expected an object"),
    "deep-nesting": (b"[" * 200_000, "not JSON"),
    "deep-object": (b'{"text": "a", "k": ' + b'{"a": ' * 50_000 + b"1" + b"}" * 50_000 + b"}", "not JSON"),
    "nan": (b'{"text": "a", "k": NaN}', "k must be an int"),
    "unknown-key": (b'{"text": "a", "lang": "en"}', "unknown key"),
    "many-unknown-keys": (json.dumps({"text": "a", **{f"k{i}": i for i in range(5000)}}).encode(), "unknown key"),
    "prefetch-huge": (b'{"text": "a", "prefetch": 1000000}', "prefetch must be"),
    "phrase-string": (b'{"text": "a", "phrase": "yes"}', "phrase must be"),
    "invalid-utf8": (b'{"text": "caf\xff\xfe "}', "ok"),
    "lone-surrogate": (b'{"text": "\\ud800 x"}', "ok"),
    "nul-bytes": (b'{"text": "a\\u0000b "}', "ok"),
    "control-characters": (b'{"text": "\\u001b[2J\\u0007 hi "}', "ok"),
    "1mb-text": (b'{"text": "' + b"a " * 500_000 + b'"}', "ok"),
    "one-long-word": (b'{"text": "' + b"x" * 200_000 + b'"}', "ok"),
    "emoji": (('{"text": "' + "\U0001F600" * 5000 + ' "}').encode(), "ok"),
    "overlong-line": (b'{"text": "' + b"a" * (MAX_LINE_BYTES + 10) + b'"}', "longer than"),
}


@pytest.fixture(scope="module")
def session():
    from rnnkit.edge.session import open_session

    return open_session(MODELS / "suggest-en")


def _loop(session, data: bytes) -> list[dict]:
    out = io.StringIO()
    with bounded(20):
        assert json_loop(session, io.BytesIO(data), out) == 0
    return [json.loads(line) for line in out.getvalue().splitlines()]


@pytest.mark.parametrize("case", sorted(LINES))
def test_each_line_gets_one_answer_and_the_loop_goes_on(session, case):
    line, want = LINES[case]
    answers = _loop(session, line + b"\n" + OK + b"\n")
    assert len(answers) == 2, answers[:3]
    first, second = answers
    if want == "ok":
        assert "suggestions" in first, first
    else:
        assert want in first.get("error", ""), first
        assert len(first["error"]) < 600  # no echo of a megabyte of input
    # the loop went on: the next request is answered as usual (how many of k=2 pass the session's
    # filters is the model's business; each is a completion of the typed "f")
    assert 1 <= len(second["suggestions"]) <= 2, second
    assert all(s["kind"] == "completion" and s["text"].startswith("f") for s in second["suggestions"]), second


def test_last_line_without_newline_is_answered(session):
    assert len(_loop(session, OK)) == 1
    assert _loop(session, b"") == []  # no line, no answer


def test_subprocess_pairs_every_request_with_one_answer():
    """The real entry point: all the hostile lines in one stream, answered in order, rc 0."""
    lines = [v[0] for k, v in sorted(LINES.items()) if k not in ("overlong-line", "1mb-text")] + [OK]
    r = run(["suggest", MODELS / "suggest-en", "--json"], stdin=b"\n".join(lines) + b"\n", timeout=90)
    assert r.returncode == 0 and b"Traceback" not in r.stderr, r.stderr[-2000:]
    answers = [json.loads(x) for x in r.stdout.decode("ascii").splitlines()]
    assert len(answers) == len(lines)
    assert "suggestions" in answers[-1]


def test_help_states_the_line_limit(capsys):
    from rnnkit.cli import main

    with pytest.raises(SystemExit):
        main(["suggest", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"over {MAX_LINE_BYTES} bytes" in text and "exactly one answer line" in text
