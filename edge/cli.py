"""``rnnkit suggest`` and ``rnnkit eval-suggest``: the edge runner from a terminal or a script.

    rnnkit suggest BUNDLE            interactive: suggestions update as you type (Tab accepts
                                     the first one); reads lines when stdin is not a terminal
    rnnkit suggest BUNDLE --json     one JSON object a line in, {"text": ..., "k": 3}, one out:
                                     {"suggestions": [{"text", "kind", "prob", "p_given_typed"}], "ms": ...} or
                                     {"error": ...}; every line gets exactly one answer (blank ones too)
                                     add "prefetch": 3 to prepare the likely next keys after answering
    rnnkit eval-suggest BUNDLE --text FILE [--train-text FILE]

Torch-free: works on a device with only numpy, onnxruntime and sentencepiece.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import sys
import time

from .phrase import MIN_PROB as PHRASE_MIN_PROB

DEFAULT_BUNDLE = "models/suggest-en"  # the int8 suggestion bundle that ships with rnnkit


def _add_session_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("bundle", nargs="?", default=DEFAULT_BUNDLE,
                   help=f"bundle directory (rnnkit export RUN --out BUNDLE --int8); default {DEFAULT_BUNDLE}")
    p.add_argument("--precision", choices=("fp32", "int8"), default=None,
                   help="graph to run (default: the bundle's own, int8 if it was exported with --int8)")
    p.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads (default 1)")
    p.add_argument("--phrase-words", type=int, default=3, help="longest Smart Compose phrase, in words (0: off)")
    p.add_argument("--phrase-min-prob", type=float, default=PHRASE_MIN_PROB, metavar="P",
                   help=f"offer a phrase only if the model gives it at least this probability, from 0 to 1 (default "
                        f"{PHRASE_MIN_PROB}: rare but often exactly right; see eval-suggest's trigger/exact-match table)")
    p.add_argument("--min-ratio", type=float, default=0.01,
                   help="inside a word, offer no completion less likely than this times the best word, the "
                        "typed word itself included (default 0.01: after a complete word, junk extensions are "
                        "dropped; 0 always offers k)")
    p.add_argument("--ngram-weight", type=float, default=None, metavar="L",
                   help="weight of the bundle's word n-gram (word_ngram.npz) in the mix with the model "
                        "(default: 0.2, tuned on validation text; 0: the model alone)")


def resolve_bundle(path: str) -> str:
    """The default bundle is found from any directory (beside the installed rnnkit package)."""
    if path == DEFAULT_BUNDLE and not os.path.isdir(path):
        import rnnkit

        shipped = os.path.join(os.path.dirname(os.path.abspath(rnnkit.__file__)), DEFAULT_BUNDLE)
        if os.path.isdir(shipped):
            return shipped
    return path


def _open(args, user=None):
    from .runner import EdgeError
    from .session import open_session

    w = args.ngram_weight
    if w is not None and not 0 <= w < 1:
        raise EdgeError(f"--ngram-weight must be in [0, 1), got {w}")
    session = open_session(resolve_bundle(args.bundle), precision=args.precision, threads=args.threads,
                           phrase_words=args.phrase_words, phrase_min_prob=args.phrase_min_prob,
                           min_ratio=args.min_ratio, user=user)
    if session.ngram is not None and w is not None:
        session.ngram.lam = w
        if w == 0:
            session.ngram = None
    return session


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "suggest", help="next-word / completion / phrase suggestions from a bundle (torch-free)",
        description="Type and see suggestions: next word at a space, completions inside a word, "
                    "and a Smart Compose phrase when the model is confident. --json for scripts.")
    _add_session_args(p)
    p.add_argument("--json", action="store_true",
                   help='one JSON object a line on stdin {"text": ..., "k": 3, "phrase": true, "prefetch": 0}; '
                        'exactly one answer line on stdout for every input line, in order: lines end at "\\n" only, '
                        'and blank, invalid or overlong lines (over %d bytes) get an {"error": ...} answer. '
                        '"prefetch": N prepares the N likeliest next keys after answering '
                        '(send it when waiting for the user: the next keystroke then makes no model call)' % MAX_LINE_BYTES)
    p.add_argument("-k", type=int, default=3, help="word suggestions per keystroke (default 3)")
    p.add_argument("--user-dir", default=None, metavar="DIR",
                   help="learn the user's own words and word pairs as they type (no training, nothing leaves "
                        "the device, the bundle never changes); kept in DIR/user_cache.json between sessions, "
                        "saved every 30 s and at exit (also on SIGTERM/SIGHUP)")
    p.add_argument("--forget", action="store_true",
                   help="delete what --user-dir DIR learned, then exit (a session running on DIR forgets too)")
    p.set_defaults(func=cmd_suggest)

    e = subparsers.add_parser(
        "eval-suggest", help="type a text file keystroke by keystroke and score the suggestions",
        description="Next-word top-1/top-3, completion accuracy after 1-3 typed characters, keystroke "
                    "savings, p50/p99 latency per keystroke, Smart Compose trigger/exact-match rates; "
                    "and the same for a Kneser-Ney trigram trained on --train-text.")
    _add_session_args(e)
    e.add_argument("--text", required=True, help="UTF-8 text to type (held-out, not training text)")
    e.add_argument("--train-text", default=None, help="training text for the Kneser-Ney trigram baseline")
    e.add_argument("--max-chars", type=int, default=5000, help="type only the first N characters (default 5000)")
    e.add_argument("--spread", action="store_true",
                   help="take whole lines spread evenly over the file (up to --max-chars) instead of its head: "
                        "a fair sample of a file sorted by source")
    e.add_argument("--phrase-every", type=int, default=2, help="score phrases at every Nth word start (default 2)")
    e.add_argument("--prefetch", type=int, default=3, metavar="KEYS",
                   help="also time the typing with idle-time prefetch of this many likely next keys between "
                        "keystrokes, as a keyboard waiting for the next key would (default 3; 0: skip)")
    e.add_argument("--reference-words", action="append", metavar="FILE",
                   help="a word list (one a line; repeatable) that, with --train-text's words, makes the "
                        "reference lexicon for the share of offered strings that are not words; e.g. "
                        "~/.cache/rnnkit/corpora/wordfreq_en/words.txt (rnnkit data fetch --only wordfreq_en)")
    e.add_argument("--adapt", action="store_true",
                   help="type the text again with adaptation on, learning only from what was typed before "
                        "each keystroke: a fresh user n-gram cache (+adapt), then that and the neural cache "
                        "over the model's states (+neural); printed beside adaptation off")
    e.add_argument("--out", default=None, help="also write the figures as JSON to this file")
    e.set_defaults(func=cmd_eval)


# ---------------------------------------------------------------------------- suggest
MAX_PREFETCH = 8
MAX_K = 20                  # edge.session.MAX_K; checked here too so that no huge number is echoed
MAX_LINE_BYTES = 4 << 20    # one --json request line; a longer one is answered with an error, unread


def answer(session, line: str, after: list | None = None) -> dict:
    """One --json request line -> one answer object (errors are answers, never exceptions).

    ``"prefetch": N`` in a request asks for idle-time work once the answer is out: the session
    prepares the N likeliest next keys (appended to ``after`` as a call, for the loop to run
    after printing). An app sends it when it expects to wait for the user.
    """
    from .runner import EdgeError

    if not line.strip():
        return {"error": 'empty line: expected a JSON object like {"text": "I think", "k": 3}'}
    try:
        req = json.loads(line)
    except RecursionError:
        return {"error": "not JSON: nested too deeply"}
    except ValueError as e:  # JSONDecodeError, or an integer longer than Python's 4300-digit limit
        return {"error": f"not JSON: {str(e)[:200]}"}
    if not isinstance(req, dict) or not isinstance(req.get("text"), str):
        return {"error": 'expected an object like {"text": "I think", "k": 3}'}
    unknown = sorted(set(req) - {"text", "k", "phrase", "prefetch"})
    if unknown:
        return {"error": f"unknown key(s) {[u[:40] for u in unknown[:5]]}; allowed: text, k, phrase, prefetch"}
    k = req.get("k", 3)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        return {"error": f"k must be an int from 1 to {MAX_K}"}
    phrase = req.get("phrase", True)
    if not isinstance(phrase, bool):
        return {"error": "phrase must be true or false"}
    keys = req.get("prefetch", 0)
    if isinstance(keys, bool) or not isinstance(keys, int) or not 0 <= keys <= MAX_PREFETCH:
        return {"error": f"prefetch must be an int from 0 to {MAX_PREFETCH} (keys to prepare after answering)"}
    t0 = time.perf_counter()
    try:
        sugg = session.suggest(req["text"], k, phrase=phrase)
    except EdgeError as e:
        return {"error": str(e)[:500]}
    except Exception as e:  # a bug must cost one answer, not the loop (and the app's pairing with it)
        return {"error": f"internal error ({type(e).__name__}): {str(e).strip()[:200]}"}
    ms = (time.perf_counter() - t0) * 1e3
    if keys and after is not None:
        after.append(lambda: session.prefetch(req["text"], keys=keys, k=k, phrase=phrase))
    return {"suggestions": [s.as_dict() for s in sugg], "ms": round(ms, 3)}


def encode_answer(ans: dict) -> str:
    """One line of strict JSON (ASCII-escaped: no U+2028 or raw control character can split it)."""
    try:
        return json.dumps(ans, allow_nan=False)
    except ValueError:
        return json.dumps({"error": "the answer held a non-finite number"})


def request_lines(stream=None, limit: int = MAX_LINE_BYTES):
    """stdin split on b"\n" only, as (text or None if longer than ``limit`` bytes).

    Text-mode iteration would also split on \r, \x1c-\x1e, \x85, U+2028...: one request would
    get two answers and an app pairing requests with answers would drift. Undecodable bytes are
    replaced. A line over ``limit`` is skipped without being held in memory."""
    if stream is None:
        stream = getattr(sys.stdin, "buffer", None)
        if stream is None:  # a text stream without bytes underneath (tests): its own text, as UTF-8
            stream = io.BytesIO(sys.stdin.read().encode("utf-8", "replace"))
    while True:
        line = stream.readline(limit + 1)
        if not line:
            return
        if line.endswith(b"\n"):
            yield line[:-1].decode("utf-8", "replace")
        elif len(line) > limit:
            while True:  # discard the rest of the overlong line in bounded pieces
                rest = stream.readline(1 << 16)
                if not rest or rest.endswith(b"\n"):
                    break
            yield None
        else:  # the last line, without a newline
            yield line.decode("utf-8", "replace")


def json_loop(session, stream=None, out=None, idle=None) -> int:
    """One answer line per request line, blank and overlong lines included, in order.
    ``idle()``, if given, runs after each answer's idle-time work (autosave)."""
    out = out or sys.stdout
    for line in request_lines(stream):
        after: list = []
        if line is None:
            ans = {"error": f"line longer than {MAX_LINE_BYTES} bytes: not read"}
        else:
            ans = answer(session, line, after)
        out.write(encode_answer(ans) + "\n")
        out.flush()
        for work in after:  # idle-time work, once the answer is out
            try:
                work()
            except Exception:  # prefetch is an optimisation: its failure must not end the loop
                pass
        if idle is not None:
            idle()
    return 0


