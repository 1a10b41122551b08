"""Hostile bundles: a bundle is exactly its manifest.

Each case tampers a private copy of a shipped bundle and expects ``BundleError`` with one line
naming the problem (or, for the positive controls, a bundle that opens and runs), in bounded
time and memory.
"""

from __future__ import annotations

import json

import os
import shutil

import numpy as np
import pytest

from conftest import (MODELS, bounded, cli, cli_error, copy_bundle, edit_graph, manifest, one_line_error, rehash,
                      run, set_meta, sha, write_manifest)
from rnnkit.edge.bundle import BundleError, open_bundle

GRAPH, TOK = "step.int8.onnx", "tokenizer.json"


def refused(bundle, match: str, fn=open_bundle, error=BundleError, seconds: float = 10.0) -> str:
    with bounded(seconds), pytest.raises(error) as e:
        fn(bundle)
    msg = str(e.value)
    assert "\n" not in msg and match in msg, msg
    return msg


# --------------------------------------------------------------------------- manifest fields
def _files(m, v): m["files"] = v
def _sizes(m, v): m["sizes"] = v


MANIFEST_CASES = {
    "files-list": (lambda m: _files(m, []), "'files' must be an object"),
    "files-int-hash": (lambda m: m["files"].update({TOK: 7}), "'files' must be an object"),
    "files-short-hash": (lambda m: m["files"].update({TOK: "abc"}), "'files' must be an object"),
    "files-empty": (lambda m: (_files(m, {}), _sizes(m, {})), "lists 0 files"),
    "files-too-many": (lambda m: (m["files"].update({f"x{i}.bin": "0" * 64 for i in range(70)}),
                                  m["sizes"].update({f"x{i}.bin": 1 for i in range(70)})), "files (1 to 64"),
    "name-dotdot": (lambda m: (m["files"].update({"../x": "0" * 64}), m["sizes"].update({"../x": 1})), "bad file name"),
    "name-slash": (lambda m: (m["files"].update({"a/b": "0" * 64}), m["sizes"].update({"a/b": 1})), "bad file name"),
    "name-absolute": (lambda m: (m["files"].update({"/etc/passwd": "0" * 64}), m["sizes"].update({"/etc/passwd": 1})),
                      "bad file name"),
    "name-manifest": (lambda m: (m["files"].update({"manifest.json": "0" * 64}), m["sizes"].update({"manifest.json": 1})),
                      "bad file name"),
    "sizes-missing": (lambda m: m.pop("sizes"), "lacks 'sizes'"),
    "sizes-string": (lambda m: m["sizes"].update({TOK: "608"}), "'sizes' must be an object"),
    "sizes-bool": (lambda m: m["sizes"].update({TOK: True}), "'sizes' must be an object"),
    "sizes-negative": (lambda m: m["sizes"].update({TOK: -1}), "'sizes' must be an object"),
    "sizes-zero": (lambda m: m["sizes"].update({TOK: 0}), "'sizes' must be an object"),
    "sizes-50GB": (lambda m: m["sizes"].update({TOK: 50 << 30}), "'sizes' must be an object"),
    "sizes-other-files": (lambda m: m["sizes"].pop(TOK), "list different files"),
    "sizes-lower-bound": (lambda m: m["sizes"].update({TOK: 500}), "the manifest says 500"),
    "sizes-larger": (lambda m: m["sizes"].update({TOK: 700}), "truncated (608 of 700 bytes)"),
    "graphs-list": (lambda m: m.update(graphs=[GRAPH]), "'graphs' must be an object"),
    "graphs-int": (lambda m: m.update(graphs={"step": 1}), "'graphs' must be an object"),
    "graphs-unlisted": (lambda m: m.update(graphs={"step": "other.onnx"}), "not a hashed bundle file"),
    "graphs-missing-job": (lambda m: m.update(graphs={}), "needs graph(s) ['step']"),
    "fp32-graphs-string": (lambda m: m.update(fp32_graphs="step.onnx"), "'fp32_graphs' must be an object"),
    "kind-int": (lambda m: m.update(kind=3), "unknown kind"),
    "kind-list": (lambda m: m.update(kind=["lm"]), "unknown kind"),
    "kind-unknown": (lambda m: m.update(kind="transformer"), "unknown kind"),
    "version-string": (lambda m: m.update(format_version="1"), "format_version \"1\""),
    "version-bool": (lambda m: m.update(format_version=True), "format_version true"),
    "version-future": (lambda m: m.update(format_version=2), "format_version 2"),
    "model-list": (lambda m: m.update(model=[]), "'model' must be an object"),
    "model-config-string": (lambda m: m["model"].update(config="{}"), "'model' must be an object"),
    "model-kind-differs": (lambda m: m["model"].update(kind="seq2seq"), "differs from the bundle's kind"),
    "config-hidden-huge": (lambda m: m["model"]["config"].update(hidden_size=10 ** 9), "hidden_size=1000000000"),
    "config-vocab-string": (lambda m: m["model"]["config"].update(vocab_size="abc"), "vocab_size='abc'"),
    "config-layers-float": (lambda m: m["model"]["config"].update(num_layers=2.5), "num_layers=2.5"),
    "tokenizer-wrong-sha": (lambda m: m["tokenizer"].update(sha256="0" * 64), "'tokenizer' must be"),
    "tokenizer-unlisted": (lambda m: m["tokenizer"].update(file="tokenizer.model"), "'tokenizer' must be"),
    "tokenizer-string": (lambda m: m.update(tokenizer="tokenizer.json"), "'tokenizer' must be"),
    "precision-bad": (lambda m: m.update(precision="fp64"), "'precision'"),
    "metrics-list": (lambda m: m.update(metrics=[1, 2]), "'metrics'"),
    "missing-graphs": (lambda m: m.pop("graphs"), "lacks 'graphs'"),
    "missing-kind": (lambda m: m.pop("kind"), "lacks 'kind'"),
}


