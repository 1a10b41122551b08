"""``rnnkit eval-suggest``: type a file character by character and score the suggestions.

Figures (the LSTM session, and the Kneser-Ney trigram on the same text):
- next-word top-1 / top-3: at every word start (after whitespace), is the word the first /
  among the three suggestions;
- completion top-1 / top-3 after 1, 2, 3 typed characters of a word longer than that;
- keystroke savings: a word accepted with one tap at the first point where a top-3
  suggestion equals it saves ``len(word) - typed`` keystrokes when a space follows it in the
  text (the tap inserts the word and a space: the terminal editor and the demo do, as phone
  keyboards do) and ``len(word) - typed - 1`` otherwise; reported as saved / characters of the
  whole text. ``keystroke_savings_space_typed`` counts as if the user typed every space after
  an accepted word (the figure before 2026-11-30: each word saves one keystroke less);
- p50 / p99 latency per keystroke of ``suggest`` (word suggestions; phrases timed apart), wall
  clock and this thread's CPU time (which other processes on a shared machine do not inflate);
  then again with ``prefetch`` between keystrokes (the idle work timed apart);
- Smart Compose: at word starts, the phrase beam's probability; for each threshold, how often a
  phrase is offered (trigger rate) and how often the offered phrase is exactly what follows.

A "word" is a run of letters, digits, apostrophes and hyphens that starts after whitespace
(``kneser_ney.tokenize``'s definition); other tokens are typed but not scored.
"""

from __future__ import annotations

import re
import time
from typing import Callable, Sequence

import numpy as np

from rnnkit.core.text.kneser_ney import KneserNeyTrigram, tokenize

from .phrase import pick_phrase
from .session import TypingSession
from .words import WORD

_TARGET = re.compile(r"(?<!\S)" + WORD.pattern)  # a word that starts after whitespace or at the start
PHRASE_THRESHOLDS = (0.6, 0.5, 0.4, 0.35, 0.3, 0.25, 0.2, 0.15, 0.1, 0.05, 0.02)  # the phrase's probability (0.35: the default)

Suggest = Callable[[str, int, int], list[str]]  # (text, position, n typed) -> top-3 words


def targets(text: str) -> list[tuple[int, str]]:
    """(start index, word) of every scored word."""
    return [(m.start(), m.group()) for m in _TARGET.finditer(text)]


def score(text: str, suggest: Suggest, k: int = 3) -> dict[str, float]:
    """Accuracy and keystroke savings for ``suggest(text_so_far, start, typed)`` -> words."""
    words = targets(text)
    hits = {"next": [0, 0, 0], 1: [0, 0, 0], 2: [0, 0, 0], 3: [0, 0, 0]}  # top1, topk, n
    saved = saved_spaces = 0
    for start, word in words:
        accepted = None
        for typed in range(0, min(len(word), 4)):  # next word, then 1..3 typed characters
            sugg = suggest(text[:start + typed], start, typed)
            key = "next" if typed == 0 else typed
            hits[key][2] += 1
            hits[key][0] += bool(sugg) and sugg[0] == word
            hit = word in sugg[:k]
            hits[key][1] += hit
            if hit and accepted is None:
                accepted = typed
        if accepted is None:  # keep typing past 3 chars until a suggestion matches (or not)
            for typed in range(4, len(word)):
                if word in suggest(text[:start + typed], start, typed)[:k]:
                    accepted = typed
                    break
        if accepted is not None:
            saved += len(word) - accepted - 1
            saved_spaces += text[start + len(word):start + len(word) + 1] == " "  # the tap's space
    out: dict[str, float] = {"words": len(words), "chars": len(text),
                             "keystroke_savings": (saved + saved_spaces) / max(len(text), 1),
                             "keystroke_savings_space_typed": saved / max(len(text), 1)}
    for key, (t1, tk, n) in hits.items():
        name = "next_word" if key == "next" else f"completion_{key}"
        out[f"{name}_top1"] = t1 / n if n else float("nan")
        out[f"{name}_top{k}"] = tk / n if n else float("nan")
        out[f"{name}_n"] = n
    return out