def cmd_suggest(args) -> int:
    from .adapt import UserCache, forget

    if args.forget:
        if not args.user_dir:
            raise ValueError("--forget needs --user-dir DIR (the directory whose learned words to delete)")
        print(f"{args.user_dir}: " + ("forgot what was learned" if forget(args.user_dir) else "nothing learned yet"))
        return 0
    if not 1 <= args.k <= MAX_K:
        raise ValueError(f"-k must be from 1 to {MAX_K}, got {args.k}")
    user = UserCache.load(args.user_dir) if args.user_dir else None
    try:
        session = _open(args, user)
    except (TypeError, RuntimeError, OSError) as e:  # a tokenizer file sentencepiece cannot read
        raise ValueError(f"{args.bundle}: cannot open the bundle: {str(e).strip()[:200] or type(e).__name__}") from None
    idle = _autosave(user, args.user_dir) if user is not None else None
    try:
        with _exit_on_signals():  # a closed terminal or a stopped service still saves (finally)
            return _suggest_loop(args, session, idle)
    finally:
        if user is not None:  # what this session learned, for the next one (atomic write)
            user.save(args.user_dir)


def _autosave(user, user_dir, every_s: float | None = None):
    """An ``idle()`` that saves the user cache when it learned something and ``every_s`` passed
    since the last save: a killed session loses at most that much."""
    from .adapt import AUTOSAVE_S

    every_s = AUTOSAVE_S if every_s is None else every_s
    last = {"t": time.monotonic(), "total": user.total}

    def idle() -> None:
        if user.total != last["total"] and time.monotonic() - last["t"] >= every_s:
            user.save(user_dir)
            last["t"], last["total"] = time.monotonic(), user.total

    return idle


