"""The typing session: ``suggest(text, k)`` after every keystroke, feeding only what is new.

The text splits at its last whitespace into the *context* (whole words, committed) and the
*partial word* being typed. The context is encoded word by word (SentencePiece segments each
whitespace-separated word on its own, so this equals encoding the whole text) and the model
state after every word is kept, keyed by the word sequence. A keystroke that extends the text
feeds only the new word's tokens; a backspace or an edit in the middle rolls back to the
state after the last unchanged word and feeds from there.

Most words cost no call at all when they are committed: while a word is typed, the word
search scores it (a completion is the state after its pieces), and a space then takes that
state instead of reading the word again. A word read once stays cached too (typed, deleted,
typed again). Either way the state is the same pieces read from the same state, so a typed,
pasted or edited text gets the same suggestions; the numbers agree to float rounding (fp32)
or to int8's per-call activation scale (int8), not bit for bit.

Suggestions (``Suggestion(text, prob, kind)``):
- ``next``: at a word boundary, the k most likely next words;
- ``completion``: inside a word, the k most likely words that start with the typed characters;
- ``phrase``: a multi-word Smart Compose continuation, only above its confidence threshold.

Torch-free: numpy, onnxruntime, sentencepiece.
"""

from __future__ import annotations

import bisect
import itertools
import math
import re
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, replace
from typing import Sequence

import numpy as np

from .phrase import MIN_PROB as PHRASE_MIN_PROB, PhraseHit, above, pick_phrase, search_phrase
from .adapt import NewChunks, UserCache, committed_text, common_prefix_len, last_words
from .lexicon import FILE_NAME as LEXICON_FILE, Lexicon
from .neural_cache import WordCache
from .npsample import start_of_text
from .words import words_of
from .pieces import SentencePieceVocab, clean_text
from .runner import EdgeError, StepRunner
from .search import Dist, WordHit, log_softmax_end, search_words
from .word_ngram import FILE_NAME as NGRAM_FILE, WordNgram

KINDS = ("completion", "next", "phrase")
MAX_K = 20
PHRASE_NORM_K = 3         # inside a word, a phrase's bar is renormalised as a request for this many words
MAX_WORD_CHARS = 48       # a longer "word" (a pasted URL, a run of letters) gets no completion
_WORD = re.compile(r"\S+|\n")
_TAIL = re.compile(r"\S*\Z")
_SPACE = re.compile(r"\s")


@dataclass(frozen=True)
class Suggestion:
    """``prob``: P(text, then a word boundary | the whole words before it), before any letter
    of it was typed. ``p_given_typed``: the same renormalised over the words the search found
    that start with the typed letters, i.e. how sure the model is now ("tomorrow" after
    "See you tomor" is ~1 although its ``prob`` before the "t" was small). At a word boundary
    nothing is typed and the two are equal. Phrases: ``prob`` is the phrase's probability,
    ``p_given_typed`` its share as a 3-word request renormalises (``PHRASE_NORM_K``)."""

    text: str
    prob: float
    kind: str    # completion | next | phrase
    p_given_typed: float = float("nan")

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class _Node:
    """The model after the start tokens and words[0..i]: state (L, 1, H)s and next-piece log-probs."""

    id: int
    state: tuple
    row: Dist | None  # dropped for old nodes to bound memory; recomputed on demand


