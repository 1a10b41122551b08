"""Which operators a graph uses, and which onnxruntime packages run it (torch-free).

``rnnkit verify`` and the manifest (``graph_ops``) list them, so an app developer knows before
shipping whether a bundle runs on a phone or in a browser. The answer per package:

- onnxruntime (Python), onnxruntime-node, onnxruntime-web (WebAssembly): run on every shipped
  step graph by the conformance test (``tests/test_conformance_js.py``, ``node/conformance.js``);
- onnxruntime-android (Maven) and onnxruntime-objc (CocoaPods): the full packages hold every CPU
  operator of their version (the reduced "mobile" packages were retired after 1.15); not run here.

A standard-domain graph (the row-wise int8 export) needs only an onnxruntime that knows its opset;
com.microsoft operators add their own minimum versions (``CONTRIB_MIN``).
"""

from __future__ import annotations

import os
from typing import Any

from .onnx_graphs import all_graphs

PACKAGES = ("onnxruntime", "onnxruntime-node", "onnxruntime-web", "onnxruntime-android", "onnxruntime-objc")
TESTED = ("onnxruntime", "onnxruntime-node", "onnxruntime-web")
# the first onnxruntime release that runs an opset (CPU execution provider)
OPSET_MIN = {13: "1.7", 14: "1.10", 15: "1.11", 16: "1.12", 17: "1.13", 18: "1.14", 19: "1.16", 20: "1.17",
             21: "1.18"}
# com.microsoft operators our exports can hold, and the first release that runs them as we use them
CONTRIB_MIN = {"DynamicQuantizeLSTM": "1.7", "DynamicQuantizeMatMul": "1.7", "MatMulIntegerToFloat": "1.7",
               "MatMulNBits": "1.22"}  # 8-bit MatMulNBits on CPU: 1.22


def graph_ops(path: str | os.PathLike) -> dict[str, Any]:
    """``{"opset": n, "ops": {"[domain.]Op": count}}`` of a graph, subgraphs (Scan / If bodies) included."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    counts: dict[str, int] = {}

    for g in all_graphs(model.graph):
        for n in g.node:
            key = f"{n.domain}.{n.op_type}" if n.domain not in ("", "ai.onnx") else n.op_type
            counts[key] = counts.get(key, 0) + 1
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    return {"opset": opset, "ops": dict(sorted(counts.items()))}


def _vkey(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split("."))


def runs_on(listing: dict[str, Any]) -> dict[str, Any]:
    """``{"min_onnxruntime": "1.x", "packages": {package: "tested" | "full package"}}`` for a
    ``graph_ops`` listing; an operator we know nothing about names itself in ``unknown``."""
    need = [OPSET_MIN.get(listing.get("opset", 0), "1.7")]
    unknown = []
    for op in listing.get("ops", {}):
        if op.startswith("com.microsoft."):
            name = op.split(".", 2)[2]
            if name in CONTRIB_MIN:
                need.append(CONTRIB_MIN[name])
            else:
                unknown.append(op)
    out: dict[str, Any] = {"min_onnxruntime": max(need, key=_vkey),
                           "packages": {p: ("tested" if p in TESTED else "full package") for p in PACKAGES}}
    if unknown:
        out["unknown"] = unknown
    return out


def describe(listing: dict[str, Any]) -> str:
    """One line: the operators, then where they run."""
    ops = ", ".join(f"{k}×{v}" if v > 1 else k for k, v in listing["ops"].items())
    r = runs_on(listing)
    tested = ", ".join(p for p, how in r["packages"].items() if how == "tested")
    full = ", ".join(p for p, how in r["packages"].items() if how != "tested")
    return (f"opset {listing['opset']}: {ops}; runs on onnxruntime >= {r['min_onnxruntime']}: "
            f"{tested} (tested), {full} (full packages)")


def card_section(manifest: dict[str, Any]) -> str:
    """The model card's "Runs on" section (markdown) from a manifest's ``graph_ops`` / ``int8_options``."""
    ops = manifest.get("graph_ops") or {}
    if not ops:
        return ""
    lines = ["## Runs on", "", "| graph | operators (subgraphs included) | onnxruntime packages |", "|---|---|---|"]
    for file, entry in ops.items():
        listing = ", ".join(f"{k}×{v}" if v > 1 else k for k, v in entry["ops"].items())
        pk = entry.get("packages") or runs_on(entry)["packages"]
        tested = ", ".join(p for p, how in pk.items() if how == "tested")
        full = ", ".join(p for p, how in pk.items() if how != "tested")
        lines.append(f"| `{file}` | opset {entry['opset']}: {listing} | >= {entry.get('min_onnxruntime', '?')}: "
                     f"{tested} (run by tests/test_conformance_js.py); {full} (full packages) |")
    opt = manifest.get("int8_options") or {}
    if opt.get("scheme") == "rowwise-int8":
        lines += ["", f"int8: row-wise, target {opt.get('target', 'portable')} ({opt.get('weights')}; activations "
                      f"{opt.get('activations')}; LSTM {opt.get('lstm')}): a token's logits do not depend on how the "
                      "text was chunked or batched" + (", and are the same on every onnxruntime."
                                                        if opt.get("target", "portable") == "portable" else ".")]
        rolls = {j: f["rollout_step_vs_whole"] for j, f in (manifest.get("int8") or {}).items()
                 if isinstance(f, dict) and "rollout_step_vs_whole" in f}
        if rolls:
            lines[-1] += " One call vs one token per call: max abs diff " + ", ".join(
                f"{j} {v:.1e}" for j, v in rolls.items()) + "."
    req = manifest.get("requantized")
    if req:
        lines += ["", f"Re-quantised: {req['note']}" + (f" Command: `{req['command']}`." if req.get("command") else "")]
    if manifest.get("ort_graphs"):
        lines += ["", "ORT format (mobile): " + ", ".join(f"`{f}`" for f in manifest["ort_graphs"].values()) + "."]
    return "\n".join(lines)
