"""Recipe resolution (sizes, checked overrides) and the LM task on tiny self-made streams."""

from __future__ import annotations

import json
import math

import pytest
import torch

from rnnkit.core import recipes as R
from rnnkit.core.models.kinds import LanguageModel, LMConfig
from rnnkit.core.tasks.next_word_proxy import next_word_accuracy, true_word
from rnnkit.core.tasks.lm import LMTask, LMWindows, batchify
from rnnkit.core.train.run_log import append_jsonl

torch.set_num_threads(1)
LM_RECIPES = ("char-shakespeare", "ptb-lm", "suggest-en")


# --------------------------------------------------------------------------- recipes
@pytest.mark.parametrize("name", LM_RECIPES)
@pytest.mark.parametrize("size", ["smoke", "full"])
def test_lm_recipes_resolve_with_every_key_checked(name, size):
    r = R.resolve_recipe(name, size)
    assert r["name"] == name and r["size"] == size and r["task"] == "lm"
    assert r["model"]["kind"] == "lm"
    raw = R.read_recipe(name)
    for section, values in raw["sizes"].get(size, {}).items():
        for key, value in values.items():
            assert r[section][key] == value, (section, key)
    json.dumps(r)  # what recipe.json holds


def test_smoke_sizes_are_small():
    for name in LM_RECIPES:
        r = R.resolve_recipe(name, "smoke")
        assert r["train"]["max_steps"] <= 100
        assert r["model"]["hidden_size"] <= 128
        assert 0 < r["data"]["max_train_lines"] <= 5000


def test_overrides_bare_and_dotted_keys_are_applied_and_recorded():
    r = R.resolve_recipe("ptb-lm", "smoke", {"hidden_size": 77, "train.lr": 0.5, "data.bptt": 9})
    assert r["model"]["hidden_size"] == 77 and r["train"]["lr"] == 0.5 and r["data"]["bptt"] == 9
    assert r["overrides"] == {"model.hidden_size": 77, "train.lr": 0.5, "data.bptt": 9}
    # the size is applied first, the override wins over it
    assert R.resolve_recipe("ptb-lm", "smoke", {"max_steps": 3})["train"]["max_steps"] == 3


def test_unknown_override_lists_allowed_keys():
    with pytest.raises(R.RecipeError) as e:
        R.resolve_recipe("ptb-lm", "full", {"hiden_size": 3})
    msg = str(e.value)
    assert "hiden_size" in msg and "hidden_size" in msg and "max_steps" in msg and "bptt" in msg
    with pytest.raises(R.RecipeError, match="model has no key 'nope'.*hidden_size"):
        R.resolve_recipe("ptb-lm", "full", {"model.nope": 1})
    with pytest.raises(R.RecipeError, match="unknown section 'modle'"):
        R.resolve_recipe("ptb-lm", "full", {"modle.hidden_size": 1})


def test_tokenizer_derived_fields_cannot_be_set():
    with pytest.raises(R.RecipeError, match="vocab_size"):
        R.resolve_recipe("ptb-lm", "full", {"model.vocab_size": 5})


def test_bad_recipe_name_and_size():
    with pytest.raises(R.RecipeError, match="available: .*suggest-en"):
        R.resolve_recipe("nope", "full")
    with pytest.raises(R.RecipeError, match="allowed: smoke, full"):
        R.resolve_recipe("ptb-lm", "huge")


def test_typo_inside_a_recipe_file_is_caught(tmp_path, monkeypatch):
    raw = R.read_recipe("ptb-lm")
    raw["sizes"]["smoke"]["train"]["max_stpes"] = 3
    (tmp_path / "ptb-lm.json").write_text(json.dumps(raw))
    monkeypatch.setattr(R, "RECIPE_DIR", tmp_path)
    with pytest.raises(R.RecipeError, match="max_stpes"):
        R.resolve_recipe("ptb-lm", "smoke")


def test_suggest_en_model_fits_a_phone():
    r = R.resolve_recipe("suggest-en", "full")
    args = {k: v for k, v in r["model"].items() if k != "kind"}
    model = LanguageModel(LMConfig(vocab_size=r["tokenizer"]["vocab_size"], **args))
    assert model.num_params() <= 8_000_000, model.num_params()


