"""Row-wise int8: one answer however the input is chunked or batched, on every onnxruntime.

Why not ``quantize_dynamic``: ``DynamicQuantizeLSTM`` / ``DynamicQuantizeMatMul`` choose one
activation scale per *call*, so a token's logits depend on which other tokens shared its call
(one-shot vs stepped rollout of suggest-en differed by 0.23 in the logits); and the
``MatMulNBits`` head (accuracy level 4) rounds activations to int8 only where the CPU has dot
products, so x86, WebAssembly and ARM disagree (0.071).

This scheme uses standard ONNX ops only (nothing from com.microsoft):

- weights: int8 within 64 levels (``W_DIGIT``: no x86 CPU saturates the products), symmetric, one scale
  per output channel (an LSTM's gate row, a MatMul's column);
  an embedding table one scale (per row when it is tied to the output layer, which then reads its
  transpose: stored once, folded by onnxruntime at load);
- activations: quantised per *row* (each token of each batch element on its own): s = max|row| / 127,
  q = floor(x / s + 128.5) as uint8 (IEEE float32 Div / Mul / Add and a truncating Cast: the same bits on
  every runtime), then ``MatMulInteger`` (uint8 - 128 x int8: exact int32 sums on every CPU, prepacked
  GEMM) and y = acc * w_scale / (1 / s). Rows of an int8 embedding go into the LSTM's input projection as
  they are;
- the LSTM is written out as an input projection over all time steps and a ``Scan`` over time (axis 1 of
  the batch-major tensors the exporter has around it: no Transpose) whose body does ``h @ R`` the same way,
  then the gates in float32, tanh / sigmoid by table lookup (``GatherElements``).

So a row's result depends on that row alone: one-shot and stepped rollouts, batch 1 and batch 8 give
the same numbers (bit for bit), and so do runtimes: every op of the recurrence is exact IEEE float32 or
integer arithmetic, the same on x86, ARM and WebAssembly (what may still differ: an fp32 MatMul left
in the graph, e.g. attention, by float32 rounding).
The weights are int8, so a one-token step streams a quarter of the fp32 bytes.

``quantize_rowwise(model)`` rewrites an fp32 ONNX model exported by ``onnx_export`` in place:
``LSTM`` (forward, one direction, no sequence_lens / peepholes / clip), ``MatMul`` and ``Gemm`` with a
constant 2-D weight, ``Gather`` from a constant 2-D table. Other ops (GRU / RNN cells, attention
MatMuls between activations) stay fp32.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .onnx_graphs import all_graphs, subgraphs_of

# Levels of the two operands of every MatMulInteger. Why not 127 on both sides: onnxruntime's uint8 x int8
# GEMM on x86 without VNNI (AVX2, AVX-512BW) adds pairs of products in int16 with saturation
# (vpmaddubsw): 255 * 127 * 2 = 64,770 > 32,767, and such a CPU then answers differently from VNNI, ARM
# and WebAssembly (char-shakespeare's logits by up to 7.8, the translator's Bible BLEU 16.7 instead of
# 20.8, measured on an AMD EPYC with AVX2). With one side at 7 bits every pair fits int16:
# 255 * 64 * 2 = 32,640 (weights at 64 levels; activations at 63 would do too: 127 * 127 * 2 = 32,258).
# The weights take the cut, as onnxruntime's own ``reduce_range`` does (activations are quantised per row at
# run time; the weights' error is fixed once): on a char-shakespeare run, top-1 agreement with fp32 98.9 %
# instead of 99.3 %, perplexity +0.015 % instead of +0.024 % (bench/int8_levels.py).
# ``edge.runner.int8_products_exact`` probes a runtime for this; export/narrow.py narrows older graphs.
A_DIGIT = 127.0      # activations (and the rows of an untied table): |hi| <= A_DIGIT, uint8 = hi + ZERO
W_DIGIT = 64.0       # weights (and a table tied to an output layer): |q| <= W_DIGIT
# Activation digits: 1 = one int8 per value. 2 = a second int8 digit for the rounding residue
# (x/s = hi + lo/254, ~15 bits): a last-bit difference in x then moves the result by at most s/254, not s.
# A MatMul whose input is exact (the same bits on every runtime: see ``_inexact``) gets 1 digit; one fed by
# an op that is not (an fp32 MatMul between activations, Softmax, Exp, ...: seq2seq attention) gets 2, so
# runtimes stay within ~1e-4 there (1 digit: 1.2e-2 on translate-en-de's decoder, WebAssembly vs x86).
# Measured on suggest-en with 2 digits everywhere: +25 % native, +65 % WebAssembly, perplexity the same.
DIGITS = 1
# Ops whose float32 results are the same bits on every runtime (IEEE basic arithmetic, data movement,
# comparisons, integer ops). Anything else (MatMul / Gemm left fp32, Softmax, Exp, Tanh, ReduceSum, ...) may
# differ in the last bits between x86, ARM and WebAssembly.
EXACT_OPS = {"Add", "Sub", "Mul", "Div", "Neg", "Abs", "Max", "Min", "Clip", "Relu", "Round", "Floor", "Ceil",
             "Sqrt", "Sign", "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Concat", "Split", "Slice", "Gather",
             "GatherElements", "Expand", "Tile", "Where", "Cast", "Identity", "Shape", "Size", "Equal", "Less",
             "Greater", "LessOrEqual", "GreaterOrEqual", "Not", "And", "Or", "Xor", "ConstantOfShape", "Constant",
             "Range", "ReduceMax", "ReduceMin", "Pad", "Flatten", "Dropout", "If", "Mod", "MatMulInteger",
             "Scan", "ArgMax", "ArgMin", "TopK", "CumSum", "NonZero", "OneHot", "ScatterElements", "ScatterND",
             "GatherND", "Trilu"}
# LSTM gate activations (``activation=``): "table" (target portable, default): tanh / sigmoid by lookup in a
# tanh table (TANH_STEPS points per unit on [-TANH_MAX, TANH_MAX], 6 KB; the nearest point: error <= 3.9e-3,
# perplexity vs the fp32 graph +0.04 % on suggest-en, +0.01 % on char-shakespeare; 1024 points per unit, a
# 64 KB table: +0.03 % / +0.005 %): bit-exact on every runtime. "ort" (target native): onnxruntime's
# Tanh / Sigmoid, which differ in the last bits between x86, ARM and WebAssembly; a last bit can flip the
# rounding of an int8 activation and the state then drifts apart (char-shakespeare, 600 characters: 4e-2 in
# the logits, Python vs WebAssembly).
# The lookup: the gate pre-activations are scaled to table units by powers of two folded into the weight
# scales and the bias (exact), with the table offset in the bias too, so a gate lookup is Clip, Cast,
# GatherElements; ``GatherElements`` on the flattened indices because onnxruntime's ``Gather`` of single
# floats is slow (2,560 values: +11 us native, +25 us in WebAssembly over a plain copy; GatherElements +2 us).
# Tried and not taken (suggest-en, side by side): h (|h| <= 1) quantised with one fixed scale 1 / 127 instead
# of its row's max (10 nodes fewer per step): 0.98-1.02x the step time, perplexity +0.05 % instead of +0.01 %.
ACTIVATIONS = ("table", "ort")
TANH_STEPS, TANH_MAX = 128, 6
ZERO = int(A_DIGIT) + 1   # int8 activations travel as uint8 + ZERO (a_zero_point), in [1, 2 A_DIGIT + 1]
TINY = 1e-12         # a row of zeros gets this max (no division by zero; results stay 0)
SCHEME = "rowwise-int8"


def _q_weight(w: np.ndarray, axis: int, digit: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 of ``w`` (|q| <= ``digit``, default ``W_DIGIT``) with one scale per index of ``axis``
    (the output channel)."""
    digit = digit or W_DIGIT
    w = np.asarray(w, np.float32)
    other = tuple(i for i in range(w.ndim) if i != axis)
    m = np.abs(w).max(axis=other, keepdims=True)
    s = np.where(m > 0, m / digit, 1.0).astype(np.float32)
    q = np.clip(np.rint(w / s), -digit, digit).astype(np.int8)
    return q, s.reshape(-1).astype(np.float32)


