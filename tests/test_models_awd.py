"""AWD-LSTM options of the language model (core/models/regularize.py, core/models/recurrent.py, core/models/kinds.py):
each is training-only, off by default, and does what it says; the fused output loss equals the
plain one; eval mode and the exported graph are unchanged."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from rnnkit.core.models.kinds import LanguageModel, LMConfig
from rnnkit.core.models.recurrent import RecurrentStack
from rnnkit.core.models.registry import build_model
from rnnkit.core.models.regularize import embedding_dropout, linear_cross_entropy, locked_dropout

torch.set_num_threads(1)

AWD = dict(dropout=0.4, dropout_input=0.3, dropout_hidden=0.25, locked_dropout=True, embed_dropout=0.1,
           weight_drop=0.5, ar_alpha=2.0, tar_beta=1.0)


def lm(seed=0, **kw) -> LanguageModel:
    torch.manual_seed(seed)
    base = dict(vocab_size=23, embed_size=8, hidden_size=8, num_layers=2, dropout=0.3)
    return LanguageModel(LMConfig(**{**base, **kw}))


def toks(B=3, T=9, V=23, seed=1):
    return torch.randint(1, V, (B, T), generator=torch.Generator().manual_seed(seed))


def test_defaults_are_the_plain_model_and_old_configs_load():
    """New LMConfig fields default to the old behaviour: a training forward draws the same dropout
    masks in the same order as the old embed -> dropout -> nn.LSTM -> dropout -> head."""
    model = lm().train()
    x = toks()
    torch.manual_seed(5)
    logits, _ = model(x)
    torch.manual_seed(5)
    old = model.head(model.drop(model.rnn.rnn(model.drop(model.embed(x)))[0]))
    assert torch.equal(logits, old)
    old_record = {"vocab_size": 23, "cell": "lstm", "embed_size": 8, "hidden_size": 8, "num_layers": 2,
                  "dropout": 0.3, "tie_weights": True, "pad_id": 0, "bos_id": -1, "eos_id": -1, "unk_id": -1}
    cfg = build_model("lm", old_record).config  # a config.json written before these fields existed
    assert (cfg.weight_drop, cfg.embed_dropout, cfg.locked_dropout, cfg.ar_alpha, cfg.tar_beta) == (0, 0, False, 0, 0)
    assert cfg.p_input == cfg.p_hidden == 0.3


def test_bad_settings_are_refused():
    for bad in (dict(embed_dropout=1.0), dict(weight_drop=-0.1), dict(dropout_input=-0.5), dict(ar_alpha=-1.0)):
        with pytest.raises(ValueError):
            lm(**bad)
    with pytest.raises(ValueError, match="unidirectional"):
        RecurrentStack("lstm", 4, 4, bidirectional=True, weight_drop=0.5)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh"])
def test_eval_mode_is_unchanged_by_every_option(cell):
    plain, awd = lm(cell=cell), lm(cell=cell, **AWD)
    awd.load_state_dict(plain.state_dict())
    x = toks()
    with torch.no_grad():
        a, sa = plain.eval()(x)
        b, sb = awd.eval()(x)
    assert torch.equal(a, b) and all(torch.equal(s, t) for s, t in zip(sa, sb))
    awd.train()
    with torch.no_grad():
        c, _ = awd(x)
    assert not torch.allclose(a, c)  # ... and they do act in training


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_weight_drop_is_one_mask_per_call_on_weight_hh_only(cell):
    """The training forward equals the plain fused module run with weight_hh_l{k} replaced by ONE
    DropConnect mask each (drawn in layer order), over all time steps; the parameters are not
    modified and their gradient is the masked one."""
    torch.manual_seed(0)
    stack = RecurrentStack(cell, 5, 6, num_layers=2, weight_drop=0.5).double().train()
    before = {k: v.clone() for k, v in stack.state_dict().items()}
    x = torch.randn(3, 11, 5, dtype=torch.float64)
    torch.manual_seed(7)
    out, state = stack(x)
    torch.manual_seed(7)
    masked = [F.dropout(getattr(stack.rnn, f"weight_hh_l{k}"), 0.5, training=True).detach() for k in range(2)]
    ref = type(stack.rnn)(5, 6, num_layers=2, batch_first=True).double().eval()
    ref.load_state_dict(stack.rnn.state_dict())
    with torch.no_grad():
        for k in range(2):
            getattr(ref, f"weight_hh_l{k}").copy_(masked[k])
        out_ref, state_ref = ref(x)
    torch.testing.assert_close(out, out_ref, rtol=0, atol=1e-12)
    assert all(torch.equal(v, before[k]) for k, v in stack.state_dict().items())
    for k in range(2):
        zero = masked[k] == 0
        assert 0.3 < zero.double().mean() < 0.7
    out.sum().backward()
    for k in range(2):
        g = getattr(stack.rnn, f"weight_hh_l{k}").grad
        assert torch.all(g[masked[k] == 0] == 0) and g.abs().sum() > 0
    out2, _ = stack(x)  # a new call, a new mask
    assert not torch.allclose(out, out2)


def test_locked_dropout_mask_is_constant_over_time():
    x = torch.ones(4, 50, 30)
    y = locked_dropout(x, 0.5)
    assert torch.equal(y, y[:, :1].expand_as(y))  # same mask at every time step
    assert set(y.unique().tolist()) == {0.0, 2.0}
    assert torch.equal(locked_dropout(x, 0.5, training=False), x)


def test_locked_dropout_on_inputs_between_layers_and_outputs():
    """Input dropout: every position of one row reads the same mask (a repeated token gives the same
    vector); the stack's between-layer dropout is locked too (layer by layer with the same masks)."""
    model = lm(locked_dropout=True, dropout=0.5, dropout_input=0.5, dropout_hidden=0.5).train()
    seen = {}
    model.rnn.register_forward_hook(lambda m, inp, out: seen.update(x=inp[0], out=out[0]))
    x = torch.full((3, 12), 4)
    model(x)
    assert torch.equal(seen["x"], seen["x"][:, :1].expand_as(seen["x"]))
    assert (seen["x"] == 0).any()
    plain = lm(dropout=0.5).train()  # standard dropout: a new mask per position
    plain.rnn.register_forward_hook(lambda m, inp, out: seen.update(p=inp[0]))
    plain(x)
    assert not torch.equal(seen["p"], seen["p"][:, :1].expand_as(seen["p"]))
    # between layers: the stack equals layer-by-layer calls with locked_dropout in between
    stack = model.rnn.double()
    h = torch.randn(3, 12, 8, dtype=torch.float64)
    torch.manual_seed(3)
    out, _ = stack(h)
    l0 = torch.nn.LSTM(8, 8, batch_first=True).double()
    l1 = torch.nn.LSTM(8, 8, batch_first=True).double()
    for k, layer in enumerate((l0, l1)):
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(layer, f"{name}_l0").data.copy_(getattr(stack.rnn, f"{name}_l{k}"))
    torch.manual_seed(3)
    ref = l1(locked_dropout(l0(h)[0], 0.5))[0]
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)


