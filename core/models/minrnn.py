"""minGRU and minLSTM (Feng et al. 2024, "Were RNNs All We Needed?"): recurrent cells whose gates
read only the input, so training runs as a parallel scan over time and inference as an O(1)-state step.

Both cells are the linear recurrence ``h_t = a_t * h_{t-1} + b_t`` with ``a_t, b_t`` computed from
``x_t`` alone (one matrix multiply for all T positions at once):

- minGRU:  z = sigmoid(W_z x), h~ = g(W_h x);              a = 1 - z,       b = z * h~
- minLSTM: f = sigmoid(W_f x), i = sigmoid(W_i x), h~ = g(W_h x);
           f' = f / (f + i), i' = i / (f + i);              a = f',          b = i' * h~

``g(v) = v + 0.5 if v >= 0 else sigmoid(v)`` keeps ``h~`` positive, so the recurrence can run in log
space (Heinsen 2023, "Efficient parallelization of a ubiquitous sequential computation"):

    a*_t = sum_{s<=t} log a_s,   h_t = exp(a*_t) * h_0 + exp(a*_t + logcumsumexp_{s<=t}(log b_s - a*_s))

The initial state enters through its own linear term ``exp(a*_t) * h_0`` rather than through log(h_0),
so a zero (or negative, e.g. a random test state) h_0 is exact. Training uses that scan (``scan``,
in float64 chunks of 16 steps: see its docstring);
evaluation, sampling and the exported ONNX graph use the sequential step (``recurrence``, a scripted
loop over T of elementwise ops: one ONNX ``Loop`` node, dynamic T, the state one (B, H) tensor).

``MinRNN`` is a drop-in for ``nn.GRU`` inside ``RecurrentStack`` (batch-first, state (L, B, H),
``forward(x, h) -> (out, h)``): cells ``"mingru"`` and ``"minlstm"``, one state tensor per layer.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import Tensor, nn

MIN_CELLS = ("mingru", "minlstm")


def g(v: Tensor) -> Tensor:
    """The paper's positive activation: v + 0.5 for v >= 0, sigmoid(v) below (continuous at 0)."""
    return torch.where(v >= 0, v + 0.5, torch.sigmoid(v))


def log_g(v: Tensor) -> Tensor:
    """log(g(v)), computed without forming g for the negative branch (log sigmoid = -softplus(-v))."""
    return torch.where(v >= 0, torch.log(F.relu(v) + 0.5), -F.softplus(-v))


# Gates are kept from forgetting more than e^-30 of the state in one step: beyond that a decay changes
# nothing a float32 model can see, and it bounds how far ``a*`` can fall inside a scan chunk
# (16 x 30 < 700, where float64's exp would underflow; with unbounded gates, saturated ones -- large
# pre-activations once h, which g does not bound, has grown -- made the scan overflow to NaN in training).
LOG_A_MIN = -30.0
A_MIN = 9.357622968840175e-14  # exp(LOG_A_MIN)


def coefficients(cell: str, pre: Tensor, log: bool) -> tuple[Tensor, Tensor]:
    """(a, b) of ``h_t = a_t h_{t-1} + b_t`` from the input projections ``pre`` (..., k*H).

    ``log``: return (log a, log b) -- every term through softplus, never log of a rounded product.
    Both forms clamp a at ``A_MIN`` (log a at ``LOG_A_MIN``), so they compute the same recurrence.
    """
    if cell == "mingru":
        k, v = pre.chunk(2, dim=-1)
        if log:  # log(1 - z), log z + log h~
            return (-F.softplus(k)).clamp_min(LOG_A_MIN), -F.softplus(-k) + log_g(v)
        return torch.sigmoid(-k).clamp_min(A_MIN), torch.sigmoid(k) * g(v)  # 1 - z as sigmoid(-k): no rounding to 0
    if cell == "minlstm":
        f, i, v = pre.chunk(3, dim=-1)
        # f' = f / (f + i) = sigmoid(d) with d = log f - log i = softplus(-i) - softplus(-f)
        d = F.softplus(-i) - F.softplus(-f)
        if log:  # log f', log i' + log h~
            return (-F.softplus(-d)).clamp_min(LOG_A_MIN), -F.softplus(d) + log_g(v)
        return torch.sigmoid(d).clamp_min(A_MIN), torch.sigmoid(-d) * g(v)
    raise ValueError(f"unknown min cell {cell!r}; allowed: {', '.join(MIN_CELLS)}")


