"""docs/OWN_DATA.md's example files, one per format, read by the recipes' own readers; the
small-validation warning; the tokenizer size a small text really gets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rnnkit.cli import main
from rnnkit.core.data.readers import (read_conll, read_parallel_tsv, read_series_csv, read_text_lines,
                                      read_tsv, warn_small_valid)

EXAMPLES = Path(__file__).resolve().parent.parent / "docs" / "examples"


def test_every_documented_example_reads():
    assert len(read_text_lines(EXAMPLES / "notes.txt")) == 5
    assert read_tsv(EXAMPLES / "sentiment.tsv", columns=("score", "text")) == [
        (1.0, "A warm, funny film with a great cast."), (-1.0, "A dull and boring mess."),
        (0.6, "Mostly charming, if a little long."), (-0.8, "I walked out after twenty minutes.")]
    assert [s for s, _ in read_tsv(EXAMPLES / "sentiment_01.tsv", columns=("score", "text"))] == [1, -1, 1, -1]
    assert read_parallel_tsv(EXAMPLES / "translation.tsv")[0] == ("How heavy is the parcel?", "Wie schwer ist das Paket?")
    assert read_conll(EXAMPLES / "entities.conll") == [
        (["Anna", "flew", "to", "Berlin", "on", "Monday", "."], ["B-PER", "O", "O", "B-LOC", "O", "O", "O"]),
        (["She", "works", "at", "Acme", "Corp", "."], ["O", "O", "O", "B-ORG", "I-ORG", "O"])]
    sales = read_series_csv(EXAMPLES / "sales.csv")
    assert len(sales.values) == 60 and sales.missing_lines == [19]  # header is line 1, the gap is row 18


def test_every_example_is_named_in_the_doc():
    doc = (EXAMPLES.parent / "OWN_DATA.md").read_text(encoding="utf-8")
    for f in EXAMPLES.iterdir():
        assert f"examples/{f.name}" in doc, f.name


def test_small_validation_warns(capsys):
    assert warn_small_valid(5, "rows", held_out=True, fraction=0.1)
    err = capsys.readouterr().err
    assert "only 5 rows" in err and "--valid" in err
    assert not warn_small_valid(500, "rows", held_out=True, fraction=0.1)
    assert capsys.readouterr().err == ""


@pytest.mark.slow
def test_small_text_vocabulary_is_said_and_recorded(tmp_path, capsys):
    text = tmp_path / "notes.txt"
    text.write_text((EXAMPLES / "notes.txt").read_text() * 20)
    run = tmp_path / "run"
    assert main(["train", "--recipe", "suggest-en", "--size", "smoke", "--train", str(text), "--run-dir", str(run),
                 "--set", "tokenizer.vocab_size=2000", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "asked for 2000 pieces" in err and "validation has only" in err
    recipe = json.loads((run / "recipe.json").read_text())
    assert recipe["tokenizer"]["vocab_size"] == 2000 and 260 < recipe["tokenizer"]["vocab_size_actual"] < 2000
    config = json.loads((run / "model" / "config.json").read_text())["config"]
    assert config["vocab_size"] == recipe["tokenizer"]["vocab_size_actual"]
    assert main(["train", "--resume", str(run), "--quiet"]) == 0  # the recorded size does not upset resume
