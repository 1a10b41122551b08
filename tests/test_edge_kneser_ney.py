"""Interpolated modified Kneser-Ney trigram: hand-computed values, normalisation, exact top-k."""

from __future__ import annotations

import math
from collections import Counter

import pytest

from rnnkit.core.text.kneser_ney import EOS, UNK, KneserNeyTrigram, discounts, tokenize

from test_edge_support import TRAIN_TEXT


def test_discounts_follow_chen_goodman():
    # n1..n4 = 10, 5, 3, 2: Y = 10/20 = 0.5, D1 = 1 - 2*0.5*5/10 = 0.5,
    # D2 = 2 - 3*0.5*3/5 = 1.1, D3+ = 3 - 4*0.5*2/3 = 5/3
    d1, d2, d3 = discounts(Counter({1: 10, 2: 5, 3: 3, 4: 2, 7: 1}))
    assert (d1, d2, d3) == pytest.approx((0.5, 1.1, 5 / 3))
    # no counts of 3 or 4: D2 and D3+ reuse D1 (Y = 7/9, D1 = 1 - 2*(7/9)*(1/7) = 7/9)
    assert discounts(Counter({1: 7, 2: 1})) == pytest.approx((7 / 9,) * 3)


@pytest.fixture(scope="module")
def abc():
    """Sentences "a b", "a c", "b c". By hand (see each test):
    trigram level  n1=7 n2=1          -> D = 7/9 for every count
    bigram level   N1+(.vw): n1=6 n2=1 -> D = 0.75
    unigram level  N1+(.w): a=1 b=2 c=2 </s>=2, n1=1 n2=3 -> D = 1/7, total 7, gamma = 4/49
    vocabulary a b c </s> <unk> -> uniform 1/5
    """
    return KneserNeyTrigram.train(["a b", "a c", "b c"])


P1 = {"a": 6.8 / 49, "b": 13.8 / 49, "c": 13.8 / 49, EOS: 13.8 / 49, UNK: 0.8 / 49}


def test_unigram_by_hand(abc):
    # P1(w) = max(N1+(.w) - 1/7, 0) / 7 + (4/49) * (1/5)
    for w, p in P1.items():
        assert abc.p1(w) == pytest.approx(p, abs=1e-12), w
    # an unseen context falls back to the unigram whole
    assert abc.prob("c", ["zzz"]) == pytest.approx(P1["c"], abs=1e-12)


def test_bigram_and_trigram_by_hand(abc):
    # P2(b | a): followers b, c (continuation count 1 each), total 2, gamma = 0.75 * 2 / 2
    p2_b_a = (1 - 0.75) / 2 + 0.75 * P1["b"]
    assert abc.p2("b", "a") == pytest.approx(p2_b_a, abs=1e-12)
    assert abc.p2("a", "a") == pytest.approx(0.75 * P1["a"], abs=1e-12)
    # P3(b | <s> a): followers b, c (count 1 each), total 2, gamma = (7/9) * 2 / 2
    assert abc.prob("b", ["a"]) == pytest.approx((1 - 7 / 9) / 2 + 7 / 9 * p2_b_a, abs=1e-12)
    assert abc.prob("b", ["a"]) == pytest.approx(0.37261905, abs=1e-8)
    # P3(a | <s> <s>): a twice, b once, total 3, gamma = (7/9 + 7/9) / 3;  P2(a | <s>) = 0.125 + 0.75 P1(a)
    p2_a_s = 0.125 + 0.75 * P1["a"]
    assert abc.prob("a", []) == pytest.approx((2 - 7 / 9) / 3 + 14 / 27 * p2_a_s, abs=1e-12)
    assert abc.prob("a", []) == pytest.approx(0.52619048, abs=1e-8)


def test_perplexity_by_hand(abc):
    # "a b": P(a | <s><s>) P(b | <s> a) P(</s> | a b), the last = 2/9 + 7/9 * (0.125 + 0.75 P1(</s>))
    p_end = 2 / 9 + 7 / 9 * (0.125 + 0.75 * P1[EOS])
    ppl = math.exp(-(math.log(0.52619048) + math.log(0.37261905) + math.log(p_end)) / 3)
    res = abc.perplexity(["a b"])
    assert res["perplexity"] == pytest.approx(ppl, rel=1e-7) and res["tokens"] == 3 and res["oov"] == 0


@pytest.fixture(scope="module")
def kn():
    return KneserNeyTrigram.train(TRAIN_TEXT.splitlines())


@pytest.mark.parametrize("history", [[], ["The"], ["Thank", "you"], ["I", "think", "we"], ["zzz", "qqq"],
                                     ["the", "unknown-word"]])
def test_probabilities_sum_to_one(kn, abc, history):
    for model in (kn, abc):
        total = math.fsum(model.prob(w, history) for w in model.vocab)
        assert total == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("history, prefix", [([], ""), (["Thank", "you"], ""), (["Thank", "you"], "f"),
                                             (["the"], "c"), (["I", "think"], "w"), (["zzz"], "s"), ([], "Th")])
def test_top_next_is_exact(kn, history, prefix):
    """Against brute force over the whole vocabulary."""
    brute = sorted(((kn.prob(w, history), w) for w in kn._words if w.startswith(prefix) and len(w) > len(prefix)),
                   key=lambda x: (-x[0], x[1]))[:3]
    got = kn.top_next(history, 3, prefix)
    assert [w for w, _ in got] == [w for _, w in brute]
    assert [p for _, p in got] == pytest.approx([p for p, _ in brute])


def test_tokenize_and_bad_training_text():
    assert tokenize("Don't stop, well-known café!") == ["Don't", "stop", ",", "well-known", "café", "!"]
    with pytest.raises(ValueError, match="no tokens"):
        KneserNeyTrigram.train(["", "   "])
