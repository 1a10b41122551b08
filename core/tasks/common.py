"""What every task shares: padding, length buckets, rank sharding, eval mode, the final record,
and the recipe-builder helpers (seeded model, the user's files or the corpus).

Tasks import this module, the models and the trainer -- never each other.
"""

from __future__ import annotations

import contextlib
import random
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor

from rnnkit.core.atomic import atomic_write_json
from rnnkit.core.train.run_log import append_jsonl


# --------------------------------------------------------------------------- batching helpers
def pad_ids(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[Tensor, Tensor]:
    """Right-pad id lists -> tokens (B, T) int64, lengths (B,) int64. Empty lists become one pad."""
    lengths = [max(1, len(s)) for s in seqs]
    out = torch.full((len(seqs), max(lengths)), pad_id, dtype=torch.long)
    for i, s in enumerate(seqs):
        if len(s):
            out[i, :len(s)] = torch.as_tensor(list(s), dtype=torch.long)
    return out, torch.tensor(lengths, dtype=torch.long)


def bucketed_batches(lengths: Sequence[int], batch_size: int, seed: int, epoch: int,
                     shuffle: bool = True, rank: int = 0, world_size: int = 1) -> list[list[int]]:
    """Index batches of similar lengths (less padding), deterministic in (seed, epoch).

    Shuffle, sort within windows of 50 batches by length, cut, shuffle the batches. Under
    DDP each rank takes every ``world_size``-th batch of the same list, trimmed so all ranks
    take the same number of steps.
    """
    idx = list(range(len(lengths)))
    if not shuffle:
        batches = [idx[i:i + batch_size] for i in range(0, len(idx), batch_size)]
    else:
        rng = random.Random(seed * 1_000_003 + epoch)
        rng.shuffle(idx)
        window = batch_size * 50
        batches = []
        for w in range(0, len(idx), window):
            chunk = sorted(idx[w:w + window], key=lambda i: lengths[i])
            batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
        rng.shuffle(batches)
    if world_size > 1:
        batches = batches[: len(batches) - len(batches) % world_size][rank::world_size]
    return batches


class Batches:
    """A sized, re-iterable epoch of batches: ``len()`` costs nothing (the trainer asks for
    ``len(task.train_batches(0))`` to size a cosine schedule); batches are built lazily."""

    def __init__(self, plan: Sequence, make):
        self.plan, self.make = list(plan), make

    def __len__(self) -> int:
        return len(self.plan)

    def __iter__(self):
        return (self.make(k, p) for k, p in enumerate(self.plan))


def unwrap(model):
    """The model inside a DistributedDataParallel wrapper (for methods other than forward)."""
    return getattr(model, "module", model)


def model_device(model) -> torch.device:
    return next(model.parameters()).device


@contextlib.contextmanager
def evaluating(model):
    """eval() + no_grad for the block, then the model's previous mode back."""
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was)


def write_final(run_dir, record: dict) -> dict:
    """``results.json`` + a ``{"kind": "final"}`` line in ``metrics.jsonl`` (as the LM tasks do)."""
    record = {"kind": "final", **record}
    if run_dir is not None:
        atomic_write_json(Path(run_dir) / "results.json", record)
        append_jsonl(Path(run_dir) / "metrics.jsonl",
                     {k: v for k, v in record.items() if isinstance(v, (int, float, str))})
    return record


# --------------------------------------------------------------------------- recipe builders
def seeded_model(recipe, cls, cfg):
    """Build the model with its weights drawn from the recipe's seed (the trainer seeds only
    after the model exists), so two runs of one recipe start from the same weights."""
    torch.manual_seed(int(recipe["train"].get("seed", 1337)))
    return cls(cfg)


def model_fields(recipe) -> dict:
    """The recipe's model section without ``kind`` (the builder fills vocabulary-dependent fields)."""
    return {k: v for k, v in recipe["model"].items() if k != "kind"}


