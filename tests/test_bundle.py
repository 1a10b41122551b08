"""Bundles: hashes verified on open, bad files refused by name, atomic writes (torch-free)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rnnkit.core.atomic import sha256_file
from rnnkit.edge import names
from rnnkit.edge.bundle import BundleError, open_bundle
from rnnkit.export.bundle import read_metrics, write_bundle


def _field(num: int, payload: bytes) -> bytes:
    """One length-delimited protobuf field (lengths < 2**14 here)."""
    n = len(payload)
    size = bytes([n]) if n < 128 else bytes([(n & 0x7F) | 0x80, n >> 7])
    return bytes([num << 3 | 2]) + size + payload


def fake_graph(meta: dict[str, str], size: int = 1100) -> bytes:
    """A ModelProto holding only ``metadata_props`` (field 14), padded to ``size`` bytes with a
    doc_string (field 6): enough for the bundle reader's scan, no onnx needed."""
    out = b"".join(_field(14, _field(1, k.encode()) + _field(2, v.encode())) for k, v in meta.items())
    pad = size - len(out) - 3
    return out + _field(6, b"g" * pad)


def make_bundle(tmp_path: Path, name: str = "bundle") -> Path:
    import hashlib

    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / "tokenizer.json").write_text('{"type": "char"}')
    sha = hashlib.sha256((src / "tokenizer.json").read_bytes()).hexdigest()
    (src / "step.onnx").write_bytes(fake_graph({"tokenizer_sha256": sha, "kind": "lm"}))
    manifest = {"format_version": names.FORMAT_VERSION, "kind": "lm", "graphs": {"step": "step.onnx"},
                "model": {"kind": "lm", "config": {"vocab_size": 3}}}
    return write_bundle(tmp_path / name, {"step.onnx": src / "step.onnx", "tokenizer.json": src / "tokenizer.json"},
                        manifest)


def test_open_bundle_verifies_and_describes(tmp_path):
    out = make_bundle(tmp_path)
    b = open_bundle(out)
    assert b.kind == "lm"
    assert b.graphs == {"step": out / "step.onnx"}
    assert b.fp32_graphs == b.graphs
    assert b.tokenizer_path == out / "tokenizer.json"
    m = json.loads((out / names.MANIFEST).read_text())
    assert m["files"]["step.onnx"] == sha256_file(out / "step.onnx")
    assert m["sizes"]["step.onnx"] == 1100


def test_missing_file_is_named(tmp_path):
    out = make_bundle(tmp_path)
    (out / "tokenizer.json").unlink()
    with pytest.raises(BundleError, match=r"tokenizer\.json: missing"):
        open_bundle(out)


def test_truncated_file_is_named(tmp_path):
    out = make_bundle(tmp_path)
    data = (out / "step.onnx").read_bytes()
    (out / "step.onnx").write_bytes(data[:500])
    with pytest.raises(BundleError, match=r"step\.onnx: truncated \(500 of 1100 bytes\)"):
        open_bundle(out)


def test_altered_file_same_size_is_named(tmp_path):
    out = make_bundle(tmp_path)
    data = bytearray((out / "step.onnx").read_bytes())
    data[10] ^= 1
    (out / "step.onnx").write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"step\.onnx: altered"):
        open_bundle(out)