def savings(result: dict, tap_space: bool = True) -> float | None:
    """Keystroke savings of a ``score`` result, also one written before both definitions were
    kept (its ``keystroke_savings`` is the every-space-typed figure; the tap-space one is None)."""
    if "keystroke_savings_space_typed" not in result:
        return None if tap_space else result["keystroke_savings"]
    return result["keystroke_savings" if tap_space else "keystroke_savings_space_typed"]


def reference_lexicon(*word_lists) -> Callable[[str], bool]:
    """``is_word(s)``: ``s`` is in one of the lists as written, or lower-cased (word lists such
    as wordfreq's are lower-case; "Thanks" at a sentence start is a word)."""
    words = set().union(*map(set, word_lists))
    lower = {w.lower() for w in words}
    return lambda w: w in words or w.lower() in lower


def lstm_eval(session: TypingSession, text: str, k: int = 3, prefetch: int = 0,
              is_word: Callable[[str], bool] | None = None) -> dict[str, float]:
    """Type ``text`` keystroke by keystroke through ``session``; score it and time each keystroke.

    ``prefetch`` > 0: between keystrokes, as a keyboard would while it waits for the next key,
    ``session.prefetch`` that many likely keys; the idle work is timed apart from the keystrokes.
    ``is_word`` (a reference lexicon, see ``reference_lexicon``): also report the share of
    offered strings that are not words, at word boundaries (next word), inside words
    (completions) and over all.
    """
    session.reset()
    fed_before = session.tokens_fed  # a session's counters run across texts (tune_suggest reuses one)
    cache: dict[int, list[str]] = {}
    lat, cpu, idle, calls = [], [], [], []
    offered = inside = 0
    nonword = {"next": [0, 0], "completion": [0, 0]}  # kind -> [not words, offered]
    for i in range(len(text) + 1):  # every keystroke, in order, as a user types
        c_before = session.graph_calls
        t0, c0 = time.perf_counter(), time.thread_time()
        sugg = session.suggest(text[:i], k, phrase=False)
        lat.append((time.perf_counter() - t0) * 1e3)
        cpu.append((time.thread_time() - c0) * 1e3)  # one intra-op thread: the work is on this thread
        calls.append(session.graph_calls - c_before)
        cache[i] = [s.text for s in sugg]
        if i and not text[i - 1].isspace():  # inside a word: completions
            inside += 1
            offered += len(sugg)
        if is_word is not None:
            for sg in sugg:
                row = nonword[sg.kind]
                row[0] += not is_word(sg.text)
                row[1] += 1
        if prefetch:
            t0 = time.perf_counter()
            session.prefetch(text[:i], keys=prefetch, k=k, phrase=False)
            idle.append((time.perf_counter() - t0) * 1e3)
    out = score(text, lambda t, start, typed: cache[len(t)], k)
    out["latency_ms_p50"], out["latency_ms_p99"] = (float(x) for x in np.percentile(lat, [50, 99]))
    out["cpu_ms_p50"], out["cpu_ms_p99"] = (float(x) for x in np.percentile(cpu, [50, 99]))
    out["keystrokes"] = len(lat)
    out["tokens_fed_per_keystroke"] = (session.tokens_fed - fed_before) / len(lat)
    out["graph_calls_per_keystroke"] = float(np.mean(calls))
    out["no_call_keystrokes"] = float(np.mean(np.asarray(calls) == 0))
    out["completions_offered_per_keystroke"] = offered / max(inside, 1)
    if is_word is not None:
        for kind, (bad, n) in nonword.items():
            out[f"offered_{kind}"] = n
            out[f"not_words_{kind}"] = bad / n if n else float("nan")
        n_all = sum(n for _, n in nonword.values())
        out["not_words"] = sum(b for b, _ in nonword.values()) / n_all if n_all else float("nan")
    if prefetch:
        out["prefetch_keys"] = prefetch
        out["idle_ms_p50"], out["idle_ms_p99"] = (float(x) for x in np.percentile(idle, [50, 99]))
    return out


