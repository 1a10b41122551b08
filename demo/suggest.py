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

from rnnkit.export.bundle import open_bundle

MAX_TYPINGS = 48   # typing sessions kept server-side, least recently used dropped first
CACHE_SIZE = 128   # search rows per session (edge default 512); each is a state + a vocabulary row
ROWS_KEPT = 16     # next-piece rows kept per session (edge default 64)


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
        self.runner = StepRunner(self.bundle.graph_path("step"))
        self.vocab = SentencePieceVocab(self.bundle.tokenizer_path, eos_id=self.runner.meta.eos_id)
        self.new_typing()  # fail now, at start-up, if the runner and the tokenizer disagree
        self._typings: OrderedDict[str, Typing] = OrderedDict()
        self._lock = threading.Lock()

    def new_typing(self) -> Typing:
        from rnnkit.edge.session import TypingSession

        # Smaller caches than a device's: the server holds many sessions at once (<= ~8 MB each).
        return Typing(TypingSession(self.runner, self.vocab, cache_size=CACHE_SIZE, rows_kept=ROWS_KEPT))

    def typing_for(self, key: str | None) -> tuple[str, Typing]:
        """The typing session of browser session ``key`` (a new key if None or forgotten).

        Sessions live in one LRU of at most ``MAX_TYPINGS``: every API call is a new browser
        session, so per-session state alone would grow with the number of requests, not users.
        A forgotten session costs its next keystroke one re-read of the text, nothing else."""
        with self._lock:
            if key is not None and key in self._typings:
                self._typings.move_to_end(key)
                return key, self._typings[key]
        typing = self.new_typing()
        key = key if isinstance(key, str) and len(key) == 32 else secrets.token_hex(16)
        with self._lock:
            self._typings[key] = typing
            while len(self._typings) > MAX_TYPINGS:
                self._typings.popitem(last=False)
        return key, typing

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
