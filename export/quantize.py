"""int8 dynamic quantisation of exported graphs, and how to measure what it costs.

``onnxruntime.quantization.quantize_dynamic``: weights stored as int8, activations quantised
on the fly. LSTM nodes become ``com.microsoft.DynamicQuantizeLSTM``; onnxruntime has no
quantised GRU/RNN kernel, so those graphs quantise only their MatMul/Gather (embedding and
output layer, which hold most of the weights of a language model anyway).

``lm_agreement`` runs an fp32 and an int8 step graph over the same token stream and
reports top-1 agreement and the perplexity of each (real validation text, not random ids:
the weights of an untrained model say nothing about int8 error).
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from rnnkit.core.atomic import atomic_write
from rnnkit.edge import names as N
from rnnkit.edge.runner import zero_state_feeds
from rnnkit.edge.search import log_softmax

# Quantise the big weight holders. Attention/score MatMuls between two activations are left
# to onnxruntime (dynamic quantisation only touches ops with a constant weight input).
OP_TYPES = ["LSTM", "MatMul", "Gather", "Gemm"]


HEADS = ("fp32", "int8")
# The output layer in int8: weights in blocks of HEAD_BLOCK along the input axis, each block with its
# own scale, and activations quantised per block of each row too (onnxruntime's MatMulNBits, 8 bits,
# accuracy level 4 = int8 dot products). Measured on suggest-en: top-1 agreement 98.47 % where one
# per-tensor activation scale (dynamic quantisation) gives 98.11 % (fp32 head: 98.54 %), and the
# one-token step 0.23 ms where the fp32 head takes 0.43 ms: the step streams its weights from
# memory, and this head has a quarter of the fp32 bytes.
HEAD_BITS, HEAD_BLOCK, HEAD_ACCURACY = 8, 32, 4
MIN_ORT_INT8_HEAD = (1, 22)  # the first onnxruntime whose CPU MatMulNBits runs 8-bit weights


# How the int8 graphs are made (``scheme``):
# - "rowwise" (default, export/rowwise.py): int8 weights per output channel, activations quantised per
#   row (token) in standard ops, the LSTM as an input projection + a Scan. A row's result depends on
#   that row alone: the same logits however the text is chunked or batched; with ``target="portable"``
#   (default: gate activations by table lookup) bit-exact on every onnxruntime (Python, Node, WebAssembly).
#   Measured side by side (bench/step_speed.py, docs/results/step_speed*.json: shared 2-core machine, one
#   thread, interleaved, p50 relative to "dynamic"): one-token step 0.99x (suggest-en) / 1.24x (char-shakespeare,
#   two small layers: per-node overhead weighs more) native (onnxruntime Python), 0.97x / 1.22x onnxruntime-node,
#   0.26x / 1.03x in onnxruntime-web; perplexity within 0.03 % of the fp32 graph.
#   ``target="native"`` (onnxruntime's Tanh / Sigmoid) is no faster any more (1.01x portable) and drifts
#   across runtimes: kept to compare with.
# - "dynamic" (the earlier export): onnxruntime ``quantize_dynamic`` (one activation scale per call:
#   results depend on the chunking) + the block-wise MatMulNBits head (int8 activations only where the
#   CPU has dot products: x86, ARM and WebAssembly differ). Kept to compare with.
SCHEMES = ("rowwise", "dynamic")
DEFAULT_SCHEME = "rowwise"
META_INT8_SCHEME = "int8_scheme"
META_INT8_TARGET = "int8_target"


TARGETS = ("portable", "native")
DEFAULT_TARGET = "portable"


def quantize_graph(src: str | os.PathLike, dst: str | os.PathLike, per_channel: bool = True,
                   op_types: Sequence[str] = OP_TYPES, head: str = "int8", scheme: str = DEFAULT_SCHEME,
                   target: str = DEFAULT_TARGET) -> Path:
    """Write the int8 version of ``src`` to ``dst`` (atomically), metadata carried over with precision=int8
    (and ``int8_scheme``).

    ``scheme``: "rowwise" (default) or "dynamic", see ``SCHEMES``.
    ``target`` (rowwise): "portable" (default: LSTM activations by table lookup, the same bits on every
    runtime) or "native" (onnxruntime's Tanh / Sigmoid: faster, but WebAssembly / ARM may drift from x86).
    ``head``: "int8" quantises the layer producing ``logits`` too (row-wise; "dynamic": block-wise,
    ``HEAD_BLOCK``); "fp32" keeps it fp32 (four times its bytes, a slower step).
    """
    import onnx

    from .onnx_export import check_graph, set_metadata

    if head not in HEADS:
        raise ValueError(f"head must be one of {', '.join(HEADS)}, got {head!r}")
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {', '.join(SCHEMES)}, got {scheme!r}")
    model = onnx.load(str(src))
    meta = {p.key: p.value for p in model.metadata_props}
    head_nodes = _head_nodes(model)
    if scheme == "rowwise":
        from .rowwise import SCHEME, quantize_rowwise

        if target not in TARGETS:
            raise ValueError(f"target must be one of {', '.join(TARGETS)}, got {target!r}")
        quantize_rowwise(model, op_types=tuple(op_types), exclude=head_nodes if head == "fp32" else (),
                         activation="table" if target == "portable" else "ort")
        set_metadata(model, {**meta, N.META_PRECISION: "int8", META_INT8_SCHEME: SCHEME, META_INT8_TARGET: target})

        def write_rowwise(tmp: str) -> None:
            onnx.save(model, tmp)
            check_graph(tmp)

        return atomic_write(dst, write_rowwise)
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # The head MatMul with a constant weight goes block-wise; any other head (a Gemm) gets the
    # dynamic int8 of the rest of the graph. "fp32" keeps every head node out.
    inits = {t.name for t in model.graph.initializer}
    blockwise = [] if head == "fp32" else [n.name for n in model.graph.node if n.name in head_nodes
                                           and n.op_type == "MatMul" and n.input[1] in inits]
    exclude = head_nodes if head == "fp32" else blockwise

    def write(tmp: str) -> None:
        # The quantiser logs one line per node it skips; that is expected, not news.
        # (and on the root logger, a pre-processing hint that does not apply to RNN graphs).
        loggers = [logging.getLogger(), logging.getLogger("onnxruntime.quantization")]
        levels = [lg.level for lg in loggers]
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        try:
            quantize_dynamic(str(src), tmp, op_types_to_quantize=list(op_types), per_channel=per_channel,
                             weight_type=QuantType.QInt8, nodes_to_exclude=exclude)
            q = onnx.load(tmp)
            if blockwise:
                q = _blockwise_head(q, blockwise)
        finally:
            for lg, level in zip(loggers, levels):
                lg.setLevel(level)
        set_metadata(q, {**meta, N.META_PRECISION: "int8", META_INT8_SCHEME: "dynamic"})
        onnx.save(q, tmp)
        check_graph(tmp)

    return atomic_write(dst, write)


def _blockwise_head(model, names: list[str]):
    """The named MatMul node(s) as 8-bit block-wise ``MatMulNBits`` (``HEAD_BITS``, ``HEAD_BLOCK``)."""
    import onnxruntime as ort

    have = tuple(int(x) for x in ort.__version__.split(".")[:2])
    if have < MIN_ORT_INT8_HEAD:
        raise RuntimeError(f"an int8 output head needs onnxruntime >= {'.'.join(map(str, MIN_ORT_INT8_HEAD))} "
                           f"(this is {ort.__version__}); upgrade it, or export with --int8-head fp32")
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    q = MatMulNBitsQuantizer(model, bits=HEAD_BITS, block_size=HEAD_BLOCK, is_symmetric=True,
                             accuracy_level=HEAD_ACCURACY, nodes_to_include=names)
    q.process()
    return q.model.model


def _head_nodes(model) -> list[str]:
    """Names of the node(s) producing the ``logits`` output, followed back through a bias Add."""
    producers = {o: n for n in model.graph.node for o in n.output}
    out, name = [], N.LOGITS
    while name in producers:
        node = producers[name]
        out.append(node.name)
        if node.op_type != "Add":
            break
        name = next((i for i in node.input if i in producers), "")  # the non-constant operand
    return out


def size_ratio(fp32: str | os.PathLike, int8: str | os.PathLike) -> float:
    return os.path.getsize(int8) / os.path.getsize(fp32)


def op_counts(path: str | os.PathLike) -> dict[str, int]:
    import onnx

    counts: dict[str, int] = {}
    for n in onnx.load(str(path)).graph.node:
        key = f"{n.domain}.{n.op_type}" if n.domain else n.op_type
        counts[key] = counts.get(key, 0) + 1
    return counts


def lm_stream_eval(sessions: dict[str, Any], ids: Sequence[int], batch: int = 16, chunk: int = 64,
                   max_tokens: int | None = None) -> dict[str, Any]:
    """Run each step-graph session over ``ids`` as ``batch`` parallel streams (state carried
    across ``chunk``-long calls, as in training); return per-session ppl and top-1 agreement
    of every session with the first one.

    ``sessions``: {label: onnxruntime session of a ``step`` graph}, first is the reference.
    """
    ids = np.asarray(ids, dtype=np.int64)
    if max_tokens:
        ids = ids[:max_tokens + 1]
    n = (len(ids) - 1) // batch
    if n < 1:
        raise ValueError(f"need more than {batch} tokens to evaluate, got {len(ids)}")
    x = ids[:n * batch].reshape(batch, n)
    y = ids[1:n * batch + 1].reshape(batch, n)
    labels = list(sessions)
    nll = {k: 0.0 for k in labels}
    top1: dict[str, list[np.ndarray]] = {k: [] for k in labels}
    states: dict[str, dict[str, np.ndarray]] = {}
    for k, sess in sessions.items():
        states[k] = zero_state_feeds(sess, batch)
    for start in range(0, n, chunk):
        xs, ys = x[:, start:start + chunk], y[:, start:start + chunk]
        for k, sess in sessions.items():
            outs = sess.run(None, {N.TOKENS: xs, **states[k]})
            names = [o.name for o in sess.get_outputs()]
            res = dict(zip(names, outs))
            lp = log_softmax(res[N.LOGITS], np.float64)
            nll[k] -= float(np.take_along_axis(lp, ys[..., None], axis=-1).sum())
            top1[k].append(res[N.LOGITS].argmax(-1))
            states[k] = N.next_state(res)
    count = x.size
    ref = np.concatenate(top1[labels[0]], axis=1)
    report: dict[str, Any] = {"tokens": int(count), "batch": batch, "chunk": chunk}
    for k in labels:
        preds = np.concatenate(top1[k], axis=1)
        report[k] = {"ppl": math.exp(nll[k] / count), "top1_agreement": float((preds == ref).mean()),
                     "top1_accuracy": float((preds == y).mean())}
    return report


def compare_random(fp32_session, int8_session, config: dict[str, Any], batch: int = 2, time: int = 16,
                   seed: int = 0) -> dict[str, float]:
    """fp32 vs int8 on random inputs: max abs diff over outputs and argmax agreement of logits.

    Only a smoke figure (the graph runs and stays close); real agreement needs real data.
    """
    from .feeds import max_abs_diff, random_feeds

    feeds = random_feeds(fp32_session.get_inputs(), config, batch, time, seed=seed)
    names = [o.name for o in fp32_session.get_outputs()]
    a = dict(zip(names, fp32_session.run(names, feeds)))
    b = dict(zip(names, int8_session.run(names, feeds)))
    out = {"max_abs_diff": max(max_abs_diff(a[k], b[k]) for k in names if a[k].dtype != np.bool_)}
    if N.LOGITS in a:
        out["argmax_agreement"] = float((a[N.LOGITS].argmax(-1) == b[N.LOGITS].argmax(-1)).mean())
    return out


def step_latency_ms(session, steps: int = 200, warmup: int = 20) -> float:
    """Median wall time of one keystroke-sized call (batch 1, one token) of a ``step`` graph, in ms."""
    import time

    state = zero_state_feeds(session, 1)
    tok = np.zeros((1, 1), np.int64)
    times = []
    for n in range(warmup + steps):
        t0 = time.perf_counter()
        outs = dict(zip([o.name for o in session.get_outputs()], session.run(None, {N.TOKENS: tok, **state})))
        if n >= warmup:
            times.append(time.perf_counter() - t0)
        state = N.next_state(outs)
    return 1000 * float(np.median(times))


def int8_text_report(fp32: str | os.PathLike, int8: str | os.PathLike, ids: Sequence[int],
                     max_tokens: int | None = None, batch: int = 16) -> dict[str, Any]:
    """fp32 vs int8 ``step`` graphs on real token ids: size ratio, top-1 agreement, ppl change, latency."""
    from rnnkit.edge.runner import load_session

    a, b = load_session(fp32), load_session(int8)
    ev = lm_stream_eval({"fp32": a, "int8": b}, ids, batch=batch, max_tokens=max_tokens)
    return {"tokens": ev["tokens"], "size_ratio": size_ratio(fp32, int8),
            "fp32_mb": os.path.getsize(fp32) / 1e6, "int8_mb": os.path.getsize(int8) / 1e6,
            "top1_agreement": ev["int8"]["top1_agreement"],
            "fp32_ppl": ev["fp32"]["ppl"], "int8_ppl": ev["int8"]["ppl"],
            "ppl_change": ev["int8"]["ppl"] / ev["fp32"]["ppl"] - 1.0,
            "fp32_top1_accuracy": ev["fp32"]["top1_accuracy"], "int8_top1_accuracy": ev["int8"]["top1_accuracy"],
            "fp32_step_ms": step_latency_ms(a), "int8_step_ms": step_latency_ms(b)}


# ----------------------------------------------------------------------------- ORT format
def to_ort_format(src: str | os.PathLike, dst: str | os.PathLike, config: dict[str, Any] | None = None) -> float:
    """Write ``src`` in onnxruntime's ORT format (what the mobile packages load fastest) to ``dst``,
    with basic graph optimisations only (constant folding, no hardware-specific layouts). Returns the
    max abs difference of its outputs from ``src``'s on random inputs (0 when ``config`` is None)."""
    from rnnkit.edge.runner import load_session

    from .feeds import max_abs_diff, random_feeds

    def write(tmp: str) -> None:
        load_session(src, optimization="basic", save_optimized=tmp)

    atomic_write(dst, write)
    if config is None:
        return 0.0
    a, b = load_session(src), load_session(dst)
    feeds = random_feeds(a.get_inputs(), config, 2, 5, seed=0)
    return max((max_abs_diff(x, y) for x, y in zip(a.run(None, feeds), b.run(None, feeds)) if x.dtype != np.bool_),
               default=0.0)


# ----------------------------------------------------------------------------- int8 -> fp32
def dequantize_model(model):
    """An fp32 graph from an int8 graph of ``quantize_dynamic`` (+ the block-wise head): every
    ``DynamicQuantizeLSTM`` becomes an ``LSTM``, every ``MatMulInteger`` chain and ``MatMulNBits`` a
    ``MatMul``, every ``Gather`` + ``DequantizeLinear`` of a constant table a ``Gather`` on the
    dequantised table. The weights are the int8 values times their scales, exactly: what the int8
    graph computes with, so the result is the model those weights define, re-quantisable with
    another scheme (models/ ships int8 only; their runs are not in the repo). In place; returns it.
    """
    from onnx import helper, numpy_helper

    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    producers = {o: n for n in model.graph.node for o in n.output}
    new_inits: dict[str, np.ndarray] = {}
    replace: dict[int, list] = {}   # id(node) -> replacement nodes ([] drops it)

    def deq(q, scale, zp, axis):
        q = inits[q].astype(np.float32)
        s, z = inits[scale].astype(np.float32), inits[zp].astype(np.float32) if zp else np.float32(0)
        if s.ndim and s.size > 1:
            shape = [1] * q.ndim
            shape[axis] = -1
            s, z = s.reshape(shape), np.asarray(z).reshape(shape) if np.ndim(z) else z
        return ((q - z) * s).astype(np.float32)

    for node in model.graph.node:
        if node.op_type == "DynamicQuantizeLSTM":
            ins = list(node.input) + [""] * (12 - len(node.input))
            # W [D, I, 4H] / R [D, H, 4H], scales / zero points [D, 4H]: ONNX LSTM wants [D, 4H, I]
            w = deq(ins[1], ins[8], ins[9], 2).transpose(0, 2, 1)
            r = deq(ins[2], ins[10], ins[11], 2).transpose(0, 2, 1)
            wn, rn = ins[1].replace("_quantized", "") + "_fp32", ins[2].replace("_quantized", "") + "_fp32"
            new_inits[wn], new_inits[rn] = np.ascontiguousarray(w), np.ascontiguousarray(r)
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            replace[id(node)] = [helper.make_node("LSTM", [ins[0], wn, rn] + ins[3:8], list(node.output),
                                                  name=node.name, **attrs)]
        elif node.op_type == "MatMulNBits":
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            K, n_out, bits, block = attrs["K"], attrs["N"], attrs["bits"], attrs["block_size"]
            if bits != 8 or len(node.input) > 3 and node.input[3]:
                raise ValueError(f"{node.name}: only 8-bit symmetric MatMulNBits can be dequantised here")
            q = inits[node.input[1]].reshape(n_out, -1).astype(np.float32) - 128.0
            s = inits[node.input[2]].reshape(n_out, -1)
            w = (q.reshape(n_out, -1, block) * s[:, :, None]).reshape(n_out, -1)[:, :K].T
            wn = node.input[1] + "_fp32"
            new_inits[wn] = np.ascontiguousarray(w.astype(np.float32))
            replace[id(node)] = [helper.make_node("MatMul", [node.input[0], wn], list(node.output), name=node.name)]
        elif node.op_type == "MatMulInteger":
            # DynamicQuantizeLinear(x) -> MatMulInteger -> Cast -> Mul(x_scale * w_scale)
            dql = producers[node.input[0]]
            x = dql.input[0]
            wq, wzp = node.input[1], node.input[3] if len(node.input) > 3 else ""
            cast = next(n for n in model.graph.node if node.output[0] in n.input)
            mul = next(n for n in model.graph.node if cast.output[0] in n.input)
            scale_mul = producers[next(i for i in mul.input if i != cast.output[0])]
            w_scale = next(i for i in scale_mul.input if i in inits)
            w = deq(wq, w_scale, wzp, 1)
            wn = wq.replace("_quantized", "") + "_fp32"
            new_inits[wn] = w
            replace[id(node)] = [helper.make_node("MatMul", [x, wn], list(mul.output), name=node.name)]
            replace[id(cast)] = replace[id(mul)] = []
        elif node.op_type == "DequantizeLinear" and node.input[0] in producers \
                and producers[node.input[0]].op_type == "Gather" and producers[node.input[0]].input[0] in inits:
            gather = producers[node.input[0]]
            axis = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "axis"), 1)
            table = deq(gather.input[0], node.input[1], node.input[2] if len(node.input) > 2 else "", axis)
            tn = gather.input[0].replace("_quantized", "") + "_fp32"
            new_inits[tn] = table
            replace[id(gather)] = []
            replace[id(node)] = [helper.make_node("Gather", [tn, gather.input[1]], list(node.output),
                                                  name=gather.name, axis=0)]
    nodes = []
    for node in model.graph.node:
        nodes.extend(replace.get(id(node), [node]))
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    model.graph.initializer.extend(numpy_helper.from_array(v, k) for k, v in new_inits.items())
    prune_dead(model)
    for p in model.metadata_props:
        if p.key == N.META_PRECISION:
            p.value = "fp32"
    return model


def prune_dead(model) -> None:
    """Drop nodes whose outputs nothing reads (graph outputs and subgraphs count), then unread initializers."""
    from .onnx_graphs import all_graphs

    def reads(g, acc):
        for sub in all_graphs(g):
            for n in sub.node:
                acc.update(n.input)
        return acc

    while True:
        used = reads(model.graph, set()) | {o.name for o in model.graph.output}
        dead = [n for n in model.graph.node if not any(o in used for o in n.output if o)]
        if not dead:
            break
        keep = [n for n in model.graph.node if n not in dead]
        del model.graph.node[:]
        model.graph.node.extend(keep)
    used = reads(model.graph, set())
    keep_init = [t for t in model.graph.initializer if t.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep_init)
