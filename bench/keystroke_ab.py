"""A typing session against the same session at an earlier commit, keystroke by keystroke in turn.

    python bench/keystroke_ab.py --before 8f4336a --text ~/.cache/rnnkit/corpora/everyday_en/valid.txt

Both sessions run the same bundle through one ``StepRunner``, with this tree's tokenizer, lexicon
and word n-gram objects; the other commit's ``edge/`` (``git archive``, imported under another
package name) gives its ``TypingSession``: what is compared is the session and its search. Each keystroke is typed by both,
which goes first alternating, so both see the same machine load: on a shared machine wall time
drifts by tens of per cent between runs, but not between neighbouring keystrokes. Prints wall and
thread-CPU p50 / p90 / p99 per keystroke, model calls and rows per keystroke, and how many
keystrokes got other suggestions (the changes measured here should change none). ``--prefetch K``:
each session prefetches K keys between keystrokes (untimed, as a keyboard does while it waits).
``--phrase``: Smart Compose phrases on too (as the demo and ``rnnkit suggest`` offer them), each
session at its own default bar, so the phrases offered may differ where the bar's rule changed.
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import importlib  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tarfile  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def edge_at(rev: str, where: Path):
    """``edge/`` as it was at ``rev``, importable as a package of its own; its ``session`` module."""
    name = "edge_" + "".join(c for c in rev if c.isalnum())
    blob = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "edge"], check=True, capture_output=True).stdout
    tar = where / "edge.tar"
    tar.write_bytes(blob)
    with tarfile.open(tar) as t:  # (a tar we made from git; the "data" filter where Python has it)
        t.extractall(where / "x", **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    (where / "x" / "edge").rename(where / name)
    sys.path.insert(0, str(where))  # (main() takes it off again)
    return importlib.import_module(f"{name}.session")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", required=True, help="the commit to compare with (its edge/)")
    ap.add_argument("--bundle", default=str(ROOT / "models" / "suggest-en"))
    ap.add_argument("--text", required=True, help="text to type (a validation split: figures are tuned on it)")
    ap.add_argument("--max-chars", type=int, default=4000, help="whole lines spread over the file, up to this")
    ap.add_argument("--prefetch", type=int, default=0, metavar="K")
    ap.add_argument("--phrase", action="store_true", help="offer phrases too (each session's default bar)")
    ap.add_argument("--show-other", action="store_true", help="print each keystroke whose suggestions differ")
    ap.add_argument("--out", help="write the figures as JSON here")
    args = ap.parse_args(argv)

    from rnnkit.edge.cli import spread_lines
    from rnnkit.edge.session import open_session

    with open(args.text, encoding="utf-8") as f:
        text = spread_lines(f.read(), args.max_chars)
    now = open_session(args.bundle)
    with tempfile.TemporaryDirectory() as tmp:
        old_mod = edge_at(args.before, Path(tmp))
        before = old_mod.TypingSession(now.runner, now.vocab, lexicon=now.lexicon, ngram=now.ngram)
        sides = {"before": before, "now": now}
        wall = {k: [] for k in sides}
        cpu = {k: [] for k in sides}
        calls = {k: [] for k in sides}
        rows = {k: [] for k in sides}
        differ = 0
        for i in range(len(text) + 1):
            order = ("before", "now") if i % 2 else ("now", "before")
            got = {}
            for k in order:
                s = sides[k]
                c0, r0 = s.graph_calls, s.tokens_fed
                t0, p0 = time.perf_counter(), time.thread_time()
                got[k] = [x.text for x in s.suggest(text[:i], 3, phrase=args.phrase)]
                wall[k].append((time.perf_counter() - t0) * 1e3)
                cpu[k].append((time.thread_time() - p0) * 1e3)
                calls[k].append(s.graph_calls - c0)
                rows[k].append(s.tokens_fed - r0)
                if args.prefetch:
                    s.prefetch(text[:i], keys=args.prefetch, phrase=args.phrase)
            if got["before"] != got["now"]:
                differ += 1
                if args.show_other:
                    print(repr(text[max(0, i - 30):i]), got)
        sys.path.remove(tmp)
    load = os.getloadavg()[0]
    import hashlib

    out = {"before_rev": args.before, "bundle": args.bundle, "text": args.text, "chars": len(text),
           "typed_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
           "keystrokes": len(text) + 1, "prefetch": args.prefetch, "phrase": args.phrase, "load_avg_1min": load,
           "keystrokes_with_other_suggestions": differ}
    print(f"{len(text) + 1} keystrokes of {args.text} ({len(text)} characters), prefetch {args.prefetch}, "
          f"phrases {'on' if args.phrase else 'off'}, "
          f"load {load:.2f}; keystrokes with other suggestions: {differ}")
    for k in sides:
        w, c = np.asarray(wall[k]), np.asarray(cpu[k])
        out[k] = {"wall_ms": dict(zip(("p50", "p90", "p99"), map(float, np.percentile(w, [50, 90, 99])))),
                  "cpu_ms": dict(zip(("p50", "p90", "p99"), map(float, np.percentile(c, [50, 90, 99])))),
                  "mean_wall_ms": float(w.mean()), "calls_per_keystroke": float(np.mean(calls[k])),
                  "rows_per_keystroke": float(np.mean(rows[k])),
                  "no_call_keystrokes": float(np.mean(np.asarray(calls[k]) == 0))}
        o = out[k]
        print(f"{k:>7}: wall p50 {o['wall_ms']['p50']:.2f} p90 {o['wall_ms']['p90']:.2f} p99 {o['wall_ms']['p99']:.2f} ms "
              f"(cpu p50 {o['cpu_ms']['p50']:.2f} p99 {o['cpu_ms']['p99']:.2f}); {o['calls_per_keystroke']:.2f} calls, "
              f"{o['rows_per_keystroke']:.2f} rows per keystroke; {o['no_call_keystrokes']:.1%} make no call")
    if args.out:
        from rnnkit.core.atomic import atomic_write_text

        atomic_write_text(args.out, json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
