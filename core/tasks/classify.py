"""Many-to-one tasks: sentiment (polarity + score) on MR sentences, and the seed's colors toy.

Each task follows the trainer's Task protocol (docs/CONTRACTS.md): deterministic
``train_batches(epoch)``, ``loss(model, batch, carry) -> (loss, n_items, carry)``,
``evaluate(model) -> dict`` holding ``metric``, and ``describe()``.

Accuracies and F1 scores are reported in percent; colors MSE in RGB units (0..255)^2.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit.core.metrics.numeric import sentiment_figures
from rnnkit.core.tasks.common import (Batches, copy_encoder, encoder_fields, pretrained_lm, bucketed_batches, evaluating, model_device, model_fields, pad_ids,
                                      seeded_model, seeded_subset, split_seed, unwrap, user_or_corpus_splits,
                                      write_final)
from rnnkit.edge.predict import MAX_REVIEW_TOKENS  # the bundle's review cap: scores here read what it reads

# The seed's three phrases and their RGB colours.
COLORS: list[tuple[str, tuple[int, int, int]]] = [
    ("The Forest", (0, 128, 0)),
    ("The Sea", (0, 0, 255)),
    ("The Fire", (255, 165, 0)),
]


# --------------------------------------------------------------------------- sentiment
@dataclass
class SentimentSplit:
    """Sentences with a score in [-1, 1]; polarity is the score's sign (0: no polarity)."""

    texts: list[str]
    scores: list[float]

    def __post_init__(self):
        if len(self.texts) != len(self.scores):
            raise ValueError(f"{len(self.texts)} texts but {len(self.scores)} scores")
        bad = [s for s in self.scores if not -1.0 <= s <= 1.0]
        if bad:
            raise ValueError(f"sentiment scores must lie in [-1, 1]; got e.g. {bad[0]}")


