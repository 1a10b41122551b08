"""A toy Task and a tiny LanguageModel for the trainer tests; also a script for subprocess runs.

``python tests/test_trainer_toys.py RUN_DIR [--resume] [--max-steps N] ...`` trains the toy
LM (used by the SIGKILL and torchrun tests). The data is made up: a noisy periodic token
stream, learnable in a few dozen steps.
"""

from __future__ import annotations

import argparse
import math
import sys

import torch
import torch.nn.functional as F

from rnnkit.core.models.kinds import LanguageModel, LMConfig


def tiny_lm(seed: int = 0, vocab: int = 16, cell: str = "lstm", dropout: float = 0.3,
            adaptive: tuple[int, ...] = ()) -> LanguageModel:
    torch.manual_seed(seed)
    return LanguageModel(LMConfig(vocab_size=vocab, cell=cell, embed_size=12, hidden_size=16, num_layers=2,
                                  dropout=dropout, adaptive_cutoffs=list(adaptive)))


class ToyLMTask:
    """Truncated-BPTT language modelling on a made-up stream.

    The stream (N tokens) is cut into ``batch`` rows read ``bptt`` tokens at a time; the
    carry is the LSTM state, passed from chunk to chunk. Each epoch starts the rows at an
    epoch-dependent offset (own generator: deterministic given seed and epoch). Under DDP
    each rank takes rows ``rank::world_size``.
    """

    name = "toy-lm"
    metric = "val_loss"
    metric_mode = "min"

    def __init__(self, vocab: int = 16, batch: int = 4, bptt: int = 8, n_tokens: int = 1200, seed: int = 0,
                 nan_at_step: int = -1, global_rng_noise: bool = False):
        g = torch.Generator().manual_seed(seed)
        base = torch.arange(n_tokens) % 7  # next token = current + 1 (mod 7), 10 % noise
        noise = torch.randint(0, vocab, (n_tokens,), generator=g)
        keep = torch.rand(n_tokens, generator=g) < 0.9
        self.data = torch.where(keep, base % vocab, noise)
        self.val = self.data[: n_tokens // 4].clone()
        self.vocab, self.batch, self.bptt, self.seed = vocab, batch, bptt, seed
        self.rank, self.world_size = 0, 1
        self.nan_at_step, self.calls = nan_at_step, 0
        self.global_rng_noise = global_rng_noise

    def train_batches(self, epoch: int):
        g = torch.Generator().manual_seed(self.seed * 1000 + epoch)
        offset = int(torch.randint(0, self.bptt, (1,), generator=g))
        stream = self.data[offset:]
        cols = (len(stream) - 1) // self.batch
        rows = stream[: cols * self.batch + 1]
        x_all = rows[:-1].view(self.batch, cols)
        y_all = rows[1:].view(self.batch, cols)
        mine = slice(self.rank, None, self.world_size)
        for i in range(0, cols - self.bptt + 1, self.bptt):
            x, y = x_all[mine, i:i + self.bptt], y_all[mine, i:i + self.bptt]
            if self.global_rng_noise:  # a task that draws from the global RNG per batch
                x = torch.where(torch.rand(x.shape) < 0.05, torch.randint(0, self.vocab, x.shape), x)
            yield x, y

    def loss(self, model, batch, carry):
        x, y = batch
        device = next(model.parameters()).device
        self.last_rows = x.shape[0]  # the DDP test checks each rank got its share only
        logits, state = model(x.to(device), carry)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.to(device).reshape(-1))
        self.calls += 1
        if self.calls == self.nan_at_step:
            loss = loss * float("nan")
        return loss, y.numel(), state

    @torch.no_grad()
    def evaluate(self, model):
        device = next(model.parameters()).device
        x, y = self.val[:-1].unsqueeze(0).to(device), self.val[1:].unsqueeze(0).to(device)
        logits, _ = model(x, None)
        loss = float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1)))
        return {"val_loss": loss, "val_ppl": math.exp(min(loss, 50.0))}

    def describe(self):
        return {"name": self.name, "vocab": self.vocab, "batch": self.batch, "bptt": self.bptt}


def main(argv=None) -> int:
    """Train the toy LM; the SIGKILL and torchrun tests run this in a subprocess."""
    from rnnkit.core.train.trainer import TrainConfig, train

    p = argparse.ArgumentParser()
    p.add_argument("run_dir")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--max-steps", type=int, default=200)
    p.add_argument("--checkpoint-every", type=int, default=3)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--n-tokens", type=int, default=1200)
    p.add_argument("--dropout", type=float, default=0.3)
    p.add_argument("--eval-every", type=int, default=10)
    p.add_argument("--pause-at", type=int, default=0, help="stop there, then resume in this process")
    p.add_argument("--adaptive", default="", help="adaptive softmax cutoffs, e.g. 4,10")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    cfg = TrainConfig(run_dir=args.run_dir, device="cpu", max_steps=args.max_steps, eval_every=args.eval_every,
                      checkpoint_every=args.checkpoint_every, log_every=5, quiet=True, lr=3e-3)
    task = ToyLMTask(batch=args.batch, n_tokens=args.n_tokens)
    adaptive = tuple(int(c) for c in args.adaptive.split(",") if c)
    if args.pause_at:
        train(tiny_lm(dropout=args.dropout, adaptive=adaptive), task, cfg, resume=args.resume,
              stop_after_steps=args.pause_at)
        task, args.resume = ToyLMTask(batch=args.batch, n_tokens=args.n_tokens), True
    result = train(tiny_lm(seed=7 if args.resume else 0, dropout=args.dropout, adaptive=adaptive), task, cfg,
                   resume=args.resume)
    print(f"RESULT steps={result.steps} best={result.best_metric:.6f} reason={result.stop_reason} "
          f"rank={task.rank}/{task.world_size} rows={getattr(task, 'last_rows', 0)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