def test_suggest_en_gpt_is_the_same_task_with_a_transformer_that_fits_a_phone():
    from rnnkit.core.models.transformer import TransformerConfig, TransformerLM

    lstm, gpt = R.resolve_recipe("suggest-en", "full"), R.resolve_recipe("suggest-en-gpt", "full")
    assert gpt["model"]["kind"] == "transformer_lm" and gpt["tokenizer"] == lstm["tokenizer"]
    assert gpt["data"]["corpus"] == lstm["data"]["corpus"] and gpt["data"]["carry"]
    assert gpt["model"]["window"] >= gpt["data"]["bptt"]  # a window sees at least one whole training chunk
    args = {k: v for k, v in gpt["model"].items() if k != "kind"}
    model = TransformerLM(TransformerConfig(vocab_size=gpt["tokenizer"]["vocab_size"], **args))
    assert sum(p.numel() for p in model.parameters()) <= 8_000_000


# --------------------------------------------------------------------------- LM task
def test_batchify_columns_are_contiguous_and_windows_shift_by_one():
    ids = torch.arange(103)
    data = batchify(ids, 4)
    assert data.shape == (4, 25)
    assert torch.equal(data[1], torch.arange(25, 50))
    wins = list(LMWindows(data, 10))
    assert len(wins) == len(LMWindows(data, 10)) == 3
    x, y = wins[-1]
    assert x.shape == (4, 4) and torch.equal(y, x + 1)
    # every target appears exactly once per column: windows tile the column
    ys = torch.cat([y for _, y in wins], dim=1)
    assert torch.equal(ys, data[:, 1:])


def test_train_batches_deterministic_and_offset_per_epoch_and_sharded():
    ids = torch.arange(1000)
    task = LMTask(ids, ids[:100], batch_size=2, bptt=7, seed=3)
    e1 = [x.clone() for x, _ in task.train_batches(1)]
    assert all(torch.equal(a, b) for a, b in zip(e1, [x for x, _ in task.train_batches(1)]))
    starts = {int(next(iter(task.train_batches(e)))[0][0, 0]) for e in range(8)}
    assert len(starts) > 1 and starts <= set(range(7))  # window boundaries move, by less than bptt
    task.world_size = 2
    task.rank = 0
    r0 = next(iter(task.train_batches(0)))[0]
    task.rank = 1
    r1 = next(iter(task.train_batches(0)))[0]
    assert r0.shape == r1.shape == (2, 7)
    assert not set(r0.flatten().tolist()) & set(r1.flatten().tolist())


def _periodic_stream(n=4000, period=5, vocab=11):
    return torch.tensor([(i % period) + 1 for i in range(n)]) % vocab


def test_lm_task_learns_a_periodic_stream_with_the_trainer(tmp_path):
    from rnnkit.core.train.trainer import TrainConfig, train

    torch.manual_seed(0)
    stream = _periodic_stream()
    model = LanguageModel(LMConfig(vocab_size=11, embed_size=16, hidden_size=32, num_layers=1, dropout=0.0))
    task = LMTask(stream, stream[:500], stream[:500], batch_size=8, bptt=10)
    before = task.evaluate(model)["val_loss"]
    assert before == pytest.approx(math.log(11), abs=0.3)
    cfg = TrainConfig(run_dir=str(tmp_path / "run"), max_steps=60, lr=0.02, eval_every=60, checkpoint_every=0,
                      log_every=20, quiet=True, device="cpu")
    res = train(model, task, cfg)
    after = task.evaluate(model)
    assert after["val_loss"] < 0.1 < before, (before, after)
    assert after["val_ppl"] == pytest.approx(math.exp(after["val_loss"]))
    assert res.best_metric == pytest.approx(after["val_loss"], rel=1e-4)


def test_loss_carries_state_between_windows():
    torch.manual_seed(0)
    model = LanguageModel(LMConfig(vocab_size=11, embed_size=8, hidden_size=8, num_layers=1, dropout=0.0))
    task = LMTask(_periodic_stream(), _periodic_stream(200), batch_size=2, bptt=5)
    batch = next(iter(task.train_batches(0)))
    loss0, n, carry = task.loss(model, batch, None)
    loss1, _, carry1 = task.loss(model, batch, carry)
    assert n == 10
    assert carry[0].shape == (1, 2, 8) and not torch.equal(carry[0], carry1[0])
    assert not torch.isclose(loss0, loss1)  # the carried state changes the prediction


