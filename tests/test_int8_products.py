"""Every int8 product fits onnxruntime's 16-bit pair sums, so the int8 graphs answer the same on every CPU.

onnxruntime's uint8 x int8 kernel on an x86 with AVX2 and no VNNI adds two products in int16 with
saturation; with weights kept to 64 levels (``rowwise.W_DIGIT``) no pair can reach it. Two checks on
every graph: it gives bit for bit what it gives with every product widened (``exact_products``: the real
check on a CPU that saturates, trivially true elsewhere), and what it gives when any two neighbouring
products that would overflow int16 poison the sum (``saturation_twin``: the check on every CPU).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from rnnkit.core.models.registry import build_model
from rnnkit.edge.bundle import open_bundle
from rnnkit.edge.runner import load_session
from rnnkit.export import rowwise
from rnnkit.export.feeds import random_feeds
from rnnkit.export.narrow import exact_products, levels_fit, narrow_weights
from rnnkit.export.onnx_graphs import all_graphs, rewrite_nodes
from rnnkit.export.onnx_export import export_model
from rnnkit.export.quantize import quantize_graph

MODELS = Path(__file__).resolve().parent.parent / "models"
SHIPPED = sorted(p.parent.name for p in MODELS.glob("*/manifest.json")
                 if any(".int8." in f for f in json.loads(p.read_text())["graphs"].values()))
POISON = 1_000_000


def weight_levels(model) -> int:
    """The largest |weight| any MatMulInteger multiplies with a constant int8 operand."""
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    return max((int(np.abs(inits[n.input[1]].astype(np.int32)).max()) for g in all_graphs(model.graph)
                for n in g.node if n.op_type == "MatMulInteger" and n.input[1] in inits), default=0)


def saturation_twin(model) -> None:
    """Rewrite in place every ``MatMulInteger(uint8 A, B, zp)`` as its exact sums plus POISON for each pair of
    neighbouring products a[k] b[k] + a[k+1] b[k+1] beyond int16 (every such pair, a superset of the pairs
    the kernel adds): equal to the exact graph iff no CPU could saturate on these inputs."""
    limit = "sat_limit"
    model.graph.initializer.extend([numpy_helper.from_array(np.asarray(32767, np.int32), limit),
                                    numpy_helper.from_array(np.asarray(POISON, np.int32), "sat_poison")])
    def replace(n) -> list:
        a, b, t = n.input[0], n.input[1], n.output[0] + "/sat"
        k = lambda name, value: helper.make_node("Constant", [], [t + name],  # noqa: E731
                                                 value=numpy_helper.from_array(np.asarray(value, np.int64)))
        return [k("/m1", [-1]), k("/m3", [-3]), k("/m2", [-2]), k("/z", [0]), k("/o", [1]),
                k("/e", [-1]), k("/big", [2**62]),
                helper.make_node("Cast", [a], [t + "/a"], to=TensorProto.INT32),
                helper.make_node("Cast", [b], [t + "/b"], to=TensorProto.INT32),
                helper.make_node("Unsqueeze", [t + "/a", t + "/m1"], [t + "/au"]),
                helper.make_node("Unsqueeze", [t + "/b", t + "/m3"], [t + "/bu"]),
                helper.make_node("Mul", [t + "/au", t + "/bu"], [t + "/p"]),           # [..., M, K, N]
                helper.make_node("Slice", [t + "/p", t + "/z", t + "/e", t + "/m2"], [t + "/p0"]),
                helper.make_node("Slice", [t + "/p", t + "/o", t + "/big", t + "/m2"], [t + "/p1"]),
                helper.make_node("Add", [t + "/p0", t + "/p1"], [t + "/s"]),
                helper.make_node("Abs", [t + "/s"], [t + "/sa"]),
                helper.make_node("Greater", [t + "/sa", limit], [t + "/over"]),
                helper.make_node("Cast", [t + "/over"], [t + "/overi"], to=TensorProto.INT32),
                helper.make_node("ReduceSum", [t + "/overi", t + "/m2"], [t + "/count"], keepdims=0),
                helper.make_node("Mul", [t + "/count", "sat_poison"], [t + "/pois"]),
                helper.make_node("MatMulInteger", list(n.input), [t + "/exact"]),
                helper.make_node("Add", [t + "/exact", t + "/pois"], list(n.output))]

    rewrite_nodes(model, "MatMulInteger", replace)


def _twin_diff(path: Path, config: dict, tmp_path: Path, rewrite, batch: int, time: int) -> float:
    """Max |difference| between a graph's outputs and its twin's (``rewrite``) on random inputs."""
    model = onnx.load(str(path))
    rewrite(model)
    twin = tmp_path / f"{rewrite.__name__}-{path.name}"
    onnx.save(model, twin)
    a, b = load_session(path), load_session(twin)
    worst = 0.0
    for seed in (0, 1):
        feeds = random_feeds(a.get_inputs(), config, batch, time, seed=seed)
        for x, y in zip(a.run(None, feeds), b.run(None, feeds)):
            if x.dtype != np.bool_:
                worst = max(worst, float(np.abs(x.astype(np.float64) - y).max()))
    return worst


def same_as_exact(path: Path, config: dict, tmp_path: Path) -> float:
    return _twin_diff(path, config, tmp_path, exact_products, 3, 12)


def never_saturates(path: Path, config: dict, tmp_path: Path) -> float:
    # small feeds: the twin holds every product of a MatMul at once ([rows, K, N] int32)
    return _twin_diff(path, config, tmp_path, saturation_twin, 1, 3)


def test_the_levels_fit_int16_pair_sums():
    top_a = 2 * rowwise.A_DIGIT + 1               # the largest uint8 activation
    assert 2 * top_a * rowwise.W_DIGIT <= 32767
    assert rowwise.ZERO == rowwise.A_DIGIT + 1


def test_levels_fit_reads_a_manifest_defensively():
    assert levels_fit({"levels": {"activations": 127, "weights": 64}})
    assert not levels_fit({"levels": {"activations": 127, "weights": 127}})
    for bad in (None, "rowwise", {}, {"levels": {"weights": 64}}, {"levels": {"activations": "127", "weights": 64}},
                {"levels": [127, 64]}, {"levels": {"activations": True, "weights": 64}}):
        assert levels_fit(bad) is False, bad


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_int8_graphs_never_saturate(name, tmp_path):
    bundle = open_bundle(MODELS / name)
    assert bundle.manifest["int8_options"]["levels"] == {"activations": 127, "weights": 64}
    for job, path in bundle.graphs.items():
        assert weight_levels(onnx.load(str(path))) <= 64, (name, job)
        assert same_as_exact(path, bundle.model_config, tmp_path) == 0.0, (name, job)
        assert never_saturates(path, bundle.model_config, tmp_path) == 0.0, (name, job)


def _toy_graphs(tmp_path: Path) -> dict[str, tuple[Path, dict]]:
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
        assert never_saturates(path, config, tmp_path) == 0.0, kind


def test_narrowing_an_old_graph_makes_it_exact_and_keeps_it_close(tmp_path, monkeypatch):
    """A graph made with 127-level weights (bundles before W_DIGIT), narrowed: exact, and close to the old
    graph's exact answers (the weights moved by at most half a new step)."""
    monkeypatch.setattr(rowwise, "W_DIGIT", 127.0)
    old = _toy_graphs(tmp_path / "old")
    monkeypatch.setattr(rowwise, "W_DIGIT", 64.0)
    for kind, (path, config) in old.items():
        model = onnx.load(str(path))
        assert weight_levels(model) == 127
        assert never_saturates(path, config, tmp_path) > 0, kind   # the twin sees what AVX2 would do
        done = narrow_weights(model)
        assert done["weights"] >= 2 and done["tied tables"] == 1, done
        if kind == "seq2seq":
            assert done["attention operands"] == 2, done
        assert weight_levels(model) <= 64
        narrowed = tmp_path / f"narrowed-{kind}.onnx"
        onnx.save(model, narrowed)
        assert same_as_exact(narrowed, config, tmp_path) == 0.0, kind
        assert never_saturates(narrowed, config, tmp_path) == 0.0, kind
        with pytest.raises(ValueError, match="narrowed already"):
            narrow_weights(model)
        ref = onnx.load(str(path))
        exact_products(ref)
        onnx.save(ref, tmp_path / f"ref-{kind}.onnx")
        feeds = random_feeds(load_session(path).get_inputs(), config, 3, 12, seed=0)
        a = load_session(tmp_path / f"ref-{kind}.onnx").run(["logits"], feeds)[0]
        b = load_session(narrowed).run(["logits"], feeds)[0]
        assert np.abs(a - b).max() <= 0.05 * np.abs(a).max(), kind
        assert np.abs(a - b).max() > 0   # the weights did change