def test_embedding_dropout_drops_whole_words():
    torch.manual_seed(0)
    embed = torch.nn.Embedding(10, 6)
    tokens = torch.arange(10).repeat(4, 3)  # every word 12 times
    for _ in range(5):
        x = embedding_dropout(embed, tokens, 0.5)
        dropped = (x == 0).all(-1)
        for w in range(10):
            rows = dropped[tokens == w]
            assert rows.all() or not rows.any()  # a word is dropped everywhere or nowhere
        kept = ~dropped
        torch.testing.assert_close(x[kept], 2 * embed(tokens)[kept])
    assert torch.equal(embedding_dropout(embed, tokens, 0.5, training=False), embed(tokens))


def test_ar_and_tar_add_their_penalties_in_training_only():
    x, y = toks(), toks(seed=2)
    base, reg = lm(dropout=0.0), lm(dropout=0.0, ar_alpha=2.0, tar_beta=3.0)
    loss0, _ = base.train()(x, targets=y)
    loss1, _ = reg.train()(x, targets=y)
    h, _ = base.rnn(base.embed(x))
    expect = 2.0 * h.pow(2).mean() + 3.0 * (h[:, 1:] - h[:, :-1]).pow(2).mean()
    torch.testing.assert_close(loss1 - loss0, expect)
    with torch.no_grad():
        e0, _ = base.eval()(x, targets=y)
        e1, _ = reg.eval()(x, targets=y)
    assert torch.equal(e0, e1)
    one, _ = reg.train()(x[:, :1], targets=y[:, :1])  # T = 1: no TAR term, no NaN
    assert torch.isfinite(one)


def test_fused_output_loss_equals_cross_entropy_values_and_gradients():
    torch.manual_seed(0)
    x = torch.randn(37, 8, dtype=torch.float64, requires_grad=True)
    w = torch.randn(29, 8, dtype=torch.float64, requires_grad=True)
    b = torch.randn(29, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, 29, (37,))
    ref = F.cross_entropy(F.linear(x, w, b), y)
    gref = torch.autograd.grad(3 * ref, (x, w, b))
    out = linear_cross_entropy(x, w, b, y)
    got = torch.autograd.grad(3 * out, (x, w, b))
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
    for a, r in zip(got, gref):
        torch.testing.assert_close(a, r, rtol=0, atol=1e-12)
    # the model's training path (tied weights, dropout off) against the logits path
    model = lm(dropout=0.0).double().train()
    xt, yt = toks(), toks(seed=2)
    loss, _ = model(xt, targets=yt)
    (g1,) = torch.autograd.grad(loss, [model.embed.weight])
    logits, _ = model(xt)
    loss2 = F.cross_entropy(logits.reshape(-1, 23), yt.reshape(-1))
    (g2,) = torch.autograd.grad(loss2, [model.embed.weight])
    torch.testing.assert_close(loss, loss2, rtol=0, atol=1e-12)
    torch.testing.assert_close(g1, g2, rtol=0, atol=1e-12)
    once = linear_cross_entropy(x, w, b, y)
    once.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="twice"):
        once.backward()


def test_export_graph_and_parity_unchanged_by_awd_options(tmp_path):
    """A model trained with every option exports the same graph as the plain model (same nodes)
    and passes the parity check (<= 1e-5)."""
    onnx = pytest.importorskip("onnx")
    from rnnkit.export.onnx_export import export_model
    from rnnkit.export.parity import TOLERANCE, assert_parity, check_parity

    plain, awd = lm(), lm(**AWD)
    awd.train()
    opt = torch.optim.SGD(awd.parameters(), lr=0.5)
    for _ in range(3):  # train a little with every option on
        loss, _ = awd(toks(), targets=toks(seed=2))
        loss.backward()
        opt.step()
        opt.zero_grad()
    plain.load_state_dict(awd.state_dict())
    graphs = {}
    for name, model in (("plain", plain), ("awd", awd)):
        paths = export_model(model.eval(), tmp_path / name)
        report = check_parity(model, paths, batches=(1, 3), times=(1, 7), rollout_steps=10, seed=1)
        assert_parity(report, TOLERANCE)
        g = onnx.load(str(paths["step"])).graph
        graphs[name] = ([n.op_type for n in g.node], [i.name for i in g.input], [o.name for o in g.output])
    assert graphs["plain"] == graphs["awd"]
    assert dataclasses.asdict(awd.config)["weight_drop"] == 0.5  # the options are recorded, not exported