def dequant_weight(q: np.ndarray, s: np.ndarray, axis: int) -> np.ndarray:
    shape = [1] * q.ndim
    shape[axis] = -1
    return q.astype(np.float32) * s.reshape(shape)


class _Builder:
    """Collects the nodes / initializers of the rewritten graph, with unique names."""

    def __init__(self, model):
        from onnx import numpy_helper

        self.model = model
        self.graph = model.graph
        self.inits = {t.name: numpy_helper.to_array(t) for t in self.graph.initializer}
        self.new_inits: dict[str, np.ndarray] = {}
        self.count = 0
        self.consts: dict[tuple, str] = {}
        self.consts_named: dict[str, str] = {}
        self.pre: list = []   # nodes that go first in the main graph (constants computed at load)
        self.names = {n for node in self.graph.node for n in list(node.input) + list(node.output)}
        self.names |= set(self.inits)
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
        if self.opset < 13:
            raise ValueError(f"row-wise int8 needs opset >= 13 (Split / Squeeze with inputs), the graph has {self.opset}")

    def fresh(self, base: str) -> str:
        while True:
            self.count += 1
            name = f"r{self.count}"   # short: a shipped graph repeats each name in every node that reads it
            if name not in self.names:
                self.names.add(name)
                return name

    def init(self, base: str, value: np.ndarray) -> str:
        name = self.fresh(base)
        self.new_inits[name] = np.asarray(value)
        return name

    def const(self, value, dtype) -> str:
        """A shared scalar / small constant: an initializer, or for int64 (axes, shapes) a Constant node, which
        stays inline when a graph's initializers are moved to external data (shape inference must read it)."""
        from onnx import helper, numpy_helper

        arr = np.asarray(value, dtype)
        key = (arr.dtype.str, arr.shape, arr.tobytes())
        if key not in self.consts:
            if arr.dtype == np.int64:
                name = self.fresh("k")
                self.pre.append(helper.make_node("Constant", [], [name], value=numpy_helper.from_array(arr)))
                self.consts[key] = name
            else:
                self.consts[key] = self.init("c", arr)
        return self.consts[key]


def _node(nodes: list, b: _Builder, op: str, inputs: list[str], n_out: int = 1, outputs=None, **attrs):
    from onnx import helper

    outs = outputs or [b.fresh(op.lower()) for _ in range(n_out)]
    nodes.append(helper.make_node(op, inputs, outs, **attrs))   # unnamed: bytes matter in a shipped file
    return outs[0] if n_out == 1 else outs


