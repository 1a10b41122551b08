"""The CUDA paths on a real GPU: ``pytest -m cuda`` on a machine that has one.

CI has no GPU: ``make test`` deselects the ``cuda`` marker (a deselection, not a skip), and
``bench/gpu_recipes.py`` runs this module first on a lent GPU machine. What only a GPU shows:
cuDNN's fused kernels under bf16 / fp16 autocast (fp16 with its GradScaler), a checkpoint
written on the GPU resuming there, and a GPU-trained model exporting to a CPU graph that
matches PyTorch (the export's parity check).
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from rnnkit.cli import main

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (pytest -m cuda)")]

TEXT = ("The quick brown fox jumps over the lazy dog. Thank you for the lovely evening.\n"
        "Can we schedule a meeting for next week? See you tomorrow at the station.\n") * 60
SMOKE = ["--size", "smoke", "--device", "cuda", "--quiet", "--set", "eval_every=20", "--set", "log_every=10",
         "--set", "checkpoint_every=20"]


def _final(run):
    recs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return recs, [r for r in recs if r.get("kind") == "final"][-1]


@pytest.fixture
def text(tmp_path):
    path = tmp_path / "my.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


@pytest.mark.parametrize("precision", ["bf16", "fp16", "fp32"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_train_on_the_gpu_then_export_to_the_cpu(tmp_path, text, precision, cell):
    run = tmp_path / "run"
    assert main(["train", "--recipe", "char-shakespeare", "--train", str(text), "--run-dir", str(run), *SMOKE,
                 "--set", "max_steps=60", "--set", f"precision={precision}", "--set", f"cell={cell}"]) == 0
    recs, final = _final(run)
    first = [r["loss"] for r in recs if r.get("kind") == "train"][0]
    assert math.isfinite(final["val_loss"]) and final["val_loss"] < first
    # the export runs the model on the CPU in PyTorch and in onnxruntime and refuses a mismatch
    assert main(["export", str(run), "--out", str(tmp_path / "bundle")]) == 0
    manifest = json.loads((tmp_path / "bundle" / "manifest.json").read_text())
    assert manifest["files"]


def test_resume_on_the_gpu_matches_a_straight_run(tmp_path, text):
    straight, paused = tmp_path / "straight", tmp_path / "paused"
    common = ["--recipe", "char-shakespeare", "--train", str(text), *SMOKE, "--set", "precision=fp32",
              "--set", "schedule=cosine"]
    torch.backends.cudnn.deterministic = True
    assert main(["train", *common, "--run-dir", str(straight), "--set", "max_steps=40"]) == 0
    assert main(["train", *common, "--run-dir", str(paused), "--set", "max_steps=40", "--set", "max_minutes=1e-9"]) == 0
    assert main(["train", "--resume", str(paused), "--device", "cuda", "--quiet", "--set", "max_minutes=0"]) == 0
    a, b = _final(straight)[1], _final(paused)[1]
    assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-4)


@pytest.mark.data
@pytest.mark.parametrize("recipe", ["sentiment-mr", "ner-conll", "translate-en-de", "suggest-en-gpt"])
def test_other_tasks_smoke_on_the_gpu(tmp_path, recipe):
    from rnnkit.core.data import is_complete
    from rnnkit.core.recipes import resolve_recipe

    corpus = resolve_recipe(recipe, "smoke", {})["data"]["corpus"]
    if not is_complete(corpus):
        pytest.skip(f"corpus {corpus!r} not fetched")
    run = tmp_path / recipe
    assert main(["train", "--recipe", recipe, "--size", "smoke", "--device", "cuda", "--quiet",
                 "--run-dir", str(run)]) == 0
    final = _final(run)[1]
    assert all(math.isfinite(v) for k, v in final.items() if k.startswith("val_") and isinstance(v, float))
