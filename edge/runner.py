"""The one way rnnkit runs an ONNX graph (torch-free: numpy and onnxruntime only).

- ``load_session(path_or_bytes, threads, providers, mem_arena)``: the only place an
  ``onnxruntime.InferenceSession`` is made (options, threads and providers spelled out once).
- ``Runner(graph)``: any rnnkit graph. ``run(**feeds) -> {output name: array}``; its state layout
  (``state_in`` / ``state_out`` names, in order) comes from the graph's ``state_inputs`` /
  ``state_outputs`` metadata and every state shape from the graph itself (only the batch, axis 1,
  is symbolic): ``zero_state(batch)``, ``check_state``. Nothing here branches on the cell.
- ``StepRunner(graph)``: a token step graph, ``tokens[B,T] int64, *state -> logits[B,T,V], *next state``
  (silero-vad ``OnnxWrapper`` style). Every dimension and special id comes from the graph's
  ``metadata_props`` (never from a file name). ``step(tokens, state) -> (logits, state)`` is pure;
  ``__call__(tokens)`` keeps the state inside the runner (``reset(batch)``; a change of batch size
  resets it, as silero-vad's wrapper does).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np

from rnnkit.core.config import check_dims  # torch-free
import rnnkit.core.models.state_layout as layout  # torch-free: the one state table

from . import names

TOKENS, LOGITS = names.TOKENS, names.LOGITS

State = tuple[np.ndarray, ...]
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
        if min(meta.num_layers, meta.hidden_size, meta.vocab_size) < 1:
            raise EdgeError(f"{where}: num_layers, hidden_size and vocab_size must be >= 1, got "
                            f"{meta.num_layers}, {meta.hidden_size}, {meta.vocab_size}")
        try:  # the state is allocated from these numbers: absurd ones are refused, not tried
            check_dims({"num_layers": meta.num_layers, "hidden_size": meta.hidden_size,
                        "vocab_size": meta.vocab_size}, f"{where}: metadata")
        except ValueError as e:
            raise EdgeError(str(e)) from None
        return meta


# A 98-byte graph: four uint8 255s times four int8 127s by MatMulInteger (uint8 activations, zero point
# 128, full-range int8 weights, as bundles made before the weights kept to 64 levels multiply).
# onnxruntime's u8 x s8 kernel on an x86 CPU with AVX2 and no VNNI adds the products in pairs into int16
# and saturates: 65,534 instead of 129,540.
_U8S8_PROBE = (b'\x08\x07:X\n\x18\n\x01a\n\x01w\x12\x01y"\rMatMulInteger\x12\x01p*\x0f\x08\x04\x08\x01\x10\x03B'
               b'\x01wJ\x04\x7f\x7f\x7f\x7fZ\x13\n\x01a\x12\x0e\n\x0c\x08\x02\x12\x08\n\x02\x08\x01\n\x02\x08\x04b'
               b'\x13\n\x01y\x12\x0e\n\x0c\x08\x06\x12\x08\n\x02\x08\x01\n\x02\x08\x01B\x04\n\x00\x10\n')


@lru_cache(maxsize=1)
def int8_products_exact() -> bool:
    """Whether this machine's onnxruntime adds full-range uint8 x int8 products exactly (False: an x86 with
    AVX2 and no VNNI, where graphs with 127-level int8 weights answer differently from other machines;
    graphs whose weights keep to 64 levels, ``int8_options.levels``, answer the same)."""
    s = load_session(_U8S8_PROBE, name="the uint8 x int8 probe")
    return int(s.run(None, {"a": np.full((1, 4), 255, np.uint8)})[0][0, 0]) == 255 * 127 * 4


def session_options(threads: int = 1, mem_arena: bool = True, optimization: str = "all",
                    save_optimized: str | os.PathLike | None = None):
    """One intra-op thread by default: a keystroke is one tiny step, threads only add sync cost.
    ``mem_arena=False``: no onnxruntime CPU arena (a server with many concurrent runs would keep
    the arena at its peak forever; the demo turns it off, a device keeps it). ``optimization``
    "basic" with ``save_optimized`` writes the graph in onnxruntime's ORT format (for mobile)."""
    import onnxruntime as ort

    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
        raise EdgeError(f"threads must be an int >= 0 (0 = onnxruntime's default), got {threads!r}")
    levels = {"all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL, "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC}
    if optimization not in levels:
        raise EdgeError(f"optimization must be one of {', '.join(levels)}, got {optimization!r}")
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = levels[optimization]
    so.log_severity_level = 3  # warnings about unused initializers are noise on a device
    so.enable_cpu_mem_arena = bool(mem_arena)
    if save_optimized is not None:
        so.optimized_model_filepath = str(save_optimized)
        so.add_session_config_entry("session.save_model_format", "ORT")
    return so


