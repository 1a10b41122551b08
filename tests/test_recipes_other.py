"""Non-LM recipes: metrics (entity F1, MAPE, seasonal-naive), batching, the tasks on tiny
self-made data, and smoke runs of each recipe on the real corpora (marked ``data``)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rnnkit.core.tasks.classify import SentimentSplit, SentimentTask
from rnnkit.core.tasks.common import Batches, bucketed_batches, pad_ids
from rnnkit.core.tasks.tagger import TaggerTask, TaggerVocab, chunk_f1, chunks
from rnnkit.core.tasks.timeseries import Series, TimeseriesTask, _Prepared, mape, rmse, seasonal_naive

torch.set_num_threads(1)


# --------------------------------------------------------------------------- entity F1
def test_chunks_bio2_and_bio1_and_iobes():
    tags = ["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-ORG", "I-ORG", "O", "B-MISC"]
    assert chunks(tags) == [("PER", 0, 1), ("LOC", 3, 3), ("LOC", 4, 4), ("ORG", 5, 6), ("MISC", 8, 8)]
    # BIO1 / broken BIO2: an I- after O or after another type starts an entity (conlleval).
    assert chunks(["I-PER", "I-PER", "I-LOC", "O", "I-LOC"]) == [("PER", 0, 1), ("LOC", 2, 2), ("LOC", 4, 4)]
    assert chunks(["S-PER", "B-ORG", "I-ORG", "E-ORG", "S-LOC", "O"]) == [("PER", 0, 0), ("ORG", 1, 3), ("LOC", 4, 4)]
    assert chunks(["O", "O"]) == []
    assert chunks([]) == []


def test_chunk_f1_counts_exact_boundaries_and_types():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    pred = [["B-PER", "O", "O", "B-LOC"], ["B-MISC", "O"]]
    # gold: PER(0,1) LOC(3,3) ORG ; pred: PER(0,0) LOC(3,3) MISC -> only LOC right
    s = chunk_f1(gold, pred)
    assert s["precision"] == pytest.approx(100 / 3)
    assert s["recall"] == pytest.approx(100 / 3)
    assert s["f1"] == pytest.approx(100 / 3)
    assert s["f1_LOC"] == pytest.approx(100.0)
    assert s["f1_PER"] == 0.0
    perfect = chunk_f1(gold, gold)
    assert perfect["f1"] == 100.0
    # The same entity in two different sentences is two entities.
    assert chunk_f1([["B-PER"], ["B-PER"]], [["B-PER"], ["O"]])["recall"] == pytest.approx(50.0)


def test_chunk_f1_rejects_misaligned_input():
    with pytest.raises(ValueError, match="sentence 0"):
        chunk_f1([["O", "O"]], [["O"]])
    with pytest.raises(ValueError, match="2 gold sentences but 1"):
        chunk_f1([["O"], ["O"]], [["O"]])


# --------------------------------------------------------------------------- time-series metrics
def test_mape_rmse_and_seasonal_naive():
    y = np.array([10.0, 20.0, 30.0, 40.0])
    assert mape(y, y * 1.1) == pytest.approx(10.0)
    assert rmse(y, y + 3) == pytest.approx(3.0)
    assert mape(np.array([0.0, 10.0]), np.array([5.0, 12.0])) == pytest.approx(20.0)  # zero actual skipped
    with pytest.raises(ValueError, match="undefined"):
        mape(np.zeros(3), np.ones(3))
    s = np.arange(10.0)  # period 3
    assert seasonal_naive(s, 3, 6, 9).tolist() == [3.0, 4.0, 5.0]
    # multi-step from origin 6: the last season (3, 4, 5) repeated
    assert seasonal_naive(s, 3, 6, 10, one_step=False).tolist() == [3.0, 4.0, 5.0, 3.0]
    with pytest.raises(ValueError, match="one full season"):
        seasonal_naive(s, 3, 2, 5)


def _seasonal_series(n=120, period=12, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return 100 + 0.5 * t + 10 * np.sin(2 * np.pi * t / period) + rng.normal(0, 0.5, n)


def test_timeseries_transform_inverts_exactly():
    y = _seasonal_series()
    p = _Prepared(Series("s", y, 12, 12, 12, log=True))
    m = 12
    back = p.to_values(p.z[m:], p.lv[:-m])
    assert np.allclose(back, y[m:], rtol=1e-10)
    # train-span statistics: z is standardised there
    assert abs(np.mean(p.z[m:p.s.train_end])) < 1e-9


class _ZeroForecaster(torch.nn.Module):
    """Predicts z = 0 everywhere: the RNN forecast then equals seasonal-naive times exp(mu)."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x, state=None):
        return x[..., :1] * 0 + self.w, state


