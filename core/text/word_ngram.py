"""Build the suggester's background word n-gram (``word_ngram.npz``, read by edge/word_ngram.py).

A Kneser-Ney trigram over the training text's *words* (``words_of``: punctuation dropped, one
line a message, ``<s> <s>`` before its first word), the same contexts the typing session asks
about. The device mixes it with the LSTM's word probabilities: an LSTM that read the corpus for
thirty passes still forgets some of what is frequent in it ("see you tomorrow", "let me know").

Stored in back-off form, pruned and one byte a probability (its log in steps of 1/16 nat) to
fit a phone bundle: every kept n-gram holds its full
interpolated probability ``P(w | u v)`` (``P(w | v)``), every context its back-off weight
``gamma``, so a pruned n-gram scores ``gamma * P_lower`` -- what interpolated Kneser-Ney gives
it, less its own small discounted count. Words seen fewer than ``min_word_count`` times are
left out (their n-grams too).

    python -m rnnkit.core.text.word_ngram RUN_DIR TRAIN_TEXT   # for a run trained before this existed
"""

from __future__ import annotations

import io
import sys
from collections import Counter
from pathlib import Path
from typing import Iterable

import numpy as np

from rnnkit.core.atomic import atomic_write_bytes
from rnnkit.core.text.kneser_ney import BOS, EOS, KneserNeyTrigram
from rnnkit.edge.lexicon import MAX_WORD_CHARS
from rnnkit.edge.word_ngram import FILE_NAME, FORMAT, LP_STEP
from rnnkit.edge.words import words_of


def word_trigrams(lines: Iterable[str]) -> Counter:
    """Trigram counts over each line's words, ``<s> <s>`` before and ``</s>`` after."""
    grams: Counter = Counter()
    for line in lines:
        ws = [w for w in words_of(line) if len(w) <= MAX_WORD_CHARS]
        if not ws:
            continue
        seq = [BOS, BOS] + ws + [EOS]
        grams.update(zip(seq, seq[1:], seq[2:]))
    return grams


def build_word_ngram(lines: Iterable[str], min_word_count: int = 2, min_bigram: int = 2,
                     min_trigram: int = 2) -> dict[str, np.ndarray]:
    """The arrays of ``word_ngram.npz``. ``min_bigram`` / ``min_trigram``: the fewest times
    (distinct left words / raw count) an n-gram must have been seen to be kept."""
    trigrams = word_trigrams(lines)
    if not trigrams:
        raise ValueError("the n-gram's training text has no words")
    kn = KneserNeyTrigram(trigrams)
    uni = Counter()
    for (u, v, w), c in trigrams.items():
        uni[w] += c
    words = sorted(w for w, c in uni.items() if c >= min_word_count and w != EOS)
    vocab = [BOS, EOS] + words  # ids 0 and 1: the context of a line start, the end of a message
    ids = {w: i for i, w in enumerate(vocab)}
    V = len(vocab)
    p1 = np.array([0.0] + [kn.p1(w) for w in vocab[1:]], dtype=np.float32)

    # bigrams: (v, w) -> P(w | v), v's back-off weight
    l2 = kn.l2
    bi_rows, bi_gamma = [], np.ones(V, dtype=np.float32)
    for (v,), fol in l2.followers.items():
        if v not in ids:
            continue
        bi_gamma[ids[v]] = l2.gamma[(v,)]
        for w, c in fol.items():
            if c >= min_bigram and w in ids:
                bi_rows.append((ids[v], ids[w], kn.p2(w, v)))
    # trigrams: (u, v, w) -> P(w | u v), (u, v)'s back-off weight
    l3 = kn.l3
    tri_rows, ctx_gamma = [], {}
    for (u, v), fol in l3.followers.items():
        if u not in ids or v not in ids:
            continue
        kept = [(ids[w], kn.p3(w, u, v)) for w, c in fol.items() if c >= min_trigram and w in ids]
        if kept:
            ctx_gamma[(ids[u], ids[v])] = l3.gamma[(u, v)]
            tri_rows += [(ids[u], ids[v], w, p) for w, p in kept]
    bi = np.array(sorted(bi_rows), dtype=np.float64).reshape(-1, 3)
    tri = np.array(sorted(tri_rows), dtype=np.float64).reshape(-1, 4)
    ctx = np.array(sorted(ctx_gamma), dtype=np.int64).reshape(-1, 2)
    tri_ctx = tri[:, :2].astype(np.int64)
    # kept trigrams per context, in the contexts' (u, v) order (both are sorted the same way)
    ctx_n = np.unique(tri_ctx[:, 0] * V + tri_ctx[:, 1], return_counts=True)[1]
    wid = np.uint16 if V <= 1 << 16 else np.uint32
    return {"format": np.array(FORMAT, dtype=np.int32), "lp_step": np.array(LP_STEP, dtype=np.float32),
            "words": np.frombuffer("\n".join(vocab).encode("utf-8"), dtype=np.uint8),
            "p1": quantize(p1),
            "bi_n": _counts(np.bincount(bi[:, 0].astype(np.int64), minlength=V)),
            "bi_w": bi[:, 1].astype(wid), "bi_p": quantize(bi[:, 2]), "bi_gamma": quantize(bi_gamma),
            "ctx_n": _counts(np.bincount(ctx[:, 0], minlength=V)), "ctx_v": ctx[:, 1].astype(wid),
            "ctx_gamma": quantize(np.array([ctx_gamma[(int(u), int(v))] for u, v in ctx])),
            "tri_n": _counts(ctx_n), "tri_w": tri[:, 2].astype(wid), "tri_p": quantize(tri[:, 3])}


def quantize(p: np.ndarray) -> np.ndarray:
    """Probabilities as one byte each: q = round(-ln p / LP_STEP), 0..255 (p >= e^-16)."""
    q = np.rint(-np.log(np.maximum(np.asarray(p, dtype=np.float64), 1e-300)) / LP_STEP)
    return np.clip(q, 0, 255).astype(np.uint8)


def _counts(n: np.ndarray) -> np.ndarray:
    return n.astype(np.uint16 if n.max(initial=0) < 1 << 16 else np.uint32)


def write_word_ngram(path: str | Path, arrays: dict[str, np.ndarray]) -> Path:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return atomic_write_bytes(path, buf.getvalue())


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    run_dir, text = Path(argv[0]), Path(argv[1])
    with open(text, encoding="utf-8") as f:
        arrays = build_word_ngram(f)
    out = write_word_ngram(run_dir / FILE_NAME, arrays)
    print(f"wrote {out}: {len(arrays['p1']):,} words, {len(arrays['bi_w']):,} bigrams, "
          f"{len(arrays['tri_w']):,} trigrams, {out.stat().st_size / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
