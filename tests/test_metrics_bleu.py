"""rnnkit.core.metrics.bleu (torch- and sacrebleu-free) gives sacreBLEU's corpus BLEU and chrF."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from rnnkit.core.metrics.bleu import corpus_bleu, corpus_chrf, corpus_scores, tokenize_13a

sacrebleu = pytest.importorskip("sacrebleu")

EXAMPLES = Path(__file__).resolve().parent.parent / "docs" / "examples"
WORDS = ("the a cat dog sat on mat house is big Haus ist groß über naïve Straße , . ! ? ; : 1,000 3.5 2-3 "
         "co-op don't it's \"quoted\" (aside) [x] {y} &amp; &quot; &lt;tag&gt; e-mail U.S. 10. a.m. $5 50% "
         "#1 @home <skipped> -- ... Mr. O'Neil well-known").split()


def pairs(n: int, seed: int) -> tuple[list[str], list[str]]:
    """``n`` (hypothesis, reference) pairs: some exact, some edited copies, some unrelated, some empty."""
    rng = random.Random(seed)

    def sentence() -> str:
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 30)))

    hyps, refs = [], []
    for _ in range(n):
        ref = sentence()
        r = rng.random()
        if r < 0.25:
            hyp = ref
        elif r < 0.7:  # an edit of the reference: words dropped, swapped or replaced
            toks = ref.split()
            toks = [rng.choice(WORDS) if rng.random() < 0.2 else t for t in toks if rng.random() > 0.15]
            hyp = " ".join(toks)
        else:
            hyp = sentence()
        hyps.append(hyp + (" " if rng.random() < 0.1 else ""))
        refs.append(ref)
    return hyps, refs


@pytest.mark.parametrize("seed", range(4))
def test_corpus_bleu_and_chrf_equal_sacrebleu(seed):
    hyps, refs = pairs(300, seed)
    assert corpus_bleu(hyps, refs) == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs]).score, abs=0.01)
    assert corpus_chrf(hyps, refs) == pytest.approx(sacrebleu.corpus_chrf(hyps, [refs]).score, abs=0.01)
    # both directions: BLEU is not symmetric (brevity penalty, clipping)
    assert corpus_bleu(refs, hyps) == pytest.approx(sacrebleu.corpus_bleu(refs, [hyps]).score, abs=0.01)


def test_small_corpora_and_edge_cases_equal_sacrebleu():
    """Single segments exercise the exp smoothing (orders without a match), the brevity penalty and
    empty sides."""
    hyps, refs = pairs(200, 9)
    cases = [([h], [r]) for h, r in zip(hyps, refs)]
    cases += [(["a b"], ["a b"]), ([""], ["a"]), (["a"], [""]), ([""], [""]), (["one two three"], ["one two four five"]),
              (["the cat sat on the mat"], ["the cat sat on the mat today"])]
    tsv = [line.split("\t") for line in (EXAMPLES / "translation.tsv").read_text(encoding="utf-8").splitlines()]
    cases.append(([t for _, t in tsv], [t for _, t in tsv]))
    cases.append(([s for s, _ in tsv], [t for _, t in tsv]))
    for h, r in cases:
        assert corpus_bleu(h, r) == pytest.approx(sacrebleu.corpus_bleu(h, [r]).score, abs=0.01), (h, r)
        assert corpus_chrf(h, r) == pytest.approx(sacrebleu.corpus_chrf(h, [r]).score, abs=0.01), (h, r)


def test_13a_tokens_equal_sacrebleu():
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

    ref = Tokenizer13a()
    hyps, refs = pairs(200, 3)
    for line in hyps + refs:
        assert tokenize_13a(line) == ref(line).split(), line


def test_scores_check_their_inputs():
    assert corpus_scores(["a b c d"], ["a b c d"]) == pytest.approx({"bleu": 100.0, "chrf": 100.0})
    with pytest.raises(ValueError, match="2 hypotheses but 1 references"):
        corpus_scores(["a", "b"], ["a"])