def rowwise_matmul(nodes: list, b: _Builder, x: str, wq: str, ws: str, out: str | None = None,
                   digits: int | None = None) -> str:
    """``x[..., K] @ W[K, N]`` with int8 ``W`` (``wq``, per-column scales ``ws`` [N]) and ``x``
    quantised per row in two int8 digits. Appends the nodes; returns the output name.

    s = max|row| / A, u = x / s, hi = round(u), lo = round((u - hi) * 2A): x = s (hi + lo / 2A)
    to 1 / 2A^2 of the row's largest value (A = ``A_DIGIT``). hi and lo rows are stacked on axis 0 and go through one
    MatMulInteger (exact int32 sums): y = (acc_hi + acc_lo / 2A) * w_scale * s.
    """
    from onnx import TensorProto

    f = np.float32
    absx = _node(nodes, b, "Abs", [x])
    rmax = (_node(nodes, b, "ReduceMax", [absx, b.const([-1], np.int64)], keepdims=1) if b.opset >= 18 else
            _node(nodes, b, "ReduceMax", [absx], axes=[-1], keepdims=1))
    m = _node(nodes, b, "Max", [rmax, b.const(TINY, f)])
    inv = _node(nodes, b, "Div", [b.const(A_DIGIT, f), m])          # 1 / s
    u = _node(nodes, b, "Mul", [x, inv])
    zp = b.const(ZERO, np.uint8)
    if (digits or DIGITS) == 1:
        # round(u) + ZERO as floor(u + ZERO + 0.5): Cast to uint8 truncates, and u + ZERO + 0.5 >= 1.5
        # (ties round up instead of to even: one node less, the same bits on every runtime)
        q = _node(nodes, b, "Cast", [_node(nodes, b, "Add", [u, b.const(ZERO + 0.5, f)])], to=TensorProto.UINT8)
        acc = _node(nodes, b, "MatMulInteger", [q, wq, zp])
        return _node(nodes, b, "Div", [_dequant(nodes, b, acc, ws), inv], outputs=[out] if out else None)
    hi = _node(nodes, b, "Round", [u])
    lo = _node(nodes, b, "Round", [_node(nodes, b, "Mul", [_node(nodes, b, "Sub", [u, hi]), b.const(2 * A_DIGIT, f)])])
    # uint8 with zero point ZERO: onnxruntime's fast (prepacked) integer GEMM is u8 x s8
    q = _node(nodes, b, "Cast", [_node(nodes, b, "Add", [_node(nodes, b, "Concat", [hi, lo], axis=0), b.const(ZERO, f)])],
              to=TensorProto.UINT8)
    acc = _node(nodes, b, "Cast", [_node(nodes, b, "MatMulInteger", [q, wq, zp])], to=TensorProto.FLOAT)
    a_hi, a_lo = _node(nodes, b, "Split", [acc], n_out=2, axis=0)
    v = _node(nodes, b, "Add", [a_hi, _node(nodes, b, "Mul", [a_lo, b.const(1.0 / (2 * A_DIGIT), f)])])
    return _node(nodes, b, "Div", [_node(nodes, b, "Mul", [v, ws]), inv], outputs=[out] if out else None)


def _reduce_max_abs(nodes: list, b: _Builder, x: str, axis: int) -> str:
    absx = _node(nodes, b, "Abs", [x])
    r = (_node(nodes, b, "ReduceMax", [absx, b.const([axis], np.int64)], keepdims=1) if b.opset >= 18 else
         _node(nodes, b, "ReduceMax", [absx], axes=[axis], keepdims=1))
    return _node(nodes, b, "Max", [r, b.const(TINY, np.float32)])


def act_matmul(nodes: list, b: _Builder, a: str, w: str, a_digits: int, w_digits: int, out: str) -> str:
    """``a[..., M, K] @ w[..., K, N]`` between two activations (attention): ``a`` quantised per row, ``w`` per
    column, each in 1 or 2 int8 digits (2 for an operand that may differ in its last bits between runtimes),
    one exact MatMulInteger. Every row of the result depends on that row of ``a`` and on ``w`` alone."""
    from onnx import TensorProto

    f = np.float32
    inv_a = _node(nodes, b, "Div", [b.const(A_DIGIT, f), _reduce_max_abs(nodes, b, a, -1)])   # [..., M, 1]
    inv_w = _node(nodes, b, "Div", [b.const(W_DIGIT, f), _reduce_max_abs(nodes, b, w, -2)])   # [..., 1, N]

    def digits(x, inv, n, axis, base):
        u = _node(nodes, b, "Mul", [x, inv])
        hi = _node(nodes, b, "Round", [u])
        if n == 1:
            return hi
        lo = _node(nodes, b, "Round", [_node(nodes, b, "Mul", [_node(nodes, b, "Sub", [u, hi]), b.const(base, f)])])
        return _node(nodes, b, "Concat", [hi, lo], axis=axis)

    qa = _node(nodes, b, "Cast", [_node(nodes, b, "Add", [digits(a, inv_a, a_digits, -2, 2 * A_DIGIT),
                                                          b.const(ZERO, f)])], to=TensorProto.UINT8)
    qw = _node(nodes, b, "Cast", [digits(w, inv_w, w_digits, -1, 2 * W_DIGIT)], to=TensorProto.INT8)
    acc = _node(nodes, b, "Cast", [_node(nodes, b, "MatMulInteger", [qa, qw, b.const(ZERO, np.uint8)])],
                to=TensorProto.FLOAT)
    if a_digits == 2 or w_digits == 2:
        hi, lo = _node(nodes, b, "Split", [acc], n_out=2, axis=-2 if a_digits == 2 else -1)
        base = 2 * A_DIGIT if a_digits == 2 else 2 * W_DIGIT
        acc = _node(nodes, b, "Add", [hi, _node(nodes, b, "Mul", [lo, b.const(1.0 / base, f)])])
    return _node(nodes, b, "Div", [_node(nodes, b, "Div", [acc, inv_a]), inv_w], outputs=[out])


