"""The model learns its user on the device, with no training step: a decayed user n-gram cache.

Every word the user commits (types and follows with a space) is counted, as a unigram, as a
bigram after the word before it and as a trigram after the two before it; older counts fade by
``decay`` per word typed. At suggestion time the session mixes the model with the cache:

    P(w | context) = (1 - lam) * P_model(w | context) + lam * P_cache(w | u v)
    P_cache(w | v)   = (c(v, w) + beta * c(w) / N) / (c(v) + beta)                (bigram, backed off)
    P_cache(w | u v) = (c(u, v, w) + beta * P_cache(w | v)) / (c(u, v) + beta)    (trigram, backed off)

so a word the user writes often, and what they write after a given word or pair of words (a
greeting, a sign-off, a phrase they reuse), rise in the ranking. A line's start counts as a word
of context (``LINE_START``), so the words a user opens a message with are learned too.
The cache proposes its own candidates too (a name the model never saw), and its words become
known to the lexicon. The bundle never changes; the cache lives in memory and, with a user
directory, in ``<user-dir>/user_cache.json`` (written atomically, bounded in size, deleted by
``rnnkit suggest --forget``). Nothing leaves the device.

Torch-free: stdlib only.
"""

from __future__ import annotations

import bisect
import json
import math
import os
import re
from collections import Counter, defaultdict
from pathlib import Path

from .lexicon import MAX_WORD_CHARS
from .words import words_of

FILE_NAME = "user_cache.json"
FORGOTTEN = ".forgotten"  # rewritten by forget(): a session running meanwhile forgets too (no user data)
AUTOSAVE_S = 30.0  # a session with a user directory saves what it learned at most this often
FORMAT = 1
# LAMBDA: tuned with the bundle's word n-gram on (edge/word_ngram.py), on 4 validation-split writers
# (bench/tune_suggest.py --people 4 --adapt-chars 8000 --only lam; docs/results/suggest-en-tune-lam-ngram.json):
# keystroke savings 50.15 % off, 50.93 % at 0.1, 50.77 % at 0.15, 50.41 % at 0.25. Without the n-gram
# 0.15 was best; the n-gram already knows the phrases everyone writes.
LAMBDA, BETA, DECAY, ORDER = 0.1, 2.0, 0.9995, 3
MAX_UNIGRAMS, MAX_BIGRAMS, MAX_TRIGRAMS = 20_000, 60_000, 60_000
TOP_K = 16  # the most frequent words kept ranked (candidates asks for a handful)
LINE_START = "\n"  # the context of a line's first word (never a word: words hold no line break)
_SCALE_LIMIT = 1e30  # counts are stored scaled up instead of decaying them all each word


