"""Prefix-constrained word search over subword pieces.

From the state after the context, find the k most likely whole *words* whose bytes start
with what was typed: a beam over pieces, the first one starting with a space, the rest
continuing the word, each extension allowed only if it agrees with the typed bytes. A word
is scored when it is complete, i.e. times the probability that the next piece ends it
(a space, punctuation or end-of-sequence):

    log P(word | context) = sum_i log P(piece_i | ...) + log P(next piece ends the word)

Segmentations of the same word are summed. A partial word's log-probability bounds every
word that extends it, so the search stops as soon as the k-th word found beats the best
partial one left (or after ``max_pieces`` pieces).

``rows(ids_list)`` is the model: for each tuple of piece ids after the context it returns the
next-piece log-probabilities (a ``Dist``). The session supplies it with a cache, so a keystroke
that extends the typed prefix reuses the rows the previous keystroke computed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from .pieces import SentencePieceVocab

Rows = Callable[[Sequence[tuple[int, ...]]], list["Dist"]]


@dataclass(frozen=True)
class WordHit:
    text: str                # the whole word, without the leading space
    logp: float              # log P(word, then a word boundary | context)
    ids: tuple[int, ...]     # the most likely segmentation's piece ids


class Dist:
    """Next-piece log-probabilities (V,) float32, with log P(the word ends here) computed once."""

    __slots__ = ("lp", "_end")

    def __init__(self, lp: np.ndarray, end: float | None = None):
        self.lp = lp
        self._end = end

    def end(self, vocab: SentencePieceVocab) -> float:
        if self._end is None:
            self._end = logsumexp(self.lp[vocab.ends_word])
        return self._end


def log_softmax(logits: np.ndarray, dtype=np.float32) -> np.ndarray:
    """Over the last axis: (..., V) -> (..., V). float32 is enough to rank; pass float64 where
    many of these are summed (beam scores, perplexity). Rows of all -inf stay -inf, not NaN."""
    x = np.asarray(logits, dtype=dtype)
    m = x.max(axis=-1, keepdims=True)
    x = x - np.where(np.isfinite(m), m, 0.0)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def log_softmax_end(logits: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Log-probs (B, V) float32 and log P(next piece ends a word) (B,), from one exp pass.

    ``ends`` is the (V,) float32 0/1 mask of word-ending pieces; a matrix-vector product sums
    their probabilities (boolean-indexing a (B, V) array is several times slower). A float32
    ``logits`` array is overwritten with the result: this runs after every model call, and
    skipping two (B, V) temporaries is a measurable part of a keystroke.
    """
    x = np.asarray(logits, dtype=np.float32)
    x -= x.max(axis=-1, keepdims=True)
    e = np.exp(x)
    log_z = np.log(e.sum(axis=-1, keepdims=True))
    with np.errstate(divide="ignore"):
        end = np.log((e @ ends).astype(np.float64)) - log_z[:, 0]
    x -= log_z
    return x, end


def logsumexp(x: np.ndarray) -> float:
    if x.size == 0:
        return float("-inf")
    m = float(x.max())
    return m + float(np.log(np.exp(x - m).sum(dtype=np.float64))) if np.isfinite(m) else m


def search_words(vocab: SentencePieceVocab, rows: Rows, typed: bytes, k: int = 3,
                 beam: int = 8, max_pieces: int = 4, include_typed: bool = False,
                 floor: Callable[[float], float] | None = None, pruned: list | None = None) -> list[WordHit]:
    """The ``k`` most likely words whose surface starts with ``typed``.

    ``typed`` is a space followed by the partial word's UTF-8 bytes (just ``b" "`` for the
    next word). A hit must add at least one byte to what was typed, unless ``include_typed``:
    then the typed word itself, as a complete word, competes too. ``floor(best)``: the log-prob
    below which, given the best word found so far, no word is wanted; a partial word below it is
    not read further (each row read is a model call's worth of work); ``pruned`` (a list) gets
    the log of the probability mass the floor left unread (what the words not found share).
    """
    assert typed[:1] == b" ", typed
    frontier: list[tuple[tuple[int, ...], bytes, float]] = [((), b"", 0.0)]
    found: dict[bytes, list] = {}  # surface -> [logp summed over segmentations, best logp, ids]

    for depth in range(max_pieces + 1):
        cand_ids, cand_lp, cand_parent = [], [], []
        for j, ((ids, surf, lp), row) in enumerate(zip(frontier, rows([ids for ids, _, _ in frontier]))):
            if ids and (len(surf) > len(typed) or (include_typed and len(surf) == len(typed) > 1)):
                word_lp = lp + row.end(vocab)
                hit = found.get(surf)
                if hit is None:
                    found[surf] = [word_lp, word_lp, ids]
                else:
                    hit[0] = float(np.logaddexp(hit[0], word_lp))
                    if word_lp > hit[1]:
                        hit[1], hit[2] = word_lp, ids
            if depth == max_pieces:
                continue
            allowed = vocab.matching(typed[len(surf):], first=not ids)
            if allowed.size:
                sub = row.lp[allowed]
                if allowed.size > beam:  # only a parent's own best `beam` can make the beam
                    part = np.argpartition(-sub, beam - 1)[:beam]
                    allowed, sub = allowed[part], sub[part]
                cand_ids.append(allowed)
                cand_lp.append(lp + sub)
                cand_parent.append(np.full(allowed.size, j))
        if not cand_ids:
            break
        ids_all, lp_all, par_all = np.concatenate(cand_ids), np.concatenate(cand_lp), np.concatenate(cand_parent)
        keep = ids_all.size if ids_all.size <= beam else beam
        top = np.argpartition(-lp_all, keep - 1)[:keep] if keep < ids_all.size else np.arange(ids_all.size)
        top = top[np.argsort(-lp_all[top], kind="stable")]
        top = top[np.isfinite(lp_all[top])]
        if found:
            kth = fl = -np.inf
            if len(found) >= k:  # a partial word bounds its extensions: those below the k-th word cannot make the top k
                kth = sorted((h[0] for h in found.values()), reverse=True)[k - 1]
            if floor is not None:  # ... nor those below the floor
                fl = floor(max(h[0] for h in found.values()))
            if pruned is not None and fl > kth:
                unread = lp_all[top][(lp_all[top] <= fl) & (lp_all[top] > kth)]
                if unread.size:
                    pruned.append(logsumexp(unread))
            top = top[lp_all[top] > max(kth, fl)]
        if top.size == 0:
            break
        frontier = [(frontier[par_all[t]][0] + (int(ids_all[t]),),
                     frontier[par_all[t]][1] + vocab.surface[ids_all[t]], float(lp_all[t])) for t in top]
    hits = []
    for surf, (lp, _, ids) in found.items():
        try:
            text = surf[1:].decode("utf-8")  # byte pieces may stop inside a character
        except UnicodeDecodeError:
            continue
        hits.append(WordHit(text, lp, ids))
    hits.sort(key=lambda h: (-h.logp, h.text))
    return hits[:k]
