"""Text generation in numpy, the one sampler and the one beam search (torch-free).

Token choice (temperature, top-k, top-p, seeded), the generation loop over any step function and
the start-of-text rule serve ``rnnkit generate`` on a run (the PyTorch step's logits handed over as
arrays by ``rnnkit.core.models.sampling.numpy_step``), ``rnnkit predict`` and the demo on a bundle:
the same seed draws the same tokens from the same logits everywhere. ``beam_search`` decodes one
source over a seq2seq decoder step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional, Sequence

import numpy as np

from rnnkit.edge.search import log_softmax as _log_softmax


def log_softmax(x: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax of (..., V) in float64 (beam scores add up many of these)."""
    return _log_softmax(x, np.float64)


def filter_logits(logits: np.ndarray, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0) -> np.ndarray:
    """Logits (V,) or (B, V) -> float64 logits scaled by 1/temperature, excluded tokens at -inf."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    x = np.asarray(logits, dtype=np.float64) / temperature
    V = x.shape[-1]
    if 0 < top_k < V:
        kth = np.partition(x, V - top_k, axis=-1)[..., V - top_k:V - top_k + 1]
        x = np.where(x < kth, -np.inf, x)
    if top_p < 1.0:
        order = np.argsort(-x, axis=-1, kind="stable")
        sorted_x = np.take_along_axis(x, order, axis=-1)
        probs = np.exp(log_softmax(sorted_x))
        # Drop a token when the tokens ranked above it already cover top_p; the first always stays.
        drop = (np.cumsum(probs, axis=-1) - probs) > top_p
        sorted_x = np.where(drop, -np.inf, sorted_x)
        out = np.empty_like(x)
        np.put_along_axis(out, order, sorted_x, axis=-1)
        x = out
    return x


def sample_next(logits: np.ndarray, rng: np.random.Generator, temperature: float = 1.0,
                top_k: int = 0, top_p: float = 1.0) -> int:
    """One token id from logits (V,): the same distribution as ``filter_logits``, drawn with one
    uniform number (reproducible for a seeded ``rng``).

    With top-k the work happens on the k candidates only (O(V) to find them, then O(k log k)):
    filtering all V logits cost more than the model's own step for an 8k vocabulary.
    """
    x = np.asarray(logits, dtype=np.float64)
    V = x.shape[-1]
    keep = None
    if 0 < top_k < V:
        kth = np.partition(x, V - top_k)[V - top_k]
        keep = np.flatnonzero(x >= kth)  # ascending ids, ties at the k-th value kept as filter_logits does
        x = x[keep]
    probs = np.exp(log_softmax(filter_logits(x, temperature, 0, top_p)))
    cdf = np.cumsum(probs)
    j = int(min(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"), len(cdf) - 1))
    return int(keep[j]) if keep is not None else j


# --------------------------------------------------------------------------- generation
# step(tokens (1, T) int64, state) -> (logits (1, T, V), state); the state is opaque here (numpy
# arrays from an ONNX graph, torch tensors from a PyTorch model), None at the start.
TokenStep = Callable[[np.ndarray, Any], tuple[np.ndarray, Any]]


def generate(step: TokenStep, prompt: Sequence[int], max_new_tokens: int, temperature: float = 1.0,
             top_k: int = 0, top_p: float = 1.0, seed: Optional[int] = None, greedy: bool = False,
             stop_ids: Sequence[int] = (), state: Any = None) -> Iterator[int]:
    """Yield new token ids one at a time: the prompt is read in one call (its state carried), then
    each new token is one step. ``greedy`` takes the likeliest token; else ``sample_next`` with a
    ``numpy.random.default_rng(seed)`` (a fixed seed gives the same tokens)."""
    if len(prompt) == 0:
        raise ValueError("generate needs a non-empty prompt (e.g. start_ids(tokenizer, ''))")
    rng = np.random.default_rng(seed)
    logits, state = step(np.asarray([list(prompt)], dtype=np.int64), state)
    for _ in range(max_new_tokens):
        last = np.asarray(logits)[0, -1]
        tok = int(np.argmax(last)) if greedy else sample_next(last, rng, temperature, top_k, top_p)
        yield tok
        if tok in stop_ids:
            return
        logits, state = step(np.asarray([[tok]], dtype=np.int64), state)


def start_of_text(eos_id: int, newline_ids: Sequence[int]) -> list[int]:
    """The start-of-text rule, once: language-model streams end every line with EOS
    (rnnkit.core.tasks.lm_data), so a text starts after ``eos_id``; a character model (no EOS)
    after its "\\n" (``newline_ids``). Generation, predict, the demo and the typing session use it."""
    return [int(eos_id)] if eos_id >= 0 else [int(i) for i in newline_ids]


def start_ids(tokenizer, prompt: str) -> list[int]:
    """Ids that start generation: the prompt after the start of a text (``start_of_text``). With
    an EOS, a line break in the prompt is EOS, as between the lines of the training stream (not
    the byte "\n"); a blank line adds nothing, as in the typing session."""
    eos = tokenizer.eos_id
    start = start_of_text(eos, tokenizer.encode("\n") if eos < 0 else ())
    if eos < 0 or "\n" not in prompt:
        return start + (tokenizer.encode(prompt) if prompt else [])
    ids = list(start)
    for n, line in enumerate(prompt.split("\n")):
        if n and ids[-1] != eos:
            ids.append(eos)
        line = line.removesuffix("\r")
        if line:
            ids += tokenizer.encode(line)
    return ids


def decode_lines(tokenizer, ids: Sequence[int]) -> str:
    """Decode a stream in which ``eos_id`` (if the tokenizer has one) separates lines."""
    if tokenizer.eos_id < 0:
        return tokenizer.decode(list(ids))
    lines, cur = [], []
    for i in ids:
        if i == tokenizer.eos_id:
            lines.append(tokenizer.decode(cur))
            cur = []
        else:
            cur.append(i)
    lines.append(tokenizer.decode(cur))
    return "\n".join(lines)


def decode_continuation(tokenizer, prompt_ids: Sequence[int], new_ids: Sequence[int]) -> str:
    """The text ``new_ids`` add after the prompt (``prompt_ids`` as made by ``start_ids``).

    The whole sequence is decoded and the prompt's own decoding cut off, so sentencepiece's
    word-boundary spaces come out right; ``eos_id`` becomes a line break.
    """
    base = decode_lines(tokenizer, list(prompt_ids[1:]))
    full = decode_lines(tokenizer, list(prompt_ids[1:]) + list(new_ids))
    return full[len(base):] if full.startswith(base) else full


# --------------------------------------------------------------------------- beam search
State = tuple[np.ndarray, ...]  # each (L, K, H): the beam is axis 1, as in the ONNX state tensors
StepFn = Callable[[np.ndarray, State], tuple[np.ndarray, State, Optional[np.ndarray]]]


@dataclass
class Hypothesis:
    tokens: list[int]        # generated ids without BOS, up to and including EOS if it finished
    logprob: float           # sum of their log-probabilities
    attention: np.ndarray    # (len(tokens), S): each token's attention over the source
    score: float             # what the ranking used: logprob / ((5 + len) / 6) ** alpha


def length_normalised(scores: np.ndarray, lengths: np.ndarray, alpha: float) -> np.ndarray:
    """GNMT's length penalty; alpha 0 leaves the scores raw."""
    return scores if alpha == 0 else scores / ((5.0 + lengths) / 6.0) ** alpha


