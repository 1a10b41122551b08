"""The shipped suggestion model speaks everyday English and offers words, on what people type.

Product checks on models/suggest-en (a fresh clone has it): the answers below are far from
ties (their margins are asserted), so a library release cannot flip them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rnnkit.edge.session import open_session

BUNDLE = Path(__file__).resolve().parent.parent / "models" / "suggest-en"
PREFIXES = ["", "Thank you ", "Can we schedule a meeting ", "See you tomor", "I'm going to the ", "Kind ",
            "Could you please ", "I will send you ", "x", "you", "qzv", "Let me kn", "What time is the m",
            "haha that's so ", "The government said ", "Happy birth", "I don't th"]


@pytest.fixture(scope="module")
def session():
    return open_session(BUNDLE)


def test_bundle_is_phone_sized():
    size = sum(f.stat().st_size for f in BUNDLE.iterdir() if f.is_file() and f.name != "README.md")
    assert size <= 8_000_000, size


def test_everyday_openings(session):
    thanks = session.suggest("Thank you ", 3, phrase=False)
    assert thanks[0].text == "for" and thanks[0].prob > 1.5 * thanks[1].prob, thanks
    tomorrow = session.suggest("See you tomor", 3, phrase=False)
    assert tomorrow[0].text == "tomorrow" and tomorrow[0].p_given_typed > 0.5, tomorrow


@pytest.mark.xfail(strict=True, reason="target missed by the shipped model: 'for' ranks 5th (0.041 after "
                                       "with 0.121, in 0.096, of 0.072, on 0.070; the model with its word n-gram); "
                                       "a model that meets it makes this XPASS")
def test_meeting_is_for_or_to(session):
    meeting = [s.text for s in session.suggest("Can we schedule a meeting ", 3, phrase=False)]
    assert {"for", "to"} & set(meeting), meeting


def test_offered_strings_are_words(session):
    assert session.lexicon is not None and len(session.lexicon) > 20_000
    for text in PREFIXES:
        for s in session.suggest(text, 3, phrase=False):
            assert s.text in session.lexicon or s.p_given_typed >= session.oov_min_prob, (text, s)
