"""LSTM and GRU forward passes in plain NumPy, gate by gate, as PyTorch's docs write them.

Read ``numpy_rnn.py`` first (the Elman RNN and BPTT); these two cells replace its one line
``h_t = tanh(U x_t + W h_{t-1} + b)`` with gates that decide what to keep, so the gradient
path back through time is no longer one multiplication by W per step.

The weights use PyTorch's names and layout (so a ``torch.nn.LSTM`` / ``torch.nn.GRU``
state_dict, converted to NumPy, drops straight in): for layer k,
``weight_ih_l{k}`` (G*H, I), ``weight_hh_l{k}`` (G*H, H), ``bias_ih_l{k}`` and
``bias_hh_l{k}`` (G*H,), with the G gates stacked in the order below. Batch rows:
x (B, I), h and c (B, H); ``x @ W.T`` is the docs' ``W x``.

LSTM (gates i, f, g, o):
    i = sigmoid(W_ii x + b_ii + W_hi h + b_hi)      input gate: how much new content to write
    f = sigmoid(W_if x + b_if + W_hf h + b_hf)      forget gate: how much old memory to keep
    g = tanh(W_ig x + b_ig + W_hg h + b_hg)         the candidate content
    o = sigmoid(W_io x + b_io + W_ho h + b_ho)      output gate: how much memory to show
    c' = f * c + i * g                              memory: an add, not a squash -- gradients flow
    h' = o * tanh(c')

GRU (gates r, z, n):
    r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)      reset gate
    z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)      update gate
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn))   candidate (r gates the *projected* h)
    h' = (1 - z) * n + z * h
"""

from __future__ import annotations

from typing import Mapping, Optional

import numpy as np

Weights = Mapping[str, np.ndarray]  # PyTorch names -> arrays, e.g. {"weight_ih_l0": ...}


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _split(w: Weights, layer: int, gates: int) -> tuple[list[np.ndarray], ...]:
    """The layer's four arrays, each cut into its ``gates`` row blocks (one per gate)."""
    names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    missing = [f"{n}_l{layer}" for n in names if f"{n}_l{layer}" not in w]
    if missing:
        raise KeyError(f"weights for layer {layer} lack {missing}; have {sorted(w)}")
    return tuple(np.split(np.asarray(w[f"{n}_l{layer}"]), gates, axis=0) for n in names)


def lstm_cell(x: np.ndarray, h: np.ndarray, c: np.ndarray, w: Weights,
              layer: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """One LSTM step: x (B, I), h (B, H), c (B, H) -> h', c'."""
    (W_ii, W_if, W_ig, W_io), (W_hi, W_hf, W_hg, W_ho), \
        (b_ii, b_if, b_ig, b_io), (b_hi, b_hf, b_hg, b_ho) = _split(w, layer, 4)
    i = sigmoid(x @ W_ii.T + b_ii + h @ W_hi.T + b_hi)
    f = sigmoid(x @ W_if.T + b_if + h @ W_hf.T + b_hf)
    g = np.tanh(x @ W_ig.T + b_ig + h @ W_hg.T + b_hg)
    o = sigmoid(x @ W_io.T + b_io + h @ W_ho.T + b_ho)
    c_next = f * c + i * g
    h_next = o * np.tanh(c_next)
    return h_next, c_next


def gru_cell(x: np.ndarray, h: np.ndarray, w: Weights, layer: int = 0) -> np.ndarray:
    """One GRU step: x (B, I), h (B, H) -> h'."""
    (W_ir, W_iz, W_in), (W_hr, W_hz, W_hn), (b_ir, b_iz, b_in), (b_hr, b_hz, b_hn) = _split(w, layer, 3)
    r = sigmoid(x @ W_ir.T + b_ir + h @ W_hr.T + b_hr)
    z = sigmoid(x @ W_iz.T + b_iz + h @ W_hz.T + b_hz)
    n = np.tanh(x @ W_in.T + b_in + r * (h @ W_hn.T + b_hn))
    return (1.0 - z) * n + z * h


def _num_layers(w: Weights) -> int:
    layers = 0
    while f"weight_ih_l{layers}" in w:
        layers += 1
    if layers == 0:
        raise KeyError(f"no 'weight_ih_l0' in the weights; have {sorted(w)}")
    return layers


def lstm_forward(xs: np.ndarray, w: Weights, h0: Optional[np.ndarray] = None,
                 c0: Optional[np.ndarray] = None) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """A stacked LSTM like ``nn.LSTM(batch_first=True)``: xs (B, T, I), h0/c0 (L, B, H)
    -> outputs (B, T, H) of the top layer, (h_T, c_T) each (L, B, H).

    Layer k reads the whole output sequence of layer k-1 (layer 0 reads xs)."""
    L = _num_layers(w)
    B, T, _ = xs.shape
    H = np.asarray(w["weight_hh_l0"]).shape[1]
    h0 = np.zeros((L, B, H)) if h0 is None else h0
    c0 = np.zeros((L, B, H)) if c0 is None else c0
    seq, h_last, c_last = xs, [], []
    for layer in range(L):
        h, c, outs = h0[layer], c0[layer], []
        for t in range(T):
            h, c = lstm_cell(seq[:, t], h, c, w, layer)
            outs.append(h)
        seq = np.stack(outs, axis=1)  # (B, T, H): the next layer's input
        h_last.append(h)
        c_last.append(c)
    return seq, (np.stack(h_last), np.stack(c_last))


def gru_forward(xs: np.ndarray, w: Weights, h0: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray]:
    """A stacked GRU like ``nn.GRU(batch_first=True)``: xs (B, T, I), h0 (L, B, H)
    -> outputs (B, T, H) of the top layer, h_T (L, B, H)."""
    L = _num_layers(w)
    B, T, _ = xs.shape
    H = np.asarray(w["weight_hh_l0"]).shape[1]
    h0 = np.zeros((L, B, H)) if h0 is None else h0
    seq, h_last = xs, []
    for layer in range(L):
        h, outs = h0[layer], []
        for t in range(T):
            h = gru_cell(seq[:, t], h, w, layer)
            outs.append(h)
        seq = np.stack(outs, axis=1)
        h_last.append(h)
    return seq, np.stack(h_last)
