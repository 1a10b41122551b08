"""A stateful onnxruntime runner over an rnnkit step graph (silero-vad ``OnnxWrapper`` style).

The graph is ``tokens[B,T] int64, h0[L,B,H] float32 (, c0) -> logits[B,T,V], next_h0 (, next_c0)``.
Every dimension and special id comes from the graph's ``metadata_props`` (never from a file
name). State is explicit numpy: ``step(tokens, state) -> (logits, state)`` is pure, and
``__call__(tokens)`` keeps the state inside the runner (reset with ``reset(batch)``; a change
of batch size resets it, as silero-vad's wrapper does).

Torch-free: numpy and onnxruntime only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from rnnkit.core.config import check_dims  # torch-free
from rnnkit.export import names as _names  # torch-free: the one place tensor names are defined

TOKENS, LOGITS = _names.TOKENS, _names.LOGITS
(H0, C0), (NEXT_H0, NEXT_C0) = _names.STATE_IN, _names.STATE_OUT

State = tuple[np.ndarray, ...]
CELLS = ("lstm", "gru", "rnn_tanh", "rnn_relu")
PROVIDERS = ("CPUExecutionProvider",)
MAX_STATE_ELEMENTS = 1 << 26  # 256 MB of float32 per state tensor: far above any keyboard's batch


class EdgeError(ValueError):
    """A user-facing problem with a bundle, a graph or an input (one clear line, no traceback)."""


@dataclass(frozen=True)
class StepMeta:
    """The facts the exporter wrote into the graph's ``metadata_props``."""

    kind: str
    cell: str
    num_layers: int
    hidden_size: int
    vocab_size: int
    pad_id: int = -1
    bos_id: int = -1
    eos_id: int = -1
    unk_id: int = -1
    tokenizer_sha256: str = ""
    format_version: str = ""
    job: str = ""

    @property
    def num_states(self) -> int:
        return 2 if self.cell == "lstm" else 1

    @classmethod
    def from_props(cls, props: dict[str, str], where: str = "graph") -> "StepMeta":
        need = ("kind", "cell", "num_layers", "hidden_size", "vocab_size")
        missing = [k for k in need if k not in props]
        if missing:
            raise EdgeError(f"{where}: metadata_props lacks {missing} (has {sorted(props)}); "
                            "re-export it with `rnnkit export`")

        def as_int(key: str, default: int | None = None) -> int:
            raw = props.get(key)
            if raw is None or raw == "":
                return -1 if default is None else default
            try:
                return int(raw)
            except ValueError:
                raise EdgeError(f"{where}: metadata {key}={raw!r} is not an integer") from None

        meta = cls(kind=props["kind"], cell=props["cell"], num_layers=as_int("num_layers"),
                   hidden_size=as_int("hidden_size"), vocab_size=as_int("vocab_size"),
                   pad_id=as_int("pad_id"), bos_id=as_int("bos_id"), eos_id=as_int("eos_id"),
                   unk_id=as_int("unk_id"), tokenizer_sha256=props.get("tokenizer_sha256", ""),
                   format_version=props.get("format_version", ""), job=props.get("job", ""))
        if meta.cell not in CELLS:
            raise EdgeError(f"{where}: cell {meta.cell!r} is not one of {', '.join(CELLS)}")
        if min(meta.num_layers, meta.hidden_size, meta.vocab_size) < 1:
            raise EdgeError(f"{where}: num_layers, hidden_size and vocab_size must be >= 1, got "
                            f"{meta.num_layers}, {meta.hidden_size}, {meta.vocab_size}")
        try:  # the state is allocated from these numbers: absurd ones are refused, not tried
            check_dims({"num_layers": meta.num_layers, "hidden_size": meta.hidden_size,
                        "vocab_size": meta.vocab_size}, f"{where}: metadata")
        except ValueError as e:
            raise EdgeError(str(e)) from None
        return meta


def session_options(threads: int = 1, mem_arena: bool = True):
    """One intra-op thread by default: a keystroke is one tiny step, threads only add sync cost.
    ``mem_arena=False``: no onnxruntime CPU arena (a server with many concurrent runs would keep
    the arena at its peak forever; the demo turns it off, a device keeps it)."""
    import onnxruntime as ort

    if not isinstance(threads, int) or threads < 0:
        raise EdgeError(f"threads must be an int >= 0 (0 = onnxruntime's default), got {threads!r}")
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3  # warnings about unused initializers are noise on a device
    so.enable_cpu_mem_arena = bool(mem_arena)
    return so


