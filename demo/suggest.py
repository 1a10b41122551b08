"""The Suggest tab's engine: the edge runner's typing session, one per browser session.

The bundle and its onnxruntime session load once; each user gets a light typing session
(its own cached states, so keystrokes stay incremental) made on first use.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rnnkit.edge.bundle import open_bundle
from rnnkit.edge.lexicon import FILE_NAME as LEXICON_FILE, Lexicon
from rnnkit.edge.word_ngram import FILE_NAME as NGRAM_FILE, WordNgram

# Memory: a typing session holds a state per word of its window (5 kB each on suggest-en) and
# cached search rows (a vocabulary row + a state, ~37 kB each). The LRU bounds the peak (~32 x
# a few MB); the idle TTL brings the server back near its baseline after a burst.
MAX_TYPINGS = 32   # typing sessions kept server-side, least recently used dropped first
CACHE_SIZE = 64    # search rows per session (edge default 512; one keystroke's search uses ~30)
ROWS_KEPT = 8      # next-piece rows kept per session (edge default 64)
IDLE_TTL_S = 120   # a session unused this long is dropped (its next keystroke re-reads the text once)


@dataclass
class Typing:
    """One user's typing session and the latency of each of their keystrokes (ms)."""

    session: Any
    latencies: list[float] = field(default_factory=list)
    # A typing session caches states and is not thread-safe; one browser can have two events in
    # flight (a keystroke and a tapped suggestion), so they take turns.
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def summary(self) -> str:
        lat = self.latencies[-200:]  # the recent keystrokes, not the whole history
        if not lat:
            return ""
        p50, p95 = np.percentile(lat, [50, 95])
        return (f"Latency: last keystroke **{lat[-1]:.2f} ms** · median {p50:.2f} ms · p95 {p95:.2f} ms "
                f"over {len(lat)} keystroke{'s' if len(lat) != 1 else ''}")


class Suggester:
    """Opens the suggestion bundle once; ``new_typing()`` gives each user a session."""

    def __init__(self, directory: str | Path):
        from rnnkit.edge.pieces import SentencePieceVocab
        from rnnkit.edge.runner import StepRunner

        self.bundle = open_bundle(directory)
        if self.bundle.kind != "lm":
            raise ValueError(f"{directory}: a {self.bundle.kind} bundle; suggestions need a language model")
        if self.bundle.tokenizer_path is None or self.bundle.tokenizer_path.suffix != ".model":
            raise ValueError(f"{directory}: live suggestions need a SentencePiece tokenizer (tokenizer.model)")
        # One runner (one onnxruntime session) for everyone: TypingSession calls its pure step,
        # which keeps no state in the runner, and onnxruntime's run() is thread-safe.
        self.runner = self.bundle.runner(StepRunner, "step", mem_arena=False)
        self.vocab = SentencePieceVocab(self.bundle.tokenizer_path, eos_id=self.runner.meta.eos_id)
        # The bundle's lexicon and word n-gram, as `rnnkit suggest` uses them: read once, shared
        # read-only by every user's session (the n-gram keeps its scratch per thread).
        self.word_sources = {name: load(path) for name, path, load in (
            ("lexicon", self.bundle.file_path(LEXICON_FILE), Lexicon.load),
            ("ngram", self.bundle.file_path(NGRAM_FILE), WordNgram.load)) if path is not None}
        self.new_typing()  # fail now, at start-up, if the runner and the tokenizer disagree
        self._typings: OrderedDict[str, Typing] = OrderedDict()
        self._used: dict[str, float] = {}
        self._lock = threading.Lock()
        self._janitor: threading.Thread | None = None

    def new_typing(self) -> Typing:
        from rnnkit.edge.session import TypingSession

        # Smaller caches than a device's: the server holds many sessions at once (<= ~8 MB each).
        return Typing(TypingSession(self.runner, self.vocab, cache_size=CACHE_SIZE, rows_kept=ROWS_KEPT, **self.word_sources))

    def typing_for(self, key: str | None) -> tuple[str, Typing]:
        """The typing session of browser session ``key`` (a new key if None or forgotten).

        Sessions live in one LRU of at most ``MAX_TYPINGS``: every API call is a new browser
        session, so per-session state alone would grow with the number of requests, not users.
        A forgotten session costs its next keystroke one re-read of the text, nothing else."""
        now = time.monotonic()
        with self._lock:
            if key is not None and key in self._typings:
                self._typings.move_to_end(key)
                self._used[key] = now
                return key, self._typings[key]
        typing = self.new_typing()
        key = key if isinstance(key, str) and len(key) == 32 else secrets.token_hex(16)
        with self._lock:
            self._typings[key] = typing
            self._used[key] = now
            while len(self._typings) > MAX_TYPINGS:
                old, _ = self._typings.popitem(last=False)
                self._used.pop(old, None)
        self._start_janitor()
        return key, typing

    def drop_idle(self, ttl: float = IDLE_TTL_S) -> int:
        """Forget sessions unused for ``ttl`` seconds and hand freed memory back to the OS."""
        cutoff = time.monotonic() - ttl
        with self._lock:
            idle = [k for k, t in self._used.items() if t < cutoff]
            for k in idle:
                self._typings.pop(k, None)
                self._used.pop(k, None)
        if idle:
            _trim_heap()
        return len(idle)

    def _start_janitor(self) -> None:
        if self._janitor is not None:
            return

        def sweep():
            while True:
                time.sleep(IDLE_TTL_S / 4)
                self.drop_idle()

        self._janitor = threading.Thread(target=sweep, name="typing-janitor", daemon=True)
        self._janitor.start()

    def suggest(self, typing: Typing, text: str, k: int = 3) -> list[dict[str, Any]]:
        """Suggestions for ``text`` as dicts {"text", "kind", "prob", "p_given_typed"} (see
        ``edge.session.Suggestion``: the shown figure is ``p_given_typed``); records the latency."""
        with typing.lock:
            t0 = time.perf_counter()
            results = typing.session.suggest(text, k)
            typing.latencies.append((time.perf_counter() - t0) * 1e3)
            del typing.latencies[:-1000]
        return [{"text": r.text, "kind": r.kind, "prob": round(float(r.prob), 4),
                 "p_given_typed": round(float(r.p_given_typed), 4)} for r in results]


def limit_malloc_arenas(n: int = 2) -> None:
    """glibc gives each thread its own heap arena (up to 8 per core); a server's many request
    threads then keep freed memory spread over all of them. Call before the threads start."""
    try:
        import ctypes

        M_ARENA_MAX = -8
        ctypes.CDLL("libc.so.6").mallopt(M_ARENA_MAX, n)
    except (OSError, AttributeError):
        pass


def _trim_heap() -> None:
    """glibc keeps freed small blocks (a session's many 32 kB rows) in its arenas; give them back."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: the allocator decides
        pass
