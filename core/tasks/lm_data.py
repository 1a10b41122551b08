"""Text for the language-model recipes: splits from a corpus or the user's files, tokenizers, streams.

``data`` section keys used here (core/recipes/*.json):
    corpus            name under ``rnnkit data fetch`` (shakespeare, ptb, suggest_en)
    train_file        the user's UTF-8 text (replaces the corpus; the tokenizer is trained on it)
    valid_file        optional; without it the last ``holdout`` fraction (5 %) of train_file's lines
    test_file         optional
    max_train_lines   0 = all; smoke sizes read only the head of each split
    max_eval_lines    0 = all (valid and test)
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch import Tensor

MIN_VALID_LINES = 20  # a language model scores every token: fewer lines than a classifier's rows suffice
HOLDOUT = 0.05


def _read_lines(path: str | Path) -> list[str]:
    from rnnkit.core.data.readers import read_text_lines

    return list(read_text_lines(path))


def _corpus_lines(corpus: str, split: str) -> list[str]:
    from rnnkit.core.data import load_lines  # raises "run `rnnkit data fetch`" when the corpus is missing

    return list(load_lines(corpus, split))


def load_splits(data: Mapping[str, Any]) -> dict[str, list[str]]:
    """{"train", "valid"[, "test"]} -> lists of lines (line breaks removed)."""
    if data.get("train_file"):
        splits = {"train": _read_lines(data["train_file"])}
        if data.get("valid_file"):
            splits["valid"] = _read_lines(data["valid_file"])
        else:  # hold out the END of the file: contiguous text, so no sentence leaks across
            lines = splits["train"]
            # counted in lines with text: blank lines at the end are no validation text (word and
            # subword streams drop them), so they must not make up the held-out part
            text_at = [i for i, line in enumerate(lines) if line.strip()]
            if len(text_at) < 2:
                raise ValueError(f"{data['train_file']}: need at least 2 lines of text to hold out a validation "
                                 f"part (or pass --valid FILE)")
            n_valid = max(1, math.ceil(len(text_at) * HOLDOUT))
            cut = text_at[-n_valid]
            splits = {"train": lines[:cut], "valid": lines[cut:]}
        from rnnkit.core.data.readers import warn_small_valid

        warn_small_valid(sum(1 for line in splits["valid"] if line.strip()), "lines", held_out=not data.get("valid_file"),
                         fraction=HOLDOUT, minimum=MIN_VALID_LINES)
        if data.get("test_file"):
            splits["test"] = _read_lines(data["test_file"])
    else:
        if not data.get("corpus"):
            raise ValueError("the recipe names no corpus and no --train file was given")
        splits = {s: _corpus_lines(data["corpus"], s) for s in ("train", "valid", "test")}
    head = {"train": int(data.get("max_train_lines", 0) or 0)}
    head["valid"] = head["test"] = int(data.get("max_eval_lines", 0) or 0)
    return {s: (lines[:head[s]] if head[s] > 0 else lines) for s, lines in splits.items()}


def train_tokenizer(spec: Mapping[str, Any], lines: Sequence[str]):
    """Train the recipe's tokenizer (``spec["kind"]``: char | word | sentencepiece) on ``lines``."""
    from rnnkit.core.text import tokenizers as T

    kind = spec.get("kind")
    if kind == "char":
        return T.CharTokenizer.train(["\n".join(lines) + "\n"])
    if kind == "word":
        return T.WordTokenizer.train(lines, vocab_size=int(spec.get("vocab_size", 0) or 0))
    if kind == "sentencepiece":
        asked = int(spec.get("vocab_size", 8000))
        tok = T.train_sentencepiece(lines, asked, spec.get("model_type", "unigram"))
        if tok.vocab_size < asked:  # hard_vocab_limit=False: the text could not fill the size asked
            print(f"tokenizer: asked for {asked} pieces, this text supports {tok.vocab_size} (260 of them "
                  f"specials and byte fallback); using {tok.vocab_size} (recorded in recipe.json as "
                  f"tokenizer.vocab_size_actual)", file=sys.stderr, flush=True)
        return tok
    raise ValueError(f"unknown tokenizer kind {kind!r}; allowed: char, word, sentencepiece")


def encode_stream(tokenizer, kind: str, lines: Sequence[str]) -> Tensor:
    """Lines -> one int64 stream (``rnnkit.core.text.tokenizers.stream_ids``: char -- the text with its
    line breaks; else ids + eos per line)."""
    from rnnkit.core.text.tokenizers import stream_ids

    return torch.tensor(stream_ids(tokenizer, kind, lines), dtype=torch.long)
