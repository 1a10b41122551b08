"""Language-model task: one contiguous token stream, (B, bptt) windows, truncated BPTT.

The train split is one long stream of token ids cut into B parallel columns
(word_language_model's ``batchify``); each step reads the next (B, bptt) window of every column
and carries the LSTM state over from the previous window (detached by the trainer), so the
model sees context longer than bptt. Each epoch starts the windows at a seeded offset in
[0, bptt) so window boundaries move between epochs. With ``data.variable_bptt`` the window
lengths vary as in AWD-LSTM (``variable_bptt_lengths``; same seeded generator) and the trainer
scales each step's learning rate by length / bptt (``LMTask.lr_scale``). ``loss`` calls
``model(x, state, targets=y)``: the model returns the mean cross-entropy itself (fused output
layer, plus AR / TAR when configured), so no (B, T, V) log-probability tensor is kept.

Streams: char -- the text itself, lines joined by "\\n"; word / sentencepiece -- each line's
ids followed by ``eos_id`` (so ``eos_id`` also means "a sentence starts here"; prompt a fresh
sentence by feeding it first).

Metrics: ``val_loss`` (nats per token, the trainer's metric), ``val_ppl``, ``val_bits`` (bits per
token; bits per char for char models), and with ``next_word`` also next-word top-1 / top-3
accuracy (see ``next_word_accuracy``). ``finalize`` scores the best model on valid and test,
writes ``results.json`` and ``samples.txt``, and appends a ``{"kind": "final"}`` line to
``metrics.jsonl``.
"""

from __future__ import annotations

import dataclasses
import math
import random
import sys
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit.edge.lexicon import FILE_NAME as LEXICON_FILE, build_lexicon, write_lexicon
from rnnkit.core.text.word_ngram import build_word_ngram, write_word_ngram
from rnnkit.edge.word_ngram import FILE_NAME as NGRAM_FILE
from rnnkit.edge.npsample import decode_continuation, generate, start_ids  # the one sampler; start-of-text rule

from rnnkit.core.atomic import atomic_write_json, atomic_write_text
from rnnkit.core.metrics.numeric import lm_figures
from rnnkit.core.models.registry import classes
from rnnkit.core.tasks.lm_data import encode_stream, load_splits, train_tokenizer
from rnnkit.core.tasks.next_word_proxy import next_word_accuracy
from rnnkit.core.tasks.common import pretrained_lm
from rnnkit.core.train.run_log import append_jsonl


LM_KINDS = ("lm", "transformer_lm")  # model kinds with the (tokens, state) -> (logits, state) LM step


SMALL_TEXT_CHARS = 5_000_000  # below this, a training text's lexicon keeps words seen once


def batchify(ids: Tensor, columns: int) -> Tensor:
    """A 1-D stream (N,) -> (columns, N // columns); column b is one contiguous piece of text."""
    n = ids.numel() // columns
    if n < 2:
        raise ValueError(f"a stream of {ids.numel()} tokens is too short for {columns} columns")
    return ids[: n * columns].view(columns, n)


class LMWindows:
    """The (x, y) windows of one epoch: x, y (B, T) int64, y shifted by one. Sized, so the
    trainer can count steps per epoch (cosine schedules with max_epochs).

    ``lengths``: the window lengths in order (variable-length BPTT); None = ``bptt`` each."""

    def __init__(self, data: Tensor, bptt: int, lengths: Optional[Sequence[int]] = None):
        self.data, self.bptt, self.lengths = data, bptt, lengths

    def __len__(self) -> int:
        if self.lengths is not None:
            return len(self.lengths)
        return math.ceil((self.data.shape[1] - 1) / self.bptt)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        n = self.data.shape[1]
        if self.lengths is None:
            for i in range(0, n - 1, self.bptt):
                t = min(self.bptt, n - 1 - i)
                yield self.data[:, i:i + t], self.data[:, i + 1:i + 1 + t]
            return
        i = 0
        for t in self.lengths:
            yield self.data[:, i:i + t], self.data[:, i + 1:i + 1 + t]
            i += t


