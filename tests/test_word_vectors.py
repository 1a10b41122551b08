"""Word vectors (core/text/word_vectors.py) and a tagger that starts from them."""

import numpy as np
import pytest
import torch

from rnnkit.core.tasks.tagger import TaggerVocab, init_word_vectors
from rnnkit.core.train import word_vectors as wv


def _corpus(tmp_path, lines=3000, seed=0):
    """Cities share contexts with cities, names with names: skip-gram must learn that."""
    rng = np.random.default_rng(seed)
    cities, names = ["paris", "berlin", "rome", "madrid"], ["anna", "peter", "maria", "john"]
    rows = []
    for _ in range(lines):
        if rng.random() < 0.5:
            rows.append(f"we flew to {rng.choice(cities)} on the morning train from the airport")
        else:
            rows.append(f"yesterday {rng.choice(names)} said that she would call her brother soon")
    p = tmp_path / "text.txt"
    p.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return p


def test_text_tokens_match_the_taggers_words():
    assert wv.text_tokens("Germany's 1996 budget, in the U.S.") == [
        "germany", "'s", "0000", "budget", ",", "in", "the", "u", ".", "s", "."]
    assert wv.text_tokens("It\u2019s") == ["it", "'s"]


def test_skipgram_puts_words_of_one_kind_together(tmp_path):
    words, vecs = wv.train([_corpus(tmp_path, lines=1000)], dim=16, epochs=3, min_count=1, batch=512, lr=0.03, subsample=1.0,
                           progress=False)
    ix = {w: i for i, w in enumerate(words)}
    unit = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)

    def sim(a, b):
        return float(unit[ix[a]] @ unit[ix[b]])

    assert vecs.dtype == np.float32 and vecs.shape == (len(words), 16) and np.isfinite(vecs).all()
    assert words[0] in ("the", "to")  # most frequent first
    within = np.mean([sim("paris", "rome"), sim("berlin", "madrid"), sim("anna", "maria"), sim("peter", "john")])
    across = np.mean([sim("paris", "anna"), sim("rome", "peter"), sim("berlin", "maria"), sim("madrid", "john")])
    assert within > across + 0.5, (within, across)


def test_write_and_read_both_text_formats(tmp_path):
    words, vecs = ["the", "paris"], np.array([[0.5, -1.0], [2.0, 0.25]], dtype=np.float32)
    p = wv.write(tmp_path / "v.txt", words, vecs)
    assert p.read_text().splitlines()[0] == "2 2"
    w2, v2 = wv.read(p)
    assert w2 == words and np.allclose(v2, vecs)
    glove = tmp_path / "glove.txt"
    glove.write_text("the 0.5 -1.0\nparis 2.0 0.25\nrome 1 1\n", encoding="utf-8")
    w3, v3 = wv.read(glove, max_words=2)
    assert w3 == words and np.allclose(v3, vecs)


@pytest.mark.parametrize("text,match", [
    ("", "no word vectors"),
    ("the 1 2\nparis 1\n", "1 numbers, expected 2"),
    ("the 1 x\n", "not a word vector line"),
    ("the nan 1\n", "NaN"),
])
def test_read_rejects_bad_files(tmp_path, text, match):
    p = tmp_path / "bad.txt"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=match):
        wv.read(p)


