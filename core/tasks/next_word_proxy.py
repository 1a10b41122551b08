"""Next-word top-1 / top-3 accuracy of a subword language model on a held-out stream.

Definition (documented in RESULTS.md): at sampled positions of the stream where a new word
starts (the next piece begins with "▁" followed by a letter), the model reads the previous
``context`` pieces from a zero state; its k most likely *word-initial* pieces are each
extended greedily (argmax) while the argmax piece continues the word (no leading "▁",
starts with a letter, digit or apostrophe), for at most ``max_pieces`` pieces. A hit at k
when one of the first k candidate words equals the true next word (case-sensitive).
This approximates what the edge runner offers after a space; the runner's own prefix search
(edge/) is measured separately by ``rnnkit eval-suggest``.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from rnnkit.edge.words import SPACE as WORD_START


def _continues(piece: str) -> bool:
    """A piece that extends the current word (no leading space, word-ish first character)."""
    return bool(piece) and not piece.startswith(WORD_START) and not piece.startswith("<") and (
        piece[0].isalnum() or piece[0] == "'")


def _starts_word(piece: str) -> bool:
    return len(piece) > 1 and piece.startswith(WORD_START) and piece[1].isalpha()


def piece_classes(tokenizer) -> tuple[list[str], Tensor, Tensor]:
    """(pieces, is_word_start (V,) bool, continues (V,) bool)."""
    pieces = [tokenizer.id_to_piece(i) for i in range(tokenizer.vocab_size)]
    starts = torch.tensor([_starts_word(p) for p in pieces])
    cont = torch.tensor([_continues(p) for p in pieces])
    return pieces, starts, cont


def true_word(ids: Sequence[int], pos: int, pieces: Sequence[str], max_pieces: int) -> str:
    """The word that starts at ``ids[pos]`` (its pieces up to the next non-continuing one)."""
    word = pieces[ids[pos]][1:]
    for j in range(pos + 1, min(len(ids), pos + max_pieces)):
        if not _continues(pieces[ids[j]]):
            break
        word += pieces[ids[j]]
    return word


@torch.no_grad()
def next_word_accuracy(model, stream: Tensor, tokenizer, positions: int = 1000, context: int = 32,
                       k: int = 3, max_pieces: int = 4, batch: int = 256) -> dict[str, float]:
    """{"top1", "top3" (top-k for k=3), "n"} over up to ``positions`` evenly spaced word starts."""
    pieces, starts, cont = piece_classes(tokenizer)
    ids = stream.tolist()
    context = max(1, min(context, len(ids) // 4))  # short held-out files: less context, still scored
    eligible = [p for p in range(context, len(ids)) if starts[ids[p]]]
    if not eligible or positions <= 0:
        return {"top1": float("nan"), "top3": float("nan"), "n": 0}
    stride = max(1, len(eligible) // positions)
    chosen = eligible[::stride][:positions]
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    hits1 = hits_k = 0
    for b in range(0, len(chosen), batch):
        pos = chosen[b:b + batch]
        ctx = torch.tensor([ids[p - context:p] for p in pos], device=device)  # (M, C)
        logits, state = model(ctx)
        first = logits[:, -1].float().masked_fill(~starts.to(device), float("-inf"))
        cand = first.topk(k, dim=-1).indices  # (M, k) word-initial pieces
        words = [[pieces[c][1:] for c in row] for row in cand.tolist()]
        M = len(pos)
        state = tuple(s.repeat_interleave(k, dim=1) for s in state)  # (L, M*k, H)
        alive = [True] * (M * k)
        tok = cand.reshape(-1, 1)
        for _ in range(max_pieces - 1):
            logits, state = model(tok, state)
            nxt = logits[:, -1].argmax(-1)
            tok = nxt.view(-1, 1)
            for r, t in enumerate(nxt.tolist()):
                if alive[r] and cont[t]:
                    words[r // k][r % k] += pieces[t]
                else:
                    alive[r] = False
            if not any(alive):
                break
        for p, cands in zip(pos, words):
            target = true_word(ids, p, pieces, max_pieces + 4)
            hits1 += cands[0] == target
            hits_k += target in cands
    model.train(was_training)
    n = len(chosen)
    return {"top1": hits1 / n, "top3": hits_k / n, "n": n}
