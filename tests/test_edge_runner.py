"""The stateful ONNX runner: metadata, validation, state handling, golden parity with PyTorch."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from rnnkit.core.models import registry
from rnnkit.edge.runner import EdgeError, StepRunner
from rnnkit.edge.session import TypingSession, open_session
from rnnkit.edge.pieces import SentencePieceVocab
from rnnkit.edge.bundle import BundleError

from test_edge_support import tiny_bundle, tiny_run


@pytest.fixture(scope="module", params=["lstm", "gru"])
def cell(request):
    return request.param


@pytest.fixture(scope="module")
def runner(cell):
    return StepRunner(tiny_bundle(cell) / "step.onnx")


@pytest.fixture(scope="module")
def model(cell):
    return registry.load(tiny_run(cell) / "model")


def test_metadata_comes_from_the_graph(runner, model):
    c = model.config
    m = runner.meta
    assert (m.kind, m.cell, m.num_layers, m.hidden_size, m.vocab_size) == (
        "lm", c.cell, c.num_layers, c.hidden_size, c.vocab_size)
    assert (m.pad_id, m.bos_id, m.eos_id, m.unk_id) == (c.pad_id, c.bos_id, c.eos_id, c.unk_id)
    assert len(runner.init_state(3)) == (2 if c.cell == "lstm" else 1)
    assert runner.init_state(3)[0].shape == (c.num_layers, 3, c.hidden_size)


def test_golden_logits_pytorch_onnx_runner(runner, model):
    """Fixed seed, random non-zero state, batch 2: PyTorch == ONNX Runtime via the runner."""
    g = torch.Generator().manual_seed(1234)
    B, T, V = 2, 7, model.config.vocab_size
    tokens = torch.randint(0, V, (B, T), generator=g)
    state = tuple(0.5 * torch.randn(s.shape, generator=g) for s in model.init_state(B))
    with torch.no_grad():
        ref_logits, ref_state = model(tokens, state)
    logits, nxt = runner.step(tokens.numpy(), tuple(s.numpy() for s in state))
    diff = float(np.abs(logits - ref_logits.numpy()).max())
    print(f"max |logits_torch - logits_runner| = {diff:.2e}")
    assert diff <= 1e-5
    for a, b in zip(nxt, ref_state):
        assert float(np.abs(a - b.numpy()).max()) <= 1e-5
    # the same argmax wherever the top two logits are further apart than the two may differ
    # (a near-tie may fall either way under float rounding without anything being wrong)
    ref = ref_logits.numpy()
    top2 = np.sort(ref, axis=-1)[..., -2:]
    clear = (top2[..., 1] - top2[..., 0]) > 2 * 1e-5
    assert clear.mean() > 0.5  # (most positions are no tie: the check means something)
    assert np.array_equal(logits.argmax(-1)[clear], ref.argmax(-1)[clear])
    # the runner adds nothing to the graph: a bare onnxruntime session gives the same bits
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    bare = ort.InferenceSession(runner.path, so, providers=["CPUExecutionProvider"])
    feed = {"tokens": tokens.numpy(), "h0": state[0].numpy()}
    if len(state) == 2:
        feed["c0"] = state[1].numpy()
    assert np.array_equal(bare.run(["logits"], feed)[0], logits)


def test_stateful_call_equals_pure_rollout(runner):
    ids = np.array([[5, 9, 17, 3, 42, 8]], dtype=np.int64)
    one_shot, _ = runner.step(ids)
    runner.reset(1)
    stepped = np.concatenate([runner(ids[:, t:t + 1]) for t in range(ids.shape[1])], axis=1)
    assert float(np.abs(one_shot - stepped).max()) <= 1e-5
    runner(np.zeros((3, 1), dtype=np.int64))  # a new batch size restarts from zeros
    assert runner.batch_size == 3 and runner.state[0].shape[1] == 3
    runner.reset()
    assert runner.batch_size == 1 and not runner.state[0].any()


@pytest.mark.parametrize("tokens, message", [
    (np.array([[0.5, 1.0]]), "integer ids"),
    (np.zeros((1, 2, 3), dtype=np.int64), "shape (T,) or (B, T)"),
    (np.zeros((1, 0), dtype=np.int64), "at least one id"),
    (np.array([[1, 10_000]]), "token ids must be in [0, "),
    (np.array([[-1, 2]]), "token ids must be in [0, "),
    ([["a", "b"]], "integer ids"),
])
def test_bad_tokens_say_what_is_allowed(runner, tokens, message):
    with pytest.raises(EdgeError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        runner.step(tokens)


def test_bad_state_says_the_shape(runner):
    with pytest.raises(EdgeError, match=r"must have shape \(L, B, H\)"):
        runner.step([[1, 2]], tuple(np.zeros((1, 1, 1), np.float32) for _ in runner.state))
    with pytest.raises(EdgeError, match="state is a tuple of"):
        runner.step([[1, 2]], (np.zeros(1),) * 3)
    with pytest.raises(EdgeError, match="batch_size must be an int >= 1"):
        runner.reset(0)


def test_options_are_checked(cell):
    path = tiny_bundle(cell) / "step.onnx"
    with pytest.raises(EdgeError, match="not available; allowed"):
        StepRunner(path, providers=["NoSuchExecutionProvider"])
    with pytest.raises(EdgeError, match="threads must be an int"):
        StepRunner(path, threads=-2)
    assert StepRunner(path, threads=2).step([[1]])[0].shape[-1] == StepRunner(path).meta.vocab_size


def test_truncated_or_altered_graph_is_a_clear_error(tmp_path):
    src = tiny_bundle("lstm")
    blob = (src / "step.onnx").read_bytes()
    bad = tmp_path / "cut.onnx"
    bad.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(EdgeError, match="cannot load the ONNX graph"):
        StepRunner(bad)
    with pytest.raises(EdgeError, match="no such ONNX file"):
        StepRunner(tmp_path / "missing.onnx")
    # inside a bundle the manifest's hash names the altered file before onnxruntime sees it
    copy = tmp_path / "bundle"
    shutil.copytree(src, copy)
    data = bytearray(blob)
    data[len(data) // 3] ^= 0xFF
    (copy / "step.onnx").write_bytes(bytes(data))
    with pytest.raises(BundleError, match="step.onnx: altered"):
        open_session(copy)
    (copy / "step.onnx").write_bytes(blob[:100])
    with pytest.raises(BundleError, match="step.onnx: truncated"):
        open_session(copy)


def test_tokenizer_must_belong_to_the_graph(tmp_path):
    """A tokenizer from another training run is refused by its sha256, not by a crash later."""
    from test_edge_support import TRAIN_TEXT, train_tokenizer

    other = tmp_path / "other"
    other.mkdir()
    import sentencepiece as spm

    spm.SentencePieceTrainer.train(sentence_iterator=iter(TRAIN_TEXT.lower().splitlines() * 4),
                                   model_prefix=str(other / "tokenizer"), vocab_size=400, byte_fallback=True,
                                   pad_id=0, unk_id=1, bos_id=2, eos_id=3, minloglevel=2, hard_vocab_limit=False)
    runner = StepRunner(tiny_bundle("lstm") / "step.onnx")
    with pytest.raises(EdgeError, match="do not belong together"):
        TypingSession(runner, SentencePieceVocab(other / "tokenizer.model"))
    assert train_tokenizer  # the shared helper builds the matching one


def test_greedy_suggestions_equal_between_pytorch_and_onnx(model, runner):
    """The same session logic over a PyTorch step and over the ONNX runner suggests the same words."""
    vocab = SentencePieceVocab(tiny_bundle(runner.meta.cell) / "tokenizer.model", eos_id=runner.meta.eos_id)

    class TorchRunner:
        meta, vocab_size = runner.meta, runner.vocab_size
        init_state = staticmethod(runner.init_state)

        @staticmethod
        def step_unchecked(tokens, state):
            with torch.no_grad():
                logits, nxt = model(torch.from_numpy(tokens), tuple(torch.from_numpy(s) for s in state))
            return logits.numpy(), tuple(s.numpy() for s in nxt)

    onnx_s, torch_s = TypingSession(runner, vocab), TypingSession(TorchRunner(), vocab)
    for text in ["", "The ", "Thank you f", "I think we ", "We will meet at the caf", "The cat s"]:
        a, b = onnx_s.suggest(text), torch_s.suggest(text)
        assert [(s.text, s.kind) for s in a] == [(s.text, s.kind) for s in b], text
        np.testing.assert_allclose([s.prob for s in a], [s.prob for s in b], rtol=1e-4)


# --------------------------------------------------------------------------- state layout from the graph
def _cache_graph(window=4, state_inputs="k0,v0,len0", state_outputs="next_k0,next_v0,next_len0",
                 k_dims=(2, "batch", 4, 3)) -> bytes:
    """A hand-made step graph whose state is shaped like a Transformer's KV cache (k, v (L, B, N, C),
    len (1, B, 1)): logits = E[tokens], next_k = k + 1, next_v = v * 2, next_len = len + T."""
    import onnx
    from onnx import TensorProto, helper

    V, L, N, C = 5, 2, window, 3
    E = np.arange(V * V, dtype=np.float32).reshape(V, V)
    f = TensorProto.FLOAT
    nodes = [helper.make_node("Gather", ["E", "tokens"], ["logits"]),
             helper.make_node("Add", ["k0", "one"], ["next_k0"]),
             helper.make_node("Mul", ["v0", "two"], ["next_v0"]),
             helper.make_node("Shape", ["tokens"], ["tshape"], start=1, end=2),
             helper.make_node("Cast", ["tshape"], ["tf"], to=f),
             helper.make_node("Add", ["len0", "tf"], ["next_len0"])]
    inits = [helper.make_tensor("E", f, E.shape, E.ravel()), helper.make_tensor("one", f, [], [1.0]),
             helper.make_tensor("two", f, [], [2.0])]
    g = helper.make_graph(nodes, "cache_step", [
        helper.make_tensor_value_info("tokens", TensorProto.INT64, ["batch", "time"]),
        helper.make_tensor_value_info("k0", f, list(k_dims)),
        helper.make_tensor_value_info("v0", f, [L, "batch", N, C]),
        helper.make_tensor_value_info("len0", f, [1, "batch", 1])], [
        helper.make_tensor_value_info("logits", f, ["batch", "time", V]),
        helper.make_tensor_value_info("next_k0", f, list(k_dims)),
        helper.make_tensor_value_info("next_v0", f, [L, "batch", N, C]),
        helper.make_tensor_value_info("next_len0", f, [1, "batch", 1])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    meta = {"kind": "lm", "job": "step", "cell": "transformer", "num_layers": "2", "hidden_size": "3",
            "vocab_size": str(V), "window": str(window), "eos_id": "0", "state_inputs": state_inputs,
            "state_outputs": state_outputs}
    for k, v in meta.items():
        m.metadata_props.add(key=k, value=v)
    onnx.checker.check_model(m)
    return m.SerializeToString()


def test_a_cache_shaped_state_runs_from_the_graphs_own_layout():
    """No cell branch: the state tensors, their order and shapes come from the graph (metadata + shapes)."""
    r = StepRunner(_cache_graph())
    assert r.state_in == ["k0", "v0", "len0"] and r.state_out == ["next_k0", "next_v0", "next_len0"]
    state = r.init_state(2)
    assert [s.shape for s in state] == [(2, 2, 4, 3), (2, 2, 4, 3), (1, 2, 1)]
    logits, (k, v, n) = r.step([[1, 2, 3], [4, 0, 1]], state)
    assert logits.shape == (2, 3, 5) and logits[1, 0, 0] == 20.0
    assert (k == 1).all() and (v == 0).all() and (n == 3).all()
    r([[1]])
    r([[2, 3]])
    assert float(r.state[2][0, 0, 0]) == 3.0 and float(r.state[0].max()) == 2.0  # the state is carried
    with pytest.raises(EdgeError, match=r"k0 must have shape \(L, B, N, H\)"):
        r.step([[1]], (np.zeros((2, 1, 5, 3)), np.zeros((2, 1, 4, 3)), np.zeros((1, 1, 1))))
    with pytest.raises(EdgeError, match="state is a tuple of 3"):
        r.step([[1]], state[:2])
    # values no graph can have made: a clear error, not NaN logits or an onnxruntime index error
    for bad_len, message in ((-5.0, "whole numbers >= 0"), (2.5, "whole numbers >= 0"), (np.nan, "NaN or inf")):
        one = r.init_state(1)
        with pytest.raises(EdgeError, match=message):
            r.step([[1]], (one[0], one[1], np.full((1, 1, 1), bad_len, np.float32)))
    one = r.init_state(1)
    with pytest.raises(EdgeError, match="NaN or inf"):
        r.step([[1]], (np.full_like(one[0], np.inf), one[1], one[2]))
    with pytest.raises(EdgeError, match="real numbers"):
        r.step([[1]], (one[0].astype(np.complex64), one[1], one[2]))


@pytest.mark.parametrize("kw, message", [
    (dict(k_dims=(2, "batch", "window", 3)), "k0 shape .* has a symbolic window dim"),
    (dict(window=5), r"k0 shape \[2, 'batch', 4, 3\] disagrees with metadata window=5"),  # v0 has 5 slots, k0 4
    (dict(state_outputs="next_v0,next_k0,next_len0"), "do not match state inputs"),
    (dict(state_inputs="k0,v0,len0,h0"), r"names state tensor\(s\) \['h0'\] the graph does not have"),
])
def test_a_graph_whose_state_disagrees_with_its_metadata_is_refused(kw, message):
    with pytest.raises(EdgeError, match=message):
        StepRunner(_cache_graph(**kw))
