"""Per-keystroke latency of the edge runner: fp32 and int8 ONNX vs PyTorch eager vs the floors.

    python bench/edge_latency.py --bundle models/suggest-en  # the shipped bundle (a fresh clone can run it)
    python bench/edge_latency.py --run RUN_DIR               # a trained LM run (model/ + tokenizer.model)
    python bench/edge_latency.py --synthetic                 # untrained 2x512 LSTM, 8 k vocabulary

Prints (and with --out writes as JSON):
1. one step that adds one token (B=1, T=1, state carried), one thread: p50/p99 for onnxruntime
   fp32 and int8 through ``StepRunner``, for PyTorch eager (oneDNN on and off), and two floors:
   FLOPs per step / this core's single-thread sgemm rate, and weight bytes read per step / this
   core's streaming rate (a one-token step reads every weight once and does 2 FLOPs per weight,
   so it is bound by memory, not arithmetic); and a measured one: the int8 graph's own matrix products
   (its MatMulIntegers with their weights) timed alone beside the step, so the rest of the step is what
   a rewrite of the graph could win without a smaller model. With ``--bundle`` the int8 graph is the shipped one;
   fp32 and eager run a model of the same configuration with random weights (their time does not
   depend on the values), since a shipped int8-only bundle holds no fp32 weights;
2. the int8 step at the batch sizes the word search uses (one call scores up to ``beam`` pieces);
3. the typing session's ``suggest`` per keystroke (int8) as the text grows 10 -> 10 000
   characters (flat = incremental works), and split by kind of keystroke: the one that ends a
   word (a space: the word is read, next words searched), the first letter of a word, the others;
   with idle-time prefetch between keystrokes; and with --run, for the fp32 graph too.

   With a bundle that ships a word n-gram, what the n-gram costs: the text typed by two sessions,
   with and without it, keystroke by keystroke in turn.
4. with ``--runtimes`` (and --bundle): the same bundle under onnxruntime (Python), onnxruntime-node and
   onnxruntime-web (WebAssembly, node/conformance.js; `npm ci --ignore-scripts` in node/): one-shot vs
   one-token-per-call rollout, batch of 1 vs 8, each runtime vs Python on 1,000 tokens of real text, and
   the one-token step p50 in each (``rnnkit.export.conformance``; `python -m rnnkit.export.conformance
   models/*` does every bundle).

A figure printed here is a measurement on this machine, shared with other jobs: check the
load average printed beside it.
"""

from __future__ import annotations

import os

# One thread everywhere, fixed before numpy/torch load their BLAS.
for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import gc  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

DEFAULT_CORPUS = Path(os.environ.get("RNNKIT_DATA", Path.home() / ".cache" / "rnnkit")) / "corpora" / "suggest_en"


def pct(xs, cpu=None) -> dict[str, float]:
    """Wall-clock p50/p99/mean in ms; with ``cpu``, the same for this thread's CPU time (immune to
    other processes taking the core, which wall time on a shared machine is not)."""
    a = np.asarray(xs) * 1e3
    out = {"p50_ms": float(np.percentile(a, 50)), "p99_ms": float(np.percentile(a, 99)),
           "mean_ms": float(a.mean()), "n": int(a.size)}
    if cpu is not None:
        c = np.asarray(cpu) * 1e3
        out.update(cpu_p50_ms=float(np.percentile(c, 50)), cpu_p99_ms=float(np.percentile(c, 99)),
                   cpu_mean_ms=float(c.mean()))
    return out


class Clock:
    """Wall and thread-CPU time of one call (one intra-op thread: the work runs on this thread)."""

    def __init__(self):
        self.wall, self.cpu = [], []

    def __enter__(self):
        self._w, self._c = time.perf_counter(), time.thread_time()
        return self

    def __exit__(self, *exc):
        self.wall.append(time.perf_counter() - self._w)
        self.cpu.append(time.thread_time() - self._c)

    def stats(self, skip: int = 0) -> dict:
        return pct(self.wall[skip:], self.cpu[skip:])