def load_session(model: str | os.PathLike | bytes, threads: int = 1, providers: Sequence[str] = PROVIDERS,
                 mem_arena: bool = True, optimization: str = "all", save_optimized: str | os.PathLike | None = None,
                 name: str | None = None):
    """An ``onnxruntime.InferenceSession`` (the only place one is made); a truncated or altered file
    is a clear ``EdgeError``. ``save_optimized``: also write the optimised graph there (ORT format).
    ``name``: the file graph bytes came from, for messages."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    bad = [p for p in providers if p not in available]
    if bad or not providers:
        raise EdgeError(f"execution provider(s) {bad or list(providers)} not available; allowed: {available}")
    where = (name or "<bytes>") if isinstance(model, (bytes, bytearray)) else str(model)
    if not isinstance(model, (bytes, bytearray)) and not os.path.isfile(model):
        raise EdgeError(f"{where}: no such ONNX file")
    if isinstance(model, (bytes, bytearray)):
        # Graph bytes have no directory: onnxruntime would look for external data relative to the
        # working directory. Such a graph is refused (a bundle lists and hashes its data files).
        from rnnkit.edge.onnx_scan import ScanError, scan_onnx

        try:
            external = scan_onnx(model).external
        except ScanError as e:
            raise EdgeError(f"{where}: cannot load the ONNX graph (truncated or altered file?): {e}") from None
        if external:
            raise EdgeError(f"{where}: graph bytes refer to external data {external[0][1][:80]!r}; load it from "
                            "its bundle instead")
    try:
        return ort.InferenceSession(model if isinstance(model, (bytes, bytearray)) else str(model),
                                    sess_options=session_options(threads, mem_arena, optimization, save_optimized),
                                    providers=list(providers))
    except Exception as e:  # onnxruntime raises its own exception types (InvalidProtobuf, Fail, ...)
        first = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
        if "MatMulNBits" in str(e) or "not a registered function/op" in str(e):  # an op this build lacks
            raise EdgeError(f"{where}: this onnxruntime ({ort.__version__}) cannot run the graph; int8 "
                            f"bundles need onnxruntime >= 1.22: {first}") from None
        raise EdgeError(f"{where}: cannot load the ONNX graph (truncated or altered file?): {first}") from None


def zero_state_feeds(session, batch: int) -> dict[str, np.ndarray]:
    """Zeros for every state input of a bare ``onnxruntime`` session (tools that drive sessions
    directly: export checks, benchmarks): the graph's shape, ``batch`` on axis 1."""
    return {i.name: np.zeros([batch if a == layout.BATCH_AXIS else d for a, d in enumerate(i.shape)], np.float32)
            for i in session.get_inputs() if layout.is_state_input(i.name)}


def _shape_text(role: str | None, rank: int) -> str:
    """A state tensor's shape in letters, e.g. (L, B, H) for ``h``, (L, B, N, H) for ``k``."""
    letters = {layout.LAYERS: "L", layout.BATCH: "B", layout.HIDDEN: "H", layout.WINDOW: "N"}
    dims = layout.ROLES[role] if role in layout.ROLES else [layout.BATCH if i == 1 else f"d{i}" for i in range(rank)]
    return "(" + ", ".join(str(letters.get(d, d)) for d in dims) + ")"


def _split(value: str) -> list[str]:
    return [s for s in (value or "").split(",") if s]


