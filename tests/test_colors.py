"""The seed's colors toy, trained by the real rnnkit trainer.

phrase -> RGB (many-to-one regression): MSE < 1 in RGB units within seconds.
RGB -> phrase (one-to-many, ConditionedGenerator): greedy decoding gives the phrase back.
"""

from __future__ import annotations

import time

import pytest
import torch

from rnnkit.core import recipes as R
from rnnkit.core.models import registry
from rnnkit.core.models.kinds import ConditionedGenerator, OneToManyConfig
from rnnkit.core.tasks.classify import COLORS, ColorsInverseTask, read_color_file
from rnnkit.core.train.trainer import TrainConfig, train

torch.set_num_threads(1)


def test_colors_recipe_reaches_mse_below_one_rgb_unit(tmp_path):
    recipe = R.resolve_recipe("colors", "smoke")
    torch.manual_seed(0)  # the weights are drawn in build(), before train() seeds anything
    model, task, tok = R.build(recipe, tmp_path)
    assert (tmp_path / "tokenizer.json").is_file()  # char tokenizer saved with the run
    cfg = TrainConfig(**{**recipe["train"], "run_dir": str(tmp_path), "quiet": True})
    t0 = time.perf_counter()
    result = train(model, task, cfg)
    # printed, not asserted: wall-clock time depends on the machine's load (timing is bench/'s job)
    print(f"colors: best val_mse {result.best_metric:.3g} RGB^2 in {time.perf_counter() - t0:.1f}s")
    assert result.best_metric < 1.0
    assert result.steps <= recipe["train"]["max_steps"]  # "in seconds": a bounded number of steps
    best = registry.load(tmp_path / "model")  # what rnnkit export reads
    rgb = task.predict_rgb(best, [t for t, _ in COLORS])
    assert torch.equal(rgb.round(), torch.tensor([c for _, c in COLORS], dtype=torch.float32))
    assert task.evaluate(best)["val_mse"] == pytest.approx(result.best_metric, rel=1e-4, abs=1e-6)


def test_colors_inverse_generates_each_phrase(tmp_path):
    from rnnkit.core.tasks.lm_data import train_tokenizer

    tok = train_tokenizer({"kind": "char"}, [t for t, _ in COLORS])
    task = ColorsInverseTask(tok)
    torch.manual_seed(0)
    model = ConditionedGenerator(OneToManyConfig(cond_size=3, vocab_size=task.vocab_size, cell="gru",
                                                 embed_size=16, hidden_size=48, bos_id=task.bos, eos_id=task.eos))
    cfg = TrainConfig(run_dir=str(tmp_path), optimizer="adam", lr=0.01, max_steps=300, eval_every=100,
                      checkpoint_every=0, log_every=100, quiet=True, seed=3)
    result = train(model, task, cfg)
    assert result.best_metric == 100.0
    best = registry.load(tmp_path / "model")
    for text, rgb in COLORS:
        assert task.generate(best, rgb) == text
    # A colour near the forest's green still reads as the forest.
    assert task.generate(best, (10, 120, 10)) == "The Forest"


def test_user_color_file_and_errors(tmp_path):
    good = tmp_path / "colors.tsv"
    good.write_text("Night\t0\t0\t40\nSnow\t250\t250\t250\n", encoding="utf-8")
    assert read_color_file(good) == [("Night", (0.0, 0.0, 40.0)), ("Snow", (250.0, 250.0, 250.0))]
    bad = tmp_path / "bad.tsv"
    bad.write_text("Night\t0\t0\t40\nSun\t300\t200\t0\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad.tsv:2: .*0\.\.255"):
        read_color_file(bad)
    short = tmp_path / "short.tsv"
    short.write_text("Night 0 0 40\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"short.tsv:1: expected 4 tab-separated columns"):
        read_color_file(short)
