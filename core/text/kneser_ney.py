"""Interpolated modified Kneser-Ney word trigram (Chen & Goodman 1998), torch-free.

The count-based baseline next to the LSTM suggester: perplexity, top-k next word and
prefix completion. Pure Python and the standard library.

Each line is a sentence, padded ``<s> <s> w1 .. wn </s>``. The highest order uses raw
counts, lower orders continuation counts (how many distinct words precede), and every order
has three discounts D1, D2, D3+ from its count-of-counts n1..n4::

    Y = n1 / (n1 + 2 n2);  D1 = 1 - 2Y n2/n1;  D2 = 2 - 3Y n3/n2;  D3+ = 3 - 4Y n4/n3

    P(w | u v) = max(c(uvw) - D(c(uvw)), 0) / c(uv.) + gamma(uv) P(w | v)
    gamma(uv)  = (D1 N1(uv.) + D2 N2(uv.) + D3+ N3+(uv.)) / c(uv.)

with ``P(w | v)`` built the same way from continuation counts N1+(. v w), and the unigram
interpolated with the uniform distribution over the vocabulary (every word seen, ``</s>``
and ``<unk>``), so each conditional sums to exactly 1 over that vocabulary. A context never
seen falls back to the lower order whole.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter, defaultdict
from typing import Iterable, Sequence

# Words keep inner apostrophes and hyphens ("don't", "well-known"); punctuation is its own token.
from rnnkit.edge.words import is_word, tokenize  # noqa: F401  (re-exported for the callers)

BOS, EOS, UNK = "<s>", "</s>", "<unk>"


def discounts(count_of_counts: Counter) -> tuple[float, float, float]:
    """(D1, D2, D3+) from n1..n4; each clamped to [0, k] so no count goes negative.

    A missing n3 (n4) makes D2 (D3+) fall back to D1 (D2); missing n1 or n2 gives the
    single discount n1 / (n1 + 2 n2) (0.5 without data).
    """
    n1, n2, n3, n4 = (count_of_counts.get(i, 0) for i in (1, 2, 3, 4))
    if n1 == 0 or n2 == 0:  # too little data for the estimate: the classic single discount
        d = n1 / (n1 + 2 * n2) if n1 + n2 else 0.5
        return (min(d, 1.0), min(d, 2.0), min(d, 3.0)) if d > 0 else (0.5, 0.5, 0.5)
    y = n1 / (n1 + 2 * n2)
    d1 = 1 - 2 * y * n2 / n1
    # With no counts of 3 (or 4) the formula would discount everything (D2 = 2, D3+ = 3):
    # tiny data, so reuse the discount of the count below instead.
    d2 = 2 - 3 * y * n3 / n2 if n3 else d1
    d3 = 3 - 4 * y * n4 / n3 if n3 and n4 else d2
    return (min(max(d1, 0.0), 1.0), min(max(d2, 0.0), 2.0), min(max(d3, 0.0), 3.0))


def _d(ds: tuple[float, float, float], c: int) -> float:
    return 0.0 if c <= 0 else ds[min(c, 3) - 1]


class _Level:
    """One order: counts per context, their totals and the back-off weights."""

    def __init__(self, counts: dict[tuple, int]):
        self.followers: dict[tuple, dict[str, int]] = defaultdict(dict)
        for gram, c in counts.items():
            self.followers[gram[:-1]][gram[-1]] = c
        self.followers = dict(self.followers)
        self.ds = discounts(Counter(counts.values()))
        self.total: dict[tuple, int] = {}
        self.gamma: dict[tuple, float] = {}
        for ctx, f in self.followers.items():
            tot = sum(f.values())
            n = Counter(min(c, 3) for c in f.values())
            self.total[ctx] = tot
            self.gamma[ctx] = (self.ds[0] * n[1] + self.ds[1] * n[2] + self.ds[2] * n[3]) / tot


class KneserNeyTrigram:
    """Train with ``KneserNeyTrigram.train(lines)``; ``prob(word, context)`` is P(word | last two)."""

    def __init__(self, trigrams: Counter):
        bigram_cont: Counter = Counter()   # N1+(. v w)
        for (u, v, w) in trigrams:
            bigram_cont[(v, w)] += 1
        unigram_cont: Counter = Counter()  # N1+(. w)
        for (v, w) in bigram_cont:
            unigram_cont[(w,)] += 1
        self.l3, self.l2, self.l1 = _Level(trigrams), _Level(bigram_cont), _Level(unigram_cont)
        words = {w for (w,) in unigram_cont} | {EOS, UNK}
        words.discard(BOS)
        self.vocab = sorted(words)
        self._vocab_set = set(self.vocab)
        self._uniform = 1.0 / len(self.vocab)
        # Candidates for completion: the vocabulary's words, sorted for prefix ranges.
        self._words = sorted(w for w in self.vocab if w not in (EOS, UNK) and is_word(w))
        self._by_p1 = sorted(self._words, key=lambda w: (-self.p1(w), w))
        self._top_cache: dict[tuple, list[tuple[str, float]]] = {}
        self._by_first: dict[str, list[str]] = {}
        for w in self._by_p1:
            self._by_first.setdefault(w[0], []).append(w)

    @classmethod
    def train(cls, lines: Iterable[str]) -> "KneserNeyTrigram":
        trigrams: Counter = Counter()
        n_lines = 0
        for line in lines:
            toks = tokenize(line)
            if not toks:
                continue
            n_lines += 1
            seq = [BOS, BOS] + toks + [EOS]
            for i in range(2, len(seq)):
                trigrams[(seq[i - 2], seq[i - 1], seq[i])] += 1
        if not n_lines:
            raise ValueError("Kneser-Ney training text has no tokens (empty or whitespace only)")
        return cls(trigrams)

    # ------------------------------------------------------------------ probabilities
    def _map(self, w: str) -> str:
        return w if w in self._vocab_set or w == BOS else UNK

    def context(self, history: Sequence[str]) -> tuple[str, str]:
        """The trigram context of a sentence so far: its last two tokens, ``<s>``-padded."""
        h = [BOS, BOS] + [self._map(t) for t in history]
        return h[-2], h[-1]

    def p1(self, w: str) -> float:
        lv = self.l1
        tot = lv.total.get((), 0)
        if not tot:
            return self._uniform
        c = lv.followers[()].get(w, 0)
        return max(c - _d(lv.ds, c), 0.0) / tot + lv.gamma[()] * self._uniform

    def p2(self, w: str, v: str) -> float:
        lv = self.l2
        tot = lv.total.get((v,))
        if not tot:
            return self.p1(w)
        c = lv.followers[(v,)].get(w, 0)
        return max(c - _d(lv.ds, c), 0.0) / tot + lv.gamma[(v,)] * self.p1(w)

    def p3(self, w: str, u: str, v: str) -> float:
        lv = self.l3
        tot = lv.total.get((u, v))
        if not tot:
            return self.p2(w, v)
        c = lv.followers[(u, v)].get(w, 0)
        return max(c - _d(lv.ds, c), 0.0) / tot + lv.gamma[(u, v)] * self.p2(w, v)

    def prob(self, word: str, history: Sequence[str] = ()) -> float:
        """P(word | the sentence so far); an unknown word is ``<unk>``."""
        u, v = self.context(history)
        return self.p3(self._map(word), u, v)

    def perplexity(self, lines: Iterable[str]) -> dict[str, float]:
        """Per-token perplexity over ``lines`` (each token and each ``</s>`` predicted once)."""
        logp, n, oov = 0.0, 0, 0
        for line in lines:
            toks = tokenize(line)
            if not toks:
                continue
            for i, t in enumerate(toks + [EOS]):
                oov += self._map(t) == UNK
                logp += math.log(self.prob(t, toks[:i]))
                n += 1
        if not n:
            raise ValueError("no tokens to score")
        return {"perplexity": math.exp(-logp / n), "tokens": n, "oov": oov}

    # ------------------------------------------------------------------ suggestions
    def top_next(self, history: Sequence[str], k: int = 3, prefix: str = "") -> list[tuple[str, float]]:
        """The k most likely next words (starting with ``prefix``), as (word, P(word | context)).

        Exact: a word seen after neither context scores gamma * gamma' * P1(w), so among
        those only the k best by the unigram can enter the top k (scanned in P1 order).
        """
        u, v = self.context(history)
        key = (u, v, prefix, k)
        if key in self._top_cache:  # frequent contexts (a line start, "of the") recur constantly
            return list(self._top_cache[key])
        if len(self._top_cache) > 50_000:
            self._top_cache.clear()
        seen = set(self.l3.followers.get((u, v), {})) | set(self.l2.followers.get((v,), {}))
        cands = {w for w in seen if w.startswith(prefix) and w in self._vocab_set and is_word(w)}
        # words in unigram order, only those with the right first character, first k that fit
        pool = self._by_first.get(prefix[0], ()) if prefix else self._by_p1
        rest = (w for w in pool if w.startswith(prefix) and len(w) > len(prefix) and w not in cands)
        cands.update(itertools.islice(rest, k))
        scored = [(w, self.p3(w, u, v)) for w in cands if len(w) > len(prefix)]
        scored.sort(key=lambda x: (-x[1], x[0]))
        self._top_cache[key] = scored[:k]
        return scored[:k]