def sgemm_rate(n: int = 512, reps: int = 20) -> float:
    """Single-thread float32 GEMM rate of this core, FLOP/s (numpy's BLAS, best of ``reps``)."""
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    b = a.T.copy()
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(reps))
    return 2 * n ** 3 / best


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def stream_rate(mbytes: float = 16.0, reps: int = 20) -> float:
    """Single-thread rate at which this core streams weights it cannot keep in cache, bytes/s: a
    float32 matrix-vector product over ``mbytes`` (more than a core's L2), best of ``reps``."""
    k = 256
    a = np.random.default_rng(0).standard_normal((int(mbytes * 1e6 / 4 / k), k), dtype=np.float32)
    x = np.ones(k, dtype=np.float32)
    a @ x
    return a.nbytes / min(_timed(lambda: a @ x) for _ in range(reps))


def step_weights(cfg: dict) -> int:
    """Weights one LM step at B=1 reads: recurrent layers, tied projection, output head (not the
    embedding table, of which it reads one row)."""
    return step_flops(cfg) // 2


def step_flops(cfg: dict) -> int:
    """FLOPs (2 x multiply-adds) of one LM step at B=1: the recurrent layers and the output head."""
    E, H, L, V = cfg["embed_size"], cfg["hidden_size"], cfg["num_layers"], cfg["vocab_size"]
    gates = {"lstm": 4, "gru": 3}.get(cfg["cell"], 1)
    macs = sum(gates * H * ((E if l == 0 else H) + H) for l in range(L))
    tied_proj = cfg.get("tie_weights", False) and H != E
    macs += H * E if tied_proj else 0
    macs += (E if cfg.get("tie_weights", False) else H) * V
    return 2 * macs


