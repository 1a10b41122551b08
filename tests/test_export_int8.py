"""int8: which ops get quantised, metadata kept, and the LM stream evaluation against PyTorch."""

from __future__ import annotations

import math

import numpy as np
import onnx
import pytest
import torch

from rnnkit.core.registry import build_model
from rnnkit.export.onnx_export import export_model
from rnnkit.export.parity import ort_session
from rnnkit.export.quantize import lm_stream_eval, op_counts, quantize_graph, size_ratio

torch.set_num_threads(1)


def lm(cell: str, **kw):
    torch.manual_seed(0)
    cfg = dict(vocab_size=500, embed_size=64, hidden_size=96, num_layers=2, cell=cell, tie_weights=False)
    return build_model("lm", {**cfg, **kw}).eval()


@pytest.fixture(scope="module")
def graphs(tmp_path_factory):
    root = tmp_path_factory.mktemp("int8")
    out = {}
    for cell in ("lstm", "gru"):
        fp32 = export_model(lm(cell), root / cell)["step"]
        out[cell] = (fp32, quantize_graph(fp32, root / cell / "step.int8.onnx"))
    return out


def test_lstm_becomes_dynamic_quantize_lstm(graphs):
    fp32, int8 = graphs["lstm"]
    ops = op_counts(int8)
    assert ops.get("com.microsoft.DynamicQuantizeLSTM") == 2 and "LSTM" not in ops, ops
    assert ops.get("com.microsoft.MatMulNBits") == 1 and "MatMul" not in ops, ops  # the output layer, block-wise
    assert size_ratio(fp32, int8) < 0.35


def test_gru_keeps_fp32_recurrence_and_quantises_matmul(graphs):
    fp32, int8 = graphs["gru"]
    ops = op_counts(int8)
    assert ops.get("GRU") == 2 and not any("DynamicQuantize" in k and "GRU" in k for k in ops), ops
    assert ops.get("com.microsoft.MatMulNBits") == 1, ops
    assert size_ratio(fp32, int8) < 0.9  # embedding + head shrink, the GRU weights do not


def test_int8_graph_checks_and_keeps_metadata(graphs):
    fp32, int8 = graphs["lstm"]
    onnx.checker.check_model(str(int8), full_check=True)
    a = {p.key: p.value for p in onnx.load(str(fp32)).metadata_props}
    b = {p.key: p.value for p in onnx.load(str(int8)).metadata_props}
    assert b.pop("precision") == "int8" and a.pop("precision") == "fp32"
    b.pop("onnx.infer", None)  # the quantiser notes itself
    assert a == b
    domains = {n.domain for n in onnx.load(str(int8)).graph.node}
    assert domains <= {"", "com.microsoft"}, domains


def test_excluding_the_output_head_keeps_it_fp32(graphs, tmp_path):
    fp32, _ = graphs["lstm"]
    q = quantize_graph(fp32, tmp_path / "q.onnx", head="fp32")
    g = onnx.load(str(q))
    producer = {o: n for n in g.graph.node for o in n.output}
    node = producer["logits"]
    while node.op_type == "Add":
        node = producer[next(i for i in node.input if i in producer)]
    assert node.op_type == "MatMul"  # not MatMulNBits


def test_int8_head_keeps_top1_close_to_fp32(graphs):
    """The block-wise int8 head: logits near fp32, the same argmax on nearly every position."""
    fp32, int8 = graphs["lstm"]
    head_only = quantize_graph(fp32, fp32.parent / "head-fp32.int8.onnx", head="fp32")
    rng = np.random.default_rng(1)
    ids = rng.integers(0, 500, size=8 * 40 + 1)
    rep = lm_stream_eval({"fp32": ort_session(fp32), "int8": ort_session(int8),
                          "int8-fp32-head": ort_session(head_only)}, ids, batch=8, chunk=40)
    assert rep["int8"]["ppl"] == pytest.approx(rep["fp32"]["ppl"], rel=0.01)
    assert rep["int8"]["top1_agreement"] >= 0.9
    assert rep["int8"]["top1_agreement"] >= rep["int8-fp32-head"]["top1_agreement"] - 0.05


