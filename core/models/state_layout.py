"""What a model's state is made of, once (torch-free): the models, the export wrappers and the edge runner read it.

A state is a tuple of tensors, the batch always on axis 1. Each tensor has a *role*; the role fixes
its shape (in terms of the model's sizes) and its names in an ONNX graph::

    role   shape                        graph input -> output
    h      (layers, batch, hidden)      h0   -> next_h0      hidden state of every layer (and direction)
    c      (layers, batch, hidden)      c0   -> next_c0      LSTM cell state
    feed   (1, batch, hidden)           feed0 -> next_feed0  seq2seq Luong input feeding
    k, v   (layers, batch, window, hidden)                   a Transformer's key / value cache
    len    (1, batch, 1)                                     tokens read (min(len, window) slots are filled)

A recurrent cell's state is one row of ``CELL_STATE`` (lstm -> (h, c), gru -> (h,), ...); a model that
is not a ``RecurrentStack`` (seq2seq with input feeding, a Transformer) gives its roles itself with
``state_names()``. A new cell is one row of ``CELL_STATE``; a new kind of state tensor one row of
``ROLES``. Exported graphs list their state tensors in the ``state_inputs`` / ``state_outputs``
metadata (edge/names.py), and the runner takes every shape from the graph itself (only the batch
axis is symbolic), so nothing downstream branches on the cell.
"""

from __future__ import annotations

from typing import Mapping, Sequence

# The sizes a state shape is made of; "batch" is always axis 1.
LAYERS, BATCH, HIDDEN, WINDOW = "layers", "batch", "hidden", "window"
BATCH_AXIS = 1

# role -> shape (ints are fixed sizes)
ROLES: dict[str, tuple[str | int, ...]] = {
    "h": (LAYERS, BATCH, HIDDEN),
    "c": (LAYERS, BATCH, HIDDEN),
    "feed": (1, BATCH, HIDDEN),
    "k": (LAYERS, BATCH, WINDOW, HIDDEN),
    "v": (LAYERS, BATCH, WINDOW, HIDDEN),
    "len": (1, BATCH, 1),
}

# recurrent cell (RecurrentStack) -> the roles of its state tuple, in order
CELL_STATE: dict[str, tuple[str, ...]] = {
    "lstm": ("h", "c"),
    "gru": ("h",),
    "rnn_tanh": ("h",),
    "rnn_relu": ("h",),
    "mingru": ("h",),   # core/models/minrnn.py: one state tensor per layer
    "minlstm": ("h",),
}
CELLS = tuple(CELL_STATE)

# graph metadata key that gives each size of ROLES' shapes (layers = num_layers * num_directions)
SIZE_META = {LAYERS: "num_layers", HIDDEN: "hidden_size", WINDOW: "window"}


def check_cell(cell: str) -> None:
    if cell not in CELL_STATE:
        raise ValueError(f"unknown cell {cell!r}; allowed: {', '.join(CELLS)}")


def state_roles(cell: str) -> tuple[str, ...]:
    """The roles of a ``cell``'s state tuple, e.g. ("h", "c") for lstm."""
    check_cell(cell)
    return CELL_STATE[cell]


def state_size(cell: str) -> int:
    """How many tensors make up one state of ``cell``: 2 for LSTM (h, c), 1 for GRU / RNN."""
    return len(state_roles(cell))


def input_name(role: str) -> str:
    """A state tensor's name as a graph input (and as the output of a graph that makes a state)."""
    _check_roles([role])
    return f"{role}0"


def output_name(role: str) -> str:
    """The name of the next state tensor a step graph outputs."""
    _check_roles([role])
    return f"next_{role}0"


def state_io(roles: Sequence[str]) -> tuple[list[str], list[str]]:
    """(input names, output names) of a state with these roles, e.g. ("h", "c", "feed")."""
    _check_roles(roles)
    return [input_name(r) for r in roles], [output_name(r) for r in roles]


def role_of(name: str) -> str | None:
    """The role of a state input (``h0``) or output (``next_h0``) name; None if ``name`` is no state tensor."""
    base = name.removeprefix("next_")
    if not base.endswith("0") or base[:-1] not in ROLES:
        return None
    return base[:-1]


def next_state(outputs: Mapping[str, object]) -> dict[str, object]:
    """``{input name: value}`` of the next state among a step graph's ``outputs`` (next_h0 -> h0, ...)."""
    return {n.removeprefix("next_"): v for n, v in outputs.items() if is_state_output(n)}


def is_state_input(name: str) -> bool:
    return not name.startswith("next_") and role_of(name) is not None


def is_state_output(name: str) -> bool:
    return name.startswith("next_") and role_of(name) is not None


def state_shape(role: str, batch: int, sizes: Mapping[str, int]) -> tuple[int, ...]:
    """The shape of a ``role`` tensor for ``batch`` rows; ``sizes`` gives layers, hidden (, window)."""
    _check_roles([role])
    return tuple(batch if d == BATCH else d if isinstance(d, int) else int(sizes[d]) for d in ROLES[role])


def _check_roles(roles: Sequence[str]) -> None:
    bad = [r for r in roles if r not in ROLES]
    if bad:
        raise ValueError(f"unknown state role(s) {bad}; allowed: {', '.join(ROLES)}")