@pytest.mark.parametrize("case", sorted(MANIFEST_CASES))
def test_manifest_field_types_and_values(lm_bundle, case):
    edit, match = MANIFEST_CASES[case]
    m = manifest(lm_bundle)
    edit(m)
    write_manifest(lm_bundle, m)
    refused(lm_bundle, match)


RAW_MANIFESTS = {
    "deep-nesting": ('{"a": ' * 100_000 + "1" + "}" * 100_000, "not valid JSON"),
    "nan": ('{"format_version": NaN}', "NaN is not JSON"),
    "infinity": ('{"x": -Infinity}', "Infinity is not JSON"),
    "huge-int": ('{"format_version": ' + "9" * 5000 + "}", "not valid JSON"),
    "top-level-list": ("[1, 2, 3]", "not a JSON object"),
    "truncated": ('{"format_version": 1, "kind": "lm", "fi', "not valid JSON"),
    "empty": ("", "not valid JSON"),
    "huge": ('{"pad": "' + "x" * (2 << 20) + '"}', "a manifest is at most"),
}


@pytest.mark.parametrize("case", sorted(RAW_MANIFESTS))
def test_manifest_that_is_not_strict_json(lm_bundle, case):
    text, match = RAW_MANIFESTS[case]
    write_manifest(lm_bundle, text)
    refused(lm_bundle, match)


def test_manifest_not_utf8(lm_bundle):
    (lm_bundle / "manifest.json").write_bytes(b'{"kind": "\xff\xfe"}')
    refused(lm_bundle, "not UTF-8")


# --------------------------------------------------------------------------- links and special files
def test_tokenizer_linked_to_etc_passwd(lm_bundle):
    (lm_bundle / TOK).unlink()
    os.symlink("/etc/passwd", lm_bundle / TOK)
    m = manifest(lm_bundle)
    m["files"][TOK] = m["tokenizer"]["sha256"] = sha(lm_bundle / TOK)
    m["sizes"][TOK] = os.path.getsize("/etc/passwd")
    write_manifest(lm_bundle, m)
    refused(lm_bundle, "is a symbolic link")


def test_link_to_a_50_gb_sparse_file_is_not_hashed(lm_bundle, tmp_path):
    big = tmp_path / "sparse.bin"
    with open(big, "wb") as f:
        f.truncate(50 << 30)
    (lm_bundle / TOK).unlink()
    os.symlink(big, lm_bundle / TOK)
    refused(lm_bundle, "is a symbolic link", seconds=2)


@pytest.mark.parametrize("what", [GRAPH, "manifest.json"])
def test_graph_or_manifest_linked_outside(lm_bundle, tmp_path, what):
    outside = tmp_path / f"outside-{what}"
    shutil.move(lm_bundle / what, outside)
    os.symlink(outside, lm_bundle / what)
    refused(lm_bundle, "is a symbolic link")


