"""Tune the suggestion session's knobs on VALIDATION text (never the test split).

    .venv/bin/python bench/tune_suggest.py models/suggest-en [--chars 4000] [--adapt-chars 15000]

- ``oov_min_prob``: how sure the model must be, given the letters typed, to offer a word the
  lexicon does not know. Typed over a spread sample of everyday_en/valid.txt: keystroke
  savings and the share of offered strings that are not words (training words + wordfreq).
- ``lam`` of the user cache (edge/adapt.py): typed over a contiguous stretch of valid.txt
  (whole conversations, so people repeat themselves as they would on a phone), adaptation on.
- ``theta`` and ``lam`` of the neural cache (edge/neural_cache.py), on the same stretch, with the
  user cache at its default.
- ``lam`` of the bundle's background word n-gram (edge/word_ngram.py; ``--ngram FILE`` for one the
  bundle does not ship): typed over the spread sample, no user cache.
- ``beam`` and ``max_pieces`` of the word search (edge/search.py): what the search's width costs a
  keystroke (CPU p50 / p99, model calls and rows) and what it buys (keystroke savings, top-3), typed
  over the spread sample by one session per setting, keystroke by keystroke in turn (``--rounds``
  times: the CPU time percentiles pool them).
- ``phrase_min_prob`` (edge/phrase.py): Smart Compose's trigger / exact-match curve at every 2nd word
  start of the first ``--phrase-chars`` characters of valid.txt (one search per word start gives
  every bar's phrase).

Prints both grids and writes them to --out (JSON). The defaults in edge/session.py and
edge/adapt.py are set from this output.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
from pathlib import Path

CORPORA = Path(os.environ.get("RNNKIT_DATA", Path.home() / ".cache" / "rnnkit")) / "corpora"


def main(argv=None) -> int:
    from rnnkit.edge.adapt import UserCache
    from rnnkit.edge.cli import spread_lines
    from rnnkit.edge.eval import lstm_eval, phrase_eval, reference_lexicon
    from rnnkit.edge.neural_cache import WordCache
    from rnnkit.edge.session import open_session
    from rnnkit.edge.word_ngram import LAMBDA as WORD_NGRAM_LAMBDA, WordNgram

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bundle")
    ap.add_argument("--chars", type=int, default=4000, help="characters typed per oov_min_prob value")
    ap.add_argument("--adapt-chars", type=int, default=15000, help="characters typed per lam value")
    ap.add_argument("--oov", default="0.2,0.35,0.5,0.7,1.0")
    ap.add_argument("--lam", default="0,0.05,0.1,0.15,0.25,0.35")
    ap.add_argument("--orders", default="3", help="user-cache n-gram orders for the lam grid (2: bigram, 3: trigram)")
    ap.add_argument("--neural-theta", default="0.05,0.15,0.3", help="theta values of the neural cache grid")
    ap.add_argument("--neural-lam", default="0.05,0.1,0.2", help="lam values of the neural cache grid")
    ap.add_argument("--people", type=int, default=0, metavar="N",
                    help="tune the caches on N validation-split writers (everyday_en/people-valid, chat and mail "
                         "writers in turn, one fresh cache per writer, --adapt-chars each) instead of one stretch "
                         "of valid.txt")
    ap.add_argument("--ngram-lam", default="0,0.1,0.2,0.3", help="lam values of the word n-gram grid")
    ap.add_argument("--ngram", default=None, metavar="FILE",
                    help="word_ngram.npz to tune (default: the bundle's own)")
    ap.add_argument("--phrase-chars", type=int, default=80000, help="characters of valid.txt for the phrase curve")
    ap.add_argument("--phrase-min-prob", default="0.7,0.6,0.5,0.45,0.4,0.35,0.3,0.25,0.2,0.15,0.1,0.05,0.02",
                    help="bars of the phrase curve (probabilities)")
    ap.add_argument("--search", default="8:4,6:4,4:4,8:3,6:3",
                    help="beam:max_pieces settings of the word search grid (the session's default first)")
    ap.add_argument("--rounds", type=int, default=2, help="times the search grid's sample is typed (timings pooled)")
    ap.add_argument("--only", choices=("oov", "lam", "neural", "ngram", "phrase", "search"), action="append",
                    help="run only these grids (repeatable; default: all)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    valid = (CORPORA / "everyday_en" / "valid.txt").read_text(encoding="utf-8")
    words = [w.strip() for w in (CORPORA / "wordfreq_en" / "words.txt").read_text(encoding="utf-8").splitlines()]
    session = open_session(args.bundle)
    shipped_oov = session.oov_min_prob  # the other grids run at the shipped default
    lexicon = session.lexicon
    is_word = reference_lexicon(words, list(lexicon._words) if lexicon is not None else [])
    report = {"bundle": args.bundle, "oov_min_prob": [], "lam": [], "neural": [], "ngram": [], "phrase": [],
              "search": []}
    only = set(args.only or ("oov", "lam", "neural", "ngram", "phrase", "search"))
    if "phrase" in only:
        bars = tuple(float(x) for x in args.phrase_min_prob.split(","))
        r = phrase_eval(session, valid[:args.phrase_chars], thresholds=bars, every=2)
        report["phrase_positions"], report["phrase_inside_words"] = r["positions"], r["inside_words"]
        print(json.dumps(r["inside_words"]), flush=True)
        for row in r["thresholds"]:
            report["phrase"].append(row)
            print(json.dumps(row), flush=True)
    sample = spread_lines(valid, args.chars)
    ngram = WordNgram.load(args.ngram) if args.ngram else session.ngram
    if "ngram" in only and ngram is None:
        ap.error("the bundle ships no word_ngram.npz: give one with --ngram FILE")
    for v in (float(x) for x in args.ngram_lam.split(",") if "ngram" in only):
        ngram.lam = v
        session.ngram = ngram if v > 0 else None
        r = lstm_eval(session, sample, is_word=is_word)
        row = {"ngram_lam": v, **{k: r[k] for k in ("keystroke_savings", "keystroke_savings_space_typed",
                                                     "next_word_top1", "next_word_top3", "not_words")}}
        report["ngram"].append(row)
        print(json.dumps(row), flush=True)
    if ngram is not None:
        ngram.lam = WORD_NGRAM_LAMBDA  # the other grids run with the shipped default
    session.ngram = ngram
    for v in (float(x) for x in args.oov.split(",") if "oov" in only):
        session.oov_min_prob = v
        r = lstm_eval(session, sample, is_word=is_word)
        row = {"oov_min_prob": v, "keystroke_savings": r["keystroke_savings"],
               "keystroke_savings_space_typed": r["keystroke_savings_space_typed"], "not_words": r["not_words"],
               "next_word_top3": r["next_word_top3"]}
        report["oov_min_prob"].append(row)
        print(json.dumps(row), flush=True)
    session.oov_min_prob = shipped_oov
    if "search" in only:
        report["search"] = search_grid(args.bundle, sample, args.search, args.rounds)
    if args.people:
        folder = CORPORA / "everyday_en" / "people-valid"
        # chat and mail writers in turn (person-chat-*, person-email-*): both kinds of text are tuned on
        kinds: dict[str, list[Path]] = {}
        for f in sorted(folder.glob("*.txt")):
            kinds.setdefault(f.name.split("-")[1], []).append(f)
        chosen = [f for group in itertools.zip_longest(*kinds.values()) for f in group if f is not None][:args.people]
        texts = [f.read_text(encoding="utf-8")[:args.adapt_chars] for f in chosen]
        report["people_valid"] = [f.name for f in chosen]
    else:
        stretch = valid[len(valid) // 3:len(valid) // 3 + args.adapt_chars]
        texts = [stretch[stretch.find("\n") + 1:]]

    def typed(make_user, make_neural) -> dict:
        """Mean figures over the texts, a fresh user / neural cache for each."""
        rows = []
        for text in texts:
            session.user, session.neural = make_user(), make_neural()
            rows.append(lstm_eval(session, text))
        session.user = session.neural = None
        keys = ("keystroke_savings", "keystroke_savings_space_typed", "next_word_top3", "latency_ms_p99")
        out = {k: sum(r[k] for r in rows) / len(rows) for k in keys}
        if len(rows) > 1:  # each writer's own figure: does one weight suit them all?
            out["per_text"] = [r["keystroke_savings"] for r in rows]
        return out

    grid = [(0.0, 0)] if "lam" in only and "0" in args.lam.split(",") else []
    grid += [(float(x), int(o)) for x in args.lam.split(",") for o in args.orders.split(",")
             if "lam" in only and float(x) > 0]
    for lam, order in grid:
        row = {"lam": lam, "order": order,
               **typed(lambda: UserCache(lam=lam, order=order) if lam > 0 else None, lambda: None)}
        report["lam"].append(row)
        print(json.dumps(row), flush=True)
    hidden = session.runner.meta.hidden_size
    for theta, lam in ((float(a), float(b)) for a in args.neural_theta.split(",") for b in args.neural_lam.split(",")
                       if "neural" in only):
        row = {"theta": theta, "lam": lam, **typed(UserCache, lambda: WordCache(hidden, theta=theta, lam=lam))}
        report["neural"].append(row)
        print(json.dumps(row), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    return 0


def search_grid(bundle: str, sample: str, settings: str, rounds: int) -> list[dict]:
    """Keystroke cost and figures per beam:max_pieces. One session per setting; the sample is typed
    keystroke by keystroke by every session in turn (which goes first rotating), ``rounds`` times,
    so that all see the same machine load: on a shared machine CPU time drifts by tens of per cent
    within a minute, but not between neighbouring keystrokes (as bench/keystroke_ab.py)."""
    import time

    import numpy as np

    from rnnkit.edge.eval import score
    from rnnkit.edge.session import TypingSession, open_session

    grid = [tuple(int(x) for x in s.split(":")) for s in settings.split(",")]
    base = open_session(bundle)  # one graph for all: the sessions differ only in their search
    sessions = [TypingSession(base.runner, base.vocab, beam=b, max_pieces=m, lexicon=base.lexicon, ngram=base.ngram,
                              oov_min_prob=base.oov_min_prob) for b, m in grid]
    cpu = [[] for _ in grid]
    calls = [[] for _ in grid]
    fed = [0] * len(grid)
    answers: list[dict[int, list[str]]] = [{} for _ in grid]
    for r in range(max(rounds, 1)):
        for s in sessions:
            s.reset()
        for i in range(len(sample) + 1):
            for j in ((i + r + n) % len(grid) for n in range(len(grid))):
                s, c0, f0 = sessions[j], sessions[j].graph_calls, sessions[j].tokens_fed
                t0 = time.thread_time()
                sugg = s.suggest(sample[:i], 3, phrase=False)
                cpu[j].append((time.thread_time() - t0) * 1e3)
                if r == 0:  # the answers and the work are the same every round
                    answers[j][i] = [x.text for x in sugg]
                    calls[j].append(s.graph_calls - c0)
                    fed[j] += s.tokens_fed - f0
    out = []
    for j, (beam, max_pieces) in enumerate(grid):
        f = score(sample, lambda t, start, typed, a=answers[j]: a[len(t)])
        row = {"beam": beam, "max_pieces": max_pieces,
               **{k: f[k] for k in ("keystroke_savings", "keystroke_savings_space_typed", "next_word_top3",
                                    "completion_2_top3")},
               "keystrokes": len(calls[j]), "graph_calls_per_keystroke": float(np.mean(calls[j])),
               "tokens_fed_per_keystroke": fed[j] / len(calls[j]), "rounds": max(rounds, 1),
               "cpu_ms_p50": float(np.percentile(cpu[j], 50)), "cpu_ms_p99": float(np.percentile(cpu[j], 99))}
        out.append(row)
        print(json.dumps(row), flush=True)
    return out


if __name__ == "__main__":
    sys.exit(main())
