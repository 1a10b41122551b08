"""``rnnkit predict BUNDLE``: run any bundle on your input, torch-free.

    rnnkit predict models/char-shakespeare --text "ROMEO:" --length 200 --seed 1   continue text
    rnnkit predict models/sentiment-mr --file reviews.txt      one answer per line: label, p, score
    rnnkit predict models/ner-conll --text "Angela Merkel met Obama in Paris."     entities
    rnnkit predict models/translate-en-de --text "Love your neighbor." --beam 4    translation
    rnnkit predict models/timeseries --file airline.csv --horizon 24                next values
    echo '{"text": "a dull film"}' | rnnkit predict models/sentiment-mr --json

Input: ``--text``, ``--file`` or stdin. Text models answer each line of a file or of stdin; a
forecaster reads the whole input as one series (numbers, or CSV ``date,value``). ``--json`` prints
each answer as one JSON object a line (errors as ``{"error": ...}``); without --text / --file it
reads JSON requests on stdin, one a line, one answer out per line, in order (as ``rnnkit suggest
--json``): ``{"text": ...}`` (``{"history": [...]}`` for a forecaster, ``{"tokens": [...]}`` for a
tagger) with the options of its kind by name (``"length"``, ``"beam"``, ``"horizon"``, ...).
Imports only numpy, onnxruntime and sentencepiece.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

# kind -> request keys besides the input, each (type, low, high); the CLI flags set their defaults
OPTIONS: dict[str, dict[str, tuple]] = {
    "lm": {"length": (int, 1, 1000), "temperature": (float, 0.05, 5.0), "top_k": (int, 0, 100_000),
           "top_p": (float, 0.01, 1.0), "seed": (int, 0, 2**32 - 1), "greedy": (bool, 0, 1)},
    "classifier": {},
    "seq2seq": {"beam": (int, 1, 16)},
    "tagger": {},
    "forecaster": {"horizon": (int, 1, 520), "series": (str, 1, 100), "phase": (int, 0, 10_000)},
}
INPUTS = {"forecaster": ("history", "text"), "tagger": ("text", "tokens")}


def resolve(path: str) -> str:
    """``models/<name>`` is found beside the installed package too (a fresh clone's shipped bundles)."""
    if not os.path.isdir(path) and Path(path).parts[:1] == ("models",):
        import rnnkit

        shipped = Path(rnnkit.__file__).resolve().parent / path
        if shipped.is_dir():
            return str(shipped)
    return path


def register(subparsers) -> None:
    p = subparsers.add_parser("predict", help="run any bundle on your text or series (torch-free)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bundle", help="a bundle directory (rnnkit export RUN --out BUNDLE), e.g. models/ner-conll")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--text", help="the input (default: --file, else stdin)")
    src.add_argument("--file", help="a UTF-8 file: one input a line (a forecaster: the whole series)")
    p.add_argument("--json", action="store_true", help="one JSON request a line in, one JSON answer out")
    p.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads (default 1)")
    g = p.add_argument_group("language models")
    g.add_argument("--length", type=int, default=100, help="tokens to generate (default 100)")
    g.add_argument("--temperature", type=float, default=0.8, help="sampling temperature (default 0.8)")
    g.add_argument("--top-k", dest="top_k", type=int, default=0, help="keep the k likeliest tokens (0: all)")
    g.add_argument("--top-p", dest="top_p", type=float, default=0.95, help="nucleus mass (default 0.95)")
    g.add_argument("--seed", type=int, default=None, help="fixed seed: the same text every time")
    g.add_argument("--greedy", action="store_true", help="always the likeliest token")
    p.add_argument("--beam", type=int, default=4, help="translation beam width (default 4)")
    f = p.add_argument_group("forecasters")
    f.add_argument("--horizon", type=int, default=None, help="values to forecast (default: one season)")
    f.add_argument("--series", default=None,
                   help="a series the model was trained on (its period, log and normalisation); default: "
                        "the first one's period and log, normalised by the history itself")
    f.add_argument("--phase", type=int, default=0, help="position of the first value in its season (default 0)")
    p.set_defaults(func=run)


def _check(kind: str, key: str, value):
    typ, lo, hi = OPTIONS[kind][key]
    if typ is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{key} must be true or false")
        return value
    if typ is str:
        if not isinstance(value, str) or not lo <= len(value) <= hi:
            raise ValueError(f"{key} must be a name")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (typ is int and value != int(value)):
        raise ValueError(f"{key} must be {'an integer' if typ is int else 'a number'} from {lo:g} to {hi:g}")
    if not lo <= value <= hi:
        raise ValueError(f"{key} must be from {lo:g} to {hi:g}, got {value!r}")
    return typ(value)


def answer(engine, kind: str, req: dict, defaults: dict) -> dict:
    """One request -> one answer (the engine's dict, plus "ms"); a mistake raises ValueError."""
    inputs = INPUTS.get(kind, ("text",))
    unknown = sorted(set(req) - set(inputs) - set(OPTIONS[kind]))
    if unknown:
        raise ValueError(f"unknown key(s) {[u[:40] for u in unknown[:5]]}; allowed: "
                         f"{', '.join([*inputs, *OPTIONS[kind]])}")
    opts = {k: v for k, v in defaults.items() if v is not None}
    opts.update({k: _check(kind, k, v) for k, v in req.items() if k in OPTIONS[kind] and v is not None})
    t0 = time.perf_counter()
    if kind == "forecaster":
        history = req.get("history", req.get("text"))
        if not isinstance(history, (str, list)) or (isinstance(history, list) and not all(
                isinstance(x, (int, float)) and not isinstance(x, bool) for x in history)):
            raise ValueError('expected {"history": [numbers]} or {"text": "112 118 132 ..."}')
        out = engine.predict(history, **opts)
    elif kind == "tagger" and "tokens" in req:
        toks = req["tokens"]
        if not isinstance(toks, list) or not all(isinstance(t, str) for t in toks):
            raise ValueError('"tokens" must be a list of strings')
        out = engine.predict_tokens(toks)
        for e in out["entities"]:
            e["start"], e["end"] = e.pop("first"), e.pop("last") + 1  # token offsets
    else:
        if not isinstance(req.get("text"), str):
            raise ValueError('expected an object like {"text": "..."}')
        out = engine.predict(req["text"], **opts)
    return {**out, "ms": round((time.perf_counter() - t0) * 1e3, 3)}


def json_answer(engine, kind: str, line: str | None, defaults: dict) -> dict:
    """One --json request line -> one answer object (errors are answers, never exceptions)."""
    import json

    from .cli import MAX_LINE_BYTES

    if line is None:
        return {"error": f"line longer than {MAX_LINE_BYTES} bytes: not read"}
    if not line.strip():
        return {"error": 'empty line: expected a JSON object like {"text": "..."}'}
    try:
        req = json.loads(line)
    except RecursionError:
        return {"error": "not JSON: nested too deeply"}
    except ValueError as e:
        return {"error": f"not JSON: {str(e)[:200]}"}
    if not isinstance(req, dict):
        return {"error": 'expected a JSON object like {"text": "..."}'}
    try:
        return answer(engine, kind, req, defaults)
    except ValueError as e:  # InputError, BundleError, a bad option: one line
        return {"error": str(e).strip().splitlines()[0][:500] if str(e).strip() else type(e).__name__}
    except Exception as e:  # a bug costs one answer, not the loop
        return {"error": f"internal error ({type(e).__name__}): {str(e).strip()[:200]}"}


def plain(kind: str, out: dict) -> str:
    """An answer as a person reads it (one line, except generated text)."""
    if kind == "lm":
        return out["text"]
    if kind == "classifier":
        return f"{out['label']}\tp(positive)={out['positive']:.3f}\tscore={out['score']:+.3f}"
    if kind == "seq2seq":
        return out["translation"]
    if kind == "tagger":
        words, tags = out["tokens"], out["tags"]
        return " ".join(w if t == "O" else f"{w}/{t}" for w, t in zip(words, tags))
    return "\n".join(f"{v:.6g}" for v in out["forecast"])


def _defaults(args, kind: str) -> dict:
    """The options given on the command line (0 is a value: --seed 0, --length 0 must not be dropped;
    an unset flag is None, an unset switch False)."""
    return {k: v for k in OPTIONS[kind] if (v := getattr(args, k, None)) is not None and v is not False}


def _inputs(args, kind: str, keep_blank: bool):
    """Requests from --text / --file / stdin: a forecaster's whole input is one series; text kinds
    answer each line (the bytes split on \\n only; blank lines kept only when ``keep_blank``)."""
    from .cli import MAX_LINE_BYTES, request_lines

    if kind == "forecaster":
        if args.text is not None:
            yield {"history": args.text}
        elif args.file:
            yield {"history": Path(args.file).read_text(encoding="utf-8-sig")}
        else:
            yield {"history": sys.stdin.read()}
        return
    if args.text is not None:
        yield {"text": args.text}
        return
    if args.file:
        with open(args.file, "rb") as f:
            lines = list(request_lines(f))
    else:
        lines = request_lines()
    for n, line in enumerate(lines):
        if line is None:
            yield ValueError(f"line longer than {MAX_LINE_BYTES} bytes: not read")
            continue
        line = line.removesuffix("\r")  # a Windows line end is not part of the text
        if n == 0:
            line = line.removeprefix("\ufeff")  # nor an editor's byte-order mark
        if line.strip() or keep_blank:
            yield {"text": line}


def run(args) -> int:
    from .cli import encode_answer, request_lines
    from .predict import open_predictor

    if args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    engine = open_predictor(resolve(args.bundle), threads=args.threads)
    kind = engine.bundle.kind
    defaults = _defaults(args, kind)
    for key, value in defaults.items():
        _check(kind, key, value)
    if args.json and args.text is None and not args.file:  # JSON requests on stdin
        for line in request_lines():
            print(encode_answer(json_answer(engine, kind, line, defaults)), flush=True)
        return 0
    failed = 0
    for req in _inputs(args, kind, keep_blank=args.json):
        try:
            if isinstance(req, Exception):
                raise req
            if args.json and not req.get("text", "x").strip():
                raise ValueError("empty line")
            out = answer(engine, kind, req, defaults)
        except ValueError as e:  # InputError, BundleError, a bad option: one line, then the next input
            failed += 1
            msg = str(e).strip().splitlines()[0][:500] if str(e).strip() else type(e).__name__
            if args.json:
                print(encode_answer({"error": msg}), flush=True)
            else:
                print(f"rnnkit predict: {msg}", file=sys.stderr, flush=True)
            continue
        print(encode_answer(out) if args.json else plain(kind, out), flush=True)
    return 1 if failed else 0
