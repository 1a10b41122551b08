"""Task metrics computed by hand: entity F1, BLEU direction, sentiment accuracy and score MAE."""

from types import SimpleNamespace

import pytest

from rnnkit.core.tasks.translate import corpus_scores
from rnnkit.core.tasks.tagger import chunk_f1


def test_entity_f1_by_hand():
    gold = [["B-PER", "O", "B-LOC", "I-LOC"], ["B-ORG", "O"]]
    pred = [["B-PER", "O", "B-LOC", "O"], ["B-ORG", "B-PER"]]
    # gold chunks: PER, LOC(2-3), ORG; predicted: PER, LOC(2), ORG, PER(1): 2 right
    r = chunk_f1(gold, pred)
    assert r["precision"] == pytest.approx(50.0) and r["recall"] == pytest.approx(200 / 3)
    assert r["f1"] == pytest.approx(2 * 50 * (200 / 3) / (50 + 200 / 3))


def test_bleu_is_hypotheses_against_references():
    refs = ["the cat sat on the mat today", "a dog ran in the park"]
    hyps = ["the cat sat on the mat", "a dog ran in the park"]  # shorter: brevity penalty applies
    import sacrebleu
    assert corpus_scores(hyps, refs)["bleu"] == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs]).score)
    assert corpus_scores(hyps, refs)["bleu"] != pytest.approx(corpus_scores(refs, hyps)["bleu"])


def test_sentiment_accuracy_and_mae_by_hand():
    from rnnkit.core.tasks.classify import SentimentTask

    task = object.__new__(SentimentTask)  # only split_metrics is exercised: no model, no data
    task.splits = {"val": SimpleNamespace(texts=["a", "b", "c", "d"], scores=[0.5, -0.5, 1.0, 0.0])}
    task.predict = lambda model, texts: ([1, 1, 1, -1], [0.25, 0.5, 0.5, -0.5])
    r = task.split_metrics(None, "val")
    assert r["val_acc"] == pytest.approx(100 * 2 / 3)  # the 0.0 row has no polarity
    assert r["val_score_mae"] == pytest.approx((0.25 + 1.0 + 0.5 + 0.5) / 4)