class _exit_on_signals:
    """SIGTERM and SIGHUP end the process through SystemExit, so ``finally`` blocks run; the
    handlers before are restored on exit. Only in the main thread (where Python runs handlers)."""

    def __enter__(self):
        import signal
        import threading

        self.saved = {}
        if threading.current_thread() is threading.main_thread():
            for name in ("SIGTERM", "SIGHUP"):
                sig = getattr(signal, name, None)
                if sig is not None:
                    self.saved[sig] = signal.signal(sig, _raise_exit)
        return self

    def __exit__(self, *exc):
        import signal

        for sig, handler in self.saved.items():
            signal.signal(sig, handler)
        return False


def _raise_exit(signum, frame):
    raise SystemExit(128 + signum)


def _suggest_loop(args, session, idle=None) -> int:
    if args.json:
        return json_loop(session, idle=idle)
    if sys.stdin.isatty() and sys.stdout.isatty():
        return _interactive(session, args.k, idle)
    from .runner import EdgeError

    for text in request_lines():  # line mode: the suggestions for each line as typed so far
        if text is None:
            print(f"(line longer than {MAX_LINE_BYTES} bytes skipped)", flush=True)
            continue
        try:
            sugg = session.suggest(text, args.k)
        except EdgeError as e:
            print(f"{text[:60]!r}: error: {e}", flush=True)
            continue
        print(f"{text!r}: " + ("  ".join(_fmt(s) for s in sugg) or "(none)"), flush=True)
        if idle is not None:
            idle()
    return 0


