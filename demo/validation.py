"""Checks on what people type into the demo, before any model sees it.

Each check returns the cleaned text or raises ``InputError`` whose message is shown to the
user as is (the Gradio layer turns it into a ``gr.Error``). Nothing here imports gradio.
"""

from __future__ import annotations

import unicodedata

# Per-request token caps (applied by the engines right after tokenising, before any model call)
# and the error type live with the engines, which ``rnnkit predict`` shares.
from rnnkit.edge.predict import (MAX_HISTORY_POINTS, MAX_HORIZON, MAX_PROMPT_TOKENS,  # noqa: F401
                                 MAX_REVIEW_TOKENS, MAX_SOURCE_TOKENS, MAX_TAG_TOKENS, InputError)

# Per-field limits in characters: long enough for a paragraph, short enough that one
# request cannot hold a worker for seconds.
MAX_PROMPT_CHARS = 2000
MAX_SENTENCE_CHARS = 1000
MAX_REVIEW_CHARS = 1000  # the model was trained on single sentences
MAX_TYPING_CHARS = 10_000
MAX_ENTITY_CHARS = 2000
MAX_HISTORY_CHARS = 60_000  # a series pasted as numbers (co2's 2,284 weekly values are ~17 kB)
MAX_SUGGESTION_CHARS = 200  # a tapped suggestion comes back from the browser: a phrase, not a paste


def _bad_char(ch: str) -> bool:
    # Cc: ASCII/C1 control characters; Cs: lone surrogates (invalid in UTF-8);
    # Co/Cn: private use and unassigned code points. Newlines and tabs are ordinary text.
    if ch in "\n\t\r":
        return False
    return unicodedata.category(ch) in ("Cc", "Cs", "Co", "Cn")


def control_chars(text: str) -> list[str]:
    """The distinct disallowed characters in ``text``, as ``U+XXXX`` names, in order of appearance."""
    seen: list[str] = []
    for ch in text:
        if _bad_char(ch):
            name = f"U+{ord(ch):04X}"
            if name not in seen:
                seen.append(name)
    return seen


def check_text(text: object, what: str, max_chars: int, allow_empty: bool = False) -> str:
    """Return ``text`` NFC-normalised with ``\\r\\n`` turned into ``\\n``; raise ``InputError`` if unusable.

    ``what`` names the field in the message ("prompt", "sentence", ...).
    """
    if text is None:
        text = ""
    if not isinstance(text, str):
        raise InputError(f"the {what} must be text, got {type(text).__name__}")
    if len(text) > 2 * max_chars:  # before any per-character work: an API caller can send megabytes
        raise InputError(f"the {what} is {len(text):,} characters long; the limit is {max_chars:,}")
    bad = control_chars(text)
    if bad:
        shown = ", ".join(bad[:5]) + (" ..." if len(bad) > 5 else "")
        raise InputError(f"the {what} contains control or invalid characters ({shown}); "
                         "remove them and try again")
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    if len(text) > max_chars:
        raise InputError(f"the {what} is {len(text):,} characters long; the limit is {max_chars:,}")
    if not allow_empty and not text.strip():
        raise InputError(f"the {what} is empty: type some text first")
    return text


def check_number(value: object, what: str, lo: float, hi: float, integer: bool = False) -> float | int:
    """Return ``value`` as a number in [lo, hi]; API callers can send anything, the UI sliders cannot."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise InputError(f"{what} must be a number, got {type(value).__name__}")
    if isinstance(value, str) and len(value) > 40:
        raise InputError(f"{what} must be a number, got a {len(value):,}-character text")
    try:
        x = float(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an integer beyond float range
        raise InputError(f"{what} must be a number, got {_shown(value)}") from None
    if x != x or not lo <= x <= hi:  # x != x: NaN
        raise InputError(f"{what} must be between {lo:g} and {hi:g}, got {_shown(value)}")
    if integer:
        if x != int(x):
            raise InputError(f"{what} must be a whole number, got {_shown(value)}")
        return int(x)
    return x


def _shown(value: object) -> str:
    """A value for an error message, never thousands of digits long."""
    if isinstance(value, int) and abs(value) > 10 ** 20:
        return "a huge integer"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
