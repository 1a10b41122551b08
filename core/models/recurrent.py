"""The recurrent stack every rnnkit model is built on.

``RecurrentStack`` wraps PyTorch's fused ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` (or minGRU / minLSTM,
``minrnn.py``: same interface, one state tensor) and normalises their state: ``init_state(batch)``
always returns a tuple of tensors,
``(h, c)`` for LSTM and ``(h,)`` otherwise, each ``(L*D, B, H)``. Nothing downstream
branches on the cell type.

The step function is ``forward(x, state) -> (outputs, state)``; a single time step is
just ``T == 1``. Training, sampling and ONNX export all call it.

Training-only options (unidirectional stacks; AWD-LSTM): ``weight_drop`` (DropConnect on the
hidden-to-hidden weights, one mask per forward call, i.e. per batch of sequences) and
``locked_dropout`` (the dropout between layers uses one mask per sequence, constant over time).
With either on, a training forward calls the same fused kernels (``torch._VF.lstm`` / ``gru`` /
``rnn_*``, which ``nn.LSTM`` itself calls) with the masked weights in place of the parameters --
layer by layer when a locked mask sits between layers. In eval mode the plain ``nn.LSTM`` runs,
so evaluation and the exported graph are unchanged.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from rnnkit.core.models.minrnn import MIN_CELLS, MinRNN
from rnnkit.core.models.regularize import drop_connect, locked_dropout
from rnnkit.core.models.state_layout import CELLS, check_cell, state_size  # noqa: F401  (the one table)

State = tuple[Tensor, ...]


def _fused(cell: str, input_size: int, hidden_size: int, num_layers: int, dropout: float) -> nn.Module:
    kw = dict(num_layers=num_layers, batch_first=True, dropout=dropout if num_layers > 1 else 0.0)
    if cell in MIN_CELLS:  # minGRU / minLSTM: nn.GRU's interface, parallel scan in training (minrnn.py)
        return MinRNN(cell, input_size, hidden_size, num_layers, kw["dropout"])
    if cell == "lstm":
        return nn.LSTM(input_size, hidden_size, **kw)
    if cell == "gru":
        return nn.GRU(input_size, hidden_size, **kw)
    return nn.RNN(input_size, hidden_size, nonlinearity=cell.split("_")[1], **kw)


def reverse_padded(x: Tensor, lengths: Tensor) -> Tensor:
    """Reverse each sequence of ``x`` (B, T, ...) within its own length; pads stay at the end.

    A gather rather than ``pack_padded_sequence`` so that the exact same code runs in
    training and in the exported ONNX graph.
    """
    T = x.shape[1]
    pos = torch.arange(T, device=x.device).unsqueeze(0)  # (1, T)
    lengths = lengths.to(x.device).unsqueeze(1)  # (B, 1)
    idx = torch.where(pos < lengths, lengths - 1 - pos, pos)  # (B, T)
    idx = idx.view(idx.shape[0], T, *([1] * (x.dim() - 2))).expand_as(x)
    return torch.gather(x, 1, idx)


class RecurrentStack(nn.Module):
    """``num_layers`` recurrent layers of one cell type, optionally bidirectional.

    Unidirectional: one fused module (fast, and one native ONNX LSTM/GRU/RNN node).
    Bidirectional: a forward and a backward fused layer per level, the backward one fed
    each sequence reversed within its length, so padded batches are handled exactly.
    """

    def __init__(self, cell: str, input_size: int, hidden_size: int, num_layers: int = 1,
                 dropout: float = 0.0, bidirectional: bool = False, *, weight_drop: float = 0.0,
                 locked_dropout: bool = False):
        super().__init__()
        check_cell(cell)
        if num_layers < 1 or hidden_size < 1:
            raise ValueError(f"num_layers and hidden_size must be >= 1, got {num_layers}, {hidden_size}")
        if not 0.0 <= weight_drop < 1.0:
            raise ValueError(f"weight_drop must be in [0, 1), got {weight_drop}")
        if cell in MIN_CELLS and (weight_drop > 0 or locked_dropout):
            raise ValueError(f"weight_drop and locked_dropout are implemented for the fused cells only, not {cell}")
        if bidirectional and (weight_drop > 0 or locked_dropout):
            raise ValueError("weight_drop and locked_dropout are implemented for unidirectional stacks only")
        self.cell, self.hidden_size, self.num_layers = cell, hidden_size, num_layers
        self.bidirectional = bidirectional
        self.num_directions = 2 if bidirectional else 1
        self.weight_drop = weight_drop
        # between-layer dropout with one mask per sequence; nn.LSTM's own (per step) is then off
        self.locked_p = dropout if locked_dropout and num_layers > 1 else 0.0
        if not bidirectional:
            self.rnn = _fused(cell, input_size, hidden_size, num_layers, 0.0 if locked_dropout else dropout)
        else:
            self.fwd = nn.ModuleList()
            self.bwd = nn.ModuleList()
            for layer in range(num_layers):
                size = input_size if layer == 0 else 2 * hidden_size
                self.fwd.append(_fused(cell, size, hidden_size, 1, 0.0))
                self.bwd.append(_fused(cell, size, hidden_size, 1, 0.0))
            self.drop = nn.Dropout(dropout)

    @property
    def output_size(self) -> int:
        return self.num_directions * self.hidden_size

    def init_state(self, batch: int, device=None, dtype=None) -> State:
        """Zero state: a tuple of ``(L*D, B, H)`` tensors ((h, c) for LSTM, (h,) otherwise)."""
        p = next(self.parameters())
        shape = (self.num_layers * self.num_directions, batch, self.hidden_size)
        device = device if device is not None else p.device
        dtype = dtype if dtype is not None else p.dtype
        return tuple(torch.zeros(shape, device=device, dtype=dtype) for _ in range(state_size(self.cell)))

    def _call(self, rnn: nn.Module, x: Tensor, state: State) -> tuple[Tensor, State]:
        if self.cell == "lstm":
            out, (h, c) = rnn(x, (state[0].contiguous(), state[1].contiguous()))
            return out, (h, c)
        out, h = rnn(x, state[0].contiguous())
        return out, (h,)

    def _regularised(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        """Training forward with DropConnect on weight_hh (one mask per call) and/or locked dropout
        between layers. Parameters are read, never modified: gradients reach them through the masks."""
        rnn = self.rnn
        layers = []
        for k in range(self.num_layers):
            w_hh = drop_connect(getattr(rnn, f"weight_hh_l{k}"), self.weight_drop)
            layers.append([getattr(rnn, f"weight_ih_l{k}"), w_hh, getattr(rnn, f"bias_ih_l{k}"),
                           getattr(rnn, f"bias_hh_l{k}")])
        if self.locked_p <= 0:  # one fused call over all layers (nn.LSTM's own between-layer dropout)
            return _vf_call(self.cell, x, state, [w for ws in layers for w in ws], self.num_layers,
                            rnn.dropout, True)
        finals: list[list[Tensor]] = [[] for _ in state]
        out = x
        for k, params in enumerate(layers):
            if k > 0:
                out = locked_dropout(out, self.locked_p)
            out, new = _vf_call(self.cell, out, tuple(s[k:k + 1] for s in state), params, 1, 0.0, True)
            for i, t in enumerate(new):
                finals[i].append(t)
        return out, tuple(torch.cat(f, dim=0) for f in finals)

    def forward(self, x: Tensor, state: Optional[State] = None,
                lengths: Optional[Tensor] = None) -> tuple[Tensor, State]:
        """x: (B, T, I) -> outputs (B, T, D*H), next state (tuple of (L*D, B, H)).

        ``lengths`` (B,) marks padding; only the bidirectional path needs it. With padding
        the returned final state is the one after the pads: take per-sequence results from
        the outputs (see ``last_valid``), never from the state.
        """
        if state is None:
            state = self.init_state(x.shape[0], x.device, x.dtype)
        if len(state) != state_size(self.cell):
            raise ValueError(f"{self.cell} state is a tuple of {state_size(self.cell)} tensors, got {len(state)}")
        if not self.bidirectional:
            if self.training and (self.weight_drop > 0 or self.locked_p > 0):
                return self._regularised(x, state)
            return self._call(self.rnn, x, state)
        if lengths is None:
            lengths = torch.full((x.shape[0],), x.shape[1], dtype=torch.long, device=x.device)
        finals: list[list[Tensor]] = [[] for _ in state]
        out = x
        for layer in range(self.num_layers):
            if layer > 0:
                out = self.drop(out)
            s_f = tuple(s[2 * layer:2 * layer + 1] for s in state)
            s_b = tuple(s[2 * layer + 1:2 * layer + 2] for s in state)
            o_f, n_f = self._call(self.fwd[layer], out, s_f)
            o_b, n_b = self._call(self.bwd[layer], reverse_padded(out, lengths), s_b)
            out = torch.cat([o_f, reverse_padded(o_b, lengths)], dim=-1)
            for i in range(len(state)):
                finals[i] += [n_f[i], n_b[i]]
        return out, tuple(torch.cat(f, dim=0) for f in finals)


def _vf_call(cell: str, x: Tensor, state: State, params: list[Tensor], num_layers: int,
             dropout: float, training: bool) -> tuple[Tensor, State]:
    """The fused kernel nn.LSTM / nn.GRU / nn.RNN call, with explicit weights (batch-first, unidirectional)."""
    if cell == "lstm":
        out, h, c = torch._VF.lstm(x, (state[0].contiguous(), state[1].contiguous()), params, True, num_layers,
                                   dropout, training, False, True)
        return out, (h, c)
    fn = {"gru": torch._VF.gru, "rnn_tanh": torch._VF.rnn_tanh, "rnn_relu": torch._VF.rnn_relu}[cell]
    out, h = fn(x, state[0].contiguous(), params, True, num_layers, dropout, training, False, True)
    return out, (h,)


def last_valid(outputs: Tensor, lengths: Optional[Tensor], num_directions: int = 1) -> Tensor:
    """The summary vector of each sequence in a padded batch, (B, T, D*H) -> (B, D*H).

    Forward direction: the output at the last real token (never a pad's).
    Backward direction: the output at position 0, which has read the whole sequence.
    """
    B, T, _ = outputs.shape
    if lengths is None:
        lengths = torch.full((B,), T, dtype=torch.long, device=outputs.device)
    idx = (lengths.to(outputs.device) - 1).clamp(min=0).view(B, 1, 1).expand(B, 1, outputs.shape[-1])
    last = torch.gather(outputs, 1, idx).squeeze(1)
    if num_directions == 1:
        return last
    H = outputs.shape[-1] // 2
    return torch.cat([last[:, :H], outputs[:, 0, H:]], dim=-1)
