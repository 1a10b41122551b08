"""Every language-model recipe at its smoke size on the REAL corpora (CI runs `rnnkit data fetch` first).

Each trains in seconds through the same `rnnkit train` path as a full run, and must end with a
finite validation loss below its initial one. Skips, saying why, when the corpora are missing.
"""

from __future__ import annotations

import json
import math

import pytest
import torch

from rnnkit.cli import main
from rnnkit.core.data import is_complete

torch.set_num_threads(1)

CORPUS = {"char-shakespeare": "shakespeare", "char-shakespeare-gpt": "shakespeare", "ptb-lm": "ptb",
          "suggest-en": "suggest_en", "suggest-en-gpt": "suggest_en"}


@pytest.mark.data
@pytest.mark.parametrize("recipe", sorted(CORPUS))
def test_lm_recipe_smoke_on_real_corpus(recipe, tmp_path):
    if not is_complete(CORPUS[recipe]):
        pytest.skip(f"corpus {CORPUS[recipe]!r} not fetched: run `rnnkit data fetch` (CI does)")
    run = tmp_path / recipe
    assert main(["train", "--recipe", recipe, "--size", "smoke", "--run-dir", str(run), "--quiet"]) == 0
    recs = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    final = [r for r in recs if r.get("kind") == "final"][-1]
    assert math.isfinite(final["val_loss"]) and math.isfinite(final["test_loss"])
    first_train = [r for r in recs if r.get("kind") == "train"][0]["loss"]
    assert final["val_loss"] < first_train, (first_train, final["val_loss"])
    # an untrained model scores about ln(vocab): the trained one must be clearly better
    from rnnkit.core.text.tokenizers import load_tokenizer

    assert final["val_loss"] < 0.95 * math.log(load_tokenizer(run).vocab_size)
    if recipe.startswith("suggest-en"):
        assert final["val_next_proxy_n"] > 0 and 0.0 < final["val_next_proxy_top3"] <= 1.0
        assert final["val_next_proxy_top1"] <= final["val_next_proxy_top3"]
    assert (run / "samples.txt").read_text().strip()
    assert json.loads((run / "recipe.json").read_text())["size"] == "smoke"
