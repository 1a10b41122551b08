"""One-line access to the fetched corpora for recipes (read through ``readers``, so the
user's own files and ours go through the same code).

    load_text("shakespeare", "train")  -> str (the whole split)
    load_lines("ptb", "valid")         -> list[str]
    load_sentiment("train")            -> [(score in [-1, 1], text)]   ("vader_all" too)
    load_parallel("test")              -> [(en, de)]
    load_conll("train")                -> [(tokens, ner_tags)]
    load_series("co2")                 -> Series (values interpolated, missing reported)
Each raises CorpusMissingError ("run `rnnkit data fetch`") when the corpus is not there.
"""

from __future__ import annotations

from pathlib import Path

from rnnkit.core.data.fetcher import corpus_dir
from rnnkit.core.data.readers import Series, read_conll, read_parallel_tsv, read_series_csv, read_text_lines, \
    read_tsv

FILES = {  # corpus -> (split names, file extension)
    "shakespeare": (("train", "valid", "test"), ".txt"),
    "ptb": (("train", "valid", "test"), ".txt"),
    "suggest_en": (("train", "valid", "test"), ".txt"),
    "everyday_en": (("train", "valid", "test"), ".txt"),
    "everyday_en_de": (("train", "valid", "test"), ".tsv"),
    "phrasebook_en_de": (("train", "valid", "test"), ".tsv"),
    "wordfreq_en": (("words",), ".txt"),
    "mr": (("train", "valid", "test", "vader_all"), ".tsv"),
    "bible_en_de": (("train", "valid", "test"), ".tsv"),
    "conll2003": (("train", "valid", "test"), ".txt"),
    "timeseries": (("airline", "co2"), ".csv"),
}


def split_path(name: str, split: str, fetch: bool = False) -> Path:
    """``$RNNKIT_DATA/corpora/<name>/<split>.<ext>``, checked."""
    if name not in FILES:
        raise ValueError(f"unknown corpus {name!r}; known: {', '.join(FILES)}")
    splits, ext = FILES[name]
    if split not in splits:
        raise ValueError(f"corpus {name!r} has no split {split!r}; it has {', '.join(splits)}")
    return corpus_dir(name, fetch=fetch) / f"{split}{ext}"


def load_text(name: str, split: str) -> str:
    """A text split as one string (``\\n`` line ends), e.g. for char-level models."""
    return split_path(name, split).read_text(encoding="utf-8")


def load_lines(name: str, split: str) -> list[str]:
    return read_text_lines(split_path(name, split))


def load_sentiment(split: str) -> list[tuple[float, str]]:
    return read_tsv(split_path("mr", split), columns=("score", "text"))


def load_parallel(split: str, corpus: str = "bible_en_de") -> list[tuple[str, str]]:
    return read_parallel_tsv(split_path(corpus, split))


def load_conll(split: str) -> list[tuple[list[str], list[str]]]:
    return read_conll(split_path("conll2003", split))


def load_series(name: str) -> Series:
    return read_series_csv(split_path("timeseries", name), column="value")
