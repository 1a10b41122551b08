"""The bundle's background word n-gram, mixed with the model at suggestion time.

A pruned Kneser-Ney word trigram of the training text (built by core/text/word_ngram.py,
shipped as ``word_ngram.npz``) in back-off form:

    P(w | u v) = P3[u v w]                    if the trigram was kept
               = gamma3[u v] * P(w | v)       otherwise, when the context u v was kept
               = P(w | v)                     otherwise
    P(w | v)   = P2[v w]  or  gamma2[v] * P1[w]

The session mixes it into the model's word probabilities like the user cache (edge/adapt.py):

    P(w | context) = (1 - lam) * P_model(w | context) + lam * P_ngram(w | u v)

and offers the n-gram's likeliest words for the typed prefix as candidates too. The context is
the last two words on the line (``adapt.last_words``); a line's start is ``<s>``.

numpy only. Arrays are read once; a lookup is a binary search in one context's followers.
"""

from __future__ import annotations

import bisect
import os
import threading
from pathlib import Path

import numpy as np

from .adapt import LINE_START, context_words, interpolate

FILE_NAME = "word_ngram.npz"
FORMAT = 1
LP_STEP = 1 / 16  # a stored probability is exp(-q * LP_STEP), q one byte (down to ~1e-7)
# Tuned on everyday_en validation text (bench/tune_suggest.py --only ngram): see the bundle card.
LAMBDA = 0.2
_KEYS = ("format", "lp_step", "words", "p1", "bi_n", "bi_w", "bi_p", "bi_gamma", "ctx_n", "ctx_v", "ctx_gamma",
         "tri_n", "tri_w", "tri_p")


def _offsets(n: np.ndarray) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(n, dtype=np.int64)])


