"""Training throughput: rnnkit's trainer vs a bare PyTorch loop, precision, and oneDNN on/off.

    .venv/bin/python bench/train_throughput.py            # ~1-2 minutes on 2 CPU cores
    .venv/bin/python bench/train_throughput.py --quick    # a smoke run (seconds)

Prints, side by side in one run:
1. tokens/s of ``rnnkit.core.trainer.train`` and of a bare word_language_model-style loop on the
   same LSTM LM, batch, optimizer (AdamW) and grad clipping, alternated ``--rounds`` times
   (median of each) -- and the trainer's overhead in %.
2. the trainer in fp32 vs bf16 autocast (CPU: bf16 is only faster with AMX / avx512_bf16 kernels).
3. the fused nn.LSTM alone with torch.backends.mkldnn on vs off: forward+backward at batch 1 and
   batch 32, and one single-token step at batch 1 (inference). core/device.py cites these.

Times are taken per step both as wall seconds and as process CPU seconds: with one torch
thread (the default here) CPU seconds measure the work and hardly move when neighbours load
a shared machine, so the overhead figure is read from them.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F

from rnnkit.core.models import LanguageModel, LMConfig
from rnnkit.core.trainer import TrainConfig, detach_state, train


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
    args = p.parse_args(argv)
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