def test_timeseries_zero_model_is_drifted_seasonal_naive():
    y = _seasonal_series()
    task = TimeseriesTask([Series("s", y, 12, 12, 12, log=True)], sarimax=False)
    p = task.series[0]
    start, end = p.s.span("test")
    one = task.one_step(_ZeroForecaster(), p, start, end)
    assert np.allclose(one, seasonal_naive(y, 12, start, end) * math.exp(p.mu))
    multi = task.multi_step(_ZeroForecaster(), p, start, end)
    assert np.allclose(multi, seasonal_naive(y, 12, start, end, one_step=False) * math.exp(p.mu))
    assert not any(k.startswith("test_") for k in task.evaluate(_ZeroForecaster()))  # test only at the end
    m = task.scores(_ZeroForecaster())
    assert m["test_s_snaive_1step_rmse"] == pytest.approx(rmse(y[start:end], seasonal_naive(y, 12, start, end)))
    assert "val_rel_rmse" in m and m["val_rel_rmse"] > 0


def test_timeseries_batches_stay_in_train_span_and_are_deterministic():
    y = _seasonal_series()
    task = TimeseriesTask([Series("s", y, 12, 12, 12)], window=24, batch_size=4, batches_per_epoch=5, sarimax=False)
    a, b = list(task.train_batches(3)), list(task.train_batches(3))
    assert len(task.train_batches(3)) == 5
    assert all(torch.equal(x1, x2) and torch.equal(y1, y2) for (x1, y1), (x2, y2) in zip(a, b))
    p = task.series[0]
    train_z = set(np.round(p.z[:p.s.train_end], 9).tolist())
    for _, target in a:  # every target value comes from the training span
        assert set(np.round(target.flatten().double().numpy(), 5).tolist()) <= {round(v, 5) for v in train_z}


def test_series_validation_messages():
    with pytest.raises(ValueError, match="values <= 0"):
        Series("neg", np.array([1.0, -1.0] * 40), 4, 4, 4, log=True)
    with pytest.raises(ValueError, match="two seasons"):
        Series("short", np.ones(20), 12, 4, 4)
    with pytest.raises(ValueError, match="finite"):
        Series("nan", np.array([1.0, np.nan] * 40), 4, 4, 4)


@pytest.mark.slow  # a seasonal SARIMAX fit takes ~10 s on a busy core
def test_sarimax_baseline_beats_naive_on_a_trend():
    y = _seasonal_series(n=96)
    s = Series("s", y, 12, 12, 12, log=False, order=(0, 1, 1), seasonal_order=(0, 1, 1, 12))
    task = TimeseriesTask([s], sarimax=True)
    base = task.baselines(task.series[0], "test")
    assert base["sarimax_1step_rmse"] < base["snaive_1step_rmse"]


# --------------------------------------------------------------------------- batching
def test_bucketed_batches_cover_everything_once_and_repeat_per_epoch():
    lengths = [i % 17 for i in range(1000)]
    b0 = bucketed_batches(lengths, 32, seed=1, epoch=0)
    assert sorted(i for b in b0 for i in b) == list(range(1000))
    assert b0 == bucketed_batches(lengths, 32, seed=1, epoch=0)
    assert b0 != bucketed_batches(lengths, 32, seed=1, epoch=1)
    spread = np.mean([max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in b0])
    assert spread < 4  # sorted windows: little padding
    r0 = bucketed_batches(lengths, 32, 1, 0, rank=0, world_size=2)
    r1 = bucketed_batches(lengths, 32, 1, 0, rank=1, world_size=2)
    assert len(r0) == len(r1) and not set(map(tuple, r0)) & set(map(tuple, r1))


def test_pad_ids_and_batches_len():
    x, lengths = pad_ids([[5, 6, 7], [], [8]], pad_id=0)
    assert x.tolist() == [[5, 6, 7], [0, 0, 0], [8, 0, 0]] and lengths.tolist() == [3, 1, 1]
    made = []
    b = Batches([10, 20], lambda k, p: made.append(p) or (k, p))
    assert len(b) == 2 and made == []  # len() builds nothing
    assert list(b) == [(0, 10), (1, 20)]


