"""core/models/minrnn.py: minGRU / minLSTM -- the log-space scan equals the sequential recurrence
(float64, <= 1e-9), the cells equal the paper's gate equations written out, and the stack's exported
step graph equals the scan."""

from __future__ import annotations

import pytest
import torch

from rnnkit.core.models.minrnn import MIN_CELLS, MinRNN, MinRNNLayer, coefficients, g, recurrence, scan

torch.set_num_threads(1)


def paper_step(cell: str, layer: MinRNNLayer, x_t: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """One step as the paper writes it (its Algorithms 2 and 4), gate by gate."""
    pre = layer.proj(x_t)
    if cell == "mingru":
        k, v = pre.chunk(2, dim=-1)
        z = torch.sigmoid(k)
        return (1 - z) * h + z * g(v)
    f, i, v = pre.chunk(3, dim=-1)
    f, i = torch.sigmoid(f), torch.sigmoid(i)
    return f / (f + i) * h + i / (f + i) * g(v)


def test_g_is_continuous_positive_and_log_g_matches():
    from rnnkit.core.models.minrnn import log_g

    v = torch.linspace(-30, 30, 2001, dtype=torch.float64)
    assert (g(v) > 0).all()
    torch.testing.assert_close(log_g(v), torch.log(g(v)), rtol=1e-9, atol=1e-12)
    assert abs(float(g(torch.tensor(-1e-12)) - g(torch.tensor(0.0)))) < 1e-9


@pytest.mark.parametrize("cell", MIN_CELLS)
@pytest.mark.parametrize("T", [1, 7, 200])
def test_scan_equals_sequential_recurrence_float64(cell, T):
    """The issue's check: parallel log-space scan == h_t = a_t h_{t-1} + b_t, float64, <= 1e-9,
    from a random (signed) initial state."""
    torch.manual_seed(0)
    layer = MinRNNLayer(cell, 5, 6).double()
    x = torch.randn(3, T, 5, dtype=torch.float64) * 2
    h0 = torch.randn(3, 6, dtype=torch.float64)
    with torch.no_grad():
        par, par_last = layer(x, h0, parallel=True)
        seq, seq_last = layer(x, h0, parallel=False)
        h, ref = h0, []
        for t in range(T):
            h = paper_step(cell, layer, x[:, t], h)
            ref.append(h)
        ref = torch.stack(ref, 1)
    assert (par - seq).abs().max().item() <= 1e-9, (par - seq).abs().max().item()
    assert (seq - ref).abs().max().item() <= 1e-12
    assert (par_last - seq_last).abs().max().item() <= 1e-9


def test_coefficients_log_and_linear_agree():
    pre = torch.randn(4, 9, 12, dtype=torch.float64) * 5
    for cell, width in (("mingru", 12), ("minlstm", 12)):
        la, lb = coefficients(cell, pre, log=True)
        a, b = coefficients(cell, pre, log=False)
        torch.testing.assert_close(la.exp(), a, rtol=1e-12, atol=1e-15)
        torch.testing.assert_close(lb.exp(), b, rtol=1e-12, atol=1e-15)
    with pytest.raises(ValueError, match="allowed"):
        coefficients("lstm", pre, log=True)


def test_scan_is_stable_over_long_sequences_float32():
    """Strong forgetting over 2,000 steps: a* reaches about -1,400; float32 still tracks the loop."""
    torch.manual_seed(1)
    a = torch.full((2, 2000, 4), 0.5)
    b = torch.rand(2, 2000, 4) + 0.1
    h0 = torch.randn(2, 4)
    seq, _ = recurrence(a, b, h0)
    par = scan(a.log(), b.log(), h0)
    assert torch.isfinite(par).all()
    assert (par - seq).abs().max().item() < 2e-5


@pytest.mark.parametrize("cell", MIN_CELLS)
def test_stack_train_mode_scans_eval_mode_steps_and_gradients_flow(cell):
    torch.manual_seed(0)
    stack = MinRNN(cell, 5, 6, num_layers=2).double()
    x = torch.randn(2, 11, 5, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, 2, 6, dtype=torch.float64)
    stack.train()
    out_p, h_p = stack(x, h0)
    out_p.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert all(p.grad is not None for p in stack.parameters())
    stack.eval()
    with torch.no_grad():
        out_s, h_s = stack(x, h0)
        # stepping one token at a time with the state fed back = one call over all T
        h, outs = h0, []
        for t in range(x.shape[1]):
            o, h = stack(x[:, t:t + 1], h)
            outs.append(o)
    assert (out_p - out_s).abs().max().item() <= 1e-9
    assert (h_p - h_s).abs().max().item() <= 1e-9
    assert (torch.cat(outs, 1) - out_s).abs().max().item() <= 1e-12
    assert h_s.shape == (2, 2, 6)


# --------------------------------------------------------------------------- as a cell of rnnkit's models
@pytest.mark.parametrize("cell", MIN_CELLS)
def test_language_model_with_a_min_cell_steps_saves_and_loads(cell, tmp_path):
    from rnnkit.core.models import registry
    from rnnkit.core.models.kinds import LanguageModel, LMConfig

    torch.manual_seed(0)
    lm = LanguageModel(LMConfig(vocab_size=11, cell=cell, embed_size=6, hidden_size=8, num_layers=2,
                                dropout=0.0)).double()
    state = lm.init_state(3)
    assert len(state) == 1 and state[0].shape == (2, 3, 8)
    x, y = torch.randint(0, 11, (3, 9)), torch.randint(0, 11, (3, 9))
    lm.train()
    loss, _ = lm(x, None, targets=y)  # the parallel scan
    loss.backward()
    lm.eval()
    with torch.no_grad():
        whole, s_whole = lm(x)
        s, outs = lm.init_state(3), []
        for t in range(9):
            o, s = lm(x[:, t:t + 1], s)
            outs.append(o)
        ref = torch.nn.functional.cross_entropy(whole.reshape(-1, 11), y.reshape(-1))
    assert abs(loss.item() - ref.item()) <= 1e-9  # scan (training) == step (eval), dropout 0
    assert (torch.cat(outs, 1) - whole).abs().max().item() <= 1e-12
    assert (s[0] - s_whole[0]).abs().max().item() <= 1e-12
    registry.save(lm.float(), tmp_path / "m")
    back = registry.load(tmp_path / "m")
    assert registry.read_record(tmp_path / "m")["config"]["cell"] == cell
    with torch.no_grad():
        assert (back(x)[0] - lm(x)[0]).abs().max().item() == 0.0


def test_min_cells_refuse_the_fused_only_regularisers():
    from rnnkit.core.models.recurrent import RecurrentStack

    with pytest.raises(ValueError, match="fused cells only"):
        RecurrentStack("mingru", 4, 4, weight_drop=0.2)
    RecurrentStack("minlstm", 4, 4, bidirectional=True)  # bidirectional is fine (one stack per direction)


# --------------------------------------------------------------------------- export
@pytest.mark.parametrize("cell", MIN_CELLS)
def test_exported_step_equals_the_scan(cell, tmp_path):
    """The ONNX step graph (one Loop over T of the O(1) update, T dynamic) passes the project's parity
    check against PyTorch, and its outputs equal the training path's parallel scan."""
    import numpy as np

    from rnnkit.core.models.kinds import LanguageModel, LMConfig
    from rnnkit.edge.runner import StepRunner
    from rnnkit.export.onnx_export import export_model
    from rnnkit.export.parity import assert_parity, check_parity

    torch.manual_seed(0)
    lm = LanguageModel(LMConfig(vocab_size=11, cell=cell, embed_size=6, hidden_size=8, num_layers=2,
                                dropout=0.0)).eval()
    paths = export_model(lm, tmp_path)
    assert_parity(check_parity(lm, paths))
    runner = StepRunner(paths["step"])
    x = torch.randint(0, 11, (3, 40))
    h0 = torch.randn(2, 3, 8) * 0.5
    logits, (h,) = runner.step(x.numpy(), (h0.numpy(),))
    lm.rnn.rnn.parallel = True  # the training path, in eval mode
    with torch.no_grad():
        ref, (h_ref,) = lm(x, (h0,))
    assert np.abs(logits - ref.numpy()).max() <= 1e-5 and np.abs(h - h_ref.numpy()).max() <= 1e-5


def test_min_cell_bundle_exports_int8_and_verifies():
    from rnnkit.edge.bundle import open_bundle
    from rnnkit.export.verify import verify_bundle

    from test_edge_support import tiny_bundle

    b = tiny_bundle("mingru", int8=True)
    assert open_bundle(b).manifest["model"]["config"]["cell"] == "mingru"
    assert verify_bundle(b)["kind"] == "lm"


@pytest.mark.parametrize("cell", MIN_CELLS)
def test_saturated_gates_stay_finite_and_exact(cell):
    """Pre-activations of +-100 (h, which g does not bound, grown large in training) once made the scan
    overflow to NaN; gates are clamped at A_MIN in both paths, which then still agree."""
    torch.manual_seed(0)
    pre = (torch.randn(2, 64, (2 if cell == "mingru" else 3) * 8, dtype=torch.float64) * 100).requires_grad_()
    h0 = torch.zeros(2, 8, dtype=torch.float64)
    out = scan(*coefficients(cell, pre, log=True), h0)
    out.sum().backward()
    ref, _ = recurrence(*coefficients(cell, pre.detach(), log=False), h0)
    assert torch.isfinite(out).all() and torch.isfinite(pre.grad).all()
    assert ((out - ref).abs().max() / ref.abs().max()).item() <= 1e-9