class TypingSession:
    """Keystroke-level next-word / completion / phrase suggestions over one ``StepRunner``.

    ``start_ids``: what the model reads before the first word. Default: the start-of-text rule
    (``npsample.start_of_text``, as generation and the demo): EOS, which the LM streams put after
    every line (so it also means "a text starts here"). A line break in the text is read as EOS too.
    ``max_context_chars``: a text met for the first time (a paste, a fresh session) is read
    from at most its last ~this many characters. While one is typed, the window start moves on
    in steps of a quarter of it and the session keeps its state across a move (it forgets the
    words before the new start but not what they did to the state), so no keystroke re-reads
    the window. A text longer than the window therefore gets, typed, the suggestions of a
    model that read more of it than a fresh session reads: the same up to the influence of
    words thousands of characters back.
    """

    def __init__(self, runner: StepRunner, vocab: SentencePieceVocab, *, start_ids: Sequence[int] | None = None,
                 beam: int = 8, max_pieces: int = 4, phrase_words: int = 3, phrase_min_prob: float = PHRASE_MIN_PROB,
                 phrase_beam: int = 4, max_context_chars: int = 4_000, cache_size: int = 512,
                 rows_kept: int = 64, words_kept: int = 128, min_ratio: float = 0.01,
                 lexicon: Lexicon | None = None, oov_min_prob: float = 1.0, user: UserCache | None = None,
                 neural: WordCache | None = None, ngram: WordNgram | None = None):
        if vocab.vocab_size != runner.vocab_size:
            raise EdgeError(f"tokenizer has {vocab.vocab_size} pieces but the graph's vocab_size is "
                            f"{runner.vocab_size}: they do not belong together")
        sha = runner.meta.tokenizer_sha256
        if sha and sha != vocab.sha256:
            raise EdgeError(f"tokenizer sha256 {vocab.sha256[:12]}... differs from the graph's "
                            f"tokenizer_sha256 {sha[:12]}...: they do not belong together")
        if runner.meta.kind != "lm":
            raise EdgeError(f"suggestions need a language-model bundle (kind 'lm'), got {runner.meta.kind!r}")
        self.runner, self.vocab = runner, vocab
        m = runner.meta
        if start_ids is None:
            start_ids = start_of_text(m.eos_id, vocab.sp.encode("\n") if m.eos_id < 0 else ())
        self.start_ids = [int(i) for i in start_ids]
        self.beam, self.max_pieces = beam, max_pieces
        if not 0.0 <= phrase_min_prob <= 1.0:
            raise EdgeError(f"phrase_min_prob (--phrase-min-prob) is a probability, from 0 to 1, got {phrase_min_prob!r}")
        self.phrase_words, self.phrase_min_prob, self.phrase_beam = phrase_words, phrase_min_prob, phrase_beam
        if max_context_chars < 64:
            raise EdgeError(f"max_context_chars must be >= 64, got {max_context_chars}")
        self.max_context_chars = max_context_chars
        # A search's batch and the parents it re-derives must fit the row cache at once.
        if cache_size < 2 * beam:
            raise EdgeError(f"cache_size must be at least 2 x beam = {2 * beam}, got {cache_size}")
        self.cache_size, self.rows_kept = cache_size, rows_kept
        self.tokens_fed = 0   # tokens fed to the graph so far (context and search), for tests/benchmarks
        self.context_tokens_fed = 0  # of which reading the context
        self.context_tokens_reused = 0  # context tokens taken from the word search's rows instead of fed
        self.graph_calls = 0
        self.words_kept = words_kept
        if not 0 <= min_ratio < 1:
            raise EdgeError(f"min_ratio must be in [0, 1), got {min_ratio!r}")
        self.min_ratio = min_ratio
        if not 0 <= oov_min_prob <= 1:
            raise EdgeError(f"oov_min_prob must be in [0, 1], got {oov_min_prob!r}")
        # A word the lexicon does not know is offered only when the model gives it at least
        # this probability given what was typed (None: no lexicon, every spelled word counts).
        # Default 1.0: only when it is the one word the search finds for the typed letters.
        # p_given_typed is renormalised over the words found, so a weak model can be "sure" of
        # junk: on a 3-minute own-text model 0.5 still offered 2.5 % non-words, 1.0 offers 0.4 %
        # for 0.4 points of keystroke savings (0.08 on suggest-en; bench/tune_suggest.py).
        self.lexicon, self.oov_min_prob = lexicon, oov_min_prob
        self.user = user  # adaptation to the user's own words (edge/adapt.py); None: off
        self.ngram = ngram  # the bundle's background word n-gram (edge/word_ngram.py); None: off
        # The neural cache (edge/neural_cache.py): keys are the top layer's h, which a recurrent
        # step graph returns as state; a graph without "h0" (a Transformer's KV cache) has none.
        state_in = list(getattr(runner, "state_in", ()))  # a duck-typed step (tests' torch runner) may not say
        self._h = state_in.index("h0") if "h0" in state_in else None
        if neural is not None and self._h is None:
            raise EdgeError(f"the neural cache needs a recurrent step graph (state h0); this one has {state_in}")
        self.neural = neural  # learns each word once, at its absolute end (reset: a new text)
        self._learning = True  # off while prefetch tries keys the user has not typed
        self.reset()

    # ------------------------------------------------------------------ context state
    def reset(self) -> None:
        """Forget every cached state (the next call re-reads its text from scratch)."""
        self._ids = itertools.count()
        self._neural_new = NewChunks()  # which typed words the neural cache has not learned yet
        self._root = None        # set by _prepare: the node the words are searched from
        self._neural_memo: tuple = (None, {})  # ((root id, cache size), P_neural) of the last query
        self._ctx = ""           # the context string the nodes describe
        self._win = 0            # where the context window starts in the full text
        self._word_end: list[int] = []   # per word: index in _ctx of the whitespace that confirms it
        self._resume: list[int] = []     # per word: where reading the next word starts
        self._word_ids: list[list[int]] = []
        state = self.runner.init_state(1)
        if self.start_ids:
            logits, state = self._feed(self.start_ids, state)
            row = self._dist(logits[0, -1])
        else:
            row = Dist(np.full(self.runner.vocab_size, -math.log(self.runner.vocab_size), np.float32))  # uniform
        self._start = _Node(next(self._ids), state, row)  # the start of a text: where a re-read begins
        self._nodes: list[_Node] = [self._start]
        self._cache: OrderedDict = OrderedDict()  # (node id, piece ids after it) -> (state, Dist): search rows
        self._words: OrderedDict = OrderedDict()  # (node id, one word's piece ids) -> _Node: words read
        self._phrases: dict = {}  # (root, start ids, start logp) -> (bar searched at, {words: PhraseHit})
        self._searched: OrderedDict = OrderedDict()  # (root id, typed bytes, want, ...) -> the model's best words
        self._ngram_memo: OrderedDict = OrderedDict()  # (prefix, previous words) -> the n-gram's candidates

    def _dist(self, logits: np.ndarray) -> Dist:
        lp, end = log_softmax_end(logits[None, :], self.vocab.ends_word_f32)
        return Dist(lp[0], float(end[0]))

    def _top_h(self, state: tuple) -> np.ndarray:
        """The top layer's hidden state (H,) of a batch-1 state: the neural cache's key."""
        return state[self._h][-1, 0]

    def _feed(self, ids: Sequence[int], state: tuple) -> tuple[np.ndarray, tuple]:
        tok = np.asarray(ids, dtype=np.int64)[None, :]
        if tok.size and (tok.min() < 0 or tok.max() >= self.runner.vocab_size):
            raise EdgeError(f"token ids must be in [0, {self.runner.vocab_size - 1}], got {list(ids)[:8]}")
        self.tokens_fed += tok.shape[1]
        self.context_tokens_fed += tok.shape[1]
        self.graph_calls += 1
        return self.runner.step_unchecked(tok, state)

    def _window_start(self, text: str) -> int:
        excess = len(text) - self.max_context_chars
        if excess <= 0:
            return 0
        step = self.max_context_chars // 4
        anchor = (excess // step + 1) * step
        m = _SPACE.search(text, anchor)
        # No whitespace after the anchor: the word being typed started before it, so it is longer
        # than 3/4 of the window (>= 48 characters): -1, no suggestion (not start-of-text ones).
        return m.end() if m else -1

    def _sync(self, ctx: str) -> _Node:
        """Make the nodes describe ``ctx`` (whole words, ends in whitespace or is empty)."""
        c = common_prefix_len(self._ctx, ctx)
        keep = bisect.bisect_left(self._word_end, c)  # words whose following whitespace is unchanged
        if keep < len(self._word_end):
            del self._word_end[keep:], self._resume[keep:], self._word_ids[keep:], self._nodes[keep + 1:]
        pos = self._resume[-1] if self._resume else 0
        for m in _WORD.finditer(ctx, pos):
            newline = m.group() == "\n"
            if newline:  # a line break is the end of a text, as in training; a blank line adds nothing
                eos = self.runner.meta.eos_id
                last = next((w for w in reversed(self._word_ids) if w), None)  # (blank lines read [])
                ids = [eos] if eos >= 0 and last is not None and last != [eos] else []
            else:
                ids = self.vocab.encode_word(m.group())
            prev = self._nodes[-1]
            if ids:
                node = self._after_word(prev, ids)
            else:  # a word the normaliser erases (e.g. a lone zero-width char) changes nothing
                node = _Node(next(self._ids), prev.state, self._row(len(self._nodes) - 1))
            self._nodes.append(node)
            self._word_end.append(m.start() if newline else m.end())
            self._resume.append(m.end())
            self._word_ids.append(ids)
            old = len(self._nodes) - 1 - self.rows_kept
            if old > 0:
                self._nodes[old].row = None
        self._ctx = ctx
        node = self._nodes[-1]
        if node.row is None:
            node.row = self._row(len(self._nodes) - 1)
        return node

    def _after_word(self, prev: _Node, ids: list[int]) -> _Node:
        """The node after reading ``ids`` (one word) from ``prev``. Read before (a word typed,
        deleted and typed again) or already scored by the word search (the word was suggested
        or searched while being typed, the usual case): no model call. Else one call."""
        key = (prev.id, tuple(ids))
        node = self._words.get(key)
        if node is not None:
            self._words.move_to_end(key)
            return node
        hit = self._cache.get(key)
        if hit is not None:
            node = _Node(next(self._ids), hit[0], hit[1])
            self.context_tokens_reused += len(ids)
        else:
            logits, state = self._feed(ids, prev.state)
            node = _Node(next(self._ids), state, self._dist(logits[0, -1]))
        self._words[key] = node
        while len(self._words) > self.words_kept:
            self._words.popitem(last=False)
        return node

    def _learn_words(self, committed: str) -> None:
        """The neural cache learns each newly committed word of the window once (``NewChunks``:
        moving the cursor or retyping a space teaches it nothing twice), keyed by the state
        before the word. "today." is the word "today" (edge/words.py)."""
        for s, e in self._neural_new.update(committed):
            s, e = s - self._win, e - self._win
            if s < 0:
                continue  # before the window: no state to key it
            # the session's words inside this chunk: one, or more where clean_text split it
            # (a control character read as a space), each keyed by the state before it
            j = bisect.bisect_right(self._resume, s)
            while j < len(self._resume) and self._resume[j] <= e:
                if self._word_end[j] == self._resume[j]:  # (a line break's entry is no word)
                    start = self._resume[j - 1] if j else 0
                    learned = words_of(self._ctx[max(start, s):self._resume[j]])
                    if learned:
                        self.neural.add(self._top_h(self._nodes[j].state), learned[-1])
                j += 1

    def _rebase(self, delta: int) -> bool:
        """The window start moved ``delta`` characters on: drop the words before it and keep the
        state after them as the new root. False if the cached context does not reach that far."""
        if delta > len(self._ctx):
            return False
        j = bisect.bisect_right(self._resume, delta)  # words that end before the new start
        if self._ctx[self._resume[j - 1] if j else 0:delta].strip():
            return False  # the new start is not where a word starts: the text there changed
        self._row(j)  # the new root's next-piece row, while the word before it is still known
        self._ctx = self._ctx[delta:]
        self._word_end = [e - delta for e in self._word_end[j:]]
        self._resume = [r - delta for r in self._resume[j:]]
        self._word_ids = self._word_ids[j:]
        self._nodes = self._nodes[j:]
        return True

    def _row(self, i: int) -> Dist:
        """Next-piece log-probs at node i, re-feeding its word if the row was dropped."""
        node = self._nodes[i]
        if node.row is None:
            if i == 0 or not self._word_ids[i - 1]:
                node.row = self._row(i - 1) if i > 0 else node.row
            else:
                logits, _ = self._feed(self._word_ids[i - 1], self._nodes[i - 1].state)
                node.row = self._dist(logits[0, -1])
        return node.row

    # ------------------------------------------------------------------ search rows (cached)
    def _rows_fn(self, root: _Node):
        def rows(ids_list: Sequence[tuple[int, ...]]) -> list[Dist]:
            out: list = [None] * len(ids_list)
            todo = []
            for j, ids in enumerate(ids_list):
                if not ids:
                    out[j] = root.row
                    continue
                hit = self._cache.get((root.id, ids))
                if hit is None:
                    todo.append(j)
                else:
                    self._cache.move_to_end((root.id, ids))
                    out[j] = hit[1]
            if todo:
                # Parents were expanded one depth earlier; re-derive any the LRU evicted.
                # (the parents found are refreshed first: re-deriving the missing ones trims the LRU)
                missing = []
                for j in todo:
                    if len(ids_list[j]) > 1:
                        key = (root.id, ids_list[j][:-1])
                        if key in self._cache:
                            self._cache.move_to_end(key)
                        else:
                            missing.append(ids_list[j][:-1])
                if missing:
                    rows(list(dict.fromkeys(missing)))
                parents = [root.state if len(ids_list[j]) == 1 else self._cache[(root.id, ids_list[j][:-1])][0]
                           for j in todo]
                state = tuple(np.concatenate([p[s] for p in parents], axis=1) for s in range(len(parents[0])))
                tok = np.array([[ids_list[j][-1]] for j in todo], dtype=np.int64)
                self.tokens_fed += len(todo)
                self.graph_calls += 1
                logits, nxt = self.runner.step_unchecked(tok, state)
                lp, ends = log_softmax_end(logits[:, -1], self.vocab.ends_word_f32)
                for b, j in enumerate(todo):
                    st = tuple(s[:, b:b + 1] for s in nxt)
                    d = Dist(lp[b], float(ends[b]))
                    self._cache[(root.id, ids_list[j])] = (st, d)
                    out[j] = d
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
            return out

        rows.root_id = root.id
        return rows

    # ------------------------------------------------------------------ the public calls
    def _prepare(self, text: str):
        """(root node, cached rows function, typed bytes) for ``text``, or None if nothing fits."""
        if not isinstance(text, str):
            raise EdgeError(f"text must be a str, got {type(text).__name__}")
        # Only the window is looked at, so a keystroke costs the same at 10 k or 1 M characters.
        # (clean_text maps one character to one, so indices agree before and after it.)
        raw = text
        win = self._window_start(text)
        if win < 0:
            return None
        # The training text writes "'" (everyday_en: 65 k lines against 104 with U+2019); phone
        # and Mac keyboards type the typographic one. Read it as "'" (one character for one).
        text = clean_text(text[win:]).replace("\u2019", "'")
        tail = _TAIL.search(text, max(0, len(text) - MAX_WORD_CHARS - 1)).group()
        if len(tail) > MAX_WORD_CHARS:
            return None
        if win != self._win:
            if not (win > self._win and self._rebase(win - self._win)):  # moved back: read it again
                self._ctx, self._word_end, self._resume, self._word_ids = "", [], [], []
                self._nodes = [self._start]  # (after a move on, nodes[0] is the state after old words)
            self._win = win
        root = self._sync(text[:len(text) - len(tail)])
        self._root = root  # the state the words are searched from (the neural cache's query)
        if self.neural is not None and self._learning:
            self._learn_words(raw[:win + len(text) - len(tail)])
        typed = self.vocab.normalize(tail).encode("utf-8")
        if tail and not typed:
            return None  # the partial word normalises to nothing (e.g. zero-width characters only)
        return root, self._rows_fn(root), typed

    def suggest(self, text: str, k: int = 3, phrase: bool = True) -> list[Suggestion]:
        """Up to ``k`` word suggestions (most likely first), then at most one phrase.

        Inside a word every suggestion starts with the typed characters (after the
        tokenizer's normalisation). Bad text never raises: it gets fewer or no suggestions.
        """
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
            raise EdgeError(f"k must be an int from 1 to {MAX_K}, got {k!r}")
        if self.user is not None and self._learning:
            self.user.observe(text)  # learns only from what was typed before this keystroke
        prep = self._prepare(text)
        if prep is None:
            return []
        _, rows, typed = prep
        prev = self._prev_words(text)
        hits, best, log_z = self._words_for(rows, typed, k, prev)
        kind = "completion" if typed else "next"
        out = [Suggestion(h.text, math.exp(h.logp), kind, math.exp(h.logp - log_z)) for h in hits]
        if phrase and self.phrase_words >= 2:
            # Inside a word the bar is on the phrase's share of what the letters typed allow, as the
            # completions' p_given_typed: renormalised over the words a search finds, always those of a
            # PHRASE_NORM_K-word request, so whether a phrase shows does not depend on k.
            if typed and k != PHRASE_NORM_K:
                log_z = self._words_for(rows, typed, PHRASE_NORM_K, prev)[2]
            p = self._phrase(rows, typed, best, log_z)
            if p is not None:
                out.append(Suggestion(p.text, math.exp(p.logp), "phrase", math.exp(p.logp - log_z)))
        if _types_curly_apostrophes(text):  # offered as the user writes them (read as "'")
            out = [replace(x, text=x.text.replace("'", "\u2019")) for x in out]
        return out

    def _words_for(self, rows, typed: bytes, k: int, prev: tuple[str, ...] = ()) -> tuple[list, list, float]:
        """(the words to offer, the best word as typed or completed, log of the probability
        mass the found words share) for the typed bytes.

        Inside a word the typed word itself, if it is a word, competes: it is not offered (it
        is there already) but a completion far less likely than the best word (``min_ratio``)
        is not offered either. After a complete word ("hundred") the only extensions left are
        junk ("hundredfour"): fewer suggestions beat wrong ones. A phrase continues the best
        word, the typed one included. With a lexicon, a search that finds fewer than ``k``
        real words looks again, further (``2k + 2`` words, reusing the rows it computed), so
        the words it drops as non-words leave room for real ones.
        """
        first, look_further = self._offer(rows, typed, k + 1 if self.lexicon is not None else k, k, prev)
        # Look further only when a wider search could change the answer: non-words took places among
        # what would be offered, or a word ranked below the search's last could still be mixed up to
        # the min_ratio bar (``_offer``). Else the words it adds cannot be offered (one search
        # instead of two on ~40 % of keystrokes).
        if self.lexicon is None or len(first[0]) >= k or not look_further:
            return first
        return self._offer(rows, typed, 2 * k + 2, k, prev)[0]

    def _offer(self, rows, typed: bytes, want: int, k: int, prev: tuple[str, ...] = ()) -> tuple[tuple, bool]:
        """((words to offer, best word, log_z) as ``_words_for``, whether a wider search could
        offer more)."""
        sources = self._sources(typed, prev)
        listed = self._candidates(sources)
        rows = self._riding(rows, listed)
        if not typed:
            hits = self._adapt(rows, b"", self._search(rows, b"", want)[0], prev, k, sources)
            real = self._real_words(hits, 0.0)
            return (real[:k], hits[:1], 0.0), len(hits) > len(real)
        a, lift = self._mix_bound(sources, listed, typed, prev)
        found, unread = self._search(rows, typed, want + 1, self._floor(a, lift))
        full = len(found) == want + 1
        hits = self._adapt(rows, typed, found, prev, k + 1, sources)  # (the typed word itself may be among the best)
        if not hits:
            return ([], [], 0.0), False
        # (with what the floor left unread: the words it would have found share in "how sure")
        log_z = float(np.logaddexp.reduce([h.logp for h in hits] + [unread]))
        bar = hits[0].logp + math.log(self.min_ratio) if self.min_ratio > 0 else -math.inf
        word = typed.decode("utf-8", "replace")
        offered = [h for h in hits if h.text != word and h.logp >= bar]
        real = self._real_words(offered, log_z)
        lifted = full and math.log(a * math.exp(found[-1].logp) + lift) >= bar
        return (real[:k], hits[:1], log_z), len(offered) > len(real) or lifted

    def _mix_bound(self, sources: tuple[list[str], ...], listed: list[str], typed: bytes,
                   prev: tuple[str, ...]) -> tuple[float, float]:
        """(a, lift): a word that none of the n-gram, user and neural caches lists for this prefix
        (``listed``: ``_candidates(sources)``) mixes to at most ``a * P_model + lift`` (each source
        rates such a word at most as its weakest listed one, or as the typed word itself), so the
        search may leave words whose model probability cannot reach the min_ratio bar even so."""
        prefix = typed.decode("utf-8", "replace")
        ngram = self.ngram if self.ngram is not None and self.ngram.lam > 0 else None
        user = self.user if self.user is not None and self.user.total > 0 else None
        neural = self._neural_probs()
        a, lift = 1.0, 0.0
        for source, top in ((ngram, sources[0]), (user, sources[1])):   # (each source's own three)
            if source is not None:
                bound = source.prob(prefix, prev) if prefix else 0.0
                if len(top) >= 3:
                    bound = max(bound, source.prob(top[-1], prev))
                a, lift = a * (1 - source.lam), lift * (1 - source.lam) + source.lam * bound
        if neural:
            rest = next((neural[w] for w in sources[2] if w not in listed), 0.0)
            lam = self.neural.lam
            a, lift = a * (1 - lam), lift * (1 - lam) + lam * max(rest, neural.get(prefix, 0.0))
        return a, lift

    def _floor(self, a: float, lift: float):
        """The search's floor: given the best word's model log-prob, the log-prob below which a
        partial word cannot lead to a word mixed up to min_ratio times the best (``_mix_bound``)."""
        r = self.min_ratio

        def floor(best: float) -> float:
            v = math.exp(best) * r - lift / a
            return math.log(v) if v > 0 else -math.inf
        floor.key = (round(a, 12), round(lift, 15), r)
        return floor

    def _search(self, rows, typed: bytes, want: int, floor=None) -> tuple[list[WordHit], float]:
        """The model's ``want`` best words for the typed bytes (the typed word included), from
        the root, and the log of the mass the floor (``_floor``) left unread. Kept per root: the
        rows are the root's, so the answer cannot change, and a keystroke that prefetch (or a
        repeated text) already searched costs a lookup."""
        key = (rows.root_id, typed, want, self.beam, self.max_pieces, getattr(floor, "key", None))
        kept = self._searched.get(key)
        if kept is None:
            pruned: list[float] = []
            if typed:
                hits = search_words(self.vocab, rows, b" " + typed, want, self.beam, self.max_pieces,
                                    include_typed=True, floor=floor, pruned=pruned)
            else:
                hits = search_words(self.vocab, rows, b" ", want, self.beam, self.max_pieces)
            kept = self._searched[key] = (hits, float(np.logaddexp.reduce(pruned)) if pruned else -math.inf)
            while len(self._searched) > self.cache_size:
                self._searched.popitem(last=False)
        else:
            self._searched.move_to_end(key)
        return kept

    def _real_words(self, hits: list, log_z: float) -> list:
        """The hits that are words: known to the lexicon or the user, or likely enough given
        what was typed (``oov_min_prob``)."""
        if self.lexicon is None:
            return hits
        floor = math.log(self.oov_min_prob) if self.oov_min_prob > 0 else -math.inf
        user = self.user.uni if self.user is not None else {}
        typed_before = self.neural.words if self.neural is not None else {}
        return [h for h in hits if h.text in self.lexicon or h.text in user or h.text in typed_before
                or (self.ngram is not None and h.text in self.ngram) or h.logp - log_z >= floor]

    @staticmethod
    def _prev_words(text: str) -> tuple[str, ...]:
        """The user cache's context: the last two whole words before the one being typed, on its line
        (``LINE_START`` before a line's first word)."""
        return last_words(committed_text(text))

    def _adapt(self, rows, typed: bytes, hits: list[WordHit], prev: tuple[str, ...] = (),
               keep: int = 0, sources: tuple[list[str], ...] | None = None) -> list[WordHit]:
        """Mix the model's word probabilities with the bundle's word n-gram's, the user n-gram
        cache's and the neural cache's, and add each one's own likeliest words for this prefix
        (scored by the model too), re-ranked:
        P = (1 - l_n) * ((1 - l_u) * ((1 - l_g) * P_model + l_g * P_ngram) + l_u * P_user) + l_n * P_neural.

        ``keep`` > 0: only the best ``keep`` matter, so a candidate the search did not find is scored
        by the model only if it could reach them: the search keeps the likeliest words, so its
        model probability is taken to be at most the weakest found word's (a model call saved
        for most candidates)."""
        user = self.user if self.user is not None and self.user.total > 0 else None
        ngram = self.ngram if self.ngram is not None and self.ngram.lam > 0 else None
        neural = self._neural_probs()
        if user is None and ngram is None and not neural:
            return hits
        have = {h.text for h in hits}
        extra = self._candidates(sources if sources is not None else self._sources(typed, prev), have)

        def mix(lp: float, word: str) -> float:
            lp = ngram.mix(lp, word, prev) if ngram is not None else lp
            lp = user.mix(lp, word, prev) if user is not None else lp
            return self.neural.mix(lp, neural.get(word, 0.0)) if neural else lp
        mixed = [WordHit(h.text, mix(h.logp, h.text), h.ids) for h in hits]
        if keep and hits and len(mixed) >= keep:
            bar = sorted(h.logp for h in mixed)[-keep]
            ceiling = min(h.logp for h in hits)
            extra = [w for w in extra if mix(ceiling, w) >= bar]
        mixed += [WordHit(w, mix(lp, w), ids) for w, (lp, ids) in zip(extra, self._word_logps(rows, extra))]
        mixed.sort(key=lambda h: (-h.logp, h.text))
        return mixed

    def _sources(self, typed: bytes, prev: tuple[str, ...]) -> tuple[list[str], ...]:
        """The words the n-gram and the user cache each rank best for the typed prefix (three
        each), and the neural cache's words for it, best first: ``_adapt`` scores them by the
        model too. Computed once a search (``_offer``)."""
        prefix = typed.decode("utf-8", "replace")
        out = [[], []]
        if self.ngram is not None and self.ngram.lam > 0:  # the bundle's n-gram never changes: keep its answers
            key = (prefix, prev)
            out[0] = self._ngram_memo.get(key)
            if out[0] is None:
                out[0] = self._ngram_memo[key] = self.ngram.candidates(prefix, prev, 3)
                while len(self._ngram_memo) > self.cache_size:
                    self._ngram_memo.popitem(last=False)
        if self.user is not None and self.user.total > 0:
            out[1] = self.user.candidates(prefix, prev, 3)
        neural = self._neural_probs()
        out.append(sorted((w for w in neural if w.startswith(prefix) and w != prefix), key=lambda w: -neural[w]))
        return tuple(out)

    @staticmethod
    def _candidates(sources: tuple[list[str], ...], have=frozenset()) -> list[str]:
        """The sources' words other than ``have`` (the search's words): each n-gram's three, then
        the neural cache's best three."""
        seen, out = set(have), []
        for words in sources[:-1]:
            new = [w for w in words if w not in seen]
            out += new
            seen.update(new)
        return out + [w for w in sources[-1] if w not in seen][:3]

    def _riding(self, rows, words: list[str]):
        """``rows`` that also reads the candidates' pieces (``_candidates``) in the calls the word
        search makes anyway: ``_adapt`` then finds most of their rows read, and a keystroke makes
        one model call a depth instead of two (a call costs about as much as four more rows)."""
        if not words:
            return rows
        seqs = [tuple(self.vocab.encode_word(w)) for w in words]
        root = rows.root_id

        def rows_riding(ids_list):
            if all(not ids or (root, ids) in self._cache for ids in ids_list):
                return rows(ids_list)  # no call to ride on
            asked = set(ids_list)
            ride = []
            for depth in sorted({len(ids) for ids in ids_list}):
                for q in seqs:
                    p = q[:depth]
                    if (0 < depth <= len(q) and p not in asked and (root, p) not in self._cache
                            and (depth == 1 or (root, p[:-1]) in self._cache)):
                        asked.add(p)
                        ride.append(p)
            return rows(list(ids_list) + ride)[:len(ids_list)]

        rows_riding.root_id = root
        return rows_riding

    def _neural_probs(self) -> dict[str, float]:
        """P_neural(word) at the current root, computed once per root and cache content (a
        keystroke may search twice, and the root changes only when a word is committed)."""
        if self.neural is None:
            return {}
        key = (self._root.id, self.neural.cache.count)
        if self._neural_memo[0] != key:
            self._neural_memo = (key, self.neural.probs(self._top_h(self._root.state)))
        return self._neural_memo[1]

    def _word_logps(self, rows, words: list[str]) -> list[tuple[float, tuple[int, ...]]]:
        """The model's log P(word, then a word boundary) for each word: its pieces read one
        depth at a time for all words at once (one batched call a depth)."""
        seqs = [tuple(self.vocab.encode_word(w)) for w in words]
        lps = [0.0] * len(seqs)
        for depth in range(max((len(q) for q in seqs), default=-1) + 1):
            live = [i for i, q in enumerate(seqs) if depth <= len(q)]
            for i, row in zip(live, rows([seqs[i][:depth] for i in live])):
                q = seqs[i]
                lps[i] += float(row.lp[q[depth]]) if depth < len(q) else row.end(self.vocab)
        return [(lp if q else -math.inf, q) for lp, q in zip(lps, seqs)]

    def prefetch(self, text: str, keys: int = 3, k: int = 3, phrase: bool = True,
                 budget_ms: float = 20.0, stop=None) -> list[str]:
        """Idle-time work: score now what the most likely next keystrokes will need.

        A keyboard waits 100 ms or more between keystrokes. Call this after showing the
        suggestions for ``text``: it guesses the ``keys`` likeliest next keys (the next letter
        of the likeliest words, or a space when the typed word is likely complete), runs
        ``suggest`` for each, and so fills the caches. When the user then types one of them,
        ``suggest`` makes no model call. The suggestions, and what the adaptation caches learn,
        are the same as without it. Stops after ``budget_ms``, or as soon as ``stop()`` (if
        given) says a key is waiting; returns the keys it got to. Never raises on bad text.
        """
        t0 = time.perf_counter()
        # The keys tried are guesses: the caches must not learn from them, and the context must
        # stay the typed text's (a tried space would commit a word the user may go on typing).
        # Only the memos (rows, words read, phrases) keep what was computed.
        saved = self._context_snapshot()
        self._learning = False
        try:
            return self._prefetch(text, keys, k, phrase, budget_ms, stop, t0)
        finally:
            self._learning = True
            self._restore(saved)

    def _context_snapshot(self) -> tuple:
        return (self._ctx, self._win, list(self._word_end), list(self._resume), list(self._word_ids),
                list(self._nodes), self._root)

    def _restore(self, saved: tuple) -> None:
        (self._ctx, self._win, self._word_end, self._resume, self._word_ids,
         self._nodes, self._root) = saved

    def _prefetch(self, text: str, keys: int, k: int, phrase: bool, budget_ms: float, stop, t0: float) -> list[str]:
        try:
            prep = self._prepare(text)
        except EdgeError:
            return []
        if prep is None:
            return []
        _, rows, typed = prep
        weight: dict[str, float] = {}  # next key -> probability mass of the words it leads to
        word = typed.decode("utf-8", "replace")
        for h in search_words(self.vocab, rows, b" " + typed, 2 * max(keys, k), self.beam, self.max_pieces):
            if h.text.startswith(word) and len(h.text) > len(word):
                key = h.text[len(word)]
                weight[key] = weight.get(key, 0.0) + math.exp(h.logp)
        ids = tuple(self.vocab.encode_word(word)) if word else ()
        if ids:  # the typed word as it stands, complete: a space comes next
            lp = 0.0
            for j in range(len(ids) + 1):
                row = rows([ids[:j]])[0]
                lp += float(row.lp[ids[j]]) if j < len(ids) else row.end(self.vocab)
            weight[" "] = math.exp(lp)
        done = []
        for key in sorted(weight, key=weight.get, reverse=True)[:keys]:
            if (time.perf_counter() - t0) * 1e3 > budget_ms or (stop is not None and stop()):
                break
            self.suggest(text + key, k, phrase=phrase)
            done.append(key)
        return done

    def phrase(self, text: str, min_prob: float = 0.0) -> PhraseHit | None:
        """The Smart Compose phrase for ``text`` if one is at least ``min_prob`` likely (default: any)."""
        return pick_phrase(self.phrase_candidates(text, min_prob), min_prob)

    def phrase_candidates(self, text: str, min_prob: float = 0.0) -> dict[int, PhraseHit]:
        """The most probable phrase of each length for ``text`` ({} if none) at least ``min_prob``
        likely (probabilities not conditioned on a partly typed word)."""
        prep = self._prepare(text)
        if prep is None:
            return {}
        _, rows, typed = prep
        best = self._words_for(rows, typed, 1)[1] if typed else []
        return self._phrase_candidates(rows, typed, best, min_prob)

    def _phrase(self, rows, typed: bytes, hits, log_z: float) -> PhraseHit | None:
        """The phrase to offer: P(phrase) >= phrase_min_prob x exp(log_z) (log_z: 0 at a word start)."""
        if self.phrase_min_prob <= 0:
            bar = 0.0
        else:
            bar = math.exp(math.log(self.phrase_min_prob) + log_z)
            if bar <= 0.0:
                return None  # letters this unlikely (underflow): no phrase, rather than any
        return pick_phrase(self._phrase_candidates(rows, typed, hits, bar), bar)

    def _phrase_candidates(self, rows, typed: bytes, hits, min_prob: float) -> dict[int, PhraseHit]:
        if typed and not hits:
            return {}
        start = hits[0] if typed else None  # inside a word: continue its best word (typed or completed)
        key = (rows.root_id, start.ids if start else (), start.logp if start else 0.0)
        found = self._phrases.get(key)
        if found is not None and found[0] <= min_prob:  # the cut is exact: a lower bar's search serves
            return above(found[1], min_prob)
        if len(self._phrases) > 256:
            self._phrases.clear()
        best = search_phrase(
            self.vocab, rows, start.ids if start else (), (b" " + start.text.encode("utf-8")) if start else b"",
            start.logp if start else 0.0, self.phrase_words, beam=self.phrase_beam, min_prob=min_prob)
        self._phrases[key] = (min_prob, best)
        return best


def _types_curly_apostrophes(text: str) -> bool:
    """Whether the last apostrophe in the recent text is the typographic one (U+2019)."""
    recent = text[-400:]
    return recent.rfind("\u2019") > recent.rfind("'")


def open_session(bundle_dir, precision: str | None = None, threads: int = 1, **session_kw) -> TypingSession:
    """A ``TypingSession`` on a verified bundle (hashes checked first; a bad file is named).

    ``precision``: None runs the bundle's default graph (int8 when exported with ``--int8``),
    "fp32" the fp32 reference graph.
    """
    from .bundle import open_bundle

    if precision not in (None, "fp32", "int8"):
        raise EdgeError(f"precision must be fp32 or int8 (or omitted for the bundle's default), got {precision!r}")
    bundle = open_bundle(bundle_dir)
    if bundle.kind != "lm":
        raise EdgeError(f"{bundle_dir}: a {bundle.kind} bundle; suggestions need a language model (kind 'lm')")
    if bundle.tokenizer_path is None or bundle.tokenizer_path.suffix != ".model":
        raise EdgeError(f"{bundle_dir}: suggestions need a SentencePiece tokenizer (tokenizer.model)")
    if precision == "int8" and bundle.precision != "int8":
        raise EdgeError(f"{bundle_dir}: has no int8 graph (exported without --int8); allowed: fp32")
    runner = bundle.runner(StepRunner, "step", "fp32" if precision == "fp32" else None, threads=threads)
    vocab = SentencePieceVocab(bundle.tokenizer_path, eos_id=runner.meta.eos_id)
    lexicon_path = bundle.file_path(LEXICON_FILE)
    if lexicon_path is not None and "lexicon" not in session_kw:
        session_kw["lexicon"] = Lexicon.load(lexicon_path)
    ngram_path = bundle.file_path(NGRAM_FILE)
    if ngram_path is not None and "ngram" not in session_kw:
        try:
            session_kw["ngram"] = WordNgram.load(ngram_path)
        except ValueError as e:
            raise EdgeError(f"{bundle_dir}: {e}") from None
    return TypingSession(runner, vocab, **session_kw)