def scan(log_a: Tensor, log_b: Tensor, h0: Tensor, chunk: int = 16) -> Tensor:
    """Parallel log-space scan: log_a, log_b (B, T, H), h0 (B, H) -> h (B, T, H).

    Within a chunk of ``chunk`` steps, all at once: ``a*`` by cumsum, then the log-cumsum-exp of
    ``x = log b - a*`` as ``m + log(cumsum(exp(x - m)))`` with ``m`` the chunk's max (8x faster on a CPU
    than ``torch.logcumsumexp``, whose kernel is elementwise-serial). Chunks follow one another,
    each starting from the previous one's last h. Two reasons for chunking: ``a*_t + lcse_t`` adds
    two numbers of size |a*_t| that nearly cancel (float32 over 2,000 strongly forgetting steps lost
    2e-4), and ``exp(x - m)`` underflows once x spans more than ~700 inside a chunk. Computed in
    float64 (then cast back), a 16-step chunk only underflows if its gates average a < 1e-19 (z > 1 -
    1e-19): sigmoid gates of a float32 model never get there.
    """
    dtype = log_a.dtype
    log_a, log_b, h = log_a.double(), log_b.double(), h0.double()
    outs = []
    for s in range(0, log_a.shape[1], chunk):
        a_star = torch.cumsum(log_a[:, s:s + chunk], dim=1)  # (B, C, H) log of prod_{r<=t} a_r
        x = log_b[:, s:s + chunk] - a_star  # log of b_s / prod_{r<=s} a_r
        m = x.detach().amax(dim=1, keepdim=True)
        acc = torch.log(torch.cumsum(torch.exp(x - m), dim=1).clamp_min(1e-300)) + m  # logcumsumexp(x)
        out = torch.exp(a_star) * h.unsqueeze(1) + torch.exp(a_star + acc)
        outs.append(out)
        h = out[:, -1]
    out = outs[0] if len(outs) == 1 else torch.cat(outs, 1)
    return out.to(dtype)


def _recurrence(a: Tensor, b: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
    """Sequential ``h_t = a_t h_{t-1} + b_t``: a, b (B, T, H), h (B, H) -> outputs (B, T, H), last h.

    Scripted so that the ONNX export keeps T dynamic (a ``Loop`` node rather than T unrolled steps)."""
    outs: list[Tensor] = []
    for t in range(a.shape[1]):
        h = a[:, t] * h + b[:, t]
        outs.append(h)
    return torch.stack(outs, 1), h


with warnings.catch_warnings():  # torch 2.13 marks jit.script deprecated; the TorchScript exporter still needs it
    warnings.simplefilter("ignore", DeprecationWarning)
    recurrence = torch.jit.script(_recurrence)


class MinRNNLayer(nn.Module):
    """One minGRU / minLSTM layer: x (B, T, I), h (B, H) -> outputs (B, T, H), last h (B, H)."""

    def __init__(self, cell: str, input_size: int, hidden_size: int):
        super().__init__()
        if cell not in MIN_CELLS:
            raise ValueError(f"unknown min cell {cell!r}; allowed: {', '.join(MIN_CELLS)}")
        self.cell, self.hidden_size = cell, hidden_size
        # one projection for every gate and the candidate (2H: minGRU, 3H: minLSTM)
        self.proj = nn.Linear(input_size, (2 if cell == "mingru" else 3) * hidden_size)

    def forward(self, x: Tensor, h: Tensor, parallel: bool) -> tuple[Tensor, Tensor]:
        pre = self.proj(x)
        if parallel:
            out = scan(*coefficients(self.cell, pre, log=True), h)
            return out, out[:, -1]
        return recurrence(*coefficients(self.cell, pre, log=False), h)


class MinRNN(nn.Module):
    """A stack of min cells with ``nn.GRU``'s interface (batch-first): x (B, T, I), h (L, B, H)
    -> outputs (B, T, H), next h (L, B, H). Dropout between layers as ``nn.GRU``'s.

    Training mode runs the parallel scan; eval mode the sequential step (what the ONNX graph and
    the edge runner compute). ``parallel`` forces one or the other (tests compare them)."""

    def __init__(self, cell: str, input_size: int, hidden_size: int, num_layers: int = 1, dropout: float = 0.0):
        super().__init__()
        self.cell, self.hidden_size, self.num_layers, self.dropout = cell, hidden_size, num_layers, dropout
        self.layers = nn.ModuleList(
            MinRNNLayer(cell, input_size if k == 0 else hidden_size, hidden_size) for k in range(num_layers))
        self.parallel: bool | None = None  # None: scan when training, step otherwise

    def forward(self, x: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        if not torch.jit.is_tracing():  # a traced shape check would pin the batch in the ONNX graph
            assert h.shape == (self.num_layers, x.shape[0], self.hidden_size), (h.shape, x.shape)
        parallel = self.training if self.parallel is None else self.parallel
        finals = []
        out = x
        for k, layer in enumerate(self.layers):
            if k > 0 and self.dropout > 0:
                out = F.dropout(out, self.dropout, self.training)
            out, last = layer(out, h[k], parallel)
            finals.append(last)
        return out, torch.stack(finals, 0)