class UserCache:
    """Decayed unigram, bigram and trigram counts of the user's committed words."""

    def __init__(self, lam: float = LAMBDA, beta: float = BETA, decay: float = DECAY, order: int = ORDER):
        if not (0 <= lam < 1 and beta > 0 and 0 < decay <= 1 and order in (2, 3)):
            raise ValueError(f"need 0 <= lam < 1, beta > 0, 0 < decay <= 1, order 2 or 3; "
                             f"got {lam}, {beta}, {decay}, {order}")
        self.lam, self.beta, self.decay, self.order = lam, beta, decay, order
        self._scale = 1.0      # a count c stored as c * scale; scale grows by 1/decay a word
        self.uni: dict[str, float] = defaultdict(float)
        self.bi: dict[tuple[str, str], float] = defaultdict(float)
        self.prev_total: dict[str, float] = defaultdict(float)  # c(v): bigrams starting with v
        self.tri: dict[tuple[str, str, str], float] = defaultdict(float)
        self.pair_total: dict[tuple[str, str], float] = defaultdict(float)  # c(u, v): trigrams after u v
        # Indexes for `candidates`, so a keystroke never scans every word: the words in order (a
        # typed prefix is a range), the followers of each context, the most frequent words.
        self._sorted: list[str] = []
        self._next: dict[tuple[str, ...], set[str]] = defaultdict(set)
        self._top: list[str] = []
        self.total = 0.0
        self._new = NewChunks()  # which committed words a keystroke adds
        self._mark: str | None = None  # the user directory's forget mark when loaded (None: not loaded)

    # -------------------------------------------------------------- learning
    def observe(self, text: str) -> None:
        """Count the words of ``text`` (the text before the cursor) committed since the last call:
        only words typed past what was seen, or typed in its place (``NewChunks``). Moving the
        cursor back and forth, or deleting and retyping a space, counts nothing twice."""
        committed = committed_text(text)
        for s, e in self._new.update(committed):
            ctx = last_words(committed[max(0, s - 200):s])
            for w in words_of(committed[s:e]):
                if len(w) <= MAX_WORD_CHARS:
                    self.add(w, ctx)
                    ctx = (ctx + (w,))[-2:]

    def add(self, word: str, prev: "str | tuple[str, ...] | None") -> None:
        self._scale /= self.decay
        if self._scale > _SCALE_LIMIT:
            self._rescale()
        if word not in self.uni:
            bisect.insort(self._sorted, word)
        self.uni[word] += self._scale
        self.total += self._scale
        self._rank(word)
        ctx = context_words(prev)
        if ctx:
            self.bi[(ctx[-1], word)] += self._scale
            self.prev_total[ctx[-1]] += self._scale
            self._next[ctx[-1:]].add(word)
        if len(ctx) == 2:
            self.tri[(ctx[0], ctx[1], word)] += self._scale
            self.pair_total[ctx] += self._scale
            self._next[ctx].add(word)
        if len(self.uni) > 2 * MAX_UNIGRAMS or len(self.bi) > 2 * MAX_BIGRAMS or len(self.tri) > 2 * MAX_TRIGRAMS:
            self._prune()

    def _rank(self, word: str) -> None:
        """Keep ``_top`` the TOP_K most frequent words after ``word``'s count rose (the others'
        counts did not change: decay is a common scale)."""
        top, count = self._top, self.uni[word]
        if word in top:
            top.remove(word)
        elif len(top) >= TOP_K and count <= self.uni[top[-1]]:
            return
        i = 0
        while i < len(top) and self.uni[top[i]] >= count:
            i += 1
        top.insert(i, word)
        del top[TOP_K:]

    def _index(self) -> None:
        self._sorted = sorted(self.uni)
        self._next = defaultdict(set)
        for v, w in self.bi:
            self._next[(v,)].add(w)
        for u, v, w in self.tri:
            self._next[(u, v)].add(w)
        self._top = sorted(self.uni, key=lambda w: -self.uni[w])[:TOP_K]

    def _rescale(self) -> None:
        s = self._scale
        for table in (self.uni, self.bi, self.prev_total, self.tri, self.pair_total):
            for key in table:
                table[key] /= s
        self.total /= s
        self._scale = 1.0

    def _prune(self) -> None:
        """Keep the strongest entries (bounded memory and file size)."""
        for table, cap in ((self.uni, MAX_UNIGRAMS), (self.bi, MAX_BIGRAMS), (self.tri, MAX_TRIGRAMS)):
            if len(table) > cap:
                keep = sorted(table.items(), key=lambda kv: -kv[1])[:cap]
                table.clear()
                table.update(keep)
        self.prev_total = defaultdict(float)
        for (v, _), c in self.bi.items():
            self.prev_total[v] += c
        self.pair_total = defaultdict(float)
        for (u, v, _), c in self.tri.items():
            self.pair_total[(u, v)] += c
        self.total = sum(self.uni.values())
        self._index()

    # -------------------------------------------------------------- scoring
    def prob(self, word: str, prev: "str | tuple[str, ...] | None") -> float:
        """P_cache(word | the one or two words before it); 0 when the cache is empty."""
        if self.total <= 0:
            return 0.0
        ctx = context_words(prev)
        p = self.uni.get(word, 0.0) / self.total
        if not ctx or ctx[-1] not in self.prev_total:
            return p
        p = (self.bi.get((ctx[-1], word), 0.0) + self.beta * p * self._scale) / (
            self.prev_total[ctx[-1]] + self.beta * self._scale)
        if self.order < 3 or len(ctx) < 2 or ctx not in self.pair_total:
            return p
        return (self.tri.get((ctx[0], ctx[1], word), 0.0) + self.beta * p * self._scale) / (
            self.pair_total[ctx] + self.beta * self._scale)

    def candidates(self, prefix: str, prev: "str | tuple[str, ...] | None", n: int) -> list[str]:
        """The ``n`` cache words starting with ``prefix`` it rates highest after ``prev``."""
        if self.total <= 0 or n <= 0:
            return []
        if prefix:  # every word with the prefix: a range of the sorted words
            lo = bisect.bisect_left(self._sorted, prefix)
            hi = bisect.bisect_left(self._sorted, prefix + "\U0010ffff", lo)
            pool = [w for w in self._sorted[lo:hi] if w != prefix]
        else:  # a word never seen after this context ranks by its count: the top words hold the best of those
            ctx = context_words(prev)
            pool = set(self._top[:n]) if n <= TOP_K else set(self.uni)
            pool.update(self._next.get(ctx[-1:], ()))
            if self.order >= 3 and len(ctx) == 2:
                pool.update(self._next.get(ctx, ()))
        return sorted(pool, key=lambda w: (-self.prob(w, prev), w))[:n]

    def mix(self, model_logp: float, word: str, prev: "str | tuple[str, ...] | None") -> float:
        """log((1 - lam) * P_model + lam * P_cache)."""
        return interpolate(model_logp, self.lam, self.prob(word, prev))

    def __len__(self) -> int:
        return len(self.uni)

    # -------------------------------------------------------------- the user directory
    def clear(self) -> None:
        """Forget every count (the text being typed stays seen: it is not learned again)."""
        new, mark = self._new, self._mark
        self.__init__(self.lam, self.beta, self.decay, self.order)
        self._new, self._mark = new, mark

    def save(self, user_dir: str | os.PathLike) -> Path | None:
        """Write the cache to ``user_dir`` atomically. If ``rnnkit suggest --forget`` ran since
        this cache was loaded from there, write nothing and forget here too (None)."""
        from rnnkit.core.atomic import atomic_write_text  # stdlib-only

        if self._mark is not None:
            mark = _forget_mark(user_dir)
            if mark != self._mark:
                self.clear()
                self._mark = mark
                return None
        self._rescale()
        state = {"format": FORMAT, "lam": self.lam, "beta": self.beta, "decay": self.decay, "order": self.order,
                 "uni": self.uni, "bi": [[v, w, c] for (v, w), c in self.bi.items()],
                 "tri": [[u, v, w, c] for (u, v, w), c in self.tri.items()]}
        path = Path(user_dir) / FILE_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(state, ensure_ascii=False, separators=(",", ":")))
        return path

    @classmethod
    def load(cls, user_dir: str | os.PathLike, **kw) -> "UserCache":
        """The saved cache, or an empty one (no file yet). A damaged file is an error naming it."""
        path = Path(user_dir) / FILE_NAME
        mark = _forget_mark(user_dir)
        if not path.is_file():
            cache = cls(**kw)
            cache._mark = mark
            return cache
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
            if state.get("format") != FORMAT:
                raise ValueError(f"format {state.get('format')!r}, expected {FORMAT}")
            cache = cls(**{"lam": state["lam"], "beta": state["beta"], "decay": state["decay"],
                           "order": state.get("order", ORDER), **kw})
            for w, c in state["uni"].items():
                cache.uni[str(w)] = float(c)
            for v, w, c in state["bi"]:
                cache.bi[(str(v), str(w))] = float(c)
                cache.prev_total[str(v)] += float(c)
            for u, v, w, c in state.get("tri", []):  # files written before trigrams have none
                cache.tri[(str(u), str(v), str(w))] = float(c)
            cache.total = sum(cache.uni.values())
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise ValueError(f"{path}: not a user cache this version can read ({e}); "
                             f"delete it with `rnnkit suggest --forget --user-dir {user_dir}`") from None
        cache._prune()
        cache._mark = mark
        return cache


