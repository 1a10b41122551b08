"""eval-suggest's scoring (hand-checked), and the suggest / eval-suggest commands."""

from __future__ import annotations

import io
import json
import math
import sys

import pytest

from rnnkit.cli import main
from rnnkit.edge.cli import answer
from rnnkit.edge.eval import score, targets
from rnnkit.edge.session import open_session

from test_edge_support import TRAIN_TEXT, tiny_bundle


def test_score_by_hand():
    text = "the cat sat"

    def fake(so_far: str, start: int, typed: int) -> list[str]:
        word = text[start:].split()[0]
        if word == "the":
            return ["x", "y", "z"]
        if word == "cat":
            return ["cab", "cat"] if typed >= 1 else ["dog"]
        return ["sat"]

    r = score(text, fake)
    assert targets(text) == [(0, "the"), (4, "cat"), (8, "sat")]
    assert (r["next_word_top1"], r["next_word_top3"], r["next_word_n"]) == (1 / 3, 1 / 3, 3)
    assert (r["completion_1_top1"], r["completion_1_top3"]) == (1 / 3, 2 / 3)
    assert (r["completion_2_top1"], r["completion_2_top3"]) == (1 / 3, 2 / 3)
    assert r["completion_3_n"] == 0 and math.isnan(r["completion_3_top3"])
    # typing every space: "cat" accepted after 1 char saves 3-1-1 = 1, "sat" at once 3-0-1 = 2;
    # the tap also inserts the space after "cat" (one more saved); "sat" ends the text
    assert r["keystroke_savings_space_typed"] == pytest.approx(3 / 11)
    assert r["keystroke_savings"] == pytest.approx(4 / 11)


def test_json_answers_errors_and_goes_on(no_prefetch_budget):
    session = open_session(tiny_bundle("lstm"))
    assert answer(session, "{")["error"].startswith("not JSON")
    assert "unknown key" in answer(session, '{"text": "a", "lang": "en"}')["error"]
    assert "k must be an int" in answer(session, '{"text": "a", "k": 99}')["error"]
    assert "phrase must be" in answer(session, '{"text": "a", "phrase": "yes"}')["error"]
    assert "expected an object" in answer(session, "[1, 2]")["error"]
    ok = answer(session, json.dumps({"text": "Thank you f", "k": 2, "phrase": False}))
    # (how many of k=2 pass the min_ratio filter depends on the toy model: 1 or 2)
    assert 1 <= len(ok["suggestions"]) <= 2 and ok["ms"] > 0
    assert all(s["kind"] == "completion" and s["text"].startswith("f") for s in ok["suggestions"])
    assert set(ok["suggestions"][0]) == {"text", "kind", "prob", "p_given_typed"}
    assert "prefetch must be" in answer(session, '{"text": "a", "prefetch": 99}')["error"]
    after: list = []
    answer(session, json.dumps({"text": "Thank you f", "prefetch": 3}), after)
    assert len(after) == 1
    calls = session.graph_calls
    keys = after[0]()  # the loop runs it once the answer is printed
    assert session.graph_calls > calls
    assert keys and all(len(key) == 1 for key in keys)
    calls = session.graph_calls
    answer(session, json.dumps({"text": "Thank you f" + keys[0]}))  # a prefetched key: no model call
    assert session.graph_calls == calls


