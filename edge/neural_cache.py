"""A continuous cache over recent hidden states (Grave, Joulin & Usunier 2017), in NumPy.

The model's top-layer hidden state h_t is stored with the token that followed it. At a new state
h, tokens that followed similar states get probability in proportion to exp(theta * h . h_i):

    p(w | h) = (1 - lam) * p_model(w | h) + lam * sum_i softmax_i(theta * h . h_i) [w_i = w]

No training step and no change to the bundle: the keys are the state the step graph already
returns, so a user's own repetitions (names, phrases, topics) become likely as they type.
``theta`` and ``lam`` are tuned on validation text (bench/neural_cache_ptb.py; the paper's PTB
LSTM: 82.3 -> 72.1 perplexity with a 2,000-state cache).

``NeuralCache`` is the incremental form a typing session uses; ``cache_target_logprobs`` is the
same mixture over a whole stream at once (for perplexity), and a test checks they agree.
Torch-free: numpy only.
"""

from __future__ import annotations

import numpy as np

from .adapt import interpolate

SIZE, THETA, LAMBDA = 2000, 0.3, 0.1


def _check(size: int, theta: float, lam: float) -> None:
    if size < 1 or theta < 0 or not 0 <= lam < 1:
        raise ValueError(f"need size >= 1, theta >= 0, 0 <= lam < 1; got {size}, {theta}, {lam}")


class NeuralCache:
    """A ring buffer of (hidden state, next token) pairs and the mixture above."""

    def __init__(self, hidden_size: int, size: int = SIZE, theta: float = THETA, lam: float = LAMBDA):
        _check(size, theta, lam)
        self.size, self.theta, self.lam = size, theta, lam
        self.keys = np.zeros((size, hidden_size), np.float32)
        self.values = np.full(size, -1, np.int64)
        self.count = 0  # pairs added so far (the buffer holds the last ``size``)

    def __len__(self) -> int:
        return min(self.count, self.size)

    def add(self, h: np.ndarray, next_id: int) -> None:
        """Remember that ``next_id`` followed the state ``h`` (H,)."""
        slot = self.count % self.size
        self.keys[slot] = h
        self.values[slot] = next_id
        self.count += 1

    def probs(self, h: np.ndarray, vocab_size: int) -> np.ndarray:
        """The cache's own distribution (V,) at state ``h`` (H,); zeros when empty."""
        out = np.zeros(vocab_size, np.float64)
        n = len(self)
        if n == 0:
            return out
        scores = self.theta * (self.keys[:n].astype(np.float64) @ h.astype(np.float64))
        w = np.exp(scores - scores.max())
        np.add.at(out, self.values[:n], w / w.sum())
        return out

    def mix(self, logp: np.ndarray, h: np.ndarray) -> np.ndarray:
        """Mixed log-probabilities (V,) from the model's ``logp`` (V,) at state ``h``."""
        if len(self) == 0 or self.lam == 0:
            return logp
        p = (1 - self.lam) * np.exp(logp.astype(np.float64)) + self.lam * self.probs(h, logp.shape[-1])
        return np.log(np.maximum(p, 1e-300)).astype(logp.dtype)


