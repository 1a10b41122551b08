"""The one sampler, generation loop and beam search (edge/npsample.py, numpy), against brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from rnnkit.edge.npsample import (beam_search, filter_logits, generate, greedy_tokens, log_softmax, sample_next,
                                  start_ids)
from rnnkit.demo.validation import InputError, check_number, check_text, control_chars


def test_filter_logits_by_hand():
    x = np.log(np.array([[0.1, 0.4, 0.2, 0.3]]))
    out = filter_logits(x, temperature=0.5, top_k=3, top_p=0.6)  # keep 0.4 and 0.3 (0.4 alone < 0.6)
    assert np.isfinite(out).tolist() == [[False, True, False, True]]
    assert np.allclose(out[0, [1, 3]], x[0, [1, 3]] / 0.5)


def _table_step(table: np.ndarray):
    """A step over a bigram table: the logits after token t are table[t]; the state counts tokens read."""
    def step(tokens, state):
        n = (state or 0) + tokens.shape[1]
        return table[tokens], n
    return step


def test_generate_reads_the_prompt_once_then_steps_and_is_seeded():
    rng = np.random.default_rng(0)
    table = rng.normal(size=(6, 6)) * 3
    greedy = list(generate(_table_step(table), [2, 4], 5, greedy=True))
    want, t = [], 4
    for _ in range(5):
        t = int(np.argmax(table[t]))
        want.append(t)
    assert greedy == want
    assert list(generate(_table_step(table), [2, 4], 5, greedy=True, stop_ids=[want[1]])) == want[:2]
    a = list(generate(_table_step(table), [1], 30, temperature=1.0, seed=3))
    assert a == list(generate(_table_step(table), [1], 30, temperature=1.0, seed=3))
    assert a != list(generate(_table_step(table), [1], 30, temperature=1.0, seed=4))
    with pytest.raises(ValueError, match="non-empty prompt"):
        next(generate(_table_step(table), [], 3))


def test_start_of_text_rule():
    """A text starts after EOS (word / subword models: every training line ends with it), or after
    "\\n" for a character model, which has no EOS."""
    class Tok:
        def __init__(self, eos):
            self.eos_id = eos

        def encode(self, text):
            return [ord(c) for c in text]

    assert start_ids(Tok(3), "ab") == [3, 97, 98]
    assert start_ids(Tok(-1), "ab") == [10, 97, 98]
    assert start_ids(Tok(3), "") == [3]
    # a line break in the prompt is EOS, as between training lines (not the byte "\n"); blank
    # lines and Windows line ends add nothing; a character model keeps its "\n"
    assert start_ids(Tok(3), "ab\nc") == [3, 97, 98, 3, 99]
    assert start_ids(Tok(3), "ab\r\n\n\nc\n") == [3, 97, 98, 3, 99, 3]
    assert start_ids(Tok(-1), "a\nb") == [10, 97, 10, 98]


def test_top_k_and_top_p_keep_the_right_tokens():
    x = np.log(np.array([0.5, 0.3, 0.15, 0.05]))
    assert np.isfinite(filter_logits(x, top_k=2)).tolist() == [True, True, False, False]
    # top_p=0.7: 0.5 alone is below 0.7, so 0.3 joins; 0.5+0.3 covers it, so 0.15 is dropped
    assert np.isfinite(filter_logits(x, top_p=0.7)).tolist() == [True, True, False, False]
    assert np.isfinite(filter_logits(x, top_p=0.4)).tolist() == [True, False, False, False]
    with pytest.raises(ValueError, match="temperature"):
        filter_logits(x, temperature=0)


def test_sampling_is_seeded_and_follows_the_distribution():
    p = np.array([0.6, 0.3, 0.1])
    logits = np.log(p)
    n = 2000

    def draws(seed: int) -> list[int]:
        rng = np.random.default_rng(seed)
        return [sample_next(logits, rng) for _ in range(n)]

    a = draws(3)
    np.random.seed(99)  # the global NumPy state plays no part: only the generator passed in
    assert draws(3) == a  # the same seed: the same 2000 draws
    others = [draws(seed) for seed in (4, 5)]
    assert all(o != a for o in others) and others[0] != others[1]  # another seed: another sequence
    # each seeded sequence follows the distribution: chi-square with 2 degrees of freedom
    # (P(chi2 > 30) = 3e-7 for a correct sampler; one 0.07 off in two probabilities scores ~50)
    for seq in [a, *others]:
        counts = np.bincount(seq, minlength=3)
        chi2 = float((((counts - n * p) ** 2) / (n * p)).sum())
        assert chi2 < 30, (counts, chi2)
        assert np.allclose(counts / n, p, atol=0.04), counts
    rng = np.random.default_rng(1)
    counts = np.bincount([sample_next(logits, rng) for _ in range(4000)], minlength=3) / 4000
    assert np.allclose(counts, [0.6, 0.3, 0.1], atol=0.03), counts
    # top_k=1 is greedy whatever the seed
    assert {sample_next(logits, np.random.default_rng(s), top_k=1) for s in range(20)} == {0}


def _toy_step(table: np.ndarray):
    """A decoder whose next-token logits depend only on the previous token: table (V, V)."""
    def step(prev, state):
        (h,) = state
        return table[prev], (h + 1,), np.ones((len(prev), 2)) / 2
    return step


def _brute_best(table, bos, eos, max_len, alpha):
    """Every sequence a beam search could end with: EOS-terminated ones, or max_len long."""
    V = table.shape[0]
    lp = log_softmax(table)
    best, best_seq = -np.inf, None
    for n in range(1, max_len + 1):
        for seq in itertools.product(range(V), repeat=n):
            if eos in seq[:-1] or (seq[-1] != eos and n < max_len):
                continue
            prev, s = bos, 0.0
            for t in seq:
                s += lp[prev, t]
                prev = t
            score = s / ((5 + n) / 6) ** alpha
            if score > best:
                best, best_seq = score, list(seq)
    return best_seq, best


@pytest.mark.parametrize("alpha", [0.0, 0.6, 2.0])
def test_beam_search_is_exact_when_the_beam_holds_every_prefix(alpha):
    rng = np.random.default_rng(5)
    V, bos, eos, pad, L = 3, 0, 2, 1, 3
    for trial in range(6):
        table = rng.normal(size=(V, V)) * 2
        want, want_score = _brute_best(table, bos, eos, L, alpha)
        hyp = beam_search(_toy_step(table), (np.zeros((1, V ** L, 1)),), bos, eos, pad, beam=V ** L,
                          max_len=L, alpha=alpha)
        assert hyp.tokens == want, (trial, hyp.tokens, want)
        assert abs(hyp.score - want_score) < 1e-9
        assert hyp.attention.shape == (len(want), 2)


def test_beam_one_is_greedy():
    table = np.random.default_rng(2).normal(size=(6, 6)) * 3
    table[:, 5] += 1.0  # make EOS (5) reachable
    g = greedy_tokens(_toy_step(table), (np.zeros((1, 1, 1)),), 0, 5, max_len=12)
    b = beam_search(_toy_step(table), (np.zeros((1, 1, 1)),), 0, 5, 4, beam=1, max_len=12, alpha=0.6)
    assert b.tokens == g


def test_check_text_rejects_what_it_should():
    assert check_text("  hi\r\nthere ", "prompt", 100) == "  hi\nthere "
    assert check_text("", "text", 10, allow_empty=True) == ""
    for bad, msg in [("", "empty"), ("   \n", "empty"), ("x" * 101, "limit is 100"),
                     ("a\x00b", "U\\+0000"), ("a\x1bb\x7f", "U\\+001B, U\\+007F"),
                     ("lone \ud800", "U\\+D800"), (None, "empty"), (42, "must be text")]:
        with pytest.raises(InputError, match=msg):
            check_text(bad, "prompt", 100)
    # emoji, right-to-left scripts and accents are ordinary text
    assert check_text("héllo 👋 שלום", "prompt", 100) == "héllo 👋 שלום"
    assert control_chars("a\tb\nc") == []


def test_check_number():
    assert check_number("3", "beam", 1, 8, integer=True) == 3
    for bad in [float("nan"), 0, 9, "x", None, 2.5]:
        with pytest.raises(InputError, match="beam"):
            check_number(bad, "beam", 1, 8, integer=True)


def test_accepting_a_suggestion():
    from rnnkit.demo.app import accept

    assert accept("i would like to th", {"text": "thank", "kind": "completion"}) == "i would like to thank "
    assert accept("i would like to ", {"text": "thank", "kind": "next"}) == "i would like to thank "
    assert accept("thank you", {"text": "for the help", "kind": "phrase"}) == "thank you for the help "
    assert accept("see you to", {"text": "tomorrow morning", "kind": "phrase"}) == "see you tomorrow morning "
    assert accept("", {"text": "hello", "kind": "next"}) == "hello "
    assert accept("abc", None) == "abc"
    # a suggestion made for the text as it is now is taken; one made before a key was typed is not
    assert accept("see you to", {"text": "tomorrow", "kind": "completion", "typed": "see you to"}) == "see you tomorrow "
    assert accept("Thank you so", {"text": "for", "kind": "next", "typed": "Thank you "}) == "Thank you so"


def test_sample_next_draws_from_the_filtered_distribution():
    """The top-k shortcut must give exactly filter_logits' distribution."""
    rng = np.random.default_rng(4)
    logits = rng.normal(size=50) * 2
    for temperature, top_k, top_p in [(0.7, 5, 1.0), (1.0, 8, 0.6), (1.5, 0, 0.5)]:
        want = np.exp(log_softmax(filter_logits(logits, temperature, top_k, top_p)))
        draws = [sample_next(logits, rng, temperature, top_k, top_p) for _ in range(6000)]
        got = np.bincount(draws, minlength=50) / len(draws)
        assert set(np.flatnonzero(got)) <= set(np.flatnonzero(want)), (temperature, top_k, top_p)
        assert np.abs(got - want).max() < 0.03, (temperature, top_k, top_p, np.abs(got - want).max())