class SentimentTask:
    """Polarity (cross-entropy, 2 classes) and score (tanh output, MSE) from one BiRNN.

    batch: (tokens (B, T), lengths (B,), scores (B,)). Rows scored exactly 0 train the
    score head only and are left out of the accuracy (they have no polarity).
    """

    name = "sentiment"
    metric = "val_acc"
    metric_mode = "max"

    def __init__(self, tokenizer, train: SentimentSplit, valid: SentimentSplit,
                 test: Optional[SentimentSplit] = None, batch_size: int = 32, max_len: int = 80,
                 score_weight: float = 1.0, seed: int = 0):
        self.tok, self.batch_size, self.max_len = tokenizer, batch_size, max_len
        self.score_weight, self.seed = score_weight, seed
        self.rank, self.world_size = 0, 1  # set by the trainer under DDP
        self.splits = {"train": train, "val": valid}
        if test is not None:
            self.splits["test"] = test
        self.ids = {k: [self._encode(t, self.max_len if k == "train" else MAX_REVIEW_TOKENS) for t in s.texts]
                    for k, s in self.splits.items()}

    def _encode(self, text: str, cap: int = MAX_REVIEW_TOKENS) -> list[int]:
        # Training crops reviews at max_len (batches stay short); every score -- validation,
        # test, predict -- reads as much of a review as the bundle does, so the trainer's test
        # figure is the shipped model's.
        return self.tok.encode(text)[:cap]

    def _batch(self, split: str, rows: list[int]) -> tuple[Tensor, Tensor, Tensor]:
        tokens, lengths = pad_ids([self.ids[split][i] for i in rows], self.tok.pad_id)
        scores = torch.tensor([self.splits[split].scores[i] for i in rows], dtype=torch.float32)
        return tokens, lengths, scores

    def train_batches(self, epoch: int) -> Batches:
        lengths = [len(s) for s in self.ids["train"]]
        plan = bucketed_batches(lengths, self.batch_size, self.seed, epoch, rank=self.rank, world_size=self.world_size)
        return Batches(plan, lambda k, rows: self._batch("train", rows))

    def _losses(self, out: dict[str, Tensor], scores: Tensor) -> tuple[Tensor, Tensor]:
        score_loss = F.mse_loss(out["score"][:, 0], scores)
        polar = scores != 0
        if polar.any():
            cls_loss = F.cross_entropy(out["logits"][polar], (scores[polar] > 0).long())
        else:
            cls_loss = out["logits"].sum() * 0.0
        return cls_loss, score_loss

    def loss(self, model, batch, carry):
        tokens, lengths, scores = (t.to(model_device(model)) for t in batch)
        out, _ = model(tokens, lengths)
        cls_loss, score_loss = self._losses(out, scores)
        return cls_loss + self.score_weight * score_loss, tokens.shape[0], None

    def predict(self, model, texts: Sequence[str]) -> tuple[list[int], list[float]]:
        """Polarity (+1 / -1) and score in [-1, 1] for raw texts."""
        ids = [self._encode(t) for t in texts]
        labels: list[int] = []
        scores: list[float] = []
        with evaluating(model):
            for i in range(0, len(ids), 256):
                tokens, lengths = pad_ids(ids[i:i + 256], self.tok.pad_id)
                out, _ = model(tokens.to(model_device(model)), lengths.to(model_device(model)))
                labels += [1 if p == 1 else -1 for p in out["logits"].argmax(-1).tolist()]
                scores += out["score"][:, 0].tolist()
        return labels, scores

    def split_metrics(self, model, split: str) -> dict[str, float]:
        s = self.splits[split]
        labels, pred = self.predict(model, s.texts)
        return {f"{split}_{k}": v for k, v in sentiment_figures(labels, pred, s.scores).items()}

    def evaluate(self, model) -> dict[str, float]:
        """Validation metrics only: the test split is scored once, by ``finalize``, so no figure
        seen during training (or while tuning) comes from it."""
        return self.split_metrics(model, "val")

    def finalize(self, model, run_dir=None, samples: int = 10) -> dict:
        """Best model's val / test scores and ten test sentences with gold and predicted score."""
        rec = self.evaluate(model)
        if "test" in self.splits:
            rec.update(self.split_metrics(model, "test"))
        split = "test" if "test" in self.splits else "val"
        s = self.splits[split]
        step = max(1, len(s.texts) // samples)
        picks = list(range(0, len(s.texts), step))[:samples]
        labels, scores = self.predict(model, [s.texts[i] for i in picks])
        rec["samples"] = [{"text": s.texts[i], "gold_score": s.scores[i], "score": round(sc, 3),
                           "polarity": "pos" if lab > 0 else "neg"} for i, lab, sc in zip(picks, labels, scores)]
        rec["params"] = sum(p.numel() for p in model.parameters())
        return write_final(run_dir, rec)

    def describe(self) -> dict:
        return {"task": self.name, "metric": self.metric, "units": "accuracy in %, score in [-1, 1]",
                "sizes": {k: len(v.texts) for k, v in self.splits.items()},
                "batch_size": self.batch_size, "max_len": self.max_len, "score_weight": self.score_weight}


# --------------------------------------------------------------------------- colors toy
def parse_color_rows(rows: Sequence[tuple[str, Sequence[float]]]) -> list[tuple[str, tuple[float, float, float]]]:
    """Check (phrase, (r, g, b)) rows: non-empty phrase, three values in 0..255."""
    out = []
    for i, (text, rgb) in enumerate(rows, 1):
        if not text.strip():
            raise ValueError(f"colors row {i}: empty phrase")
        if len(rgb) != 3 or not all(0 <= float(v) <= 255 for v in rgb):
            raise ValueError(f"colors row {i} ({text!r}): need three values in 0..255, got {list(rgb)}")
        out.append((text, tuple(float(v) for v in rgb)))
    return out


class ColorsTask:
    """Phrase -> RGB regression (many-to-one): tokens (B, T) -> score (B, 3), MSE on RGB / 255.

    The toy trains and validates on the same handful of phrases (there is nothing to hold
    out); ``val_mse`` is in RGB units so "MSE < 1" means off by about one colour step.
    """

    name = "colors"
    metric = "val_mse"
    metric_mode = "min"

    def __init__(self, tokenizer, rows=COLORS, steps_per_epoch: int = 50, seed: int = 0):
        self.tok, self.rows, self.steps_per_epoch, self.seed = tokenizer, parse_color_rows(rows), steps_per_epoch, seed
        self.rank, self.world_size = 0, 1
        self.tokens, self.lengths = pad_ids([tokenizer.encode(t) for t, _ in self.rows], tokenizer.pad_id)
        self.targets = torch.tensor([rgb for _, rgb in self.rows], dtype=torch.float32) / 255.0  # (N, 3)

    def train_batches(self, epoch: int) -> Batches:
        # All phrases in every step: the batch is the whole data set.
        return Batches(range(self.steps_per_epoch), lambda k, _: (self.tokens, self.lengths, self.targets))

    def loss(self, model, batch, carry):
        tokens, lengths, targets = (t.to(model_device(model)) for t in batch)
        out, _ = model(tokens, lengths)
        return F.mse_loss(out["score"], targets), tokens.shape[0], None

    def predict_rgb(self, model, texts: Sequence[str]) -> Tensor:
        """(N, 3) predicted RGB in 0..255 units (not clamped, so the MSE is honest)."""
        tokens, lengths = pad_ids([self.tok.encode(t) for t in texts], self.tok.pad_id)
        with evaluating(model):
            out, _ = model(tokens.to(model_device(model)), lengths.to(model_device(model)))
        return out["score"].float().cpu() * 255.0

    def evaluate(self, model) -> dict[str, float]:
        pred = self.predict_rgb(model, [t for t, _ in self.rows])
        return {"val_mse": float(((pred - self.targets * 255.0) ** 2).mean())}

    def finalize(self, model, run_dir=None) -> dict:
        pred = self.predict_rgb(model, [t for t, _ in self.rows])
        rec = {**self.evaluate(model), "predictions": {t: [round(v, 2) for v in p.tolist()]
                                                       for (t, _), p in zip(self.rows, pred)}}
        return write_final(run_dir, rec)

    def describe(self) -> dict:
        return {"task": self.name, "metric": self.metric, "units": "MSE in RGB units^2",
                "phrases": {t: list(rgb) for t, rgb in self.rows}}


class ColorsInverseTask:
    """RGB -> phrase (one-to-many) with ``ConditionedGenerator``: cond (B, 3) sets the state.

    The tokenizer may lack BOS/EOS, so the generator's vocabulary is the tokenizer's plus
    two ids: ``bos = V`` and ``eos = V + 1``. ``val_exact`` is the % of phrases greedy
    decoding reproduces exactly.
    """

    name = "colors-inverse"
    metric = "val_exact"
    metric_mode = "max"

    def __init__(self, tokenizer, rows=COLORS, steps_per_epoch: int = 50, max_len: int = 40):
        self.tok, self.rows = tokenizer, parse_color_rows(rows)
        self.steps_per_epoch, self.max_len = steps_per_epoch, max_len
        self.rank, self.world_size = 0, 1
        self.bos, self.eos = tokenizer.vocab_size, tokenizer.vocab_size + 1
        seqs = [tokenizer.encode(t) for t, _ in self.rows]
        self.inp, _ = pad_ids([[self.bos] + s for s in seqs], tokenizer.pad_id)
        self.out, _ = pad_ids([s + [self.eos] for s in seqs], -100)  # -100: ignored by the loss
        self.cond = torch.tensor([rgb for _, rgb in self.rows], dtype=torch.float32) / 255.0

    @property
    def vocab_size(self) -> int:
        return self.tok.vocab_size + 2

    def train_batches(self, epoch: int) -> Batches:
        return Batches(range(self.steps_per_epoch), lambda k, _: (self.cond, self.inp, self.out))

    def loss(self, model, batch, carry):
        cond, inp, out = (t.to(model_device(model)) for t in batch)
        logits, _ = model(inp, unwrap(model).state_from(cond))
        n = int((out != -100).sum())
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), out.reshape(-1), ignore_index=-100), n, None

    def generate(self, model, rgb: Sequence[float]) -> str:
        """Greedy phrase for one colour (0..255 units)."""
        from rnnkit.core.models.sampling import numpy_step
        from rnnkit.edge.npsample import generate

        cond = torch.tensor([list(rgb)], dtype=torch.float32, device=model_device(model)) / 255.0
        with evaluating(model):
            state = model.state_from(cond)
        ids = list(generate(numpy_step(model), [self.bos], self.max_len, greedy=True, stop_ids=[self.eos],
                            state=state))
        return self.tok.decode([i for i in ids if i < self.tok.vocab_size])

    def evaluate(self, model) -> dict[str, float]:
        hits = sum(self.generate(model, rgb) == text for text, rgb in self.rows)
        return {"val_exact": 100.0 * hits / len(self.rows)}

    def describe(self) -> dict:
        return {"task": self.name, "metric": self.metric, "bos_id": self.bos, "eos_id": self.eos,
                "phrases": {t: list(rgb) for t, rgb in self.rows}}