def test_suggest_line_mode(monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("Thank you f\n\nI think \n"))
    assert main(["suggest", str(tiny_bundle("lstm")), "-k", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and lines[0].startswith("'Thank you f': f")


def test_eval_suggest_writes_figures(tmp_path, capsys, no_prefetch_budget):
    held = tmp_path / "held.txt"
    held.write_text("Thank you for the lovely dinner.\nI think we should leave before the rain starts.\n")
    train = tmp_path / "train.txt"
    train.write_text(TRAIN_TEXT)
    out = tmp_path / "figures.json"
    assert main(["eval-suggest", str(tiny_bundle("lstm")), "--text", str(held), "--train-text", str(train),
                 "--out", str(out), "--phrase-every", "1"]) == 0
    printed = capsys.readouterr().out
    assert "next-word top-3" in printed and "keystroke savings" in printed
    r = json.loads(out.read_text())
    for part in ("lstm", "kneser_ney"):
        for key in ("next_word_top1", "next_word_top3", "completion_1_top3", "keystroke_savings"):
            assert 0.0 <= r[part][key] <= 1.0, (part, key)
        assert r[part]["next_word_n"] == 6 + 9  # words of the two lines
    assert r["lstm"]["keystrokes"] == len(held.read_text()) + 1
    assert r["lstm"]["latency_ms_p99"] >= r["lstm"]["latency_ms_p50"] > 0
    rates = [row["trigger_rate"] for row in r["phrase"]["thresholds"]]
    assert rates == sorted(rates)  # a lower threshold never triggers less
    inside = r["phrase"]["inside_words"]  # after 1 and 2 letters of each word, at the session's bar
    assert [row["typed"] for row in inside] == [1, 2] and "after 1 letter of the word" in printed
    assert inside[0]["positions"] >= inside[1]["positions"] > 0
    assert r["kneser_ney"]["perplexity"] > 1
    assert 0 < r["lstm"]["completions_offered_per_keystroke"] <= 3
    assert 0 <= r["lstm"]["not_words"] <= 1 and "not words of the reference lexicon" in printed
    assert r["lstm"]["offered_next"] > 0 and r["lstm"]["offered_completion"] > 0
    pf = r["lstm_prefetch"]  # the same typing with idle-time prefetch (default 3 keys)
    assert pf["prefetch_keys"] == 3 and "idle-time prefetch" in printed
    assert pf["no_call_keystrokes"] > r["lstm"]["no_call_keystrokes"]
    assert pf["graph_calls_per_keystroke"] < r["lstm"]["graph_calls_per_keystroke"]
    assert pf["idle_ms_p99"] >= pf["idle_ms_p50"] > 0


def test_eval_suggest_bad_files_are_one_line_errors(tmp_path, capsys):
    assert main(["eval-suggest", str(tiny_bundle("lstm")), "--text", str(tmp_path / "none.txt")]) == 2
    assert "no such text file" in capsys.readouterr().err
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n")
    assert main(["eval-suggest", str(tiny_bundle("lstm")), "--text", str(empty)]) == 2
    assert "empty text" in capsys.readouterr().err


def test_spread_lines_samples_whole_lines_in_order():
    from rnnkit.edge.cli import spread_lines

    text = "".join(f"line {i:03d}\n" for i in range(100))  # 9 characters a line
    out = spread_lines(text, 90).splitlines()
    assert out == [f"line {i:03d}" for i in range(0, 100, 10)]
    assert spread_lines("a\n\n  \nb\n", 0) == "a\nb\n"


def test_json_mode_survives_bad_bytes_and_huge_lines():
    """Invalid UTF-8, a 1 MB line, deep nesting: each gets an answer and the loop goes on."""
    import subprocess
    import sys

    lines = [b'{"text": "caf\xff\xfe"}', b'{"text": "' + b"a " * 500_000 + b'"}', b"[" * 100_000,
             b'{"text": "\\ud800 lone"}', b'{"text": "Thank you f", "k": 1}']
    r = subprocess.run([sys.executable, "-m", "rnnkit.cli", "suggest", str(tiny_bundle("lstm")), "--json"],
                       input=b"\n".join(lines) + b"\n", capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    answers = [json.loads(x) for x in r.stdout.decode("ascii").splitlines()]
    assert len(answers) == len(lines)
    assert "suggestions" in answers[0] and "suggestions" in answers[1] and "suggestions" in answers[3]
    assert "error" in answers[2]
    assert answers[4]["suggestions"][0]["text"].startswith("f")


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_interactive_terminal_updates_as_you_type():
    """Drive `rnnkit suggest BUNDLE` through a pseudo-terminal: type, Tab accepts, Ctrl-D quits.

    No fixed sleeps: every step waits, with a deadline, for the screen to show what it expects
    (each key is sent once the previous one is drawn, so keys never arrive glued together), and
    the exit is polled (waitpid WNOHANG) with a deadline, then the child is killed. A slow machine
    makes the test slower; a broken CLI makes it fail, never hang."""
    import os
    import pty
    import select
    import signal
    import time

    bundle = str(tiny_bundle("lstm"))
    first = open_session(bundle).suggest("Thank you f")[0].text
    pid, fd = pty.fork()
    if pid == 0:  # the child becomes the CLI on the terminal's slave side
        try:
            os.execv(sys.executable, [sys.executable, "-m", "rnnkit.cli", "suggest", bundle])
        finally:
            os._exit(127)
    out = b""

    def screen() -> str:
        return out.decode("utf-8", "replace")[-2000:]

    def pump(seconds: float) -> bool:
        """Read what the CLI wrote within ``seconds``; False once the terminal is closed."""
        nonlocal out
        if not select.select([fd], [], [], seconds)[0]:
            return True
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the child has gone
            return False
        out += chunk
        return bool(chunk)

    def wait_for(what: str, seen, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not seen(out):
            assert time.monotonic() < deadline, f"no {what} after {timeout:.0f} s; screen:\n{screen()}"
            assert pump(0.05) or seen(out), f"the CLI exited before {what}; screen:\n{screen()}"

    def exit_status(timeout: float) -> int | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return status
            pump(0.05)
        return None

    status = None
    try:
        wait_for("prompt", lambda o: b"Tab accepts" in o, timeout=120.0)  # cbreak mode is on by then
        typed = ""
        for ch in "Thank you f":
            typed += ch
            os.write(fd, ch.encode())
            wait_for(f"redraw of {typed!r}", lambda o, t=typed: o.endswith(f"> {t}".encode()))
        last_draw = out[out.rfind(b"\x1b[1A"):].decode("utf-8", "replace")  # the suggestions line, redrawn
        assert first in last_draw, (first, last_draw)
        os.write(fd, b"\t")
        wait_for("accepted completion", lambda o: f"> Thank you {first} ".encode() in o)  # Tab put it in place
        os.write(fd, b"\x04")
        status = exit_status(timeout=60.0)
        assert status is not None, f"the CLI did not exit within 60 s of Ctrl-D; screen:\n{screen()}"
    finally:
        if status is None:  # failed or timed out: never leave the child behind
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, screen()


def test_default_bundle_is_found_beside_the_package(tmp_path, monkeypatch):
    import os

    from rnnkit.edge.cli import DEFAULT_BUNDLE, resolve_bundle

    monkeypatch.chdir(tmp_path)  # not the repository root
    assert resolve_bundle("some/other") == "some/other"
    found = resolve_bundle(DEFAULT_BUNDLE)
    assert found == DEFAULT_BUNDLE or (os.path.isabs(found) and found.endswith(DEFAULT_BUNDLE) and os.path.isdir(found))


class _FixedSession:
    """A stand-in session with fixed answers, so the non-word shares can be counted by hand."""
    graph_calls = tokens_fed = 0

    def reset(self):
        pass

    def suggest(self, text, k=3, phrase=False):
        from rnnkit.edge.session import Suggestion
        if not text or text[-1].isspace():
            return [Suggestion("the", 0.5, "next", 0.5), Suggestion("xq", 0.1, "next", 0.1)]
        return [Suggestion(w, 0.2, "completion", 0.3) for w in ("abc", "Qqq", "zzz")]


def test_non_word_shares_counted_by_hand():
    from rnnkit.edge.eval import lstm_eval, reference_lexicon
    is_word = reference_lexicon(["the", "abc"], ["qqq"])  # "Qqq" is a word by its lower case
    r = lstm_eval(_FixedSession(), "ab cd", is_word=is_word)
    # keystrokes 0..5: boundaries at "" and "ab " (2 x 2 next words, "xq" twice not a word);
    # inside words at 1, 2, 4, 5 (4 x 3 completions, "zzz" four times not a word)
    assert (r["offered_next"], r["not_words_next"]) == (4, 0.5)
    assert (r["offered_completion"], r["not_words_completion"]) == (12, 4 / 12)
    assert r["not_words"] == 6 / 16


class _OracleSession(_FixedSession):
    """Always suggests the word being typed (or the next word) of a known text: scored against
    its own keystroke it is always right, against any other keystroke often wrong."""

    def __init__(self, text):
        self.text = text

    def suggest(self, so_far, k=3, phrase=False):
        from rnnkit.edge.session import Suggestion
        start = len(so_far) - len(so_far.split(" ")[-1])
        word = self.text[start:].split(" ")[0]
        kind = "completion" if so_far and not so_far[-1].isspace() else "next"
        return [Suggestion(word, 0.5, kind, 0.5)] if word else []


def test_each_keystroke_is_scored_with_its_own_suggestions():
    from rnnkit.edge.eval import lstm_eval
    text = "see you at noon"
    r = lstm_eval(_OracleSession(text), text)
    assert r["next_word_top1"] == 1.0 and r["completion_1_top1"] == 1.0
    # every word accepted at its first keystroke: saves len - 1 of each, and the three words
    # followed by a space save that space too (the tap inserts it)
    assert r["keystroke_savings_space_typed"] == pytest.approx((2 + 2 + 1 + 3) / len(text))
    assert r["keystroke_savings"] == pytest.approx((3 + 3 + 2 + 3) / len(text))


def test_phrase_exact_match_needs_every_word():
    from rnnkit.edge.eval import phrase_eval
    from rnnkit.edge.phrase import PhraseHit

    from rnnkit.edge.session import Suggestion

    class Phrases(_FixedSession):
        phrase_min_prob = 0.35

        def phrase_candidates(self, text, min_prob=0.0):
            # after "see ": "you xx" (its first word right only); after "see you ": "at noon" (right)
            return {2: PhraseHit({"see ": "you xx", "see you ": "at noon"}.get(text, "xx yy"), -1.0, 2, 3)}

        def suggest(self, text, k=3, phrase=True):
            # inside words: after "see y" the phrase "you at" (right: " noon" follows), after
            # "see you at n" "noon today" (wrong: the text ends); elsewhere none
            got = {"see y": "you at", "see you at n": "noon today"}.get(text)
            return [Suggestion(got, 0.4, "phrase", 0.5)] if got else []

    r = phrase_eval(Phrases(), "see you at noon", thresholds=(0.3,))
    row = r["thresholds"][0]
    assert r["positions"] == 4 and row["trigger_rate"] == 1.0
    assert row["exact_match_rate"] == 0.25  # only "at noon" follows whole; "you xx" is not a match
    one, two = r["inside_words"]
    assert (one["typed"], one["positions"], one["min_prob"]) == (1, 4, 0.35)  # every word is longer than 1
    assert (one["trigger_rate"], one["exact_match_rate"], one["precision"]) == (0.5, 0.25, 0.5)
    assert (two["typed"], two["positions"], two["trigger_rate"]) == (2, 3, 0.0)  # "at" is not longer than 2
    assert two["precision"] != two["precision"]  # nothing offered: no precision (nan)


def test_the_tap_saves_the_space_only_where_a_space_follows():
    """A word that ends a line or is followed by punctuation saves no space: the user types
    the line break or the mark (and the demo's tap would have put a space before it)."""
    text = "ok,\nno go"

    def oracle(so_far: str, start: int, typed: int) -> list[str]:
        return [text[start:].replace(",", " ").split()[0]]

    r = score(text, oracle)
    # "ok" 2-0-1 = 1, "no" 1 (+1: a space follows), "go" 1 (ends the text)
    assert r["keystroke_savings_space_typed"] == pytest.approx(3 / len(text))
    assert r["keystroke_savings"] == pytest.approx(4 / len(text))


def test_savings_reads_results_from_before_the_tap_space_definition():
    from rnnkit.edge.eval import savings
    old = {"keystroke_savings": 0.3}
    assert savings(old) is None and savings(old, tap_space=False) == 0.3
    new = {"keystroke_savings": 0.4, "keystroke_savings_space_typed": 0.3}
    assert savings(new) == 0.4 and savings(new, tap_space=False) == 0.3


def test_a_reused_session_counts_each_texts_own_tokens():
    """The session's counters run across texts; lstm_eval reports what this text fed (bench/tune_suggest.py
    types every grid row through one session)."""
    from rnnkit.edge.eval import lstm_eval

    session = open_session(tiny_bundle("lstm"))
    first = lstm_eval(session, TRAIN_TEXT[:60])
    again = lstm_eval(session, TRAIN_TEXT[:60])
    assert first["tokens_fed_per_keystroke"] > 0
    assert again["tokens_fed_per_keystroke"] == pytest.approx(first["tokens_fed_per_keystroke"])


def test_eval_suggest_reads_a_byte_order_mark_and_crlf_as_the_plain_text(tmp_path, capsys):
    """A file saved by a Windows editor (BOM, CRLF) is scored as the same text: the mark is no
    character of its first word, and the line ends are line ends."""
    body = "Thank you for the lovely dinner.\nI think we should leave before the rain starts.\n"
    figures = {}
    for name, data in (("plain", body.encode()), ("windows", b"\xef\xbb\xbf" + body.replace("\n", "\r\n").encode())):
        path, out = tmp_path / f"{name}.txt", tmp_path / f"{name}.json"
        path.write_bytes(data)
        words = tmp_path / f"{name}-words.txt"
        words.write_bytes(data[:3] + b"Thank\nyou\n" if name == "windows" else b"Thank\nyou\n")
        assert main(["eval-suggest", str(tiny_bundle("lstm")), "--text", str(path), "--prefetch", "0",
                     "--phrase-every", "1000", "--reference-words", str(words), "--out", str(out)]) == 0
        r = json.loads(out.read_text())
        figures[name] = (r["chars"], r["lstm"]["next_word_n"], r["lstm"]["next_word_top3"],
                         r["lstm"]["keystroke_savings"], r["lstm"]["not_words"])
    capsys.readouterr()
    assert figures["windows"] == figures["plain"]
