"""One bundle, one answer: run every graph of the shipped bundles under onnxruntime (Python),
onnxruntime-node and onnxruntime-web (WebAssembly) on the same fixed inputs and compare.

    python -m rnnkit.export.conformance models/*  [--tokens 1000] [--timing-steps 300] [--json OUT]

Per graph and runtime:
- ``chunk``: a step graph fed its whole input in one call vs one token per call (state fed back),
  max |diff| over every output (logits and final state);
- ``batch``: row 0 of a batch of 8 (other rows other text, padded where lengths differ) vs the same
  row alone;
- ``vs_python``: max |diff| from onnxruntime (Python) on the same inputs, and the share of positions
  whose top-3 logits are the same set;
- ``step_p50_ms``: one token per call, batch 1, the state fed back (a keystroke), one thread. WebAssembly
  is timed after a warm-up, with V8's optimising compiler from the start (``node --no-liftoff``): the
  steady state a page reaches after its first seconds.

Inputs are real text (the corpus test split when fetched, else this repository's README) through the
bundle's tokenizer. The Node side is ``node/conformance.js`` (``npm ci --ignore-scripts`` in node/).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from rnnkit.edge import names as N
from rnnkit.edge.runner import zero_state_feeds

ROOT = Path(__file__).resolve().parents[1]
NODE_DIR = ROOT / "node"
RUNTIMES = ("onnxruntime-node", "onnxruntime-web")
CORPUS = {"suggest-en": ("suggest_en", "test.txt"), "char-shakespeare": ("shakespeare", "test.txt"),
          "sentiment-mr": ("mr", "test.tsv"), "translate-en-de": ("bible_en_de", "test.tsv"),
          "ner-conll": ("conll2003", "test.txt")}
BATCH, BATCH_TIME = 8, 48


def real_text(bundle_name: str, chars: int = 20000) -> tuple[str, str]:
    """(text, where from): the corpus test split when fetched, else README.md."""
    corpus, file = CORPUS.get(bundle_name, ("", ""))
    try:
        from rnnkit.core.data import data_root

        path = data_root() / "corpora" / corpus / file
        if corpus and path.is_file():
            text = path.read_text(encoding="utf-8")[:chars * 2]
            if corpus == "conll2003":  # token POS chunk NER: the tokens
                text = " ".join(line.split()[0] for line in text.splitlines()
                                if line.strip() and not line.startswith("-DOCSTART-"))
            elif file.endswith(".tsv"):  # score<TAB>text or en<TAB>de: the English column
                text = "\n".join(line.split("\t")[1 if corpus == "mr" else 0] for line in text.splitlines()
                                 if "\t" in line)
            return text[:chars], f"{corpus}/{file}"
    except (ImportError, OSError):
        pass
    return (ROOT / "README.md").read_text(encoding="utf-8")[:chars], "README.md"


def _tokenize(bundle, text: str) -> list[int]:
    from rnnkit.core.text.tokenizers import load_tokenizer

    return list(load_tokenizer(bundle.tokenizer_path.parent).encode(text))


def _zeros_state(sess, batch: int) -> dict[str, np.ndarray]:
    return zero_state_feeds(sess, batch)


def _rows(ids: list[int], n: int, t: int, pad: int) -> tuple[np.ndarray, np.ndarray]:
    """n rows of real tokens, row 0 the longest (t), the others shorter and padded."""
    x = np.full((n, t), pad, np.int64)
    lengths = np.zeros(n, np.int64)
    for r in range(n):
        length = t - (r * 5) % (t // 2) if r else t
        start = (r * 97) % max(1, len(ids) - t)
        x[r, :length] = ids[start:start + length]
        lengths[r] = length
    return x, lengths


def _series(n: int, features: int, shift: int = 0) -> np.ndarray:
    """A seasonal series in the forecaster's input layout: (z_t, sin, cos of a 12-step phase)."""
    t = np.arange(shift, shift + n, dtype=np.float64)
    phase = 2 * np.pi * t / 12
    cols = [0.8 * np.sin(phase + 0.3) + 0.2 * np.sin(t / 5.0), np.sin(phase), np.cos(phase)]
    return np.stack((cols * features)[:features], -1).astype(np.float32)