def test_requantize_narrows_an_old_bundle(tmp_path, monkeypatch, capsys):
    """`python -m rnnkit.export.requantize BUNDLE` on a bundle with 127-level weights: a verified bundle whose
    graphs are exact here, with what was done and the figures against the old graphs in its manifest."""
    import predict_fixtures as F

    from rnnkit.cli import main
    from rnnkit.export.build_bundle import export_bundle
    from rnnkit.export.narrow import needs_narrowing
    from rnnkit.export.requantize import main as requantize
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
    # `rnnkit verify` on a CPU that saturates: a warning for the old bundle only
    import rnnkit.export.verify as V

    monkeypatch.setattr(V, "int8_products_exact", lambda: False)
    capsys.readouterr()
    assert main(["verify", str(tmp_path / "old")]) == 0 and "warning: this machine" in capsys.readouterr().out
    assert main(["verify", str(tmp_path / "new")]) == 0 and "warning" not in capsys.readouterr().out
    # run again on its own output: one clear line, nothing written
    assert requantize([str(tmp_path / "new"), "--out", str(tmp_path / "again")]) == 2
    assert "nothing to re-quantise" in capsys.readouterr().err and not (tmp_path / "again").exists()
    with pytest.raises(SystemExit):   # options that do not apply to narrowing
        requantize([str(tmp_path / "old"), "--out", str(tmp_path / "again"), "--scheme", "dynamic"])