# --------------------------------------------------------------------------- recipe builders
def clean_mr_text(text: str) -> str:
    """VADER's MR sentences keep HTML entities and '' for double quotes."""
    import html

    return html.unescape(text).replace("''", '"')


def build_sentiment(recipe, run_dir):
    """``(model, task, tokenizer)`` for sentiment-mr: MR sentences (or the user's TSV score/label, text)."""
    from rnnkit.core.data.readers import read_tsv
    from rnnkit.core.tasks.lm_data import train_tokenizer
    from rnnkit.core.models.kinds import ClassifierConfig, SequenceClassifier
    from rnnkit.core.recipes import load_or_train_tokenizer

    data = recipe["data"]
    seed, rows_seed = int(recipe["train"].get("seed", 1337)), split_seed(recipe)
    from rnnkit.core.data.loaders import load_sentiment

    train, valid, test = user_or_corpus_splits(
        data, lambda path: read_tsv(path, columns=("score", "text")), load_sentiment, 0.1, rows_seed)
    train = seeded_subset(train, int(data.get("max_train_rows", 0) or 0), rows_seed)

    def split(rows):
        return SentimentSplit([clean_mr_text(t) for _, t in rows], [float(s) for s, _ in rows])

    train_s = split(train)
    fields = model_fields(recipe)
    lm = None
    if data.get("pretrained"):  # transfer: the LM's tokenizer, embedding and recurrent stack
        lm, lm_tok = pretrained_lm(data["pretrained"])
        tok = load_or_train_tokenizer(run_dir, lambda: lm_tok)
        fields.update(encoder_fields(lm), bidirectional=False)  # the LM reads left to right only
    else:
        tok = load_or_train_tokenizer(run_dir, lambda: train_tokenizer(recipe["tokenizer"], train_s.texts))
    cfg = ClassifierConfig(**{**fields, "vocab_size": tok.vocab_size, "pad_id": max(tok.pad_id, 0),
                              "unk_id": tok.unk_id, "num_classes": 2, "num_targets": 1, "bounded": True})
    task = SentimentTask(tok, train_s, split(valid), split(test) if test else None,
                         batch_size=int(data.get("batch_size", 32)), max_len=int(data.get("max_len", 80)),
                         score_weight=float(data.get("score_weight", 1.0)), seed=seed)
    task.valid_in_train = bool(data.get("train_on_valid"))
    model = seeded_model(recipe, SequenceClassifier, cfg)
    if lm is not None:
        copy_encoder(lm, model)
    return model, task, tok