def test_bundle_file_linked_to_dev_zero(lm_bundle):
    (lm_bundle / TOK).unlink()
    os.symlink("/dev/zero", lm_bundle / TOK)
    refused(lm_bundle, "is a symbolic link", seconds=2)


def test_fifo_in_place_of_the_tokenizer_does_not_hang(lm_bundle):
    (lm_bundle / TOK).unlink()
    os.mkfifo(lm_bundle / TOK)
    refused(lm_bundle, "not a regular file", seconds=2)


def test_directory_in_place_of_the_graph(lm_bundle):
    (lm_bundle / GRAPH).unlink()
    (lm_bundle / GRAPH).mkdir()
    refused(lm_bundle, "not a regular file")


def test_missing_graph_file(lm_bundle):
    (lm_bundle / GRAPH).unlink()
    refused(lm_bundle, "missing from the bundle")


def test_graph_grown_by_one_byte(lm_bundle):
    with open(lm_bundle / GRAPH, "ab") as f:
        f.write(b"\0")
    size = json.loads((lm_bundle / "manifest.json").read_text())["sizes"][GRAPH]
    refused(lm_bundle, f"{size + 1} bytes, the manifest says {size}")


# --------------------------------------------------------------------------- external data
def _externalise(bundle, location: str = "embed.bin"):
    """Move every initializer of the graph into ``location`` (what onnx.save does for > 2 GB)."""
    import onnx

    path = bundle / GRAPH
    model = onnx.load(str(path))
    onnx.save(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
              location=location, size_threshold=0)


def test_embedding_moved_to_an_unlisted_external_file(lm_bundle):
    _externalise(lm_bundle)
    data = bytearray((lm_bundle / "embed.bin").read_bytes())
    (lm_bundle / "embed.bin").write_bytes(bytes(len(data)))  # zeroed: broken weights
    rehash(lm_bundle, GRAPH)
    refused(lm_bundle, "reads external data from 'embed.bin'")


@pytest.mark.parametrize("location", ["../outside.bin", "/etc/passwd", "sub/embed.bin", TOK, GRAPH])
def test_external_data_pointing_anywhere_else(lm_bundle, location):
    import onnx

    model = onnx.load(str(lm_bundle / GRAPH))
    init = model.graph.initializer[0]
    del init.external_data[:]
    entry = init.external_data.add()
    entry.key, entry.value = "location", location
    init.data_location = onnx.TensorProto.EXTERNAL
    init.ClearField("raw_data")
    onnx.save(model, str(lm_bundle / GRAPH))
    rehash(lm_bundle, GRAPH)
    refused(lm_bundle, "is not a hashed data file of this bundle")


def test_listed_external_data_zeroed_afterwards(lm_bundle):
    _externalise(lm_bundle)
    rehash(lm_bundle, GRAPH, m=rehash(lm_bundle, "embed.bin", m=_listed(lm_bundle, "embed.bin")))
    open_bundle(lm_bundle)  # listed and hashed: fine
    size = (lm_bundle / "embed.bin").stat().st_size
    (lm_bundle / "embed.bin").write_bytes(bytes(size))
    refused(lm_bundle, "embed.bin: altered")


def _listed(bundle, name):
    m = manifest(bundle)
    m["files"][name], m["sizes"][name] = "0" * 64, 1
    return m


def test_listed_external_data_runs(lm_bundle):
    """Positive control: external data the manifest lists and hashes is allowed and runs."""
    from rnnkit.export.verify import verify_bundle

    _externalise(lm_bundle)
    rehash(lm_bundle, GRAPH, "embed.bin", m=_listed(lm_bundle, "embed.bin"))
    with bounded(20):
        report = verify_bundle(lm_bundle)
    assert report["kind"] == "lm"


# --------------------------------------------------------------------------- tokenizer vs graph
def test_random_tokenizer_bytes_with_the_manifest_updated(lm_bundle):
    (lm_bundle / TOK).write_bytes(os.urandom(608))
    rehash(lm_bundle, TOK)
    refused(lm_bundle, "tokenizer_sha256")


def test_another_bundles_tokenizer(sp_bundle):
    # translate-en-de: another SentencePiece model (sentiment-mr now shares suggest-en's, by transfer)
    shutil.copy(MODELS / "translate-en-de" / "tokenizer.model", sp_bundle / "tokenizer.model")
    rehash(sp_bundle, "tokenizer.model")
    refused(sp_bundle, "do not belong together")