_CHUNK = re.compile(r"\S+")
_TAIL = re.compile(r"\S*\Z")
PENDING_CHARS = 4_000  # after an edit, the old words this far past it are remembered (NewChunks)


def common_prefix_len(a: str, b: str) -> int:
    """Length of the common prefix, by bisection on C-speed slice compares (no Python char loop)."""
    if b.startswith(a):
        return len(a)
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def tail_start(text: str, end: int | None = None) -> int:
    """Where the run of non-whitespace that ends at ``end`` (default: the text's end) starts."""
    end = len(text) if end is None else end
    lo = max(0, end - 2 * MAX_WORD_CHARS)  # look back a little first: a keystroke must not scan the text
    start = _TAIL.search(text, lo, end).start()
    if start == lo and lo > 0 and not text[lo - 1].isspace():
        start = _TAIL.search(text, 0, end).start()  # a run longer than that (a pasted hash): rare
    return start


def committed_text(text: str) -> str:
    """``text`` up to its last whitespace (any kind: also tab, no-break or ideographic space):
    the words that are done. The word after it is still being typed."""
    return text[:tail_start(text)]


class NewChunks:
    """Which whitespace-separated chunks of a committed text are new, keystroke after keystroke.

    An app sends the text before the cursor at every keystroke (``update(committed_text(...))``).
    A chunk is new where the text goes on past what was seen (typing), or differs from it (an
    edit), except that
    - a text that is a prefix of what was seen adds nothing: the cursor moved back (Home, an
      arrow, a backspace over a space), and coming back to the end adds nothing either;
    - after an edit, the old chunks just past the edit point are remembered (``pending``): met
      again as the text goes on, they are those words reached again (End after fixing a typo),
      not new ones. A word deleted at the end and typed again later is then not counted once:
      the text before the cursor cannot tell the two apart, and counting too little is the
      safer error for a user model.
    """

    def __init__(self):
        self.seen = ""
        self.pending: Counter = Counter()

    def update(self, committed: str) -> list[tuple[int, int]]:
        """The (start, end) of each new chunk of ``committed`` (a text that ends in whitespace)."""
        seen = self.seen
        if seen.startswith(committed):
            return []
        if committed.startswith(seen):
            start = len(seen)
        else:
            start = tail_start(committed, common_prefix_len(seen, committed))  # the changed word's start
            self.pending = Counter(_CHUNK.findall(seen, start, start + PENDING_CHARS))
        self.seen = committed
        new = []
        for m in _CHUNK.finditer(committed, start):
            if self.pending[m.group()] > 0:
                self.pending[m.group()] -= 1
            else:
                new.append(m.span())
        return new