def int8_rows_matmul(nodes: list, b: _Builder, xq: str, xs: str, wq: str, ws: str, out: str | None = None) -> str:
    """``x @ W`` where x = xq * xs is already int8 (rows of an int8 embedding table, scale ``xs``
    scalar or per row): exact, no activation rounding at all."""
    acc = _node(nodes, b, "MatMulInteger", [xq, wq, b.const(ZERO, np.uint8)])
    return _node(nodes, b, "Mul", [_dequant(nodes, b, acc, ws), xs], outputs=[out] if out else None)


def _dequant(nodes: list, b: _Builder, acc: str, ws: str) -> str:
    """float(acc) * ws (int32 sums, ws per column [N]). (A DequantizeLinear of the int32 sums with a per-axis
    scale is one node less and the same bits, but measured no faster, native or WebAssembly.)"""
    from onnx import TensorProto

    return _node(nodes, b, "Mul", [_node(nodes, b, "Cast", [acc], to=TensorProto.FLOAT), ws])


def _gate_vectors(b: _Builder, H: int) -> tuple[str, str]:
    """[0.5] * 3H + [1] * H and [0.5] * 3H + [0] * H (sigmoid(x) = 0.5 + 0.5 tanh(x / 2) for the i, o, f
    gates, tanh for c): built from scalars by nodes onnxruntime folds at load (no bytes in the file)."""
    key = f"gates{H}"
    if key not in b.consts_named:
        from onnx import TensorProto, helper

        def vec(parts):
            pieces = [_node(b.pre, b, "ConstantOfShape", [b.const([n], np.int64)],
                            value=helper.make_tensor("v", TensorProto.FLOAT, [1], [float(v)])) for n, v in parts]
            return _node(b.pre, b, "Concat", pieces, axis=0)

        b.consts_named[key] = (vec([(3 * H, 0.5), (H, 1.0)]), vec([(3 * H, 0.5), (H, 0.0)]))
    return b.consts_named[key]


TANH_LIM = TANH_STEPS * TANH_MAX          # the table holds tanh(j / TANH_STEPS - TANH_MAX), j = 0 .. 2 TANH_LIM


def _tanh_table(b: _Builder) -> str:
    if "tanh_table" not in b.consts_named:
        j = np.arange(2 * TANH_LIM + 1, dtype=np.float64)
        b.consts_named["tanh_table"] = b.init("tanh_table", np.tanh((j - TANH_LIM) / TANH_STEPS).astype(np.float32))
    return b.consts_named["tanh_table"]


def _lookup(nodes: list, b: _Builder, pos: str, shape: list[int] | None) -> str:
    """The table at floor(pos), ``pos`` already in [0, 2 TANH_LIM] (Cast to int32 truncates). ``shape``: the
    result's shape (one -1), looked up flat with ``GatherElements`` (onnxruntime's ``Gather`` of single
    floats costs ~4x more: 11 us for 2,560 values natively, 25 us in WebAssembly); None: any shape, ``Gather``."""
    idx = _node(nodes, b, "Cast", [pos], to=6)   # int32
    if shape is None:
        return _node(nodes, b, "Gather", [_tanh_table(b), idx], axis=0)
    flat = _node(nodes, b, "Reshape", [idx, b.const([-1], np.int64)])
    t = _node(nodes, b, "GatherElements", [_tanh_table(b), flat], axis=0)
    return _node(nodes, b, "Reshape", [t, b.const(shape, np.int64)])


def _table_tanh(nodes: list, b: _Builder, x: str, scale: float = 1.0, shape: list[int] | None = None) -> str:
    """tanh(x * scale) by table lookup: the nearest of TANH_STEPS points per unit on [-TANH_MAX, TANH_MAX].
    IEEE float32 Mul / Add / Clip and an integer lookup: the same bits on every runtime (onnxruntime's own
    Tanh / Sigmoid differ in the last bits between x86, ARM and WebAssembly, and a last bit can flip
    the rounding of an int8 activation)."""
    f = np.float32
    y = _node(nodes, b, "Add", [_node(nodes, b, "Mul", [x, b.const(scale * TANH_STEPS, f)]), b.const(TANH_LIM + 0.5, f)])
    pos = _node(nodes, b, "Clip", [y, b.const(0.0, f), b.const(2 * TANH_LIM, f)])
    return _lookup(nodes, b, pos, shape)