def beam_search(step: StepFn, state: State, bos_id: int, eos_id: int, pad_id: int, beam: int,
                max_len: int, alpha: float = 0.0) -> Hypothesis:
    """The best hypothesis of a beam search over a decoder step graph, for one source.

    ``step(prev (K,), state) -> (logits (K, V), next_state, attention (K, S) or None)`` runs the
    K beams as one batch; ``state`` arrives with K rows (callers tile the encoder's outputs
    once). The same algorithm as ``rnnkit.core.models.seq2seq_search.beam_search``, so predict and the demo
    match the BLEU the recipe reports: a finished beam stays with its score frozen (its
    only continuation is a pad at cost 0) and the final beams are ranked with GNMT's length
    penalty. ``beam=1`` is exactly greedy decoding.
    """
    if beam < 1 or max_len < 1:
        raise ValueError(f"beam and max_len must be >= 1, got {beam} and {max_len}")
    K = beam
    scores = np.full(K, -np.inf)
    scores[0] = 0.0  # all beams start identical: expand only the first one at step 1
    finished = np.zeros(K, dtype=bool)
    lengths = np.zeros(K, dtype=np.int64)
    tokens = np.zeros((K, 0), dtype=np.int64)
    attns: Optional[np.ndarray] = None
    prev = np.full(K, bos_id, dtype=np.int64)
    for _ in range(max_len):
        logits, state, attn = step(prev, state)
        lp = log_softmax(logits)                                   # (K, V)
        V = lp.shape[1]
        lp[finished] = -np.inf
        lp[finished, pad_id] = 0.0
        cand = (scores[:, None] + lp).reshape(-1)                  # (K*V,)
        top = np.argpartition(-cand, K - 1)[:K] if K < cand.size else np.arange(cand.size)
        idx = top[np.argsort(-cand[top], kind="stable")]
        scores = cand[idx]
        rows, tok = idx // V, idx % V
        state = tuple(s[:, rows] for s in state)
        was_finished = finished[rows]
        tokens = np.concatenate([tokens[rows], tok[:, None]], axis=1)
        if attn is not None:
            a = (attn[rows] * (~was_finished)[:, None])[:, None]  # (K, 1, S)
            attns = a if attns is None else np.concatenate([attns[rows], a], axis=1)
        lengths = lengths[rows] + (~was_finished)
        finished = was_finished | (tok == eos_id)
        prev = tok.astype(np.int64)
        if finished.all():
            break
    ranked = length_normalised(scores, lengths, alpha)
    best = int(np.argmax(ranked))
    n = int(lengths[best])
    attention = attns[best, :n] if attns is not None else np.zeros((n, 0))
    return Hypothesis([int(t) for t in tokens[best, :n]], float(scores[best]), attention, float(ranked[best]))


def greedy_tokens(step: StepFn, state: State, bos_id: int, eos_id: int, max_len: int) -> list[int]:
    """Greedy decoding with one row: the beam-1 reference the tests compare against."""
    prev = np.array([bos_id], dtype=np.int64)
    out: list[int] = []
    for _ in range(max_len):
        logits, state, _ = step(prev, state)
        tok = int(np.argmax(logits[0]))
        out.append(tok)
        if tok == eos_id:
            break
        prev = np.array([tok], dtype=np.int64)
    return out


def pad_batch(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Sequences -> (tokens (B, T) int64 padded with ``pad_id``, lengths (B,) int64)."""
    T = max(len(s) for s in seqs)
    out = np.full((len(seqs), T), pad_id, dtype=np.int64)
    for i, s in enumerate(seqs):
        out[i, :len(s)] = s
    return out, np.asarray([len(s) for s in seqs], dtype=np.int64)
