"""One bundle, one answer: every shipped graph under onnxruntime (Python), onnxruntime-node and
onnxruntime-web (WebAssembly), on the same real text (issue 14).

Needs node and `npm ci --ignore-scripts` in node/ (`make node-deps`). Skips, saying so, only where
`node` is missing; with RNNKIT_REQUIRE_NODE=1 (CI) it fails instead.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from rnnkit.export import conformance as C

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"
BUNDLES = sorted(p for p in MODELS.iterdir() if (p / "manifest.json").is_file()) if MODELS.is_dir() else []
CHUNK_LIMIT, BATCH_LIMIT, RUNTIME_LIMIT = 1e-4, 1e-4, 1e-3


def _need_node() -> None:
    if shutil.which("node") is None:
        msg = "node is not installed (apt-get install -y nodejs npm; then npm ci --ignore-scripts in node/)"
        if os.environ.get("RNNKIT_REQUIRE_NODE") == "1":
            pytest.fail(f"RNNKIT_REQUIRE_NODE=1 but {msg}")
        pytest.skip(msg)
    why = C.node_available()
    if why:  # node is there: missing packages are a setup error, not a reason to skip
        pytest.fail(why)


@pytest.fixture(scope="module")
def rows():
    _need_node()
    if not BUNDLES:
        pytest.fail(f"no bundles in {MODELS}")
    table, _ = C.run_all(BUNDLES, tokens=1000, timing_steps=30, warmup_steps=20)
    print("\n" + C.format_table(table))
    return table


def test_every_shipped_graph_runs_everywhere(rows):
    graphs = {r["graph"] for r in rows}
    for b in BUNDLES:
        manifest = json.loads((b / "manifest.json").read_text())
        for f in manifest["graphs"].values():
            assert f"{b}/{f}" in graphs
    assert {r["runtime"] for r in rows} == {"python", *C.RUNTIMES}


def test_same_answer_however_the_input_is_chunked(rows):
    """A step graph fed 1,000 tokens in one call equals one token per call, state fed back."""
    bad = [(r["graph"], r["runtime"], r["chunk"]) for r in rows if r["step_graph"] and r["chunk"] > CHUNK_LIMIT]
    assert not bad, f"one-shot vs stepped differs by more than {CHUNK_LIMIT}: {bad}"


def test_same_answer_alone_or_in_a_batch_of_8(rows):
    bad = [(r["graph"], r["runtime"], r["batch"]) for r in rows if r["batch"] > BATCH_LIMIT]
    assert not bad, f"batch of 8 vs batch of 1 differs by more than {BATCH_LIMIT}: {bad}"


# Known miss, measured: the NER tagger's batch of 8 in WebAssembly is 0.0065 from Python (its one-by-one
# run agrees exactly); kept out of the test below and pinned by the strict xfail after it.
# (graph, runtime, one|batch) that may differ and is known to: none now. The CRF tagger shipped in the
# sixth session's bundle no longer shows the 0.0065 that its predecessor's batch of 8 had in WebAssembly.
KNOWN_MISSES: set[tuple[str, str, str]] = set()


def _runtime_misses(rows) -> list[tuple]:
    out = []
    for r in (r for r in rows if r["runtime"] != "python"):
        for what, diff in (("one", r["vs_python"]), ("batch", r["vs_python_batch"])):
            if diff > RUNTIME_LIMIT:
                out.append((r["graph"], r["runtime"], what, diff))
        if r.get("top3_same", 1.0) < 1.0:
            out.append((r["graph"], r["runtime"], "top3", r["top3_same"]))
    return out


def _known(miss) -> bool:
    return any(miss[0].endswith(g) and miss[1] == rt and miss[2] == what for g, rt, what in KNOWN_MISSES)


def test_same_answer_on_every_runtime(rows):
    """Node and WebAssembly within 1e-3 of Python in every output, the same top-3 at every position."""
    bad = [m for m in _runtime_misses(rows) if not _known(m)]
    assert not bad, f"runtimes disagree with onnxruntime (Python): {bad}"


# ----------------------------------------------------------------------------- the app example (docs/APP.md)
def _app(bundle: Path, text: str, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run(["node", str(C.NODE_DIR / "app_example.js"), str(bundle), text, *flags],
                          capture_output=True, text=True, timeout=300, cwd=C.NODE_DIR)


def _python_next_word(bundle: Path, text: str) -> tuple[list[int], str]:
    """The example's algorithm with the Python tokenizer and onnxruntime: the reference."""
    from rnnkit.core.text.tokenizers import load_tokenizer
    from rnnkit.edge.bundle import open_bundle
    from rnnkit.edge.runner import load_session

    b = open_bundle(bundle)
    cfg = b.model_config
    tok = load_tokenizer(bundle)
    sess = load_session(b.graph_path("step"))
    ids = tok.encode(text.rstrip())
    state = {i.name: np.zeros((i.shape[0], 1, i.shape[2]), np.float32) for i in sess.get_inputs() if i.name != "tokens"}

    def feed(t):
        out = dict(zip([o.name for o in sess.get_outputs()],
                       sess.run(None, {"tokens": np.asarray([t], np.int64), **state})))
        state.update({k: out["next_" + k] for k in list(state)})
        return out["logits"][0, -1]

    pieces = [tok.id_to_piece(i) for i in range(cfg["vocab_size"])]
    control = {i for i in (cfg["pad_id"], cfg["bos_id"], cfg["eos_id"], cfg["unk_id"]) if i >= 0}
    starts = np.array([p.startswith("\u2581") and p != "\u2581" and i not in control for i, p in enumerate(pieces)])
    logits = feed([cfg["eos_id"], *ids])
    word = [int(np.where(starts, logits, -np.inf).argmax())]
    for _ in range(8):
        logits = feed([word[-1]])
        logits[list(control)] = -np.inf
        nxt = int(logits.argmax())
        piece = tok.decode([nxt])
        if pieces[nxt].startswith("\u2581") or not any(ch.isalnum() or ch in "'-" for ch in piece):
            break
        word.append(nxt)
    return ids, tok.decode(word).strip()