# --------------------------------------------------------------------------- tasks on tiny data
class _WordTok:
    """A minimal Tokenizer-protocol object for unit tests (pad 0, unk 1)."""

    def __init__(self, texts):
        words = sorted({w for t in texts for w in t.split()})
        self.vocab = ["<pad>", "<unk>"] + words
        self.ids = {w: i for i, w in enumerate(self.vocab)}
        self.vocab_size, self.pad_id, self.unk_id, self.bos_id, self.eos_id = len(self.vocab), 0, 1, -1, -1

    def encode(self, text):
        return [self.ids.get(w, 1) for w in text.split()]

    def decode(self, ids):
        return " ".join(self.vocab[i] for i in ids)


def test_sentiment_task_learns_a_toy_polarity():
    from rnnkit.core.models.kinds import ClassifierConfig, SequenceClassifier

    pos, neg = ["good fun", "great good", "fun great film"], ["bad dull", "awful bad", "dull awful film"]
    texts = pos + neg + ["film"]
    scores = [0.8, 0.9, 0.7, -0.8, -0.9, -0.6, 0.0]
    split = SentimentSplit(texts, scores)
    tok = _WordTok(texts)
    task = SentimentTask(tok, split, split, batch_size=4, seed=0)
    torch.manual_seed(0)
    model = SequenceClassifier(ClassifierConfig(vocab_size=tok.vocab_size, num_classes=2, num_targets=1,
                                                bounded=True, embed_size=16, hidden_size=16, dropout=0.0))
    opt = torch.optim.Adam(model.parameters(), lr=0.03)
    for epoch in range(40):
        for batch in task.train_batches(epoch):
            loss, n, _ = task.loss(model, batch, None)
            opt.zero_grad()
            loss.backward()
            opt.step()
    m = task.evaluate(model)
    assert m["val_acc"] == 100.0  # the zero-score row is not counted
    assert m["val_score_mae"] < 0.15
    labels, sc = task.predict(model, ["good great", "awful dull"])
    assert labels == [1, -1] and sc[0] > 0.3 and sc[1] < -0.3


def test_sentiment_split_rejects_out_of_range_scores():
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        SentimentSplit(["x"], [2.5])


def test_sentiment_crops_training_reviews_but_scores_whole_ones():
    """data.max_len crops training batches only; validation, test and predict read a review up to
    the bundle's cap, so the trainer's test figure is the shipped model's."""
    from rnnkit.edge.predict import MAX_REVIEW_TOKENS

    long = " ".join(["good"] * 300)
    split = SentimentSplit(["good fun film", long], [0.5, 0.9])
    task = SentimentTask(_WordTok(["good fun film"]), split, split, test=split, max_len=2)
    assert [len(i) for i in task.ids["train"]] == [2, 2]
    assert [len(i) for i in task.ids["val"]] == [len(i) for i in task.ids["test"]] == [3, MAX_REVIEW_TOKENS]


def test_tagger_vocab_and_task_on_tiny_conll(tmp_path):
    from rnnkit.core.models.kinds import Tagger, TaggerConfig

    train = [(["John", "lives", "in", "Paris"], ["B-PER", "O", "O", "B-LOC"]),
             (["Mary", "Smith", "visited", "Berlin", "in", "1999"], ["B-PER", "I-PER", "O", "B-LOC", "O", "O"])]
    vocab = TaggerVocab.build(train)
    assert vocab.tags[0] == "O" and vocab.encode_words(["1999"]) == vocab.encode_words(["2024"])  # digits -> 0
    assert vocab.encode_words(["Zzyzx"]) == [1]
    with pytest.raises(ValueError, match="B-ORG"):
        vocab.encode_tags(["B-ORG"])
    vocab.save(tmp_path)
    assert TaggerVocab.load(tmp_path).words == vocab.words
    task = TaggerTask(vocab, train, train, batch_size=2, unk_replace=0.0)
    torch.manual_seed(0)
    model = Tagger(TaggerConfig(vocab_size=len(vocab.words), num_tags=len(vocab.tags), embed_size=16,
                                hidden_size=16, dropout=0.0, char_vocab_size=len(vocab.chars)))
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for epoch in range(30):
        for batch in task.train_batches(epoch):
            loss, n, _ = task.loss(model, batch, None)
            assert n == sum(len(t) for t, _ in train)  # pads are not counted
            opt.zero_grad()
            loss.backward()
            opt.step()
    assert task.evaluate(model)["val_f1"] == 100.0
    assert task.predict(model, [["John", "lives", "in", "Berlin"], []]) == [["B-PER", "O", "O", "B-LOC"], []]


