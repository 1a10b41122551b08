"""The adaptive softmax output layer of the language model (core/models/adaptive.py): a normalised
distribution over every id, a training loss equal to the full one (values and gradients), tied or not;
saved and exported like any LM, parity included."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from rnnkit.core.models.kinds import LanguageModel, LMConfig
from rnnkit.core.models.registry import load, save

torch.set_num_threads(1)
V = 41


def lm(tie=True, seed=0, **kw) -> LanguageModel:
    torch.manual_seed(seed)
    cfg = dict(vocab_size=V, embed_size=12, hidden_size=16, num_layers=2, dropout=0.0, tie_weights=tie,
               adaptive_cutoffs=[8, 20], adaptive_div=2.0)
    return LanguageModel(LMConfig(**{**cfg, **kw}))


def toks(B=3, T=11, seed=1):
    return torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("tie", [True, False])
def test_every_id_gets_a_log_probability_that_sums_to_one(tie):
    logp, _ = lm(tie).eval()(toks())
    assert logp.shape == (3, 11, V)
    assert torch.allclose(logp.exp().sum(-1), torch.ones(3, 11), atol=1e-5)
    assert (logp <= 0).all()


@pytest.mark.parametrize("tie", [True, False])
def test_training_loss_equals_the_full_distributions_nll_values_and_gradients(tie):
    """The loss runs each tail only on its own cluster's rows; it must equal the NLL of the full
    distribution, with the same gradients (targets cover the shortlist and both clusters)."""
    x, y = toks(), toks(seed=2)
    assert (y >= 20).any() and (y < 8).any()
    a, b = lm(tie), lm(tie)
    loss_a, _ = a(x, targets=y)
    logp, _ = b(x)
    loss_b = F.nll_loss(logp.reshape(-1, V), y.reshape(-1))
    assert torch.allclose(loss_a, loss_b, atol=1e-6)
    loss_a.backward()
    loss_b.backward()
    for (name, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        assert torch.allclose(pa.grad, pb.grad, atol=1e-6), name


def test_a_cluster_with_no_target_in_the_batch_still_gets_a_zero_gradient():
    """DDP needs every parameter in the graph on every step, even a tail no target reached."""
    m = lm(tie=False)
    x, y = toks(), toks(seed=2).clamp(max=7)  # shortlist targets only
    loss, _ = m(x, targets=y)
    loss.backward()
    for name, p in m.named_parameters():
        assert p.grad is not None, name
    assert m.head.tails[1][1].weight.grad.abs().sum() == 0


def test_tied_shortlist_is_the_embedding_and_the_tails_are_their_own():
    m = lm(tie=True)
    names = dict(m.named_parameters())
    assert "head.short_weight" not in names  # the shortlist reads embed.weight[:8]
    with torch.no_grad():
        m.embed.weight[3] += 1.0  # a shortlist id: the output changes through the tie
    assert torch.equal(m.head._head_weight()[3], m.embed.weight[3])
    assert set(names) >= {"head.cluster_weight", "head.tails.0.0.weight", "head.tails.1.1.weight"}
    # tails project down: E / div^(i+1)
    assert m.head.tails[0][0].out_features == 6 and m.head.tails[1][0].out_features == 3


def test_bad_cutoffs_are_refused():
    for bad in ([0], [8, 8], [20, 8], [V], [-1]):
        with pytest.raises(ValueError, match="cutoffs"):
            lm(adaptive_cutoffs=bad)
    with pytest.raises(ValueError, match="div"):
        lm(adaptive_div=0.5)


def test_save_and_load_keep_the_tie_and_the_outputs(tmp_path):
    m = lm(tie=True).eval()
    save(m, tmp_path / "model")
    back = load(tmp_path / "model").eval()
    assert back.config.adaptive_cutoffs == [8, 20]
    x = toks()
    assert torch.equal(m(x)[0], back(x)[0])
    assert back.head.tied is back.embed  # tied again, not a copy


def test_trains_and_exports_with_parity(tmp_path):
    pytest.importorskip("onnx")
    from rnnkit.export.onnx_export import export_model
    from rnnkit.export.parity import TOLERANCE, assert_parity, check_parity

    m = lm(tie=False).train()
    opt = torch.optim.Adam(m.parameters(), lr=0.01)
    x, y = toks(B=4, T=16), toks(B=4, T=16, seed=3)
    first = None
    for _ in range(30):
        loss, _ = m(x, targets=y)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.7 * first  # it learns through the clustered loss
    m.eval()
    paths = export_model(m, tmp_path / "graphs")
    report = check_parity(m, paths, batches=(1, 3), times=(1, 7), rollout_steps=10, seed=1)
    assert_parity(report, TOLERANCE)
