"""A keystroke's work: the typing session reads fewer rows and makes fewer model calls than a
plain search, and offers the same words.

Each saving is switched off on its own (monkeypatch), on the shipped suggestion model, over
everyday sentences typed key by key: the suggestions must not change and the work must grow.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from rnnkit.edge import search as search_mod
from rnnkit.edge import session as session_mod
from rnnkit.edge.session import TypingSession, open_session

BUNDLE = Path(__file__).resolve().parent.parent / "models" / "suggest-en"
SENTENCES = ["Thank you for the lovely dinner last night", "Can we meet tomorrow at the station?",
             "I'm not sure what you mean by that", "Hahaha that sounds great, see you soon",
             "Please send me the attention file", "cpap machine qzv"]


def _type(session: TypingSession, prefetch: bool = False):
    """(every keystroke's words, graph calls, rows fed, word searches run)."""
    session.reset()
    runs = []
    search = search_mod.search_words

    def counted(*a, **kw):
        runs.append(1)
        return search(*a, **kw)

    session_mod.search_words = counted
    try:
        calls0, rows0 = session.graph_calls, session.tokens_fed
        words = []
        for text in SENTENCES:
            for i in range(len(text) + 1):
                words.append([s.text for s in session.suggest(text[:i], 3, phrase=False)])
                if prefetch:
                    session.prefetch(text[:i], keys=3, phrase=False)
        return words, session.graph_calls - calls0, session.tokens_fed - rows0, len(runs)
    finally:
        session_mod.search_words = search


@pytest.fixture(scope="module")
def typed():
    return _type(open_session(BUNDLE))


def test_the_floor_reads_fewer_rows_for_the_same_words(typed, monkeypatch):
    """Partial words below min_ratio x the best word are not read further (search_words' min_ratio)."""
    def no_floor(self, a, lift):
        def floor(best):
            return -math.inf
        floor.key = "off"
        return floor
    monkeypatch.setattr(TypingSession, "_floor", no_floor)
    words, _, rows, _ = _type(open_session(BUNDLE))
    assert words == typed[0]
    assert typed[2] < 0.97 * rows, (typed[2], rows)


def test_a_wider_search_only_when_non_words_took_places(typed, monkeypatch):
    """The second, wider search runs only when the lexicon dropped words: a shortfall from the
    min_ratio bar or the typed word itself cannot be filled by words ranked lower."""
    offer = TypingSession._offer
    monkeypatch.setattr(TypingSession, "_offer", lambda self, *a: (offer(self, *a)[0], True))  # always look further
    words, _, _, runs = _type(open_session(BUNDLE))
    assert words == typed[0]
    assert typed[3] < 0.85 * runs, (typed[3], runs)


def test_candidates_ride_on_the_search_calls(typed, monkeypatch):
    """The n-gram's and the caches' candidates are read in the calls the search makes anyway."""
    monkeypatch.setattr(TypingSession, "_riding", lambda self, rows, words: rows)
    words, calls, _, _ = _type(open_session(BUNDLE))
    assert words == typed[0]
    assert typed[1] < 0.95 * calls, (typed[1], calls)


def test_a_prefetched_keystroke_runs_no_search():
    """prefetch ran the search the next key needs; the keystroke finds its answer kept (per
    root, so it cannot be stale) and makes neither a search nor a model call."""
    s = open_session(BUNDLE)
    s.suggest("See you tomo", 3, phrase=False)
    assert "r" in s.prefetch("See you tomo", keys=3, phrase=False)
    runs = []
    search = search_mod.search_words
    session_mod.search_words = lambda *a, **kw: (runs.append(1), search(*a, **kw))[1]
    try:
        calls = s.graph_calls
        got = [x.text for x in s.suggest("See you tomor", 3, phrase=False)]
    finally:
        session_mod.search_words = search
    assert runs == [] and s.graph_calls == calls
    fresh = open_session(BUNDLE)
    assert got == [x.text for x in fresh.suggest("See you tomor", 3, phrase=False)]


def test_the_kept_answers_go_with_reset_and_the_ngram_is_asked_once():
    """reset() forgets the searches (node ids restart with it); the n-gram's candidates for a
    prefix and context are asked for once, however often a keystroke needs them."""
    s = open_session(BUNDLE)
    s.suggest("See you tomo", 3, phrase=False)
    assert s._searched and s._ngram_memo
    s.reset()
    assert not s._searched
    asked = []
    candidates = s.ngram.candidates
    s.ngram.candidates = lambda *a: (asked.append(a), candidates(*a))[1]
    try:
        for _ in range(3):
            s.suggest("See you tomo", 3, phrase=False)
    finally:
        del s.ngram.candidates
    assert len(asked) == len(set(asked)) and asked


def test_a_small_row_cache_answers_as_a_large_one():
    """Re-deriving an evicted parent row must not evict the other parents of the same batch."""
    from rnnkit.edge.adapt import UserCache

    text = "I went skiing and it was so fun. I started doing jumps this last time I went skiing so fun"
    small = open_session(BUNDLE, cache_size=16, user=UserCache())
    large = open_session(BUNDLE, user=UserCache())
    for i in range(len(text) + 1):
        assert ([x.text for x in small.suggest(text[:i], 5, phrase=False)]
                == [x.text for x in large.suggest(text[:i], 5, phrase=False)]), text[:i]
    with pytest.raises(Exception, match="cache_size must be at least"):
        open_session(BUNDLE, cache_size=4)
