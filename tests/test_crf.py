"""The CRF output layer of the tagger: its loss against brute force, Viterbi against brute force,
and a CRF tagger end to end (train, export, the torch-free tagger decodes as the task does)."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
import torch

from rnnkit.core.models.crf import crf_nll
from rnnkit.edge.viterbi import decode_batch, tables, viterbi


def _path_score(em, tags, trans, start, end):
    s = start[tags[0]] + em[0, tags[0]] + end[tags[-1]]
    return s + sum(trans[a, b] + em[t + 1, b] for t, (a, b) in enumerate(zip(tags, tags[1:])))


@pytest.fixture
def crf_case():
    g = torch.Generator().manual_seed(0)
    K = 3
    return (torch.randn(2, 4, K, generator=g), torch.randn(K, K, generator=g), torch.randn(K, generator=g),
            torch.randn(K, generator=g))


def test_nll_is_minus_log_of_the_gold_paths_probability(crf_case):
    em, trans, start, end = crf_case
    tags = torch.tensor([[0, 2, 1, 1], [2, 0, -100, -100]])
    mask = torch.tensor([[True] * 4, [True, True, False, False]])
    got = crf_nll(em, tags, mask, trans, start, end)
    want = 0.0
    for b, n in enumerate([4, 2]):
        e = em[b, :n].double()
        scores = {p: float(_path_score(e, p, trans.double(), start.double(), end.double()))
                  for p in itertools.product(range(3), repeat=n)}
        log_z = math.log(sum(math.exp(v) for v in scores.values()))
        want += log_z - scores[tuple(tags[b, :n].tolist())]
    assert float(got) == pytest.approx(want, rel=1e-5)


def test_nll_gradients_reach_every_table(crf_case):
    em, trans, start, end = (t.clone().requires_grad_() for t in crf_case)
    crf_nll(em, torch.zeros(2, 4, dtype=torch.long), torch.ones(2, 4, dtype=torch.bool), trans, start, end).backward()
    assert all(t.grad is not None and t.grad.abs().sum() > 0 for t in (em, trans, start, end))


def test_viterbi_finds_the_best_path(crf_case):
    em, trans, start, end = (t.double().numpy() for t in crf_case)
    for b in range(2):
        for n in (1, 2, 4):
            e = em[b, :n]
            best = max(itertools.product(range(3), repeat=n), key=lambda p: _path_score(e, p, trans, start, end))
            assert viterbi(e, trans, start, end) == list(best)
    assert viterbi(em[0, :0], trans, start, end) == []


def test_decode_batch_without_crf_is_argmax_and_tables_are_checked(crf_case):
    em = crf_case[0].numpy()
    assert decode_batch(em, [4, 2], None) == [em[0].argmax(-1).tolist(), em[1, :2].argmax(-1).tolist()]
    with pytest.raises(ValueError):
        tables({"transitions": [[0.0]], "start": [0.0, 1.0], "end": [0.0]})
    with pytest.raises(ValueError):
        tables({"transitions": [[float("nan")]], "start": [0.0], "end": [0.0]})


@pytest.mark.data
def test_crf_tagger_trains_exports_and_decodes_the_same_on_the_device(tmp_path):
    from rnnkit.cli import main
    from rnnkit.core.data import is_complete

    if not is_complete("conll2003"):
        pytest.skip("corpus 'conll2003' not fetched: run `rnnkit data fetch` (CI does)")
    run, bundle = tmp_path / "run", tmp_path / "bundle"
    assert main(["train", "--recipe", "ner-conll", "--size", "smoke", "--run-dir", str(run), "--quiet",
                 "--set", "model.crf=true", "--set", "max_epochs=3"]) == 0
    final = json.loads((run / "results.json").read_text())
    assert math.isfinite(final["val_f1"])
    assert main(["export", str(run), "--out", str(bundle), "--int8", "--eval-task"]) == 0
    manifest = json.loads((bundle / "manifest.json").read_text())
    K = len(manifest["crf"]["start"])
    assert np.asarray(manifest["crf"]["transitions"]).shape == (K, K) and np.abs(manifest["crf"]["transitions"]).sum() > 0
    # the device decodes with the same Viterbi, so its entity F1 is the task's on the same graph
    task = manifest["int8"]["task"]
    assert task["int8"]["val_f1"] == pytest.approx(task["torch"]["val_f1"], abs=1.0)
    from rnnkit.core.models import registry
    from rnnkit.edge.predict_tag import EntityTagger

    fp32 = tmp_path / "fp32"  # the fp32 graph matches PyTorch to 1e-5: the same tags, ties aside
    assert main(["export", str(run), "--out", str(fp32)]) == 0
    tagger = EntityTagger(fp32)
    assert tagger.crf is not None
    model = registry.load(run / "model")
    tokens = ["EU", "rejects", "German", "call", "to", "boycott", "British", "lamb", "."]
    from rnnkit.core.recipes import build, load_run_recipe

    _, task_obj, _ = build(load_run_recipe(run), run)
    assert tagger.tag(tokens) == task_obj.predict(model, [tokens])[0]
