"""The NumPy seeds: Elman BPTT vs torch autograd and finite differences, vanishing/exploding
gradients, and LSTM/GRU forward passes vs torch.nn.LSTM / torch.nn.GRU (float64)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnkit.core.reference import numpy_lstm_gru as nlg
from rnnkit.core.reference import numpy_rnn as nr

torch.set_num_threads(1)


def problem(B=3, T=5, I=4, H=6, O=2, seed=0):
    rng = np.random.default_rng(seed + 100)
    p = nr.ElmanParams.init(I, H, O, seed=seed)
    return p, rng.standard_normal((B, T, I)), rng.standard_normal((B, O)), 0.5 * rng.standard_normal((B, H))


def torch_reference(p: nr.ElmanParams, xs, y, h0):
    """The same model built from torch.nn.RNN (bias_hh fixed at 0, so b_ih is the seed's b)."""
    H, I = p.U.shape
    rnn = torch.nn.RNN(I, H, nonlinearity="tanh", batch_first=True).double()
    head = torch.nn.Linear(H, p.V.shape[0]).double()
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(torch.from_numpy(p.U))
        rnn.weight_hh_l0.copy_(torch.from_numpy(p.W))
        rnn.bias_ih_l0.copy_(torch.from_numpy(p.b))
        rnn.bias_hh_l0.zero_()
        head.weight.copy_(torch.from_numpy(p.V))
        head.bias.copy_(torch.from_numpy(p.c))
    h0_t = torch.tensor(h0, requires_grad=True)
    _, h_T = rnn(torch.from_numpy(xs), h0_t.unsqueeze(0))
    y_hat = head(h_T[0])
    loss = torch.nn.functional.mse_loss(y_hat, torch.from_numpy(y))  # mean over B and O
    loss.backward()
    grads = {"U": rnn.weight_ih_l0.grad, "W": rnn.weight_hh_l0.grad, "b": rnn.bias_ih_l0.grad,
             "V": head.weight.grad, "c": head.bias.grad, "h0": h0_t.grad}
    return loss.item(), y_hat.detach().numpy(), {k: v.numpy() for k, v in grads.items()}, (rnn, head)


def test_forward_loss_and_bptt_equal_torch_autograd():
    p, xs, y, h0 = problem()
    y_hat, hs = nr.forward(p, xs, h0)
    assert len(hs) == xs.shape[1] + 1 and hs[0] is h0
    loss, grads, norms = nr.loss_and_grads(p, xs, y, h0)
    ref_loss, ref_y, ref_grads, _ = torch_reference(p, xs, y, h0)
    np.testing.assert_allclose(y_hat, ref_y, rtol=0, atol=1e-12)
    assert abs(loss - ref_loss) <= 1e-12
    assert set(grads) == {"U", "W", "b", "V", "c", "h0"}
    for name, ref in ref_grads.items():
        assert grads[name].shape == ref.shape, name
        assert np.abs(grads[name] - ref).max() <= 1e-9, (name, np.abs(grads[name] - ref).max())
    assert norms.shape == (xs.shape[1] + 1,)
    assert norms[0] == pytest.approx(np.linalg.norm(grads["h0"]))


def test_bptt_equals_central_finite_differences():
    p, xs, y, h0 = problem(B=2, T=4, I=3, H=4, O=2, seed=1)
    _, grads, _ = nr.loss_and_grads(p, xs, y, h0)
    eps = 1e-6

    def loss_at(params, h):
        return nr.mse_loss(nr.forward(params, xs, h)[0], y)

    for name in p.names() + ["h0"]:
        numeric = np.zeros_like(grads[name])
        for idx in np.ndindex(numeric.shape):
            up, down = p.copy(), p.copy()
            h_up, h_down = h0.copy(), h0.copy()
            if name == "h0":
                h_up[idx] += eps
                h_down[idx] -= eps
            else:
                getattr(up, name)[idx] += eps
                getattr(down, name)[idx] -= eps
            numeric[idx] = (loss_at(up, h_up) - loss_at(down, h_down)) / (2 * eps)
        err = np.abs(numeric - grads[name]).max()
        assert err <= 1e-8, (name, err)


def test_mse_is_the_mean_over_batch_and_outputs():
    y_hat = np.array([[1.0, 2.0], [3.0, 4.0]])
    y = np.zeros((2, 2))
    assert nr.mse_loss(y_hat, y) == (1 + 4 + 9 + 16) / 4


def test_clip_by_global_norm_matches_torch():
    p, xs, y, h0 = problem(seed=2)
    _, grads, _ = nr.loss_and_grads(p, xs, y, h0)
    h0_grad = grads["h0"].copy()
    _, _, _, (rnn, head) = torch_reference(p, xs, y, h0)
    params = [rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0, head.weight, head.bias]
    rnn.bias_hh_l0.grad = None  # not a parameter of the seed's model
    max_norm = 0.1 * float(np.sqrt(sum(np.sum(grads[n] ** 2) for n in p.names())))
    total = nr.clip_by_global_norm(grads, max_norm)
    ref_total = torch.nn.utils.clip_grad_norm_(params, max_norm)
    assert total == pytest.approx(ref_total.item(), rel=1e-12)
    for name, t in zip(p.names(), params):  # names are U, W, b, V, c in that order
        np.testing.assert_allclose(grads[name], t.grad.numpy(), rtol=0, atol=1e-12)
    clipped = np.sqrt(sum(np.sum(grads[n] ** 2) for n in p.names()))
    assert clipped == pytest.approx(max_norm, rel=1e-5)
    np.testing.assert_array_equal(grads["h0"], h0_grad)  # h0 is an input, not a parameter: not clipped
    before = {n: g.copy() for n, g in grads.items()}
    nr.clip_by_global_norm(grads, 10 * max_norm)  # under the limit: untouched
    for n in before:
        np.testing.assert_array_equal(grads[n], before[n])


@pytest.mark.parametrize("scale,shrinks", [(0.5, True), (0.9, True), (1.5, False), (2.0, False)])
def test_vanishing_and_exploding_gradients(scale, shrinks):
    """||dL/dh_t|| changes by the factor `scale` per step back when W = scale * orthogonal.

    Going back one step multiplies by diag(1 - h_t^2) W; with tiny inputs tanh stays in its
    linear range (1 - h^2 ~ 1), so each step scales the norm by ~`scale` exactly."""
    rng = np.random.default_rng(3)
    T = 20
    xs = 1e-9 * rng.standard_normal((4, T, 3))  # 2**20 * 1e-9 ~ 1e-3: still linear
    y = rng.standard_normal((4, 2))
    p = nr.ElmanParams.init(3, 16, 2, seed=1, recurrent_scale=scale)
    p.b[:] = 0.0
    _, grads, norms = nr.loss_and_grads(p, xs, y)
    ratios = norms[:-1] / norms[1:]  # ||dL/dh_{t-1}|| / ||dL/dh_t||, t = T .. 1
    np.testing.assert_allclose(ratios, scale, rtol=1e-3)
    expected = norms[T] * scale ** T  # geometric in T
    assert np.linalg.norm(grads["h0"]) == pytest.approx(expected, rel=1e-2)
    if shrinks:
        assert norms[0] < 0.15 * norms[T]
    else:
        assert norms[0] > 1000 * norms[T]
    # Also for dL/dh_0 itself over sequence lengths T = 1 .. 20 (same inputs, prefixes).
    h0_norms = [np.linalg.norm(nr.loss_and_grads(p, xs[:, :k], y)[1]["h0"]) /
                np.linalg.norm(nr.loss_and_grads(p, xs[:, :k], y)[2][k]) for k in range(1, T + 1)]
    np.testing.assert_allclose(h0_norms, scale ** np.arange(1, T + 1), rtol=1e-3)


def test_saturated_tanh_also_vanishes():
    """Large inputs saturate tanh (1 - h^2 ~ 0): the gradient dies even with a large W."""
    rng = np.random.default_rng(4)
    p = nr.ElmanParams.init(3, 16, 2, seed=1, recurrent_scale=1.5)
    _, _, norms = nr.loss_and_grads(p, 50 * rng.standard_normal((4, 10, 3)), rng.standard_normal((4, 2)))
    assert norms[0] < 1e-3 * norms[-1]


def test_sgd_learns_the_mean_of_a_sequence():
    rng = np.random.default_rng(5)
    xs = rng.uniform(-1, 1, (64, 8, 1))
    y = xs.mean(axis=1)
    p = nr.ElmanParams.init(1, 8, 1, seed=2)
    start = p.copy()
    losses = nr.sgd_train(p, xs, y, lr=0.5, steps=300, clip=1.0)
    assert len(losses) == 300
    assert losses[-1] < 0.05 * losses[0], (losses[0], losses[-1])
    assert not np.array_equal(p.W, start.W)
    # One step by hand equals the loop's first step: theta - lr * grad.
    q = start.copy()
    _, g, _ = nr.loss_and_grads(q, xs, y)
    nr.clip_by_global_norm(g, 1.0)
    r = start.copy()
    nr.sgd_train(r, xs, y, lr=0.5, steps=1, clip=1.0)
    for name in q.names():
        np.testing.assert_allclose(getattr(r, name), getattr(q, name) - 0.5 * g[name], rtol=0, atol=1e-15)
    with pytest.raises(ValueError, match="lr must be > 0"):
        nr.sgd_train(p, xs, y, lr=0.0)


# --------------------------------------------------------------------------- LSTM / GRU
def numpy_weights(module: torch.nn.Module) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy() for k, v in module.state_dict().items()}