def test_resolve_checks_its_spec(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        wv.resolve(tmp_path / "missing.txt")
    with pytest.raises(ValueError, match="unknown options"):
        wv.resolve({"corpora": ["ptb"], "dims": 100})
    with pytest.raises(ValueError, match="file path or"):
        wv.resolve({"dim": 100})


def test_resolve_learns_once_from_train_splits_and_caches(tmp_path, monkeypatch):
    import rnnkit.core.data.loaders as loaders

    text = _corpus(tmp_path, lines=200)
    asked = []

    def fake_split_path(name, split, fetch=False):
        asked.append((name, split))
        return text

    monkeypatch.setattr(loaders, "split_path", fake_split_path)
    monkeypatch.setenv("RNNKIT_DATA", str(tmp_path / "data"))
    learnt = []
    train = wv.train
    monkeypatch.setattr(wv, "train", lambda *a, **kw: (learnt.append(1), train(*a, **kw))[1])
    spec = {"corpora": ["everyday_en"], "dim": 8, "epochs": 1, "min_count": 1}
    p = wv.resolve(spec, progress=False)
    assert set(asked) == {("everyday_en", "train")}  # never a valid or test split
    assert p.parent == tmp_path / "data" / "vectors" and p.is_file()
    assert wv.resolve(spec, progress=False) == p and len(learnt) == 1  # cached: not learnt twice
    # a rebuilt corpus (other cleaning, other train text) is not served the old build's vectors
    text.write_text(text.read_text(encoding="utf-8") + "a new line of the rebuilt corpus\n", encoding="utf-8")
    rebuilt = wv.resolve(spec, progress=False)
    assert rebuilt != p and rebuilt.is_file() and len(learnt) == 2


def test_tagger_vocab_takes_vector_words_after_its_own():
    train = [(["John", "lives", "in", "Paris"], ["B-PER", "O", "O", "B-LOC"])]
    vocab = TaggerVocab.build(train, extra_words=["paris", "Berlin", "1999", "berlin"])
    assert vocab.words[:6] == ["<pad>", "<unk>", "in", "john", "lives", "paris"]
    assert vocab.words[6:] == ["berlin", "0000"]  # normalised, each once, after the training words
    assert vocab.encode_words(["BERLIN"]) == [6]


def test_init_word_vectors_sets_known_rows_rescaled():
    train = [(["John", "lives", "in", "Paris"], ["B-PER", "O", "O", "B-LOC"])]
    vwords = ["paris", "berlin", "Paris"]
    vecs = np.array([[1.0, 2.0], [3.0, -1.0], [9.0, 9.0]], dtype=np.float32)
    vocab = TaggerVocab.build(train, extra_words=vwords)
    embed = torch.nn.Embedding(len(vocab.words), 2, padding_idx=0)
    before = embed.weight.detach().clone()
    assert len(init_word_vectors(embed, vocab, vwords, vecs)) == 2  # "Paris" again: the first spelling wins
    scale = float(vecs.std())
    assert torch.allclose(embed.weight[vocab.word_id["paris"]], torch.tensor([1.0, 2.0]) / scale)
    assert torch.allclose(embed.weight[vocab.word_id["berlin"]], torch.tensor([3.0, -1.0]) / scale)
    untouched = [vocab.word_id[w] for w in ("<pad>", "<unk>", "john", "lives", "in")]
    assert torch.equal(embed.weight[untouched], before[untouched])
    with pytest.raises(ValueError, match="embed_size=3"):
        init_word_vectors(embed, vocab, ["x"], np.zeros((1, 3), dtype=np.float32))


def test_too_little_text_is_a_clear_error(tmp_path):
    p = tmp_path / "t.txt"
    p.write_text("a b c d\nb c d e\n", encoding="utf-8")
    with pytest.raises(ValueError, match="too little text"):
        wv.train([p], dim=4, epochs=1, min_count=1, progress=False)
    p.write_text("hello\n", encoding="utf-8")
    with pytest.raises(ValueError, match="too little text"):
        wv.train([p], dim=4, epochs=1, min_count=1, progress=False)


def test_ner_recipe_starts_from_a_vector_file(tmp_path):
    """data.word_vectors as a file: its words join the tagger's vocabulary and start its embeddings."""
    from rnnkit.core import recipes as R

    conll = tmp_path / "mine.conll"
    conll.write_text("".join("Anna B-PER\nsings O\nin O\nRome B-LOC\n\n" for _ in range(10)), encoding="utf-8")
    vec = wv.write(tmp_path / "v.txt", ["rome", "oslo"], np.array([[1.0] * 16, [-1.0] * 16], dtype=np.float32))
    recipe = R.resolve_recipe("ner-conll", "smoke", {"data.train_file": str(conll), "data.valid_file": str(conll),
                                                     "data.word_vectors": str(vec)})
    model, task, vocab = R.build(recipe, tmp_path / "run")
    assert "oslo" in vocab.word_id and vocab.words.index("oslo") > vocab.words.index("rome")
    assert task.describe()["word_vectors"] == {"source": str(vec), "words": 2, "rows_initialised": 2, "frozen": False}
    assert torch.allclose(model.embed.weight[vocab.word_id["oslo"]], torch.full((16,), -1.0))  # std of +-1 is 1
    recipe["data"]["word_vectors"] = str(tmp_path / "missing.txt")
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        R.build(recipe, tmp_path / "run2")


def test_a_nan_loss_stops_learning_with_a_clear_error(tmp_path, monkeypatch):
    p = tmp_path / "t.txt"
    p.write_text("a b c d e f\n" * 200, encoding="utf-8")
    monkeypatch.setattr(torch.nn.functional, "logsigmoid", lambda x: x * float("nan"))
    with pytest.raises(FloatingPointError, match="loss became nan"):
        wv.train([p], dim=4, epochs=1, min_count=1, subsample=1.0, progress=False)


def test_corpus_source_reads_conll_as_the_tagger_tokenises(tmp_path, monkeypatch):
    """conll2003 gives its own tokens ("U.S." one word, as the tagger keys it); a table is refused."""
    import rnnkit.core.data.loaders as loaders

    conll = tmp_path / "train.txt"
    conll.write_text("-DOCSTART- O\n\nThe O\nU.S. B-LOC\nsaid O\n\nGermany B-LOC\n's O\n1996 O\n\n", encoding="utf-8")
    tsv = tmp_path / "train.tsv"
    tsv.write_text("0.5\tgood\n", encoding="utf-8")
    monkeypatch.setattr(loaders, "split_path", lambda name, split, fetch=False: conll if name == "conll2003" else tsv)
    assert wv.corpus_source("conll2003") == [["the", "u.s.", "said"], ["germany", "'s", "0000"]]
    with pytest.raises(ValueError, match="plain-text corpora"):
        wv.corpus_source("mr")
    words, _ = wv.train([wv.corpus_source("conll2003")] * 50, dim=4, epochs=1, min_count=1, subsample=1.0,
                        progress=False)
    assert "u.s." in words and "u" not in words


def test_frozen_vector_rows_stay_put_while_the_others_learn(tmp_path):
    """data.freeze_vectors: rows started from vectors keep them through training (Adam, clipping and
    all); rows of words the vectors lack, and the rest of the model, still learn."""
    from rnnkit.core import recipes as R
    from rnnkit.core.train import trainer

    conll = tmp_path / "mine.conll"
    conll.write_text("".join("Anna B-PER\nsings O\nin O\nRome B-LOC\n\nPeter B-PER\nflew O\nto O\nOslo B-LOC\n\n"
                             for _ in range(10)), encoding="utf-8")
    vec = wv.write(tmp_path / "v.txt", ["rome", "oslo", "paris"], np.random.default_rng(0).normal(size=(3, 16)))
    over = {"data.train_file": str(conll), "data.valid_file": str(conll), "data.word_vectors": str(vec),
            "data.freeze_vectors": True, "train.max_epochs": 3, "train.lr": 0.05}
    recipe = R.resolve_recipe("ner-conll", "smoke", over)
    model, task, vocab = R.build(recipe, tmp_path / "run")
    assert task.describe()["word_vectors"]["frozen"] is True
    before = model.embed.weight.detach().clone()
    cfg = trainer.TrainConfig(**{**recipe["train"], "run_dir": str(tmp_path / "run"), "quiet": True,
                                 "precision": "fp32"})
    trainer.train(model, task, cfg)
    after = model.embed.weight.detach()
    frozen = [vocab.word_id[w] for w in ("rome", "oslo", "paris")]
    learnt = [vocab.word_id[w] for w in ("anna", "sings", "peter")]
    assert torch.equal(after[frozen], before[frozen])
    assert all(not torch.equal(after[i], before[i]) for i in learnt)


@pytest.mark.parametrize("frozen", [False, True])
def test_a_trained_run_needs_its_vectors_no_more(tmp_path, frozen):
    """Once a run has a checkpoint, building its task again (--resume, export's --eval-task, soup)
    takes the recorded description instead of reading -- or relearning -- the vectors, which the
    checkpoint's weights replace anyway; frozen rows stay frozen on resume."""
    from rnnkit.core import recipes as R
    from rnnkit.core.train import trainer

    conll = tmp_path / "mine.conll"
    conll.write_text("".join("Anna B-PER\nsings O\nin O\nRome B-LOC\n\n" for _ in range(10)), encoding="utf-8")
    vec = wv.write(tmp_path / "v.txt", ["rome", "oslo"], np.array([[1.0] * 16, [-1.0] * 16], dtype=np.float32))
    over = {"data.train_file": str(conll), "data.valid_file": str(conll), "data.word_vectors": str(vec),
            "data.freeze_vectors": frozen, "train.max_epochs": 1}
    recipe = R.resolve_recipe("ner-conll", "smoke", over)
    run = tmp_path / "run"
    model, task, vocab = R.build(recipe, run)
    first = task.describe()["word_vectors"]
    assert first["frozen"] is frozen and first["rows_initialised"] == 2
    vec.unlink()
    with pytest.raises(FileNotFoundError, match="v.txt"):  # no checkpoint yet: a new start needs them
        R.build(recipe, run)
    trainer.train(model, task, trainer.TrainConfig(**{**recipe["train"], "run_dir": str(run), "quiet": True,
                                                        "precision": "fp32"}))
    model2, task2, _ = R.build(recipe, run)  # the vector file is gone: not read
    assert task2.describe()["word_vectors"] == first
    rome = vocab.word_id["rome"]
    model2.embed.weight.sum().backward()
    assert bool(model2.embed.weight.grad[rome].abs().sum() == 0) == frozen  # the mask is back on resume
