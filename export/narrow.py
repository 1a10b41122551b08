"""Row-wise int8 graphs made before ``rowwise.W_DIGIT``: whether a bundle's products fit, and narrowing them.

Bundles exported before the weights kept to 64 levels multiply uint8 activations (up to 255) by int8
weights up to 127; onnxruntime's uint8 x int8 kernel on an x86 without VNNI adds such products in pairs
in int16 and saturates (``rowwise``'s comment on the levels). ``narrow_weights`` rewrites such a graph
so that it answers the same everywhere; ``exact_products`` builds the reference it is measured against
on a CPU that saturates. Used by ``python -m rnnkit.export.requantize`` for bundles whose run is gone.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import rowwise
from .onnx_graphs import all_graphs, rewrite_nodes

INT16_MAX = 32767
OLD_LEVELS = 127


def levels_fit(int8_options: Any) -> bool:
    """Whether a manifest's ``int8_options`` say every uint8 x int8 pair sum fits int16, so that no CPU
    saturates the graphs (False: the "dynamic" scheme, row-wise before ``W_DIGIT``, or a malformed entry)."""
    levels = int8_options.get("levels") if isinstance(int8_options, dict) else None
    if not isinstance(levels, dict):
        return False
    a, w = levels.get("activations"), levels.get("weights")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (a, w)):
        return False
    return 2 * (2 * a + 1) * w <= INT16_MAX


def needs_narrowing(manifest: dict[str, Any]) -> bool:
    """A row-wise bundle made before the weights kept to ``rowwise.W_DIGIT`` levels: its int8 products saturate
    on x86 CPUs without VNNI, and ``narrow_weights`` mends its graphs."""
    opt = manifest.get("int8_options") or {}
    return opt.get("scheme") == "rowwise-int8" and not levels_fit(opt)


def narrow_weights(model) -> dict[str, int]:
    """Rewrite in place a row-wise graph whose weights use all 127 levels so that every ``MatMulInteger``
    weight operand is within ``rowwise.W_DIGIT`` = 64 levels: int8 weights halved (q' = round(q / 2)) with
    their column scales doubled (exact in float), a tied table likewise, and an attention MatMul's second
    operand quantised to 64 levels in the graph. Returns {what: count}."""
    from onnx import numpy_helper

    if rowwise.W_DIGIT != 64:
        raise ValueError("narrow_weights halves 127-level weights: rowwise.W_DIGIT must be 64")
    inits = {t.name: t for t in model.graph.initializer}
    arr = lambda name: numpy_helper.to_array(inits[name])  # noqa: E731
    nodes = [n for g in all_graphs(model.graph) for n in g.node]
    producer = {o: n for n in nodes for o in n.output}
    readers: dict[str, list] = {}
    for n in nodes:
        for i in n.input:
            readers.setdefault(i, []).append(n)
    taken = set(inits) | set(producer) | {i for n in nodes for i in n.input}
    done: dict[str, int] = {}
    halved: set[str] = set()        # int8 weights / tables halved
    doubled: set[str] = set()

    def put(name: str, value: np.ndarray) -> None:
        inits[name].CopyFrom(numpy_helper.from_array(np.asarray(value), name))

    def halve(q: np.ndarray, what: str) -> np.ndarray:
        if int(np.abs(q.astype(np.int32)).max()) != OLD_LEVELS:   # a 127-level quantiser's largest is 127
            raise ValueError(f"{what} is not a 127-level int8 weight (largest |q| "
                             f"{int(np.abs(q.astype(np.int32)).max())}): narrowed already?")
        return np.clip(np.rint(q.astype(np.float32) / 2), -rowwise.W_DIGIT, rowwise.W_DIGIT)

    def pair(weight: str, scale: str, new_weight) -> None:
        """Halve ``weight`` and double ``scale``, each once however many MatMuls read them: every weight is
        halved, so every scale read with one doubles."""
        if weight not in halved:
            put(weight, new_weight())
            halved.add(weight)
        if scale not in doubled:
            put(scale, arr(scale) * np.float32(2))
            doubled.add(scale)

    def scale_after(mmi, fits) -> str:
        """The first initializer ``fits`` accepts that a Mul downstream of ``mmi`` reads (its column scales)."""
        frontier = [mmi.output[0]]
        for _ in range(8):
            nxt = []
            for t in frontier:
                for r in readers.get(t, []):
                    for i in r.input:
                        if r.op_type == "Mul" and i != t and i in producer and producer[i].op_type == "Reshape":
                            i = producer[i].input[0]          # a tied table's row scales, read as columns
                        if r.op_type == "Mul" and i != t and i in inits and fits(i):
                            return i
                    nxt += [o for o in r.output if o]
            frontier = nxt
        raise ValueError(f"no weight scale found after {mmi.output[0]}")

    def new_const(value: float) -> str:
        name = next(f"narrow{k}" for k in range(1, 10**6) if f"narrow{k}" not in taken)
        taken.add(name)
        model.graph.initializer.append(numpy_helper.from_array(np.asarray(value, np.float32), name))
        inits[name] = model.graph.initializer[-1]
        return name

    def replace_input(node, old: str, new: str) -> None:
        node.input[list(node.input).index(old)] = new

    def count(what: str) -> None:
        done[what] = done.get(what, 0) + 1

    for mmi in [n for n in nodes if n.op_type == "MatMulInteger"]:
        b_name = mmi.input[1]
        if b_name in inits:                                   # a constant int8 weight [K, N]
            n_cols = arr(b_name).shape[-1]
            ws = scale_after(mmi, lambda i: arr(i).shape == (n_cols,) and arr(i).dtype == np.float32)
            if b_name not in halved:
                count("weights")
            pair(b_name, ws, lambda: halve(arr(b_name), b_name).astype(np.int8))
            continue
        p = producer[b_name]                                  # Cast to int8 of ...
        src = producer.get(p.input[0])
        if src is not None and src.op_type == "Sub":           # a tied table: Transpose(uint8 table) - ZERO
            table = producer[producer[src.input[0]].input[0]].input[0]
            rows = arr(table).shape[0]
            ts = scale_after(mmi, lambda i: arr(i).ndim == 2 and arr(i).shape == (rows, 1))
            if table not in halved:
                count("tied tables")
            pair(table, ts, lambda: (halve(arr(table).astype(np.int16) - rowwise.ZERO, table)
                                     + rowwise.ZERO).astype(np.uint8))
            continue
        # an attention MatMul: the second operand quantised in the graph, Cast(Round(w * inv_w)) or two digits
        two = src.op_type == "Concat"
        hi = producer[src.input[0]] if two else src           # Round(Mul(w, inv_w))
        inv_w = producer[producer[hi.input[0]].input[1]]     # Div(levels, max)
        replace_input(inv_w, inv_w.input[0], new_const(rowwise.W_DIGIT))
        if two:
            lo_mul = producer[producer[src.input[1]].input[0]]   # Round(Mul(Sub(u, hi), base))
            replace_input(lo_mul, lo_mul.input[1], new_const(2 * rowwise.W_DIGIT))
            sums = next(r for r in readers[mmi.output[0]] if r.op_type == "Cast").output[0]
            split = next(r for r in readers[sums] if r.op_type == "Split")
            comb = next(r for r in readers[split.output[1]] if r.op_type == "Mul")   # lo / base
            const = next(i for i in comb.input if i in inits)
            replace_input(comb, const, new_const(1.0 / (2 * rowwise.W_DIGIT)))
        count("attention operands")
    return done


def exact_products(model) -> None:
    """Rewrite in place every row-wise ``MatMulInteger(uint8 A, B, ZERO)`` as ``MatMulInteger(int8 A - ZERO, B)``:
    exact on every CPU (onnxruntime's int8 x int8 kernel widens before adding) but much slower. The reference a
    graph made before ``W_DIGIT`` is measured against on a CPU that saturates."""
    from onnx import TensorProto, helper, numpy_helper

    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    zp32 = "exact_zero_i32"
    model.graph.initializer.append(numpy_helper.from_array(np.asarray(rowwise.ZERO, np.int32), zp32))
    def replace(n) -> list:
        ins = list(n.input)
        if len(ins) != 3 or ins[2] not in inits or int(inits[ins[2]]) != rowwise.ZERO:
            raise ValueError(f"exact_products knows row-wise MatMulInteger(A, B, {rowwise.ZERO}) only, got inputs {ins}")
        base = n.output[0]   # unique in the model: the new tensors are named after it
        return [helper.make_node("Cast", [ins[0]], [base + "/a_i32"], to=TensorProto.INT32),
                helper.make_node("Sub", [base + "/a_i32", zp32], [base + "/a_c"]),
                helper.make_node("Cast", [base + "/a_c"], [base + "/a_s8"], to=TensorProto.INT8),
                helper.make_node("MatMulInteger", [base + "/a_s8", ins[1]], list(n.output))]

    rewrite_nodes(model, "MatMulInteger", replace)
