"""int8: which ops get quantised, metadata kept, and the LM stream evaluation against PyTorch."""

from __future__ import annotations

import math

import numpy as np
import onnx
import pytest
import torch

from rnnkit.core.models.registry import build_model
from rnnkit.export.onnx_export import export_model
from rnnkit.edge.runner import load_session
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


def test_lstm_becomes_rowwise_int8_in_standard_ops(graphs):
    """The default scheme: every LSTM a Scan over MatMulInteger rows, no com.microsoft op at all."""
    fp32, int8 = graphs["lstm"]
    ops = op_counts(int8)
    assert ops.get("Scan") == 2 and "LSTM" not in ops, ops
    assert "MatMul" not in ops and ops.get("MatMulInteger") == 3, ops  # 2 input projections + the head
    assert not any(k.startswith("com.microsoft") for k in ops), ops
    assert size_ratio(fp32, int8) < 0.4  # 0.26 + the 64 KB tanh table (large on this 0.6 M-parameter toy)


def test_gru_keeps_fp32_recurrence_and_quantises_matmul(graphs):
    fp32, int8 = graphs["gru"]
    ops = op_counts(int8)
    assert ops.get("GRU") == 2 and ops.get("MatMulInteger") == 1 and "MatMul" not in ops, ops
    assert size_ratio(fp32, int8) < 0.9  # embedding + head shrink, the GRU weights do not


def test_int8_graph_checks_and_keeps_metadata(graphs):
    fp32, int8 = graphs["lstm"]
    onnx.checker.check_model(str(int8), full_check=True)
    a = {p.key: p.value for p in onnx.load(str(fp32)).metadata_props}
    b = {p.key: p.value for p in onnx.load(str(int8)).metadata_props}
    assert b.pop("precision") == "int8" and a.pop("precision") == "fp32"
    assert b.pop("int8_scheme") == "rowwise-int8" and b.pop("int8_target") == "portable"
    b.pop("onnx.infer", None)  # the quantiser notes itself
    assert a == b
    domains = {n.domain for n in onnx.load(str(int8)).graph.node}
    assert domains <= {""}, domains


def _rollouts(path, cfg_layers, hidden, vocab, T=60, batch=8, seed=3, lstm=True):
    """(one call over T tokens, T one-token calls with the state fed back, the same row in a batch of 8)."""
    s = load_session(path)
    rng = np.random.default_rng(seed)
    tok = rng.integers(0, vocab, size=(batch, T)).astype(np.int64)
    h = rng.standard_normal((cfg_layers, batch, hidden)).astype(np.float32) * 0.5
    state = {"h0": h, **({"c0": h * 0.7} if lstm else {})}
    names = [o.name for o in s.get_outputs()]

    def run(t, st):
        return dict(zip(names, s.run(None, {"tokens": t, **st})))

    one = {k: v[:, :1] for k, v in state.items()}
    whole = run(tok[:1], one)["logits"][0]
    steps, st = [], one
    for t in range(T):
        r = run(tok[:1, t:t + 1], st)
        steps.append(r["logits"][0, 0])
        st = {k: r["next_" + k] for k in one}
    batched = run(tok, state)["logits"][0]
    return whole, np.stack(steps), batched


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_rowwise_int8_does_not_depend_on_chunking_or_batching(graphs, cell):
    """The issue's bug: per-call activation scales made a token's logits depend on its neighbours."""
    _, int8 = graphs[cell]
    whole, stepped, batched = _rollouts(int8, 2, 96, 500, lstm=cell == "lstm")
    assert np.abs(whole - stepped).max() <= 1e-4
    assert np.abs(whole - batched).max() <= 1e-4


def _body_ops(path) -> set[str]:
    g = onnx.load(str(path))
    return {n.op_type for node in g.graph.node for a in node.attribute if a.type == a.GRAPH for n in a.g.node}