class WordNgram:
    """``prob(word, prev)``, ``candidates(prefix, prev, n)`` and ``mix(model_logp, word, prev)``."""

    def __init__(self, arrays: dict[str, np.ndarray], lam: float = LAMBDA):
        missing = [k for k in _KEYS if k not in arrays]
        if missing:
            raise ValueError(f"not a word n-gram file: missing {', '.join(missing)}")
        if int(arrays["format"]) != FORMAT:
            raise ValueError(f"word n-gram format {int(arrays['format'])}; this runner reads {FORMAT}")
        if not 0 <= lam < 1:
            raise ValueError(f"lam must be in [0, 1), got {lam}")
        self.lam = lam
        dec = np.exp(-np.arange(256) * float(arrays["lp_step"]))  # byte -> probability
        self.words = bytes(arrays["words"]).decode("utf-8").split("\n")
        self.ids = {w: i for i, w in enumerate(self.words)}
        V = self.V = len(self.words)
        self.p1, self.bi_gamma = dec[arrays["p1"]], dec[arrays["bi_gamma"]]
        self.bi_off, self.bi_w, self.bi_p = _offsets(arrays["bi_n"]), arrays["bi_w"].astype(np.int64), dec[arrays["bi_p"]]
        self.ctx_off, self.ctx_v, self.ctx_gamma = _offsets(arrays["ctx_n"]), arrays["ctx_v"].astype(np.int64), \
            dec[arrays["ctx_gamma"]]
        self.tri_off, self.tri_w, self.tri_p = _offsets(arrays["tri_n"]), arrays["tri_w"].astype(np.int64), dec[arrays["tri_p"]]
        if not (V >= 2 and len(self.p1) == len(self.bi_gamma) == V == len(self.bi_off) - 1 == len(self.ctx_off) - 1
                and self.bi_off[-1] == len(self.bi_w) == len(self.bi_p)
                and self.ctx_off[-1] == len(self.ctx_v) == len(self.ctx_gamma) == len(self.tri_off) - 1
                and self.tri_off[-1] == len(self.tri_w) == len(self.tri_p)):
            raise ValueError("word n-gram arrays do not fit together")
        # ids 0 and 1 are <s> and </s>; the words from id 2 on are sorted: a typed prefix is a range
        self._first = 2
        self._by_p1 = np.lexsort((np.arange(V - 2), -self.p1[2:])) + 2  # likeliest first, ties by word
        # Per thread (one n-gram serves every session of a server): candidates' scratch mask, and
        # the last context looked up with its trigram slice (each keystroke asks about one context).
        self._local = threading.local()

    @classmethod
    def load(cls, path: str | os.PathLike, lam: float = LAMBDA) -> "WordNgram":
        try:
            with np.load(Path(path), allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except (OSError, ValueError) as e:
            raise ValueError(f"{path}: not a readable word n-gram file ({e})") from None
        try:
            return cls(arrays, lam)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None

    # ------------------------------------------------------------------ lookups
    def _context(self, prev) -> tuple[int, int]:
        """(u, v) ids of the last two words; ``<s>`` (0) before a line's first word, -1 unknown."""
        ctx = [0, 0] + [0 if w == LINE_START else self.ids.get(w, -1) for w in context_words(prev)]
        return ctx[-2], ctx[-1]

    def _where(self, prev) -> tuple[int, int, int, int, int]:
        """(u, v, trigram context index, start, end) of ``prev``, kept for the next call."""
        memo = getattr(self._local, "memo", (None, None))
        if memo[0] != prev:
            u, v = self._context(prev)
            memo = self._local.memo = (prev, (u, v, *self._tri_slice(u, v)))
        return memo[1]

    def _tri_slice(self, u: int, v: int) -> tuple[int, int, int]:
        """(context index, start, end) of u v's kept trigrams; index -1 when none."""
        if u < 0 or v < 0:
            return -1, 0, 0
        i = self._find(self.ctx_v, int(self.ctx_off[u]), int(self.ctx_off[u + 1]), v)
        return (i, int(self.tri_off[i]), int(self.tri_off[i + 1])) if i >= 0 else (-1, 0, 0)

    @staticmethod
    def _find(ws: np.ndarray, lo: int, hi: int, w: int) -> int:
        j = lo + int(np.searchsorted(ws[lo:hi], w))
        return j if j < hi and ws[j] == w else -1

    def _p2(self, w: int, v: int) -> float:
        if v < 0:
            return float(self.p1[w])
        lo, hi = int(self.bi_off[v]), int(self.bi_off[v + 1])
        j = self._find(self.bi_w, lo, hi, w)
        return float(self.bi_p[j]) if j >= 0 else float(self.bi_gamma[v]) * float(self.p1[w])

    def prob(self, word: str, prev) -> float:
        """P_ngram(word | the one or two words before it); 0 for a word it does not know."""
        w = self.ids.get(word, -1)
        if w < self._first:
            return 0.0
        u, v, i, lo, hi = self._where(prev)
        if i >= 0:
            j = self._find(self.tri_w, lo, hi, w)
            if j >= 0:
                return float(self.tri_p[j])
            return float(self.ctx_gamma[i]) * self._p2(w, v)
        return self._p2(w, v)

    def candidates(self, prefix: str, prev, n: int) -> list[str]:
        """The ``n`` words starting with ``prefix`` (not ``prefix`` itself) it rates highest after
        ``prev`` (exact; ties go to the earlier word). A word's probability comes from the highest
        level that kept it -- the context's trigrams, else its bigrams (times the trigram context's
        back-off weight), else the unigram (times both weights) -- so the best of each level,
        merged, are the best of all; the unigram's come from its global order, not a scan."""
        if n <= 0:
            return []
        lo = bisect.bisect_left(self.words, prefix, self._first)
        hi = bisect.bisect_left(self.words, prefix + "\U0010ffff", lo) if prefix else self.V
        if lo >= hi:
            return []
        own = self.ids.get(prefix, -1)
        u, v, i, a, b = self._where(prev)
        g3 = float(self.ctx_gamma[i]) if i >= 0 else 1.0
        t_ids, t_p = self._in_range(self.tri_w, self.tri_p, a, b, lo, hi, 1.0)
        b_ids, b_p = self._in_range(self.bi_w, self.bi_p, *((int(self.bi_off[v]), int(self.bi_off[v + 1]))
                                                           if v >= 0 else (0, 0)), lo, hi, g3)
        taken = getattr(self._local, "taken", None)  # all False between calls
        if taken is None:
            taken = self._local.taken = np.zeros(self.V, dtype=bool)
        try:
            taken[t_ids] = True
            below = ~taken[b_ids]
            b_ids, b_p = b_ids[below], b_p[below]
            taken[b_ids] = True
            if own >= 0:
                taken[own] = True
            u_ids = self._unigram_best(lo, hi, n, taken)
        finally:
            taken[t_ids] = taken[b_ids] = False
            taken[max(own, 0)] = False
        u_p = self.p1[u_ids] * (g3 * (float(self.bi_gamma[v]) if v >= 0 else 1.0))
        ids = np.concatenate([t_ids, b_ids, u_ids])
        ps = np.concatenate([t_p, b_p, u_p])
        keep = (ids != own) & (ps > 0)
        ids, ps = ids[keep], ps[keep]
        if len(ps) > n:  # sort only what can make the n best (ties at the n-th value included)
            best = ps >= np.partition(ps, len(ps) - n)[len(ps) - n]
            ids, ps = ids[best], ps[best]
        order = np.lexsort((ids, -ps))[:n]  # probability first, then the earlier word
        return [self.words[int(w)] for w in ids[order]]

    @staticmethod
    def _in_range(ws: np.ndarray, ps: np.ndarray, s: int, e: int, lo: int, hi: int,
                  scale: float) -> tuple[np.ndarray, np.ndarray]:
        """The followers ws[s:e] (sorted ids) that fall in [lo, hi), with scale * their probability."""
        sl = ws[s:e]
        j0, j1 = int(np.searchsorted(sl, lo)), int(np.searchsorted(sl, hi))
        return sl[j0:j1], scale * ps[s + j0:s + j1]

    def _unigram_best(self, lo: int, hi: int, n: int, taken: np.ndarray) -> np.ndarray:
        """The ids of the n likeliest words (by the unigram; ties: the earlier word) in [lo, hi) not
        ``taken`` (a mask over the ids)."""
        if hi - lo <= 4096:  # a narrow prefix: look at each of its words
            ids = np.arange(lo, hi)[~taken[lo:hi]]
            return ids[np.lexsort((ids, -self.p1[ids]))[:n]]
        found = []  # a wide one (a short or no prefix): its likeliest words come early in the global order
        for s in range(0, self.V, 512):
            chunk = self._by_p1[s:s + 512]
            chunk = chunk[(chunk >= lo) & (chunk < hi)]
            found.extend(int(w) for w in chunk[~taken[chunk]][:n - len(found)])
            if len(found) >= n:
                break
        return np.array(found, dtype=np.int64)

    def mix(self, model_logp: float, word: str, prev) -> float:
        """log((1 - lam) * P_model + lam * P_ngram)."""
        return interpolate(model_logp, self.lam, self.prob(word, prev))

    def __len__(self) -> int:
        return self.V - self._first

    def __contains__(self, word: str) -> bool:
        """A word it knows (so the session counts it as a word, as the lexicon's)."""
        return self.ids.get(word, -1) >= self._first
