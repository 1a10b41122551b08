"""``rnnkit suggest`` in a terminal: a small line editor with live suggestions.

Keys: letters type at the cursor; Left/Right, Home/End move it; Backspace/Delete erase; Up/Down
choose which suggestion Tab takes; Tab accepts it; Enter ends the line (it stays on screen and a
new one starts); Ctrl-D or Ctrl-C quits.

After Tab the word is followed by a space, as on a phone keyboard, and that space is *soft*: a
space typed next is swallowed (no double space), and punctuation typed next takes its place
("word ." -> "word."). The editor is pure (``LineEditor.key``), so it is tested without a
terminal; ``run`` does the terminal input and output.

Torch-free: stdlib only (the session it drives is numpy / onnxruntime).
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field

KEYS = {  # escape sequences of the keys the editor knows (xterm / VT100, as tmux sends them)
    "\x1b[D": "left", "\x1bOD": "left", "\x1b[C": "right", "\x1bOC": "right",
    "\x1b[A": "up", "\x1bOA": "up", "\x1b[B": "down", "\x1bOB": "down",
    "\x1b[H": "home", "\x1bOH": "home", "\x1b[1~": "home", "\x1b[F": "end", "\x1bOF": "end",
    "\x1b[4~": "end", "\x1b[3~": "delete", "\x7f": "backspace", "\x08": "backspace", "\t": "tab",
    "\r": "enter", "\n": "enter", "\x04": "quit", "\x03": "quit",
}
PUNCTUATION = ".,!?;:)"


def split_keys(data: str) -> list[str]:
    """Raw terminal input -> keys (an escape sequence is one key; glued keys are split)."""
    out, i = [], 0
    while i < len(data):
        for seq in sorted((s for s in KEYS if s.startswith("\x1b")), key=len, reverse=True):
            if data.startswith(seq, i):
                out.append(seq)
                i += len(seq)
                break
        else:
            if data[i] == "\x1b":  # an escape sequence we do not know: skip it whole
                j = i + 1
                if j < len(data) and data[j] in "[O":
                    j += 1
                    while j < len(data) and not data[j].isalpha() and data[j] != "~":
                        j += 1
                    j += 1
                i = j
                continue
            out.append(data[i])
            i += 1
    return out


@dataclass
class LineEditor:
    """The text typed so far (all lines), the cursor in it, and the chosen suggestion."""

    text: str = ""
    cursor: int = 0
    choice: int = 0                       # which suggestion Tab takes
    soft_space: bool = False              # the space after an accepted word, not typed by the user
    lines_done: int = 0                   # Enter pressed this many times (the screen keeps them)
    suggestions: list = field(default_factory=list)

    @property
    def before(self) -> str:
        """What the session sees: the text up to the cursor."""
        return self.text[:self.cursor]

    @property
    def line(self) -> tuple[str, int]:
        """The current line and the cursor's column in it."""
        start = self.text.rfind("\n", 0, self.cursor) + 1
        end = self.text.find("\n", self.cursor)
        end = len(self.text) if end < 0 else end
        return self.text[start:end], self.cursor - start

    def _insert(self, s: str) -> None:
        self.text = self.text[:self.cursor] + s + self.text[self.cursor:]
        self.cursor += len(s)

    def key(self, k: str) -> bool:
        """Apply one key; False when it asks to quit."""
        name = KEYS.get(k)
        soft, self.soft_space = self.soft_space, False
        if name == "quit":
            return False
        if name == "left":
            self.cursor = max(0, self.cursor - 1)
        elif name == "right":
            self.cursor = min(len(self.text), self.cursor + 1)
        elif name == "home":
            self.cursor = self.text.rfind("\n", 0, self.cursor) + 1
        elif name == "end":
            end = self.text.find("\n", self.cursor)
            self.cursor = len(self.text) if end < 0 else end
        elif name in ("up", "down") and self.suggestions:
            self.choice = (self.choice + (1 if name == "down" else -1)) % len(self.suggestions)
            self.soft_space = soft
        elif name == "backspace" and self.cursor:
            self.text = self.text[:self.cursor - 1] + self.text[self.cursor:]
            self.cursor -= 1
        elif name == "delete":
            self.text = self.text[:self.cursor] + self.text[self.cursor + 1:]
        elif name == "tab" and self.suggestions:
            self.accept(self.suggestions[min(self.choice, len(self.suggestions) - 1)])
        elif name == "enter":
            self.cursor = len(self.text)  # a line ends at the end of the text
            self._insert("\n")
            self.lines_done += 1
        elif name is None and (k == " " or k.isprintable()):
            if soft and k == " ":
                pass  # the space is there already
            elif soft and k in PUNCTUATION and self.before.endswith(" "):
                self.text = self.text[:self.cursor - 1] + k + " " + self.text[self.cursor:]
                self.cursor += 1  # after the space again: the next key starts the next word
                self.soft_space = True  # "word. " keeps a soft space after the punctuation
            else:
                self._insert(k)
        return True

    def accept(self, suggestion) -> None:
        """A completion replaces the partial word before the cursor; a next word or a phrase is
        inserted; then a soft space (unless a space follows already)."""
        before = self.before
        if suggestion.kind == "completion":
            word_start = len(before) - len(before.split()[-1]) if before and not before[-1].isspace() else len(before)
            self.text = self.text[:word_start] + self.text[self.cursor:]
            self.cursor = word_start
        self._insert(suggestion.text)
        if not self.text[self.cursor:self.cursor + 1].isspace():
            self._insert(" ")
        else:
            self.cursor += 1
        self.soft_space = True