@pytest.mark.parametrize("flag", ["", "--web"])
def test_app_example_picks_the_next_word_like_python(flag):
    _need_node()
    bundle = MODELS / "suggest-en"
    for text in ("Thank you for the", "I would like to", "Héllo wörld, naïve café ✓ 123", "", "   "):
        proc = _app(bundle, text, *([flag] if flag else []))
        assert proc.returncode == 0, proc.stderr
        out = json.loads(proc.stdout)
        ids, word = _python_next_word(bundle, text)
        assert out["ids"] == ids  # the JavaScript SentencePiece encoder = the Python one
        assert out["next_word"] == word and word and len(out["top3"]) == 3


def test_app_example_refuses_a_tampered_bundle(tmp_path):
    _need_node()
    bundle = tmp_path / "suggest-en"
    shutil.copytree(MODELS / "suggest-en", bundle)
    graph = bundle / json.loads((bundle / "manifest.json").read_text())["graphs"]["step"]
    data = bytearray(graph.read_bytes())
    data[len(data) // 2] ^= 0x01
    graph.write_bytes(bytes(data))
    proc = _app(bundle, "Thank you")
    assert proc.returncode == 1 and "sha256" in proc.stderr and proc.stdout == ""
    shutil.copy(MODELS / "suggest-en" / graph.name, graph)
    (bundle / "tokenizer.model").write_bytes(b"short")
    proc = _app(bundle, "Thank you")
    assert proc.returncode == 1 and "bytes, the manifest says" in proc.stderr
    # a listed file that is a link (it could lead out of the bundle), a format this reader does not know
    (bundle / "tokenizer.model").unlink()
    (bundle / "tokenizer.model").symlink_to(MODELS / "suggest-en" / "tokenizer.model")
    proc = _app(bundle, "Thank you")
    assert proc.returncode == 1 and "not a regular file" in proc.stderr
    shutil.copy(MODELS / "suggest-en" / "tokenizer.model", tmp_path / "tok")
    (bundle / "tokenizer.model").unlink()
    shutil.copy(tmp_path / "tok", bundle / "tokenizer.model")
    manifest = json.loads((bundle / "manifest.json").read_text())
    (bundle / "manifest.json").write_text(json.dumps({**manifest, "format_version": 99}))
    proc = _app(bundle, "Thank you")
    assert proc.returncode == 1 and "bundle format 99" in proc.stderr


def test_the_js_step_model_carries_any_state_the_graph_has():
    """StepModel takes its state tensors and their shapes from the graph: (h0, c0) of an LSTM and
    (k0, v0, len0) of the Transformer's KV cache alike, fed back call after call as Python does."""
    _need_node()
    from rnnkit.edge.runner import StepRunner

    ids = [[5, 9, 2], [7], [3, 3]]
    script = f"""
      const rk = require('./rnnkit'); const ort = require('onnxruntime-node');
      (async () => {{
        const out = {{}};
        for (const d of {json.dumps([str(MODELS / "char-shakespeare"), str(MODELS / "char-shakespeare-gpt")])}) {{
          const lm = await rk.StepModel.create(ort, rk.openBundle(d));
          const rows = [];
          for (const chunk of {json.dumps(ids)}) rows.push(Array.from(await lm.feed(chunk)));
          out[d] = {{ state: lm.stateNames, rows }};
        }}
        console.log(JSON.stringify(out));
      }})();"""
    proc = subprocess.run(["node", "-e", script], capture_output=True, text=True, timeout=300, cwd=C.NODE_DIR)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    for name, state in (("char-shakespeare", ["h0", "c0"]), ("char-shakespeare-gpt", ["k0", "v0", "len0"])):
        js = got[str(MODELS / name)]
        assert js["state"] == state
        r = StepRunner(MODELS / name / json.loads((MODELS / name / "manifest.json").read_text())["graphs"]["step"])
        r.reset(1)
        for chunk, row in zip(ids, js["rows"]):
            logits = r(np.asarray([chunk]))
            assert np.abs(logits[0, -1] - np.asarray(row, np.float32)).max() < 1e-3