def _tagger_feeds(bundle, text: str, inputs: list[str]) -> tuple[dict, dict]:
    """words (lower-cased, digits -> 0) and characters of real text, as the tagger's vocabulary reads them."""
    import re

    voc = json.loads(bundle.tokenizer_path.read_text(encoding="utf-8"))
    w2i = {w: i for i, w in enumerate(voc["words"])}
    c2i = {c: i for i, c in enumerate(voc["chars"])}
    width = int(voc.get("max_word_len", 20))
    words = text.split()

    def row(ws, t):
        ids = np.zeros(t, np.int64)
        chars = np.zeros((t, width), np.int64)
        for k, w in enumerate(ws[:t]):
            ids[k] = w2i.get(re.sub(r"[0-9]", "0", w.lower()), 1)
            cs = [c2i.get(ch, 1) for ch in w[:width]]
            chars[k, :len(cs)] = cs
        return ids, chars

    t = min(64, len(words))
    ids, chars = row(words, t)
    one = {N.TOKENS: ids[None], N.LENGTHS: np.array([t], np.int64), N.CHARS: chars[None]}
    rows = [row(words, t)] + [row(words[37 * r:], t - (r * 5) % (t // 2)) for r in range(1, BATCH)]
    many = {N.TOKENS: np.stack([np.pad(r[0], (0, t - len(r[0]))) for r in rows]),
            N.LENGTHS: np.array([len(r[0]) for r in rows], np.int64),
            N.CHARS: np.stack([np.pad(r[1], ((0, t - len(r[1])), (0, 0))) for r in rows])}
    return ({k: v for k, v in one.items() if k in inputs}, {k: v for k, v in many.items() if k in inputs})


def build_cases(bundle_dirs: list[Path], tokens: int = 1000, timing_steps: int = 300,
                warmup_steps: int = 200) -> list[dict[str, Any]]:
    """Every graph of every bundle, with its inputs as numpy arrays (``feeds``) and, for step
    graphs, the state map; a ``batch`` twin per graph (batch of 8, row 0 = the single row)."""
    from rnnkit.edge.bundle import open_bundle
    from rnnkit.edge.runner import load_session

    cases = []
    for n_bundle, d in enumerate(bundle_dirs):
        b = open_bundle(d)
        text, source = real_text(Path(d).resolve().name)
        ids = _tokenize(b, text) if b.kind not in ("tagger", "forecaster") else []
        cfg = b.model_config
        pad = max(0, int(cfg.get("pad_id", 0)))
        for job in b.graphs:
            path = b.graph_path(job).resolve()
            sess = load_session(path)
            inputs = [i.name for i in sess.get_inputs()]
            outputs = [o.name for o in sess.get_outputs()]
            state = {i: o for i, o in ((n, "next_" + n) for n in inputs if N.is_state_input(n)) if o in outputs}
            base = {"name": f"{n_bundle}.{Path(d).name}.{job}", "bundle": str(d), "job": job, "graph": str(path),
                    "text": source}
            if b.kind == "lm":
                n = min(tokens, len(ids))
                one = {N.TOKENS: np.asarray(ids[:n], np.int64)[None], **_zeros_state(sess, 1)}
                x, _ = _rows(ids, BATCH, BATCH_TIME, pad)
                x[0] = one[N.TOKENS][0, :BATCH_TIME]
                many = {N.TOKENS: x, **_zeros_state(sess, BATCH)}
                timed = [N.TOKENS]
            elif b.kind == "classifier":
                n = min(64, len(ids))
                # a one-directional classifier's running graph carries state, like a step graph
                one = {N.TOKENS: np.asarray(ids[:n], np.int64)[None], **_zeros_state(sess, 1)}
                x, lengths = _rows(ids, BATCH, n, pad)
                many = {N.TOKENS: x, **_zeros_state(sess, BATCH)}
                if N.LENGTHS in inputs:
                    one[N.LENGTHS] = np.array([n], np.int64)
                    many[N.LENGTHS] = lengths
                timed = [N.TOKENS] if state and N.LENGTHS not in inputs else []
            elif b.kind == "seq2seq":
                src_n = 40
                if job == N.JOB_ENCODER:
                    one = {N.SRC: np.asarray(ids[:src_n], np.int64)[None], N.SRC_LEN: np.array([src_n], np.int64)}
                    x, lengths = _rows(ids, BATCH, src_n, pad)
                    many = {N.SRC: x, N.SRC_LEN: lengths}
                    timed = []
                else:  # the decoder: memory and state from the encoder (Python) on a real source
                    enc = load_session(b.graph_path(N.JOB_ENCODER))
                    src = np.asarray(ids[:src_n], np.int64)[None]
                    e = dict(zip([o.name for o in enc.get_outputs()],
                                 enc.run(None, {N.SRC: src, N.SRC_LEN: np.array([src_n], np.int64)})))
                    n = min(tokens, len(ids) - src_n)
                    bos = int(cfg.get("bos_id", 2))
                    prev = np.asarray([bos] + ids[src_n:src_n + n - 1], np.int64)[None]
                    one = {N.PREV: prev, N.MEMORY: e[N.MEMORY], N.SRC_MASK: e[N.SRC_MASK],
                           **{k: e[k] for k in state}}
                    many = {N.PREV: np.repeat(prev[:, :BATCH_TIME], BATCH, 0)}
                    many[N.PREV][1:] = _rows(ids, BATCH, BATCH_TIME, pad)[0][1:]
                    many.update({k: np.repeat(v, BATCH, 0 if k in (N.MEMORY, N.SRC_MASK) else 1)
                                 for k, v in one.items() if k != N.PREV})
                    timed = [N.PREV]
            elif b.kind == "tagger":
                one, many = _tagger_feeds(b, text, inputs)
                timed = []
            elif b.kind == "forecaster":
                n = min(tokens, 300)
                feats = _series(n, int(cfg.get("input_size", 3)))
                one = {N.FEATURES: feats[None], **_zeros_state(sess, 1)}
                rows = [feats[:BATCH_TIME]] + [_series(BATCH_TIME, feats.shape[1], shift=7 * r) for r in range(1, BATCH)]
                many = {N.FEATURES: np.stack(rows), **_zeros_state(sess, BATCH)}
                timed = [N.FEATURES]
                source = "a synthetic seasonal series"
                base["text"] = source
            else:
                continue
            step = bool(state and timed)
            cases.append({**base, "feeds": one, "state": state if step else None, "timed": timed,
                          "modes": ["whole", "stepped"] if step else ["whole"],
                          "timing_steps": timing_steps if step else 0, "warmup_steps": warmup_steps if step else 0})
            cases.append({**base, "name": base["name"] + ".batch8", "feeds": many, "state": None, "timed": [],
                          "modes": ["whole"], "timing_steps": 0, "warmup_steps": 0, "batch_of": base["name"]})
    return cases


def _dtype(a: np.ndarray) -> str:
    return {"float32": "float32", "int64": "int64", "bool": "bool", "int32": "int32", "uint8": "uint8"}[str(a.dtype)]


def write_spec(cases: list[dict[str, Any]], directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    spec = []
    for c in cases:
        feeds = {}
        for k, v in c["feeds"].items():
            f = f"in.{c['name']}.{k}.bin"
            np.ascontiguousarray(v).tofile(directory / f)
            feeds[k] = {"dtype": _dtype(v), "shape": list(v.shape), "file": f}
        spec.append({k: v for k, v in c.items() if k not in ("feeds",)} | {"feeds": feeds})
    path = directory / "spec.json"
    path.write_text(json.dumps({"cases": spec}, indent=1))
    return path


def run_python(cases: list[dict[str, Any]]) -> dict[str, Any]:
    """The same modes as node/conformance.js, with onnxruntime (Python), one thread."""
    from rnnkit.edge.runner import load_session

    out: dict[str, Any] = {}
    for c in cases:
        sess = load_session(c["graph"])
        names = [o.name for o in sess.get_outputs()]
        res: dict[str, Any] = {"outputs": {}}
        if "whole" in c["modes"]:
            res["outputs"]["whole"] = dict(zip(names, sess.run(None, c["feeds"])))
        if c["state"]:
            feeds = dict(c["feeds"])
            T = feeds[c["timed"][0]].shape[1]
            parts: dict[str, list] = {}
            last = {}
            for t in range(T):
                for k in c["timed"]:
                    feeds[k] = c["feeds"][k][:, t:t + 1]
                r = dict(zip(names, sess.run(None, feeds)))
                for k, v in r.items():
                    if k in c["state"].values():
                        last[k] = v
                    else:
                        parts.setdefault(k, []).append(v)
                for i, o in c["state"].items():
                    feeds[i] = r[o]
            res["outputs"]["stepped"] = {k: np.concatenate(v, axis=1) for k, v in parts.items()} | last
        if c["state"] and c["timing_steps"]:
            times = []
            feeds = dict(c["feeds"])
            for n in range(c["warmup_steps"] + c["timing_steps"]):
                for k in c["timed"]:
                    feeds[k] = c["feeds"][k][:, n % T:n % T + 1]
                t0 = time.perf_counter()
                r = dict(zip(names, sess.run(None, feeds)))
                if n >= c["warmup_steps"]:
                    times.append(time.perf_counter() - t0)
                for i, o in c["state"].items():
                    feeds[i] = r[o]
                if n % T == T - 1:
                    feeds.update({i: c["feeds"][i] for i in c["state"]})
            res["step_p50_ms"] = 1000 * float(np.median(times))
            res["step_p90_ms"] = 1000 * float(np.percentile(times, 90))
        out[c["name"]] = res
    return out


def node_available() -> str | None:
    """Why the Node runtimes cannot run here (None when they can)."""
    if shutil.which("node") is None:
        return "node is not installed (apt-get install -y nodejs npm)"
    missing = [r for r in RUNTIMES if not (NODE_DIR / "node_modules" / r / "package.json").is_file()]
    if missing:
        return f"{', '.join(missing)} not installed: run `npm ci --ignore-scripts` in {NODE_DIR}"
    return None


def run_node(spec: Path, out_dir: Path, runtimes=RUNTIMES, timeout: float = 1800) -> dict[str, Any]:
    """Run node/conformance.js; returns {runtime: {case: {"outputs": {mode: {name: array}}, ...}}}."""
    cmd = ["node", "--no-liftoff", str(NODE_DIR / "conformance.js"), str(spec), str(out_dir), *runtimes]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=NODE_DIR)
    if proc.returncode != 0:
        raise RuntimeError(f"node conformance.js failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    results = {}
    np_types = {"float32": np.float32, "int64": np.int64, "bool": np.bool_, "int32": np.int32, "uint8": np.uint8}
    for rt in runtimes:
        rep = json.loads((out_dir / rt / "report.json").read_text())
        for case in rep["cases"].values():
            for mode, outs in case["outputs"].items():
                for k, spec_ in outs.items():
                    a = np.fromfile(out_dir / rt / spec_["file"], np_types[spec_["dtype"]])
                    outs[k] = a.reshape(spec_["shape"])
        rep["cases"]["_version"] = rep["version"]
        results[rt] = rep["cases"]
    return results


def _diff(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    keys = [k for k in a if k in b and a[k].dtype != np.bool_]
    return max((float(np.abs(a[k].astype(np.float64) - b[k].astype(np.float64)).max()) for k in keys if a[k].size),
               default=0.0)


def _top3_same(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1])
    ta, tb = np.sort(np.argsort(-a, -1)[:, :3], -1), np.sort(np.argsort(-b, -1)[:, :3], -1)
    return float((ta == tb).all(-1).mean())


def _batch_diff(single: dict[str, np.ndarray], batch: dict[str, np.ndarray]) -> float:
    """Row 0 of a batch-of-8 call vs the single-row call, on their common time span. A step graph's
    next state is left out (the single call ran more tokens); a state an encoder makes has its batch on
    axis 1."""
    worst = 0.0
    for k, a in single.items():
        if N.is_state_output(k) or a.dtype == np.bool_ or not a.size:
            continue
        b = batch[k]
        if N.is_state_input(k):
            a, b = a[:, :1], b[:, :1]
        else:
            a, b = a[:1], b[:1]
            if a.ndim >= 2 and a.shape[1] != b.shape[1]:
                t = min(a.shape[1], b.shape[1])
                a, b = a[:, :t], b[:, :t]
        worst = max(worst, float(np.abs(a.astype(np.float64) - b).max()))
    return worst


def compare(cases: list[dict[str, Any]], results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (graph, runtime): chunk, batch, vs_python, top3_same, step_p50_ms."""
    rows = []
    singles = [c for c in cases if "batch_of" not in c]
    for c in singles:
        batch_case = next(x for x in cases if x.get("batch_of") == c["name"])
        ref = results["python"][c["name"]]["outputs"]
        for rt, res in results.items():
            r = res[c["name"]]
            outs = r["outputs"]
            row: dict[str, Any] = {"graph": f"{c['bundle']}/{Path(c['graph']).name}", "runtime": rt,
                                   "step_graph": bool(c["state"]), "text": c["text"]}
            if c["state"]:
                row["chunk"] = _diff(outs["whole"], outs["stepped"])
                row["step_p50_ms"] = r.get("step_p50_ms")
            row["batch"] = _batch_diff(outs["whole"], res[batch_case["name"]]["outputs"]["whole"])
            if rt != "python":
                row["vs_python"] = max(_diff(ref[m], outs[m]) for m in outs)
                row["vs_python_batch"] = _diff(results["python"][batch_case["name"]]["outputs"]["whole"],
                                               res[batch_case["name"]]["outputs"]["whole"])
                logits = "stepped" if c["state"] else "whole"
                if N.LOGITS in outs[logits] and outs[logits][N.LOGITS].shape[-1] >= 3:
                    row["top3_same"] = _top3_same(ref[logits][N.LOGITS], outs[logits][N.LOGITS])
                row["version"] = res.get("_version")
            rows.append(row)
    return rows


def run_all(bundle_dirs: list[Path], tokens: int = 1000, timing_steps: int = 300, warmup_steps: int = 200,
            runtimes=RUNTIMES, workdir: Path | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    cases = build_cases([Path(d) for d in bundle_dirs], tokens, timing_steps, warmup_steps)
    with tempfile.TemporaryDirectory(prefix="rnnkit-conformance-") as tmp:
        work = Path(workdir or tmp)
        spec = write_spec(cases, work)
        results: dict[str, Any] = {"python": run_python(cases)}
        if runtimes:
            results.update(run_node(spec, work / "out", runtimes))
        return compare(cases, results), results


def format_table(rows: list[dict[str, Any]]) -> str:
    head = "| graph | runtime | chunk | batch | vs python (top-3 same) | step p50 |\n|---|---|---|---|---|---|"
    lines = [head]
    for r in rows:
        vs = "-" if r["runtime"] == "python" else f"{r['vs_python']:.1e}" + (
            f" ({r['top3_same']:.1%})" if "top3_same" in r else "")
        chunk = f"{r['chunk']:.1e}" if "chunk" in r else "-"
        p50 = f"{r['step_p50_ms']:.3f} ms" if r.get("step_p50_ms") is not None else "-"
        lines.append(f"| {r['graph']} | {r['runtime']} | {chunk} | {r['batch']:.1e} | {vs} | {p50} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m rnnkit.export.conformance", description=__doc__.splitlines()[0])
    p.add_argument("bundles", nargs="+")
    p.add_argument("--tokens", type=int, default=1000, help="tokens of real text per step graph (default 1000)")
    p.add_argument("--timing-steps", type=int, default=300)
    p.add_argument("--warmup-steps", type=int, default=200)
    p.add_argument("--python-only", action="store_true")
    p.add_argument("--json", metavar="FILE", help="write the rows as JSON")
    args = p.parse_args(argv)
    why = None if args.python_only else node_available()
    if why:
        print(f"note: {why}; Python only", file=sys.stderr)
    rows, _ = run_all(args.bundles, args.tokens, args.timing_steps, args.warmup_steps,
                      () if (args.python_only or why) else RUNTIMES)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(format_table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