def variable_bptt_lengths(n: int, bptt: int, rng: random.Random) -> list[int]:
    """AWD-LSTM's window lengths over a stream of ``n`` positions: the base is ``bptt`` with
    probability 0.95 and ``bptt / 2`` otherwise, the length ~ N(base, 5) rounded down, at least
    min(5, bptt); the last window is cut at the stream's end. Covers all n - 1 targets."""
    out, i = [], 0
    floor = min(5, bptt)
    while i < n - 1:
        base = bptt if rng.random() < 0.95 else bptt / 2
        t = max(floor, int(rng.gauss(base, 5)))
        t = min(t, n - 1 - i)
        out.append(t)
        i += t
    return out


class LMTask:
    """Truncated-BPTT language modelling over token streams (train / valid / test)."""

    name = "lm"
    metric = "val_loss"
    metric_mode = "min"

    def __init__(self, train: Tensor, valid: Tensor, test: Optional[Tensor] = None, *, batch_size: int = 32,
                 bptt: int = 35, eval_batch_size: int = 10, seed: int = 0, unit: str = "token",
                 tokenizer: Any = None, next_word: bool = False, next_word_positions: int = 1000,
                 sample_prompts: Sequence[str] = (), sample_length: int = 300, variable_bptt: bool = False,
                 carry: bool = True):
        if batch_size < 1 or bptt < 1:
            raise ValueError(f"batch_size and bptt must be >= 1, got {batch_size}, {bptt}")
        self.variable_bptt = variable_bptt
        # False: every training window starts from a fresh state (GPT-style independent chunks, as
        # nanoGPT trains); True: the state is carried over from the previous window (truncated BPTT).
        self.carry = carry
        self.train, self.valid, self.test = train, valid, test
        self.batch_size, self.bptt, self.eval_batch_size = batch_size, bptt, eval_batch_size
        self.seed, self.unit, self.tokenizer = seed, unit, tokenizer
        self.next_word, self.next_word_positions = next_word, next_word_positions
        self.sample_prompts, self.sample_length = list(sample_prompts), sample_length
        self.rank, self.world_size = 0, 1  # the trainer sets these under DDP

    # ------------------------------------------------------------------ training
    def train_batches(self, epoch: int) -> LMWindows:
        """Deterministic given (seed, epoch). Under DDP each rank takes its own B columns.
        With ``variable_bptt`` the window lengths are drawn from the same (seed, epoch) generator."""
        rng = random.Random(self.seed * 1_000_003 + epoch)
        # a random start each epoch, but never so far that a column has less than two tokens
        # (a tiny file that trained in epoch 0 must not fail in epoch 1)
        room = len(self.train) - 2 * self.batch_size * self.world_size
        offset = rng.randrange(max(1, min(self.bptt, room + 1))) if epoch > 0 else 0
        cols = batchify(self.train[offset:], self.batch_size * self.world_size)
        mine = cols[self.rank * self.batch_size:(self.rank + 1) * self.batch_size]
        lengths = variable_bptt_lengths(mine.shape[1], self.bptt, rng) if self.variable_bptt else None
        return LMWindows(mine, self.bptt, lengths)

    def lr_scale(self, batch: tuple[Tensor, Tensor]) -> float:
        """The trainer scales this step's learning rate by it: window length / bptt with variable
        BPTT (AWD-LSTM: a short window must not weigh its tokens more), else 1."""
        return batch[0].shape[1] / self.bptt if self.variable_bptt else 1.0

    def loss(self, model, batch: tuple[Tensor, Tensor], carry) -> tuple[Tensor, int, Any]:
        x, y = batch
        device = next(model.parameters()).device
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        # mean cross-entropy (+ AR / TAR), no logits tensor kept
        loss, state = model(x, carry if self.carry else None, targets=y)
        return loss, y.numel(), state

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def stream_loss(self, model, ids: Tensor) -> float:
        """Mean nats per token over a whole stream, state carried across windows."""
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        data = batchify(ids, min(self.eval_batch_size, max(1, ids.numel() // 2 - 1)))
        total, count, state = 0.0, 0, None
        for x, y in LMWindows(data, self.bptt):
            logits, state = model(x.to(device), state)
            total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.to(device).reshape(-1),
                                     reduction="sum").item()
            count += y.numel()
        model.train(was_training)
        return total / max(count, 1)

    def split_metrics(self, model, split: str, positions: Optional[int] = None) -> dict[str, float]:
        ids = {"valid": self.valid, "test": self.test}[split]
        nats = self.stream_loss(model, ids)
        prefix = "val" if split == "valid" else split
        out = {f"{prefix}_{k}": v for k, v in lm_figures(nats).items()}
        if self.next_word and self.tokenizer is not None:
            acc = next_word_accuracy(model, ids, self.tokenizer, positions or self.next_word_positions)
            # the training-time proxy; `rnnkit eval-suggest` measures the typing session itself
            out.update({f"{prefix}_next_proxy_top1": acc["top1"], f"{prefix}_next_proxy_top3": acc["top3"],
                        f"{prefix}_next_proxy_n": acc["n"]})
        return out

    def evaluate(self, model) -> dict[str, float]:
        return self.split_metrics(model, "valid")

    def describe(self) -> dict:
        out = {"task": "lm", "unit": self.unit, "batch_size": self.batch_size, "bptt": self.bptt,
               "train_tokens": self.train.numel(), "valid_tokens": self.valid.numel(),
               "test_tokens": None if self.test is None else self.test.numel(),
               "metric": "nats per %s (val_loss); ppl = exp(val_loss)" % self.unit,
               "next_word": self.next_word}
        if self.variable_bptt:
            out["variable_bptt"] = True
        if not self.carry:
            out["carry"] = False
        return out

    # ------------------------------------------------------------------ after training
    def samples(self, model, count: int = 3, temperature: float = 0.8, seed: int = 0) -> list[str]:
        from rnnkit.core.models.sampling import numpy_step

        tok = self.tokenizer
        prompts = self.sample_prompts or [""]
        out = []
        for i in range(count):
            prompt = prompts[i % len(prompts)]
            ids = start_ids(tok, prompt)
            new = list(generate(numpy_step(model), ids, self.sample_length, temperature=temperature, top_k=0,
                                top_p=0.95, seed=seed + i))
            out.append(prompt + decode_continuation(tok, ids, new))
        return out

    def finalize(self, model, run_dir: Path) -> dict:
        """Score the best model on valid and test, record samples; returns the final record."""
        model.eval()
        rec = {"kind": "final", "unit": self.unit, **self.split_metrics(model, "valid", 4 * self.next_word_positions)}
        if self.test is not None:
            rec.update(self.split_metrics(model, "test", 4 * self.next_word_positions))
        rec["params"] = sum(p.numel() for p in model.parameters())
        samples = self.samples(model) if self.tokenizer is not None else []
        rec["samples"] = samples
        run_dir = Path(run_dir)
        atomic_write_json(run_dir / "results.json", rec)
        if samples:
            atomic_write_text(run_dir / "samples.txt", "\n\n=====\n\n".join(samples) + "\n")
        append_jsonl(run_dir / "metrics.jsonl", {k: v for k, v in rec.items() if k != "samples"})
        return rec


# --------------------------------------------------------------------------- builder
def build(recipe: Mapping[str, Any], run_dir: Path):
    """``(model, task, tokenizer)`` for an LM recipe (see core/recipes/__init__.py for the schema)."""
    from rnnkit.core.recipes import load_or_train_tokenizer

    data, tok_spec = dict(recipe["data"]), dict(recipe["tokenizer"])
    splits = load_splits(data)
    pretrained = None
    if data.get("pretrained"):  # fine-tune: the LM's tokenizer and weights, the recipe's data
        pretrained, lm_tok = pretrained_lm(data["pretrained"])
        if lm_tok.kind != tok_spec["kind"]:
            raise ValueError(f"data.pretrained={data['pretrained']} reads {lm_tok.kind} tokens; this recipe "
                             f"trains on {tok_spec['kind']} tokens: pick a recipe of the same kind")
        tokenizer = load_or_train_tokenizer(run_dir, lambda: lm_tok)
    else:
        tokenizer = load_or_train_tokenizer(run_dir, lambda: train_tokenizer(tok_spec, splits["train"]))
    small = sum(len(line) for line in splits["train"]) <= SMALL_TEXT_CHARS
    if tok_spec["kind"] == "sentencepiece" and not (Path(run_dir) / LEXICON_FILE).is_file():
        # The words the suggester may offer without the model being sure (edge/lexicon.py); a
        # fine-tuned model also keeps the words its pretrained model knew.
        # Words seen twice on a big corpus (a typo seen once stays out); on a small text of one's
        # own, once (own-text check: 16 % of held-out words were seen once or never).
        words = build_lexicon(splits["train"], min_count=1 if small else 2)
        if pretrained is not None:
            known = Path(data["pretrained"]) / LEXICON_FILE
            if known.is_file():
                seen = set(words)
                words += [w for w in known.read_text(encoding="utf-8").split() if w not in seen]
        write_lexicon(Path(run_dir) / LEXICON_FILE, words)
    if tok_spec["kind"] == "sentencepiece" and not (Path(run_dir) / NGRAM_FILE).is_file():
        # The suggester's background word n-gram (edge/word_ngram.py), pruned on a big corpus
        # (n-grams seen once left out: 1.9 MB on everyday_en instead of 23 MB).
        try:
            minimum = 1 if small else 2
            write_word_ngram(Path(run_dir) / NGRAM_FILE, build_word_ngram(splits["train"], minimum, minimum, minimum))
        except ValueError as e:  # a text with no words: the suggester goes without
            print(f"no word n-gram: {e}", file=sys.stderr, flush=True)
    streams = {s: encode_stream(tokenizer, tok_spec["kind"], lines) for s, lines in splits.items()}
    # Say what was read before training starts (the run's config.json records it too).
    print("read " + ", ".join(f"{s} {len(splits[s]):,} lines = {streams[s].numel():,} tokens" for s in streams)
          + f"; vocabulary {tokenizer.vocab_size:,} {'pieces' if tok_spec['kind'] == 'sentencepiece' else 'symbols'}",
          file=sys.stderr, flush=True)
    model_args = {k: v for k, v in recipe["model"].items() if k != "kind"}
    kind = recipe["model"].get("kind", "lm")
    if kind not in LM_KINDS:
        raise ValueError(f"an LM recipe builds model kind {' or '.join(LM_KINDS)}, not {kind!r}")
    cfg_cls, model_cls = classes(kind)  # LMConfig / LanguageModel, or the Transformer (same step contract)
    cfg = cfg_cls(vocab_size=tokenizer.vocab_size, pad_id=max(tokenizer.pad_id, 0), bos_id=tokenizer.bos_id,
                  eos_id=tokenizer.eos_id, unk_id=tokenizer.unk_id, **model_args)
    if pretrained is not None:
        # its shapes and special ids; the recipe's regularisation (dropout, ...) still applies
        shape = {"vocab_size", "embed_size", "hidden_size", "num_layers", "cell", "tie_weights",
                 "pad_id", "bos_id", "eos_id", "unk_id"}
        if pretrained.kind != kind:
            raise ValueError(f"data.pretrained is a {pretrained.kind} model, the recipe builds {kind}")
        fields = dataclasses.asdict(pretrained.config)
        fields.update({k: v for k, v in model_args.items() if k not in shape and k in fields})
        cfg = cfg_cls(**fields)
    torch.manual_seed(int(recipe["train"].get("seed", 1337)))  # same initial weights for the same recipe
    model = model_cls(cfg)
    if pretrained is not None:
        model.load_state_dict(pretrained.state_dict())
    task = LMTask(streams["train"], streams["valid"], streams.get("test"),
                  batch_size=int(data.get("batch_size", 32)), bptt=int(data.get("bptt", 35)),
                  eval_batch_size=int(data.get("eval_batch_size", 10)), seed=int(recipe["train"].get("seed", 0)),
                  unit="char" if tok_spec["kind"] == "char" else "token", tokenizer=tokenizer,
                  next_word=bool(data.get("next_word", False)),
                  next_word_positions=int(data.get("next_word_positions", 1000)),
                  sample_prompts=data.get("sample_prompts", ()), sample_length=int(data.get("sample_length", 300)),
                  variable_bptt=bool(data.get("variable_bptt", False)), carry=bool(data.get("carry", True)))
    return model, task, tokenizer
