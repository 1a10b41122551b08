"""ONNX export: symbolic batch/time axes, metadata, checker, the CLI (export + verify)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import onnx
import pytest
import torch

from rnnkit.cli import main as rnnkit_main
from rnnkit.core.models.registry import build_model, save
from rnnkit.core.text.tokenizers import CharTokenizer
from rnnkit.edge import names as N
from rnnkit.edge.bundle import BundleError, open_bundle
from rnnkit.export.onnx_export import _export_kwargs, export_graph, export_model, graph_metadata, symbolic_dims
from rnnkit.edge.runner import load_session
from rnnkit.export.parity import ort_run
from rnnkit.export.feeds import random_feeds
from rnnkit.export.wrappers import TokenStep, wrappers_for

torch.set_num_threads(1)

# One small model of every kind (and each variant that changes the graphs).
MODELS = {
    "lm": ("lm", dict(vocab_size=41, embed_size=8, hidden_size=12, num_layers=2)),
    "classifier-bi": ("classifier", dict(vocab_size=30, num_classes=3, num_targets=1, bounded=True,
                                         embed_size=8, hidden_size=8)),
    "classifier-uni": ("classifier", dict(vocab_size=30, num_classes=2, bidirectional=False, cell="gru",
                                          embed_size=8, hidden_size=8)),
    "tagger-chars": ("tagger", dict(vocab_size=30, num_tags=5, char_vocab_size=20, embed_size=8, hidden_size=8)),
    "forecaster": ("forecaster", dict(input_size=3, output_size=2, hidden_size=8)),
    "one_to_many": ("one_to_many", dict(cond_size=4, vocab_size=20, embed_size=8, hidden_size=8)),
    "seq2seq": ("seq2seq", dict(src_vocab_size=30, tgt_vocab_size=25, embed_size=8, hidden_size=8)),
    "seq2seq-feed": ("seq2seq", dict(src_vocab_size=30, tgt_vocab_size=25, embed_size=8, hidden_size=8,
                                     input_feeding=True)),
}


def model(name: str, seed: int = 0):
    torch.manual_seed(seed)
    kind, cfg = MODELS[name]
    return build_model(kind, cfg).eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict[str, tuple[torch.nn.Module, dict[str, Path]]]:
    root = tmp_path_factory.mktemp("graphs")
    return {name: (m := model(name), export_model(m, root / name, "ab" * 32, "tokenizer.json")) for name in MODELS}


def test_every_kind_exports_its_documented_graphs(exported):
    for name, (m, paths) in exported.items():
        assert set(paths) == set(N.GRAPHS[m.kind]), name
        assert all(p.name == N.graph_file(job) for job, p in paths.items())


def test_batch_and_time_axes_are_symbolic_in_inputs_and_outputs(exported):
    for name, (m, paths) in exported.items():
        for job, path in paths.items():
            dims = symbolic_dims(onnx.load(str(path)))
            wrapper = wrappers_for(m)[job]
            for tensor in wrapper.input_names + wrapper.output_names:
                assert tensor in dims, (name, job, tensor)
                for i, axis in wrapper.axes[tensor].items():
                    assert dims[tensor][i] == axis, (name, job, tensor, dims[tensor])
            # and the batch axis really is declared on every tensor of the graph
            for tensor, shape in dims.items():
                assert N.BATCH in shape, (name, job, tensor, shape)


def test_lm_step_graph_signature(exported):
    _, paths = exported["lm"]
    dims = symbolic_dims(onnx.load(str(paths[N.JOB_STEP])))
    assert dims == {"tokens": ["batch", "time"], "h0": [2, "batch", 12], "c0": [2, "batch", 12],
                    "logits": ["batch", "time", 41], "next_h0": [2, "batch", 12], "next_c0": [2, "batch", 12]}


def test_metadata_props_carry_everything_a_runner_needs(exported):
    m, paths = exported["lm"]
    g = onnx.load(str(paths[N.JOB_STEP]))
    meta = {p.key: p.value for p in g.metadata_props}
    assert set(N.REQUIRED_META) <= set(meta)
    assert meta["format_version"] == str(N.FORMAT_VERSION) and meta["kind"] == "lm" and meta["job"] == "step"
    assert (meta["cell"], meta["num_layers"], meta["hidden_size"], meta["vocab_size"]) == ("lstm", "2", "12", "41")
    assert (meta["pad_id"], meta["bos_id"], meta["eos_id"], meta["unk_id"]) == ("0", "-1", "-1", "-1")
    assert meta["tokenizer_sha256"] == "ab" * 32 and meta["precision"] == "fp32"
    assert meta["state_inputs"] == "h0,c0" and meta["state_outputs"] == "next_h0,next_c0"
    assert json.loads(meta["model_config"])["hidden_size"] == 12
    # seq2seq: the encoder *produces* the decoder's state, listed under its own names
    _, paths = exported["seq2seq-feed"]
    enc = {p.key: p.value for p in onnx.load(str(paths[N.JOB_ENCODER])).metadata_props}
    dec = {p.key: p.value for p in onnx.load(str(paths[N.JOB_DECODER])).metadata_props}
    assert enc["state_outputs"] == "h0,c0,feed0" and dec["state_inputs"] == "h0,c0,feed0"
    assert dec["state_outputs"] == "next_h0,next_c0,next_feed0" and dec["vocab_size"] == "25"


def test_graphs_pass_checker_and_use_only_standard_ops(exported):
    for name, (_, paths) in exported.items():
        for path in paths.values():
            onnx.checker.check_model(str(path), full_check=True)
            g = onnx.load(str(path))
            assert {n.domain for n in g.graph.node} <= {"", "ai.onnx"}, name
            ops = {n.op_type for n in g.graph.node}
            if name == "lm":
                assert "LSTM" in ops  # native recurrent node, not an unrolled loop
            if name == "classifier-uni":
                assert "GRU" in ops


def test_two_exports_in_one_process_with_different_lengths_stay_dynamic(tmp_path):
    """The dynamo exporter once pinned the time axis on a second export in one process."""
    m = model("lm")
    meta = graph_metadata(m, TokenStep(m))
    a = export_graph(TokenStep(m), tmp_path / "a.onnx", meta, example_batch=1, example_time=3)
    b = export_graph(TokenStep(m), tmp_path / "b.onnx", meta, example_batch=4, example_time=11)
    for path in (a, b):
        dims = symbolic_dims(onnx.load(str(path)))
        assert dims["tokens"] == ["batch", "time"] and dims["logits"][:2] == ["batch", "time"]
        sess = load_session(path)
        feeds = random_feeds(sess.get_inputs(), {"vocab_size": 41}, batch=2, time=19)
        assert ort_run(sess, feeds)["logits"].shape == (2, 19, 41)


def test_torchscript_exporter_is_requested(monkeypatch):
    assert _export_kwargs() == {"dynamo": False}
    # torch 2.4 has no ``dynamo`` argument (TorchScript is its only exporter): pass nothing then
    monkeypatch.setattr(torch.onnx, "export", lambda model, args, f, input_names=None: None)
    assert _export_kwargs() == {}


def test_decoder_with_time_loop_is_a_one_token_graph(exported):
    _, paths = exported["seq2seq-feed"]
    dims = symbolic_dims(onnx.load(str(paths[N.JOB_DECODER])))
    assert dims["prev"] == ["batch", 1] and dims["attn"] == ["batch", 1, "src_time"]


# ----------------------------------------------------------------------------- CLI
@pytest.fixture()
def run_dir(tmp_path) -> Path:
    run = tmp_path / "run"
    save(model("lm"), run / "model")
    CharTokenizer.train(["abc"]).save(run)
    from rnnkit.core.train.run_log import write_best

    (run / "metrics.jsonl").write_text('{"kind": "eval", "step": 10, "val_loss": 3.5}\n'
                                       '{"kind": "eval", "step": 20, "val_loss": 3.1}\n')
    write_best(run, "val_loss", "min", {"kind": "eval", "step": 20, "val_loss": 3.1})  # what the trainer records
    return run


def test_cli_export_then_verify(run_dir, tmp_path, capsys):
    out = tmp_path / "bundle"
    assert rnnkit_main(["export", str(run_dir), "--out", str(out)]) == 0
    b = open_bundle(out)
    m = b.manifest
    assert b.kind == "lm" and m["precision"] == "fp32" and m["graphs"] == {"step": "step.onnx"}
    assert sorted(m["files"]) == ["step.onnx", "tokenizer.json"]
    assert m["model"]["config"]["hidden_size"] == 12
    assert m["metrics"]["best"]["val_loss"] == 3.1
    assert m["tokenizer"]["file"] == "tokenizer.json"
    assert m["parity"]["max_abs_diff"] <= 1e-5
    assert b.metadata("step")["tokenizer_sha256"] == m["tokenizer"]["sha256"]
    capsys.readouterr()
    assert rnnkit_main(["verify", str(out)]) == 0
    assert "ok (lm, fp32)" in capsys.readouterr().out


def test_cli_export_int8_makes_int8_the_default(run_dir, tmp_path):
    out = tmp_path / "bundle"
    assert rnnkit_main(["export", str(run_dir), "--out", str(out), "--int8"]) == 0
    b = open_bundle(out)
    assert b.precision == "int8"
    assert b.graphs["step"].name == "step.int8.onnx" and b.fp32_graphs["step"].name == "step.onnx"
    assert b.metadata("step")["precision"] == "int8" and b.metadata("step", "fp32")["precision"] == "fp32"
    assert "step" in b.manifest["int8"] and b.manifest["int8_options"]["output_head"] == "int8"
    g = onnx.load(str(b.graphs["step"]))
    ops = {f"{n.domain}.{n.op_type}" if n.domain else n.op_type for n in g.graph.node}
    assert "MatMulInteger" in ops and "MatMul" not in ops  # the output layer too, int8 rows
    assert "Scan" in ops and "LSTM" not in ops and not any(o.startswith("com.microsoft") for o in ops)
    assert b.manifest["int8_options"]["scheme"] == "rowwise-int8"
    assert rnnkit_main(["verify", str(out)]) == 0
    assert rnnkit_main(["export", str(run_dir), "--out", str(out), "--int8", "--int8-head", "fp32"]) == 0
    b = open_bundle(out)
    assert b.manifest["int8_options"]["output_head"] == "fp32"
    g = onnx.load(str(b.graphs["step"]))
    producer = {o: n for n in g.graph.node for o in n.output}
    node = producer["logits"]
    while node.op_type == "Add":
        node = producer[next(i for i in node.input if i in producer)]
    assert node.op_type == "MatMul"  # kept fp32


def test_cli_accepts_a_plain_model_dir(run_dir, tmp_path):
    assert rnnkit_main(["export", str(run_dir / "model"), "--out", str(tmp_path / "b")]) == 0
    assert open_bundle(tmp_path / "b").tokenizer_path is None


def test_cli_verify_refuses_a_tampered_bundle(run_dir, tmp_path, capsys):
    out = tmp_path / "bundle"
    rnnkit_main(["export", str(run_dir), "--out", str(out)])
    data = bytearray((out / "step.onnx").read_bytes())
    data[-5] ^= 0xFF
    (out / "step.onnx").write_bytes(bytes(data))
    capsys.readouterr()
    assert rnnkit_main(["verify", str(out)]) == 2
    err = capsys.readouterr().err
    assert "step.onnx: altered" in err and "Traceback" not in err


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert rnnkit_main(["export", str(tmp_path / "nope"), "--out", str(tmp_path / "b")]) == 2
    assert "no such run or model directory" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert rnnkit_main(["export", str(tmp_path / "empty"), "--out", str(tmp_path / "b")]) == 2
    assert "neither a run directory" in capsys.readouterr().err


def test_export_help_lists_graphs_per_kind(capsys):
    with pytest.raises(SystemExit):
        rnnkit_main(["export", "--help"])
    text = capsys.readouterr().out
    for kind, jobs in N.GRAPHS.items():
        assert f"  {kind}:" in text
        for job in jobs:
            assert N.graph_file(job) in text


def test_verify_catches_metadata_that_disagrees_with_the_manifest(run_dir, tmp_path):
    from rnnkit.export.bundle import write_bundle
    from rnnkit.export.onnx_export import set_metadata
    from rnnkit.export.verify import verify_bundle

    out = tmp_path / "bundle"
    rnnkit_main(["export", str(run_dir), "--out", str(out)])
    # a re-signed bundle whose graph claims another tokenizer: hashes fine, content inconsistent
    g = onnx.load(str(out / "step.onnx"))
    set_metadata(g, {N.META_TOKENIZER_SHA256: "0" * 64})
    work = tmp_path / "work"
    work.mkdir()
    onnx.save(g, str(work / "step.onnx"))
    shutil.copy(out / "tokenizer.json", work / "tokenizer.json")
    manifest = json.loads((out / N.MANIFEST).read_text())
    write_bundle(out, {"step.onnx": work / "step.onnx", "tokenizer.json": work / "tokenizer.json"}, manifest)
    with pytest.raises(BundleError, match="tokenizer_sha256"):
        verify_bundle(out)


def test_tagger_bundle_carries_its_vocabulary_and_forecaster_its_task(tmp_path):
    from rnnkit.core.atomic import sha256_file

    run = tmp_path / "ner"
    save(model("tagger-chars"), run / "model")
    (run / "tagger_vocab.json").write_text(json.dumps({"words": ["<pad>", "<unk>"], "tags": ["O"]}))
    rnnkit_main(["export", str(run), "--out", str(tmp_path / "b1")])
    b = open_bundle(tmp_path / "b1")
    assert b.tokenizer_path.name == "tagger_vocab.json"
    assert b.metadata("tag")["tokenizer_sha256"] == sha256_file(run / "tagger_vocab.json")

    run = tmp_path / "ts"
    save(model("forecaster"), run / "model")
    task = {"metric": "val_rel_rmse", "series": {"airline": {"mu": 0.13, "sd": 0.06}}}
    (run / "config.json").write_text(json.dumps({"task": task}))
    rnnkit_main(["export", str(run), "--out", str(tmp_path / "b2")])
    b = open_bundle(tmp_path / "b2")
    assert b.manifest["task"] == task and b.tokenizer_path is None


def test_cli_export_int8_only_ships_no_fp32_graph(run_dir, tmp_path, capsys):
    out = tmp_path / "bundle"
    assert rnnkit_main(["export", str(run_dir), "--out", str(out), "--int8-only"]) == 2  # needs --int8
    assert "needs --int8" in capsys.readouterr().err
    assert rnnkit_main(["export", str(run_dir), "--out", str(out), "--int8", "--int8-only"]) == 0
    b = open_bundle(out)
    assert sorted(p.name for p in out.glob("*.onnx")) == ["step.int8.onnx"]
    assert b.precision == "int8" and b.fp32_graphs == {}
    assert b.manifest["parity"]["max_abs_diff"] <= 1e-5  # measured against fp32 before it was dropped
    with pytest.raises(BundleError, match="only int8"):
        b.graph_path("step", "fp32")
    assert rnnkit_main(["verify", str(out)]) == 0