def load_session(model: str | os.PathLike | bytes, threads: int = 1, providers: Sequence[str] = PROVIDERS,
                 mem_arena: bool = True):
    """An ``onnxruntime.InferenceSession``; a truncated or altered file is a clear ``EdgeError``."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    bad = [p for p in providers if p not in available]
    if bad or not providers:
        raise EdgeError(f"execution provider(s) {bad or list(providers)} not available; allowed: {available}")
    where = "<bytes>" if isinstance(model, (bytes, bytearray)) else str(model)
    if not isinstance(model, (bytes, bytearray)) and not os.path.isfile(model):
        raise EdgeError(f"{where}: no such ONNX file")
    if isinstance(model, (bytes, bytearray)):
        # Graph bytes have no directory: onnxruntime would look for external data relative to the
        # working directory. Such a graph is refused (a bundle lists and hashes its data files).
        from rnnkit.export.onnx_scan import ScanError, scan_onnx

        try:
            external = scan_onnx(model).external
        except ScanError as e:
            raise EdgeError(f"{where}: cannot load the ONNX graph (truncated or altered file?): {e}") from None
        if external:
            raise EdgeError(f"{where}: graph bytes refer to external data {external[0][1][:80]!r}; load it from "
                            "its bundle instead")
    try:
        return ort.InferenceSession(model if isinstance(model, (bytes, bytearray)) else str(model),
                                    sess_options=session_options(threads, mem_arena), providers=list(providers))
    except Exception as e:  # onnxruntime raises its own exception types (InvalidProtobuf, Fail, ...)
        first = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
        if "MatMulNBits" in str(e) or "not a registered function/op" in str(e):  # an op this build lacks
            raise EdgeError(f"{where}: this onnxruntime ({ort.__version__}) cannot run the graph; int8 "
                            f"bundles need onnxruntime >= 1.22: {first}") from None
        raise EdgeError(f"{where}: cannot load the ONNX graph (truncated or altered file?): {first}") from None


class StepRunner:
    """Stateful runner over one LM/generator step graph.

    ``step(tokens (B, T) int64, state) -> (logits (B, T, V) float32, state)`` with state a tuple
    of (L, B, H) float32 arrays ((h, c) for LSTM, (h,) otherwise), in the graph's order.
    """

    def __init__(self, model: str | os.PathLike | bytes, threads: int = 1,
                 providers: Sequence[str] = PROVIDERS, mem_arena: bool = True):
        self.path = None if isinstance(model, (bytes, bytearray)) else str(model)
        where = self.path or "<bytes>"
        self.session = load_session(model, threads, providers, mem_arena)
        props = dict(self.session.get_modelmeta().custom_metadata_map)
        self.meta = StepMeta.from_props(props, where)
        inputs = {i.name: i for i in self.session.get_inputs()}
        outputs = [o.name for o in self.session.get_outputs()]
        want_in = [TOKENS, H0] + ([C0] if self.meta.num_states == 2 else [])
        want_out = [LOGITS, NEXT_H0] + ([NEXT_C0] if self.meta.num_states == 2 else [])
        if sorted(inputs) != sorted(want_in) or sorted(outputs) != sorted(want_out):
            raise EdgeError(f"{where}: not a step graph for a {self.meta.cell} model: inputs "
                            f"{sorted(inputs)} (want {want_in}), outputs {outputs} (want {want_out})")
        self._check_static_dims(inputs, where)
        self._state_in = want_in[1:]
        self._outputs = want_out
        self.state: State = ()
        self.batch_size = 0
        self.reset(1)

    def _check_static_dims(self, inputs, where: str) -> None:
        # The exporter leaves only B symbolic. L and H must be fixed in the graph and equal the
        # metadata: a symbolic one would let a metadata number alone decide a state allocation.
        L, H = self.meta.num_layers, self.meta.hidden_size
        for name in self._state_names():
            shape = inputs[name].shape
            if len(shape) != 3:
                raise EdgeError(f"{where}: {name} has rank {len(shape)}, want 3 (L, B, H)")
            for dim, want, what in ((shape[0], L, "num_layers"), (shape[2], H, "hidden_size")):
                if not isinstance(dim, int):
                    raise EdgeError(f"{where}: {name} shape {shape} has a symbolic {what} dim; the graph must fix "
                                    f"it to the metadata's {what}={want} (re-export it with `rnnkit export`)")
                if dim != want:
                    raise EdgeError(f"{where}: {name} shape {shape} disagrees with metadata {what}={want}")

    def _state_names(self) -> list[str]:
        return [H0] + ([C0] if self.meta.num_states == 2 else [])

    # ------------------------------------------------------------------ state
    @property
    def vocab_size(self) -> int:
        return self.meta.vocab_size

    def init_state(self, batch_size: int = 1) -> State:
        """Zero state: a tuple of (L, B, H) float32 arrays."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise EdgeError(f"batch_size must be an int >= 1, got {batch_size!r}")
        if int(batch_size) * self.meta.num_layers * self.meta.hidden_size > MAX_STATE_ELEMENTS:
            raise EdgeError(f"batch_size {batch_size} would need a state of more than {MAX_STATE_ELEMENTS:,} floats")
        shape = (self.meta.num_layers, int(batch_size), self.meta.hidden_size)
        return tuple(np.zeros(shape, dtype=np.float32) for _ in range(self.meta.num_states))

    def reset(self, batch_size: int = 1) -> None:
        self.state = self.init_state(batch_size)
        self.batch_size = int(batch_size)

    # ------------------------------------------------------------------ checks
    def check_tokens(self, tokens) -> np.ndarray:
        """(T,) or (B, T) integer ids in [0, V) -> contiguous int64 (B, T)."""
        arr = np.asarray(tokens)
        if arr.dtype == object or not (np.issubdtype(arr.dtype, np.integer) or arr.size == 0):
            raise EdgeError(f"tokens must be integer ids, got dtype {arr.dtype}")
        if arr.ndim == 1:
            arr = arr[None, :]
        if arr.ndim != 2:
            raise EdgeError(f"tokens must have shape (T,) or (B, T), got {arr.shape}")
        if arr.shape[0] < 1 or arr.shape[1] < 1:
            raise EdgeError(f"tokens must hold at least one id per row, got shape {arr.shape}")
        V = self.meta.vocab_size
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi >= V:
            raise EdgeError(f"token ids must be in [0, {V - 1}] (vocab_size {V}), got min {lo} max {hi}")
        return np.ascontiguousarray(arr, dtype=np.int64)

    def check_state(self, state, batch_size: int) -> State:
        want = (self.meta.num_layers, batch_size, self.meta.hidden_size)
        if not isinstance(state, (tuple, list)) or len(state) != self.meta.num_states:
            names = ", ".join(self._state_in)
            raise EdgeError(f"{self.meta.cell} state is a tuple of {self.meta.num_states} array(s) "
                            f"({names}), each {want}")
        out = []
        for name, s in zip(self._state_in, state):
            s = np.asarray(s)
            if s.shape != want:
                raise EdgeError(f"{name} must have shape (L, B, H) = {want}, got {s.shape}")
            out.append(np.ascontiguousarray(s, dtype=np.float32))
        return tuple(out)

    # ------------------------------------------------------------------ running
    def step(self, tokens, state: State | None = None) -> tuple[np.ndarray, State]:
        """Pure step: tokens (B, T), state -> logits (B, T, V) float32, next state."""
        tok = self.check_tokens(tokens)
        st = self.init_state(tok.shape[0]) if state is None else self.check_state(state, tok.shape[0])
        return self.step_unchecked(tok, st)

    def step_unchecked(self, tokens: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        """``step`` without validation, for hot loops whose inputs the caller built itself."""
        feed = {TOKENS: tokens}
        feed.update(zip(self._state_in, state))
        out = self.session.run(self._outputs, feed)
        return out[0], tuple(out[1:])

    def __call__(self, tokens) -> np.ndarray:
        """Stateful: feed tokens (B, T), keep the state; a new batch size starts from zeros."""
        tok = self.check_tokens(tokens)
        if tok.shape[0] != self.batch_size:
            self.reset(tok.shape[0])
        logits, self.state = self.step_unchecked(tok, self.state)
        return logits