def last_words(text: str) -> tuple[str, ...]:
    """The cache context after ``text``: the last two words of its last line, with ``LINE_START``
    before a line's first word (how a user opens a message is their own: "Haha", "Hi all,")."""
    tail = text[-(2 * MAX_WORD_CHARS + 4):]
    words = tuple(words_of(tail.rsplit("\n", 1)[-1]))
    if len(words) < 2 and ("\n" in tail or len(tail) == len(text)):
        words = (LINE_START,) + words
    return words[-2:]


def interpolate(model_logp: float, lam: float, p: float) -> float:
    """log((1 - lam) * P_model + lam * p): how each cache (and the bundle's word n-gram) mixes in."""
    mixed = (1 - lam) * math.exp(model_logp) + lam * p
    return math.log(mixed) if mixed > 0 else -math.inf


def context_words(prev: "str | tuple[str, ...] | None") -> tuple[str, ...]:
    """The words before the one scored, most recent last: None, one word, or a tuple."""
    if prev is None:
        return ()
    return (prev,) if isinstance(prev, str) else tuple(prev)[-2:]


def _forget_mark(user_dir: str | os.PathLike) -> str:
    try:
        return (Path(user_dir) / FORGOTTEN).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return ""


def forget(user_dir: str | os.PathLike) -> bool:
    """Delete what was learned about the user (the cache file, and any temp file a killed save
    left); True if there was something. A session running on the same directory meanwhile
    forgets too, at its next save, instead of writing back what it knew (the mark file)."""
    from rnnkit.core.atomic import atomic_write_text  # stdlib-only
    import uuid

    folder = Path(user_dir)
    if not folder.is_dir():
        return False
    found = False
    for path in [folder / FILE_NAME, *folder.glob(f".{FILE_NAME}.*.tmp")]:
        if path.is_file():
            path.unlink()
            found = True
    atomic_write_text(folder / FORGOTTEN, uuid.uuid4().hex)
    return found