def test_portable_target_has_no_transcendental_op_in_the_recurrence(graphs, tmp_path):
    """Portable: tanh / sigmoid by table lookup (bit-exact everywhere); native: onnxruntime's own."""
    fp32, int8 = graphs["lstm"]
    assert "GatherElements" in _body_ops(int8) and not _body_ops(int8) & {"Tanh", "Sigmoid"}
    native = quantize_graph(fp32, tmp_path / "native.onnx", target="native")
    assert {"Tanh", "Sigmoid"} <= _body_ops(native)
    whole, stepped, batched = _rollouts(native, 2, 96, 500)
    assert np.abs(whole - stepped).max() <= 1e-4 and np.abs(whole - batched).max() <= 1e-4
    a, _, _ = _rollouts(int8, 2, 96, 500)
    assert np.abs(a - whole).max() < 0.05  # the table's nearest point: within 4.9e-4 of tanh


def test_dynamic_scheme_still_there_and_depends_on_chunking(graphs, tmp_path):
    """``scheme="dynamic"`` (the earlier export) is kept for comparison: it is what the issue measured."""
    fp32, _ = graphs["lstm"]
    q = quantize_graph(fp32, tmp_path / "dyn.onnx", scheme="dynamic")
    ops = op_counts(q)
    assert ops.get("com.microsoft.DynamicQuantizeLSTM") == 2 and ops.get("com.microsoft.MatMulNBits") == 1, ops
    assert {p.key: p.value for p in onnx.load(str(q)).metadata_props}["int8_scheme"] == "dynamic"
    whole, stepped, _ = _rollouts(q, 2, 96, 500)
    assert np.abs(whole - stepped).max() > 1e-4


def test_tied_embedding_and_head_are_stored_once(tmp_path):
    torch.manual_seed(0)
    cfg = dict(vocab_size=2000, embed_size=64, hidden_size=64, num_layers=1, cell="lstm")
    sizes = {}
    for tie in (False, True):
        fp32 = export_model(build_model("lm", {**cfg, "tie_weights": tie}).eval(), tmp_path / str(tie))["step"]
        q = quantize_graph(fp32, tmp_path / str(tie) / "step.int8.onnx")
        sizes[tie] = q.stat().st_size
        whole, stepped, batched = _rollouts(q, 1, 64, 2000, T=20)
        assert np.abs(whole - stepped).max() <= 1e-4 and np.abs(whole - batched).max() <= 1e-4
    assert sizes[True] < sizes[False] - 2000 * 64 * 0.9  # one int8 copy of the 2000x64 table, not two


def test_excluding_the_output_head_keeps_it_fp32(graphs, tmp_path):
    fp32, _ = graphs["lstm"]
    q = quantize_graph(fp32, tmp_path / "q.onnx", head="fp32")
    g = onnx.load(str(q))
    producer = {o: n for n in g.graph.node for o in n.output}
    node = producer["logits"]
    while node.op_type == "Add":
        node = producer[next(i for i in node.input if i in producer)]
    assert node.op_type == "MatMul"  # not MatMulInteger


def test_dequantize_model_rebuilds_the_fp32_graph_of_an_int8_one(graphs, tmp_path):
    """models/ ships int8 graphs only: their dequantised weights give an fp32 graph to re-quantise."""
    from rnnkit.export.quantize import dequantize_model

    fp32, _ = graphs["lstm"]
    dyn = quantize_graph(fp32, tmp_path / "dyn.onnx", scheme="dynamic")
    back = dequantize_model(onnx.load(str(dyn)))
    onnx.checker.check_model(back, full_check=True)
    ops = {n.op_type for n in back.graph.node}
    assert "LSTM" in ops and "MatMul" in ops and not ops & {"DynamicQuantizeLSTM", "MatMulNBits", "MatMulInteger"}
    onnx.save(back, tmp_path / "back.onnx")
    rng = np.random.default_rng(0)
    feeds = {"tokens": rng.integers(0, 500, (2, 7)).astype(np.int64),
             "h0": np.zeros((2, 2, 96), np.float32), "c0": np.zeros((2, 2, 96), np.float32)}
    a = load_session(fp32).run(["logits"], feeds)[0]
    b = load_session(tmp_path / "back.onnx").run(["logits"], feeds)[0]
    assert np.abs(a - b).max() < 0.05 * max(1.0, np.abs(a).max())  # the int8 rounding of the weights only


