"""The Suggest tab's engine: the edge runner's typing session, one per browser session.

The bundle and its onnxruntime session load once; each user gets a light typing session
(its own cached states, so keystrokes stay incremental) made on first use.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rnnkit.export.bundle import open_bundle


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

    def new_typing(self) -> Typing:
        from rnnkit.edge.session import TypingSession

        return Typing(TypingSession(self.runner, self.vocab))

    def suggest(self, typing: Typing, text: str, k: int = 3) -> list[dict[str, Any]]:
        """Suggestions for ``text`` as dicts {"text", "kind", "prob"}; records the keystroke's latency."""
        with typing.lock:
            t0 = time.perf_counter()
            results = typing.session.suggest(text, k)
            typing.latencies.append((time.perf_counter() - t0) * 1e3)
            del typing.latencies[:-1000]
        return [{"text": r.text, "kind": r.kind, "prob": round(float(r.prob), 4)} for r in results]
