"""Training throughput: rnnkit's trainer vs a bare PyTorch loop, precision, and oneDNN on/off;
and rnnkit vs pytorch/examples word_language_model (``--vs-peer``).

    .venv/bin/python bench/train_throughput.py            # ~1-2 minutes on 2 CPU cores
    .venv/bin/python bench/train_throughput.py --quick    # a smoke run (seconds)
    .venv/bin/python bench/train_throughput.py --vs-peer  # vs word_language_model, ~4 minutes

``--vs-peer`` runs the peer's own ``main.py`` (``/work/shared/peers/word_language_model``, unmodified,
``OMP_NUM_THREADS=1``) as a subprocess at the same time as rnnkit's trainer (a subprocess too, one
torch thread) on the SAME model configuration: the peer's own defaults (``wlm``: 2x200 LSTM,
untied, emsize 200, batch 20, bptt 35, dropout 0.2, SGD lr 20, clip 0.25) and the recipe models
(``ptb-lm``, ``char-shakespeare``: the peer given the recipe's sizes, dropout, clip, and AdamW
through its ``--use-optimizer``; characters are fed to it as space-separated "words"). The peer reads
a data/ folder made for the run: the head of the corpus's train split (one epoch = the measured
batches; its ``--epochs 1`` bounds it) after one line holding every vocabulary word once (so the
vocabulary, hence the output layer, is the full 10k of PTB), and 20 lines each of valid / test.
Each side's user and system CPU seconds are read between two of its own log lines after warm-up
(peer: ``/proc/<pid>/stat`` when it prints a batch line; rnnkit: ``getrusage`` at each step), so
start-up, data loading and evaluation are left out of both.

Measured (2026-11-29, 2 shared cores under load ~8, torch 2.13 CPU, one thread each, ``--vs-peer
--default-malloc``; tokens per CPU second, x word_language_model; system time per token in brackets):

    wlm (2x200, B 20, SGD)          peer 3,756 (23.0 us) | rnnkit 4,171 (0.7 us) 1.11x | glibc default malloc 1.11x
    ptb-lm (2x256 tied, B 32)       peer 2,652 (94.1 us) | rnnkit 3,599 (0.6 us) 1.36x | glibc default malloc 1.18x
    char-shakespeare (2x384, B 32)  peer 5,432 (23.3 us) | rnnkit 5,983 (0.3 us) 1.10x | glibc default malloc 0.96x

User time per token is within 2-4 % on each side (the output-layer GEMMs and oneDNN's LSTM are
~75 % of it, the same kernels for both); rnnkit's lead is the kernel time it no longer spends
(core/train/device.py ``tune_cpu_allocator``) plus the fused output loss (core/models/regularize.py).

Prints, side by side in one run:
1. tokens/s of ``rnnkit.core.train.trainer.train`` and of a bare word_language_model-style loop on the
   same LSTM LM, batch, optimizer (AdamW) and grad clipping, alternated ``--rounds`` times
   (median of each) -- and the trainer's overhead in %.
2. the trainer in fp32 vs bf16 autocast (CPU: bf16 is only faster with AMX / avx512_bf16 kernels).
3. the fused nn.LSTM alone with torch.backends.mkldnn on vs off: forward+backward at batch 1 and
   batch 32, and one single-token step at batch 1 (inference). core/train/device.py cites these.

Times are taken per step both as wall seconds and as process CPU seconds: with one torch
thread (the default here) CPU seconds measure the work and hardly move when neighbours load
a shared machine, so the overhead figure is read from them.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from rnnkit.core.models.kinds import LanguageModel, LMConfig
from rnnkit.core.train.trainer import TrainConfig, detach_state, train


class Clock:
    """Wall and process-CPU time stamps taken at the start of each step.

    With one torch thread, CPU seconds measure the work done and barely move when neighbours
    load the machine; wall seconds are what a user waits. Both are reported.
    """

    def __init__(self):
        self.wall: list[float] = []
        self.cpu: list[float] = []

    def stamp(self) -> None:
        self.wall.append(time.perf_counter())
        self.cpu.append(time.process_time())

    def rates(self, items_per_step: int, first: int, last: int) -> tuple[float, float]:
        """(items per wall second, items per CPU second) over steps first..last-1."""
        n = (last - first) * items_per_step
        return n / (self.wall[last] - self.wall[first]), n / (self.cpu[last] - self.cpu[first])


def make_model(args) -> LanguageModel:
    torch.manual_seed(0)
    return LanguageModel(LMConfig(vocab_size=args.vocab, embed_size=args.hidden, hidden_size=args.hidden,
                                  num_layers=args.layers, dropout=0.1))


def make_batches(args, batch: int, steps: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    data = torch.randint(0, args.vocab, (batch, steps * args.bptt + 1), generator=g)
    return [(data[:, i:i + args.bptt], data[:, i + 1:i + 1 + args.bptt])
            for i in range(0, steps * args.bptt, args.bptt)]


class BenchTask:
    """The bare loop's batches behind the Task protocol; stamps the clock at each step."""

    name, metric, metric_mode = "bench-lm", "val_loss", "min"

    def __init__(self, batches, clock: Clock):
        self.batches, self.clock = batches, clock

    def train_batches(self, epoch):
        return iter(self.batches)

    def loss(self, model, batch, carry):
        self.clock.stamp()
        x, y = batch
        logits, state = model(x, carry)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1)), y.numel(), state

    def evaluate(self, model):
        return {"val_loss": 0.0}


