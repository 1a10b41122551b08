"""core/models/transformer.py: the causal Transformer whose state is its KV cache.

Step-by-step equals one whole-sequence call (float64 and float32), inside and beyond the window;
the cached path equals the training path; a restored state rolls back exactly (Backspace);
attention never reaches beyond its receptive field; save / load through the registry."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from rnnkit.core.models import registry
from rnnkit.core.models.transformer import TransformerConfig, TransformerLM, rope_tables, rotate

torch.set_num_threads(1)


def tiny(window=6, seed=0, dtype=torch.float64, **kw) -> TransformerLM:
    torch.manual_seed(seed)
    cfg = TransformerConfig(vocab_size=13, num_layers=2, num_heads=2, hidden_size=8, window=window, **kw)
    return TransformerLM(cfg).to(dtype).eval()


def ids(B, T, seed=1, vocab=13):
    return torch.randint(0, vocab, (B, T), generator=torch.Generator().manual_seed(seed))


def stepped(model, x, state=None, chunk=1):
    state = model.init_state(x.shape[0]) if state is None else state
    outs = []
    for t in range(0, x.shape[1], chunk):
        o, state = model(x[:, t:t + chunk], state)
        outs.append(o)
    return torch.cat(outs, 1), state


def maxdiff(a, b) -> float:
    if isinstance(a, tuple):
        return max(maxdiff(x, y) for x, y in zip(a, b))
    return (a - b).abs().max().item()


def test_state_layout():
    m = tiny(window=6)
    k, v, n = m.init_state(3)
    assert k.shape == v.shape == (2, 3, 6, 8) and n.shape == (1, 3, 1)
    assert m.state_names() == ("k", "v", "len")
    _, (k2, v2, n2) = m(ids(3, 4), (k, v, n))
    assert k2.shape == k.shape and v2.shape == v.shape and n2.flatten().tolist() == [4.0] * 3
    _, (_, _, n3) = m(ids(3, 5), (k2, v2, n2))
    assert n3.flatten().tolist() == [9.0] * 3  # tokens read; min(9, 6) slots are filled


@pytest.mark.parametrize("T", [1, 5, 6])
def test_step_equals_whole_sequence_within_window_float64(T):
    m = tiny(window=6)
    x = ids(2, T)
    with torch.no_grad():
        whole, s_whole = m(x)
        step, s_step = stepped(m, x)
    assert maxdiff(step, whole) <= 1e-10
    assert maxdiff(s_step, s_whole) <= 1e-10


@pytest.mark.parametrize("chunk", [1, 4, 7])
def test_step_equals_whole_sequence_beyond_window_float64(chunk):
    """Past the window the model is sliding-window attention; any chunking of the input gives the
    same logits and the same final cache."""
    m = tiny(window=5)
    x = ids(2, 23, seed=3)
    with torch.no_grad():
        whole, s_whole = m(x)
        step, s_step = stepped(m, x, chunk=chunk)
    assert maxdiff(step, whole) <= 1e-10
    assert maxdiff(s_step, s_whole) <= 1e-10


def test_step_equals_whole_sequence_float32():
    m = tiny(window=16, dtype=torch.float32)
    x = ids(3, 40, seed=4)
    with torch.no_grad():
        whole, _ = m(x)
        step, _ = stepped(m, x)
    assert maxdiff(step, whole) <= 1e-5


def test_cached_path_equals_training_path():
    """forward(x) without a state (fused causal attention) == forward(x, empty cache) (masked)."""
    m = tiny(window=9)
    x = ids(2, 7)
    with torch.no_grad():
        a, sa = m(x)
        b, sb = m(x, m.init_state(2))
    assert maxdiff(a, b) <= 1e-12 and maxdiff(sa, sb) <= 1e-12


def reference_logits(m: TransformerLM, x: torch.Tensor) -> torch.Tensor:
    """A plain causal Transformer written out (explicit softmax, rotary at absolute positions),
    for sequences no longer than the window: what the KV-cache model must equal there."""
    c, (B, T) = m.config, x.shape
    hs = c.hidden_size // c.num_heads
    cos, sin = rope_tables(torch.arange(T), hs, c.rope_base, torch.float64)
    h = m.embed(x)
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    for blk in m.blocks:
        q, k, v = blk.attn.qkv(blk.ln1(h)).split(c.hidden_size, 2)
        q, k, v = (t.view(B, T, c.num_heads, hs).transpose(1, 2) for t in (q, k, v))
        q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        att = (q @ k.transpose(-1, -2)) / math.sqrt(hs)
        att = att.masked_fill(~causal, float("-inf")).softmax(-1)
        h = h + blk.attn.proj((att @ v).transpose(1, 2).reshape(B, T, c.hidden_size))
        h = h + blk.out(F.gelu(blk.fc(blk.ln2(h))))
    return m.head(m.ln_f(h))


def test_equals_a_written_out_causal_transformer():
    m = tiny(window=12)
    x = ids(2, 12, seed=5)
    with torch.no_grad():
        assert maxdiff(m(x)[0], reference_logits(m, x)) <= 1e-10
        assert maxdiff(stepped(m, x)[0], reference_logits(m, x)) <= 1e-10


def test_receptive_field_is_layers_times_window():
    """A token more than L * (N - 1) positions back cannot change the next prediction; one just
    inside that range can (the window really slides, and really reads what it holds)."""
    m = tiny(window=4)  # 2 layers: reach 2 * 3 = 6 positions back
    x = ids(1, 20, seed=6)
    with torch.no_grad():
        base = stepped(m, x)[0][0, -1]
        far, near = x.clone(), x.clone()
        far[0, 19 - 7] = (far[0, 19 - 7] + 1) % 13
        near[0, 19 - 6] = (near[0, 19 - 6] + 1) % 13
        assert maxdiff(stepped(m, far)[0][0, -1], base) == 0.0
        assert maxdiff(stepped(m, near)[0][0, -1], base) > 1e-6


def test_restoring_a_saved_state_rolls_back_exactly():
    """Backspace in the typing session: keep the state before a token, feed others, restore it."""
    m = tiny(window=6)
    with torch.no_grad():
        _, s = m(ids(1, 9, seed=7), m.init_state(1))
        saved = tuple(t.clone() for t in s)
        a, _ = m(torch.tensor([[3]]), s)
        _, s2 = m(torch.tensor([[5, 6, 7]]), s)  # typing on
        b, _ = m(torch.tensor([[3]]), saved)  # ... then back to the saved state
    assert maxdiff(a, b) == 0.0 and maxdiff(s, saved) == 0.0  # the model never modifies a state in place


def test_rows_with_different_fill_levels_batch_together():
    m = tiny(window=6)
    with torch.no_grad():
        _, s1 = m(ids(1, 2, seed=8), m.init_state(1))
        _, s2 = m(ids(1, 9, seed=9), m.init_state(1))
        both = tuple(torch.cat([a, b], 1) for a, b in zip(s1, s2))
        nxt = ids(2, 3, seed=10)
        out, _ = m(nxt, both)
        o1, _ = m(nxt[:1], s1)
        o2, _ = m(nxt[1:], s2)
    assert maxdiff(out, torch.cat([o1, o2])) <= 1e-12


def test_targets_give_the_mean_cross_entropy_and_gradients():
    m = tiny(window=8).train()
    x, y = ids(2, 8, seed=11), ids(2, 8, seed=12)
    loss, _ = m(x, None, targets=y)
    logits, _ = m(x)
    assert abs(loss.item() - F.cross_entropy(logits.reshape(-1, 13), y.reshape(-1)).item()) <= 1e-10
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters())
    assert m.head.weight is m.embed.weight  # tied


def test_config_checks():
    with pytest.raises(ValueError, match="heads"):
        TransformerConfig(vocab_size=5, hidden_size=10, num_heads=4)
    with pytest.raises(ValueError, match="window"):
        TransformerConfig(vocab_size=5, window=0)


def test_save_load_roundtrip(tmp_path):
    m = tiny(window=6, dtype=torch.float32)
    registry.save(m, tmp_path / "m")
    record = registry.read_record(tmp_path / "m")
    assert record["kind"] == "transformer_lm" and "cell" not in record["config"]
    back = registry.load(tmp_path / "m")
    x = ids(2, 5)
    with torch.no_grad():
        assert maxdiff(back(x)[0], m(x)[0]) == 0.0


# --------------------------------------------------------------------------- export, bundle, edge session
def test_exported_step_graph_matches_pytorch_with_the_cache_in_and_out(tmp_path):
    """The step graph takes k0, v0, len0 and returns next_*; parity over batches 1 and 3, T 1, 7 and 33
    (past the window), and a 50-step rollout fed its own cache, equal to the whole-sequence call."""
    from rnnkit.export.onnx_export import export_model
    from rnnkit.export.parity import assert_parity, check_parity

    m = tiny(window=6, dtype=torch.float32)
    paths = export_model(m, tmp_path)
    report = check_parity(m, paths)
    assert_parity(report)
    assert set(report["jobs"]["step"]["rollout"]) == {"step_vs_torch", "step_vs_whole"}
    import onnx

    g = onnx.load(str(paths["step"]))
    assert [i.name for i in g.graph.input] == ["tokens", "k0", "v0", "len0"]
    assert [o.name for o in g.graph.output] == ["logits", "next_k0", "next_v0", "next_len0"]
    meta = {p.key: p.value for p in g.metadata_props}
    assert (meta["kind"], meta["cell"], meta["window"], meta["state_inputs"]) == ("lm", "transformer", "6",
                                                                                 "k0,v0,len0")


@pytest.fixture(scope="module")
def gpt_run(tmp_path_factory):
    """A run directory with a Transformer fitted for a moment on the edge tests' text (SentencePiece)."""
    import json

    import sentencepiece as spm

    from test_edge_support import TRAIN_TEXT, train_tokenizer

    run = tmp_path_factory.mktemp("gpt") / "run"
    run.mkdir()
    sp = spm.SentencePieceProcessor(model_file=str(train_tokenizer(run)))
    stream = []
    for line in TRAIN_TEXT.splitlines():
        stream += sp.encode(line) + [sp.eos_id()]
    data = torch.tensor(stream * 2)
    torch.manual_seed(0)
    m = TransformerLM(TransformerConfig(vocab_size=sp.get_piece_size(), num_layers=2, num_heads=2, hidden_size=32,
                                        window=24, pad_id=0, bos_id=2, eos_id=3, unk_id=1))
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(60):
        starts = torch.randint(0, len(data) - 17, (16,), generator=g)
        x = torch.stack([data[s:s + 16] for s in starts])
        y = torch.stack([data[s + 1:s + 17] for s in starts])
        loss, _ = m(x, None, targets=y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    registry.save(m.eval(), run / "model")
    (run / "metrics.jsonl").write_text(json.dumps({"step": 60, "val_loss": loss.item()}) + "\n")
    return run


@pytest.fixture(scope="module")
def gpt_bundle(gpt_run):
    from rnnkit.export.build_bundle import export_bundle

    out = gpt_run.parent / "bundle"
    export_bundle(gpt_run, out, int8=True, log=lambda *a: None)
    return out


def test_bundle_exports_verifies_and_quantises(gpt_bundle):
    from rnnkit.edge.bundle import open_bundle
    from rnnkit.export.verify import verify_bundle

    b = open_bundle(gpt_bundle)
    assert b.kind == "lm" and b.manifest["model"]["kind"] == "transformer_lm"
    assert b.precision == "int8" and set(b.manifest["fp32_graphs"]) == {"step"}
    report = verify_bundle(gpt_bundle)
    assert report["kind"] == "lm"


def test_edge_runner_steps_like_pytorch(gpt_run, gpt_bundle):
    import numpy as np

    from rnnkit.edge.runner import StepRunner

    runner = StepRunner(gpt_bundle / "step.onnx")
    model = registry.load(gpt_run / "model")
    state = runner.init_state(2)
    assert [s.shape for s in state] == [(2, 2, 24, 32), (2, 2, 24, 32), (1, 2, 1)]
    x = ids(2, 40, vocab=model.config.vocab_size)
    outs = []
    for t in range(40):  # past the 24-slot window, one token a call
        logits, state = runner.step(x[:, t:t + 1].numpy(), state)
        outs.append(logits)
    with torch.no_grad():
        ref, _ = model(x)
    assert np.abs(np.concatenate(outs, 1) - ref.numpy()).max() <= 1e-4


def test_typing_session_runs_and_backspace_restores_the_cache(gpt_bundle):
    """The typing session sees only "a step with state": edits roll back to saved caches, and the
    suggestions after typing, backspacing and retyping equal a fresh session's."""
    from rnnkit.edge.session import open_session

    s = open_session(gpt_bundle, precision="fp32")
    text = "Thank you for the "
    for i in range(1, len(text) + 1):
        s.suggest(text[:i])
    fed = s.context_tokens_fed
    s.suggest(text[:-1])  # backspace over the space ...
    s.suggest(text[:-3])  # ... and inside the word
    got = s.suggest(text)
    assert s.context_tokens_fed == fed  # rolled back to cached states, nothing re-read
    fresh = open_session(gpt_bundle, precision="fp32").suggest(text)
    assert [x.text for x in got] == [x.text for x in fresh] and got
    for a, b in zip(got, fresh):
        assert abs(a.prob - b.prob) <= 1e-5


def test_demo_compare_runs_a_recurrent_and_a_transformer_bundle(gpt_bundle):
    """The demo's Compare tab function: one prompt through an LSTM and a Transformer bundle, a latency
    table per model, and a caption naming each one's state."""
    from rnnkit.demo import app as A

    from test_edge_support import tiny_bundle

    shelf = A.load_shelf("models", [tiny_bundle("lstm"), gpt_bundle])
    labels = list(shelf.tabs["generate"].choices)
    assert len(labels) == 2
    a, b, table, caption = A.compare(shelf, labels[0], labels[1], "The cat", 20, 1)
    assert a.startswith("The cat") and b.startswith("The cat")
    assert set(table["model"]) == set(labels) and len(table) >= 2 * 19
    assert (table["ms per token"] > 0).all()
    assert "KV cache of 24 positions" in caption and "lstm" in caption
