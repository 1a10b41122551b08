"""Every int8 product fits onnxruntime's 16-bit pair sums, so the int8 graphs answer the same on every CPU.

onnxruntime's uint8 x int8 kernel on an x86 with AVX2 and no VNNI adds two products in int16 with
saturation; with weights kept to 64 levels (``rowwise.W_DIGIT``) no pair can reach it. The check that
cannot pass by luck on such a CPU: a graph gives bit for bit what it gives with every product widened
(``exact_products``); on other CPUs the same check holds trivially, and the level checks hold anywhere.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from rnnkit.core.models.registry import build_model
from rnnkit.edge.bundle import open_bundle
from rnnkit.edge.runner import load_session
from rnnkit.export import rowwise
from rnnkit.export.feeds import random_feeds
from rnnkit.export.onnx_export import export_model
from rnnkit.export.quantize import quantize_graph

MODELS = Path(__file__).resolve().parent.parent / "models"
SHIPPED = sorted(p.parent.name for p in MODELS.glob("*/manifest.json")
                 if json.loads(p.read_text())["graphs"] and any(".int8." in f for f in json.loads(p.read_text())["graphs"].values()))


def _subgraphs(g):
    yield g
    for n in g.node:
        for a in n.attribute:
            if a.type == a.GRAPH:
                yield from _subgraphs(a.g)


def weight_levels(model) -> int:
    """The largest |weight| any MatMulInteger multiplies with a constant int8 operand."""
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    return max((int(np.abs(inits[n.input[1]].astype(np.int32)).max()) for g in _subgraphs(model.graph)
                for n in g.node if n.op_type == "MatMulInteger" and n.input[1] in inits), default=0)


def same_as_exact(path: Path, config: dict, tmp_path: Path, seeds=(0, 1)) -> float:
    """Max |difference| between a graph's outputs and those of its exact-products twin, on random inputs."""
    model = onnx.load(str(path))
    rowwise.exact_products(model)
    twin = tmp_path / f"exact-{path.name}"
    onnx.save(model, twin)
    a, b = load_session(path), load_session(twin)
    worst = 0.0
    for seed in seeds:
        feeds = random_feeds(a.get_inputs(), config, 3, 12, seed=seed)
        for x, y in zip(a.run(None, feeds), b.run(None, feeds)):
            if x.dtype != np.bool_:
                worst = max(worst, float(np.abs(x.astype(np.float64) - y).max()))
    return worst


def test_the_levels_fit_int16_pair_sums():
    top_a = 2 * rowwise.A_DIGIT + 1               # the largest uint8 activation
    assert 2 * top_a * rowwise.W_DIGIT <= 32767
    assert rowwise.ZERO == rowwise.A_DIGIT + 1


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_int8_graphs_are_exact_on_this_cpu(name, tmp_path):
    bundle = open_bundle(MODELS / name)
    levels = bundle.manifest["int8_options"]["levels"]
    assert levels == {"activations": 127, "weights": 64}
    for job, path in bundle.graphs.items():
        assert weight_levels(onnx.load(str(path))) <= 64, (name, job)
        assert same_as_exact(path, bundle.model_config, tmp_path) == 0.0, (name, job)


def _toy_graphs(tmp_path: Path, w_digit: float | None = None) -> dict[str, tuple[Path, dict]]:
    """A tied LSTM language model's step graph and a seq2seq decoder with attention, row-wise int8."""
    torch.manual_seed(0)
    lm_cfg = dict(vocab_size=300, embed_size=48, hidden_size=48, num_layers=2, cell="lstm", tie_weights=True)
    s2s_cfg = dict(src_vocab_size=120, tgt_vocab_size=120, cell="lstm", embed_size=24, hidden_size=16, num_layers=1,
                   bidirectional=True, attention="luong", input_feeding=False, shared_vocab=True, tie_output=True)
    out = {}
    for kind, cfg, job in (("lm", lm_cfg, "step"), ("seq2seq", s2s_cfg, "decoder")):
        fp32 = export_model(build_model(kind, cfg).eval(), tmp_path / kind)[job]
        out[kind] = (quantize_graph(fp32, tmp_path / kind / f"{job}.int8.onnx"),
                     {**cfg, "pad_id": 0, "bos_id": 2, "eos_id": 3, "unk_id": 1})
    return out


