"""`rnnkit soup`: a greedy model soup of runs (core/train/soup.py)."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

import predict_fixtures as F
from rnnkit.core.models import registry
from rnnkit.core.cli.soup import average, soup


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """A tiny sentiment run, and a second one on the same tokenizer from another seed."""
    from rnnkit.cli import main

    tmp = tmp_path_factory.mktemp("soup")
    data = F.write_sentiment(tmp / "data.tsv")
    a, b = tmp / "a", tmp / "b"
    common = ["train", "--recipe", "sentiment-mr", "--size", "smoke", "--train", str(data), "--threads", "1", "--quiet"]
    assert main([*common, "--run-dir", str(a)]) == 0
    assert main([*common, "--run-dir", str(b), "--tokenizer-from", str(a), "--set", "train.seed=7"]) == 0
    return a, b, data


def test_average_is_the_mean_of_float_weights():
    torch.manual_seed(0)
    m1, m2 = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    mean = average([m1, m2])
    assert torch.allclose(mean["weight"], (m1.weight + m2.weight) / 2)
    assert torch.allclose(mean["bias"], (m1.bias + m2.bias) / 2)
    bn1, bn2 = torch.nn.BatchNorm1d(2), torch.nn.BatchNorm1d(2)
    bn2.num_batches_tracked += 5
    assert average([bn1, bn2])["num_batches_tracked"] == 0  # integers are not averaged: the first model's


def test_greedy_soup_is_never_worse_on_validation(two_runs, tmp_path):
    a, b, data = two_runs
    c = tmp_path / "a-copy"
    shutil.copytree(a, c)  # the same weights again: averaging them changes nothing, so it is kept
    out = tmp_path / "soup"
    lines = []
    rec = soup([b, a, c], out, log=lines.append)
    singles = {r["run"]: r[rec["metric"]] for r in rec["runs"]}
    assert rec[f"soup_{rec['metric']}"] >= max(singles.values())  # greedy: only kept when not worse
    assert rec["members"][0] == max(singles, key=singles.get)  # the best single run goes in first
    assert str(c) in rec["members"] or str(a) in rec["members"]
    assert [t["kept"] for t in rec["tried"]] == [m in rec["members"] for m in (t["run"] for t in rec["tried"])]
    # a run directory: the model, the recipe, the tokenizer, results with validation and test figures
    assert (out / "model" / "model.safetensors").is_file() and (out / "recipe.json").is_file()
    assert (out / "tokenizer.model").is_file() or (out / "tokenizer.json").is_file()
    assert json.loads((out / "soup.json").read_text())["members"] == rec["members"]
    results = json.loads((out / "results.json").read_text())
    assert results["val_acc"] == pytest.approx(rec["soup_val_acc"])
    assert not (out / "checkpoints").exists()
    model = registry.load(out / "model")
    expected = average([registry.load(__import__("pathlib").Path(m) / "model") for m in rec["members"]])
    assert all(torch.allclose(model.state_dict()[k], v) for k, v in expected.items())
    from rnnkit.cli import main

    assert main(["eval", str(out), "--data", str(data)]) == 0  # rnnkit eval takes the soup as a run


def test_soup_refuses_what_cannot_be_averaged(two_runs, tmp_path):
    from rnnkit.cli import main

    a, b, data = two_runs
    with pytest.raises(ValueError, match="at least two"):
        soup([a], tmp_path / "s1")
    other = tmp_path / "other"
    assert main(["train", "--recipe", "sentiment-mr", "--size", "smoke", "--train", str(data), "--threads", "1",
                 "--quiet", "--run-dir", str(other), "--set", "model.hidden_size=8"]) == 0
    with pytest.raises(ValueError, match="different model"):
        soup([a, other], tmp_path / "s2")
    retok = tmp_path / "retok"
    shutil.copytree(a, retok)
    tok = next(p for p in retok.iterdir() if p.name.startswith("tokenizer."))
    tok.write_bytes(tok.read_bytes() + b" ")  # same model, another tokenizer: ids would mean other pieces
    with pytest.raises(ValueError, match="different tokenizers"):
        soup([a, retok], tmp_path / "s3")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="refusing"):
        soup([a, b], busy)
    with pytest.raises(FileNotFoundError, match="not a run directory"):
        soup([a, tmp_path], tmp_path / "s4")
    # runs that trained on the validation split: the greedy rule would choose on rows they learnt
    final = tmp_path / "final"
    shutil.copytree(b, final)
    recipe = json.loads((final / "recipe.json").read_text())
    recipe["data"]["train_on_valid"] = True
    (final / "recipe.json").write_text(json.dumps(recipe))
    with pytest.raises(ValueError, match="train_on_valid.*--uniform"):
        soup([a, final], tmp_path / "s5")
    assert soup([a, final], tmp_path / "s6", greedy=False)["method"] == "uniform"


def test_a_soup_reads_like_a_run(two_runs, tmp_path):
    """best.json and an eval line: bundles and model cards summarise a soup as they do any run."""
    from rnnkit.core.train.run_log import summarize_run

    a, b, _ = two_runs
    out = tmp_path / "soup"
    soup([a, b], out, log=lambda _: None)
    summary = summarize_run(out)
    assert summary["metric"] == "val_acc" and summary["mode"] == "max"
    assert summary["best"]["val_acc"] == pytest.approx(json.loads((out / "soup.json").read_text())["soup_val_acc"])
    assert "val_acc" in summary["final"]  # (a user file has no test split; MR's would add test_acc)
    assert json.loads((out / "config.json").read_text())["soup"]["members"]
    soup([a, b], out, log=lambda _: None)  # again into the same soup: replaced, not appended to
    assert sum(1 for _ in (out / "metrics.jsonl").open()) == 2


def test_a_run_whose_weights_are_nan_is_refused(two_runs, tmp_path):
    a, b, _ = two_runs
    bad = tmp_path / "bad"
    shutil.copytree(b, bad)
    model = registry.load(bad / "model")
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(float("nan"))
    registry.save(model, bad / "model")
    with pytest.raises(ValueError, match="NaN/inf value.*refusing to average it"):
        soup([a, bad], tmp_path / "s")


def test_greedy_soup_leaves_out_a_run_that_makes_it_worse(two_runs, tmp_path):
    """A run whose weights are the negation of the best one's averages with it to zero: a useless
    model, so the greedy rule must leave it out, while an identical copy of the best goes in."""
    a, b, _ = two_runs
    flipped, same = tmp_path / "flipped", tmp_path / "same"
    shutil.copytree(a, flipped)
    shutil.copytree(a, same)
    model = registry.load(flipped / "model")
    with torch.no_grad():
        for p in model.parameters():
            p.neg_()
    registry.save(model, flipped / "model")
    rec = soup([a, flipped, same], tmp_path / "soup", log=lambda _: None)
    assert str(flipped) not in rec["members"] and str(same) in rec["members"]
    best = rec["runs"][0][rec["metric"]]
    for t in rec["tried"]:  # the rule, step by step: kept exactly when not worse than the soup so far
        assert t["kept"] == (t[rec["metric"]] >= best)
        best = t[rec["metric"]] if t["kept"] else best


def test_a_paused_run_forks_into_runs_that_soup(tmp_path):
    """--pause-at-step N stops at N with a checkpoint; copies resumed with other seeds share the
    weights up to N, go their own way after it, and `rnnkit soup` takes them."""
    from rnnkit.cli import main

    data = F.write_sentiment(tmp_path / "data.tsv")
    parent = tmp_path / "parent"
    common = ["--threads", "1", "--quiet"]
    assert main(["train", "--recipe", "sentiment-mr", "--size", "smoke", "--train", str(data),
                 "--run-dir", str(parent), "--pause-at-step", "3", *common]) == 0
    assert json.loads((parent / "checkpoints" / "latest" / "state.json").read_text())["step"] == 3
    assert not (parent / "results.json").exists()  # paused: not scored yet
    forks = []
    for seed in (11, 12):
        child = tmp_path / f"fork{seed}"
        shutil.copytree(parent, child)
        assert main(["train", "--resume", str(child), "--set", f"train.seed={seed}", *common]) == 0
        forks.append(child)
    a, b = (registry.load(f / "model") for f in forks)
    assert any(not torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert main(["soup", *map(str, forks), "--out", str(tmp_path / "soup")]) == 0
    assert (tmp_path / "soup" / "soup.json").is_file()
    assert main(["train", "--recipe", "sentiment-mr", "--size", "smoke", "--train", str(data),
                 "--run-dir", str(tmp_path / "bad"), "--pause-at-step", "0", *common]) != 0