class Runner:
    """Any rnnkit graph: ``run(**feeds) -> {output name: array}``, with its state layout.

    ``state_in`` / ``state_out``: the graph's state tensors in order, from its ``state_inputs`` /
    ``state_outputs`` metadata (names by role, core/models/state_layout.py; a graph that makes a
    state, e.g. an encoder, outputs it under the input names). ``state_shapes``: each state input's
    shape with None at the batch (axis 1); every other axis must be fixed in the graph, so that
    no metadata number alone decides an allocation.
    """

    def __init__(self, model: str | os.PathLike | bytes, threads: int = 1,
                 providers: Sequence[str] = PROVIDERS, mem_arena: bool = True, name: str | None = None):
        # name: the file graph bytes came from (a bundle hands out the bytes it verified)
        self.path = (name if isinstance(model, (bytes, bytearray)) else str(model)) or None
        self.where = self.path or "<bytes>"
        self.session = load_session(model, threads, providers, mem_arena, name=self.path)
        self.props: dict[str, str] = dict(self.session.get_modelmeta().custom_metadata_map)
        self.inputs = {i.name: i for i in self.session.get_inputs()}
        self.outputs = [o.name for o in self.session.get_outputs()]
        self.job = self.props.get(names.META_JOB, "")
        if names.META_STATE_INPUTS in self.props or names.META_STATE_OUTPUTS in self.props:
            self.state_in = _split(self.props.get(names.META_STATE_INPUTS, ""))
            self.state_out = _split(self.props.get(names.META_STATE_OUTPUTS, ""))
        else:  # a graph without rnnkit metadata: its state tensors by name
            self.state_in = [n for n in self.inputs if layout.is_state_input(n)]
            self.state_out = [n for n in self.outputs if layout.role_of(n) is not None]
        bad_in = [n for n in self.state_in if n not in self.inputs]
        bad_out = [n for n in self.state_out if n not in self.outputs]
        if bad_in or bad_out:
            raise EdgeError(f"{self.where}: metadata names state tensor(s) {bad_in + bad_out} the graph does not have "
                            f"(inputs {sorted(self.inputs)}, outputs {self.outputs})")
        if self.state_in and self.state_out and self.state_out != ["next_" + n for n in self.state_in]:
            raise EdgeError(f"{self.where}: state outputs {self.state_out} do not match state inputs {self.state_in} "
                            "(each input x must have an output next_x, in the same order)")
        self.state_shapes = {n: self._static_shape(n) for n in self.state_in}

    def _static_shape(self, name: str) -> tuple[int | None, ...]:
        shape = list(self.inputs[name].shape)
        role = layout.role_of(name)
        if role in layout.ROLES and len(shape) != len(layout.ROLES[role]):
            raise EdgeError(f"{self.where}: {name} has rank {len(shape)}, want {len(layout.ROLES[role])} "
                            f"{_shape_text(role, len(shape))}")
        if len(shape) < 2:
            raise EdgeError(f"{self.where}: state input {name} has rank {len(shape)}; the batch is axis 1")
        dims = layout.ROLES.get(role, ())
        out: list[int | None] = []
        for axis, dim in enumerate(shape):
            if axis == layout.BATCH_AXIS:
                out.append(None)
                continue
            what = layout.SIZE_META.get(dims[axis], f"axis-{axis}") if axis < len(dims) else f"axis-{axis}"
            if not isinstance(dim, int):
                raise EdgeError(f"{self.where}: {name} shape {shape} has a symbolic {what} dim; the graph must fix it "
                                f"(re-export it with `rnnkit export`)")
            if dim < 1:
                raise EdgeError(f"{self.where}: {name} shape {shape} has a {what} dim < 1")
            out.append(dim)
        if int(np.prod([d for d in out if d is not None], dtype=np.float64)) > MAX_STATE_ELEMENTS:
            raise EdgeError(f"{self.where}: state input {name} shape {shape} is out of bounds "
                            f"(more than {MAX_STATE_ELEMENTS:,} floats a row)")
        return tuple(out)

    def int_meta(self, key: str, default: int = -1) -> int:
        try:
            return int(self.props.get(key, default))
        except ValueError:
            return default

    # ------------------------------------------------------------------ state
    def zero_state(self, batch_size: int = 1) -> State:
        """Zeros for every state input, each of the graph's shape with ``batch_size`` at axis 1."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise EdgeError(f"batch_size must be an int >= 1, got {batch_size!r}")
        out = []
        for name in self.state_in:
            shape = tuple(int(batch_size) if d is None else d for d in self.state_shapes[name])
            if int(np.prod(shape, dtype=np.float64)) > MAX_STATE_ELEMENTS:
                raise EdgeError(f"batch_size {batch_size} would need a state of more than {MAX_STATE_ELEMENTS:,} floats")
            out.append(np.zeros(shape, dtype=np.float32))
        return tuple(out)

    def check_state(self, state, batch_size: int) -> State:
        """``state`` as contiguous float32 arrays of the graph's shapes, or a one-line ``EdgeError``."""
        want = {n: tuple(batch_size if d is None else d for d in self.state_shapes[n]) for n in self.state_in}
        if not isinstance(state, (tuple, list)) or len(state) != len(self.state_in):
            parts = ", ".join(f"{n} {want[n]}" for n in self.state_in)
            raise EdgeError(f"this graph's state is a tuple of {len(self.state_in)} array(s): {parts}")
        out = []
        for name, s in zip(self.state_in, state):
            s = np.asarray(s)
            if s.shape != want[name]:
                role = layout.role_of(name)
                raise EdgeError(f"{name} must have shape {_shape_text(role, len(want[name]))} = {want[name]}, "
                                f"got {s.shape}")
            if s.dtype.kind not in "fiu":
                raise EdgeError(f"{name} must hold real numbers (float32), got dtype {s.dtype}")
            s = np.ascontiguousarray(s, dtype=np.float32)
            if not np.isfinite(s).all():  # (a NaN h would index the int8 gate tables out of range)
                raise EdgeError(f"{name} holds NaN or inf: start again from init_state()")
            if layout.role_of(name) == "len" and ((s < 0).any() or (s != np.round(s)).any()):
                raise EdgeError(f"{name} counts the tokens read so far: whole numbers >= 0, got {s.ravel()[:4]}")
            out.append(s)
        return tuple(out)

    # ------------------------------------------------------------------ running
    def run(self, **feeds: np.ndarray) -> dict[str, np.ndarray]:
        """Every input by name (extra names are ignored) -> {output name: array}."""
        missing = set(self.inputs) - set(feeds)
        if missing:
            raise EdgeError(f"{self.job or self.where} graph needs inputs {sorted(missing)} rnnkit does not know")
        values = self.session.run(None, {k: v for k, v in feeds.items() if k in self.inputs})
        return dict(zip(self.outputs, values))


