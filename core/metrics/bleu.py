"""Corpus BLEU and chrF as sacreBLEU computes them with its defaults, torch- and sacrebleu-free.

BLEU: ``13a`` tokenisation (mteval-v13a, as WMT), n-grams up to 4, clipped counts summed over
the corpus, brevity penalty from the summed lengths, ``exp`` smoothing (sacreBLEU's corpus
default; it only acts when some order has no match at all). chrF: character n-grams up to 6,
whitespace removed, beta 2, precision and recall averaged over the orders from the corpus sums.
Scores are 0..100. tests/test_metrics_bleu.py checks both against sacrebleu on a few hundred pairs.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Sequence

MAX_NGRAM_ORDER = 4
CHAR_ORDER = 6
BETA = 2

# mteval-v13a's regular expressions (sacrebleu.tokenizers.tokenizer_re.TokenizerRegexp)
_13A = [
    (re.compile(r"([\{-\~\[-\` -\&\(-\+\:-\@\/])"), r" \1 "),  # punctuation and symbols
    (re.compile(r"([^0-9])([\.,])"), r"\1 \2 "),               # period / comma unless after a digit
    (re.compile(r"([\.,])([^0-9])"), r" \1 \2"),               # period / comma unless before a digit
    (re.compile(r"([0-9])(-)"), r"\1 \2 "),                    # a dash after a digit
]


def tokenize_13a(line: str) -> list[str]:
    """A segment's tokens under sacreBLEU's default ``13a`` tokeniser."""
    line = line.replace("<skipped>", "").replace("-\n", "").replace("\n", " ")
    if "&" in line:
        line = line.replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")
    line = f" {line} "
    for pattern, repl in _13A:
        line = pattern.sub(repl, line)
    return line.split()


def _ngrams(tokens: Sequence[str], max_order: int) -> Counter:
    return Counter(tuple(tokens[i:i + n]) for n in range(1, max_order + 1) for i in range(len(tokens) - n + 1))


def _check(hyps: Sequence[str], refs: Sequence[str]) -> None:
    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses but {len(refs)} references")
    if not all(isinstance(s, str) for s in [*hyps, *refs]):
        raise TypeError("hypotheses and references must be strings")


def bleu_stats(hyp: str, ref: str) -> list[int]:
    """[hyp_len, ref_len, correct_1..4, total_1..4] of one segment (one reference)."""
    h, r = tokenize_13a(hyp.rstrip()), tokenize_13a(ref.rstrip())
    hg, rg = _ngrams(h, MAX_NGRAM_ORDER), _ngrams(r, MAX_NGRAM_ORDER)
    correct, total = [0] * MAX_NGRAM_ORDER, [0] * MAX_NGRAM_ORDER
    for gram, count in hg.items():
        total[len(gram) - 1] += count
        if gram in rg:
            correct[len(gram) - 1] += min(count, rg[gram])
    return [len(h), len(r), *correct, *total]


def bleu_from_stats(stats: Sequence[int]) -> float:
    """Corpus BLEU (0..100) from summed ``bleu_stats`` (sacreBLEU's ``compute_bleu``, exp smoothing)."""
    sys_len, ref_len = stats[0], stats[1]
    correct, total = stats[2:2 + MAX_NGRAM_ORDER], stats[2 + MAX_NGRAM_ORDER:]
    bp = 1.0 if sys_len >= ref_len else (math.exp(1 - ref_len / sys_len) if sys_len > 0 else 0.0)
    if not any(correct):
        return 0.0
    precisions = [0.0] * MAX_NGRAM_ORDER
    smooth = 1.0
    for n in range(MAX_NGRAM_ORDER):
        if total[n] == 0:
            break
        if correct[n] == 0:
            smooth *= 2
            precisions[n] = 100.0 / (smooth * total[n])
        else:
            precisions[n] = 100.0 * correct[n] / total[n]
    logs = [math.log(p) if p > 0 else -9999999999 for p in precisions]  # sacrebleu's my_log floor
    return bp * math.exp(sum(logs) / MAX_NGRAM_ORDER)


def corpus_bleu(hyps: Sequence[str], refs: Sequence[str]) -> float:
    """sacreBLEU's ``corpus_bleu(hyps, [refs]).score`` (one reference per hypothesis)."""
    _check(hyps, refs)
    sums = [0] * (2 + 2 * MAX_NGRAM_ORDER)
    for h, r in zip(hyps, refs):
        sums = [a + b for a, b in zip(sums, bleu_stats(h, r))]
    return bleu_from_stats(sums)


def _char_ngrams(line: str) -> list[Counter]:
    line = "".join(line.split())
    return [Counter(line[i:i + n] for i in range(len(line) - n + 1)) for n in range(1, CHAR_ORDER + 1)]


def chrf_stats(hyp: str, ref: str) -> list[int]:
    """[hyp, ref, match] n-gram counts for each character order 1..6 of one segment."""
    out: list[int] = []
    for h, r in zip(_char_ngrams(hyp), _char_ngrams(ref)):
        match = sum(min(c, r[g]) for g, c in h.items() if g in r)
        out += [sum(h.values()) if r else 0, sum(r.values()), match]
    return out


def chrf_from_stats(stats: Sequence[int], beta: float = BETA) -> float:
    """chrF (0..100) from summed ``chrf_stats``: precision and recall averaged over the orders
    with n-grams on both sides, then their F-beta (sacreBLEU's ``_compute_f_score``)."""
    factor = beta ** 2
    prec_sum = rec_sum = 0.0
    orders = 0
    for i in range(len(stats) // 3):
        n_hyp, n_ref, n_match = stats[3 * i:3 * i + 3]
        if n_hyp > 0 and n_ref > 0:
            prec_sum += n_match / n_hyp
            rec_sum += n_match / n_ref
            orders += 1
    if orders == 0:
        return 0.0
    prec, rec = prec_sum / orders, rec_sum / orders
    if prec + rec == 0:
        return 0.0
    return 100 * (1 + factor) * prec * rec / (factor * prec + rec)


def corpus_chrf(hyps: Sequence[str], refs: Sequence[str]) -> float:
    """sacreBLEU's ``corpus_chrf(hyps, [refs]).score`` (chrF2, one reference per hypothesis)."""
    _check(hyps, refs)
    sums = [0] * (3 * CHAR_ORDER)
    for h, r in zip(hyps, refs):
        sums = [a + b for a, b in zip(sums, chrf_stats(h, r))]
    return chrf_from_stats(sums)


def corpus_scores(hyps: Sequence[str], refs: Sequence[str]) -> dict[str, float]:
    """Corpus BLEU and chrF (both 0..100) of hypotheses against one reference each."""
    return {"bleu": float(corpus_bleu(hyps, refs)), "chrf": float(corpus_chrf(hyps, refs))}
