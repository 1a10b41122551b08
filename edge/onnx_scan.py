"""Read an ONNX file's metadata and every file it would pull in, without onnx or onnxruntime.

Why: onnxruntime follows a tensor's ``external_data`` "location" to any file beside the graph,
so a bundle whose manifest hashes the graph can still run weights from an unlisted file. The
bundle reader (``edge/bundle.py``) therefore lists those locations *before* any session is
made and refuses the ones the manifest does not hash. The same pass yields ``metadata_props``
(tokenizer hash, dimensions) and the top-level initializers' shapes, so they can be checked
before anything is allocated from them.

A small protobuf wire-format walker over the messages that can hold a tensor (onnx.proto field
numbers): Model{7 graph, 14 metadata_props, 20 training_info, 25 functions},
Graph{1 node, 5 initializer, 15 sparse_initializer}, Node{5 attribute},
Attribute{5 t, 6 g, 10 tensors, 11 graphs, 22 sparse_tensor, 23 sparse_tensors},
SparseTensor{1 values, 2 indices}, TrainingInfo{1 initialization, 2 algorithm}, Function{7 node},
Tensor{1 dims, 8 name, 13 external_data, 14 data_location}. Torch-free and onnx-free.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_DEPTH = 48             # nested subgraphs (If/Loop bodies); ours have none
MAX_MESSAGES = 2_000_000   # a hostile file of millions of tiny messages is refused, not walked for minutes
EXTERNAL = 1               # TensorProto.DataLocation.EXTERNAL

# message kind -> {field number: message kind of that field}
_SCHEMA = {
    "model": {7: "graph", 14: "entry", 20: "training", 25: "function"},
    "graph": {1: "node", 5: "init", 15: "sparse"},
    "node": {5: "attr"},
    "attr": {5: "tensor", 6: "graph", 10: "tensor", 11: "graph", 22: "sparse", 23: "sparse"},
    "sparse": {1: "tensor", 2: "tensor"},
    "training": {1: "graph", 2: "graph"},
    "function": {7: "node"},
}


class ScanError(ValueError):
    """Not a readable ONNX protobuf (truncated, corrupt, too deeply nested)."""


@dataclass
class GraphScan:
    metadata: dict[str, str] = field(default_factory=dict)
    external: list[tuple[str, str]] = field(default_factory=list)   # (tensor name, location)
    initializers: dict[str, tuple[int, ...]] = field(default_factory=dict)  # main graph: name -> dims


def _varint(buf: memoryview, i: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if i >= end:
            raise ScanError("truncated varint")
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7
        if shift > 63:
            raise ScanError("varint longer than 10 bytes")


def _fields(buf: memoryview, start: int, end: int):
    """(field number, wire type, value): varints as ints, length-delimited as (start, end)."""
    i = start
    while i < end:
        key, i = _varint(buf, i, end)
        num, wire = key >> 3, key & 7
        if wire == 0:
            val, i = _varint(buf, i, end)
            yield num, wire, val
        elif wire == 2:
            n, i = _varint(buf, i, end)
            if n > end - i:
                raise ScanError("a field runs past the end of its message (truncated file?)")
            yield num, wire, (i, i + n)
            i += n
        elif wire in (1, 5):
            i += 8 if wire == 1 else 4
            if i > end:
                raise ScanError("truncated fixed-width field")
        else:  # groups (3, 4) are not used by onnx.proto; anything else is garbage
            raise ScanError(f"unexpected wire type {wire}")


def _text(buf: memoryview, span: tuple[int, int]) -> str:
    return bytes(buf[span[0]:span[1]]).decode("utf-8", "replace")


def _entry(buf: memoryview, span: tuple[int, int]) -> tuple[str, str]:
    key = value = ""
    for num, wire, val in _fields(buf, *span):
        if wire == 2 and num == 1:
            key = _text(buf, val)
        elif wire == 2 and num == 2:
            value = _text(buf, val)
    return key, value


def scan_onnx(data: bytes | memoryview) -> GraphScan:
    """Metadata, external-data locations and main-graph initializer shapes of a serialized ModelProto."""
    buf = memoryview(data)
    out = GraphScan()
    budget = [MAX_MESSAGES]

    def tensor(span, top: bool) -> None:
        name, dims, location, external = "", [], None, False
        for num, wire, val in _fields(buf, *span):
            if num == 8 and wire == 2:
                name = _text(buf, val)
            elif num == 1 and wire == 0:
                dims.append(val)
            elif num == 1 and wire == 2:  # packed dims
                j, e = val
                while j < e:
                    d, j = _varint(buf, j, e)
                    dims.append(d)
            elif num == 13 and wire == 2:
                key, value = _entry(buf, val)
                external = True
                if key == "location":
                    location = value
            elif num == 14 and wire == 0 and val == EXTERNAL:
                external = True
        if external:
            out.external.append((name, location if location is not None else ""))
        if top:
            # int64 dims arrive as unsigned varints: a negative dim is a huge number here, refused later
            out.initializers[name] = tuple(dims)

    def walk(kind: str, span, depth: int) -> None:
        budget[0] -= 1
        if budget[0] < 0:
            raise ScanError(f"more than {MAX_MESSAGES:,} protobuf messages")
        if depth > MAX_DEPTH:
            raise ScanError(f"nested deeper than {MAX_DEPTH} levels")
        children = _SCHEMA[kind]
        for num, wire, val in _fields(buf, *span):
            if wire != 2 or num not in children:
                continue
            child = children[num]
            if child == "entry":
                key, value = _entry(buf, val)
                out.metadata[key] = value
            elif child in ("tensor", "init"):
                tensor(val, top=child == "init" and depth == 1)
            else:
                walk(child, val, depth + 1)

    walk("model", (0, len(buf)), 0)
    return out
