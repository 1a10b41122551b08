"""Suggestions when the user's keyboard types typographic apostrophes (U+2019), as iOS and macOS do.

    .venv/bin/python bench/typed_apostrophes.py models/suggest-en [--chars 8000] [--out FILE.json]

The same VALIDATION text (a spread sample of everyday_en/valid.txt) is typed twice through the
typing session, once as written ("don't") and once with every "'" typed as U+2019 ("don’t");
the figures should not differ. The training text writes "'" (65 k lines against 104 with U+2019),
so a session that reads U+2019 as an unknown character loses completions on every contraction.
To measure an older tree, run this file with that tree's package first on PYTHONPATH.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

CORPORA = Path(os.environ.get("RNNKIT_DATA", Path.home() / ".cache" / "rnnkit")) / "corpora"
KEYS = ("next_word_top3", "completion_1_top3", "completion_2_top3", "keystroke_savings",
        "keystroke_savings_space_typed")


def main(argv=None) -> int:
    import rnnkit
    from rnnkit.core.atomic import atomic_write_json
    from rnnkit.edge.cli import spread_lines
    from rnnkit.edge.eval import lstm_eval
    from rnnkit.edge.session import open_session

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bundle")
    ap.add_argument("--chars", type=int, default=8000, help="characters of everyday_en/valid.txt to type")
    ap.add_argument("--out", default=None, help="write the figures here (JSON)")
    args = ap.parse_args(argv)
    text = spread_lines((CORPORA / "everyday_en" / "valid.txt").read_text(encoding="utf-8"), args.chars)
    session = open_session(args.bundle)
    report = {"bundle": args.bundle, "chars": len(text), "apostrophes": text.count("'"),
              "rnnkit": str(Path(rnnkit.__file__).parent)}
    for name, typed in (("straight", text), ("typographic", text.replace("'", "\u2019"))):
        r = lstm_eval(session, typed)
        report[name] = {k: r[k] for k in KEYS}
    print(f"{report['chars']} characters, {report['apostrophes']} apostrophes")
    for k in KEYS:
        print(f"{k:32s} straight {100 * report['straight'][k]:5.1f} %   typed as U+2019 "
              f"{100 * report['typographic'][k]:5.1f} %")
    if args.out:
        atomic_write_json(args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
