"""Readers for the user's own files, in the same formats as the fetched corpora (stdlib + numpy).

Every error is a ``ReaderError`` (a ValueError, so the CLI prints one line) that names the
file, the line number and what was expected. UTF-8 with or without a BOM; CRLF is fine.

    read_text_lines(path)                     -> list[str]
    read_tsv(path, columns=("score", "text")) -> list[tuple]        (score: float in [-1, 1])
    read_parallel_tsv(path)                   -> list[tuple[str, str]]   (src, tgt)
    read_conll(path)                          -> list[tuple[list[str], list[str]]]  (tokens, tags)
    read_series_csv(path, column=None)        -> Series(times, values (N,) float64, missing_lines)
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

LABELS = {"pos": 1.0, "positive": 1.0, "neg": -1.0, "negative": -1.0}
BINARY = {"1": 1.0, "0": -1.0}  # only when the whole file uses 0/1 labels
MISSING = {"", "na", "nan", "null", "none", "?"}


class ReaderError(ValueError):
    def __init__(self, path: str | os.PathLike, line: int | None, message: str):
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"{where}: {message}")
        self.path, self.line = str(path), line


def iter_lines(path: str | os.PathLike, lone_cr_ok: bool = False) -> Iterator[tuple[int, str]]:
    """(line number from 1, text without its line ending); BOM dropped; bad UTF-8 -> ReaderError;
    a CR inside a line (old Mac line ends: the whole file one line) too, unless ``lone_cr_ok``."""
    path = Path(path)
    if not path.is_file():
        raise ReaderError(path, None, "no such file" if not path.exists() else "not a file")
    with open(path, "rb") as f:
        for no, raw in enumerate(f, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise ReaderError(path, no, f"not valid UTF-8 (byte {e.start + 1} of the line: "
                                            f"{raw[e.start:e.start + 1]!r}); save the file as "
                                            "UTF-8") from None
            if no == 1:
                text = text.removeprefix("\ufeff")
            text = text.rstrip("\r\n")
            if "\r" in text and not lone_cr_ok:  # old Mac line ends: the whole file would read as one line
                raise ReaderError(path, no, "a carriage return (CR) inside a line: lines must end with LF or "
                                            "CRLF (save the file with Unix or Windows line endings)")
            yield no, text


def read_text_lines(path: str | os.PathLike, skip_blank: bool = False) -> list[str]:
    """Every line of a UTF-8 text file (blank lines kept unless ``skip_blank``); a lone CR (old Mac
    line ends) ends a line too: plain text has no columns a stray one could shift."""
    lines = [part for _, t in iter_lines(path, lone_cr_ok=True) for part in t.split("\r")]
    return [t for t in lines if not (skip_blank and not t.strip())]


def _score(raw: str, binary: bool) -> float | None:
    key = raw.strip().lower()
    if key in LABELS:
        return LABELS[key]
    if binary and key in BINARY:
        return BINARY[key]
    try:
        value = float(key)
    except ValueError:
        return None
    return value if math.isfinite(value) and -1.0 <= value <= 1.0 else None


HEADER_WORDS = {"score", "label", "sentiment", "polarity", "rating", "y"}


def _is_header(fields: list[str], columns: tuple[str, ...], score_cols: list[int]) -> bool:
    names = [f.strip().lower() for f in fields]
    return names == list(columns) or any(
        i < len(names) and names[i] in HEADER_WORDS for i in score_cols)


def _unquote(field: str) -> str:
    """A field as a CSV writer quotes it (pandas ``to_csv(sep="\\t")``): the outer quotes go and
    doubled quotes become one. A field that only starts or ends with a quote is text as it is."""
    f = field.strip()
    if len(f) >= 2 and f[0] == f[-1] == '"' and '"' not in f[1:-1].replace('""', ""):
        return f[1:-1].replace('""', '"')
    return field


def read_tsv(path: str | os.PathLike, columns: tuple[str, ...] = ("score", "text")) -> list[tuple]:
    """Tab-separated rows with ``len(columns)`` fields (the last field may contain tabs).

    A column named ``score`` (or ``label``) is parsed: a float in [-1, 1], or pos/neg/positive/
    negative -> +1/-1; if every value in the file is 0 or 1 they are labels (0 -> -1, 1 -> +1).
    A first line that repeats the column names (or names its score column score / label /
    sentiment / polarity / rating) is a header and skipped. Blank lines are skipped.
    """
    score_cols = [i for i, c in enumerate(columns) if c in ("score", "label")]
    rows: list[tuple[int, list[str]]] = []
    for no, text in iter_lines(path):
        if not text.strip():
            continue
        fields = text.split("\t", len(columns) - 1)
        if no == 1 and _is_header(fields, columns, score_cols):
            continue
        if len(fields) != len(columns):
            raise ReaderError(path, no, f"expected {len(columns)} tab-separated columns "
                                        f"({', '.join(columns)}), got {len(fields)}: {text[:60]!r}")
        rows.append((no, fields))
    binary = bool(score_cols) and bool(rows) and all(
        f[i].strip() in BINARY for _, f in rows for i in score_cols)
    out = []
    for no, fields in rows:
        values: list = [_unquote(f).rstrip() for f in fields]  # (a trailing tab or space is no text)
        for i in score_cols:
            score = _score(fields[i], binary)
            if score is None:
                raise ReaderError(path, no, f"column {columns[i]!r} must be a number in [-1, 1] "
                                            f"or a label pos/neg/1/0, got {fields[i]!r}")
            values[i] = score
        for i, c in enumerate(columns):
            if i not in score_cols and not values[i].strip():
                raise ReaderError(path, no, f"column {c!r} is empty")
        out.append(tuple(values))
    return out


def read_parallel_tsv(path: str | os.PathLike) -> list[tuple[str, str]]:
    """``source<TAB>target`` a line (e.g. ``en<TAB>de``); both sides non-empty."""
    out = []
    for no, text in iter_lines(path):
        if not text.strip():
            continue
        fields = text.split("\t")
        if len(fields) != 2:
            raise ReaderError(path, no, f"expected 2 tab-separated columns (source, target), "
                                        f"got {len(fields)}: {text[:60]!r}")
        src, tgt = (_unquote(f).strip() for f in fields)
        if not src or not tgt:
            raise ReaderError(path, no, "empty " + ("source" if not src else "target") + " side")
        out.append((src, tgt))
    return out


def read_conll(path: str | os.PathLike) -> list[tuple[list[str], list[str]]]:
    """CoNLL columns: ``token ... tag`` a line (2+ columns, tag = last), blank line between
    sentences, ``-DOCSTART-`` lines skipped. Returns [(tokens, tags)]."""
    sentences: list[tuple[list[str], list[str]]] = []
    tokens: list[str] = []
    tags: list[str] = []
    for no, text in iter_lines(path):
        # Tab-separated columns when the line has a tab (a token may then hold a space: "New York");
        # else runs of ASCII spaces, so a no-break space stays inside its token.
        fields = [f for f in (text.split("\t") if "\t" in text else text.split(" ")) if f.strip()]
        if not fields or fields[0] == "-DOCSTART-":
            if tokens:
                sentences.append((tokens, tags))
            tokens, tags = [], []
            continue
        if len(fields) < 2:
            raise ReaderError(path, no, f"expected at least 2 columns (token ... tag), got "
                                        f"{text.strip()!r}; separate sentences by a blank line")
        tokens.append(fields[0])
        tags.append(fields[-1])
    if tokens:
        sentences.append((tokens, tags))
    return sentences


@dataclass
class Series:
    """A univariate series: ``values`` (N,) float64 with gaps linearly interpolated."""
    name: str
    times: list[str]
    values: np.ndarray
    missing_lines: list[int] = field(default_factory=list)  # file lines whose value was filled

    def report(self) -> str:
        if not self.missing_lines:
            return f"{self.name}: {len(self.values)} values, none missing"
        shown = ", ".join(map(str, self.missing_lines[:8]))
        more = " ..." if len(self.missing_lines) > 8 else ""
        return (f"{self.name}: {len(self.values)} values, {len(self.missing_lines)} missing "
                f"interpolated (lines {shown}{more})")


def read_series_csv(path: str | os.PathLike, column: str | None = None) -> Series:
    """CSV with a header; the first column is the time label, the value column is ``column``
    (default: ``value`` if present, else the last column). Missing values (empty, NA, nan)
    are linearly interpolated (ends: nearest value) and listed in ``missing_lines``."""
    lines = iter_lines(path)
    try:
        hno, header = next((n, t) for n, t in lines if t.strip())
    except StopIteration:
        raise ReaderError(path, None, "empty file; expected a header such as 'date,value'")
    names = [h.strip() for h in header.split(",")]
    if len(names) < 2:
        raise ReaderError(path, hno, f"expected a header with a time and a value column, "
                                     f"e.g. 'date,value', got {header!r}")
    if finite_number(names[-1]) is not None:  # a number where a column name should be: data, not a header
        raise ReaderError(path, hno, f"the first line {header[:40]!r} holds numbers: add a header line "
                                     "such as 'date,value' (the first observation would be lost)")
    want = column or ("value" if "value" in names else names[-1])
    if want not in names:
        raise ReaderError(path, hno, f"no column {want!r}; the header has {names}")
    col = names.index(want)
    times, values, missing = [], [], []
    for no, text in lines:
        if not text.strip():
            continue
        fields = text.split(",")
        if len(fields) != len(names):
            raise ReaderError(path, no, f"expected {len(names)} comma-separated fields "
                                        f"({','.join(names)}), got {len(fields)}")
        raw = fields[col].strip()
        if raw.lower() in MISSING:
            values.append(math.nan)
            missing.append(no)
        else:
            x = finite_number(raw)
            if x is None:
                raise ReaderError(path, no, f"column {want!r} must be a number (finite; or empty for "
                                            f"missing), got {raw!r}")
            values.append(x)
        times.append(fields[0].strip())
    arr = np.asarray(values, dtype=np.float64)
    known = ~np.isnan(arr)
    if not known.any():
        raise ReaderError(path, None, f"column {want!r} has no numeric values")
    if not known.all():
        idx = np.arange(len(arr))
        arr = np.interp(idx, idx[known], arr[known])  # ends take the nearest known value
    return Series(name=Path(path).stem, times=times, values=arr, missing_lines=missing)


def finite_number(raw: str) -> float | None:
    """``raw`` as a finite float, or None (not a number, inf, nan). The series readers share it."""
    try:
        x = float(raw)
    except ValueError:
        return None
    return x if math.isfinite(x) else None


MIN_VALID_ROWS = 100  # below this, one row moves accuracy by >= 1 point: "best" is mostly luck


def warn_small_valid(n: int, unit: str, held_out: bool, fraction: float = 0.0, minimum: int = MIN_VALID_ROWS) -> bool:
    """Print a warning (stderr, once per run start) when the validation set is too small for its
    metric to pick a meaningful best model or early stop; True if it warned."""
    if n >= minimum:
        return False
    how = (f"held out {fraction:.0%} of your training file" if held_out else "your --valid file has")
    print(f"warning: validation has only {n} {unit} ({how}); with fewer than {minimum} the best "
          f"checkpoint and early stopping follow noise. Pass a larger --valid FILE (or more data).",
          file=sys.stderr, flush=True)
    return True
