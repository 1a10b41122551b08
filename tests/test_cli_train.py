"""``rnnkit train`` / ``rnnkit sample`` end to end on a tiny text file you could have written.

This is the path docs/OWN_DATA.md shows: train on your own text, resume, sample from it.
No corpus needed (the recipe's corpus is replaced by --train).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from rnnkit.cli import main
from rnnkit.core.text.tokenizers import load_tokenizer

torch.set_num_threads(1)

TEXT = """The quick brown fox jumps over the lazy dog.
A stitch in time saves nine, and the early bird catches the worm.
She sells sea shells by the sea shore; the shells she sells are surely sea shells.
How much wood would a woodchuck chuck if a woodchuck could chuck wood?
Peter Piper picked a peck of pickled peppers.
"""
SALES = Path(__file__).resolve().parents[1] / "docs" / "examples" / "sales.csv"
FAST = ["--size", "smoke", "--set", "max_steps=12", "--set", "eval_every=6", "--set", "log_every=3",
        "--set", "checkpoint_every=6", "--quiet"]
# Enough steps to learn the text well below chance (ln V) on any machine: ~1.1 nats/char at
# 60 steps vs ln 39 = 3.66 for a uniform guess (still about a second of training).
TRAINED = ["--size", "smoke", "--set", "max_steps=60", "--set", "eval_every=30", "--set", "log_every=10",
           "--set", "checkpoint_every=30", "--quiet"]


@pytest.fixture
def my_text(tmp_path):
    path = tmp_path / "my.txt"
    path.write_text(TEXT * 30, encoding="utf-8")
    return path


def _metrics(run):
    return [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]


def test_train_on_own_text_then_resume_then_sample(tmp_path, my_text, capsys):
    run = tmp_path / "run"
    assert main(["train", "--recipe", "char-shakespeare", "--train", str(my_text), "--run-dir", str(run), *TRAINED]) == 0
    recipe = json.loads((run / "recipe.json").read_text())
    assert recipe["data"]["train_file"] == str(my_text.resolve())
    assert recipe["train"]["max_steps"] == 60 and recipe["overrides"]["train.max_steps"] == 60
    vocab = json.loads((run / "tokenizer.json").read_text())
    assert "\u2581" not in json.dumps(vocab) and "z" in json.dumps(vocab)  # chars of MY text
    recs = _metrics(run)
    train_losses = [r["loss"] for r in recs if r.get("kind") == "train"]
    assert train_losses[-1] < train_losses[0]
    final = [r for r in recs if r.get("kind") == "final"]
    chance = math.log(load_tokenizer(run).vocab_size)  # nats/char of a uniform guess over this run's vocabulary
    assert 30 <= load_tokenizer(run).vocab_size <= 60  # the characters of TEXT (+ specials)
    assert len(final) == 1 and final[0]["val_loss"] <= 0.75 * chance, (final[0]["val_loss"], chance)
    res = json.loads((run / "results.json").read_text())
    assert res["val_loss"] == pytest.approx(final[0]["val_loss"])
    assert (run / "samples.txt").read_text().strip()

    # resume with a bigger budget: continues from step 60, not from 0
    assert main(["train", "--resume", str(run), "--set", "max_steps=70", "--quiet"]) == 0
    steps = [r["step"] for r in _metrics(run) if r.get("kind") == "train"]
    assert steps == sorted(steps) and steps[-1] == 70 and len(steps) == len(set(steps))
    capsys.readouterr()

    assert main(["sample", str(run), "--prompt", "The ", "--length", "40", "--seed", "1"]) == 0
    out1 = capsys.readouterr().out
    assert main(["sample", str(run), "--prompt", "The ", "--length", "40", "--seed", "1"]) == 0
    out2 = capsys.readouterr().out
    assert out1 == out2 and out1.startswith("The ") and len(out1) > len("The ") + 20


def test_sentencepiece_recipe_on_own_text_with_valid_file(tmp_path, my_text):
    valid = tmp_path / "v.txt"
    valid.write_text("The lazy fox sells sea shells.\nPeter picked wood.\n", encoding="utf-8")
    run = tmp_path / "sp"
    assert main(["train", "--recipe", "suggest-en", "--train", str(my_text), "--valid", str(valid),
                 "--run-dir", str(run), "--set", "tokenizer.vocab_size=300", *FAST]) == 0
    assert (run / "tokenizer.model").is_file()
    final = json.loads((run / "results.json").read_text())
    chance = math.log(load_tokenizer(run).vocab_size)  # nats/token of a uniform guess
    assert math.isfinite(final["val_loss"]) and final["val_loss"] <= 0.9 * chance, (final["val_loss"], chance)
    assert 0.0 <= final["val_next_proxy_top3"] <= 1.0


def test_user_errors_are_one_line_messages(tmp_path, my_text, capsys):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine line\nbroken \xff\xfe line\n")
    cases = [
        (["train", "--recipe", "nope"], "unknown recipe 'nope'"),
        (["train", "--recipe", "ptb-lm", "--set", "hiden_size=3"], "allowed keys"),
        (["train", "--recipe", "ptb-lm", "--set", "oops"], "key=value"),
        (["train", "--recipe", "ptb-lm", "--train", str(tmp_path / "missing.txt")], "no such file"),
        (["train", "--recipe", "char-shakespeare", "--train", str(bad), "--run-dir", str(tmp_path / "b"), *FAST],
         ":2"),  # the line number of the bad bytes
        (["train"], "--recipe NAME is required"),
        (["sample", str(tmp_path)], "not found"),
        # values of the right type that no run can use: refused before anything is written
        (["train", "--recipe", "sentiment-mr", "--set", "data.batch_size=0"], "data.batch_size=0: must be at least 1"),
        (["train", "--recipe", "ptb-lm", "--set", "data.eval_batch_size=0"], "must be at least 1"),
        (["train", "--recipe", "sentiment-mr", "--set", "data.max_len=0"], "data.max_len=0: must be at least 1"),
        (["train", "--recipe", "sentiment-mr", "--set", "data.score_weight=-5"], "data.score_weight=-5: must be from 0"),
        (["train", "--recipe", "timeseries", "--train", str(SALES), "--run-dir", str(tmp_path / "t1"),
          "--set", 'data.user_series={"period": 12, "val": 12}'], "unknown key(s) ['val']"),
        (["train", "--recipe", "timeseries", "--train", str(SALES), "--run-dir", str(tmp_path / "t2"),
          "--set", 'data.user_series={"period": "12"}'], "period must be a whole number >= 1"),
        (["train", "--recipe", "timeseries", "--train", str(SALES), "--run-dir", str(tmp_path / "t3"),
          "--set", 'data.user_series={"period": 12, "log": "no"}'], "log must be true or false"),
    ]
    for argv, needle in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert needle in err and "Traceback" not in err, (argv, err)


def test_existing_run_dir_is_not_overwritten(tmp_path, my_text, capsys):
    run = tmp_path / "run"
    args = ["train", "--recipe", "char-shakespeare", "--train", str(my_text), "--run-dir", str(run), *FAST]
    assert main(args) == 0
    assert main(args) == 2
    assert "--resume" in capsys.readouterr().err


def test_list_shows_the_lm_recipes(capsys):
    assert main(["train", "--list"]) == 0
    out = capsys.readouterr().out
    for name in ("char-shakespeare", "ptb-lm", "suggest-en"):
        assert name in out


def test_data_folder_and_holdout(tmp_path, my_text):
    import argparse

    from rnnkit.core.cli.train import user_data_overrides
    from rnnkit.core.tasks.lm_data import load_splits

    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "train.txt").write_text("a\n" * 10)
    (folder / "valid.txt").write_text("b\n")
    ns = argparse.Namespace(data=str(folder), train_file=None, valid_file=None)
    got = user_data_overrides(ns)
    assert set(got) == {"data.train_file", "data.valid_file"}
    with pytest.raises(ValueError, match="not both"):
        user_data_overrides(argparse.Namespace(data=str(folder), train_file=str(my_text), valid_file=None))
    # no valid file: the LAST 5 % of lines (at least one) are held out, nothing overlaps
    lines = [f"line {i}" for i in range(40)]
    (tmp_path / "t.txt").write_text("\n".join(lines) + "\n")
    splits = load_splits({"train_file": str(tmp_path / "t.txt")})
    assert splits["train"] == lines[:38] and splits["valid"] == lines[38:] and "test" not in splits
    (tmp_path / "one.txt").write_text("only one line\n")
    with pytest.raises(ValueError, match="at least 2 lines"):
        load_splits({"train_file": str(tmp_path / "one.txt")})
    # blank lines at the end are no validation text: the held-out part has lines with text
    (tmp_path / "trail.txt").write_text("\n".join(lines) + "\n" * 30)
    splits = load_splits({"train_file": str(tmp_path / "trail.txt")})
    assert splits["train"] == lines[:38] and [x for x in splits["valid"] if x.strip()] == lines[38:]


def test_a_tiny_text_trains_past_its_first_epoch():
    """Each epoch starts at a random offset; on a tiny stream it must leave every column tokens."""
    from rnnkit.core.tasks.lm import LMTask

    task = LMTask(torch.arange(36) % 7, torch.arange(10) % 7, batch_size=16, bptt=35)
    for epoch in range(30):
        x, y = next(iter(task.train_batches(epoch)))
        assert x.shape[0] == 16 and x.shape[1] >= 1


def test_tokenizer_from_another_run(tmp_path, my_text):
    first, second = tmp_path / "first", tmp_path / "second"
    assert main(["train", "--recipe", "char-shakespeare", "--train", str(my_text), "--run-dir", str(first), *FAST]) == 0
    # a different text: a tokenizer trained on it would differ; --tokenizer-from keeps the first one's
    other = tmp_path / "other.txt"
    other.write_text("zzz qqq xxx\n" * 200, encoding="utf-8")
    assert main(["train", "--recipe", "char-shakespeare", "--train", str(other), "--run-dir", str(second),
                 "--tokenizer-from", str(first), *FAST]) == 0
    assert (second / "tokenizer.json").read_bytes() == (first / "tokenizer.json").read_bytes()
    assert "--tokenizer-from" in json.loads((second / "recipe.json").read_text())["commands"][-1]
    assert main(["train", "--recipe", "char-shakespeare", "--train", str(my_text), "--run-dir", str(tmp_path / "x"),
                 "--tokenizer-from", str(tmp_path / "nowhere"), *FAST]) != 0