# --------------------------------------------------------------------------- smoke runs on real data
SMOKE = {  # recipe -> (corpus it needs, metric that must be in results.json)
    "sentiment-mr": ("mr", "test_acc"),
    "ner-conll": ("conll2003", "test_f1"),
    "translate-en-de": ("bible_en_de", "test_bleu"),
    "timeseries": ("timeseries", "test_rel_rmse"),
}


@pytest.mark.data
@pytest.mark.slow
@pytest.mark.parametrize("recipe", sorted(SMOKE))
def test_recipe_smoke_on_real_data(recipe, tmp_path):
    import json

    from rnnkit.cli import main
    from rnnkit.core.data import is_complete

    corpus, final_metric = SMOKE[recipe]
    if not is_complete(corpus):
        pytest.skip(f"corpus {corpus!r} not fetched: run `rnnkit data fetch --only {corpus}`")
    run = tmp_path / "run"
    assert main(["train", "--recipe", recipe, "--size", "smoke", "--run-dir", str(run), "--quiet",
                 "--threads", "1"]) == 0
    lines = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in lines if r.get("kind") == "train"]
    assert len(losses) >= 2 and all(math.isfinite(v) for v in losses)
    assert losses[-1] < losses[0], losses  # it learns something even at smoke size
    results = json.loads((run / "results.json").read_text())
    assert math.isfinite(results[final_metric])
    assert (run / "model" / "model.safetensors").is_file() and (run / "recipe.json").is_file()


# --------------------------------------------------------------------------- the user's own files
def _resolve(name, tmp_path, **data):
    from rnnkit.core import recipes as R

    over = {f"data.{k}": str(v) for k, v in data.items()}
    return R.resolve_recipe(name, "smoke", over)


def test_user_sentiment_tsv_labels_and_holdout(tmp_path):
    from rnnkit.core import recipes as R

    rows = [("pos", f"a fine film number {i}") for i in range(10)] + [("neg", f"a dull film number {i}") for i in range(10)]
    f = tmp_path / "mine.tsv"
    f.write_text("".join(f"{l}\t{t}\n" for l, t in rows), encoding="utf-8")
    recipe = _resolve("sentiment-mr", tmp_path, train_file=f)
    recipe["tokenizer"] = {"kind": "char"}
    model, task, tok = R.build(recipe, tmp_path / "run")
    assert len(task.splits["train"].texts) == 18 and len(task.splits["val"].texts) == 2  # seeded 10 % held out
    assert sorted(set(task.splits["train"].scores)) == [-1.0, 1.0]
    assert "test" not in task.splits
    assert (tmp_path / "run" / "tokenizer.json").is_file() and not task.valid_in_train
    recipe = {**_resolve("sentiment-mr", tmp_path, train_file=f, train_on_valid="true"), "tokenizer": {"kind": "char"}}
    _, task, _ = R.build(recipe, tmp_path / "run-all")  # the final-model protocol: the held-out rows are learnt too
    assert len(task.splits["train"].texts) == 20 and len(task.splits["val"].texts) == 2 and task.valid_in_train
    bad = tmp_path / "bad.tsv"
    bad.write_text("pos\tgood\nmaybe\tso so\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad.tsv:2: column 'score'"):
        R.build(_resolve("sentiment-mr", tmp_path, train_file=bad), tmp_path / "run2")


