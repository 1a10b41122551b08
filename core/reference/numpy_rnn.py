"""An Elman RNN in plain NumPy, exactly as the seed derives it -- read this first.

The model (many-to-one: read a whole sequence, predict one vector at the end):

    h_t = tanh(U x_t + W h_{t-1} + b)        t = 1 .. T,   h_0 given (often zeros)
    y^  = V h_T + c
    L   = mean((y^ - y)^2)                   the mean over the batch AND the output units:
                                             L = 1/(B*O) * sum_b sum_k (y^_bk - y_bk)^2

Shapes: U (H, I), W (H, H), b (H,), V (O, H), c (O,). The seed writes column vectors
(U x_t); here a batch of B sequences is stored row-wise, x_t (B, I) and h_t (B, H), so
"U x_t" is written ``x_t @ U.T`` -- the same numbers, one row per sequence.

Backpropagation through time (BPTT) runs the chain rule backwards from L to h_0:

    dL/dy^     = 2 (y^ - y) / (B*O)
    dL/dV      = dL/dy^^T  h_T             dL/dc = sum over the batch of dL/dy^
    dL/dh_T    = dL/dy^ V
    for t = T .. 1:
        dL/da_t     = dL/dh_t * (1 - h_t^2)       a_t = U x_t + W h_{t-1} + b, tanh' = 1 - tanh^2
        dL/dU      += dL/da_t^T x_t
        dL/dW      += dL/da_t^T h_{t-1}
        dL/db      += sum over the batch of dL/da_t
        dL/dh_{t-1} = dL/da_t W

The last line is why gradients vanish or explode: going back one step multiplies by
diag(1 - h_t^2) W, so after k steps the gradient has been multiplied k times by W (and by
factors <= 1). If W's largest singular value is < 1 it shrinks geometrically; if W is large
and tanh is not saturated it grows geometrically. ``backward`` records ||dL/dh_t|| for
every t so you can watch it happen (``python -m rnnkit.core.reference.numpy_rnn``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Optional

import numpy as np


@dataclass
class ElmanParams:
    """The five weight arrays of the seed's Elman RNN."""

    U: np.ndarray  # (H, I) input -> hidden
    W: np.ndarray  # (H, H) hidden -> hidden (the recurrence)
    b: np.ndarray  # (H,)
    V: np.ndarray  # (O, H) hidden -> output
    c: np.ndarray  # (O,)

    @classmethod
    def init(cls, input_size: int, hidden_size: int, output_size: int, seed: int = 0,
             recurrent_scale: Optional[float] = None) -> "ElmanParams":
        """Uniform(-1/sqrt(H), 1/sqrt(H)) like PyTorch; ``recurrent_scale`` instead sets
        W = scale * (a random orthogonal matrix), so every singular value of W is ``scale``."""
        rng = np.random.default_rng(seed)
        k = 1.0 / np.sqrt(hidden_size)
        W = rng.uniform(-k, k, (hidden_size, hidden_size))
        if recurrent_scale is not None:
            q, _ = np.linalg.qr(rng.standard_normal((hidden_size, hidden_size)))
            W = recurrent_scale * q
        return cls(U=rng.uniform(-k, k, (hidden_size, input_size)), W=W, b=rng.uniform(-k, k, hidden_size),
                   V=rng.uniform(-k, k, (output_size, hidden_size)), c=rng.uniform(-k, k, output_size))

    def copy(self) -> "ElmanParams":
        return ElmanParams(**{f.name: getattr(self, f.name).copy() for f in fields(self)})

    def names(self) -> list[str]:
        return [f.name for f in fields(self)]


def forward(p: ElmanParams, xs: np.ndarray, h0: Optional[np.ndarray] = None) -> tuple[np.ndarray, list[np.ndarray]]:
    """xs (B, T, I), h0 (B, H) -> y^ (B, O) and the hidden states [h_0, h_1, ..., h_T], each (B, H)."""
    B, T, _ = xs.shape
    h = np.zeros((B, p.W.shape[0])) if h0 is None else h0
    hs = [h]
    for t in range(T):
        h = np.tanh(xs[:, t] @ p.U.T + h @ p.W.T + p.b)  # h_t = tanh(U x_t + W h_{t-1} + b)
        hs.append(h)
    y_hat = h @ p.V.T + p.c  # y^ = V h_T + c
    return y_hat, hs


def mse_loss(y_hat: np.ndarray, y: np.ndarray) -> float:
    """L = mean((y^ - y)^2) over the batch and the output units."""
    return float(np.mean((y_hat - y) ** 2))