def test_bad_manifest(tmp_path):
    out = make_bundle(tmp_path)
    (out / names.MANIFEST).write_text("{not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        open_bundle(out)
    (out / names.MANIFEST).unlink()
    with pytest.raises(BundleError, match="manifest.json: missing"):
        open_bundle(out)
    with pytest.raises(BundleError, match="no such bundle directory"):
        open_bundle(tmp_path / "nowhere")


def test_manifest_version_and_graphs_checked(tmp_path):
    out = make_bundle(tmp_path)
    m = json.loads((out / names.MANIFEST).read_text())
    (out / names.MANIFEST).write_text(json.dumps({**m, "format_version": 99}))
    with pytest.raises(BundleError, match="format_version 99"):
        open_bundle(out)
    (out / names.MANIFEST).write_text(json.dumps({**m, "graphs": {}}))
    with pytest.raises(BundleError, match=r"needs graph\(s\) \['step'\]"):
        open_bundle(out)


def test_missing_graph_job_is_a_clear_error(tmp_path):
    b = open_bundle(make_bundle(tmp_path))
    with pytest.raises(BundleError, match="no 'encoder' graph; this lm bundle has: step"):
        b.graph_path("encoder")


def test_rewrite_replaces_atomically_and_leaves_no_temp(tmp_path):
    make_bundle(tmp_path)
    (tmp_path / "src" / "step.onnx").write_bytes(fake_graph({"tokenizer_sha256": ""}, 200))
    manifest = {"format_version": names.FORMAT_VERSION, "kind": "lm", "graphs": {"step": "step.onnx"},
                "model": {"kind": "lm", "config": {}}}
    write_bundle(tmp_path / "bundle", {"step.onnx": tmp_path / "src" / "step.onnx"}, manifest)
    b = open_bundle(tmp_path / "bundle")
    assert (b.path / "step.onnx").read_bytes() == fake_graph({"tokenizer_sha256": ""}, 200)
    assert not (b.path / "tokenizer.json").exists()  # the old bundle is gone, not merged
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle", "src"]


def test_refuses_to_replace_a_non_bundle_directory(tmp_path):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    with pytest.raises(FileExistsError, match="not a bundle"):
        make_bundle(tmp_path, "precious")
    assert (precious / "thesis.tex").read_text() == "years of work"


def test_manifest_must_not_name_files_it_lacks(tmp_path):
    manifest = {"format_version": 1, "kind": "lm", "graphs": {"step": "step.onnx"}, "model": {}}
    with pytest.raises(ValueError, match="not in the bundle"):
        write_bundle(tmp_path / "b", {}, manifest)
    assert not (tmp_path / "b").exists()
    assert list(tmp_path.iterdir()) == []


def test_read_metrics_takes_best_from_the_trainers_record_never_from_the_name(tmp_path):
    from rnnkit.core.train.run_log import write_best

    lines = [{"kind": "train", "step": 1, "loss": 9.0}, {"kind": "eval", "step": 1, "val_acc": 0.5},
             {"kind": "eval", "step": 2, "val_acc": 0.8}, {"kind": "eval", "step": 3, "val_acc": 0.7},
             {"kind": "final", "test_acc": 0.75}]
    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\nnot json\n")
    # no best.json (a run older than it): last and final, but no guessed best
    m = read_metrics(tmp_path)
    assert "best" not in m and "mode" not in m and m["last"]["step"] == 3 and m["final"]["test_acc"] == 0.75
    write_best(tmp_path, "val_acc", "max", lines[2])
    m = read_metrics(tmp_path)
    assert (m["metric"], m["mode"], m["best"]["step"], m["best"]["val_acc"]) == ("val_acc", "max", 2, 0.8)
    # a name that sounds like a loss does not flip what the trainer recorded
    write_best(tmp_path, "err_rate", "max", {"kind": "eval", "step": 1, "err_rate": 0.5})
    assert read_metrics(tmp_path)["best"]["step"] == 1
    with pytest.raises(ValueError, match="min' or 'max"):
        write_best(tmp_path, "val_acc", "up", lines[2])
    assert read_metrics(tmp_path / "nothing") == {}


def test_torch_free_modules_import_without_torch():
    code = ("import sys; sys.modules['torch'] = None\n"
            "import rnnkit.edge.names, rnnkit.edge.bundle, rnnkit.edge.runner, rnnkit.export.bundle, rnnkit.export.feeds, "
            "rnnkit.export.verify\n"
            "print('ok')")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr


def test_the_graph_that_runs_is_the_graph_that_was_hashed(tmp_path):
    """A graph file swapped after open_bundle (a time-of-check / time-of-use race) is not what
    runs: the runner gets the bytes that were hashed; a later request reads the file again and
    checks it again."""
    out = make_bundle(tmp_path)
    b = open_bundle(out)
    hashed = (out / "step.onnx").read_bytes()
    swapped = bytearray(hashed)
    swapped[10] ^= 1
    (out / "step.onnx").write_bytes(bytes(swapped))
    assert b.graph_model("step") == hashed  # the bytes read and hashed when the bundle was opened
    with pytest.raises(BundleError, match=r"step\.onnx: altered"):
        b.graph_model("step")  # handed out once: read again, and checked again
    names_seen = []

    class Fake:
        def __init__(self, model, name=None, **kw):
            names_seen.append((type(model).__name__, name, kw))

    (out / "step.onnx").write_bytes(hashed)
    b.runner(Fake, "step", threads=1)
    assert names_seen == [("bytes", str(out / "step.onnx"), {"threads": 1})]


def test_verify_says_whether_this_machines_int8_products_are_exact():
    """onnxruntime's uint8 x int8 kernel saturates on an x86 with AVX2 and no VNNI; verify reports it
    (the probe's answer is the one a numpy product gives, or the saturated one)."""
    from rnnkit.edge.runner import _U8S8_PROBE, int8_products_exact, load_session
    from rnnkit.export.verify import verify_bundle

    got = int(load_session(_U8S8_PROBE).run(None, {"a": np.full((1, 4), 255, np.uint8)})[0][0, 0])
    assert got in (255 * 127 * 4, 2 * 32767)  # exact, or two int16 pair sums saturated
    assert int8_products_exact() is (got == 255 * 127 * 4)
    bundle = Path(__file__).resolve().parent.parent / "models" / "char-shakespeare"
    report = verify_bundle(bundle)
    assert report["int8_products_exact"] is int8_products_exact()
    assert report["int8_levels_fit_int16"] is True   # the shipped graphs answer the same on such a CPU too