def test_a_fork_resumed_with_another_seed_holds_out_the_same_rows(tmp_path):
    """`--resume RUN --set train.seed=S` (a fork for a soup) shuffles differently but must hold out
    the rows its run held out: another seed's split would train on the parent's validation rows
    (and the soup, which rebuilds the recorded split, would choose on rows the forks learnt)."""
    import argparse

    from rnnkit.core import recipes as R
    from rnnkit.core.atomic import atomic_write_json
    from rnnkit.core.cli.train import _resumed_recipe

    rows = [("pos", f"a fine film number {i}") for i in range(20)] + [("neg", f"a dull film number {i}") for i in range(20)]
    f = tmp_path / "mine.tsv"
    f.write_text("".join(f"{l}\t{t}\n" for l, t in rows), encoding="utf-8")
    recipe = {**_resolve("sentiment-mr", tmp_path, train_file=f), "tokenizer": {"kind": "char"}}
    run = tmp_path / "run"
    _, parent, _ = R.build(recipe, run)
    atomic_write_json(run / "recipe.json", recipe)
    args = argparse.Namespace(resume=str(run), recipe=None)
    _, call, own, _ = _resumed_recipe(args, {"train.seed": 7})
    assert call["train"]["seed"] == 7 and own["train"]["seed"] == recipe["train"]["seed"]
    _, fork, _ = R.build(call, run)
    assert fork.splits["val"].texts == parent.splits["val"].texts
    assert not set(fork.splits["val"].texts) & set(fork.splits["train"].texts)
    assert fork.seed == 7  # the fork's own batch order


def test_user_conll_file_and_bad_line(tmp_path):
    from rnnkit.core import recipes as R

    f = tmp_path / "mine.conll"
    f.write_text("-DOCSTART- O\n\n" + "".join(f"Anna B-PER\nsings O\nin O\nRome B-LOC\n\n" for _ in range(10)), encoding="utf-8")
    model, task, vocab = R.build(_resolve("ner-conll", tmp_path, train_file=f, valid_file=f), tmp_path / "run")
    assert len(task.splits["train"]) == 10 and vocab.tags[0] == "O" and set(vocab.tags) == {"O", "B-PER", "B-LOC"}
    assert (tmp_path / "run" / "tagger_vocab.json").is_file()
    _, task, _ = R.build(_resolve("ner-conll", tmp_path, train_file=f, valid_file=f, train_on_valid="true"),
                         tmp_path / "run-all")
    assert len(task.splits["train"]) == 20 and len(task.splits["val"]) == 10 and task.valid_in_train
    bad = tmp_path / "bad.conll"
    bad.write_text("Anna B-PER\nsings\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad.conll:2: expected at least 2 columns"):
        R.build(_resolve("ner-conll", tmp_path, train_file=bad), tmp_path / "run2")


def test_user_parallel_tsv_filters_train_by_length(tmp_path):
    from rnnkit.core import recipes as R

    pairs = [(f"the house number {i}", f"das Haus Nummer {i}") for i in range(60)]
    pairs.append(("word " * 200, "Wort " * 200))  # far beyond max_len: dropped from training
    f = tmp_path / "pairs.tsv"
    f.write_text("".join(f"{s}\t{t}\n" for s, t in pairs), encoding="utf-8")
    recipe = _resolve("translate-en-de", tmp_path, train_file=f, valid_file=f)
    recipe["tokenizer"]["vocab_size"] = 300
    model, task, tok = R.build(recipe, tmp_path / "run")
    assert task.dropped["train"] == 1 and len(task.ids["train"]) == 60
    assert task.dropped["val"] == 0  # evaluation keeps every pair by default
    _, both, _ = R.build({**recipe, "data": {**recipe["data"], "train_on_valid": True}}, tmp_path / "run-all")
    assert len(both.ids["train"]) == 120 and both.valid_in_train and not task.valid_in_train
    src, src_len, tgt_in, tgt_out = next(iter(task.train_batches(0)))
    assert (tgt_in[:, 0] == tok.bos_id).all()
    last = tgt_out.gather(1, (src_len * 0 + (tgt_out != -100).sum(1) - 1).unsqueeze(1))
    assert (last == tok.eos_id).all()  # every target ends with EOS before its padding
    bad = tmp_path / "bad.tsv"
    bad.write_text("a\tb\nonly one column\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad.tsv:2: expected 2 tab-separated columns"):
        R.build(_resolve("translate-en-de", tmp_path, train_file=bad), tmp_path / "run2")