def read_color_file(path) -> list[tuple[str, tuple[float, float, float]]]:
    """The user's colors: ``phrase<TAB>r<TAB>g<TAB>b`` a line (values 0..255)."""
    from rnnkit.core.data.readers import ReaderError, iter_lines

    rows = []
    for no, text in iter_lines(path):
        if not text.strip():
            continue
        fields = text.split("\t")
        try:
            if len(fields) != 4:
                raise ValueError(f"expected 4 tab-separated columns (phrase, r, g, b), got {len(fields)}")
            rows += parse_color_rows([(fields[0], [float(v) for v in fields[1:]])])
        except ValueError as e:
            raise ReaderError(path, no, str(e).replace("colors row 1: ", "").replace("colors row 1 ", "")) from None
    if not rows:
        raise ReaderError(path, None, "no colour rows (phrase<TAB>r<TAB>g<TAB>b)")
    return rows


def build_colors(recipe, run_dir):
    """``(model, task, tokenizer)`` for the seed's colors toy (or the user's phrase/RGB file)."""
    from rnnkit.core.tasks.lm_data import train_tokenizer
    from rnnkit.core.models.kinds import ClassifierConfig, SequenceClassifier
    from rnnkit.core.recipes import load_or_train_tokenizer

    data = recipe["data"]
    rows = read_color_file(data["train_file"]) if data.get("train_file") else COLORS
    tok = load_or_train_tokenizer(run_dir, lambda: train_tokenizer(recipe["tokenizer"], [t for t, _ in rows]))
    cfg = ClassifierConfig(**{**model_fields(recipe), "vocab_size": tok.vocab_size, "pad_id": max(tok.pad_id, 0),
                              "unk_id": tok.unk_id, "num_classes": 0, "num_targets": 3, "bounded": False})
    task = ColorsTask(tok, rows, steps_per_epoch=int(data.get("steps_per_epoch", 50)))
    return seeded_model(recipe, SequenceClassifier, cfg), task, tok
