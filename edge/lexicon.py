"""Which strings are words: the bundle's lexicon (its training text's words) plus the user's own.

The piece search can spell strings no one writes ("theationping"). The session offers a word
only if the lexicon knows it, the user has typed it, or the model is confident enough given
what was typed (``TypingSession.oov_min_prob``). ``lexicon.txt`` holds one word a line, most
frequent first; case is folded the way people type: "Thanks" at the start of a sentence is
known when "thanks" is.

Torch-free: stdlib only.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Iterable

from .words import words_of

FILE_NAME = "lexicon.txt"
MAX_WORD_CHARS = 48


def build_lexicon(lines: Iterable[str], min_count: int = 2, max_words: int = 100_000) -> list[str]:
    """The training text's words seen at least ``min_count`` times, most frequent first."""
    counts = Counter(w for line in lines for w in words_of(line) if len(w) <= MAX_WORD_CHARS)
    return [w for w, n in counts.most_common(max_words) if n >= min_count]


def write_lexicon(path: str | os.PathLike, words: list[str]) -> None:
    from rnnkit.core.atomic import atomic_write_text  # stdlib-only module

    atomic_write_text(path, "".join(w + "\n" for w in words))


class Lexicon:
    """A set of words with typing-style case folding; ``learn`` adds the user's own."""

    def __init__(self, words: Iterable[str] = (), max_user_words: int = 20_000):
        self._words = set(words)
        self._lower = {w.lower() for w in self._words}
        self.user: dict[str, None] = {}  # insertion-ordered: the oldest go first when full
        self.max_user_words = max_user_words

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Lexicon":
        with open(path, encoding="utf-8") as f:
            return cls(w for w in (line.strip() for line in f) if w)

    def __len__(self) -> int:
        return len(self._words)

    def __contains__(self, word: str) -> bool:
        if word in self._words or word in self.user:
            return True
        low = word.lower()
        # "Thanks" / "THANKS" when "thanks" is known; never "iphone" from "iPhone" alone
        return (word[:1].isupper() and low in self._words) or (word.isupper() and low in self._lower)

    def learn(self, text: str) -> None:
        """Remember the whole words of ``text`` as the user's (bounded, oldest dropped first)."""
        for w in words_of(text):
            if len(w) <= MAX_WORD_CHARS and w not in self._words:
                self.user.pop(w, None)
                self.user[w] = None
        while len(self.user) > self.max_user_words:
            self.user.pop(next(iter(self.user)))
