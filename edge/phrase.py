"""Smart Compose: a beam search for a phrase of up to N words, offered only when confident.

From a starting point (the context, or the context plus the best completion of the word
being typed) the beam extends pieces until the phrase holds ``max_words`` words. A phrase
is finished at a word boundary (the next piece is a space, punctuation or end-of-sequence),
never continues past the end of its sentence (".", "!", "?": what follows is another thought,
almost never exactly what the user writes), and is scored by its length-normalised log-probability

    score = (log P(pieces) + log P(boundary)) / (number of pieces + 1),

the mean log-probability per token. The longest finished phrase of at least ``min_words``
words whose score reaches ``threshold`` is offered; otherwise nothing is (Chen et al. 2019,
"Gmail Smart Compose": trigger only above a confidence threshold, and measure the trigger
rate against the exact-match rate). The search gives up once its best partial phrase's mean
log-probability is ``GIVE_UP_MARGIN`` below the threshold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .pieces import SentencePieceVocab
from .search import Rows

GIVE_UP_MARGIN = 1.5  # nats per token below the threshold
SENTENCE_END = (b".", b"!", b"?")


@dataclass(frozen=True)
class PhraseHit:
    text: str                # the phrase, without a leading space
    logp: float              # log P(phrase, then a word boundary | context)
    score: float             # mean log-probability per token (the trigger criterion)
    words: int
    tokens: int              # pieces scored, the word boundary included


def search_phrase(vocab: SentencePieceVocab, rows: Rows, start_ids: tuple[int, ...] = (),
                  start_surface: bytes = b"", start_logp: float = 0.0, max_words: int = 3,
                  min_words: int = 2, beam: int = 4, give_up_below: float = -math.inf,
                  max_pieces: int | None = None) -> dict[int, PhraseHit]:
    """The best finished phrase of each length (in words) continuing ``start_ids``.

    ``start_ids`` are pieces after the context that spell ``start_surface`` (a completed
    word, ``b" word"``) with log-probability ``start_logp`` (its word boundary included);
    with no start the phrase begins with the next word. ``give_up_below``: the threshold
    the caller will apply (see ``GIVE_UP_MARGIN``).
    """
    max_pieces = max_pieces or 2 * max_words + 1
    n0 = start_surface.count(b" ")
    any_piece, cont = np.flatnonzero(~vocab.special), np.flatnonzero(vocab.word_cont)
    n_special = int(vocab.special.sum())
    after_word = np.flatnonzero(vocab.ends_word & ~vocab.special)
    # (ids, surface, logp, words so far); a started word counts once it has a piece.
    beam_hyps = [(tuple(start_ids), start_surface, start_logp, n0)]
    best: dict[int, PhraseHit] = {}
    for depth in range(max_pieces + 1):
        prob_rows = rows([h[0] for h in beam_hyps])
        cand = []
        for (ids, surf, lp, words), row in zip(beam_hyps, prob_rows):
            extended = len(ids) > len(start_ids)
            if words >= min_words and extended:
                end_lp = lp + row.end(vocab)
                n_tok = len(ids) + 1
                hit = PhraseHit(_text(surf), end_lp, end_lp / n_tok, words, n_tok)
                if hit.text and (words not in best or hit.score > best[words].score):
                    best[words] = hit
            if depth == max_pieces or (extended and surf.rstrip()[-1:] in SENTENCE_END):
                continue  # a phrase ends with its sentence: what follows is another thought
            if not extended and start_ids:
                allowed = after_word  # the completed word ends here: a space or punctuation follows
            elif words >= max_words:
                allowed = cont        # only finish the last word
            else:
                allowed = any_piece
            if allowed is any_piece:  # skip gathering ~V values: select on the row, then drop specials
                pick = min(beam + n_special, row.lp.size)
                top = np.argpartition(-row.lp, pick - 1)[:pick]
                top = top[~vocab.special[top]]
                top = top[np.argpartition(-row.lp[top], min(beam, top.size) - 1)[:beam]]
            else:
                top = allowed[np.argpartition(-row.lp[allowed], min(beam, allowed.size) - 1)[:beam]]
            for t in top:
                t = int(t)
                s = vocab.surface[t]
                cand.append((ids + (t,), surf + s, lp + float(row.lp[t]), words + (s[:1] == b" ")))
        if not cand:
            break
        cand.sort(key=lambda h: -h[2])
        beam_hyps = cand[:beam]
        # Give up early when even the best running mean is far below the bar (a heuristic:
        # later tokens could raise the mean, but a phrase this unsure at its start is rarely
        # worth showing, and each depth costs one model call).
        n = len(beam_hyps[0][0])
        if n >= 2 and beam_hyps[0][2] / n < give_up_below - GIVE_UP_MARGIN:
            break
    return best


def pick_phrase(best: dict[int, PhraseHit], threshold: float) -> PhraseHit | None:
    """The longest phrase whose score reaches ``threshold`` (the best-scored among equals)."""
    offered = [h for h in best.values() if h.score >= threshold]
    return max(offered, key=lambda h: (h.words, h.score)) if offered else None


def _text(surface: bytes) -> str:
    try:
        return surface.decode("utf-8").strip()
    except UnicodeDecodeError:
        return ""