def test_a_gemm_head_falls_back_to_dynamic_int8(tmp_path):
    """A head the block-wise quantiser cannot take (a Gemm) is still quantised, dynamically."""
    import onnx.helper as oh

    w = oh.make_tensor("w", onnx.TensorProto.FLOAT, [8, 6], np.random.default_rng(0).standard_normal(48).tolist())
    g = oh.make_graph([oh.make_node("Gemm", ["x", "w"], ["logits"], name="head")], "g",
                      [oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 8])],
                      [oh.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, [2, 6])], [w])
    src = tmp_path / "gemm.onnx"
    onnx.save(oh.make_model(g, opset_imports=[oh.make_opsetid("", 17)], ir_version=8), src)
    q = quantize_graph(src, tmp_path / "gemm.int8.onnx")
    ops = op_counts(q)
    assert "Gemm" not in ops and "com.microsoft.MatMulNBits" not in ops, ops
    x = np.random.default_rng(1).standard_normal((2, 8)).astype(np.float32)
    a = ort_session(src).run(None, {"x": x})[0]
    b = ort_session(q).run(None, {"x": x})[0]
    assert np.abs(a - b).max() < 0.1 * np.abs(a).max()


def test_stream_eval_matches_pytorch_perplexity(graphs):
    """lm_stream_eval's perplexity is the model's: same batching, state carried across chunks."""
    fp32, int8 = graphs["lstm"]
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 500, size=4 * 30 + 1)
    report = lm_stream_eval({"fp32": ort_session(fp32), "int8": ort_session(int8)}, ids, batch=4, chunk=7)
    m = lm("lstm")
    x = torch.as_tensor(ids[:-1]).view(4, 30)
    y = torch.as_tensor(ids[1:]).view(4, 30)
    with torch.no_grad():
        logits, _ = m(x)
    ppl = math.exp(torch.nn.functional.cross_entropy(logits.reshape(-1, 500), y.reshape(-1)).item())
    assert report["tokens"] == 120
    assert report["fp32"]["ppl"] == pytest.approx(ppl, rel=1e-5)
    assert report["fp32"]["top1_agreement"] == 1.0
    assert report["int8"]["ppl"] == pytest.approx(ppl, rel=0.05)  # untrained weights: near-uniform
    assert 0.0 <= report["int8"]["top1_agreement"] <= 1.0


def test_export_int8_measures_on_the_recipes_validation_text(tmp_path):
    """``rnnkit export --int8`` on an LM run records agreement and perplexity on real text."""
    import json

    from rnnkit.cli import main as rnnkit_main
    from rnnkit.core.registry import save
    from rnnkit.core.tokenizers import WordTokenizer
    from rnnkit.export.bundle import open_bundle

    lines = ["the cat sat on the mat", "the dog sat on the log", "a cat and a dog"] * 40
    (tmp_path / "train.txt").write_text("\n".join(lines) + "\n")
    (tmp_path / "valid.txt").write_text("\n".join(lines[:60]) + "\n")
    run = tmp_path / "run"
    tok = WordTokenizer.train(lines)
    tok.save(run)
    torch.manual_seed(0)
    save(build_model("lm", dict(vocab_size=tok.vocab_size, embed_size=16, hidden_size=16, num_layers=1)),
         run / "model")
    recipe = {"task": "lm", "data": {"train_file": str(tmp_path / "train.txt"),
                                     "valid_file": str(tmp_path / "valid.txt")},
              "tokenizer": {"kind": "word"}}
    (run / "recipe.json").write_text(json.dumps(recipe))
    assert rnnkit_main(["export", str(run), "--out", str(tmp_path / "b"), "--int8", "--eval-tokens", "200"]) == 0
    text = open_bundle(tmp_path / "b").manifest["int8"]["step"]["text"]
    n_ids = sum(len(line.split()) + 1 for line in lines[:60])  # words + <eos> per line
    assert text["source"].endswith("valid.txt valid")
    assert text["tokens"] == min(200, n_ids - 1) // 16 * 16
    assert 0.0 <= text["top1_agreement"] <= 1.0 and text["fp32_ppl"] > 1.0
    assert text["ppl_change"] == pytest.approx(text["int8_ppl"] / text["fp32_ppl"] - 1.0)