def _fmt(s) -> str:
    mark = {"next": "", "completion": "", "phrase": "» "}[s.kind]
    return f"{mark}{s.text} ({s.p_given_typed:.2f})"  # how sure, given the letters typed so far


def _interactive(session, k: int, idle=None) -> int:
    from .terminal import run

    return run(session, k, idle)


# ---------------------------------------------------------------------------- eval-suggest
def cmd_eval(args) -> int:
    from rnnkit.core.atomic import atomic_write_json
    from rnnkit.core.text.kneser_ney import KneserNeyTrigram

    from .eval import kn_eval, lstm_eval, phrase_eval, reference_lexicon

    if not os.path.isfile(args.text):
        raise FileNotFoundError(f"{args.text}: no such text file")
    # utf-8-sig: a byte-order mark (Windows editors write one) is not a character of the text
    with open(args.text, encoding="utf-8-sig", errors="replace") as f:
        if args.spread:
            text = spread_lines(f.read(), args.max_chars)
        else:
            text = f.read(args.max_chars if args.max_chars > 0 else -1)
    if not text.strip():
        raise ValueError(f"{args.text}: empty text")
    session = _open(args)
    report: dict = {"bundle": str(args.bundle), "text": str(args.text), "chars": len(text),
                    "precision": args.precision or "bundle default", "threads": args.threads}
    t0 = time.time()
    kn = None
    lexicons = [_read_words(path) for path in (args.reference_words or [])]
    if args.train_text:
        if not os.path.isfile(args.train_text):
            raise FileNotFoundError(f"{args.train_text}: no such training text")
        with open(args.train_text, encoding="utf-8-sig", errors="replace") as f:
            kn = KneserNeyTrigram.train(f)
        lexicons.append(kn.vocab)
    is_word = reference_lexicon(*lexicons) if lexicons else None
    report["reference_words"] = {"files": list(args.reference_words or []), "train_text": bool(args.train_text)}
    report["lstm"] = lstm_eval(session, text, is_word=is_word)
    if args.prefetch > 0:  # the same typing with idle-time prefetch: only the latency changes
        with_prefetch = lstm_eval(session, text, prefetch=args.prefetch)
        report["lstm_prefetch"] = {key: with_prefetch[key] for key in (
            "latency_ms_p50", "latency_ms_p99", "cpu_ms_p50", "cpu_ms_p99", "graph_calls_per_keystroke",
            "no_call_keystrokes", "prefetch_keys", "idle_ms_p50", "idle_ms_p99")}
    if args.adapt:
        from .adapt import UserCache
        from .neural_cache import WordCache

        session.user = UserCache()
        report["lstm_adapt"] = lstm_eval(session, text, is_word=is_word)
        session.user, session.neural = UserCache(), WordCache(session.runner.meta.hidden_size)
        report["lstm_adapt_neural"] = lstm_eval(session, text, is_word=is_word)
        session.user = session.neural = None
    report["phrase"] = phrase_eval(session, text, every=max(args.phrase_every, 1))
    if kn is not None:
        report["kneser_ney"] = kn_eval(kn, text)
        report["kneser_ney"]["perplexity"] = kn.perplexity(text.splitlines())["perplexity"]
    report["seconds"] = round(time.time() - t0, 1)
    _print_report(report)
    if args.out:
        atomic_write_json(args.out, report)
    return 0