def kn_eval(kn: KneserNeyTrigram, text: str, k: int = 3) -> dict[str, float]:
    """The same figures for the trigram: context = the line so far (its tokens)."""
    lat = []

    def suggest(so_far: str, start: int, typed: int) -> list[str]:
        line = so_far[so_far.rfind("\n") + 1:start]
        t0 = time.perf_counter()
        words = [w for w, _ in kn.top_next(tokenize(line), k, so_far[start:start + typed])]
        lat.append((time.perf_counter() - t0) * 1e3)
        return words

    out = score(text, suggest, k)
    if lat:
        out["latency_ms_p50"], out["latency_ms_p99"] = (float(x) for x in np.percentile(lat, [50, 99]))
    return out


def phrase_eval(session: TypingSession, text: str, thresholds: Sequence[float] = PHRASE_THRESHOLDS,
                every: int = 1, typed_letters: Sequence[int] = (1, 2)) -> dict[str, object]:
    """Trigger rate and exact-match rate of Smart Compose phrases at word starts, per threshold.

    A threshold is a probability: at each, the phrase offered is the one the session would offer
    (the longest at least that likely); it is an exact match when the text goes on with exactly
    those words. ``typed_letters``: also after the first 1, 2, ... letters of the word (words
    longer than that), at the session's own bar, as a user meets it (``inside_words``): there the
    phrase completes the word and goes on, and must reach the bar given the letters typed.
    """
    session.reset()
    trig = np.zeros((0, len(thresholds)), dtype=bool)
    exact = np.zeros((0, len(thresholds)), dtype=bool)
    lat = []
    starts = [(start, word) for n, (start, word) in enumerate(targets(text)) if n % every == 0]
    for start, _ in starts:
        t0 = time.perf_counter()
        cands = session.phrase_candidates(text[:start], min(thresholds))
        lat.append((time.perf_counter() - t0) * 1e3)
        follow = _follow(text, start)
        row_t, row_e = [], []
        for t in thresholds:
            hit = pick_phrase(cands, t)
            row_t.append(hit is not None)
            row_e.append(hit is not None and _goes_on_with(follow, hit.text))
        trig, exact = np.vstack([trig, row_t]), np.vstack([exact, row_e])
    rows = []
    for j, t in enumerate(thresholds):
        rows.append({"threshold": t, **_rates(trig[:, j], exact[:, j])})
    out: dict[str, object] = {"positions": int(trig.shape[0]), "thresholds": rows}
    if lat:
        out["latency_ms_p50"], out["latency_ms_p99"] = (float(x) for x in np.percentile(lat, [50, 99]))
    inside = []
    for typed in typed_letters:
        session.reset()
        offered = []
        for start, word in starts:
            if len(word) > typed:
                got = [s.text for s in session.suggest(text[:start + typed], 3) if s.kind == "phrase"]
                offered.append(_goes_on_with(_follow(text, start), got[0]) if got else None)
        tr = np.array([o is not None for o in offered], dtype=bool)
        inside.append({"typed": typed, "min_prob": session.phrase_min_prob, "positions": int(tr.size),
                       **_rates(tr, np.array([bool(o) for o in offered], dtype=bool))})
    if inside:
        out["inside_words"] = inside
    return out


def _rates(trig: np.ndarray, exact: np.ndarray) -> dict[str, float]:
    """Trigger rate, exact-match rate and precision (exact among triggered; nan where none)."""
    nan = float("nan")
    return {"trigger_rate": float(trig.mean()) if trig.size else nan,
            "exact_match_rate": float(exact.mean()) if exact.size else nan,
            "precision": float(exact[trig].mean()) if trig.any() else nan}


def _follow(text: str, start: int) -> str:
    return " ".join(text[start:start + 200].split())


def _goes_on_with(follow: str, phrase: str) -> bool:
    """Whether the text (from the word start) goes on with exactly ``phrase``, whole words."""
    return follow.startswith(phrase) and (len(follow) == len(phrase) or not follow[len(phrase)].isalnum())
