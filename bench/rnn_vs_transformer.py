"""RNN vs Transformer on one trainer, exporter and device runner (issue 15).

    python bench/rnn_vs_transformer.py train [--minutes 10] [--only lstm,transformer]   # (a) quality, (b) tokens/s
    python bench/rnn_vs_transformer.py latency                                          # (c) step cost, state, bundle
    python bench/rnn_vs_transformer.py peer --nanogpt DIR --run RUN_DIR                 # nanoGPT's CPU config
    python bench/rnn_vs_transformer.py train --minutes 10 --only everyday-lstm,everyday-gru,everyday-mingru,everyday-transformer
    python bench/rnn_vs_transformer.py suggest                                          # (d) eval-suggest, best of each family

(everyday-* models: the same comparison on everyday_en, suggest-en's task and tokenizer; (d) types the
everyday_en test split through the typing session with the best recurrent and the Transformer bundle.)
    python bench/rnn_vs_transformer.py report                                           # plots + RESULTS.md section

(a) Each model trains on char-shakespeare for the same CPU budget, one thread, fp32: its CPU cost per
    step is measured first (steps 10..40 of the real loop, ``time.process_time``), then ``rnnkit train``
    runs ``budget / cost`` steps with a cosine schedule ending there (a wall-clock budget would charge
    a model for the other jobs on this shared machine). Models are matched to the Transformer's
    parameter count by their hidden size. Validation loss: the LM task's own (nats/char, state carried).
(b) Training tokens per CPU-second, from the same measurement.
(c) One thread, onnxruntime, the exported step graph (the graph a device runs): per-token latency with
    16 / 256 / 1,024 / 4,096 tokens of context, and the state's bytes. A Transformer that keeps n tokens
    of context holds a KV cache of n positions: it is exported with ``window = n`` (rotary positions
    have no learned table, so the same weights run at any window) and measured with a full cache.
    A recurrent model's state and step are the same at every context. Bundle sizes: ``rnnkit export --int8``.

Writes docs/results/rnn_vs_transformer.json (each part merges its key) and PNG plots beside it.
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import shlex  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from cpu_budget import rnnkit_cmd, step_cost, train_steps  # noqa: E402  (bench/cpu_budget.py)

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "results"
RESULTS = OUT / "rnn_vs_transformer.json"
RUNS = ROOT / "runs" / "bench15"
CONTEXTS = (16, 256, 1024, 4096)

TRAIN_COMMON = {"precision": "fp32", "train.schedule": "cosine", "train.warmup_steps": 100,
                "train.min_lr_ratio": 0.1, "train.checkpoint_every": 0, "data.batch_size": 32,
                "data.bptt": 128, "data.sample_length": 200}
RNN = {**TRAIN_COMMON, "model.embed_size": 64, "model.dropout": 0.0, "model.tie_weights": False,
       "train.lr": 0.002, "train.weight_decay": 0.01}
# name -> (recipe, overrides); RNN hidden sizes are filled in by match_params
MODELS: dict[str, tuple[str, dict]] = {
    "lstm": ("char-shakespeare", {**RNN, "model.cell": "lstm", "model.num_layers": 2}),
    "gru": ("char-shakespeare", {**RNN, "model.cell": "gru", "model.num_layers": 2}),
    "mingru": ("char-shakespeare", {**RNN, "model.cell": "mingru", "model.num_layers": 3}),
    "minlstm": ("char-shakespeare", {**RNN, "model.cell": "minlstm", "model.num_layers": 3}),
    "transformer": ("char-shakespeare-gpt", {**TRAIN_COMMON, "model.num_layers": 4, "model.num_heads": 4,
                                              "model.hidden_size": 128, "model.window": 256, "data.carry": True,
                                              "train.lr": 0.001, "train.weight_decay": 0.1}),
}
# Smaller batches (nanoGPT's 12 x 64): 4x more optimizer steps in the same CPU time. Same models.
MODELS["gru-b12"] = (MODELS["gru"][0], {**MODELS["gru"][1], "data.batch_size": 12, "data.bptt": 64})
MODELS["transformer-b12"] = (MODELS["transformer"][0], {**MODELS["transformer"][1], "data.batch_size": 12,
                                                        "data.bptt": 64, "model.window": 128})
# The same comparison on everyday English (the everyday-* names): suggest-en's task, SentencePiece
# 8k pieces, next-word figures; one recurrent layer (two for minGRU, whose cell is weaker per layer),
# a 128-wide embedding tied to the output, the Transformer at the char run's size, a 128-piece window.
EV_COMMON = {**TRAIN_COMMON, "data.bptt": 64, "data.sample_length": 40}
EV_RNN = {**EV_COMMON, "model.embed_size": 128, "model.dropout": 0.0, "model.tie_weights": True,
          "train.lr": 0.002, "train.weight_decay": 0.01}
EVERYDAY: dict[str, tuple[str, dict]] = {
    "everyday-lstm": ("suggest-en", {**EV_RNN, "model.cell": "lstm", "model.num_layers": 1}),
    "everyday-gru": ("suggest-en", {**EV_RNN, "model.cell": "gru", "model.num_layers": 1}),
    "everyday-mingru": ("suggest-en", {**EV_RNN, "model.cell": "mingru", "model.num_layers": 2}),
    "everyday-transformer": ("suggest-en-gpt", {**EV_COMMON, "model.num_layers": 4, "model.num_heads": 4,
                                                "model.hidden_size": 128, "model.window": 128, "model.dropout": 0.0,
                                                "train.lr": 0.001, "train.weight_decay": 0.1}),
}
MODELS.update(EVERYDAY)
LATENCY_MODELS = ("lstm", "gru", "mingru", "minlstm", "transformer")
# Vocabulary sizes, only used to match parameter counts: about Shakespeare's characters + specials;
# suggest-en's SentencePiece pieces.
VOCAB = 80
VOCAB_OF = {"suggest-en": 8000, "suggest-en-gpt": 8000}


def load_results() -> dict:
    return json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}


def save_results(key: str, value) -> None:
    from rnnkit.core.atomic import atomic_write_json

    OUT.mkdir(parents=True, exist_ok=True)
    res = load_results()
    res[key] = value
    atomic_write_json(RESULTS, res)


# --------------------------------------------------------------------------- (a), (b)
def count_params(recipe: str, overrides: dict) -> int:
    import torch

    from rnnkit.core.models.registry import build_model
    from rnnkit.core.recipes import resolve_recipe

    r = resolve_recipe(recipe, "full", {k: v for k, v in overrides.items() if k.startswith("model.")})
    kind = r["model"]["kind"]
    vocab = VOCAB_OF.get(recipe, VOCAB)
    with torch.device("meta"):
        model = build_model(kind, {**{k: v for k, v in r["model"].items() if k != "kind"}, "vocab_size": vocab})
    return sum(p.numel() for p in model.parameters())


def family(name: str) -> tuple[str, str]:
    """(corpus prefix, model) of a model name: "everyday-gru" -> ("everyday-", "gru")."""
    return ("everyday-", name[len("everyday-"):]) if name.startswith("everyday-") else ("", name)


def match_params() -> dict[str, dict]:
    """Each RNN's hidden size (a multiple of 8) whose parameter count is closest to the Transformer's
    on the same corpus."""
    out = {}
    for prefix in ("", "everyday-"):
        out[prefix + "transformer"] = {"params": count_params(*MODELS[prefix + "transformer"])}
    for name, (recipe, ov) in MODELS.items():
        prefix, model = family(name)
        if model.startswith("transformer"):  # the Transformers set the target; -b12 is the same model
            continue
        target = out[prefix + "transformer"]["params"]
        best = min(range(64, 1025, 8), key=lambda h: abs(count_params(recipe, {**ov, "model.hidden_size": h}) - target))
        ov["model.hidden_size"] = best
        out[name] = {"hidden_size": best, "params": count_params(recipe, ov)}
    return out


def train_one(name: str, minutes: float) -> dict:
    recipe, ov = MODELS[name]
    cost = step_cost(recipe, ov)
    steps = max(200, int(minutes * 60 / cost))
    out = train_steps(recipe, ov, steps, RUNS / f"{name}-{minutes:g}min", cost)
    out.pop("final")
    return out


def cmd_train(a) -> None:
    matched = match_params()
    print(json.dumps(matched))
    for name in (a.only.split(",") if a.only else MODELS):
        print(f"== {name}: {a.minutes} CPU-minutes", flush=True)
        row = {**train_one(name, a.minutes), "minutes": a.minutes, "model": name}
        res = load_results().get("train", {})  # read again: another run of this bench may have saved since
        res[f"{name}@{a.minutes:g}min"] = row
        save_results("train", res)
        print({k: v for k, v in res[f"{name}@{a.minutes:g}min"].items() if k != "train_curve"}, flush=True)


# --------------------------------------------------------------------------- (c)
def time_steps(session, feeds: dict, state_names: list[str], steps: int = 300, warmup: int = 30) -> dict:
    """Median wall / thread-CPU ms of one-token steps with the state fed back."""
    outs = [o.name for o in session.get_outputs()]
    wall, cpu = [], []
    for i in range(warmup + steps):
        t, c = time.perf_counter(), time.thread_time()
        res = dict(zip(outs, session.run(outs, feeds)))
        if i >= warmup:
            wall.append(time.perf_counter() - t)
            cpu.append(time.thread_time() - c)
        for n in state_names:
            feeds[n] = res["next_" + n]
    return {"p50_ms": float(np.median(wall)) * 1e3, "cpu_p50_ms": float(np.median(cpu)) * 1e3,
            "p90_ms": float(np.percentile(wall, 90)) * 1e3}


def graph_latency(path: Path, context: int, vocab: int) -> dict:
    """Read ``context`` tokens into the step graph's state (in chunks), then time one-token steps."""
    from rnnkit.edge import names as N
    from rnnkit.edge.runner import load_session, zero_state_feeds

    sess = load_session(path, threads=1)
    feeds = zero_state_feeds(sess, 1)
    states = list(feeds)
    outs = [o.name for o in sess.get_outputs()]
    rng = np.random.default_rng(0)
    done = 0
    while done < context:  # the state carried from chunk to chunk
        n = min(256, context - done)
        feeds[N.TOKENS] = rng.integers(0, vocab, (1, n)).astype(np.int64)
        res = dict(zip(outs, sess.run(outs, feeds)))
        feeds.update({s: res[N.state_output(N.role_of(s))] for s in states})
        done += n
    feeds[N.TOKENS] = np.array([[1]], np.int64)
    out = time_steps(sess, feeds, states)
    out["state_bytes"] = int(sum(feeds[s].nbytes for s in states))
    return out