def _read_words(path: str) -> list[str]:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such word list")
    with open(path, encoding="utf-8-sig", errors="replace") as f:
        return [w for w in (line.strip() for line in f) if w]


def spread_lines(text: str, max_chars: int) -> str:
    """Whole lines at evenly spaced positions of ``text``, in order, about ``max_chars`` in all."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if max_chars <= 0 or not lines:
        return "\n".join(lines) + "\n"
    avg = sum(len(ln) + 1 for ln in lines) / len(lines)
    n = max(1, min(len(lines), int(max_chars / avg)))
    picked = [lines[int(i * len(lines) / n)] for i in range(n)]
    return "\n".join(picked) + "\n"


def _print_report(r: dict) -> None:
    rows = [("next-word top-1", "next_word_top1"), ("next-word top-3", "next_word_top3"),
            ("completion top-3 after 1 char", "completion_1_top3"),
            ("completion top-3 after 2 chars", "completion_2_top3"),
            ("completion top-3 after 3 chars", "completion_3_top3"),
            ("keystroke savings (a tap inserts the space)", "keystroke_savings"),
            ("keystroke savings (every space typed)", "keystroke_savings_space_typed"),
            ("latency p50 (ms/keystroke)", "latency_ms_p50"), ("latency p99 (ms/keystroke)", "latency_ms_p99"),
            ("cpu time p50 (ms/keystroke)", "cpu_ms_p50"), ("cpu time p99 (ms/keystroke)", "cpu_ms_p99")]
    kn = r.get("kneser_ney", {})
    cols = [("LSTM", r["lstm"])] + ([("+adapt", r["lstm_adapt"])] if "lstm_adapt" in r else []) + (
        [("+neural", r["lstm_adapt_neural"])] if "lstm_adapt_neural" in r else []) + (
        [("KN-3", kn)] if kn else [])
    print(f"{r['chars']} characters, {r['lstm']['words']} scored words, {r['lstm']['keystrokes']} keystrokes")
    print(f"{'':44s}" + "".join(f"{name:>10s}" for name, _ in cols))
    for label, key in rows:
        cells = []
        for _, part in cols:
            v = part.get(key, math.nan)
            if v != v:  # not measured for this column (the trigram has no per-thread CPU time)
                cells.append(f"{'-':>10s}")
            else:
                cells.append(f"{100 * v:9.1f}%" if "ms_" not in key else f"{v:10.3f}")
        print(f"{label:44s}" + "".join(cells))
    lstm = r["lstm"]
    if "not_words" in lstm:
        print(f"offered strings that are not words of the reference lexicon: {100 * lstm['not_words']:.2f}% "
              f"(next word {100 * lstm['not_words_next']:.2f}% of {lstm['offered_next']}, completions "
              f"{100 * lstm['not_words_completion']:.2f}% of {lstm['offered_completion']}); "
              f"{lstm['completions_offered_per_keystroke']:.2f} completions offered per keystroke inside words")
    pf = r.get("lstm_prefetch")
    if pf:
        print(f"with idle-time prefetch of {pf['prefetch_keys']} likely keys between keystrokes: latency "
              f"p50 {pf['latency_ms_p50']:.3f} / p99 {pf['latency_ms_p99']:.3f} ms (cpu {pf['cpu_ms_p50']:.3f} / "
              f"{pf['cpu_ms_p99']:.3f}); {100 * pf['no_call_keystrokes']:.1f}% of keystrokes make no model call "
              f"(without: {100 * r['lstm']['no_call_keystrokes']:.1f}%); idle work p50 {pf['idle_ms_p50']:.2f} / "
              f"p99 {pf['idle_ms_p99']:.2f} ms per keystroke")
    print("Smart Compose (phrases at word starts):")
    for row in r["phrase"]["thresholds"]:
        prec = row["precision"]  # nan where nothing triggered: no precision to show
        print(f"  P >= {row['threshold']:4.2f}: trigger {100 * row['trigger_rate']:5.1f}%  "
              f"exact match {100 * row['exact_match_rate']:5.1f}%  "
              + (f"(precision {100 * prec:5.1f}%)" if prec == prec else "(nothing offered)"))
    for row in r["phrase"].get("inside_words", []):
        prec = row["precision"]
        print(f"  after {row['typed']} letter{'s' if row['typed'] > 1 else ''} of the word, at the session's bar "
              f"P >= {row['min_prob']:.2f} given them: trigger {100 * row['trigger_rate']:5.1f}%  "
              + (f"(precision {100 * prec:5.1f}%)" if prec == prec else "(nothing offered)"))