def test_a_fresh_export_keeps_weights_to_64_levels(tmp_path):
    for kind, (path, config) in _toy_graphs(tmp_path).items():
        model = onnx.load(str(path))
        assert 0 < weight_levels(model) <= 64, kind
        assert same_as_exact(path, config, tmp_path) == 0.0, kind


def test_narrowing_an_old_graph_makes_it_exact_and_keeps_it_close(tmp_path, monkeypatch):
    """A graph made with 127-level weights (bundles before W_DIGIT), narrowed: exact, and close to the old
    graph's exact answers (the weights moved by at most half a new step)."""
    monkeypatch.setattr(rowwise, "W_DIGIT", 127.0)
    old = _toy_graphs(tmp_path / "old")
    monkeypatch.setattr(rowwise, "W_DIGIT", 64.0)
    for kind, (path, config) in old.items():
        model = onnx.load(str(path))
        assert weight_levels(model) == 127
        done = rowwise.narrow_weights(model)
        assert done["weights"] >= 2 and done["tied tables"] == 1, done
        if kind == "seq2seq":
            assert done["attention operands"] == 2, done
        assert weight_levels(model) <= 64
        narrowed = tmp_path / f"narrowed-{kind}.onnx"
        onnx.save(model, narrowed)
        assert same_as_exact(narrowed, config, tmp_path) == 0.0, kind
        ref = onnx.load(str(path))
        rowwise.exact_products(ref)
        onnx.save(ref, tmp_path / f"ref-{kind}.onnx")
        feeds = random_feeds(load_session(path).get_inputs(), config, 3, 12, seed=0)
        a = load_session(tmp_path / f"ref-{kind}.onnx").run(["logits"], feeds)[0]
        b = load_session(narrowed).run(["logits"], feeds)[0]
        assert np.abs(a - b).max() <= 0.05 * np.abs(a).max(), kind
        assert np.abs(a - b).max() > 0   # the weights did change


def test_requantize_narrows_an_old_bundle(tmp_path, monkeypatch):
    """`python -m rnnkit.export.requantize BUNDLE` on a bundle with 127-level weights: a verified bundle whose
    graphs are exact here, with what was done and the figures against the old graphs in its manifest."""
    import predict_fixtures as F

    from rnnkit.cli import main
    from rnnkit.export.build_bundle import export_bundle
    from rnnkit.export.requantize import main as requantize, needs_narrowing
    from rnnkit.export.verify import verify_bundle

    data = F.write_text(tmp_path / "data.txt")
    run = tmp_path / "run"
    assert main(["train", "--recipe", "char-shakespeare", "--size", "smoke", "--train", str(data), "--run-dir",
                 str(run), "--threads", "1", "--quiet"]) == 0
    monkeypatch.setattr(rowwise, "W_DIGIT", 127.0)
    export_bundle(run, tmp_path / "old", int8=True, int8_only=True, log=lambda *a: None)
    monkeypatch.setattr(rowwise, "W_DIGIT", 64.0)
    old = open_bundle(tmp_path / "old")
    assert needs_narrowing(old.manifest) and not verify_bundle(tmp_path / "old")["int8_levels_fit_int16"]

    assert requantize([str(tmp_path / "old"), "--out", str(tmp_path / "new")]) == 0
    new = open_bundle(tmp_path / "new")
    assert not needs_narrowing(new.manifest) and new.manifest["int8_options"]["levels"]["weights"] == 64
    assert verify_bundle(tmp_path / "new")["int8_levels_fit_int16"] is True
    step = new.manifest["int8"]["step"]
    assert step["narrowed"]["weights"] >= 2 and step["rollout_step_vs_whole"] == 0.0
    assert step["random_inputs_vs_previous"]["max_abs_diff"] > 0
    assert new.manifest["requantized"]["from"] == {f: old.manifest["files"][f] for f in old.manifest["graphs"].values()}
    assert same_as_exact(new.graph_path("step"), new.model_config, tmp_path) == 0.0
    with pytest.raises(ValueError, match="nothing to narrow"):
        from rnnkit.export.requantize import narrow_bundle
        narrow_bundle(tmp_path / "new", tmp_path / "again", log=lambda *a: None)
