"""Viterbi decoding of a linear-chain CRF, torch-free: the one decoder for training-time scores,
``rnnkit eval`` and the device.

A tagger trained with a CRF output layer (``TaggerConfig.crf``) exports its emission scores as the
``tag`` graph's logits; its transition scores travel in the bundle's manifest (``manifest["crf"]``:
``transitions[i][j]`` scores tag i followed by tag j, ``start`` / ``end`` the first and last tag).
The best tag sequence maximises start + sum of emissions + sum of transitions + end.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np


def viterbi(emissions: np.ndarray, transitions: np.ndarray, start: np.ndarray, end: np.ndarray) -> list[int]:
    """Best tag ids for one sentence: ``emissions`` (T, K), ``transitions`` (K, K), ``start`` / ``end`` (K,)."""
    T = emissions.shape[0]
    if T == 0:
        return []
    score = start + emissions[0]  # (K,) best score of a path ending in each tag
    back = np.zeros((T, emissions.shape[1]), dtype=np.int64)
    for t in range(1, T):
        cand = score[:, None] + transitions  # (from, to)
        back[t] = cand.argmax(axis=0)
        score = cand.max(axis=0) + emissions[t]
    best = [int((score + end).argmax())]
    for t in range(T - 1, 0, -1):
        best.append(int(back[t, best[-1]]))
    return best[::-1]


def tables(record: Mapping) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(transitions, start, end) as float64 arrays from a manifest's ``crf`` record, checked."""
    try:
        trans = np.asarray(record["transitions"], dtype=np.float64)
        start, end = (np.asarray(record[k], dtype=np.float64) for k in ("start", "end"))
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"crf record: {type(e).__name__}: {str(e)[:80]}") from None
    K = start.shape[0] if start.ndim == 1 else -1
    if trans.shape != (K, K) or end.shape != (K,) or not np.isfinite(trans).all():
        raise ValueError(f"crf record: transitions {trans.shape}, start {start.shape}, end {end.shape} do not fit")
    return trans, start, end


def decode_batch(emissions: np.ndarray, lengths: Sequence[int], crf: tuple | None) -> list[list[int]]:
    """Tag ids for each sentence of a padded batch (B, T, K): Viterbi with ``crf`` tables, else argmax."""
    if crf is None:
        return [emissions[b, :n].argmax(-1).tolist() for b, n in enumerate(lengths)]
    return [viterbi(emissions[b, :n].astype(np.float64), *crf) for b, n in enumerate(lengths)]
