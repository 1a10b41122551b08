"""Word vectors learnt from plain text (skip-gram with negative sampling, Mikolov et al. 2013),
and the word2vec / GloVe text format to save and read them.

A tagger that starts from vectors learnt on millions of unlabelled words knows the names, places
and organisations its few labelled sentences never show (Lample et al. 2016: CoNLL-2003 F1 83.6
-> 90.9 with pretrained vectors). Words are keyed as the tagger keys them (``norm_word``: lower
case, digits -> 0), and the possessive "'s" is split off as CoNLL's tokenisation does, so a
vector's word is a tagger's word.

The file is the plain word2vec text format ("N DIM" header, then "word v1 v2 ..."); ``read``
also takes GloVe's header-less files, so users can bring their own vectors. No pickle.

    rnnkit data vectors OUT.txt TEXT [TEXT ...] [--corpus NAME] [--dim 100] [--epochs 5]
"""

from __future__ import annotations

import math
import time
from collections import Counter
from pathlib import Path
from typing import Sequence

import numpy as np

from rnnkit.core.atomic import atomic_write_text
from rnnkit.core.data.fetcher import progress_bar
from rnnkit.edge.words import norm_word, split_possessive, tokenize


def text_tokens(line: str) -> list[str]:
    """A line's tagger words: ``tokenize``'s words and marks, "'s" split off, ``norm_word``-ed."""
    return [norm_word(t) for tok in tokenize(line.replace("\u2019", "'")) for t in split_possessive(tok)]


def corpus_source(name: str) -> Path | list[list[str]]:
    """A corpus's train split as ``train`` takes it: a plain-text file, or for a tagged corpus
    (conll2003) its sentences' tokens, read as the tagger reads them (CoNLL's own tokenisation:
    "U.S." stays one word)."""
    from rnnkit.core.data.loaders import split_path
    from rnnkit.core.data.readers import read_conll

    path = split_path(name, "train", fetch=True)
    if name == "conll2003":
        return [[norm_word(t) for t in toks] for toks, _ in read_conll(path)]
    if path.suffix != ".txt":
        raise ValueError(f"word vectors learn from plain-text corpora and conll2003; {name} is a {path.suffix} table")
    return path


def _source_lines(src: str | Path | Sequence[Sequence[str]]) -> list[list[str]]:
    if isinstance(src, (str, Path)):
        return [text_tokens(line) for line in Path(src).read_text(encoding="utf-8", errors="replace").splitlines()]
    return [list(toks) for toks in src]  # already tagger words (corpus_source normalised them)


