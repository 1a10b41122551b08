"""Step graphs side by side: chunking / batching / runtime differences, one-token step time, size, perplexity.

    python bench/step_speed.py models/suggest-en                       # the shipped graph alone
    python bench/step_speed.py models/suggest-en --run /work/runs/suggest-en \\
        --variants portable,native,dynamic --graph before=OLD.onnx --json docs/results/step_speed.json

One row per graph variant and runtime (onnxruntime Python, onnxruntime-node, onnxruntime-web = WebAssembly):

- ``chunk``: the bundle's real text fed in one call vs one token per call (state fed back), max |diff| over
  every output; ``batch``: row 0 of a batch of 8 vs the same row alone; ``vs_python``: max |diff| from
  onnxruntime (Python) and the share of positions with the same top-3 (``rnnkit.export.conformance``);
- ``step p50``: one token per call, batch 1, state fed back, one thread. The int8 graphs of a runtime are
  timed in ONE run, interleaved (A, B, C, A, B, C, ... and then reversed), so the load of this shared machine
  falls on all of them alike: compare the ratios (``x``, to the first graph) before the absolute figures
  (fp32 is interleaved with the reference alone and scaled by its ratio: its 26 MB would evict the others'
  weights from the cache). Wall time and, beside it, the CPU time of the call (``cpu``: the thread's
  (Python) or the process's (Node) CPU time, which other processes taking the core do not inflate). With
  ``--solo N``, ``alone p50``: each graph timed by itself (its weights alone in the cache, as on a device);
- ``size``: the graph file; ``ppl``: perplexity of each graph over ``--ppl-tokens`` tokens of the recipe's
  validation text, relative to the fp32 graph (``--run``: exported from the run's weights).

Variants (``--variants``, with ``--run`` or ``--fp32``): ``portable`` / ``native`` (row-wise int8, gates by
table lookup / by onnxruntime's Tanh and Sigmoid), ``dynamic`` (onnxruntime's quantize_dynamic + MatMulNBits
head), ``fp32``; ``--graph LABEL=PATH`` adds any step graph (e.g. a previous export). The first graph
(the bundle's own, labelled ``shipped``) is the reference of the ratios.
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _session(path):
    from rnnkit.edge.runner import load_session

    return load_session(str(path))


def time_python(graphs: dict[str, Path], tokens: np.ndarray, steps: int, warmup: int) -> dict[str, dict]:
    """One-token steps of every graph, interleaved; wall and thread-CPU time per call."""
    from rnnkit.edge import names as N
    from rnnkit.edge.runner import zero_state_feeds

    runs = []
    for label, path in graphs.items():
        s = _session(path)
        zeros = zero_state_feeds(s, 1)
        runs.append({"label": label, "s": s, "names": [o.name for o in s.get_outputs()], "zeros": zeros,
                     "state": dict(zeros), "wall": [], "cpu": []})
    T = tokens.shape[0]
    for n in range(warmup + steps):
        order = runs if n % 2 == 0 else runs[::-1]
        tok = tokens[n % T].reshape(1, 1)
        for r in order:
            w0, c0 = time.perf_counter(), time.thread_time()
            out = r["s"].run(None, {N.TOKENS: tok, **r["state"]})
            w, c = time.perf_counter() - w0, time.thread_time() - c0
            if n >= warmup:
                r["wall"].append(w)
                r["cpu"].append(c)
            d = dict(zip(r["names"], out))
            r["state"] = dict(r["zeros"]) if n % T == T - 1 else {i: d["next_" + i] for i in r["state"]}
    return {r["label"]: {"p50_ms": 1e3 * float(np.median(r["wall"])), "p10_ms": 1e3 * float(np.percentile(r["wall"], 10)),
                         "cpu_p50_ms": 1e3 * float(np.median(r["cpu"]))} for r in runs}


def time_node(graphs: dict[str, Path], tokens: np.ndarray, runtime: str, steps: int, warmup: int) -> dict[str, dict]:
    """The same in onnxruntime-node / onnxruntime-web (node/step_speed.js), interleaved in one Node process."""
    from rnnkit.export.conformance import NODE_DIR

    with tempfile.TemporaryDirectory(prefix="rnnkit-step-speed-") as tmp:
        tmp = Path(tmp)
        tokens.reshape(1, -1).astype(np.int64).tofile(tmp / "tokens.bin")
        cases = []
        for label, path in graphs.items():
            s = _session(path)
            feeds = {"tokens": {"dtype": "int64", "shape": [1, int(tokens.size)], "file": "tokens.bin"}}
            state = {}
            for i in s.get_inputs():
                if i.name != "tokens":
                    shape = [1 if not isinstance(d, int) else d for d in i.shape]
                    np.zeros(shape, np.float32).tofile(tmp / f"{i.name}.{len(cases)}.bin")
                    feeds[i.name] = {"dtype": "float32", "shape": shape, "file": f"{i.name}.{len(cases)}.bin"}
                    state[i.name] = "next_" + i.name
            cases.append({"name": label, "graph": str(Path(path).resolve()), "feeds": feeds, "state": state,
                          "timed": ["tokens"]})
        (tmp / "spec.json").write_text(json.dumps({"cases": cases}))
        proc = subprocess.run(["node", "--no-liftoff", str(NODE_DIR / "step_speed.js"), str(tmp / "spec.json"),
                               str(tmp / "out.json"), runtime, str(steps), str(warmup)],
                              capture_output=True, text=True, cwd=NODE_DIR, timeout=3600, check=False)
        if proc.returncode:
            raise RuntimeError(f"node step_speed.js ({runtime}) failed: {proc.stderr.strip()[-1500:]}")
        rep = json.loads((tmp / "out.json").read_text())
    return {k: {"p50_ms": v["p50_ms"], "p10_ms": v["p10_ms"], "cpu_p50_ms": v["cpu_p50_ms"], "version": rep["version"]}
            for k, v in rep["cases"].items()}


def differences(bundle: Path, graphs: dict[str, Path], tokens: int, runtimes) -> dict[tuple[str, str], dict]:
    """conformance's chunk / batch / vs-python figures for every graph, on the bundle's real text."""
    from rnnkit.export import conformance as C

    base = C.build_cases([bundle], tokens=tokens, timing_steps=0, warmup_steps=0)
    base = [c for c in base if c["job"] == "step"]
    cases = []
    for label, path in graphs.items():
        for c in base:
            c2 = {**c, "graph": str(Path(path).resolve()), "name": f"{label}.{c['name']}", "timing_steps": 0,
                  "warmup_steps": 0}
            if "batch_of" in c:
                c2["batch_of"] = f"{label}.{c['batch_of']}"
            cases.append(c2)
    with tempfile.TemporaryDirectory(prefix="rnnkit-step-diff-") as tmp:
        spec = C.write_spec(cases, Path(tmp))
        results = {"python": C.run_python(cases)}
        if runtimes:
            results.update(C.run_node(spec, Path(tmp) / "out", runtimes))
    return _by_label(C.compare(cases, results), graphs)


def _by_label(rows, graphs: dict[str, Path]) -> dict[tuple[str, str], dict]:
    """compare() names a row by bundle + file; map it back to the variant label by the order of the cases."""
    out = {}
    per_label = len(rows) // max(1, len(graphs))
    for k, (label, _) in enumerate(graphs.items()):
        for r in rows[k * per_label:(k + 1) * per_label]:
            out[(label, r["runtime"])] = r
    return out


def perplexities(graphs: dict[str, Path], ids, max_tokens: int) -> dict[str, float]:
    from rnnkit.export.quantize import lm_stream_eval

    sessions = {label: _session(p) for label, p in graphs.items()}
    rep = lm_stream_eval(sessions, ids, max_tokens=max_tokens)
    return {label: float(rep[label]["ppl"]) for label in graphs}


def build_variants(fp32: Path, variants: list[str], out: Path) -> dict[str, Path]:
    from rnnkit.export.quantize import quantize_graph

    made = {}
    for v in variants:
        if v == "fp32":
            made[v] = fp32
        elif v in ("portable", "native"):
            made[v] = quantize_graph(fp32, out / f"step.rowwise-{v}.onnx", target=v)
        elif v == "dynamic":
            made[v] = quantize_graph(fp32, out / "step.dynamic.onnx", scheme="dynamic")
        else:
            raise ValueError(f"unknown variant {v!r}")
    return made


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("bundle", help="a language-model bundle (its step graph is the reference, 'shipped')")
    p.add_argument("--run", help="the bundle's training run: fp32 step graph exported from it (variants, perplexity)")
    p.add_argument("--fp32", help="an fp32 step graph instead of --run")
    p.add_argument("--variants", default="portable,native,dynamic", help="built from the fp32 graph (comma list)")
    p.add_argument("--graph", action="append", default=[], metavar="LABEL=PATH", help="another step graph")
    p.add_argument("--steps", type=int, default=2000, help="timed one-token steps per graph and runtime")
    p.add_argument("--warmup", type=int, default=300)
    p.add_argument("--tokens", type=int, default=1000, help="tokens of real text for the differences")
    p.add_argument("--ppl-tokens", type=int, default=20000, help="validation tokens for perplexity (0: skip)")
    p.add_argument("--runtimes", default="python,onnxruntime-node,onnxruntime-web")
    p.add_argument("--solo", type=int, default=0, metavar="STEPS",
                   help="also time each graph alone (STEPS steps, twice: forward and backward order)")
    p.add_argument("--json", help="write the rows here")
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from rnnkit.edge.bundle import open_bundle
    from rnnkit.export import conformance as C
    from rnnkit.export.conformance import node_available

    bundle = Path(args.bundle)
    b = open_bundle(bundle)
    graphs: dict[str, Path] = {"shipped": b.graph_path("step").resolve()}
    for g in args.graph:
        label, path = g.split("=", 1)
        graphs[label] = Path(path)
    runtimes = [r for r in args.runtimes.split(",") if r]
    why = node_available() if any(r != "python" for r in runtimes) else None
    if why:
        print(f"note: {why}; Python only", file=sys.stderr)
        runtimes = ["python"]
    with tempfile.TemporaryDirectory(prefix="rnnkit-step-variants-") as tmp:
        tmp = Path(tmp)
        fp32 = Path(args.fp32) if args.fp32 else None
        if args.run and not fp32:
            from rnnkit.core.models import registry
            from rnnkit.export.build_bundle import resolve_model_dir
            from rnnkit.export.onnx_export import export_model

            fp32 = export_model(registry.load(resolve_model_dir(args.run)[1]), tmp / "fp32")["step"]
        if fp32:
            graphs.update(build_variants(fp32, [v for v in args.variants.split(",") if v], tmp))
        sizes = {label: os.path.getsize(p) for label, p in graphs.items()}
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; graphs: "
              + ", ".join(f"{k}={v}" for k, v in graphs.items()), flush=True)
        diffs = differences(bundle, graphs, args.tokens,
                            tuple(r for r in runtimes if r != "python"))
        text = diffs.get(("shipped", "python"), {}).get("text", "")
        ppl = {}
        if args.ppl_tokens and fp32:
            from rnnkit.export.requantize import _lm_ids

            try:
                ids, _ = _lm_ids(b, bundle.resolve().name)
                ppl = perplexities(graphs, ids, args.ppl_tokens)
                ppl = {k: v / ppl["fp32"] for k, v in ppl.items()} if "fp32" in ppl else {}
            except (OSError, ValueError, KeyError) as e:
                print(f"note: no perplexity ({e})", file=sys.stderr)
        toks = np.asarray(C._tokenize(b, C.real_text(bundle.resolve().name)[0])[:300], np.int64)
        timing, solo = {}, {}

        def timed(gs, rt, steps):
            return (time_python(gs, toks, steps, args.warmup) if rt == "python"
                    else time_node(gs, toks, rt, steps, args.warmup))

        for rt in runtimes:
            load0 = os.getloadavg()[0]
            # interleaved: the int8 graphs together; fp32 (26 MB on suggest-en) would evict their weights from the
            # last-level cache, so it is interleaved with the reference alone
            small = {k: v for k, v in graphs.items() if k != "fp32"}
            timing[rt] = timed(small, rt, args.steps)
            if "fp32" in graphs:
                pair = timed({"shipped": graphs["shipped"], "fp32": graphs["fp32"]}, rt, args.steps)
                timing[rt]["fp32"] = {**pair["fp32"], "p50_ms": pair["fp32"]["p50_ms"] / pair["shipped"]["p50_ms"]
                                      * timing[rt]["shipped"]["p50_ms"], "measured_p50_ms": pair["fp32"]["p50_ms"]}
            if args.solo:
                # each graph alone (what a device runs), forward then backward order, median of the two
                runs = {k: [] for k in graphs}
                for order in (list(graphs), list(graphs)[::-1]):
                    for k in order:
                        runs[k].append(timed({k: graphs[k]}, rt, args.solo)[k]["p50_ms"])
                solo[rt] = {k: float(np.median(v)) for k, v in runs.items()}
            timing[rt]["_load"] = (load0, os.getloadavg()[0])
    rows = []
    for rt in runtimes:
        ref = timing[rt]["shipped"]["p50_ms"]
        for label in graphs:
            d = diffs.get((label, rt), {})
            t = timing[rt][label]
            rows.append({"graph": label, "runtime": rt, "chunk": d.get("chunk"), "batch": d.get("batch"),
                         "vs_python": d.get("vs_python"), "top3_same": d.get("top3_same"),
                         "step_p50_ms": t["p50_ms"], "step_p10_ms": t["p10_ms"], "cpu_p50_ms": t["cpu_p50_ms"],
                         "ratio": t["p50_ms"] / ref, "size_bytes": sizes[label], "ppl_vs_fp32": ppl.get(label),
                         "solo_p50_ms": solo.get(rt, {}).get(label),
                         "load": timing[rt]["_load"]})
    print(f"differences on {text}; timing: {args.steps} interleaved steps per graph after {args.warmup}; "
          f"ratio = p50 / p50 of 'shipped' in the same run")
    print("| graph | runtime | chunk | batch | vs python (top-3 same) | step p50 (x shipped) | cpu p50 | alone p50 "
          "| size | ppl / fp32 |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        vs = "-" if r["vs_python"] is None else f"{r['vs_python']:.1e}" + (
            f" ({r['top3_same']:.1%})" if r["top3_same"] is not None else "")
        f = lambda v: "-" if v is None else f"{v:.1e}"
        ppl_s = "-" if r["ppl_vs_fp32"] is None else f"{r['ppl_vs_fp32']:.4f}"
        print(f"| {r['graph']} | {r['runtime']} | {f(r['chunk'])} | {f(r['batch'])} | {vs} | "
              f"{r['step_p50_ms']:.3f} ms ({r['ratio']:.2f}) | {r['cpu_p50_ms']:.3f} ms | "
              + ("-" if r["solo_p50_ms"] is None else f"{r['solo_p50_ms']:.3f} ms") + " | "
              f"{r['size_bytes'] / 1e6:.3f} MB | {ppl_s} |")
    print("load average during timing: " + ", ".join(f"{rt} {a:.1f}->{b_:.1f}" for rt, (a, b_) in
                                                   ((rt, timing[rt]["_load"]) for rt in runtimes)))
    if args.json:
        Path(args.json).write_text(json.dumps({"command": "python bench/step_speed.py " + " ".join(argv or sys.argv[1:]),
                                               "text": text, "steps": args.steps, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
