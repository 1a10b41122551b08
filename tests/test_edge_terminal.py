"""The interactive suggester: the line editor key by key, and the real program in tmux."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import uuid

import pytest

from rnnkit.edge.session import Suggestion, open_session
from rnnkit.edge.terminal import LineEditor, render, split_keys

from test_edge_support import tiny_bundle


def typed(ed: LineEditor, keys: str) -> LineEditor:
    for k in split_keys(keys):
        assert ed.key(k)
    return ed


def test_split_keys_glued_and_escape_sequences():
    assert split_keys("ab\x1b[D\x1b[Cc\t\x1b[3~\x1bOA\x1b[99;5Xz") == [
        "a", "b", "\x1b[D", "\x1b[C", "c", "\t", "\x1b[3~", "\x1bOA", "z"]


def test_tab_then_space_or_punctuation_leaves_no_double_space():
    ed = typed(LineEditor(), "Thank you f")
    ed.suggestions = [Suggestion("for", 0.5, "completion", 0.9)]
    typed(ed, "\t")
    assert ed.text == "Thank you for " and ed.soft_space
    typed(ed, " the")  # the habitual space is swallowed
    assert ed.text == "Thank you for the"
    ed.suggestions = [Suggestion("help", 0.2, "next", 0.2)]
    typed(ed, " \t.")  # punctuation replaces the soft space
    assert ed.text == "Thank you for the help. " and ed.before == ed.text  # the cursor after the space
    typed(ed, "  ")  # after punctuation's soft space: the first space is swallowed, the second typed
    assert ed.text == "Thank you for the help.  "


def test_arrows_move_the_cursor_and_choose_the_suggestion():
    ed = typed(LineEditor(), "helo world")
    typed(ed, "\x1b[D" * 6)  # to just after "helo"
    assert ed.before == "helo"
    typed(ed, "\x7fl\x1b[Dl")  # fix the typo in place: backspace, then insert
    assert ed.text == "helll world" and ed.before == "hell"
    typed(ed, "\x1b[3~")  # delete the extra letter after the cursor
    assert ed.text == "hell world"
    typed(ed, "o\x1b[F")
    assert ed.text == "hello world" and ed.cursor == len(ed.text)
    ed.suggestions = [Suggestion(w, 0.1, "next", 0.1) for w in ("a", "b", "c")]
    typed(ed, " \x1b[B\x1b[B")  # Down twice: the third suggestion is chosen
    assert ed.choice == 2
    typed(ed, "\t")
    assert ed.text == "hello world c "


def test_enter_keeps_two_line_redraw():
    ed = typed(LineEditor(), "first line\rsecond")
    assert ed.text == "first line\nsecond" and ed.lines_done == 1 and ed.line == ("second", 6)
    out = render(ed, 1.0)
    assert out.count("\n") == 1 and out.endswith("> second")  # only the current line is redrawn
    typed(ed, "\x1b[D\x1b[D")
    assert render(ed, 1.0).endswith("> second\x1b[2D")  # the terminal cursor goes where the editor's is


def _tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, timeout=30).stdout


@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux (apt-get install tmux)")
def test_real_terminal_in_tmux(no_prefetch_budget):
    """Type into `rnnkit suggest` running in a real terminal (tmux), read the screen back."""
    bundle = str(tiny_bundle("lstm"))
    first = open_session(bundle).suggest("Thank you f")[0].text
    name = f"rnnkit-{uuid.uuid4().hex[:8]}"
    _tmux("new-session", "-d", "-s", name, "-x", "160", "-y", "20",
          f"{sys.executable} -m rnnkit.cli suggest {bundle}")

    def screen() -> list[str]:
        return [l.rstrip() for l in _tmux("capture-pane", "-p", "-t", name).splitlines() if l.strip()]

    def wait_for(what: str, ok, timeout: float = 90.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while True:
            lines = screen()
            if ok(lines):
                return lines
            assert time.monotonic() < deadline, f"no {what} after {timeout:.0f} s; screen: {lines}"
            time.sleep(0.05)

    def send(keys: str, literal: bool = True) -> None:
        _tmux("send-keys", "-t", name, *(["-l"] if literal else []), keys)

    try:
        wait_for("prompt", lambda s: any("Tab accepts" in l for l in s), timeout=120.0)
        for ch in "Thank you f":
            send(ch)
        wait_for("typed text", lambda s: s[-1] == "> Thank you f")
        send("Tab", literal=False)
        wait_for("accepted word", lambda s: s[-1] == f"> Thank you {first}")  # the soft space is there
        send(" x")  # a habitual space: swallowed
        wait_for("no double space", lambda s: s[-1] == f"> Thank you {first} x")
        send("Left", literal=False)
        send("Left", literal=False)
        send("y")
        wait_for("insert at the cursor", lambda s: s[-1] == f"> Thank you {first}y x")
        send("Enter", literal=False)
        send("next")
        lines = wait_for("second line", lambda s: s[-1] == "> next")
        assert f"> Thank you {first}y x" in lines  # the finished line stays on screen, once
        assert sum(l.startswith("> ") for l in lines) == 2 and sum("ms]" in l for l in lines) == 2
        send("C-d", literal=False)
        deadline = time.monotonic() + 60
        while name in _tmux("list-sessions", "-F", "#{session_name}"):
            assert time.monotonic() < deadline, f"did not exit on Ctrl-D; screen: {screen()}"
            time.sleep(0.1)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True, timeout=30)