def seeded_holdout(rows: list, fraction: float, seed: int) -> tuple[list, list]:
    """(kept, held out): a seeded random ``fraction`` held out (user files are often sorted by label)."""
    if len(rows) < 2:
        raise ValueError(f"need at least 2 rows to hold out a validation part, got {len(rows)} (or pass --valid FILE)")
    idx = list(range(len(rows)))
    random.Random(seed).shuffle(idx)
    n = max(1, int(round(len(rows) * fraction)))
    held = set(idx[:n])
    return [r for i, r in enumerate(rows) if i not in held], [rows[i] for i in sorted(held)]


def split_seed(recipe: dict) -> int:
    """The seed that chooses rows (the held-out validation split, row subsets): the run's first
    ``train.seed``. A fork resumed with another ``train.seed`` (for a soup) shuffles and drops out
    differently but must hold out the same rows, or it trains on its parent's validation rows;
    ``--resume`` records the run's own seed as ``data.split_seed`` for the call."""
    data = recipe.get("data") or {}
    return int(data.get("split_seed", recipe["train"].get("seed", 1337)))


def seeded_subset(rows: list, n: int, seed: int) -> list:
    """``n`` rows drawn at random in their original order (0 = all). Corpora files are often
    sorted (MR: positives first, Bible: by book), so a head would be one-sided."""
    if n <= 0 or n >= len(rows):
        return rows
    keep = sorted(random.Random(seed).sample(range(len(rows)), n))
    return [rows[i] for i in keep]


def user_or_corpus_splits(data: dict, read, load, holdout: float, seed: int) -> tuple[list, list, list | None]:
    """(train, valid, test) rows: the user's ``train_file`` [``valid_file`` ``test_file``] read with
    ``read(path)`` (a seeded ``holdout`` fraction of train when no valid file), else the fetched
    corpus through ``load(split)``.

    ``data.train_on_valid``: train also learns from the validation rows, which then only show the
    curve (the final-model protocol of Chiu & Nichols 2016: choose every setting on a held-out
    validation split first, then train once more on train + valid with those settings and keep
    the last model -- the builder marks the task with ``valid_in_train``, the trainer does so).
    """
    if not data.get("train_file"):
        train, valid, test = load("train"), load("valid"), load("test")
    else:
        train = read(data["train_file"])
        if data.get("valid_file"):
            valid = read(data["valid_file"])
        else:
            train, valid = seeded_holdout(train, holdout, seed)
        from rnnkit.core.data.readers import warn_small_valid

        warn_small_valid(len(valid), "rows", held_out=not data.get("valid_file"), fraction=holdout)
        test = read(data["test_file"]) if data.get("test_file") else None
    if data.get("train_on_valid"):
        train = list(train) + list(valid)
    return train, valid, test


def pretrained_lm(path: str | Path):
    """``(language model, its tokenizer)`` from an LM run directory (its best ``model/`` and
    ``tokenizer.*``) or a model directory beside a tokenizer: the encoder a task starts from
    (ULMFiT, Howard & Ruder 2018: pretrain on general text, then fine-tune on the task)."""
    from rnnkit.core.models import registry
    from rnnkit.core.text.tokenizers import load_tokenizer

    path = Path(path)
    model_dir = path / "model" if (path / "model" / "config.json").is_file() else path
    if not (model_dir / "config.json").is_file():
        raise ValueError(f"data.pretrained={path}: not an LM run directory (no model/config.json); "
                         f"train one first, e.g. rnnkit train --recipe suggest-en --run-dir {path}")
    lm = registry.load(model_dir)
    if getattr(lm, "kind", None) != "lm":
        raise ValueError(f"data.pretrained={path}: a {getattr(lm, 'kind', '?')} model, not a language model")
    tok_dir = model_dir.parent if model_dir != path else path
    return lm, load_tokenizer(tok_dir)


def encoder_fields(lm) -> dict:
    """The model fields that must match the pretrained LM for its encoder to fit."""
    c = lm.config
    return {"cell": c.cell, "embed_size": c.embed_size, "hidden_size": c.hidden_size, "num_layers": c.num_layers}


def copy_encoder(lm, model) -> None:
    """Copy the LM's embedding and recurrent stack into ``model`` (same names, same shapes)."""
    model.embed.load_state_dict(lm.embed.state_dict())
    model.rnn.load_state_dict(lm.rnn.state_dict())
