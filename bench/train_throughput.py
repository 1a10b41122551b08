"""Training throughput: rnnkit's trainer vs a bare PyTorch loop, precision, and oneDNN on/off.

    .venv/bin/python bench/train_throughput.py            # ~1-2 minutes on 2 CPU cores
    .venv/bin/python bench/train_throughput.py --quick    # a smoke run (seconds)

Prints, side by side in one run:
1. tokens/s of ``rnnkit.core.trainer.train`` and of a bare word_language_model-style loop on the
   same LSTM LM, batch, optimizer (AdamW) and grad clipping, alternated ``--rounds`` times
   (median of each) -- and the trainer's overhead in %.
2. the trainer in fp32 vs bf16 autocast (CPU: bf16 is only faster with AMX / avx512_bf16 kernels).
3. the bare loop with torch.backends.mkldnn on vs off, training at batch 1 and batch 32, and the
   latency of one single-token step at batch 1 (inference). core/device.py cites these.

Measure on a quiet machine: figures from a shared box move by 10-30 % between runs.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F

from rnnkit.core.models import LanguageModel, LMConfig
from rnnkit.core.plots import read_metrics
from rnnkit.core.trainer import TrainConfig, detach_state, train


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
    """The bare loop's batches behind the Task protocol."""

    name, metric, metric_mode = "bench-lm", "val_loss", "min"

    def __init__(self, batches):
        self.batches = batches

    def train_batches(self, epoch):
        return iter(self.batches)

    def loss(self, model, batch, carry):
        x, y = batch
        logits, state = model(x, carry)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1)), y.numel(), state

    def evaluate(self, model):
        return {"val_loss": 0.0}


def bare_loop(args, batch: int, steps: int, warmup: int) -> float:
    """tokens/s of the plain loop (word_language_model's, with AdamW and clipping)."""
    model = make_model(args).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    batches = make_batches(args, batch, warmup + steps)
    hidden = None
    for i, (x, y) in enumerate(batches):
        if i == warmup:
            t0 = time.perf_counter()
        hidden = detach_state(hidden)
        logits, hidden = model(x, hidden)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    return steps * batch * args.bptt / (time.perf_counter() - t0)


def trainer_loop(args, batch: int, steps: int, warmup: int, precision: str = "fp32") -> float:
    """tokens/s of rnnkit's train(), read from its metrics.jsonl (windows after the warm-up)."""
    log_every = warmup  # the first log line closes the warm-up window
    with tempfile.TemporaryDirectory() as run_dir:
        cfg = TrainConfig(run_dir=run_dir, device="cpu", precision=precision, optimizer="adamw", lr=1e-3,
                          grad_clip=1.0, max_steps=warmup + steps, eval_every=0, checkpoint_every=0,
                          log_every=log_every, quiet=True)
        keep = torch.backends.mkldnn.enabled
        train(make_model(args), BenchTask(make_batches(args, batch, warmup + steps + 1)), cfg)
        torch.backends.mkldnn.enabled = keep  # the trainer applies its own choice; don't leak it
        recs = [r for r in read_metrics(f"{run_dir}/metrics.jsonl") if r["kind"] == "train"][1:]
    items = log_every * batch * args.bptt
    return len(recs) * items / sum(items / r["items_per_s"] for r in recs)


def step_latency_ms(args, n: int = 300) -> float:
    """One token, batch 1, no grad: the streaming-suggestion shape."""
    model = make_model(args).eval()
    x = torch.zeros(1, 1, dtype=torch.long)
    with torch.no_grad():
        state = None
        for _ in range(20):
            _, state = model(x, state)
        t0 = time.perf_counter()
        for _ in range(n):
            _, state = model(x, state)
    return (time.perf_counter() - t0) / n * 1e3


def with_mkldnn(on: bool, fn, *a, **kw):
    keep = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = on
    try:
        return fn(*a, **kw)
    finally:
        torch.backends.mkldnn.enabled = keep


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=1, help="torch threads (1: least disturbed by neighbours)")
    p.add_argument("--vocab", type=int, default=1000)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--bptt", type=int, default=64)
    p.add_argument("--steps", type=int, default=40, help="measured steps per run")
    p.add_argument("--warmup", type=int, default=8)
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
        bare.append(bare_loop(args, args.batch, args.steps, args.warmup))
        ours.append(trainer_loop(args, args.batch, args.steps, args.warmup))
    b, o = statistics.median(bare), statistics.median(ours)
    print("\n1. trainer vs bare loop (tokens/s, median of rounds)")
    print(f"   bare PyTorch loop : {b:10,.0f}   rounds {', '.join(f'{x:,.0f}' for x in bare)}")
    print(f"   rnnkit train()    : {o:10,.0f}   rounds {', '.join(f'{x:,.0f}' for x in ours)}")
    print(f"   overhead          : {100 * (b - o) / b:+.1f} %  (goal <= 5 %)")

    bf16 = trainer_loop(args, args.batch, args.steps, args.warmup, precision="bf16")
    print("\n2. trainer precision (tokens/s)")
    print(f"   fp32              : {o:10,.0f}")
    print(f"   bf16 autocast     : {bf16:10,.0f}   ({bf16 / o:.2f}x fp32)")

    print("\n3. oneDNN (torch.backends.mkldnn), bare loop")
    for batch in (1, args.batch):
        on = [with_mkldnn(True, bare_loop, args, batch, args.steps, args.warmup) for _ in range(2)]
        off = [with_mkldnn(False, bare_loop, args, batch, args.steps, args.warmup) for _ in range(2)]
        print(f"   train batch {batch:>3}   : on {max(on):9,.0f} tok/s | off {max(off):9,.0f} tok/s "
              f"| on/off {max(on) / max(off):.2f}x")
    lat_on = min(with_mkldnn(True, step_latency_ms, args) for _ in range(2))
    lat_off = min(with_mkldnn(False, step_latency_ms, args) for _ in range(2))
    print(f"   1-token step, B=1 : on {lat_on:.3f} ms | off {lat_off:.3f} ms (inference, no grad)")


if __name__ == "__main__":
    main()