def bare_loop(args, batch: int) -> tuple[float, float]:
    """(tokens/s wall, tokens/CPU-s) of the plain loop (word_language_model's, AdamW + clipping)."""
    model = make_model(args).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    clock, hidden = Clock(), None
    for x, y in make_batches(args, batch, args.warmup + args.steps + 1):
        clock.stamp()
        hidden = detach_state(hidden)
        logits, hidden = model(x, hidden)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    return clock.rates(batch * args.bptt, args.warmup, args.warmup + args.steps)


def trainer_loop(args, batch: int, precision: str = "fp32") -> tuple[float, float]:
    """The same through rnnkit's train() (logging every 10 steps, as a real run would)."""
    clock = Clock()
    with tempfile.TemporaryDirectory() as run_dir:
        cfg = TrainConfig(run_dir=run_dir, device="cpu", precision=precision, optimizer="adamw", lr=1e-3,
                          grad_clip=1.0, max_steps=args.warmup + args.steps + 1, eval_every=0,
                          checkpoint_every=0, log_every=10, quiet=True)
        keep = torch.backends.mkldnn.enabled
        with contextlib.redirect_stdout(io.StringIO()):  # the trainer's own log lines
            train(make_model(args), BenchTask(make_batches(args, batch, args.warmup + args.steps + 1), clock), cfg)
        torch.backends.mkldnn.enabled = keep  # the trainer applies its own choice; don't leak it
    return clock.rates(batch * args.bptt, args.warmup, args.warmup + args.steps)


def lstm_ms(args, batch: int, mkldnn: bool, train_step: bool) -> tuple[float, float]:
    """(wall ms, CPU ms) per call of the fused LSTM alone: forward+backward over bptt steps when
    ``train_step``, else one single-token inference step (the streaming-suggestion shape)."""
    keep = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = mkldnn
    try:
        torch.manual_seed(0)
        lstm = torch.nn.LSTM(args.hidden, args.hidden, num_layers=args.layers, batch_first=True)
        T = args.bptt if train_step else 1
        x = torch.randn(batch, T, args.hidden, requires_grad=train_step)
        n = max(3, args.steps) if train_step else 200
        clock = Clock()
        with torch.set_grad_enabled(train_step):
            for i in range(n + 3):
                if i >= 3:
                    clock.stamp()
                out, _ = lstm(x)
                if train_step:
                    out.sum().backward()
            clock.stamp()
        return ((clock.wall[-1] - clock.wall[0]) / n * 1e3, (clock.cpu[-1] - clock.cpu[0]) / n * 1e3)
    finally:
        torch.backends.mkldnn.enabled = keep


def _med(xs):
    return statistics.median(xs)


