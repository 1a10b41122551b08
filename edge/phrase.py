"""Smart Compose: a beam search for a phrase of up to N words, offered only when confident.

From a starting point (the context, or the context plus the best completion of the word
being typed) the beam extends pieces until the phrase holds ``max_words`` words. A phrase
is finished at a word boundary (the next piece is a space, punctuation or end-of-sequence)
and never continues past the end of its sentence (".", "!", "?": what follows is another
thought, almost never exactly what the user writes). Its confidence is its probability

    P(phrase) = P(pieces, then a word boundary | context),

the chance that the text goes on with exactly these words: for a calibrated model, about a
share ``min_prob`` or more of the phrases offered at a bar ``min_prob`` are exactly right
(Chen et al. 2019, "Gmail Smart Compose": trigger only above a confidence threshold, and
measure the trigger rate against the exact-match rate). On everyday_en valid this bar was
more precise than the mean log-probability per token at trigger rates from 1 % up (+6
points at 6 %: a long phrase of confident tokens is still often wrong as a whole; below 1 %
the counts are too small to tell). The longest finished phrase of at least ``min_words`` words
that reaches the bar is offered; otherwise nothing is. A phrase's probability only falls as
it grows, so a partial phrase below the bar is dropped and the search stops when none is
left: an exact cut, where the old rule gave up by a heuristic margin.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .pieces import SENTENCE_END, SentencePieceVocab
from .search import Rows

# The default bar: about half of the phrases offered are exactly right. Chosen on everyday_en valid
# (80,000 characters, every 2nd word start, suggest-en; docs/results/suggest-en-tune-phrase.json): P >= 0.35
# triggers at 1.2 % of word starts, 50 % exact (0.3: 1.6 %, 46 %; 0.2: 3.6 %, 34 %; 0.15: 5.7 %, 29 %).
MIN_PROB = 0.35


@dataclass(frozen=True)
class PhraseHit:
    text: str                # the phrase, without a leading space
    logp: float              # log P(phrase, then a word boundary | context): the trigger criterion
    words: int
    tokens: int              # pieces scored, the word boundary included

    @property
    def prob(self) -> float:
        return math.exp(self.logp)


def search_phrase(vocab: SentencePieceVocab, rows: Rows, start_ids: tuple[int, ...] = (),
                  start_surface: bytes = b"", start_logp: float = 0.0, max_words: int = 3,
                  min_words: int = 2, beam: int = 4, min_prob: float = 0.0,
                  max_pieces: int | None = None) -> dict[int, PhraseHit]:
    """The best finished phrase of each length (in words) continuing ``start_ids``.

    ``start_ids`` are pieces after the context that spell ``start_surface`` (a completed
    word, ``b" word"``) with log-probability ``start_logp`` (its word boundary included);
    with no start the phrase begins with the next word (its first piece starts with a space:
    the user has typed one). ``min_prob``: the lowest bar the caller will apply; phrases
    below it are not searched for.
    """
    min_logp = _log_bar(min_prob)
    max_pieces = max_pieces or 2 * max_words + 1
    n0 = start_surface.count(b" ")
    any_piece, cont = np.flatnonzero(~vocab.special), np.flatnonzero(vocab.word_cont)
    # A piece that ends the sentence before min_words words can never finish a phrase: such a
    # dead end is not let into the beam (it filled it: "Thank you so much for" -> "you!", "me!", ...).
    dead_any = vocab.ends_sentence                            # any of them, a word short or more
    dead_glued = vocab.ends_sentence & ~vocab.starts_space    # one word short: those that add no word
    n_skip = int(vocab.special.sum()) + int(dead_any.sum())
    after_word = np.flatnonzero(vocab.ends_word & ~vocab.special)
    new_word = np.flatnonzero(vocab.word_start)
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
                hit = PhraseHit(_text(surf), end_lp, words, n_tok)
                if hit.text and end_lp >= min_logp and (words not in best or end_lp > best[words].logp):
                    best[words] = hit
            if depth == max_pieces or (extended and surf.rstrip()[-1:] in SENTENCE_END):
                continue  # a phrase ends with its sentence: what follows is another thought
            if not extended and start_ids:
                allowed = after_word  # the completed word ends here: a space or punctuation follows
                # start_logp holds P(boundary) already, and the piece chosen here is that boundary
                lp -= row.end(vocab)
            elif not extended:
                allowed = new_word    # a space was typed: the phrase's first piece starts a word
            elif words >= max_words:
                allowed = cont        # only finish the last word
            else:
                allowed = any_piece
            dead = dead_any if words + 1 < min_words else dead_glued if words < min_words else None
            if allowed is any_piece:  # skip gathering ~V values: select on the row, then drop specials
                pick = min(beam + n_skip, row.lp.size)
                top = np.argpartition(-row.lp, pick - 1)[:pick]
                top = top[~(vocab.special[top] | dead[top])] if dead is not None else top[~vocab.special[top]]
                top = top[np.argpartition(-row.lp[top], min(beam, top.size) - 1)[:beam]]
            else:
                if dead is not None:
                    allowed = allowed[~dead[allowed]]
                if not allowed.size:
                    continue
                top = allowed[np.argpartition(-row.lp[allowed], min(beam, allowed.size) - 1)[:beam]]
            for t in top:
                t = int(t)
                s, t_lp = vocab.surface[t], lp + float(row.lp[t])
                if t_lp >= min_logp:  # below the bar now, below it for good: probabilities only fall
                    cand.append((ids + (t,), surf + s, t_lp, words + (s[:1] == b" ")))
        if not cand:
            break
        cand.sort(key=lambda h: -h[2])
        beam_hyps = cand[:beam]
    return best


def pick_phrase(best: dict[int, PhraseHit], min_prob: float) -> PhraseHit | None:
    """The longest phrase whose probability reaches ``min_prob`` (the most probable among equals)."""
    offered = above(best, min_prob)
    return max(offered.values(), key=lambda h: (h.words, h.logp)) if offered else None


def above(best: dict[int, PhraseHit], min_prob: float) -> dict[int, PhraseHit]:
    """The phrases of ``best`` whose probability reaches ``min_prob`` (the test the search cuts by)."""
    min_logp = _log_bar(min_prob)
    return {n: h for n, h in best.items() if h.logp >= min_logp}


def _log_bar(min_prob: float) -> float:
    if not 0.0 <= min_prob <= 1.0:  # (NaN too)
        raise ValueError(f"a phrase's bar is a probability, from 0 to 1, got {min_prob!r}")
    return math.log(min_prob) if min_prob > 0 else -math.inf


def _text(surface: bytes) -> str:
    try:
        return surface.decode("utf-8").strip()
    except UnicodeDecodeError:
        return ""