def test_train_on_valid_also_learns_the_extra_corpora_validation_pairs(tmp_path, monkeypatch):
    from rnnkit.core import recipes as R
    from rnnkit.core.data import loaders

    sizes = {"train": 30, "valid": 5, "test": 4}

    def fake(split, corpus="bible_en_de"):  # distinct pairs per corpus and split
        return [(f"{corpus} {split} house {i}", f"{corpus} {split} Haus {i}") for i in range(sizes[split])]

    monkeypatch.setattr(loaders, "load_parallel", fake)
    recipe = R.resolve_recipe("translate-en-de", "smoke", {})
    recipe["data"].update(max_train_pairs=0, max_eval_pairs=0, extra_corpora={"everyday_en_de": 2})
    recipe["tokenizer"]["vocab_size"] = 300
    _, held, _ = R.build(recipe, tmp_path / "held")
    _, both, _ = R.build({**recipe, "data": {**recipe["data"], "train_on_valid": True}}, tmp_path / "both")
    assert len(held.ids["train"]) == 30 + 2 * 30 and len(held.ids["val"]) == 5 + 5
    assert len(both.ids["train"]) == 30 + 2 * 30 + 5 + 5 and len(both.ids["val"]) == 10 and both.valid_in_train


def test_user_series_csv(tmp_path):
    from rnnkit.core import recipes as R

    y = _seasonal_series(n=72)
    f = tmp_path / "sales.csv"
    f.write_text("month,value\n" + "".join(f"m{i},{'' if i == 30 else v}\n" for i, v in enumerate(y)), encoding="utf-8")
    model, task, _ = R.build(_resolve("timeseries", tmp_path, train_file=f), tmp_path / "run")
    (p,) = task.series
    assert p.s.name == "sales" and p.s.period == 12 and len(p.s.values) == 72
    assert p.s.values[30] == pytest.approx((y[29] + y[31]) / 2)  # the gap interpolated by the reader
    bad = tmp_path / "bad.csv"
    bad.write_text("month,value\nm1,5\nm2,abc\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad.csv:3: column 'value' must be a number"):
        R.build(_resolve("timeseries", tmp_path, train_file=bad), tmp_path / "run2")


# --------------------------------------------------------------------------- translation on a toy
def test_translation_task_learns_a_toy_mapping_and_finalizes(tmp_path):
    import json
    import random

    from rnnkit.core.models.seq2seq import Seq2Seq, Seq2SeqConfig
    from rnnkit.core.tasks.translate import TranslationTask, corpus_scores
    from rnnkit.core.text.tokenizers import WordTokenizer
    from rnnkit.core.train.trainer import TrainConfig, train

    rng = random.Random(0)
    words = "zero one two three four five six seven".split()

    def pair():
        s = [rng.choice(words) for _ in range(rng.randint(2, 5))]
        return " ".join(s), " ".join(s).upper()  # "translate" = upper-case each word

    train_pairs, test_pairs = [pair() for _ in range(400)], [pair() for _ in range(30)]
    tok = WordTokenizer.train([s for s, t in train_pairs] + [t for s, t in train_pairs])
    task = TranslationTask(tok, tok, train_pairs, test_pairs[:10], test_pairs, max_len=8, batch_size=32,
                           bos_id=tok.bos_id, eos_id=tok.eos_id, val_bleu_sentences=10, beam=3)
    torch.manual_seed(0)  # the weights are drawn before train() seeds anything
    model = Seq2Seq(Seq2SeqConfig(src_vocab_size=tok.vocab_size, tgt_vocab_size=tok.vocab_size, embed_size=24,
                                  hidden_size=48, dropout=0.0, shared_vocab=True, pad_id=tok.pad_id,
                                  bos_id=tok.bos_id, eos_id=tok.eos_id, unk_id=tok.unk_id))
    cfg = TrainConfig(run_dir=str(tmp_path), optimizer="adam", lr=0.01, max_epochs=20, checkpoint_every=0,
                      eval_every=10_000, log_every=100, quiet=True, seed=0)
    train(model, task, cfg)
    rec = task.finalize(model, tmp_path)
    assert rec["test_bleu"] > 80 and rec["test_sentences"] == 30
    assert corpus_scores(["a b c d"], ["a b c d"])["bleu"] == pytest.approx(100.0)
    lines = (tmp_path / "test_translations.tsv").read_text().splitlines()
    assert len(lines) == 30 and lines[0].split("\t")[:2] == list(test_pairs[0])
    assert json.loads((tmp_path / "results.json").read_text())["kind"] == "final"
    assert (tmp_path / "samples.txt").read_text().count("HYP: ") == 10
    # beam 1 (greedy) and beam 3 agree on an easy, well-learnt mapping
    srcs = [s for s, _ in test_pairs[:5]]
    assert task.translate(model, srcs, beam=1) == task.translate(model, srcs, beam=3)