def _weight(b: _Builder, key: str, w: np.ndarray, axis: int, cache: dict) -> tuple[str, str]:
    """(int8 name, scale name) of a weight, quantised once per distinct array."""
    if key not in cache:
        q, s = _q_weight(w, axis)
        cache[key] = (b.init("w_q", q), b.init("w_s", s))
    return cache[key]


def _table(b: _Builder, key: str, table: np.ndarray, cache: dict, per_row: bool) -> tuple[str, str]:
    """(int8 table, scale) of a Gather table: scales [V, 1] per row, or one scalar."""
    k = (key, "table")
    if k not in cache:
        if per_row:   # its rows feed MatMulInteger as activations, its transpose as the output layer's weight
            q, s = _q_weight(table, 0, min(A_DIGIT, W_DIGIT))
            s = s.reshape(-1, 1)
        else:
            m = float(np.abs(table).max())
            s = np.float32(m / A_DIGIT if m > 0 else 1.0)
            q = np.clip(np.rint(table / s), -A_DIGIT, A_DIGIT).astype(np.int8)
        # stored as uint8 = q + ZERO: its rows feed MatMulInteger directly (a_zero_point ZERO)
        cache[k] = (b.init("table_q", (q.astype(np.int16) + ZERO).astype(np.uint8)), b.init("table_s", np.asarray(s, np.float32)))
    return cache[k]


def _attr(node, name, default=None):
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _lstm_supported(node, b: _Builder) -> str | None:
    """None if the LSTM node can be rewritten, else why not."""
    ins = list(node.input) + [""] * (8 - len(node.input))
    if ins[1] not in b.inits or ins[2] not in b.inits or (ins[3] and ins[3] not in b.inits):
        return "weights are not constant"
    if ins[4] or ins[7]:
        return "sequence_lens / peepholes"
    direction = _attr(node, "direction", b"forward")
    direction = direction.decode() if isinstance(direction, bytes) else direction
    if direction != "forward":
        return f"direction {direction}"
    if _attr(node, "clip") is not None or _attr(node, "input_forget", 0):
        return "clip / input_forget"
    acts = [a.decode() if isinstance(a, bytes) else a for a in (_attr(node, "activations") or [])]
    if acts and [a.lower() for a in acts] != ["sigmoid", "tanh", "tanh"]:
        return f"activations {acts}"
    if _attr(node, "layout", 0):
        return "layout 1"
    return None