def backward(p: ElmanParams, xs: np.ndarray, y: np.ndarray, y_hat: np.ndarray,
             hs: list[np.ndarray]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Full BPTT. Returns the gradients {"U", "W", "b", "V", "c", "h0"} (same shapes as the
    arrays) and ||dL/dh_t|| for t = 0 .. T (Frobenius norm over the batch), shape (T + 1,)."""
    B, T, _ = xs.shape
    dy = 2.0 * (y_hat - y) / y_hat.size  # dL/dy^; y_hat.size = B*O is the mean's divisor
    g = {"V": dy.T @ hs[T], "c": dy.sum(axis=0),
         "U": np.zeros_like(p.U), "W": np.zeros_like(p.W), "b": np.zeros_like(p.b)}
    dh = dy @ p.V  # dL/dh_T
    norms = np.zeros(T + 1)
    norms[T] = np.linalg.norm(dh)
    for t in range(T, 0, -1):  # hs[t] is h_t, hs[t - 1] is h_{t-1}
        da = dh * (1.0 - hs[t] ** 2)  # through the tanh
        g["U"] += da.T @ xs[:, t - 1]
        g["W"] += da.T @ hs[t - 1]
        g["b"] += da.sum(axis=0)
        dh = da @ p.W  # dL/dh_{t-1}: one more multiplication by W per step back
        norms[t - 1] = np.linalg.norm(dh)
    g["h0"] = dh
    return g, norms


def loss_and_grads(p: ElmanParams, xs: np.ndarray, y: np.ndarray,
                   h0: Optional[np.ndarray] = None) -> tuple[float, dict[str, np.ndarray], np.ndarray]:
    """Forward + backward in one call: (L, gradients, ||dL/dh_t|| for t = 0 .. T)."""
    y_hat, hs = forward(p, xs, h0)
    grads, norms = backward(p, xs, y, y_hat, hs)
    return mse_loss(y_hat, y), grads, norms


def clip_by_global_norm(grads: dict[str, np.ndarray], max_norm: float,
                        names: tuple[str, ...] = ("U", "W", "b", "V", "c")) -> float:
    """Scale the parameter gradients in place so their joint L2 norm is at most ``max_norm``
    (what ``torch.nn.utils.clip_grad_norm_`` does). Returns the norm before clipping."""
    total = float(np.sqrt(sum(np.sum(grads[n] ** 2) for n in names)))
    scale = max_norm / (total + 1e-6)
    if scale < 1.0:
        for n in names:
            grads[n] *= scale
    return total


def sgd_train(p: ElmanParams, xs: np.ndarray, y: np.ndarray, lr: float = 0.1, steps: int = 200,
              clip: Optional[float] = None) -> list[float]:
    """Full-batch gradient descent on (xs, y), updating ``p`` in place; returns the loss per step."""
    if lr <= 0 or steps < 0:
        raise ValueError(f"lr must be > 0 and steps >= 0, got lr={lr}, steps={steps}")
    losses = []
    for _ in range(steps):
        loss, grads, _ = loss_and_grads(p, xs, y)
        if clip is not None:
            clip_by_global_norm(grads, clip)
        for name in p.names():
            getattr(p, name)[...] -= lr * grads[name]  # theta <- theta - lr * dL/dtheta
        losses.append(loss)
    return losses


def _demo() -> None:
    """Print how ||dL/dh_t|| changes going back in time for a small, unit and large W."""
    rng = np.random.default_rng(0)
    xs = 1e-6 * rng.standard_normal((4, 20, 3))  # tiny inputs: tanh stays in its linear range
    y = rng.standard_normal((4, 2))
    print("||dL/dh_t|| / ||dL/dh_T|| for t = T, T-5, T-10, T-15, T-20 (W = scale * orthogonal)")
    for scale in (0.5, 1.0, 1.5):
        p = ElmanParams.init(3, 16, 2, seed=1, recurrent_scale=scale)
        p.b[:] = 0.0
        _, _, norms = loss_and_grads(p, xs, y)
        rel = norms[::-5] / norms[-1]
        print(f"  scale {scale:3.1f}: " + "  ".join(f"{r:10.3g}" for r in rel))
    # A tiny training run: predict the mean of a sequence of 8 numbers.
    xs = rng.uniform(-1, 1, (64, 8, 1))
    y = xs.mean(axis=1)
    p = ElmanParams.init(1, 8, 1, seed=2)
    losses = sgd_train(p, xs, y, lr=0.5, steps=300, clip=1.0)
    print(f"SGD on 'mean of 8 numbers': loss {losses[0]:.4f} -> {losses[-1]:.4f} in 300 steps")


if __name__ == "__main__":
    _demo()