def test_stream_loss_equals_one_long_forward():
    torch.manual_seed(0)
    model = LanguageModel(LMConfig(vocab_size=11, embed_size=8, hidden_size=8, num_layers=2, dropout=0.0)).eval()
    ids = torch.randint(0, 11, (301,))
    task = LMTask(ids, ids, batch_size=2, bptt=7, eval_batch_size=1)
    logits, _ = model(ids[None, :-1])
    ref = torch.nn.functional.cross_entropy(logits[0], ids[1:]).item()
    assert task.stream_loss(model, ids) == pytest.approx(ref, rel=1e-5)


def test_append_jsonl_keeps_old_lines(tmp_path):
    p = tmp_path / "m.jsonl"
    p.write_text('{"a": 1}')  # no trailing newline
    append_jsonl(p, {"kind": "final", "b": 2})
    lines = [json.loads(l) for l in p.read_text().splitlines()]
    assert lines == [{"a": 1}, {"kind": "final", "b": 2}]


# --------------------------------------------------------------------------- next word
class PieceTok:
    """A stand-in for a SentencePiece tokenizer: fixed pieces."""

    def __init__(self, pieces):
        self.pieces = pieces
        self.vocab_size = len(pieces)

    def id_to_piece(self, i):
        return self.pieces[i]


PIECES = ["<pad>", "<eos>", "\u2581the", "\u2581cat", "\u2581do", "n't", "\u2581sat", ".", "\u2581c", "at"]


def test_true_word_joins_continuation_pieces_only():
    ids = [2, 4, 5, 6, 7, 8, 9, 2]
    assert true_word(ids, 1, PIECES, 6) == "don't"
    assert true_word(ids, 3, PIECES, 6) == "sat"  # "." is not part of the word
    assert true_word(ids, 5, PIECES, 6) == "cat"  # "▁c" + "at"


class ScriptedLM(torch.nn.Module):
    """A model whose next-token logits depend only on the last token: a lookup table."""

    def __init__(self, table):
        super().__init__()
        self.table = torch.nn.Parameter(table)

    def forward(self, tokens, state=None):
        if state is None:
            state = (torch.zeros(1, tokens.shape[0], 1),)
        return self.table[tokens], state


def test_next_word_accuracy_with_a_scripted_model():
    V = len(PIECES)
    table = torch.full((V, V), -10.0)
    table[2, 3] = 5.0   # after "the": cat, then "do"
    table[2, 4] = 4.0
    table[3, 6] = 5.0   # after "cat": sat
    table[6, 7] = 5.0   # after "sat": "."
    table[7, 2] = 5.0   # after ".": the
    table[4, 5] = 5.0   # "do" -> "n't" (a continuation, so the candidate word is "don't")
    table[5, 6] = 5.0   # "n't" -> sat
    # "the cat sat . the don't ..." : predicting "cat" after "the" is top-1, "don't" is top-2
    stream = torch.tensor([2, 3, 6, 7, 2, 4, 5, 6, 7] * 20)
    acc = next_word_accuracy(ScriptedLM(table), stream, PieceTok(PIECES), positions=1000, context=2)
    # word starts: the(->the after '.'), cat, sat, the, do(n't), sat per period of 9 -> 6 positions
    # hits: "the" after "." top-1; "cat" top-1; "sat" top-1; "don't" only top-3 -> 5/6 top1, 6/6 top3
    assert acc["top3"] == pytest.approx(1.0)
    assert acc["top1"] == pytest.approx(5 / 6, abs=0.02)
    assert acc["n"] > 100


# --------------------------------------------------------------------------- RESULTS.md
def test_make_results_reports_figures_against_bars(tmp_path):
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("make_results", Path(__file__).parents[1] / "docs" / "make_results.py")
    mr = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mr)
    run = tmp_path / "runs" / "ptb-lm"
    run.mkdir(parents=True)
    recipe = R.resolve_recipe("ptb-lm", "full", {"max_minutes": 60})
    recipe["commands"] = ["rnnkit train --recipe ptb-lm --set max_minutes=60"]
    (run / "recipe.json").write_text(json.dumps(recipe))
    (run / "metrics.jsonl").write_text(
        json.dumps({"kind": "train", "step": 50, "loss": 6.0, "items_per_s": 900.0, "elapsed": 60.0}) + "\n"
        + json.dumps({"kind": "eval", "step": 50, "val_loss": 5.0, "elapsed": 70.0}) + "\n")
    (run / "results.json").write_text(json.dumps({"kind": "final", "test_ppl": 120.5, "val_ppl": 125.0}))
    (run / "samples.txt").write_text("the company said <unk>\n")
    out = tmp_path / "docs" / "RESULTS.md"
    assert mr.main(["--runs", str(tmp_path / "runs"), "--out", str(out)]) == 0
    text = out.read_text()
    assert "| ptb-lm | test perplexity | 120.5 | <= 114 | MISSES bar <= 114 |" in text
    assert "rnnkit train --recipe ptb-lm --set max_minutes=60" in text
    assert "the company said" in text
    (run / "results.json").write_text(json.dumps({"kind": "final", "test_ppl": 99.0}))
    mr.main(["--runs", str(tmp_path / "runs"), "--out", str(out)])
    assert "meets bar <= 114" in out.read_text()


