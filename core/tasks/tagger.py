"""Sequence tagging (CoNLL NER): BiRNN tagger with character features, entity-level F1.

Entity F1 is ``rnnkit.core.metrics.entities`` (``chunks`` / ``chunk_f1``, conlleval rules, torch-free;
re-exported here): an entity counts only when its type and both boundaries match exactly.
``TaggerVocab`` maps words (lower-cased, digits -> 0), characters (case kept: capitals are
the strongest NER cue) and tags to ids; it is saved as ``tagger_vocab.json`` in the run
directory. Scores are in percent.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit.core.atomic import atomic_write_json
from rnnkit.core.metrics.entities import chunk_f1, chunks, split_tag as _split_tag, tagger_scores  # noqa: F401
from rnnkit.core.models.crf import crf_nll
from rnnkit.core.tasks.common import Batches, bucketed_batches, evaluating, model_device
from rnnkit.edge.viterbi import decode_batch
from rnnkit.edge.words import norm_word

Sentence = tuple[list[str], list[str]]  # (tokens, tags)


# --------------------------------------------------------------------------- vocabulary
class TaggerVocab:
    """Word, character and tag ids. Words/chars: 0 = pad, 1 = unk."""

    FILE = "tagger_vocab.json"

    def __init__(self, words: list[str], chars: list[str], tags: list[str], max_word_len: int = 20):
        self.words, self.chars, self.tags, self.max_word_len = words, chars, tags, max_word_len
        self.word_id = {w: i for i, w in enumerate(words)}
        self.char_id = {c: i for i, c in enumerate(chars)}
        self.tag_id = {t: i for i, t in enumerate(tags)}

    @classmethod
    def build(cls, sentences: Sequence[Sentence], max_word_len: int = 20,
              extra_words: Sequence[str] = ()) -> "TaggerVocab":
        """Training words by frequency, then ``extra_words`` (a word-vector file's) the training
        data lacks: a test sentence's unseen name then has a learnt vector instead of <unk>."""
        wc = Counter(norm_word(w) for toks, _ in sentences for w in toks)
        cc = Counter(c for toks, _ in sentences for w in toks for c in w)
        tags = sorted({t for _, ts in sentences for t in ts}, key=lambda t: (t != "O", _split_tag(t)[1], t))
        words = ["<pad>", "<unk>"] + sorted(wc, key=lambda w: (-wc[w], w))
        seen = set(words)
        for w in map(norm_word, extra_words):
            if w not in seen:
                seen.add(w)
                words.append(w)
        return cls(words, ["<pad>", "<unk>"] + sorted(cc), tags, max_word_len)

    def encode_words(self, tokens: Sequence[str]) -> list[int]:
        return [self.word_id.get(norm_word(w), 1) for w in tokens]

    def encode_chars(self, tokens: Sequence[str]) -> list[list[int]]:
        return [[self.char_id.get(c, 1) for c in w[: self.max_word_len]] or [1] for w in tokens]

    def encode_tags(self, tags: Sequence[str]) -> list[int]:
        unknown = sorted(set(tags) - set(self.tag_id))
        if unknown:
            raise ValueError(f"tags {unknown} do not occur in the training data; known: {self.tags}")
        return [self.tag_id[t] for t in tags]

    def save(self, directory: str | Path) -> Path:
        return atomic_write_json(Path(directory) / self.FILE, {
            "words": self.words, "chars": self.chars, "tags": self.tags, "max_word_len": self.max_word_len,
            "word_norm": "lowercase, digits -> 0"})

    @classmethod
    def load(cls, directory: str | Path) -> "TaggerVocab":
        d = json.loads((Path(directory) / cls.FILE).read_text(encoding="utf-8"))
        return cls(d["words"], d["chars"], d["tags"], d["max_word_len"])


def pad_tagger_batch(vocab: TaggerVocab, sents: Sequence[Sentence], word_ids: Sequence[list[int]],
                     tag_pad: int = -100) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """-> words (B, T), chars (B, T, W), lengths (B,), tags (B, T) with ``tag_pad`` on pads."""
    B = len(sents)
    T = max(len(t) for t, _ in sents)
    char_ids = [vocab.encode_chars(t) for t, _ in sents]
    W = max(len(c) for cs in char_ids for c in cs)
    words = torch.zeros(B, T, dtype=torch.long)
    chars = torch.zeros(B, T, W, dtype=torch.long)
    tags = torch.full((B, T), tag_pad, dtype=torch.long)
    for b, ((toks, ts), wids, cids) in enumerate(zip(sents, word_ids, char_ids)):
        words[b, :len(toks)] = torch.tensor(wids)
        tags[b, :len(toks)] = torch.tensor(vocab.encode_tags(ts)) if ts else tag_pad
        for t, c in enumerate(cids):
            chars[b, t, :len(c)] = torch.tensor(c)
    lengths = torch.tensor([len(t) for t, _ in sents], dtype=torch.long)
    return words, chars, lengths, tags


def init_word_vectors(embed: torch.nn.Embedding, vocab: TaggerVocab, words: Sequence[str], vectors) -> list[int]:
    """Start the tagger's word embeddings from pretrained ``vectors``; -> the rows set.

    The vectors are rescaled to unit standard deviation, the scale of the rows still drawn at
    random (``nn.Embedding``'s N(0, 1)), so neither kind dwarfs the other after dropout."""
    if vectors.shape[1] != embed.embedding_dim:
        raise ValueError(f"word vectors have {vectors.shape[1]} dimensions, the model's embed_size is "
                         f"{embed.embedding_dim}: set model.embed_size={vectors.shape[1]}")
    scaled = torch.as_tensor(vectors / max(float(vectors.std()), 1e-8), dtype=embed.weight.dtype)
    rows, src, done = [], [], set()
    for i, w in enumerate(words):
        j = vocab.word_id.get(norm_word(w))
        if j is not None and j > 1 and j not in done:  # never <pad> or <unk>; first spelling wins
            done.add(j)
            rows.append(j)
            src.append(i)
    with torch.no_grad():
        embed.weight[torch.tensor(rows, dtype=torch.long)] = scaled[torch.tensor(src, dtype=torch.long)]
    return rows


def freeze_rows(embed: torch.nn.Embedding, rows: Sequence[int]) -> None:
    """Keep ``rows`` of ``embed`` as they are: their gradient is zeroed before any optimizer sees it.

    Why: fine-tuning moves only the rows of words in the training sentences, while the vector
    words that only the test meets keep their pretrained place -- the tagger would learn on one
    space and be read in another. Frozen, both stay in one space. Measured on CoNLL-2003, fine-tuning
    still wins (by about 3 F1 points), so ``data.freeze_vectors`` is off by default; it is for
    training files too small to move many rows. Adam with a zero gradient from the start never
    moves a row (its moments stay 0), and embeddings get no weight decay."""
    keep = torch.ones(embed.num_embeddings, 1, dtype=embed.weight.dtype)
    keep[torch.as_tensor(list(rows), dtype=torch.long)] = 0.0
    embed.weight.register_hook(lambda grad: grad * keep.to(grad.device, grad.dtype))


# --------------------------------------------------------------------------- task
class TaggerTask:
    """Token tagging with a ``Tagger`` model; batch = (words, chars, lengths, tags).

    Training replaces each singleton word by <unk> with probability ``unk_replace`` (seeded
    by epoch), so the <unk> embedding is learnt from words the model rarely sees -- the
    ones it will meet at test time.
    """

    name = "tagger"
    metric = "val_f1"
    metric_mode = "max"

    def __init__(self, vocab: TaggerVocab, train: Sequence[Sentence], valid: Sequence[Sentence],
                 test: Sequence[Sentence] | None = None, batch_size: int = 32, unk_replace: float = 0.5,
                 seed: int = 0):
        self.vocab, self.batch_size, self.unk_replace, self.seed = vocab, batch_size, unk_replace, seed
        self.vectors: dict | None = None  # where the word embeddings started from (build() fills it)
        self.rank, self.world_size = 0, 1
        self.splits = {"train": [s for s in train if s[0]], "val": [s for s in valid if s[0]]}
        if test is not None:
            self.splits["test"] = [s for s in test if s[0]]
        counts = Counter(norm_word(w) for toks, _ in self.splits["train"] for w in toks)
        self.singleton = {vocab.word_id.get(w, 1) for w, c in counts.items() if c == 1}
        self.word_ids = {k: [vocab.encode_words(t) for t, _ in v] for k, v in self.splits.items()}

    def train_batches(self, epoch: int) -> Batches:
        train = self.splits["train"]
        plan = bucketed_batches([len(t) for t, _ in train], self.batch_size, self.seed, epoch,
                                rank=self.rank, world_size=self.world_size)

        def make(k: int, rows: list[int]):
            rng = random.Random((self.seed * 7919 + epoch) * 100_003 + k)  # per batch: skipping on resume is exact
            wids = [[1 if w in self.singleton and rng.random() < self.unk_replace else w
                     for w in self.word_ids["train"][i]] for i in rows]
            return pad_tagger_batch(self.vocab, [train[i] for i in rows], wids)

        return Batches(plan, make)

    def loss(self, model, batch, carry):
        words, chars, lengths, tags = (t.to(model_device(model)) for t in batch)
        logits, _ = model(words, lengths, chars)
        n = int((tags != -100).sum())
        inner = getattr(model, "module", model)  # under DDP the wrapper holds the model
        if getattr(inner.config, "crf", False):
            nll = crf_nll(logits, tags, tags != -100, inner.crf_transitions, inner.crf_start, inner.crf_end)
            return nll / max(n, 1), n, None  # per token, as cross-entropy: the same learning rates work
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tags.reshape(-1), ignore_index=-100), n, None

    def predict(self, model, token_lists: Sequence[list[str]], batch_size: int = 128) -> list[list[str]]:
        """Tags for each token list (empty lists give empty tag lists)."""
        out: list[list[str]] = [[] for _ in token_lists]
        todo = [i for i, t in enumerate(token_lists) if t]
        tables = model.crf_tables() if hasattr(model, "crf_tables") else None  # None: argmax per token
        with evaluating(model):
            for k in range(0, len(todo), batch_size):
                rows = todo[k:k + batch_size]
                sents = [(list(token_lists[i]), []) for i in rows]
                words, chars, lengths, _ = pad_tagger_batch(
                    self.vocab, sents, [self.vocab.encode_words(t) for t, _ in sents])
                dev = model_device(model)
                logits, _ = model(words.to(dev), lengths.to(dev), chars.to(dev))
                best = decode_batch(logits.float().cpu().numpy(), [len(token_lists[i]) for i in rows], tables)
                for j, i in enumerate(rows):
                    out[i] = [self.vocab.tags[t] for t in best[j]]
        return out

    def split_metrics(self, model, split: str) -> dict[str, float]:
        sents = self.splits[split]
        pred = self.predict(model, [t for t, _ in sents])
        return {f"{split}_{k}": v for k, v in tagger_scores([g for _, g in sents], pred).items()}

    def evaluate(self, model) -> dict[str, float]:
        """Validation entity F1 (the metric) only: the test split is scored once, by ``finalize``."""
        return self.split_metrics(model, "val")

    def finalize(self, model, run_dir=None, samples: int = 5) -> dict:
        """Best model's val / test entity scores (per type too) and a few tagged test sentences."""
        from rnnkit.core.tasks.common import write_final

        rec = self.evaluate(model)
        if "test" in self.splits:
            rec.update(self.split_metrics(model, "test"))
        sents = self.splits.get("test") or self.splits["val"]
        picks = sents[:: max(1, len(sents) // samples)][:samples]
        pred = self.predict(model, [t for t, _ in picks])
        rec["samples"] = [" ".join(f"{w}/{p}" if p != "O" else w for w, p in zip(t, ps))
                          for (t, _), ps in zip(picks, pred)]
        rec["params"] = sum(p.numel() for p in model.parameters())
        return write_final(run_dir, rec)

    def describe(self) -> dict:
        return {"task": self.name, "metric": self.metric, "units": "entity-level F1 in % (conlleval rules)",
                "sizes": {k: len(v) for k, v in self.splits.items()}, "tags": self.vocab.tags,
                "words": len(self.vocab.words), "chars": len(self.vocab.chars),
                "unk_replace": self.unk_replace, "batch_size": self.batch_size, "word_vectors": self.vectors}


# --------------------------------------------------------------------------- recipe builder
def build(recipe, run_dir):
    """``(model, task, vocab)`` for ner-conll: CoNLL-2003 (or the user's CoNLL-column files).

    The "tokenizer" of a tagger is its ``TaggerVocab`` (words, characters, tags), built on the
    train split and saved as ``run_dir/tagger_vocab.json`` (reused on --resume).
    """
    from rnnkit.core.data.readers import read_conll
    from rnnkit.core.models.kinds import Tagger, TaggerConfig
    from rnnkit.core.tasks.common import model_fields, seeded_model, seeded_subset, split_seed, user_or_corpus_splits

    data, run_dir = recipe["data"], Path(run_dir)
    seed, rows_seed = int(recipe["train"].get("seed", 1337)), split_seed(recipe)
    from rnnkit.core.data.loaders import load_conll

    train, valid, test = user_or_corpus_splits(data, read_conll, load_conll, 0.1, rows_seed)
    train = seeded_subset(train, int(data.get("max_train_sentences", 0) or 0), rows_seed)
    ev = int(data.get("max_eval_sentences", 0) or 0)
    valid, test = seeded_subset(valid, ev, rows_seed), (seeded_subset(test, ev, rows_seed) if test else test)
    vec_words, vectors = [], None
    recorded = _recorded_vectors(run_dir) if data.get("word_vectors") else None
    if data.get("word_vectors") and recorded is None:
        from rnnkit.core.train import word_vectors

        vec_words, vectors = word_vectors.read(word_vectors.resolve(data["word_vectors"]),
                                               int(data.get("max_vector_words", 0) or 0))
    if (run_dir / TaggerVocab.FILE).is_file():
        vocab = TaggerVocab.load(run_dir)
    else:
        vocab = TaggerVocab.build(train, int(recipe["tokenizer"].get("max_word_len", 20)), vec_words)
        vocab.save(run_dir)
    use_chars = bool(data.get("char_features", True))
    cfg = TaggerConfig(**{**model_fields(recipe), "vocab_size": len(vocab.words), "num_tags": len(vocab.tags),
                          "char_vocab_size": len(vocab.chars) if use_chars else 0, "pad_id": 0, "unk_id": 1})
    task = TaggerTask(vocab, train, valid, test, batch_size=int(data.get("batch_size", 32)),
                      unk_replace=float(data.get("unk_replace", 0.5)), seed=seed)
    task.valid_in_train = bool(data.get("train_on_valid"))
    model = seeded_model(recipe, Tagger, cfg)
    if recorded is not None:
        rows = recorded.pop("rows")
    elif vectors is not None:
        rows = init_word_vectors(model.embed, vocab, vec_words, vectors)
        recorded = {"source": data["word_vectors"], "words": len(vec_words), "rows_initialised": len(rows),
                    "frozen": bool(data.get("freeze_vectors", False))}
        atomic_write_json(run_dir / VECTORS_FILE, {**recorded, "rows": rows if recorded["frozen"] else []})
    if recorded is not None:
        if recorded["frozen"]:
            freeze_rows(model.embed, rows)
        task.vectors = recorded
    return model, task, vocab


VECTORS_FILE = "word_vectors.json"  # what the embeddings started from, and the frozen rows


def _recorded_vectors(run_dir: Path) -> dict | None:
    """The run's record of its word vectors, when its weights are already learnt (a checkpoint to
    resume, which replaces the embeddings): then the vectors need not be read -- or learnt again
    when the cache was cleared, or on another machine that exports the run. None: read them."""
    from rnnkit.core.train.checkpoint import find_latest

    path = run_dir / VECTORS_FILE
    if not (path.is_file() and (run_dir / TaggerVocab.FILE).is_file() and find_latest(run_dir / "checkpoints")):
        return None
    return json.loads(path.read_text(encoding="utf-8"))