def bench_model(name: str) -> tuple:
    """The trained model of the longest run of ``name`` (or, before training, the same architecture
    with random weights: a step's cost does not depend on the values) and its run directory."""
    import torch

    from rnnkit.core.models.registry import build_model, load
    from rnnkit.core.recipes import resolve_recipe

    runs = sorted((v for v in load_results().get("train", {}).values() if v["model"] == name),
                  key=lambda v: -v["minutes"])
    if runs:
        run = ROOT / runs[0]["run_dir"]
        return load(run / "model"), run
    recipe, ov = MODELS[name]
    r = resolve_recipe(recipe, "full", {k: v for k, v in ov.items() if k.startswith("model.")})
    torch.manual_seed(0)
    cfg = {**{k: v for k, v in r["model"].items() if k != "kind"}, "vocab_size": VOCAB}
    return build_model(r["model"]["kind"], cfg).eval(), None


def cmd_latency(a) -> None:
    import tempfile

    import torch

    from rnnkit.core.config import to_dict
    from rnnkit.core.models import registry
    from rnnkit.export.onnx_export import export_model

    from edge_latency import stream_rate  # bench/edge_latency.py: this core's streaming rate

    torch.set_num_threads(1)
    match_params()
    rate = stream_rate()
    res = {k: v for k, v in load_results().get("latency", {}).items() if k in MODELS}
    for name in (a.only.split(",") if a.only else LATENCY_MODELS):
        model, run = bench_model(name)
        row = {"params": sum(p.numel() for p in model.parameters()), "trained": run is not None, "contexts": {}}
        if a.bundles_only:  # keep the timed contexts, add the trained run's bundle
            row = {**res[name], "bundle_of_trained_run": run is not None}
        with tempfile.TemporaryDirectory() as tmp:
            for n in CONTEXTS if not a.bundles_only else ():
                m = model
                if name == "transformer":  # a KV cache of n positions: the same weights at window n
                    m = registry.build_model("transformer_lm", {**to_dict(model.config), "window": n})
                    m.load_state_dict(model.state_dict())
                    m.eval()
                path = export_model(m, Path(tmp) / str(n))["step"]
                row["contexts"][str(n)] = graph_latency(path, n, model.config.vocab_size)
                print(name, n, row["contexts"][str(n)], flush=True)
            if run is not None:
                row["bundle"] = bundle_sizes(run, Path(tmp) / "bundle")
                row["bundle"]["int8_step"] = graph_latency(Path(tmp) / "bundle" / "step.int8.onnx", 16,
                                                           model.config.vocab_size)
        # A one-token step reads its whole state at least once, from memory once it outgrows the caches
        # (the ~3 MB of weights stay cached between steps): the Transformer's floor.
        for n, r in row["contexts"].items():
            r["floor_ms"] = r["state_bytes"] / rate * 1e3
        res[name] = row
        save_results("latency", {**res, "stream_bytes_per_s": rate})