def int8_products(path: Path) -> list[tuple[str, bytes, bool]]:
    """Every MatMulInteger of a row-wise int8 step graph as onnxruntime runs it (constant folding
    turns the tied head's Transpose/Cast/Sub/Cast into an initializer), each as a graph of its own:
    A [1, K] -> Y [1, N] with the same weights. ``(label, graph bytes, A is uint8)``; [] for a graph
    without constant-weight MatMulIntegers (onnxruntime's dynamic quantisation)."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    with tempfile.TemporaryDirectory() as tmp:
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC  # folding, no contrib fusions
        so.optimized_model_filepath = str(Path(tmp) / "opt.onnx")
        ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        model = onnx.load(so.optimized_model_filepath)
    graphs = [model.graph]
    for g in graphs:  # every subgraph too (the Scan body holds the recurrent product)
        graphs += [a.g for n in g.node for a in n.attribute if a.g is not None and a.g.node]
    inits = {i.name: i for g in graphs for i in g.initializer}
    out = []
    for n in (n for g in graphs for n in g.node):
        if n.op_type != "MatMulInteger" or n.input[1] not in inits:
            continue
        b = numpy_helper.to_array(inits[n.input[1]])
        zp = numpy_helper.to_array(inits[n.input[2]]) if len(n.input) > 2 and n.input[2] in inits else None
        u8 = zp is None or zp.dtype == np.uint8
        init = [numpy_helper.from_array(b, "B")] + ([numpy_helper.from_array(zp, "zp")] if zp is not None else [])
        g = helper.make_graph([helper.make_node("MatMulInteger", ["A", "B"] + (["zp"] if zp is not None else []), ["Y"])],
                              "product", [helper.make_tensor_value_info("A", TensorProto.UINT8 if u8 else TensorProto.INT8,
                                                                        [1, b.shape[0]])],
                              [helper.make_tensor_value_info("Y", TensorProto.INT32, [1, b.shape[1]])], init)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
        m.ir_version = 8
        out.append((f"{b.shape[0]}x{b.shape[1]}", m.SerializeToString(), u8))
    return out


def products_floor(path: Path, tokens: np.ndarray, warmup: int = 50) -> dict:
    """The int8 step graph against its own products alone: both timed per token, interleaved (so a
    shared machine's load falls on both alike). Each product runs in its own call, so an empty
    call's time (an Identity graph) is taken off each. What is left of the step beyond the products
    (activation quantisation, gate tables, Scan, the call) is all a rewrite of the graph could win
    without a smaller model."""
    from onnx import TensorProto, helper

    from rnnkit.edge import names as N
    from rnnkit.edge.runner import load_session, zero_state_feeds

    products = int8_products(path)
    if not products:
        return {}
    empty = helper.make_model(helper.make_graph(
        [helper.make_node("Identity", ["A"], ["Y"])], "call", [helper.make_tensor_value_info("A", TensorProto.UINT8, [1, 1])],
        [helper.make_tensor_value_info("Y", TensorProto.UINT8, [1, 1])]), opset_imports=[helper.make_opsetid("", 17)])
    empty.ir_version = 8
    rng = np.random.default_rng(0)
    calls = []
    for label, blob, u8 in products + [("call", empty.SerializeToString(), True)]:
        s = load_session(blob)
        k = s.get_inputs()[0].shape[1]
        a = rng.integers(0, 256, (1, k)).astype(np.uint8) if u8 else rng.integers(-127, 128, (1, k)).astype(np.int8)
        calls.append((label, s, {"A": a}, []))
    step = load_session(str(path))
    names = [o.name for o in step.get_outputs()]
    state, t_step = zero_state_feeds(step, 1), []
    for n, tok in enumerate(tokens):
        t0 = time.perf_counter()
        out = dict(zip(names, step.run(None, {N.TOKENS: np.asarray(tok, np.int64).reshape(1, 1), **state})))
        if n >= warmup:
            t_step.append(time.perf_counter() - t0)
        state = {k: out["next_" + k] for k in state}
        for _, s, feed, times in calls:
            t0 = time.perf_counter()
            s.run(None, feed)
            if n >= warmup:
                times.append(time.perf_counter() - t0)
    p50 = {label: 1e3 * float(np.median(times)) for label, _, _, times in calls}
    call = p50.pop("call")
    each = {label: max(ms - call, 0.0) for label, ms in p50.items()}
    step_ms = 1e3 * float(np.median(t_step))
    return {"step_p50_ms": step_ms, "empty_call_p50_ms": call, "products_p50_ms": each,
            "products_ms": sum(each.values()), "rest_ms": step_ms - sum(each.values())}


def time_runner(path: Path, tokens: np.ndarray, warmup: int = 50) -> dict:
    from rnnkit.edge.runner import StepRunner

    r = StepRunner(path, threads=1)
    state = r.init_state(1)
    clock = Clock()
    for t in tokens:
        tok = np.array([[t]], dtype=np.int64)
        with clock:
            _, state = r.step_unchecked(tok, state)
    return clock.stats(warmup)


def time_torch(model, tokens: np.ndarray, mkldnn: bool, warmup: int = 50) -> dict:
    import torch

    torch.set_num_threads(1)
    clock = Clock()
    with torch.no_grad(), torch.backends.mkldnn.flags(enabled=mkldnn):
        state = model.init_state(1)
        for t in tokens:
            tok = torch.tensor([[int(t)]])
            with clock:
                _, state = model(tok, state)
    return clock.stats(warmup)


def session_growth(bundle: Path, text: str, lengths=(10, 100, 1000, 10_000), keystrokes: int = 200,
                   phrase: bool = False) -> list[dict]:
    """Per-keystroke ``suggest`` cost after the text has reached each length."""
    from rnnkit.edge.session import open_session

    s = open_session(bundle, threads=1)
    rows = []
    for n in lengths:
        if n + keystrokes > len(text):
            break
        s.reset()
        s.suggest(text[:n], phrase=phrase)  # reach this length (pasted)
        clock, fed = Clock(), []
        for i in range(n + 1, n + keystrokes + 1):
            before = s.tokens_fed
            with clock:
                s.suggest(text[:i], phrase=phrase)
            fed.append(s.tokens_fed - before)
        rows.append({"chars": n, "suggest": clock.stats(), "tokens_fed_per_keystroke": float(np.mean(fed)),
                     "max_tokens_fed": int(np.max(fed))})
    return rows


def window_moves(bundle: Path, text: str, start: int = 10_000, keystrokes: int = 2_500) -> dict:
    """Typing on past ``start`` characters, across moves of the context window (every
    max_context_chars // 4 characters): the worst keystroke shows whether a move stalls."""
    from rnnkit.edge.session import open_session

    s = open_session(bundle, threads=1)
    s.suggest(text[:start], phrase=False)
    clock, wins = Clock(), {s._win}
    for i in range(start + 1, min(len(text), start + keystrokes) + 1):
        with clock:
            s.suggest(text[:i], phrase=False)
        wins.add(s._win)
    a = np.asarray(clock.wall) * 1e3
    return {**clock.stats(), "max_ms": float(a.max()), "window_moves": len(wins) - 1,
            "max_context_chars": s.max_context_chars, "keystrokes": int(a.size)}


def paste_cost(bundle: Path, text: str, lengths=(1_000, 10_000, 100_000)) -> list[dict]:
    """The first ``suggest`` on a pasted text (a fresh session): it reads at most the context
    window (``max_context_chars``), so the cost stops growing past it."""
    from rnnkit.edge.session import open_session

    s = open_session(bundle, threads=1)
    rows = []
    for n in lengths:
        if n > len(text):
            break
        s.reset()
        t0 = time.perf_counter()
        s.suggest(text[:n], phrase=False)
        rows.append({"chars": n, "ms": (time.perf_counter() - t0) * 1e3, "window": s.max_context_chars})
    return rows


def synthetic_run(out: Path, corpus: Path) -> Path:
    """An untrained recipe-sized LM (2 x 512 LSTM, embed 256, tied, 8 k SentencePiece) as a run dir."""
    import sentencepiece as spm
    import torch

    from rnnkit.core.models import registry
    from rnnkit.core.models.kinds import LanguageModel, LMConfig

    out.mkdir(parents=True, exist_ok=True)
    lines = (corpus / "train.txt").read_text(encoding="utf-8").splitlines()[:60_000]
    spm.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_prefix=str(out / "tokenizer"),
                                   vocab_size=8000, model_type="unigram", byte_fallback=True, pad_id=0, unk_id=1,
                                   bos_id=2, eos_id=3, minloglevel=2, num_threads=1)
    torch.manual_seed(0)
    model = LanguageModel(LMConfig(vocab_size=8000, cell="lstm", embed_size=256, hidden_size=512, num_layers=2,
                                   dropout=0.0, tie_weights=True, pad_id=0, bos_id=2, eos_id=3, unk_id=1))
    registry.save(model.eval(), out / "model")
    return out


def batch_steps(path: Path, batches=(1, 4, 8), steps: int = 400, warmup: int = 50) -> dict:
    """The int8 step at the batch sizes of the word search's calls (one token per row)."""
    from rnnkit.edge.runner import StepRunner

    r = StepRunner(path, threads=1)
    out = {}
    for b in batches:
        state, tok, clock = r.init_state(b), np.full((b, 1), 7, dtype=np.int64), Clock()
        for _ in range(steps + warmup):
            with clock:
                r.step_unchecked(tok, state)
        out[str(b)] = clock.stats(warmup)
    return out


def keystroke_kinds(bundle: Path, text: str, phrase: bool, prefetch: int = 0) -> dict:
    """``suggest`` per keystroke typing ``text`` from its start, split by kind of keystroke, with
    graph calls per keystroke; ``prefetch`` > 0: ``session.prefetch`` that many keys between
    keystrokes (untimed: a keyboard does it while waiting for the next key)."""
    from rnnkit.edge.session import open_session

    s = open_session(bundle, threads=1)
    for i in range(1, 200):  # warm up onnxruntime and the caches' code paths
        s.suggest(text[:i], phrase=phrase)
    s.reset()
    clocks = {"ends a word": Clock(), "first letter": Clock(), "other letters": Clock(), "all": Clock()}
    calls: dict = {k: [] for k in clocks}
    for i in range(1, len(text) + 1):
        c0 = s.graph_calls
        with clocks["all"]:
            s.suggest(text[:i], phrase=phrase)
        kind = ("ends a word" if text[i - 1].isspace() else
                "first letter" if i == 1 or text[i - 2].isspace() else "other letters")
        for k in (kind, "all"):
            calls[k].append(s.graph_calls - c0)
        clocks[kind].wall.append(clocks["all"].wall[-1])
        clocks[kind].cpu.append(clocks["all"].cpu[-1])
        if prefetch:
            s.prefetch(text[:i], keys=prefetch, phrase=phrase)
    return {k: {**c.stats(), "keystrokes": len(c.wall), "graph_calls_per_keystroke": float(np.mean(calls[k]))}
            for k, c in clocks.items() if c.wall}


def ngram_cost(bundle: Path, text: str) -> dict:
    """What the bundle's word n-gram costs a keystroke: ``text`` typed by two sessions, with and
    without it, keystroke by keystroke in turn (which goes first alternates), so both see the
    same machine load; thread CPU time and graph calls per keystroke."""
    from rnnkit.edge.session import open_session

    runs = {"with": open_session(bundle, threads=1), "without": open_session(bundle, threads=1)}
    runs["without"].ngram = None
    clocks = {k: Clock() for k in runs}
    calls: dict = {k: [] for k in runs}
    for i in range(1, len(text) + 1):
        for k in (("with", "without") if i % 2 else ("without", "with")):
            c0 = runs[k].graph_calls
            with clocks[k]:
                runs[k].suggest(text[:i], phrase=False)
            calls[k].append(runs[k].graph_calls - c0)
    return {k: {**clocks[k].stats(), "keystrokes": len(text), "graph_calls_per_keystroke": float(np.mean(calls[k]))}
            for k in runs}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--bundle", help="a shipped int8 LM bundle, e.g. models/suggest-en")
    src.add_argument("--run", help="trained LM run directory (model/ + tokenizer.model)")
    src.add_argument("--synthetic", action="store_true", help="an untrained 2x512 LSTM with an 8 k vocabulary")
    ap.add_argument("--steps", type=int, default=1000, help="timed steps per engine (default 1000)")
    ap.add_argument("--text", default=str(DEFAULT_CORPUS / "valid.txt"), help="text typed in the session tests")
    ap.add_argument("--keystrokes", type=int, default=200, help="keystrokes timed at each text length")
    ap.add_argument("--kind-chars", type=int, default=3000,
                    help="characters typed for the per-kind keystroke figures (default 3000)")
    ap.add_argument("--out", help="write the figures as JSON here")
    ap.add_argument("--runtimes", action="store_true",
                    help="with --bundle: also run it under onnxruntime-node and onnxruntime-web and compare (node/)")
    args = ap.parse_args(argv)

    import torch

    from rnnkit.core.models import registry
    from rnnkit.export.build_bundle import export_bundle
    from rnnkit.export.onnx_export import export_model

    from rnnkit.edge.bundle import open_bundle
    from rnnkit.edge.word_ngram import FILE_NAME as NGRAM_FILE

    torch.set_num_threads(1)
    scratch = Path(tempfile.mkdtemp(prefix="rnnkit-edge-bench-"))
    if args.bundle:
        shipped = open_bundle(args.bundle)
        if shipped.kind != "lm" or shipped.precision != "int8":
            ap.error(f"{args.bundle}: want an int8 language-model bundle, got {shipped.kind} {shipped.precision}")
        cfg = shipped.model_config
        torch.manual_seed(0)
        model = registry.build_model("lm", cfg).eval()  # same shapes, random weights: same eager/fp32 time
        fp32_path = export_model(model, scratch / "fp32")["step"]
        int8_path, b8, source = shipped.graph_path("step"), Path(args.bundle), f"{args.bundle} (shipped)"
    else:
        run = Path(args.run) if args.run else synthetic_run(scratch / "run", DEFAULT_CORPUS)
        model_dir = run / "model" if (run / "model").is_dir() else run
        model = registry.load(model_dir)
        cfg = registry.read_record(model_dir)["config"]
        b32, b8 = scratch / "fp32", scratch / "int8"
        export_bundle(run, b32, int8=False, log=lambda *a: None)
        export_bundle(run, b8, int8=True, log=lambda *a: None)
        fp32_path, int8_path = b32 / "step.onnx", b8 / "step.int8.onnx"
        source = str(run) if args.run else "synthetic (untrained)"

    rng = np.random.default_rng(0)
    tokens = rng.integers(4, cfg["vocab_size"], size=args.steps + 50)
    res: dict = {"model": {k: cfg[k] for k in ("cell", "embed_size", "hidden_size", "num_layers", "vocab_size",
                                                "tie_weights")},
                 "run": source, "threads": 1, "loadavg_before": os.getloadavg()}
    res["onnx_fp32"] = time_runner(fp32_path, tokens)
    res["onnx_int8"] = time_runner(int8_path, tokens)
    res["torch_eager_mkldnn_on"] = time_torch(model, tokens[: min(len(tokens), 550)], True)
    res["torch_eager_mkldnn_off"] = time_torch(model, tokens[: min(len(tokens), 550)], False)
    rate, bw = sgemm_rate(), stream_rate()
    flops, weights = step_flops(cfg), step_weights(cfg)
    res["floor"] = {"flops_per_step": flops, "sgemm_gflops_1thread": rate / 1e9, "flops_floor_ms": flops / rate * 1e3,
                    "weights_per_step": weights, "stream_gb_s_1thread": bw / 1e9,
                    "bytes_floor_fp32_ms": 4 * weights / bw * 1e3, "bytes_floor_int8_ms": weights / bw * 1e3,
                    "int8_products": products_floor(int8_path, tokens)}
    for key in ("p50_ms", "cpu_p50_ms"):
        best = min(res["torch_eager_mkldnn_on"][key], res["torch_eager_mkldnn_off"][key])
        default = res["torch_eager_mkldnn_on"][key]
        res[f"speedup_{key[:-3]}"] = {
            "int8_vs_best_eager": best / res["onnx_int8"][key], "fp32_vs_best_eager": best / res["onnx_fp32"][key],
            "int8_vs_default_eager": default / res["onnx_int8"][key],
            "int8_floor_vs_best_eager": best / res["floor"]["bytes_floor_int8_ms"]}
    res["int8_batched_step"] = batch_steps(int8_path)
    res["sizes_mb"] = {"fp32": fp32_path.stat().st_size / 1e6, "int8": int8_path.stat().st_size / 1e6}
    # This process holds torch's hundreds of thousands of objects, which a device's edge process
    # does not: freeze them, so that a garbage collection pass does not bill scanning them to a
    # keystroke (it did: 80 ms spikes that a torch-free process never shows).
    gc.collect()
    gc.freeze()
    text_path = Path(args.text)
    if text_path.is_file():
        text = text_path.read_text(encoding="utf-8")[:12_000]
        res["session_int8_growth"] = session_growth(b8, text, keystrokes=args.keystrokes)
        res["session_int8_growth_with_phrase"] = session_growth(b8, text, keystrokes=args.keystrokes, phrase=True)
        res["paste"] = paste_cost(b8, text_path.read_text(encoding="utf-8")[:100_000])
        text = text_path.read_text(encoding="utf-8")[:14_000]
        if len(text) > 10_000 + args.keystrokes * 10:
            res["window_moves"] = window_moves(b8, text, keystrokes=args.keystrokes * 10)
        res["keystroke_kinds"] = keystroke_kinds(b8, text[:args.kind_chars], phrase=False)
        if open_bundle(b8).file_path(NGRAM_FILE) is not None:
            res["ngram_cost"] = ngram_cost(b8, text[:args.kind_chars])
        res["keystroke_kinds_with_phrase"] = keystroke_kinds(b8, text[:args.kind_chars], phrase=True)
        res["keystroke_kinds_prefetch"] = keystroke_kinds(b8, text[:args.kind_chars], phrase=False, prefetch=3)
        if not args.bundle:  # trained fp32 weights exist only for a run (a shipped bundle is int8-only)
            res["keystroke_kinds_fp32"] = keystroke_kinds(b32, text[:args.kind_chars], phrase=False)
    if args.runtimes and args.bundle:
        from rnnkit.export import conformance

        why = conformance.node_available()
        if why:
            print(f"--runtimes: {why}")
        else:
            rows, _ = conformance.run_all([Path(args.bundle)], tokens=1000, timing_steps=args.steps)
            res["runtimes"] = rows
            print(conformance.format_table(rows))
    res["loadavg_after"] = os.getloadavg()
    report(res)
    if args.out:
        from rnnkit.core.atomic import atomic_write_json

        atomic_write_json(args.out, res)
    return 0


def report(r: dict) -> None:
    m = r["model"]
    print(f"model: {m['num_layers']}x{m['hidden_size']} {m['cell']}, embed {m['embed_size']}, "
          f"vocab {m['vocab_size']} ({r['run']}); one thread; load avg {r['loadavg_before'][0]:.1f}")
    print(f"{'one step adding one token':32s}{'p50 ms':>10s}{'p99 ms':>10s}{'cpu p50':>10s}{'cpu p99':>10s}")
    for key in ("onnx_int8", "onnx_fp32", "torch_eager_mkldnn_off", "torch_eager_mkldnn_on"):
        x = r[key]
        print(f"{key:32s}{x['p50_ms']:10.3f}{x['p99_ms']:10.3f}{x['cpu_p50_ms']:10.3f}{x['cpu_p99_ms']:10.3f}")
    f = r["floor"]
    print(f"{'floor: FLOPs / sgemm rate':32s}{f['flops_floor_ms']:10.3f}   "
          f"({f['flops_per_step'] / 1e6:.1f} MFLOP at {f['sgemm_gflops_1thread']:.1f} GFLOP/s)")
    print(f"{'floor: weight bytes / stream, int8':32s}{f['bytes_floor_int8_ms']:10.3f}   "
          f"({f['weights_per_step'] / 1e6:.2f} MB at {f['stream_gb_s_1thread']:.1f} GB/s)")
    print(f"{'floor: weight bytes / stream, fp32':32s}{f['bytes_floor_fp32_ms']:10.3f}")
    pf = f.get("int8_products")
    if pf:
        print(f"{'floor: int8 products alone':32s}{pf['products_ms']:10.3f}   ("
              + ", ".join(f"{k} {v:.3f}" for k, v in pf["products_p50_ms"].items())
              + f"; the step beside them {pf['step_p50_ms']:.3f}, so {pf['rest_ms']:.3f} ms is the rest of the graph "
              f"and the call; an empty call {pf['empty_call_p50_ms']:.3f})")
    for b, x in r.get("int8_batched_step", {}).items():
        print(f"{'int8 step, batch ' + b:32s}{x['p50_ms']:10.3f}{x['p99_ms']:10.3f}{x['cpu_p50_ms']:10.3f}"
              f"{x['cpu_p99_ms']:10.3f}")
    for key, label in (("speedup_p50", "wall p50"), ("speedup_cpu_p50", "cpu p50")):
        s = r[key]
        print(f"speed-up ({label}): int8 {s['int8_vs_best_eager']:.1f}x and fp32 {s['fp32_vs_best_eager']:.1f}x "
              f"vs the faster PyTorch eager; int8 {s['int8_vs_default_eager']:.1f}x vs default eager (oneDNN on); "
              f"an int8 step at the bytes floor would be {s['int8_floor_vs_best_eager']:.1f}x the faster eager")
    print(f"graph sizes: fp32 {r['sizes_mb']['fp32']:.1f} MB, int8 {r['sizes_mb']['int8']:.1f} MB")
    for key, label in (("session_int8_growth", "words"), ("session_int8_growth_with_phrase", "words+phrase")):
        for row in r.get(key, []):
            x = row["suggest"]
            print(f"suggest() {label:12s} at {row['chars']:6d} chars: p50 {x['p50_ms']:.2f} p99 {x['p99_ms']:.2f} ms "
                  f"(cpu {x['cpu_p50_ms']:.2f}/{x['cpu_p99_ms']:.2f}), {row['tokens_fed_per_keystroke']:.1f} "
                  f"tokens fed/keystroke")
    for row in r.get("paste", []):
        print(f"first suggest() on a {row['chars']:6d}-char paste: {row['ms']:.0f} ms (reads at most the last "
              f"{row['window']} chars)")
    w = r.get("window_moves")
    if w:
        print(f"typing {w['keystrokes']} keystrokes past 10 000 chars, {w['window_moves']} moves of the "
              f"{w['max_context_chars']}-char window: p50 {w['p50_ms']:.2f} p99 {w['p99_ms']:.2f} max {w['max_ms']:.2f} ms")
    for key, label in (("keystroke_kinds", "words"), ("keystroke_kinds_with_phrase", "words+phrase"),
                       ("keystroke_kinds_prefetch", "words, idle prefetch"), ("keystroke_kinds_fp32", "words, fp32")):
        for kind, x in r.get(key, {}).items():
            print(f"keystroke {label:20s} {kind:14s} n={x['keystrokes']:5d}: p50 {x['p50_ms']:.2f} p99 "
                  f"{x['p99_ms']:.2f} ms (cpu {x['cpu_p50_ms']:.2f}/{x['cpu_p99_ms']:.2f}), "
                  f"{x['graph_calls_per_keystroke']:.2f} graph calls")

    for name, x in r.get("ngram_cost", {}).items():
        print(f"keystroke {name + ' word n-gram':20s} (in turn) n={x['keystrokes']:5d}: cpu p50 {x['cpu_p50_ms']:.2f} "
              f"p99 {x['cpu_p99_ms']:.2f} ms, {x['graph_calls_per_keystroke']:.2f} graph calls")


if __name__ == "__main__":
    raise SystemExit(main())