def test_int8_head_keeps_top1_close_to_fp32(graphs):
    """The block-wise int8 head: logits near fp32, the same argmax on nearly every position."""
    fp32, int8 = graphs["lstm"]
    head_only = quantize_graph(fp32, fp32.parent / "head-fp32.int8.onnx", head="fp32")
    rng = np.random.default_rng(1)
    ids = rng.integers(0, 500, size=8 * 40 + 1)
    rep = lm_stream_eval({"fp32": load_session(fp32), "int8": load_session(int8),
                          "int8-fp32-head": load_session(head_only)}, ids, batch=8, chunk=40)
    assert rep["int8"]["ppl"] == pytest.approx(rep["fp32"]["ppl"], rel=0.01)
    # untrained weights: logits within a hair of each other, so argmax flips easily (trained models, real
    # text: 98.8 % on suggest-en, 99.3 % on char-shakespeare, in their manifests)
    assert rep["int8"]["top1_agreement"] >= 0.75
    assert rep["int8"]["top1_agreement"] >= rep["int8-fp32-head"]["top1_agreement"] - 0.05


def test_a_gemm_head_is_quantised_rowwise(tmp_path):
    """A Gemm with a constant weight (transposed or not) becomes MatMulInteger rows too."""
    import onnx.helper as oh

    for trans in (0, 1):
        w = oh.make_tensor("w", onnx.TensorProto.FLOAT, [6, 8] if trans else [8, 6],
                           np.random.default_rng(0).standard_normal(48).tolist())
        c = oh.make_tensor("c", onnx.TensorProto.FLOAT, [6], [0.5] * 6)
        g = oh.make_graph([oh.make_node("Gemm", ["x", "w", "c"], ["logits"], name="head", transB=trans)], "g",
                          [oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 8])],
                          [oh.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, [2, 6])], [w, c])
        src = tmp_path / f"gemm{trans}.onnx"
        onnx.save(oh.make_model(g, opset_imports=[oh.make_opsetid("", 17)], ir_version=8), src)
        q = quantize_graph(src, tmp_path / f"gemm{trans}.int8.onnx")
        ops = op_counts(q)
        assert "Gemm" not in ops and ops.get("MatMulInteger") == 1, ops
        x = np.random.default_rng(1).standard_normal((2, 8)).astype(np.float32)
        a = load_session(src).run(None, {"x": x})[0]
        b = load_session(q).run(None, {"x": x})[0]
        assert np.abs(a - b).max() < 0.05 * np.abs(a).max()


def test_stream_eval_matches_pytorch_perplexity(graphs):
    """lm_stream_eval's perplexity is the model's: same batching, state carried across chunks."""
    fp32, int8 = graphs["lstm"]
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 500, size=4 * 30 + 1)
    report = lm_stream_eval({"fp32": load_session(fp32), "int8": load_session(int8)}, ids, batch=4, chunk=7)
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
    from rnnkit.core.models.registry import save
    from rnnkit.core.text.tokenizers import WordTokenizer
    from rnnkit.edge.bundle import open_bundle

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
    assert text["source"] == str(tmp_path / "valid.txt")  # the user's file, never the recipe's corpus
    assert text["tokens"] == min(200, n_ids - 1) // 16 * 16
    assert 0.0 <= text["top1_agreement"] <= 1.0 and text["fp32_ppl"] > 1.0
    assert text["ppl_change"] == pytest.approx(text["int8_ppl"] / text["fp32_ppl"] - 1.0)