@pytest.mark.parametrize("layers", [1, 3])
def test_numpy_lstm_equals_torch_lstm(layers):
    torch.manual_seed(0)
    ref = torch.nn.LSTM(4, 5, num_layers=layers, batch_first=True).double()
    xs = torch.randn(3, 7, 4, dtype=torch.float64)
    h0 = torch.randn(layers, 3, 5, dtype=torch.float64)
    c0 = torch.randn(layers, 3, 5, dtype=torch.float64)
    out_ref, (h_ref, c_ref) = ref(xs, (h0, c0))
    out, (h, c) = nlg.lstm_forward(xs.numpy(), numpy_weights(ref), h0.numpy(), c0.numpy())
    for got, want in ((out, out_ref), (h, h_ref), (c, c_ref)):
        assert got.shape == want.shape
        assert np.abs(got - want.detach().numpy()).max() <= 1e-10
    out0, _ = nlg.lstm_forward(xs.numpy(), numpy_weights(ref))  # default: zero state
    np.testing.assert_allclose(out0, ref(xs)[0].detach().numpy(), rtol=0, atol=1e-10)


@pytest.mark.parametrize("layers", [1, 3])
def test_numpy_gru_equals_torch_gru(layers):
    torch.manual_seed(1)
    ref = torch.nn.GRU(4, 5, num_layers=layers, batch_first=True).double()
    xs = torch.randn(3, 7, 4, dtype=torch.float64)
    h0 = torch.randn(layers, 3, 5, dtype=torch.float64)
    out_ref, h_ref = ref(xs, h0)
    out, h = nlg.gru_forward(xs.numpy(), numpy_weights(ref), h0.numpy())
    assert out.shape == out_ref.shape and h.shape == h_ref.shape
    assert np.abs(out - out_ref.detach().numpy()).max() <= 1e-10
    assert np.abs(h - h_ref.detach().numpy()).max() <= 1e-10


def test_gate_order_matters():
    """Swapping two gate blocks changes the result: the i, f, g, o / r, z, n order is real."""
    torch.manual_seed(2)
    lstm = torch.nn.LSTM(3, 4, batch_first=True).double()
    xs = np.random.default_rng(0).standard_normal((2, 5, 3))
    w = numpy_weights(lstm)
    H = 4
    swapped = dict(w)
    for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
        blocks = np.split(w[name], 4, axis=0)
        swapped[name] = np.concatenate([blocks[1], blocks[0], blocks[2], blocks[3]])  # f, i, g, o
    assert swapped["weight_ih_l0"].shape == (4 * H, 3)
    assert np.abs(nlg.lstm_forward(xs, w)[0] - nlg.lstm_forward(xs, swapped)[0]).max() > 1e-3


def test_missing_weights_give_clear_errors():
    with pytest.raises(KeyError, match="weight_ih_l0"):
        nlg.gru_forward(np.zeros((1, 2, 3)), {})
    torch.manual_seed(3)
    w = numpy_weights(torch.nn.GRU(3, 4).double())
    del w["bias_hh_l0"]
    with pytest.raises(KeyError, match="bias_hh_l0"):
        nlg.gru_forward(np.zeros((1, 2, 3)), w)