@pytest.mark.parametrize("inexact", ["none", "first", "second"])
def test_narrowing_an_attention_matmul_gives_the_fresh_64_level_graph(inexact, tmp_path, monkeypatch):
    """A MatMul between two activations is quantised in the graph (one int8 digit, or two for an operand that
    may differ in its last bits between runtimes: here a Softmax's output): narrowing an old graph changes its
    second operand's constants and gives bit for bit what a 64-level export gives."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 5])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 5, 4])
    z = helper.make_tensor_value_info("z", TensorProto.FLOAT, [2, 3, 4])
    nodes, a, b = [], "x", "y"
    if inexact == "first":
        nodes, a = [helper.make_node("Softmax", ["x"], ["xs"], axis=-1)], "xs"
    elif inexact == "second":
        nodes, b = [helper.make_node("Softmax", ["y"], ["ys"], axis=-1)], "ys"
    nodes.append(helper.make_node("MatMul", [a, b], ["z"]))
    fp32 = helper.make_model(helper.make_graph(nodes, "att", [x, y], [z]), opset_imports=[helper.make_opsetid("", 17)])

    def export(levels: float, path: Path) -> Path:
        monkeypatch.setattr(rowwise, "W_DIGIT", levels)
        model = onnx.ModelProto()
        model.CopyFrom(fp32)
        done = rowwise.quantize_rowwise(model)
        assert done["rewritten"] == {"MatMul(activations)": 1}
        onnx.save(model, path)
        return path

    old = onnx.load(str(export(127.0, tmp_path / "old.onnx")))
    fresh = export(64.0, tmp_path / "fresh.onnx")
    assert narrow_weights(old) == {"attention operands": 1}
    onnx.save(old, tmp_path / "narrowed.onnx")
    rng = np.random.default_rng(0)
    feeds = {"x": rng.normal(size=(2, 3, 5)).astype(np.float32), "y": rng.normal(size=(2, 5, 4)).astype(np.float32)}
    got = load_session(tmp_path / "narrowed.onnx").run(None, feeds)[0]
    want = load_session(fresh).run(None, feeds)[0]
    assert np.array_equal(got, want)
    assert np.abs(got - load_session(tmp_path / "old.onnx").run(None, feeds)[0]).max() > 0