def _rewrite_lstm(node, b: _Builder, nodes: list, cache: dict, x_int8: tuple[str, str] | None = None,
                  activation: str = "table", digits: int | None = None, x_in: tuple[str, int] | None = None,
                  y_axis: int = 0) -> str:
    """Appends the Scan that replaces ``node``. ``x_in``: (the input, its time axis): the LSTM's own input
    (time-major, axis 0) or a batch-major view of it (axis 1: the Scan reads time steps along axis 1, no
    Transpose); ``x_int8`` rows of an int8 table in that same layout. ``y_axis``: the time axis of the
    sequence output the Scan writes (returned; the LSTM's Y output [T, 1, B, H] is written only when
    ``y_axis`` is 0 and the graph reads it)."""
    from onnx import TensorProto, helper

    f = np.float32
    ins = list(node.input) + [""] * (8 - len(node.input))
    outs = list(node.output) + [""] * (3 - len(node.output))
    x_name, axis = x_in or (ins[0], 0)
    W, R = b.inits[ins[1]][0], b.inits[ins[2]][0]          # [4H, I], [4H, H]
    H = R.shape[1]
    bias = b.inits[ins[3]][0] if ins[3] else np.zeros(8 * H, f)
    bias = (bias[:4 * H] + bias[4 * H:]).astype(f)
    wq, ws = _weight(b, ins[1] + "/T", W.T, 1, cache)       # [I, 4H], scales per gate row
    rq, rs = _weight(b, ins[2] + "/T", R.T, 1, cache)       # [H, 4H]
    if activation == "table":
        # The gates go straight to the table: pre-activations times TANH_STEPS (i, o, f: times TANH_STEPS / 2,
        # sigmoid(x) = 0.5 + 0.5 tanh(x / 2)) are powers of two folded into the weight scales and the bias
        # (exact: scaling by 2^k commutes with float rounding), and the table offset TANH_LIM + 1/2 goes into
        # the bias: the table index is floor(x W + h R + bias), clipped.
        k = np.concatenate([np.full(3 * H, 0.5 * TANH_STEPS), np.full(H, float(TANH_STEPS))]).astype(f)
        ws = b.init("w_s", b.new_inits[ws] * k)
        rs = b.init("w_s", b.new_inits[rs] * k)
        bias = (bias * k + f(TANH_LIM + 0.5)).astype(f)
    bname = b.init("lstm_b", bias)
    zero = b.const([0], np.int64)

    # input projection of every time step at once: [T, B, 4H] (axis 0) or [B, T, 4H] (axis 1)
    if x_int8:   # the input is rows of an int8 table: exact
        xw = _node(nodes, b, "Add", [int8_rows_matmul(nodes, b, x_int8[0], x_int8[1], wq, ws), bname])
    else:
        xw = _node(nodes, b, "Add", [rowwise_matmul(nodes, b, x_name, wq, ws, digits=digits), bname])

    # The Scan carries h and c as the LSTM's initial_h / initial_c are shaped, [1, B, H] (one direction): no
    # Squeeze in, no Unsqueeze out; the cell broadcasts them with its [B, ...] gate rows.
    def initial(name: str) -> str:
        if name:
            return name
        shape = _node(nodes, b, "Shape", [x_name])
        batch = _node(nodes, b, "Slice", [shape, b.const([1 - axis], np.int64), b.const([2 - axis], np.int64)])
        dims = _node(nodes, b, "Concat", [b.const([1], np.int64), batch, b.const([H], np.int64)], axis=0)
        return _node(nodes, b, "ConstantOfShape", [dims], value=helper.make_tensor("z", TensorProto.FLOAT, [1], [0.0]))

    h0, c0 = initial(ins[5]), initial(ins[6])

    vi = lambda n, shape: helper.make_tensor_value_info(n, TensorProto.FLOAT, shape)  # noqa: E731

    def cell(body: list, h_in: str, c_in: str, x_t: str) -> tuple[str, str]:
        g = _node(body, b, "Add", [x_t, rowwise_matmul(body, b, h_in, rq, rs, digits=digits)])
        if activation == "table":
            a, off = _gate_vectors(b, H)
            pos = _node(body, b, "Clip", [g, b.const(0.0, f), b.const(2 * TANH_LIM, f)])
            act = _node(body, b, "Add", [_node(body, b, "Mul", [_lookup(body, b, pos, [-1, 4 * H]), a]), off])
            i, o, fg, gc = _node(body, b, "Split", [act], n_out=4, axis=-1)   # ONNX gate order i, o, f, c
            c_new = _node(body, b, "Add", [_node(body, b, "Mul", [fg, c_in]), _node(body, b, "Mul", [i, gc])])
            h_new = _node(body, b, "Mul", [o, _table_tanh(body, b, c_new, shape=[1, -1, H])])
            return h_new, c_new
        gi, go, gf, gc = _node(body, b, "Split", [g], n_out=4, axis=-1)   # ONNX gate order i, o, f, c
        i, o, fg = (_node(body, b, "Sigmoid", [t]) for t in (gi, go, gf))
        c_new = _node(body, b, "Add", [_node(body, b, "Mul", [fg, c_in]),
                                       _node(body, b, "Mul", [i, _node(body, b, "Tanh", [gc])])])
        h_new = _node(body, b, "Mul", [o, _node(body, b, "Tanh", [c_new])])
        return h_new, c_new

    # Scan body: (h, c, xw_t) -> (h', c', h'[0])
    body: list = []
    h_in, c_in, x_t = b.fresh("h"), b.fresh("c"), b.fresh("xw_t")
    h_out, c_out = cell(body, h_in, c_in, x_t)
    y_out = _node(body, b, "Squeeze", [h_out, zero])
    graph = helper.make_graph(body, b.fresh("lstm_body"),
                              [vi(h_in, [1, "B", H]), vi(c_in, [1, "B", H]), vi(x_t, ["B", 4 * H])],
                              [vi(h_out, [1, "B", H]), vi(c_out, [1, "B", H]), vi(y_out, ["B", H])])
    h_T, c_T, ys = outs[1] or b.fresh("h_T"), outs[2] or b.fresh("c_T"), b.fresh("ys")
    attrs = {} if axis == 0 and y_axis == 0 else {"scan_input_axes": [axis], "scan_output_axes": [y_axis]}
    # (An If whose T == 1 branch runs the cell once without the Scan measured no faster: 1.006x the Scan alone.)
    nodes.append(helper.make_node("Scan", [h0, c0, xw], [h_T, c_T, ys], num_scan_inputs=1, body=graph, **attrs))
    # LSTM outputs: Y [T, 1, B, H] (Y_h, Y_c [1, B, H] come out of the Scan as they are)
    if outs[0] and y_axis == 0:
        _node(nodes, b, "Unsqueeze", [ys, b.const([1], np.int64)], outputs=[outs[0]])
    return ys


def _inexact(model, op_types, exclude) -> set[str]:
    """Tensors whose values may differ in the last bits between runtimes: outputs of ops outside
    ``EXACT_OPS`` that this rewrite does not replace, and everything computed from them."""
    inits = {t.name for t in model.graph.initializer}
    out: set[str] = set()

    def reads(node) -> list[str]:
        names = list(node.input)
        for sub in subgraphs_of(node):  # outer-scope names a subgraph reads
            for g in all_graphs(sub):
                for n in g.node:
                    names += n.input
        return names

    for node in model.graph.node:
        tainted = any(i in out for i in reads(node) if i and i not in inits)
        rewritten = node.op_type in op_types and node.name not in exclude  # MatMul: constant or activation
        replaced = node.op_type in ("Tanh", "Sigmoid")   # by table lookups when their input is exact
        if tainted or not (node.op_type in EXACT_OPS or rewritten or replaced):
            out.update(o for o in node.output if o)
    return out