def test_seq2seq_attention_is_row_wise_too(tmp_path):
    """The decoder's attention MatMuls (between activations) become exact MatMulInteger rows; Softmax stays
    float32 (it may differ in its last bits between runtimes), so what it feeds gets two int8 digits."""
    from rnnkit.export.verify import rollout_self_check

    torch.manual_seed(0)
    cfg = dict(src_vocab_size=120, tgt_vocab_size=120, cell="lstm", embed_size=24, hidden_size=16, num_layers=1,
               bidirectional=True, attention="luong", input_feeding=False, shared_vocab=True, tie_output=True)
    model = build_model("seq2seq", cfg).eval()
    graphs = export_model(model, tmp_path)
    q = quantize_graph(graphs["decoder"], tmp_path / "decoder.int8.onnx")
    ops = op_counts(q)
    assert "MatMul" not in ops and "LSTM" not in ops and ops.get("Softmax") == 1, ops
    meta = {p.key: p.value for p in onnx.load(str(q)).metadata_props}
    diff, _ = rollout_self_check(load_session(q), {**cfg, "pad_id": 0, "bos_id": 2, "eos_id": 3, "unk_id": 1}, meta,
                                 steps=25, batch=3)
    assert diff <= 1e-6
    enc = quantize_graph(graphs["encoder"], tmp_path / "encoder.int8.onnx")
    assert "Tanh" not in op_counts(enc)  # the bridge's tanh: exact input, so a table lookup


def test_export_ort_writes_ort_format_twins_listed_in_the_manifest(tmp_path):
    """``rnnkit export --int8 --ort``: <job>.int8.ort beside each graph (mobile), hashed, same outputs."""
    from rnnkit.cli import main as rnnkit_main
    from rnnkit.core.models.registry import save
    from rnnkit.edge.bundle import open_bundle

    torch.manual_seed(0)
    save(build_model("lm", dict(vocab_size=50, embed_size=8, hidden_size=8, num_layers=1)), tmp_path / "run" / "model")
    assert rnnkit_main(["export", str(tmp_path / "run"), "--out", str(tmp_path / "b"), "--int8", "--int8-only",
                        "--ort"]) == 0
    b = open_bundle(tmp_path / "b")
    assert b.manifest["ort_graphs"] == {"step": "step.int8.ort"} and "step.int8.ort" in b.manifest["files"]
    ops = b.manifest["graph_ops"]["step.int8.onnx"]
    assert ops["opset"] == 17 and "Scan" in ops["ops"] and ops["packages"]["onnxruntime-web"] == "tested"
    feeds = {"tokens": np.array([[3, 4, 5]], np.int64), "h0": np.zeros((1, 1, 8), np.float32),
             "c0": np.zeros((1, 1, 8), np.float32)}
    a = load_session(tmp_path / "b" / "step.int8.onnx").run(None, feeds)
    o = load_session(tmp_path / "b" / "step.int8.ort").run(None, feeds)
    assert all(np.array_equal(x, y) for x, y in zip(a, o))
    assert rnnkit_main(["verify", str(tmp_path / "b")]) == 0
    # the ORT files are what a mobile app loads: listed and hashed like the graphs, and checked
    import hashlib
    import json
    import shutil

    from rnnkit.edge.bundle import BundleError
    from rnnkit.export.verify import verify_bundle

    assert "ort_vs_onnx_max_abs_diff" in verify_bundle(tmp_path / "b")["jobs"]["step"]
    odd = tmp_path / "odd"
    shutil.copytree(tmp_path / "b", odd)
    m = json.loads((odd / "manifest.json").read_text())
    (odd / "manifest.json").write_text(json.dumps({**m, "ort_graphs": {"step": "../../etc/passwd"}}))
    with pytest.raises(BundleError, match="ort_graphs names"):
        open_bundle(odd)
    torch.manual_seed(1)  # another model's ORT file, hashed into the manifest: verify must see it
    save(build_model("lm", dict(vocab_size=50, embed_size=8, hidden_size=8, num_layers=1)), tmp_path / "r2" / "model")
    assert rnnkit_main(["export", str(tmp_path / "r2"), "--out", str(tmp_path / "b2"), "--int8", "--int8-only",
                        "--ort"]) == 0
    shutil.copy(tmp_path / "b2" / "step.int8.ort", odd / "step.int8.ort")
    data = (odd / "step.int8.ort").read_bytes()
    m["files"]["step.int8.ort"], m["sizes"]["step.int8.ort"] = hashlib.sha256(data).hexdigest(), len(data)
    (odd / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BundleError, match="ORT-format graph differs"):
        verify_bundle(odd)