# --------------------------------------------------------------------------- vs word_language_model
PEER_DIR = Path("/work/shared/peers/word_language_model")
# word_language_model's argparse defaults (main.py): LSTM, emsize 200, nhid 200, nlayers 2, lr 20,
# clip 0.25, batch_size 20, bptt 35, dropout 0.2, untied, plain SGD.
WLM = {"corpus": "ptb", "kind": "word", "emsize": 200, "nhid": 200, "nlayers": 2, "batch": 20, "bptt": 35,
       "dropout": 0.2, "tied": False, "optimizer": "sgd", "lr": 20.0, "clip": 0.25, "weight_decay": 0.0}
TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def peer_config(name: str) -> dict:
    """A model/training configuration both sides can run: ``wlm`` or an LM recipe's."""
    if name == "wlm":
        return dict(WLM)
    from rnnkit.core.recipes import resolve_recipe

    r = resolve_recipe(name)
    m, d, t = r["model"], r["data"], r["train"]
    if t["optimizer"] not in ("adamw", "sgd"):
        raise SystemExit(f"{name}: the peer runs sgd or adamw only, the recipe uses {t['optimizer']}")
    return {"corpus": d["corpus"], "kind": r["tokenizer"]["kind"], "emsize": m["embed_size"],
            "nhid": m["hidden_size"], "nlayers": m["num_layers"], "batch": d["batch_size"], "bptt": d["bptt"],
            "dropout": m["dropout"], "tied": m["tie_weights"], "optimizer": t["optimizer"], "lr": t["lr"],
            "clip": t["grad_clip"], "weight_decay": t.get("weight_decay", 0.0)}


def _peer_line(line: str, kind: str) -> str:
    """A text line as the peer's Corpus should read it: words as they are; characters as
    space-separated tokens ("_" for a space), so its <eos> per line plays rnnkit's "\\n"."""
    return line if kind == "word" else " ".join("_" if ch == " " else ch for ch in line)


def make_peer_data(cfg: dict, root: Path, batches: int) -> dict:
    """data/<corpus>/ for the peer and rnnkit/ (rnnkit's own format) holding the same text."""
    from rnnkit.core.data import load_lines

    train = [ln for ln in load_lines(cfg["corpus"], "train") if ln.strip()]
    need = (batches + 2) * cfg["batch"] * cfg["bptt"]
    if cfg["kind"] == "word":
        seen: dict[str, None] = {}
        for ln in train:
            seen.update(dict.fromkeys(ln.split()))
        head, n = [" ".join(seen)], len(seen) + 1  # every word once: the full vocabulary and head
        per = lambda ln: len(ln.split()) + 1  # noqa: E731
    else:
        head, n = [], 0
        per = lambda ln: len(ln) + 1  # noqa: E731
    for ln in train:
        if n >= need:
            break
        head.append(ln)
        n += per(ln)
    peer, ours = root / "data" / cfg["corpus"], root / "rnnkit"
    peer.mkdir(parents=True)
    ours.mkdir()
    for split, lines in (("train", head), ("valid", None), ("test", None)):
        lines = lines if lines is not None else [ln for ln in load_lines(cfg["corpus"], split) if ln.strip()][:20]
        (ours / f"{split}.txt").write_text("".join(ln + "\n" for ln in lines), encoding="utf-8")
        (peer / f"{split}.txt").write_text("".join(_peer_line(ln, cfg["kind"]) + "\n" for ln in lines),
                                           encoding="utf-8")
    return {"peer": str(peer), "rnnkit": str(ours), "tokens": n}