def test_builders_draw_the_same_weights_for_the_same_seed(tmp_path):
    from rnnkit.core import recipes as R

    recipe = R.resolve_recipe("timeseries", "smoke", {"data.sarimax": False})
    recipe["data"]["train_file"] = None
    f = tmp_path / "s.csv"
    f.write_text("t,value\n" + "".join(f"{i},{v}\n" for i, v in enumerate(_seasonal_series(n=72))), encoding="utf-8")
    recipe["data"]["train_file"] = str(f)
    a, b = R.build(recipe, tmp_path / "a")[0], R.build(recipe, tmp_path / "b")[0]
    recipe["train"]["seed"] = 7
    c = R.build(recipe, tmp_path / "c")[0]
    pa, pb, pc = (torch.cat([p.flatten() for p in m.parameters()]) for m in (a, b, c))
    assert torch.equal(pa, pb) and not torch.equal(pa, pc)


def test_cli_trains_timeseries_on_a_user_csv_and_reports_bad_files(tmp_path, capsys):
    import json

    from rnnkit.cli import main

    f = tmp_path / "sales.csv"
    f.write_text("month,value\n" + "".join(f"m{i},{v:.3f}\n" for i, v in enumerate(_seasonal_series(n=84))),
                 encoding="utf-8")
    run = tmp_path / "run"
    assert main(["train", "--recipe", "timeseries", "--size", "smoke", "--train", str(f), "--run-dir", str(run),
                 "--quiet", "--threads", "1"]) == 0
    results = json.loads((run / "results.json").read_text())
    assert results["test_sales_rnn_1step_rmse"] > 0 and "test_sales_snaive_1step_rmse" in results
    assert (run / "forecast_sales.csv").read_text().splitlines()[0].startswith("index,actual,rnn_1step")
    bad = tmp_path / "bad.csv"
    bad.write_text("month,value\nm1,1\nm2,x\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["train", "--recipe", "timeseries", "--size", "smoke", "--train", str(bad),
                 "--run-dir", str(tmp_path / "run2"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("rnnkit train: error:") and "bad.csv:3" in err and "\n" not in err


def test_sentiment_starts_from_a_pretrained_language_model(tmp_path):
    """data.pretrained: the classifier takes the LM's tokenizer, embedding and LSTM as they are."""
    import torch

    from rnnkit.core import recipes as R
    from rnnkit.core.models import registry
    from rnnkit.core.models.kinds import LanguageModel, LMConfig
    from rnnkit.core.text.tokenizers import CharTokenizer

    texts = [f"a fine film number {i}" for i in range(10)] + [f"a dull film number {i}" for i in range(10)]
    lm_run = tmp_path / "lm"
    tok = CharTokenizer.train(texts)
    tok.save(lm_run)
    torch.manual_seed(0)
    lm = LanguageModel(LMConfig(vocab_size=tok.vocab_size, cell="gru", embed_size=12, hidden_size=10, num_layers=2))
    registry.save(lm, lm_run / "model")
    f = tmp_path / "mine.tsv"
    f.write_text("".join(f"{'pos' if 'fine' in t else 'neg'}\t{t}\n" for t in texts), encoding="utf-8")
    recipe = _resolve("sentiment-mr", tmp_path, train_file=f, pretrained=lm_run)
    model, task, run_tok = R.build(recipe, tmp_path / "run")
    c = model.config
    assert (c.cell, c.embed_size, c.hidden_size, c.num_layers, c.bidirectional) == ("gru", 12, 10, 2, False)
    assert run_tok.encode("a dull film") == tok.encode("a dull film")
    for name, p in lm.rnn.state_dict().items():
        assert torch.equal(model.rnn.state_dict()[name], p), name
    assert torch.equal(model.embed.weight, lm.embed.weight)
    with pytest.raises(ValueError, match="not an LM run directory"):
        R.build(_resolve("sentiment-mr", tmp_path, train_file=f, pretrained=tmp_path / "nothing"), tmp_path / "run2")