def cache_target_probs(hidden: np.ndarray, targets: np.ndarray, size: int = SIZE, theta: float = THETA,
                       chunk: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """The cache's own probability of each target over a whole stream, and whether the cache had
    anything yet: (p_cache (T,), has (T,) bool). What ``NeuralCache.probs`` gives one position at a
    time (then ``add(h_t, target_t)``), computed in blocks.

    hidden (T, H): the top-layer state before each target; targets (T,).
    """
    _check(size, theta, 0.0)
    T = len(targets)
    hidden = hidden.astype(np.float64)
    p_cache, has_any = np.zeros(T, np.float64), np.zeros(T, bool)
    for s in range(0, T, chunk):
        e = min(T, s + chunk)
        lo = max(0, s - size)
        scores = theta * (hidden[s:e] @ hidden[lo:e].T)  # (c, window + c)
        pos = np.arange(s, e)[:, None]
        past = np.arange(lo, e)[None, :]
        valid = (past < pos) & (past >= pos - size)  # strictly earlier, within the last ``size``
        scores = np.where(valid, scores, -np.inf)
        top = scores.max(axis=1, keepdims=True)
        has = np.isfinite(top[:, 0])
        w = np.where(valid, np.exp(scores - np.where(has[:, None], top, 0.0)), 0.0)
        hit = targets[lo:e][None, :] == targets[s:e][:, None]
        p_cache[s:e] = np.where(has, (w * hit).sum(axis=1) / np.maximum(w.sum(axis=1), 1e-300), 0.0)
        has_any[s:e] = has
    return p_cache, has_any


def mix_target_logprobs(model_logp: np.ndarray, p_cache: np.ndarray, has: np.ndarray, lam: float) -> np.ndarray:
    """log((1 - lam) * p_model + lam * p_cache) where the cache had something, else log p_model."""
    p_model = np.exp(model_logp.astype(np.float64))
    mixed = np.where(has, (1 - lam) * p_model + lam * p_cache, p_model)
    return np.log(np.maximum(mixed, 1e-300))


def cache_target_logprobs(hidden: np.ndarray, targets: np.ndarray, model_logp: np.ndarray,
                          size: int = SIZE, theta: float = THETA, lam: float = LAMBDA,
                          chunk: int = 512) -> np.ndarray:
    """log p(target_t) under the mixture, for a whole stream: what feeding ``NeuralCache`` one
    position at a time (mix, then add (h_t, target_t)) gives. model_logp (T,): the model's
    log-probability of each target. Returns (T,) float64."""
    _check(size, theta, lam)
    return mix_target_logprobs(model_logp, *cache_target_probs(hidden, targets, size, theta, chunk), lam)


class WordCache:
    """The same cache at the level a keyboard offers: (state before a word, the word).

    ``probs(h)`` gives P_cache(word | h) for the words in the cache; a typing session mixes it
    into each candidate's probability and offers the cache's own likeliest words too (a name the
    model never saw, once the user has typed it after similar contexts).
    """

    def __init__(self, hidden_size: int, size: int = 1000, theta: float = THETA, lam: float = LAMBDA):
        self.cache = NeuralCache(hidden_size, size, theta, lam)
        self.lam = lam
        self._ids: dict[str, int] = {}
        self._words: list[str] = []

    def __len__(self) -> int:
        return len(self.cache)

    @property
    def words(self) -> dict[str, int]:
        """The words the cache has seen (and may still hold): they count as the user's words."""
        return self._ids

    def add(self, h: np.ndarray, word: str) -> None:
        i = self._ids.get(word)
        if i is None:
            if len(self._words) >= 4 * self.cache.size:
                self._compact()
            i = self._ids[word] = len(self._words)
            self._words.append(word)
        self.cache.add(h, i)

    def _compact(self) -> None:
        """Renumber the words still in the buffer (bounded memory however long the session)."""
        n = len(self.cache)
        live = sorted(set(self.cache.values[:n].tolist()))
        remap = {old: new for new, old in enumerate(live)}
        self._words = [self._words[i] for i in live]
        self._ids = {w: i for i, w in enumerate(self._words)}
        self.cache.values[:n] = [remap[int(v)] for v in self.cache.values[:n]]

    def probs(self, h: np.ndarray) -> dict[str, float]:
        """P_cache(word | h) for every word in the cache (empty when the cache is)."""
        if len(self.cache) == 0:
            return {}
        p = self.cache.probs(h, len(self._words))
        return {self._words[i]: float(p[i]) for i in np.flatnonzero(p)}

    def mix(self, model_logp: float, p_cache: float) -> float:
        """log((1 - lam) * P_model + lam * P_cache)."""
        return interpolate(model_logp, self.lam, p_cache)