def _proc_cpu(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a running process, from /proc/<pid>/stat (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICK, int(fields[12]) / TICK


def run_peer(cfg: dict, data: str, warmup: int, steps: int, log_every: int, workdir: Path):
    """Start the peer's main.py; returns (process, reader) -- call reader() to collect its figures."""
    args = [sys.executable, "-u", str(PEER_DIR / "main.py"), "--data", data, "--epochs", "1",
            "--emsize", str(cfg["emsize"]), "--nhid", str(cfg["nhid"]), "--nlayers", str(cfg["nlayers"]),
            "--batch_size", str(cfg["batch"]), "--bptt", str(cfg["bptt"]), "--dropout", str(cfg["dropout"]),
            "--lr", str(cfg["lr"]), "--clip", str(cfg["clip"]), "--log-interval", str(log_every),
            "--save", str(workdir / "peer_model.pt")]
    if cfg["tied"]:
        args.append("--tied")
    if cfg["optimizer"] == "adamw":
        args.append("--use-optimizer")  # torch.optim.AdamW(lr), its default weight decay 0.01
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.Popen(args, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, bufsize=1)
    pat = re.compile(r"\|\s*epoch\s+1\s*\|\s*(\d+)/\s*\d+ batches")
    first, last = warmup, warmup + -(-steps // log_every) * log_every  # warmup is a multiple of log_every

    def reader() -> dict:
        marks, tail = {}, []
        for line in proc.stdout:
            tail = (tail + [line])[-20:]
            m = pat.search(line)
            if m:
                b = int(m.group(1))
                marks[b] = (time.perf_counter(), *_proc_cpu(proc.pid))
                if b >= last:
                    break
        proc.kill()  # our own child, by its handle; the rest of its epoch is not needed
        proc.wait()
        got = sorted(b for b in marks if b >= first)
        if len(got) < 2:
            raise SystemExit("word_language_model printed too few batch lines:\n" + "".join(tail))
        a, b = got[0], got[-1]
        return _rates("word_language_model", (b - a) * cfg["batch"] * cfg["bptt"], marks[a], marks[b])

    return proc, reader


def _rates(label: str, tokens: int, start, end) -> dict:
    wall, user, sys_ = (e - s for s, e in zip(start, end))
    return {"label": label, "tokens": tokens, "wall": wall, "user": user, "sys": sys_,
            "tok_s": tokens / wall, "tok_cpu_s": tokens / (user + sys_)}


def rnnkit_worker(argv) -> None:
    """Subprocess side: rnnkit's train() on the configuration, stamping getrusage each step; prints JSON."""
    p = argparse.ArgumentParser()
    p.add_argument("--config", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--warmup", type=int, required=True)
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--precision", default="fp32")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    from rnnkit.core.tasks.lm_data import encode_stream, train_tokenizer
    from rnnkit.core.tasks.lm import LMTask

    cfg = json.loads(a.config)
    lines = {s: Path(a.data, f"{s}.txt").read_text(encoding="utf-8").splitlines() for s in ("train", "valid")}
    tok = train_tokenizer({"kind": cfg["kind"], "vocab_size": 0}, lines["train"])
    streams = {s: encode_stream(tok, cfg["kind"], ls) for s, ls in lines.items()}
    torch.manual_seed(0)
    model = LanguageModel(LMConfig(vocab_size=tok.vocab_size, embed_size=cfg["emsize"], hidden_size=cfg["nhid"],
                                   num_layers=cfg["nlayers"], dropout=cfg["dropout"], tie_weights=cfg["tied"]))
    stamps: list[tuple[float, float, float]] = []

    class Stamped(LMTask):
        def loss(self, model, batch, carry):
            r = resource.getrusage(resource.RUSAGE_SELF)
            stamps.append((time.perf_counter(), r.ru_utime, r.ru_stime))
            return super().loss(model, batch, carry)

    task = Stamped(streams["train"], streams["valid"], batch_size=cfg["batch"], bptt=cfg["bptt"])
    with tempfile.TemporaryDirectory() as run_dir:
        tc = TrainConfig(run_dir=run_dir, device="cpu", precision=a.precision, optimizer=cfg["optimizer"],
                         lr=cfg["lr"], weight_decay=cfg["weight_decay"], grad_clip=cfg["clip"],
                         max_steps=a.warmup + a.steps + 1, eval_every=0, checkpoint_every=0, log_every=50,
                         quiet=True)
        with contextlib.redirect_stdout(io.StringIO()):
            train(model, task, tc)
    w, e = a.warmup, a.warmup + a.steps
    label = "rnnkit train()" + (f" {a.precision}" if a.precision != "fp32" else "")
    if os.environ.get("RNNKIT_MALLOC_TUNE") == "0":
        label += ", glibc default malloc"
    out = _rates(label, a.steps * cfg["batch"] * cfg["bptt"], stamps[w], stamps[e])
    out["vocab"] = tok.vocab_size
    print(json.dumps(out))


def vs_peer(args) -> None:
    if not (PEER_DIR / "main.py").is_file():
        raise SystemExit(f"word_language_model not found at {PEER_DIR}")
    print(f"torch {torch.__version__}; each side one thread, run at the same time; CPU s per token "
          f"= user + system between log lines after {args.warmup} warm-up steps")
    variants = [("fp32", "1")] + ([("fp32", "0")] if args.default_malloc else []) \
        + ([("bf16", "1")] if args.with_bf16 else [])
    results = []
    for name in args.configs.split(","):
        cfg = peer_config(name)
        steps = args.steps if args.steps else max(30, 120_000 // (cfg["batch"] * cfg["bptt"]))
        with tempfile.TemporaryDirectory(prefix="rnnkit-vs-peer-") as tmp:
            tmp = Path(tmp)
            data = make_peer_data(cfg, tmp, args.warmup + steps + 20)
            log_every = max(1, min(10, steps // 4))
            warm = (args.warmup + log_every - 1) // log_every * log_every
            proc, read_peer = run_peer(cfg, data["peer"], warm, steps, log_every, tmp)
            workers = []
            for precision, tune in variants:
                cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--config", json.dumps(cfg),
                       "--data", data["rnnkit"], "--warmup", str(args.warmup), "--steps", str(steps),
                       "--precision", precision]
                env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "RNNKIT_MALLOC_TUNE": tune}
                workers.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True))
            rows = [read_peer()]
            for w in workers:
                out, _ = w.communicate()
                if w.returncode != 0:
                    raise SystemExit(f"rnnkit worker failed (exit {w.returncode})")
                rows.append(json.loads(out.strip().splitlines()[-1]))
        desc = (f"{cfg['nlayers']}x{cfg['nhid']} LSTM, emb {cfg['emsize']}{', tied' if cfg['tied'] else ''}, "
                f"vocab {rows[1].get('vocab')}, batch {cfg['batch']} x bptt {cfg['bptt']}, dropout {cfg['dropout']}, "
                f"{cfg['optimizer']} lr {cfg['lr']:g}, clip {cfg['clip']:g}; {steps} measured steps")
        print(f"\n{name}: {desc}")
        print(f"   {'':42} {'tokens/s':>9} {'tok/CPU-s':>9} {'user us/tok':>11} {'sys us/tok':>10} {'sys %':>6} "
              f"{'x peer tok/s':>12} {'x peer tok/CPU-s':>16}")
        peer = rows[0]
        for r in rows:
            us, ss = 1e6 * r["user"] / r["tokens"], 1e6 * r["sys"] / r["tokens"]
            print(f"   {r['label']:42} {r['tok_s']:9,.0f} {r['tok_cpu_s']:9,.0f} {us:11.1f} {ss:10.1f} "
                  f"{100 * r['sys'] / max(r['user'] + r['sys'], 1e-9):5.1f}% {r['tok_s'] / peer['tok_s']:11.2f}x "
                  f"{r['tok_cpu_s'] / peer['tok_cpu_s']:15.2f}x")
        results.append({"config": name, **cfg, "rows": rows})
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=1, help="torch threads (1: least disturbed by neighbours)")
    p.add_argument("--vocab", type=int, default=1000)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--bptt", type=int, default=32)
    p.add_argument("--steps", type=int, default=24, help="measured steps per run")
    p.add_argument("--warmup", type=int, default=4)
    p.add_argument("--rounds", type=int, default=3, help="alternations of bare / trainer")
    p.add_argument("--quick", action="store_true", help="tiny sizes, one round: checks the script runs")
    p.add_argument("--vs-peer", action="store_true", help="rnnkit vs word_language_model (see the module doc)")
    p.add_argument("--configs", default="wlm,ptb-lm,char-shakespeare", help="--vs-peer: wlm and/or LM recipes")
    p.add_argument("--default-malloc", action="store_true",
                   help="--vs-peer: also rnnkit with glibc's default malloc (RNNKIT_MALLOC_TUNE=0), the old setting")
    p.add_argument("--with-bf16", action="store_true", help="--vs-peer: also rnnkit with bf16 autocast")
    p.add_argument("--json", default="", help="--vs-peer: also write the figures to this JSON file")
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["--worker"]:
        return rnnkit_worker(argv[1:])
    args = p.parse_args(argv)
    if args.vs_peer:
        if "--steps" not in argv:
            args.steps = 0  # per configuration: about 120k tokens
        if "--warmup" not in argv:
            args.warmup = 10
        return vs_peer(args)
    if args.quick:
        args.vocab, args.hidden, args.batch, args.bptt, args.steps, args.warmup, args.rounds = 64, 32, 4, 16, 6, 2, 1
    torch.set_num_threads(args.threads)
    mk = torch.backends.mkldnn.enabled
    print(f"torch {torch.__version__}, {args.threads} thread(s), LSTM LM vocab {args.vocab}, "
          f"{args.layers}x{args.hidden}, batch {args.batch} x bptt {args.bptt}, AdamW, clip 1.0, "
          f"{args.steps} measured steps after {args.warmup} warm-up; mkldnn default {mk}")

    bare, ours = [], []
    for _ in range(args.rounds):  # alternate, so a noisy neighbour hits both sides alike
        bare.append(bare_loop(args, args.batch))
        ours.append(trainer_loop(args, args.batch))
    bw, bc = _med([r[0] for r in bare]), _med([r[1] for r in bare])
    ow, oc = _med([r[0] for r in ours]), _med([r[1] for r in ours])
    bb, ob = max(r[1] for r in bare), max(r[1] for r in ours)  # noise only ever slows a round down
    print("\n1. trainer vs bare loop, batch %d (tokens/s; %d alternated rounds)" % (args.batch, args.rounds))
    print(f"   {'':18} {'median wall':>11} {'median CPU':>11} {'best CPU':>11}")
    print(f"   {'bare PyTorch loop':18} {bw:11,.0f} {bc:11,.0f} {bb:11,.0f}")
    print(f"   {'rnnkit train()':18} {ow:11,.0f} {oc:11,.0f} {ob:11,.0f}")
    print(f"   {'overhead':18} {100 * (bw - ow) / bw:+10.1f}% {100 * (bc - oc) / bc:+10.1f}% "
          f"{100 * (bb - ob) / bb:+10.1f}%   (goal <= 5 %)")
    print("   rounds (CPU): bare " + ", ".join(f"{r[1]:,.0f}" for r in bare)
          + " | trainer " + ", ".join(f"{r[1]:,.0f}" for r in ours))

    bf = [trainer_loop(args, args.batch, precision="bf16") for _ in range(max(1, args.rounds // 2))]
    fw, fc = _med([r[0] for r in bf]), _med([r[1] for r in bf])
    print("\n2. trainer precision (tokens/s)")
    print(f"   {'fp32':18} {ow:11,.0f} {oc:11,.0f}")
    print(f"   {'bf16 autocast':18} {fw:11,.0f} {fc:11,.0f}   ({fc / oc:.2f}x fp32 per CPU s)")

    print(f"\n3. oneDNN on vs off: fused nn.LSTM {args.layers}x{args.hidden} alone (ms per call, CPU ms "
          f"in brackets; median of {args.rounds} alternated rounds)")
    shapes = [("train fwd+bwd B=1", 1, True), (f"train fwd+bwd B={args.batch}", args.batch, True),
              ("1-token step B=1 (no grad)", 1, False)]
    for label, batch, train_step in shapes:
        on, off = [], []
        for _ in range(args.rounds):
            on.append(lstm_ms(args, batch, True, train_step))
            off.append(lstm_ms(args, batch, False, train_step))
        onw, onc = _med([r[0] for r in on]), _med([r[1] for r in on])
        offw, offc = _med([r[0] for r in off]), _med([r[1] for r in off])
        print(f"   {label:28} on {onw:8.3f} ({onc:8.3f}) | off {offw:8.3f} ({offc:8.3f}) "
              f"| off/on CPU {offc / onc:.2f}x")


if __name__ == "__main__":
    main()
