"""Entity-level scores of tag sequences, conlleval / seqeval compatible (BIO1, BIO2 and IOBES).

An entity counts only when its type and both boundaries match exactly. ``chunks`` is also how
``rnnkit predict`` turns a tagger's tags into entities (edge/predict_tag.py). Scores are in percent.
"""

from __future__ import annotations

from typing import Sequence


def split_tag(tag: str) -> tuple[str, str]:
    """(prefix, type) of a tag: ``B-PER`` -> ("B", "PER"), ``O`` -> ("O", ""); a bare type is ("I", type),
    as conlleval reads it."""
    if tag in ("O", ""):
        return "O", ""
    if len(tag) > 1 and tag[1] in "-_" and tag[0] in "BIES":
        return tag[0], tag[2:]
    return "I", tag


def _ends(prev: str, prev_type: str, cur: str, cur_type: str) -> bool:
    """Did the chunk that ``prev`` belongs to end before ``cur``? (conlleval's endOfChunk)"""
    if prev in ("E", "S"):
        return True
    if prev in ("B", "I") and cur in ("B", "S", "O"):
        return True
    return prev != "O" and prev_type != cur_type


def _starts(prev: str, prev_type: str, cur: str, cur_type: str) -> bool:
    """Does a chunk start at ``cur``? (conlleval's startOfChunk; I after O starts one, BIO1-style)"""
    if cur in ("B", "S"):
        return True
    if cur in ("I", "E") and prev in ("O", "E", "S"):
        return True
    return cur != "O" and prev_type != cur_type


def chunks(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """Entities of one sentence as (type, first, last) token indices, inclusive."""
    out: list[tuple[str, int, int]] = []
    prev, prev_type, begin = "O", "", -1
    for i, tag in enumerate(list(tags) + ["O"]):
        cur, cur_type = split_tag(tag)
        if begin >= 0 and _ends(prev, prev_type, cur, cur_type):
            out.append((prev_type, begin, i - 1))
            begin = -1
        if _starts(prev, prev_type, cur, cur_type):
            begin = i
        prev, prev_type = cur, cur_type
    return out


def chunk_f1(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> dict[str, float]:
    """Micro entity precision / recall / F1 (in %) over sentences, plus F1 per entity type."""
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold sentences but {len(pred)} predicted")
    n_gold = n_pred = n_ok = 0
    per: dict[str, list[int]] = {}  # type -> [gold, pred, correct]
    for s, (g, p) in enumerate(zip(gold, pred)):
        if len(g) != len(p):
            raise ValueError(f"sentence {s}: {len(g)} gold tags but {len(p)} predicted")
        gc, pc = set(chunks(g)), set(chunks(p))
        n_gold, n_pred, n_ok = n_gold + len(gc), n_pred + len(pc), n_ok + len(gc & pc)
        for c in gc:
            per.setdefault(c[0], [0, 0, 0])[0] += 1
        for c in pc:
            per.setdefault(c[0], [0, 0, 0])[1] += 1
        for c in gc & pc:
            per[c[0]][2] += 1

    def f1(g: int, p: int, ok: int) -> tuple[float, float, float]:
        prec = ok / p if p else 0.0
        rec = ok / g if g else 0.0
        return 100 * prec, 100 * rec, (200 * prec * rec / (prec + rec) if prec + rec else 0.0)

    prec, rec, f = f1(n_gold, n_pred, n_ok)
    out = {"precision": prec, "recall": rec, "f1": f}
    out.update({f"f1_{t}": f1(*v)[2] for t, v in sorted(per.items())})
    return out


def tagger_scores(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> dict[str, float]:
    """``chunk_f1`` plus token accuracy (in %): the tagger task's figures on one split."""
    out = chunk_f1(gold, pred)
    n_tok = sum(len(g) for g in gold)
    out["token_acc"] = 100.0 * sum(a == b for g, p in zip(gold, pred) for a, b in zip(g, p)) / max(1, n_tok)
    return out