def test_decode_continuation_cuts_the_prompt_and_maps_eos_to_newline():
    from rnnkit.edge.npsample import decode_continuation, start_ids
    from rnnkit.core.text.tokenizers import CharTokenizer, WordTokenizer

    ch = CharTokenizer.train(["ab c\n"])
    ids = start_ids(ch, "ab")
    assert ch.decode(ids) == "\nab"
    assert decode_continuation(ch, ids, ch.encode(" c\na")) == " c\na"
    w = WordTokenizer.train(["the cat sat", "a dog"])
    ids = start_ids(w, "the cat")
    assert ids[0] == w.eos_id
    new = w.encode("sat") + [w.eos_id] + w.encode("a dog")
    assert decode_continuation(w, ids, new) == " sat\na dog"


def test_lm_fine_tunes_from_a_pretrained_run(tmp_path):
    """data.pretrained: the run starts from the LM's tokenizer and weights (its shapes win over the
    recipe's), keeps the recipe's dropout, and its lexicon keeps the words the LM knew."""
    from rnnkit.core.models import registry
    from rnnkit.core.models.kinds import LanguageModel, LMConfig
    from rnnkit.core.text.tokenizers import train_sentencepiece

    base = tmp_path / "base"
    lines = ["hello there my friend"] * 30 + ["see you tomorrow then"] * 30 + ["my own words are here"] * 30
    tok = train_sentencepiece(lines, vocab_size=300, model_type="unigram")
    tok.save(base)
    torch.manual_seed(0)
    lm = LanguageModel(LMConfig(vocab_size=tok.vocab_size, embed_size=12, hidden_size=12, num_layers=1,
                                tie_weights=True, pad_id=0, unk_id=1, bos_id=2, eos_id=3))
    registry.save(lm, base / "model")
    (base / "lexicon.txt").write_text("hello\nfriend\ntomorrow\n")
    mine = tmp_path / "mine.txt"
    mine.write_text("\n".join(["my own words are here"] * 40) + "\n")
    over = {"data.train_file": str(mine), "data.pretrained": str(base), "model.dropout": 0.3}
    model, task, run_tok = R.build(R.resolve_recipe("suggest-en", "smoke", over), tmp_path / "run")
    assert (model.config.hidden_size, model.config.dropout) == (12, 0.3)
    assert run_tok.encode("see you") == tok.encode("see you")
    for name, p in lm.state_dict().items():
        assert torch.equal(model.state_dict()[name], p), name
    lexicon = (tmp_path / "run" / "lexicon.txt").read_text().split()
    assert {"my", "own", "hello", "friend", "tomorrow"} <= set(lexicon)
    with pytest.raises(ValueError, match="reads sentencepiece tokens; this recipe trains on char"):
        R.build(R.resolve_recipe("char-shakespeare", "smoke", over), tmp_path / "run2")


def test_own_text_build_says_what_it_read_and_keeps_words_seen_once(tmp_path, capsys):
    mine = tmp_path / "mine.txt"
    mine.write_text("\n".join(["a zyzzyva once"] + [f"see you at the meeting number {i}" for i in range(60)]) + "\n")
    recipe = R.resolve_recipe("suggest-en", "smoke", {"data.train_file": str(mine)})
    R.build(recipe, tmp_path / "run")
    err = capsys.readouterr().err
    assert "read train 57 lines" in err and "valid 4 lines" in err and "vocabulary 296 pieces" in err, err
    assert "zyzzyva" in (tmp_path / "run" / "lexicon.txt").read_text().split()  # a small text: seen once is enough
    # and the suggester's background word n-gram, from the same training lines (kept whole: a small text)
    from rnnkit.edge.word_ngram import FILE_NAME, WordNgram
    ng = WordNgram.load(tmp_path / "run" / FILE_NAME)
    assert "zyzzyva" in ng.ids and ng.candidates("", ("see", "you"), 1) == ["at"]