def test_empty_tokenizer_model(sp_bundle, capsys):
    (sp_bundle / "tokenizer.model").write_bytes(b"")
    rehash(sp_bundle, "tokenizer.model")
    refused(sp_bundle, "'sizes' must be an object")
    cli_error(capsys, "suggest", sp_bundle, "--json", match="'sizes' must be")


def test_empty_tokenizer_model_with_the_graph_metadata_forged_too(sp_bundle, capsys):
    import hashlib

    empty = hashlib.sha256(b"").hexdigest()
    (sp_bundle / "tokenizer.model").write_bytes(b"")
    edit_graph(sp_bundle / GRAPH, lambda mo: set_meta(mo, tokenizer_sha256=empty))
    m = rehash(sp_bundle, GRAPH)
    m["files"]["tokenizer.model"] = m["tokenizer"]["sha256"] = empty
    m["sizes"]["tokenizer.model"] = 0
    write_manifest(sp_bundle, m)
    refused(sp_bundle, "'sizes' must be an object")


def test_unlisted_tokenizer_json_beside_the_listed_one_is_never_read(sp_bundle):
    """The demo used to find tokenizers by listing the directory."""
    from rnnkit.edge.predict_text import TextGenerator

    (sp_bundle / "tokenizer.json").write_text('{"kind": "char", "vocab": ["<pad>", "<unk>", "x"]}')
    with bounded(20):
        gen = TextGenerator(sp_bundle)
    assert gen.bundle.tokenizer_path.name == "tokenizer.model"
    assert type(gen.tok).__name__ == "SentencePieceTokenizer"


@pytest.mark.parametrize("meta, match", [
    ({"tokenizer_file": "tokenizer.model"}, "metadata tokenizer_file"),
    ({"hidden_size": str(10 ** 9)}, "hidden_size='1000000000'"),
    ({"num_layers": "-1"}, "num_layers='-1'"),
    ({"vocab_size": "abc"}, "vocab_size='abc'"),
    ({"kind": "seq2seq"}, "metadata kind"),
    ({"tokenizer_sha256": "0" * 64}, "do not belong together"),
    ({"model_config": "x" * 100_000}, "longer than"),
])
def test_graph_metadata_tampered(lm_bundle, meta, match):
    edit_graph(lm_bundle / GRAPH, lambda mo: set_meta(mo, **meta))
    rehash(lm_bundle, GRAPH)
    refused(lm_bundle, match)


def test_graph_metadata_without_tokenizer_hash(lm_bundle):
    def drop(mo):
        keep = [p for p in mo.metadata_props if p.key != "tokenizer_sha256"]
        del mo.metadata_props[:]
        mo.metadata_props.extend(keep)

    edit_graph(lm_bundle / GRAPH, drop)
    rehash(lm_bundle, GRAPH)
    refused(lm_bundle, "lacks 'tokenizer_sha256'")


