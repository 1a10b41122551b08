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
    assert n3.flatten().tolist() == [6.0] * 3  # capped at the window


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