class StepRunner(Runner):
    """Stateful runner over one token step graph (LM / one-to-many ``step``).

    ``step(tokens (B, T) int64, state) -> (logits (B, T, V) float32, state)`` with state a tuple of
    float32 arrays in the graph's order (``state_in``): (h, c) for an LSTM, (h,) for a GRU, a
    Transformer's cache... the graph says which.
    """

    def __init__(self, model: str | os.PathLike | bytes, threads: int = 1,
                 providers: Sequence[str] = PROVIDERS, mem_arena: bool = True, name: str | None = None):
        super().__init__(model, threads, providers, mem_arena, name)
        self.meta = StepMeta.from_props(self.props, self.where)
        want_in, want_out = [TOKENS, *self.state_in], [LOGITS, *self.state_out]
        if (not self.state_in or sorted(self.inputs) != sorted(want_in)
                or sorted(self.outputs) != sorted(want_out)):
            raise EdgeError(f"{self.where}: not a token step graph: inputs {sorted(self.inputs)} (want tokens and the "
                            f"state {self.state_in or '(none listed)'}), outputs {self.outputs} (want {want_out})")
        self._check_sizes()
        self._outputs = want_out
        self.state: State = ()
        self.batch_size = 0
        self.reset(1)

    def _check_sizes(self) -> None:
        # A state axis the table names (layers, hidden, window) must equal the metadata's figure.
        sizes = {layout.LAYERS: self.meta.num_layers, layout.HIDDEN: self.meta.hidden_size}
        if self.props.get(layout.SIZE_META[layout.WINDOW], "").isdigit():
            sizes[layout.WINDOW] = int(self.props[layout.SIZE_META[layout.WINDOW]])
        for name in self.state_in:
            shape = self.state_shapes[name]
            for dim, symbol in zip(shape, layout.ROLES.get(layout.role_of(name), ())):
                if symbol in sizes and dim != sizes[symbol]:
                    what = layout.SIZE_META[symbol]
                    raise EdgeError(f"{self.where}: {name} shape {list(self.inputs[name].shape)} disagrees with "
                                    f"metadata {what}={sizes[symbol]}")

    # ------------------------------------------------------------------ state
    @property
    def vocab_size(self) -> int:
        return self.meta.vocab_size

    def init_state(self, batch_size: int = 1) -> State:
        """Zero state: a tuple of float32 arrays, the batch on axis 1."""
        return self.zero_state(batch_size)

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

    # ------------------------------------------------------------------ running
    def step(self, tokens, state: State | None = None) -> tuple[np.ndarray, State]:
        """Pure step: tokens (B, T), state -> logits (B, T, V) float32, next state."""
        tok = self.check_tokens(tokens)
        st = self.init_state(tok.shape[0]) if state is None else self.check_state(state, tok.shape[0])
        return self.step_unchecked(tok, st)

    def step_unchecked(self, tokens: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        """``step`` without validation, for hot loops whose inputs the caller built itself."""
        feed = {TOKENS: tokens}
        feed.update(zip(self.state_in, state))
        out = self.session.run(self._outputs, feed)
        return out[0], tuple(out[1:])

    def __call__(self, tokens) -> np.ndarray:
        """Stateful: feed tokens (B, T), keep the state; a new batch size starts from zeros."""
        tok = self.check_tokens(tokens)
        if tok.shape[0] != self.batch_size:
            self.reset(tok.shape[0])
        logits, self.state = self.step_unchecked(tok, self.state)
        return logits