@pytest.mark.parametrize("content", ["random", "truncated", "zeros"])
def test_graph_that_is_not_onnx(lm_bundle, content):
    data = (lm_bundle / GRAPH).read_bytes()
    new = {"random": os.urandom(4096), "truncated": data[:len(data) // 2], "zeros": bytes(1000)}[content]
    (lm_bundle / GRAPH).write_bytes(new)
    rehash(lm_bundle, GRAPH)
    refused(lm_bundle, GRAPH)


@pytest.mark.parametrize("command", ["verify", "suggest"])
def test_a_graph_onnxruntime_refuses(sp_bundle, capsys, command):
    def break_op(mo):
        mo.graph.node[0].op_type = "NoSuchOp"

    edit_graph(sp_bundle / GRAPH, break_op)
    rehash(sp_bundle, GRAPH)
    line = cli_error(capsys, command, sp_bundle, match=GRAPH)
    assert "NoSuchOp" in line  # onnx.checker's or onnxruntime's own first line, with the file named


def test_verify_on_model_config_metadata_that_is_not_json(lm_bundle, capsys):
    edit_graph(lm_bundle / GRAPH, lambda mo: set_meta(mo, model_config="{not json"))
    rehash(lm_bundle, GRAPH)
    cli_error(capsys, "verify", lm_bundle, match="model_config is not valid JSON")


def _state_dims(model, dims):
    for inp in model.graph.input:
        if inp.name in ("h0", "c0"):
            for d, v in zip(inp.type.tensor_type.shape.dim, dims):
                if isinstance(v, str):
                    d.dim_param = v
                else:
                    d.dim_value = v


def test_symbolic_state_dims_are_not_allocated_from_metadata(sp_bundle, capsys):
    """suggest used to np.zeros a 37 GiB state from metadata when the graph left L and H symbolic."""
    edit_graph(sp_bundle / GRAPH, lambda mo: _state_dims(mo, ["layers", "batch", "hidden"]))
    rehash(sp_bundle, GRAPH)
    cli_error(capsys, "suggest", sp_bundle, "--json", match="symbolic num_layers dim")


def test_verify_refuses_a_huge_static_input(lm_bundle, capsys):
    edit_graph(lm_bundle / GRAPH, lambda mo: _state_dims(mo, [2, "batch", 1 << 30]))
    rehash(lm_bundle, GRAPH)
    rc, _, err = cli(capsys, "verify", lm_bundle)
    assert rc == 2 and "step.int8.onnx" in one_line_error(err)


# --------------------------------------------------------------------------- the CLI and the demo
@pytest.mark.parametrize("command", ["verify", "suggest"])
def test_cli_on_a_tampered_bundle_is_one_line(sp_bundle, capsys, command):
    (sp_bundle / "tokenizer.model").write_bytes(os.urandom(1000))
    rehash(sp_bundle, "tokenizer.model")
    cli_error(capsys, command, sp_bundle, *(["--json"] if command == "suggest" else []), match="do not belong")


def test_subprocess_verify_refuses_the_passwd_link(lm_bundle):
    (lm_bundle / TOK).unlink()
    os.symlink("/etc/passwd", lm_bundle / TOK)
    r = run(["verify", lm_bundle], timeout=60)
    assert r.returncode == 2 and "symbolic link" in one_line_error(r.stderr.decode())


def test_subprocess_suggest_refuses_unlisted_external_data(sp_bundle):
    _externalise(sp_bundle)
    rehash(sp_bundle, GRAPH)
    r = run(["suggest", sp_bundle, "--json"], stdin=b'{"text": "hi "}\n', timeout=60)
    assert r.returncode == 2 and "external data" in one_line_error(r.stderr.decode())


def test_demo_starts_with_a_tampered_bundle_and_says_why(tmp_path):
    from rnnkit.demo.shelf import load_shelf

    models = tmp_path / "models"
    models.mkdir()
    for name in ("char-shakespeare", "suggest-en"):
        copy_bundle(name, models)
    (models / "suggest-en" / "tokenizer.model").unlink()
    os.symlink("/etc/passwd", models / "suggest-en" / "tokenizer.model")
    with bounded(30):
        shelf = load_shelf(models)
    assert shelf["shakespeare"].engine is not None
    assert shelf["suggest"].engine is None and "symbolic link" in shelf["suggest"].problem
    assert "\n" not in shelf["suggest"].problem


def test_shipped_bundles_still_open_and_verify(capsys):
    """Positive control: the stricter reader accepts every shipped bundle as it is."""
    for name in ("char-shakespeare", "suggest-en", "sentiment-mr", "translate-en-de"):
        rc, out, err = cli(capsys, "verify", MODELS / name, seconds=30)
        assert rc == 0 and "ok" in out, err


def test_export_writes_strict_json_only(tmp_path):
    from rnnkit.export.bundle import write_bundle

    src = tmp_path / "t.json"
    src.write_text("{}")
    with bounded(5), pytest.raises(ValueError, match="parity.max_abs_diff is not a finite number"):
        write_bundle(tmp_path / "b", {"tokenizer.json": src},
                     {"format_version": 1, "kind": "lm", "graphs": {}, "model": {}, "parity": {"max_abs_diff": np.nan}})
    assert not (tmp_path / "b").exists()


def test_runner_refuses_graph_bytes_that_refer_to_external_data(lm_bundle):
    """Bytes have no directory: onnxruntime would resolve external data against the working directory."""
    from rnnkit.edge.runner import EdgeError, StepRunner

    _externalise(lm_bundle)
    with bounded(5), pytest.raises(EdgeError, match="refer to external data 'embed.bin'"):
        StepRunner((lm_bundle / GRAPH).read_bytes())