def bundle_sizes(run: Path, out: Path) -> dict:
    """``rnnkit export RUN --out BUNDLE --int8`` then ``rnnkit verify``; bytes of each graph."""
    args = ["export", str(run), "--out", str(out), "--int8"]
    subprocess.run(rnnkit_cmd(args), check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    subprocess.run(rnnkit_cmd(["verify", str(out)]), check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    sizes = {p.name: p.stat().st_size for p in sorted(out.glob("*.onnx"))}
    shown = ["export", str(run.relative_to(ROOT)) if run.is_relative_to(ROOT) else str(run), "--out", "BUNDLE", "--int8"]
    return {"bytes": sizes, "command": "rnnkit " + shlex.join(shown)}


# --------------------------------------------------------------------------- (d) eval-suggest
def best_of_families(minutes: float | None = None) -> dict[str, dict]:
    """The everyday runs' best recurrent model and the Transformer, at the longest (or given) budget."""
    runs = [r for r in load_results().get("train", {}).values() if r["model"].startswith("everyday-")]
    if minutes is None and runs:
        minutes = max(r["minutes"] for r in runs)
    runs = [r for r in runs if r["minutes"] == minutes]
    out = {}
    for fam, members in (("recurrent", [r for r in runs if family(r["model"])[1] != "transformer"]),
                         ("transformer", [r for r in runs if family(r["model"])[1] == "transformer"])):
        if members:
            out[fam] = min(members, key=lambda r: r["val_loss"])
    return out


def cmd_suggest(a) -> None:
    """The typing session itself on everyday_en's test split (the command RESULTS.md uses for
    suggest-en), for the best model of each family: int8 bundle, verified, then eval-suggest."""
    from rnnkit.core.data import corpus_dir

    corpus = corpus_dir("everyday_en")
    for fam, run in best_of_families(a.minutes).items():
        bundle = RUNS / "bundles" / Path(run["run_dir"]).name
        sizes = bundle_sizes(ROOT / run["run_dir"], bundle)
        out = OUT / f"rnn_vs_transformer-suggest-{run['model']}.json"
        args = ["eval-suggest", str(bundle), "--text", str(corpus / "test.txt"), "--spread", "--max-chars",
                str(a.max_chars), "--train-text", str(corpus / "train.txt"), "--prefetch", "0",
                "--phrase-every", "4", "--out", str(out)]
        print(f"== {fam}: {run['model']} ({run['run_dir']})", flush=True)
        subprocess.run(rnnkit_cmd(args), check=True, cwd=ROOT)
        rep = json.loads(out.read_text())
        res = load_results().get("suggest", {})
        keep = ("next_word_top1", "next_word_top3", "completion_2_top3", "keystroke_savings", "cpu_ms_p50",
                "cpu_ms_p99", "latency_ms_p99")
        res[run["model"]] = {"family": fam, "run_dir": run["run_dir"], "minutes": run["minutes"],
                             "val_loss": run["val_loss"], "params": run["params"],
                             **{k: rep["lstm"][k] for k in keep},
                             "kneser_ney": {k: rep["kneser_ney"][k] for k in keep[:4]},
                             "int8_bytes": sizes["bytes"].get("step.int8.onnx"),
                             # plain spaces, not shlex quoting: a quoted "~/..." would not expand in a shell
                             "command": "rnnkit " + " ".join(
                                 ["eval-suggest", "BUNDLE", *[x.replace(str(corpus), "~/.cache/rnnkit/corpora/everyday_en")
                                                              for x in args[2:-2]]]),
                             "export_command": sizes["command"]}
        save_results("suggest", res)
        print(json.dumps(res[run["model"]]), flush=True)


# --------------------------------------------------------------------------- peer (nanoGPT)
def block_loss(logits_fn, ids, block: int = 64, batch: int = 256) -> float:
    """nanoGPT's estimator over the whole split: every non-overlapping ``block``-token window from a
    fresh state, ``block`` predictions each (contexts 1..block). ``logits_fn(x (B, T)) -> (B, T, V)``."""
    import torch
    import torch.nn.functional as F

    n = (ids.numel() - 1) // block
    x, y = ids[: n * block].view(n, block), ids[1: n * block + 1].view(n, block)
    total = 0.0
    with torch.no_grad():
        for i in range(0, n, batch):
            logits = logits_fn(x[i:i + batch])
            total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y[i:i + batch].reshape(-1),
                                     reduction="sum").item()
    return total / (n * block)


def cmd_peer(a) -> None:
    import torch

    from rnnkit.core.models.registry import load
    from rnnkit.core.text.tokenizers import load_tokenizer

    torch.set_num_threads(1)
    nano = Path(a.nanogpt)
    val_text = open(nano / "data" / "shakespeare_char" / "input.txt", encoding="utf-8").read()
    val_text = val_text[int(len(val_text) * 0.9):]  # nanoGPT prepare.py's split
    sys.path.insert(0, str(nano))
    from model import GPT, GPTConfig  # nanoGPT's own model.py

    ck = torch.load(nano / "out-shakespeare-char" / "ckpt.pt", map_location="cpu", weights_only=True)
    gpt = GPT(GPTConfig(**ck["model_args"]))
    gpt.load_state_dict(ck["model"])
    gpt.eval()
    stoi = {ch: i for i, ch in enumerate(sorted(set(open(nano / "data" / "shakespeare_char" / "input.txt",
                                                            encoding="utf-8").read())))}
    nano_ids = torch.tensor([stoi[c] for c in val_text])
    run = Path(a.run)
    ours = load(run / "model")
    tok = load_tokenizer(run)
    our_ids = torch.tensor(tok.encode(val_text))
    res = {"nanogpt": {"val_loss_blocks64": block_loss(lambda x: gpt(x, x)[0], nano_ids),
                       "val_loss_own_estimate": float(ck["best_val_loss"]), "iter": ck["iter_num"],
                       "params": sum(p.numel() for p in gpt.parameters()), "cpu_s": a.nanogpt_cpu_s,
                       "command": a.nanogpt_command},
           "rnnkit": {"val_loss_blocks64": block_loss(lambda x: ours(x)[0], our_ids),
                      "params": sum(p.numel() for p in ours.parameters()), "cpu_s": a.rnnkit_cpu_s,
                      "run_dir": str(run), "command": a.rnnkit_command},
           "evaluator": "every non-overlapping 64-char block of nanoGPT's 10 % validation split, fresh state, "
                        "64 predictions per block (nanoGPT's estimate_loss over the whole split)"}
    best = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    res["rnnkit"]["val_loss_stream"] = [r for r in best if r.get("kind") == "final"][-1]["val_loss"]
    res["difference"] = res["rnnkit"]["val_loss_blocks64"] - res["nanogpt"]["val_loss_blocks64"]
    print(json.dumps(res, indent=1))
    save_results("peer", res)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--minutes", type=float, default=10.0, help="CPU minutes of training per model")
    t.add_argument("--only", default="", help="comma-separated subset of " + ",".join(MODELS))
    la = sub.add_parser("latency")
    la.add_argument("--only", default="", help="comma-separated subset of " + ",".join(MODELS))
    la.add_argument("--bundles-only", action="store_true", help="only export + verify the trained runs' bundles")
    pe = sub.add_parser("peer")
    pe.add_argument("--nanogpt", required=True, help="nanoGPT directory after its Shakespeare-char run")
    pe.add_argument("--run", required=True, help="rnnkit run directory of the same configuration")
    pe.add_argument("--nanogpt-cpu-s", type=float, default=math.nan)
    pe.add_argument("--rnnkit-cpu-s", type=float, default=math.nan)
    pe.add_argument("--nanogpt-command", default="")
    pe.add_argument("--rnnkit-command", default="")
    su = sub.add_parser("suggest", help="eval-suggest the best everyday model of each family")
    su.add_argument("--minutes", type=float, default=None, help="the runs of this budget (default: the longest)")
    su.add_argument("--max-chars", type=int, default=8000)
    sub.add_parser("report")
    a = p.parse_args(argv)
    if a.cmd == "report":
        from rnn_vs_transformer_report import report  # bench/rnn_vs_transformer_report.py

        report(load_results())
        return
    {"train": cmd_train, "latency": cmd_latency, "peer": cmd_peer, "suggest": cmd_suggest}[a.cmd](a)


if __name__ == "__main__":
    main()