def quantize_rowwise(model, op_types=("LSTM", "MatMul", "Gemm", "Gather"), exclude=(),
                     activation: str = "table") -> dict[str, Any]:
    """Rewrite ``model`` (an ``onnx.ModelProto``, fp32) in place; returns what was done
    ({"rewritten": {op: n}, "kept": {reason: n}, "tied": [names]}). ``activation``: see ``ACTIVATIONS``."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {activation!r}")
    from onnx import numpy_helper

    b = _Builder(model)
    cache: dict[str, tuple[str, str]] = {}
    done: dict[str, int] = {}
    kept: dict[str, int] = {}
    tied: list[str] = []
    # Tied weights: a MatMul weight [K, N] that is the transpose of a Gather table [N, K] shares its int8.
    tables = {n.input[0]: b.inits[n.input[0]] for n in model.graph.node
              if n.op_type == "Gather" and n.input[0] in b.inits and b.inits[n.input[0]].ndim == 2
              and _attr(n, "axis", 0) == 0 and "Gather" in op_types}

    def _tie(w):
        return next((t for t, arr in tables.items() if arr.shape == w.T.shape and np.array_equal(arr, w.T)), None)

    # A table tied to an output layer keeps one scale per row (= the layer's per-column scales);
    # any other table one scale for all (its rows are read, not multiplied: nothing to gain per row).
    tied_tables = set()
    for n in model.graph.node:
        w = b.inits.get(n.input[1]) if n.op_type in ("MatMul", "Gemm") and len(n.input) > 1 else None
        if w is not None and w.ndim == 2:
            t = _tie(w.T if n.op_type == "Gemm" and _attr(n, "transB", 0) else w)
            if t is not None:
                tied_tables.add(t)
    producers = {o: n for n in model.graph.node for o in n.output}
    alias: dict[str, tuple[str, str]] = {}   # fp32 tensor -> (int8 tensor, scale) holding the same values

    def int8_of(name: str):
        """The int8 twin of ``name`` (rows of an int8 table, maybe transposed), built on demand."""
        if name in alias:
            return alias[name]
        node = producers.get(name)
        if node is None or node.op_type != "Transpose" or len(node.output) != 1:
            return None
        src = int8_of(node.input[0])
        if src is None:
            return None
        perm = _attr(node, "perm")
        q = _node(new_nodes, b, "Transpose", [src[0]], perm=perm)
        sc = src[1] if src[1] in b.new_inits and b.new_inits[src[1]].ndim == 0 else \
            _node(new_nodes, b, "Transpose", [src[1]], perm=perm)
        alias[name] = (q, sc)
        return alias[name]

    inexact = _inexact(model, op_types, exclude)
    new_nodes: list = []
    # An LSTM's sequence output comes out of its Scan batch-major ([B, T, H], time on axis 1): ``seq`` maps the
    # LSTM's Y ([T, 1, B, H], "Y") and Y squeezed on axis 1 ([T, B, H], "Ysq") to it. The exporter's
    # Squeeze + Transpose back to batch-major then disappear (``rename``), the next layer's Scan reads it
    # along axis 1, and only a node that reads Y itself gets it built (``materialise``).
    seq: dict[str, tuple[str, str]] = {}
    rename: dict[str, str] = {}
    graph_outputs = {o.name for o in model.graph.output}

    def materialise(name: str) -> None:
        kind, bm = seq.pop(name)
        if kind == "Y":
            t = _node(new_nodes, b, "Transpose", [bm], perm=[1, 0, 2])
            _node(new_nodes, b, "Unsqueeze", [t, b.const([1], np.int64)], outputs=[name])
        else:
            _node(new_nodes, b, "Transpose", [bm], perm=[1, 0, 2], outputs=[name])

    def const_ints(name: str):
        if name in b.inits:
            return [int(v) for v in np.ravel(b.inits[name])]
        p = producers.get(name)
        if p is not None and p.op_type == "Constant":
            return [int(v) for v in np.ravel(numpy_helper.to_array(_attr(p, "value")))]
        return None

    for node in model.graph.node:
        for k, i in enumerate(node.input):
            if i in rename:
                node.input[k] = rename[i]
        if (node.op_type == "Squeeze" and node.input[0] in seq and seq[node.input[0]][0] == "Y"
                and len(node.input) > 1 and const_ints(node.input[1]) == [1]):
            seq[node.output[0]] = ("Ysq", seq[node.input[0]][1])
            continue
        if (node.op_type == "Transpose" and node.input[0] in seq and seq[node.input[0]][0] == "Ysq"
                and list(_attr(node, "perm") or []) == [1, 0, 2]):
            bm = seq[node.input[0]][1]
            if node.output[0] in graph_outputs:
                _node(new_nodes, b, "Identity", [bm], outputs=[node.output[0]])
            else:
                rename[node.output[0]] = bm
            continue
        lstm_x = None
        if node.op_type == "LSTM" and "LSTM" in op_types and node.name not in exclude and not _lstm_supported(node, b):
            x = node.input[0]
            px = producers.get(x)
            if x in seq and seq[x][0] == "Ysq":
                lstm_x = ((seq[x][1], 1), None)
            elif px is not None and px.op_type == "Transpose" and list(_attr(px, "perm") or []) == [1, 0, 2]:
                z = px.input[0]
                lstm_x = ((z, 1), alias.get(z))
            else:
                lstm_x = ((x, 0), int8_of(x))
        for i in node.input:
            if i in seq and not (lstm_x and i == node.input[0] and lstm_x[0][1] == 1):
                materialise(i)
        if node.op_type in ("Tanh", "Sigmoid") and activation == "table" and node.input[0] not in inexact:
            # exact in, exact out (e.g. an encoder's bridge to the decoder's initial state)
            x = node.input[0]
            if node.op_type == "Tanh":
                _node(new_nodes, b, "Identity", [_table_tanh(new_nodes, b, x)], outputs=[node.output[0]])
            else:  # sigmoid(x) = (1 + tanh(x / 2)) / 2
                t = _table_tanh(new_nodes, b, x, 0.5)
                _node(new_nodes, b, "Add", [_node(new_nodes, b, "Mul", [t, b.const(0.5, np.float32)]),
                                            b.const(0.5, np.float32)], outputs=[node.output[0]])
            done[node.op_type] = done.get(node.op_type, 0) + 1
            continue
        if (node.op_type == "MatMul" and "MatMul" in op_types and node.name not in exclude
                and all(i not in b.inits for i in node.input)
                and not (node.input[0] in inexact and node.input[1] in inexact)):
            # between two activations (attention): row-independent and exact unless an operand is not
            act_matmul(new_nodes, b, node.input[0], node.input[1], 2 if node.input[0] in inexact else 1,
                       2 if node.input[1] in inexact else 1, node.output[0])
            done["MatMul(activations)"] = done.get("MatMul(activations)", 0) + 1
            continue
        if node.name in exclude or node.op_type not in op_types:
            new_nodes.append(node)
            continue
        if node.op_type == "LSTM":
            why = _lstm_supported(node, b)
            if why:
                kept[f"LSTM: {why}"] = kept.get(f"LSTM: {why}", 0) + 1
                new_nodes.append(node)
                continue
            # an input that may differ in its last bits between runtimes: 2 digits, here and in the recurrence
            (x_name, axis), x_int8 = lstm_x
            ys = _rewrite_lstm(node, b, new_nodes, cache, x_int8, activation,
                               2 if node.input[0] in inexact or (len(node.input) > 5 and node.input[5] in inexact)
                               else None, x_in=(x_name, axis), y_axis=1)
            if node.output and node.output[0]:
                seq[node.output[0]] = ("Y", ys)
        elif node.op_type == "Gather":
            table = node.input[0]
            if table not in tables or np.issubdtype(tables[table].dtype, np.integer):
                new_nodes.append(node)
                continue
            per_row = table in tied_tables
            rows_q, scale = _table(b, table, tables[table], cache, per_row)
            gathered = _node(new_nodes, b, "Gather", [rows_q, node.input[1]], axis=0)
            if per_row:
                scale = _node(new_nodes, b, "Gather", [scale, node.input[1]], axis=0)
            rows = _node(new_nodes, b, "Sub", [_node(new_nodes, b, "Cast", [gathered], to=1), b.const(ZERO, np.float32)])
            _node(new_nodes, b, "Mul", [rows, scale], outputs=[node.output[0]])
            alias[node.output[0]] = (gathered, scale)
        else:  # MatMul / Gemm with a constant 2-D weight
            w_name = node.input[1] if len(node.input) > 1 else ""
            w = b.inits.get(w_name)
            ok = w is not None and w.ndim == 2 and w.dtype == np.float32
            if node.op_type == "Gemm":
                ok = ok and not _attr(node, "transA", 0) and _attr(node, "alpha", 1.0) == 1.0 \
                    and _attr(node, "beta", 1.0) == 1.0
            if not ok:
                new_nodes.append(node)
                continue
            if node.op_type == "Gemm" and _attr(node, "transB", 0):
                w = w.T
            tie = _tie(w)
            if tie is not None:
                tq, ts_col = _table(b, tie, tables[tie], cache, per_row=True)
                # int8 = uint8 - 128, transposed: constants, folded by onnxruntime at load
                wq = _node(new_nodes, b, "Cast", [_node(new_nodes, b, "Sub", [
                    _node(new_nodes, b, "Cast", [_node(new_nodes, b, "Transpose", [tq], perm=[1, 0])], to=6),
                    b.const(ZERO, np.int32)])], to=3)
                ws = _node(new_nodes, b, "Reshape", [ts_col, b.const([-1], np.int64)])
                tied.append(f"{tie} = {w_name}^T")
            else:
                wq, ws = _weight(b, w_name + ("/T" if node.op_type == "Gemm" and _attr(node, "transB", 0) else ""),
                                 w, 1, cache)
            digits = 2 if node.input[0] in inexact else None
            if node.op_type == "Gemm" and len(node.input) > 2 and node.input[2]:
                y = rowwise_matmul(new_nodes, b, node.input[0], wq, ws, digits=digits)
                _node(new_nodes, b, "Add", [y, node.input[2]], outputs=[node.output[0]])
            else:
                rowwise_matmul(new_nodes, b, node.input[0], wq, ws, out=node.output[0], digits=digits)
        done[node.op_type] = done.get(node.op_type, 0) + 1
    for name in [n for n in seq if n in graph_outputs]:
        materialise(name)
    del model.graph.node[:]
    model.graph.node.extend(b.pre + new_nodes)
    model.graph.initializer.extend(numpy_helper.from_array(v, k) for k, v in b.new_inits.items())
    # drop value_info of removed tensors (shape inference re-derives what it needs)
    del model.graph.value_info[:]
    # the fp32 nodes nothing reads any more (an embedding's float rows, the exporter's Transposes around an LSTM),
    # which onnxruntime would keep and run, and the initializers only they read
    from .quantize import prune_dead

    prune_dead(model)
    return {"rewritten": done, "kept": kept, "tied": tied}