def corpus_ids(sources: Sequence, min_count: int, max_words: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    """``sources``: text files and/or lists of lines as tagger words (``corpus_source``).
    -> (words by frequency, counts, the corpus as word ids with -1 between lines)."""
    lines = [toks for src in sources for toks in _source_lines(src)]
    counts = Counter(w for toks in lines for w in toks if w != "<unk>")  # PTB's <unk> is not a word
    words = [w for w, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if c >= min_count][:max_words]
    index = {w: i for i, w in enumerate(words)}
    ids: list[int] = []
    for toks in lines:
        ids.extend(index.get(w, -2) for w in toks)  # -2: rare word, dropped below
        ids.append(-1)  # no window crosses a line
    arr = np.asarray(ids, dtype=np.int64)
    return words, np.asarray([counts[w] for w in words], dtype=np.int64), arr[arr != -2]


def train(paths: Sequence, dim: int = 100, window: int = 5, negatives: int = 5, epochs: int = 5,
          min_count: int = 2, max_words: int = 200_000, subsample: float = 1e-4, batch: int = 8192,
          lr: float = 0.003, seed: int = 0, progress: bool = True) -> tuple[list[str], np.ndarray]:
    """Skip-gram with negative sampling on ``paths`` (text files, or lists of lines as tagger words,
    as ``corpus_source`` gives); -> (words, vectors (V, dim) float32)."""
    import torch

    words, counts, ids = corpus_ids(paths, min_count, max_words)
    if len(words) < 2:
        raise ValueError("too little text to learn word vectors from")
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    freq = counts / counts.sum()
    keep_p = np.minimum(1.0, np.sqrt(subsample / freq) + subsample / freq)  # word2vec's subsampling
    noise = torch.tensor(counts ** 0.75 / (counts ** 0.75).sum(), dtype=torch.float32)
    bound = 0.5 / dim
    w_in = torch.nn.Embedding(len(words), dim, sparse=True)
    w_out = torch.nn.Embedding(len(words), dim, sparse=True)
    torch.nn.init.uniform_(w_in.weight, -bound, bound)
    torch.nn.init.zeros_(w_out.weight)
    opt = torch.optim.SparseAdam([w_in.weight, w_out.weight], lr=lr)
    lines = np.cumsum(ids == -1)  # line number of each position
    start = time.time()
    for epoch in range(epochs):
        word = ids >= 0
        kept = np.where(~word | (rng.random(len(ids)) < keep_p[np.maximum(ids, 0)]), ids, -3)
        kept_lines = lines[kept != -3]
        kept = kept[kept != -3]
        c, x = _pairs_same_line(kept, kept_lines, window, rng)
        if not len(c):
            raise ValueError("too little text to learn word vectors from: no two words share a line "
                             "once frequent words are subsampled")
        order = rng.permutation(len(c))
        c, x = torch.from_numpy(c[order]), torch.from_numpy(x[order])
        total, n = 0.0, 0
        bar = progress_bar(-(-len(c) // batch), progress, unit="batch", desc=f"word vectors, epoch {epoch + 1}/{epochs}",
                           leave=False)
        for k in range(0, len(c), batch):
            cb, xb = c[k:k + batch], x[k:k + batch]
            neg = torch.multinomial(noise, len(cb) * negatives, replacement=True).view(len(cb), negatives)
            v = w_in(cb)                                   # (B, D)
            u = w_out(torch.cat([xb[:, None], neg], 1))    # (B, 1 + K, D)
            score = torch.bmm(u, v[:, :, None]).squeeze(2)
            score[:, 1:] = -score[:, 1:]
            loss = -torch.nn.functional.logsigmoid(score).sum(1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            total, n = total + loss.item(), n + 1
            bar.update(1)
        bar.close()
        if not math.isfinite(total):  # nothing saved: a broken file must never reach a tagger
            raise FloatingPointError(f"word vectors: the loss became {total} in epoch {epoch + 1}; try a lower lr")
        if progress:
            print(f"word vectors: epoch {epoch + 1}/{epochs}, {len(c):,} pairs, loss {total / max(n, 1):.3f}, "
                  f"{time.time() - start:.0f} s", flush=True)
    return words, w_in.weight.detach().numpy().astype(np.float32)


def _pairs_same_line(ids: np.ndarray, line: np.ndarray, window: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """(centre, context) pairs with word2vec's shrunk windows (each centre draws its own reach in
    1..window); both words lie on the same line."""
    reach = rng.integers(1, window + 1, size=len(ids))
    cs, xs = [], []
    for d in range(1, window + 1):
        same = line[:-d] == line[d:]
        ok = same & (ids[:-d] >= 0) & (ids[d:] >= 0)
        left = ok & (reach[:-d] >= d)   # centre on the left, context d to the right
        right = ok & (reach[d:] >= d)   # centre on the right
        cs += [ids[:-d][left], ids[d:][right]]
        xs += [ids[d:][left], ids[:-d][right]]
    return np.concatenate(cs), np.concatenate(xs)


def resolve(spec, progress: bool = True) -> Path:
    """A recipe's ``data.word_vectors``: a file path (word2vec or GloVe text), or a dict
    ``{"corpora": ["everyday_en", ...], "dim": 100, ...}`` -- vectors learnt on those corpora's
    train splits (never a valid or test split), once, and kept in ``$RNNKIT_DATA/vectors/``."""
    if isinstance(spec, (str, Path)):
        path = Path(spec).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"word vectors file {path} not found")
        return path
    if not isinstance(spec, dict) or not spec.get("corpora"):
        raise ValueError(f"data.word_vectors must be a file path or {{'corpora': [...]}}, got {spec!r}")
    import hashlib
    import json

    from rnnkit.core.data.fetcher import data_root

    known = {"dim", "window", "negatives", "epochs", "min_count", "max_words", "subsample", "seed"}
    options = {k: v for k, v in spec.items() if k != "corpora"}
    if set(options) - known:
        raise ValueError(f"data.word_vectors: unknown options {sorted(set(options) - known)}; known: {sorted(known)}")
    # The key holds the train splits' contents, not only the settings: vectors learnt on an older
    # build of a corpus (its cleaning changed) must not be taken for this build's.
    from rnnkit.core.data.loaders import split_path

    built = {name: hashlib.sha256(split_path(name, "train", fetch=True).read_bytes()).hexdigest()
             for name in spec["corpora"]}
    key = hashlib.sha256(json.dumps({"spec": spec, "train": built}, sort_keys=True).encode()).hexdigest()[:12]
    path = data_root() / "vectors" / f"{'+'.join(spec['corpora'])}-{key}.txt"
    if not path.is_file():
        texts = [corpus_source(name) for name in spec["corpora"]]
        if progress:
            print(f"learning word vectors from {', '.join(spec['corpora'])} (once; kept in {path})", flush=True)
        words, vectors = train(texts, progress=progress, **options)
        write(path, words, vectors)
    return path


def write(path: str | Path, words: Sequence[str], vectors: np.ndarray) -> Path:
    """word2vec text format, written atomically."""
    rows = [f"{len(words)} {vectors.shape[1]}"]
    rows += [w + " " + " ".join(f"{x:.5f}" for x in v) for w, v in zip(words, vectors)]
    return atomic_write_text(path, "\n".join(rows) + "\n")


def read(path: str | Path, max_words: int = 0) -> tuple[list[str], np.ndarray]:
    """Vectors from a word2vec text file or a GloVe file (no header); ``max_words`` > 0 keeps the
    first that many (both formats list frequent words first)."""
    words: list[str] = []
    rows: list[list[float]] = []
    dim = 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f):
            parts = line.rstrip("\n").rstrip().split(" ")
            if n == 0 and len(parts) == 2 and all(p.isdigit() for p in parts):
                continue  # word2vec header
            if len(parts) < 2:
                continue
            if not dim:
                dim = len(parts) - 1
            if len(parts) - 1 != dim:
                raise ValueError(f"{path}, line {n + 1}: {len(parts) - 1} numbers, expected {dim}")
            try:
                rows.append([float(x) for x in parts[1:]])
            except ValueError:
                raise ValueError(f"{path}, line {n + 1}: not a word vector line") from None
            words.append(parts[0])
            if max_words and len(words) >= max_words:
                break
    if not words:
        raise ValueError(f"{path}: no word vectors in it")
    vectors = np.asarray(rows, dtype=np.float32)
    if not np.isfinite(vectors).all():
        raise ValueError(f"{path}: vectors contain NaN or infinity")
    return words, vectors


