"""Translation (encoder-decoder with attention): teacher-forced training, BLEU / chrF on test.

Pairs are (source text, target text). The tokenizer is one joint SentencePiece model for
both sides, or one per side; either way ``encode`` gives ids without BOS/EOS, which this
task adds: decoder input ``[bos] + y``, decoder target ``y + [eos]``.

Length filter: training pairs longer than ``max_len`` subword tokens on either side are
dropped (the count is in ``describe()``); validation and test keep every pair unless
``eval_max_len`` > 0 says otherwise, so BLEU is on the whole test split by default. Scores
are sacreBLEU's corpus BLEU and chrF on detokenised text (the tokenizer's ``decode``), computed by
``rnnkit.core.metrics.bleu`` (tested equal to sacrebleu; sacrebleu itself is not needed).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional, Sequence

import torch.nn.functional as F
from torch import Tensor

from rnnkit.core.atomic import atomic_write_text
from rnnkit.core.metrics.bleu import corpus_scores  # noqa: F401  (sacreBLEU's BLEU / chrF, torch-free)
from rnnkit.core.tasks.common import Batches, bucketed_batches, evaluating, model_device, pad_ids

Pair = tuple[str, str]


class TranslationTask:
    """batch = (src (B, S), src_len (B,), tgt_in (B, T), tgt_out (B, T) with -100 on pads)."""

    name = "translation"
    metric = "val_loss"
    metric_mode = "min"

    def __init__(self, src_tok, tgt_tok, train: Sequence[Pair], valid: Sequence[Pair],
                 test: Optional[Sequence[Pair]] = None, max_len: int = 48, batch_size: int = 32,
                 bos_id: int = 2, eos_id: int = 3, seed: int = 0, val_bleu_sentences: int = 200,
                 beam: int = 4, length_penalty: float = 0.6, decode_max_len: int = 200,
                 eval_max_len: int = 0, extra_tests: Optional[dict[str, Sequence[Pair]]] = None):
        self.src_tok, self.tgt_tok = src_tok, tgt_tok
        self.max_len, self.batch_size, self.seed = max_len, batch_size, seed
        self.bos, self.eos = bos_id, eos_id
        self.val_bleu_sentences, self.beam, self.length_penalty = val_bleu_sentences, beam, length_penalty
        self.decode_max_len, self.eval_max_len = decode_max_len, eval_max_len
        self.rank, self.world_size = 0, 1
        self.raw: dict[str, list[Pair]] = {}
        self.ids: dict[str, list[tuple[list[int], list[int]]]] = {}
        self.dropped: dict[str, int] = {}
        for split, pairs in (("train", train), ("val", valid), ("test", test)):
            if pairs is not None:
                self._add(split, pairs)
        # Each extra source's own test split, scored apart at finalize ("test_<name>_bleu").
        self.extra_tests = list((extra_tests or {}).keys())
        for name, pairs in (extra_tests or {}).items():
            self._add(f"test_{name}", pairs)
        if not self.ids["train"]:
            raise ValueError(f"no training pair is within max_len={max_len} tokens on both sides")

    def _add(self, split: str, pairs: Sequence[Pair]) -> None:
        limit = self.max_len if split == "train" else (self.eval_max_len or 10**9)
        kept_raw, kept_ids = [], []
        for src, tgt in pairs:
            s, t = self.src_tok.encode(src), self.tgt_tok.encode(tgt)
            if 0 < len(s) <= limit and 0 < len(t) <= limit:
                kept_raw.append((src, tgt))
                kept_ids.append((s, t))
        self.raw[split], self.ids[split] = kept_raw, kept_ids
        self.dropped[split] = len(pairs) - len(kept_raw)

    def _batch(self, split: str, rows: Sequence[int]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        pairs = [self.ids[split][i] for i in rows]
        src, src_len = pad_ids([s for s, _ in pairs], self.src_tok.pad_id)
        tgt_in, _ = pad_ids([[self.bos] + t for _, t in pairs], self.tgt_tok.pad_id)
        tgt_out, _ = pad_ids([t + [self.eos] for _, t in pairs], -100)
        return src, src_len, tgt_in, tgt_out

    def train_batches(self, epoch: int) -> Batches:
        # Bucket by the longer side: both the encoder and the decoder pay for padding.
        lengths = [max(len(s), len(t)) for s, t in self.ids["train"]]
        plan = bucketed_batches(lengths, self.batch_size, self.seed, epoch, rank=self.rank, world_size=self.world_size)
        return Batches(plan, lambda k, rows: self._batch("train", rows))

    def loss(self, model, batch, carry):
        src, src_len, tgt_in, tgt_out = (t.to(model_device(model)) for t in batch)
        logits, _ = model(src, src_len, tgt_in)
        n = int((tgt_out != -100).sum())
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt_out.reshape(-1), ignore_index=-100), n, None

    def split_loss(self, model, split: str) -> float:
        """Teacher-forced cross-entropy per target token (nats) on a split."""
        total, count = 0.0, 0
        with evaluating(model):
            for rows in bucketed_batches([len(s) for s, _ in self.ids[split]], 64, 0, 0, shuffle=False):
                src, src_len, tgt_in, tgt_out = (t.to(model_device(model)) for t in self._batch(split, rows))
                logits, _ = model(src, src_len, tgt_in)
                total += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), tgt_out.reshape(-1),
                                               ignore_index=-100, reduction="sum"))
                count += int((tgt_out != -100).sum())
        return total / max(1, count)

    def translate(self, model, texts: Sequence[str], beam: int = 1, batch_size: int = 64) -> list[str]:
        """Translate raw source texts (greedy when beam == 1); at most 2 * source + 10 tokens out
        (capped by ``decode_max_len``)."""
        dev = model_device(model)
        ids = [self.src_tok.encode(t) or [self.src_tok.unk_id] for t in texts]
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))  # similar lengths together
        result: dict[int, str] = {}
        for k in range(0, len(order), batch_size):
            rows = order[k:k + batch_size]
            src, src_len = pad_ids([ids[i] for i in rows], self.src_tok.pad_id)
            src, src_len = src.to(dev), src_len.to(dev)
            limit = min(self.decode_max_len, 2 * src.shape[1] + 10)
            if beam > 1:
                dec = model.beam_search(src, src_len, beam=beam, max_len=limit, length_penalty=self.length_penalty)
            else:
                dec = model.greedy(src, src_len, max_len=limit)
            for j, i in enumerate(rows):
                toks = dec.tokens[j].tolist()
                toks = toks[: toks.index(self.eos)] if self.eos in toks else toks
                result[i] = self.tgt_tok.decode([t for t in toks if t != self.tgt_tok.pad_id])
        return [result[i] for i in range(len(texts))]

    def evaluate(self, model) -> dict[str, float]:
        """Validation loss / perplexity (the metric) and greedy BLEU/chrF on the first val sentences."""
        loss = self.split_loss(model, "val")
        out = {"val_loss": loss, "val_ppl": math.exp(min(loss, 50.0))}
        n = min(self.val_bleu_sentences, len(self.raw["val"]))
        if n:
            subset = self.raw["val"][:n]
            scores = corpus_scores(self.translate(model, [s for s, _ in subset]), [t for _, t in subset])
            out.update({f"val_greedy_{k}": v for k, v in scores.items()})
        return out

    def finalize(self, model, run_dir: str | Path | None = None, samples: int = 10) -> dict:
        """Test-split BLEU / chrF with beam search (slow: called once, on the best model).

        Writes ``test_translations.tsv`` (src, ref, hyp), ``samples.txt`` (ten evenly spaced
        test sentences) and ``results.json`` into ``run_dir`` when given.
        """
        split = "test" if self.raw.get("test") else "val"
        pairs = self.raw[split]
        hyps = self.translate(model, [s for s, _ in pairs], beam=self.beam)
        refs = [t for _, t in pairs]
        scores = corpus_scores(hyps, refs)
        out = {f"{split}_bleu": scores["bleu"], f"{split}_chrf": scores["chrf"],
               f"{split}_sentences": float(len(pairs)), f"{split}_dropped_by_length": float(self.dropped[split]),
               f"{split}_loss": self.split_loss(model, split)}
        step = max(1, len(pairs) // samples)
        picks = [{"src": pairs[i][0], "ref": pairs[i][1], "hyp": hyps[i]} for i in range(0, len(pairs), step)][:samples]
        if run_dir is not None:
            run_dir = Path(run_dir)
            clean = lambda s: s.replace("\t", " ").replace("\n", " ")
            atomic_write_text(run_dir / f"{split}_translations.tsv",
                              "".join(f"{clean(s)}\t{clean(r)}\t{clean(h)}\n" for (s, r), h in zip(pairs, hyps)))
            atomic_write_text(run_dir / "samples.txt", "\n".join(
                f"SRC: {p['src']}\nREF: {p['ref']}\nHYP: {p['hyp']}\n" for p in picks))
        from rnnkit.core.tasks.common import write_final

        for name in self.extra_tests:
            extra = self.raw[f"test_{name}"]
            ex_hyps = self.translate(model, [s for s, _ in extra], beam=self.beam)
            sc = corpus_scores(ex_hyps, [t for _, t in extra])
            out.update({f"test_{name}_bleu": sc["bleu"], f"test_{name}_chrf": sc["chrf"],
                        f"test_{name}_sentences": float(len(extra))})
            out.setdefault("samples_by_source", {})[name] = [
                {"src": extra[i][0], "ref": extra[i][1], "hyp": ex_hyps[i]}
                for i in range(0, len(extra), max(1, len(extra) // samples))][:samples]
        out.update(self.evaluate(model))
        out["samples"] = picks
        out["beam"], out["length_penalty"] = self.beam, self.length_penalty
        out["params"] = sum(p.numel() for p in model.parameters())
        return write_final(run_dir, out)

    def describe(self) -> dict:
        return {"task": self.name, "metric": self.metric, "units": "val_loss in nats per target token; BLEU/chrF 0..100",
                "sizes": {k: len(v) for k, v in self.raw.items()}, "dropped_by_length": self.dropped,
                "max_len": self.max_len, "eval_max_len": self.eval_max_len, "batch_size": self.batch_size, "beam": self.beam,
                "length_penalty": self.length_penalty, "joint_vocab": self.src_tok is self.tgt_tok,
                "bos_id": self.bos, "eos_id": self.eos}


# --------------------------------------------------------------------------- recipe builder
def build(recipe, run_dir):
    """``(model, task, tokenizer)`` for translate-en-de: Bible WEB -> Elberfelder (or the user's TSV).

    tokenizer.joint true: one SentencePiece model on both sides (``run_dir/tokenizer.model``,
    shared embeddings); false: ``run_dir/tokenizer_src/`` and ``run_dir/tokenizer_tgt/`` and
    the returned tokenizer is the pair (src, tgt).
    """
    from rnnkit.core.data.readers import read_parallel_tsv
    from rnnkit.core.tasks.lm_data import train_tokenizer
    from rnnkit.core.recipes import load_or_train_tokenizer
    from rnnkit.core.models.seq2seq import Seq2Seq, Seq2SeqConfig
    from rnnkit.core.tasks.common import model_fields, seeded_model, seeded_subset, split_seed, user_or_corpus_splits

    data, tok_spec, run_dir = recipe["data"], dict(recipe["tokenizer"]), Path(run_dir)
    seed, rows_seed = int(recipe["train"].get("seed", 1337)), split_seed(recipe)
    from rnnkit.core.data.loaders import load_parallel

    corpus = data.get("corpus", "bible_en_de")
    train, valid, test = user_or_corpus_splits(
        data, read_parallel_tsv, lambda split: load_parallel(split, corpus), 0.05, rows_seed)
    extra_tests = {}
    if not data.get("train_file"):
        # More corpora beside the main one ({name: times its train split is repeated}); their
        # valid splits join validation, their test splits are scored each on its own.
        for name, repeat in (data.get("extra_corpora") or {}).items():
            train = train + load_parallel("train", name) * int(repeat)
            extra_valid = load_parallel("valid", name)
            valid = valid + extra_valid
            if data.get("train_on_valid"):
                train = train + extra_valid
            extra_tests[name] = load_parallel("test", name)
    train = seeded_subset(train, int(data.get("max_train_pairs", 0) or 0), rows_seed)
    ev = int(data.get("max_eval_pairs", 0) or 0)
    valid, test = seeded_subset(valid, ev, rows_seed), (seeded_subset(test, ev, rows_seed) if test else test)
    joint = bool(tok_spec.pop("joint", True))
    if joint:
        src_tok = tgt_tok = load_or_train_tokenizer(
            run_dir, lambda: train_tokenizer(tok_spec, [s for s, _ in train] + [t for _, t in train]))
    else:
        src_tok = load_or_train_tokenizer(run_dir / "tokenizer_src", lambda: train_tokenizer(tok_spec, [s for s, _ in train]))
        tgt_tok = load_or_train_tokenizer(run_dir / "tokenizer_tgt", lambda: train_tokenizer(tok_spec, [t for _, t in train]))
    if tgt_tok.bos_id < 0 or tgt_tok.eos_id < 0:
        raise ValueError("translation needs a target tokenizer with BOS and EOS ids (use kind sentencepiece)")
    cfg = Seq2SeqConfig(**{**model_fields(recipe), "src_vocab_size": src_tok.vocab_size,
                           "tgt_vocab_size": tgt_tok.vocab_size, "shared_vocab": joint,
                           "pad_id": tgt_tok.pad_id, "bos_id": tgt_tok.bos_id, "eos_id": tgt_tok.eos_id,
                           "unk_id": tgt_tok.unk_id})
    task = TranslationTask(src_tok, tgt_tok, train, valid, test, max_len=int(data.get("max_len", 48)),
                           batch_size=int(data.get("batch_size", 32)), bos_id=tgt_tok.bos_id,
                           eos_id=tgt_tok.eos_id, seed=seed,
                           val_bleu_sentences=int(data.get("val_bleu_sentences", 200)),
                           beam=int(data.get("beam", 4)), length_penalty=float(data.get("length_penalty", 0.6)),
                           decode_max_len=int(data.get("decode_max_len", 200)),
                           eval_max_len=int(data.get("eval_max_len", 0) or 0),
                           extra_tests={k: seeded_subset(v, ev, rows_seed) for k, v in extra_tests.items()})
    task.valid_in_train = bool(data.get("train_on_valid"))
    return seeded_model(recipe, Seq2Seq, cfg), task, (src_tok if joint else (src_tok, tgt_tok))