def render(ed: LineEditor, ms: float, width: int = 100) -> str:
    """The two lines redrawn in place: the suggestions (the chosen one marked), then the
    current line with the terminal cursor put where the editor's is."""
    from .cli import _fmt  # the one way a suggestion is shown

    parts = [("[" + _fmt(s) + "]") if i == ed.choice else _fmt(s) for i, s in enumerate(ed.suggestions)]
    sugg = ("  ".join(parts) or "(no suggestion)")[:width]
    line, col = ed.line
    shown = line[-(width - 4):] if len(line) > width - 4 else line
    back = len(shown) - (col - (len(line) - len(shown)))
    move = f"\x1b[{back}D" if back > 0 else ""
    return f"\r\x1b[2K\x1b[1A\r\x1b[2K  {sugg}   [{ms:.1f} ms]\n\r\x1b[2K> {shown}{move}"


def run(session, k: int, idle=None) -> int:
    """The interactive loop on this process's terminal (cbreak mode, restored on exit).
    ``idle()``, if given, runs in the pause after each keystroke's prefetch (autosave)."""
    import select
    import termios
    import tty

    fd = sys.stdin.fileno()
    old = termios.tcgetattr(fd)
    ed = LineEditor()
    try:
        tty.setcbreak(fd)  # keys arrive one by one, unechoed; then the prompt says we are ready
        print("type; Tab accepts the [chosen] suggestion, Up/Down choose, Left/Right move, "
              "Enter ends a line, Ctrl-D or Ctrl-C quits\n")
        lines_drawn = 0
        while True:
            t0 = time.perf_counter()
            ed.suggestions = session.suggest(ed.before, k)
            ed.choice = min(ed.choice, max(len(ed.suggestions) - 1, 0))
            ms = (time.perf_counter() - t0) * 1e3
            if ed.lines_done > lines_drawn:  # leave the finished line on screen, start a new block
                sys.stdout.write("\n\n")
                lines_drawn = ed.lines_done
            sys.stdout.write(render(ed, ms))
            sys.stdout.flush()
            key_waiting = lambda: bool(select.select([fd], [], [], 0)[0])  # noqa: E731
            if not key_waiting():  # use the pause to prepare the next keys; a key press cuts it short
                session.prefetch(ed.before, k=k, stop=key_waiting)
            if idle is not None and not key_waiting():
                idle()
            data = os.read(fd, 64).decode("utf-8", "replace")
            keys = split_keys(data)
            if not all(ed.key(key) for key in keys) or not data:
                break
            ed.choice = 0 if any(KEYS.get(x) not in ("up", "down") for x in keys) else ed.choice
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, old)
        print()
    return 0
