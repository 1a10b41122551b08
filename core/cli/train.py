"""``rnnkit train`` (a recipe, a size, checked overrides, your own files) and ``rnnkit generate`` (``sample``).

    rnnkit train --list
    rnnkit train --recipe char-shakespeare --size smoke
    rnnkit train --recipe suggest-en --set hidden_size=640 --set train.max_minutes=30 --quiet
    rnnkit train --recipe char-shakespeare --train my.txt [--valid v.txt] --run-dir runs/mine
    rnnkit train --resume runs/suggest-en [--set max_minutes=20]   (--set: this call only)
    rnnkit generate runs/char-shakespeare --prompt "ROMEO:" --temperature 0.8 --length 400   (alias: sample)

A run directory holds ``recipe.json`` (the resolved recipe), the tokenizer (trained on the
train split or on ``--train``), everything the trainer writes (core/train/trainer.py) and, from the
task's ``finalize``, ``results.json`` / ``samples.txt``.
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import sys
from pathlib import Path

DEFAULT_RUNS = Path("runs")


def register(subparsers) -> None:
    p = subparsers.add_parser("train", help="train a recipe (rnnkit train --list shows them)",
                              description=__doc__.replace("``", ""), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", help="recipe name (see --list)")
    p.add_argument("--list", action="store_true", help="list the recipes and exit")
    p.add_argument("--size", choices=("smoke", "full"), default="full",
                   help="smoke: seconds, to check the path; full: the real run (default)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe key: hidden_size=640, train.lr=1e-3, data.bptt=70 (repeatable)")
    p.add_argument("--data", metavar="PATH",
                   help="your own data: a text file, or a folder with train.txt [valid.txt test.txt]")
    p.add_argument("--train", dest="train_file", metavar="FILE", help="your own training file (UTF-8 text)")
    p.add_argument("--valid", dest="valid_file", metavar="FILE",
                   help="your own validation file (default: language models hold out the last 5%% of --train's "
                        "lines, classifiers and taggers a seeded random 10%%, translation 5%%; a warning below 20 "
                        "lines for a language model, 100 rows for the other tasks)")
    p.add_argument("--run-dir", help="where the run goes (default runs/<recipe>[-smoke])")
    p.add_argument("--resume", metavar="RUN_DIR",
                   help="continue a run from its latest checkpoint (a run that stopped before its first "
                        "checkpoint starts over); --set with --resume changes train settings for this call "
                        "only: recipe.json keeps the run's own")
    p.add_argument("--pause-at-step", type=int, default=None, metavar="N",
                   help="checkpoint and stop once N steps are done; --resume goes on as if never paused. "
                        "To fork a run for a soup: pause it, copy the run directory, resume each copy with "
                        "its own --set train.seed=S, then `rnnkit soup` the copies (they share the weights "
                        "up to step N, so their average is a model)")
    p.add_argument("--tokenizer-from", metavar="RUN_DIR",
                   help="a new run takes this run's tokenizer instead of training one: the same pieces "
                        "(perplexities comparable) and no minutes spent on a SentencePiece")
    p.add_argument("--device", default=None, help="auto | cpu | cuda | cuda:N | mps (default: the recipe's, auto)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--quiet", action="store_true", help="log lines instead of a progress bar (for nohup logs)")
    p.set_defaults(func=run_train)

    m = subparsers.add_parser(
        "soup", help="average the weights of runs fine-tuned from one start (a model soup) into a new run",
        description="Greedy model soup (Wortsman et al. 2022): the runs are ranked by their validation metric "
                    "and each is averaged in only if the soup's validation metric does not get worse; the test "
                    "split is scored once at the end, never used to choose. The runs must share the model "
                    "configuration and tokenizer and start from the same weights (e.g. classifiers fine-tuned from "
                    "one language model, or forks of one run paused with --pause-at-step; runs from different random "
                    "initialisations do not average). The "
                    "soup is a run directory: rnnkit export / eval take it as they take any run.",
        epilog="rnnkit soup runs/sent-a runs/sent-b runs/sent-c --out runs/sent-soup; "
               "rnnkit export runs/sent-soup --out bundles/sentiment --int8 --int8-only --eval-task")
    m.add_argument("runs", nargs="+", metavar="RUN", help="run directories (their best model/ is averaged)")
    m.add_argument("--out", required=True, help="run directory to write the soup into")
    m.add_argument("--uniform", action="store_true", help="average every run instead of choosing greedily")
    m.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    m.set_defaults(func=run_soup)

    s = subparsers.add_parser("generate", aliases=["sample"],
                              help="stream text from a trained language model run (alias: sample)")
    s.add_argument("run_dir", help="a run directory made by `rnnkit train`")
    s.add_argument("--prompt", default="", help="text to continue (default: start a new line)")
    s.add_argument("--length", type=int, default=300, help="tokens to generate (default 300)")
    s.add_argument("--temperature", type=float, default=0.8,
                   help="sampling temperature: below 1 safer and more repetitive, above 1 wilder (default 0.8)")
    s.add_argument("--top-k", type=int, default=0, help="keep the k most likely tokens (0: all)")
    s.add_argument("--top-p", type=float, default=0.95, help="nucleus sampling mass in (0, 1]")
    s.add_argument("--seed", type=int, default=None, help="fixed seed: the same text every time")
    s.add_argument("--greedy", action="store_true", help="always take the most likely token")
    s.set_defaults(func=run_sample)


def run_soup(args) -> int:
    import torch

    from rnnkit.core.cli.soup import soup

    torch.set_num_threads(max(1, args.threads))
    soup(args.runs, args.out, greedy=not args.uniform)
    return 0


def user_data_overrides(args) -> dict:
    """--data / --train / --valid -> data.* overrides with absolute paths (checked to exist)."""
    out = {}
    if args.data and (args.train_file or args.valid_file):
        raise ValueError("give either --data PATH or --train/--valid files, not both")
    if args.valid_file and not args.train_file:
        raise ValueError("--valid needs --train")
    if args.data:
        path = Path(args.data)
        if path.is_dir():
            for split in ("train", "valid", "test"):
                if (path / f"{split}.txt").is_file():
                    out[f"data.{split}_file"] = str((path / f"{split}.txt").resolve())
            if "data.train_file" not in out:
                raise FileNotFoundError(f"{path} has no train.txt")
        elif path.is_file():
            out["data.train_file"] = str(path.resolve())
        else:
            raise FileNotFoundError(f"--data {path}: no such file or folder")
    for key, value in (("data.train_file", args.train_file), ("data.valid_file", args.valid_file)):
        if value:
            if not Path(value).is_file():
                raise FileNotFoundError(f"{value}: no such file")
            out[key] = str(Path(value).resolve())
    return out


def command_line(args, run_dir: Path) -> str:
    """The ``rnnkit train`` command that reproduces this call (recorded in recipe.json)."""
    parts = ["rnnkit", "train"]
    if args.resume:
        parts += ["--resume", str(run_dir)]
    else:
        parts += ["--recipe", args.recipe] + (["--size", args.size] if args.size != "full" else [])
        for flag, value in (("--data", args.data), ("--train", args.train_file), ("--valid", args.valid_file)):
            parts += [flag, value] if value else []
        parts += ["--run-dir", str(run_dir)]
        parts += ["--tokenizer-from", args.tokenizer_from] if getattr(args, "tokenizer_from", None) else []
    for item in args.set:
        parts += ["--set", item]
    parts += (["--device", args.device] if args.device else []) + (["--threads", str(args.threads)] if args.threads else [])
    return shlex.join(parts + (["--quiet"] if args.quiet else []))


def _default_run_dir(name: str, size: str, user: dict) -> Path:
    suffix = "" if size == "full" else f"-{size}"
    if "data.train_file" in user:
        suffix = f"-{Path(user['data.train_file']).stem}{suffix}"
    return DEFAULT_RUNS / f"{name}{suffix}"


# What a run directory holds besides recipe.json: removed when a run that never reached its first
# checkpoint is started over (a stale model/ would otherwise pass for the new run's).
RUN_ARTEFACTS = ("config.json", "metrics.jsonl", "best.json", "checkpoints", "model", "model_last", "loss.png", "results.json",
                 "samples.txt", "test_translations.tsv")
TOKENIZER_ARTEFACTS = ("tokenizer.model", "tokenizer.json", "tokenizer_src", "tokenizer_tgt", "tagger_vocab.json")
# Numbers a typo or a paste can make absurd; beyond these, torch fails deep inside a step.
TRAIN_LIMITS = {"lr": 1e6, "weight_decay": 1e6, "momentum": 1e6, "grad_clip": 1e12, "min_lr_ratio": 1e6,
                "plateau_factor": 1e6, "max_minutes": 1e9}


def _has_checkpoint(run_dir: Path) -> bool:
    from rnnkit.core.train.checkpoint import find_latest

    return find_latest(run_dir / "checkpoints") is not None


def _check_values(recipe: dict, run_dir: Path) -> None:
    """Every train and model value has its field's type and a sane size, before anything is
    written: ``lr=abc`` names ``train.lr`` here instead of failing inside the optimizer."""
    from rnnkit.core.config import check_dims, coerce_fields, from_dict
    from rnnkit.core.models.registry import classes
    from rnnkit.core.train.trainer import TrainConfig

    try:
        cfg = from_dict(TrainConfig, {**recipe["train"], "run_dir": str(run_dir)})
    except ValueError as e:
        raise ValueError(f"train setting {e}") from None
    cfg.check()
    for key, limit in TRAIN_LIMITS.items():
        value = getattr(cfg, key)
        if not 0 <= value <= limit or (key == "lr" and value == 0):
            raise ValueError(f"train.{key}={value:g} is out of range: {'(0' if key == 'lr' else '[0'}, {limit:g}]")
    model = {k: v for k, v in recipe["model"].items() if k != "kind"}
    cfg_cls, _ = classes(recipe["model"]["kind"])
    coerce_fields(cfg_cls, model, where="model")
    check_dims(model, "model")
    _check_like_recipe(recipe)


# data keys whose value is a count of something that must exist (0 is no "all" or "off" for them),
# and float keys with a range: checked before anything is written, not at the first evaluation.
_DATA_AT_LEAST_1 = {"batch_size", "batches_per_epoch", "beam", "bptt", "decode_max_len", "eval_batch_size",
                    "max_len", "sample_length", "steps_per_epoch", "window"}
_DATA_RANGE = {"score_weight": (0.0, 1e6), "length_penalty": (0.0, 10.0), "unk_replace": (0.0, 1.0)}


def _check_like_recipe(recipe: dict) -> None:
    """data / tokenizer values keep the JSON type the recipe file gives them (no dataclass there)."""
    from rnnkit.core import recipes as R

    raw = R.read_recipe(recipe["name"])
    for section in ("data", "tokenizer"):
        declared = dict(raw.get(section, {}))
        for size in raw.get("sizes", {}).values():
            declared.update(size.get(section, {}))
        for key, value in recipe[section].items():
            like = declared.get(key)
            if like is None or isinstance(like, str) or value == like:
                continue
            if isinstance(like, bool):
                ok = isinstance(value, bool)
            elif isinstance(like, int):
                ok = isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 1 << 40
            elif isinstance(like, float):
                ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            else:
                ok = isinstance(value, type(like))
            if not ok:
                raise ValueError(f"{section}.{key}={str(value)[:40]!r}: expected a value like {like!r}")
    for key, value in recipe["data"].items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if key in _DATA_AT_LEAST_1 and value < 1:
            raise ValueError(f"data.{key}={value!r}: must be at least 1")
        lo, hi = _DATA_RANGE.get(key, (-math.inf, math.inf))
        if not lo <= value <= hi:
            raise ValueError(f"data.{key}={value!r}: must be from {lo:g} to {hi:g}")


def _writable(run_dir: Path) -> None:
    """One clear error before training if run_dir cannot take files (read-only, full disk)."""
    import tempfile

    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=run_dir, prefix=".write-test-") as f:
            f.write(b"\0" * (1 << 20))  # a checkpoint of a small model; ENOSPC shows here, not at step 500
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        raise ValueError(f"{run_dir}: cannot write the run directory ({e.strerror or e})") from None


def _clear(run_dir: Path, names) -> None:
    import shutil

    for name in names:
        path = run_dir / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def _start_over(run_dir: Path, recipe: dict, old: dict | None) -> None:
    """Make a run directory that never reached a checkpoint ready for a fresh start. The
    tokenizer stays when the data and tokenizer settings are the recorded ones (it is what they
    make, and it can take minutes to train)."""
    same_data = old is not None and all(old.get(k) == recipe.get(k) for k in ("name", "data", "tokenizer"))
    _clear(run_dir, RUN_ARTEFACTS + (() if same_data else TOKENIZER_ARTEFACTS))


def _recorded_recipe(run_dir: Path) -> dict | None:
    from rnnkit.core import recipes as R

    try:
        recipe = R.load_run_recipe(run_dir)
    except (OSError, ValueError):
        return None
    return recipe if isinstance(recipe, dict) else None


def run_train(args) -> int:
    try:
        return _run_train(args)
    except FileNotFoundError:
        raise  # already says which file (the CLI prints it as one line)
    except OSError as e:  # a disk that fills up or a directory made read-only mid-run: one line
        where = e.filename or (args.resume or args.run_dir or "the run directory")
        raise ValueError(f"{where}: {e.strerror or e}; the last checkpoint (if any) is intact") from None


def _take_tokenizer(source: Path, run_dir: Path, resumed: bool) -> None:
    """Copy ``source``'s tokenizer files into a new run's directory (its lexicon is the run's own:
    made from the run's training text)."""
    import shutil

    if resumed:
        raise ValueError("--tokenizer-from is for a new run: a resumed run keeps its own tokenizer")
    found = [source / n for n in TOKENIZER_ARTEFACTS if (source / n).exists()]
    if not found:
        raise ValueError(f"--tokenizer-from {source}: no tokenizer there ({', '.join(TOKENIZER_ARTEFACTS)})")
    run_dir.mkdir(parents=True, exist_ok=True)
    for path in found:
        if path.is_dir():
            shutil.copytree(path, run_dir / path.name, dirs_exist_ok=True)
        else:
            shutil.copy(path, run_dir / path.name)


def _run_train(args) -> int:
    import torch

    from rnnkit.core import recipes as R
    from rnnkit.core.config import parse_overrides

    if args.list:
        for name in R.list_recipes():
            print(f"{name:18s} {R.read_recipe(name).get('description', '')}")
        return 0
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    overrides = parse_overrides(args.set)
    if args.resume:
        run_dir, recipe, run_recipe, restart = _resumed_recipe(args, overrides)
    else:
        run_dir, recipe, restart = _new_recipe(args, overrides)
        run_recipe = recipe
    _check_values(recipe, run_dir)  # types and ranges, before anything is written
    _writable(run_dir)
    if restart:
        old = _recorded_recipe(run_dir) if args.resume is None else run_recipe
        _start_over(run_dir, run_recipe, old)
        if old is not run_recipe and old is not None:  # the directory's history stays with it
            run_recipe["commands"] = [*old.get("commands", []), *run_recipe.get("commands", [])]
    if getattr(args, "tokenizer_from", None):
        _take_tokenizer(Path(args.tokenizer_from), run_dir, resumed=bool(args.resume) and not restart)
    run_recipe["commands"] = [*run_recipe.get("commands", []), command_line(args, run_dir)]
    R.save_recipe(run_recipe, run_dir)  # first: a run killed while building is then restartable or resumable
    return _train_and_report(args, recipe, run_dir, resume=bool(args.resume) and not restart)


def _resumed_recipe(args, overrides: dict):
    """``--resume RUN``: (run_dir, recipe for this call, the run's own recipe, restart?). A resumed
    run may change its train settings (budget, lr) for this call, never its model or data."""
    from rnnkit.core import recipes as R
    from rnnkit.core.tasks.common import split_seed

    run_dir = Path(args.resume)
    recipe = R.load_run_recipe(run_dir)
    if (not isinstance(recipe, dict) or not isinstance(recipe.get("name"), str)
            or not all(isinstance(recipe.get(k), dict) for k in R.SECTIONS)):
        raise ValueError(f"{run_dir / 'recipe.json'}: not a recipe written by `rnnkit train`")
    if args.recipe and args.recipe != recipe.get("name"):
        raise ValueError(f"{run_dir} is a {recipe.get('name')!r} run, not {args.recipe!r}")
    allowed = R.allowed_keys(R.read_recipe(recipe["name"]))["train"]
    call = dict(recipe["train"])
    for key, value in overrides.items():
        field = key.split(".", 1)[1] if key.startswith("train.") else key
        if field not in allowed:
            raise ValueError(f"--resume accepts train settings only; {key!r} is not one of: {', '.join(allowed)}")
        call[field] = value
    # --set with --resume is for this call only: recipe.json keeps the run's own settings, so a
    # plain --resume after a bad override (lr=1e30 -> NaN) is back on the recorded ones.
    restart = not _has_checkpoint(run_dir)
    if restart:
        print(f"note: {run_dir} has no complete checkpoint yet (it stopped before its first one): "
              "starting it over from step 0 with its recorded recipe", file=sys.stderr)
    # The rows held out for validation are chosen by the run's own seed, also when this call
    # sets another train.seed (a fork for a soup): else it would train on its parent's valid rows.
    data = {**recipe["data"], "split_seed": split_seed(recipe)}
    return run_dir, {**recipe, "train": call, "data": data}, recipe, restart


def _new_recipe(args, overrides: dict):
    """A new run: (run_dir, resolved recipe, restart?) -- restart when the directory holds a run
    that stopped before its first checkpoint."""
    from rnnkit.core import recipes as R

    if not args.recipe:
        raise ValueError(f"--recipe NAME is required; recipes: {', '.join(R.list_recipes())}")
    user = user_data_overrides(args)
    recipe = R.resolve_recipe(args.recipe, args.size, {**overrides, **user})
    run_dir = Path(args.run_dir) if args.run_dir else _default_run_dir(args.recipe, args.size, user)
    if _has_checkpoint(run_dir):
        raise ValueError(f"{run_dir} already holds a run with a checkpoint: continue it with "
                         f"--resume {run_dir}, or pick another --run-dir")
    used = [n for n in ("recipe.json", *TOKENIZER_ARTEFACTS, *RUN_ARTEFACTS) if (run_dir / n).exists()]
    if used and not (run_dir / "recipe.json").exists() and not (run_dir / "config.json").exists():
        raise ValueError(f"{run_dir} holds files ({', '.join(used[:4])}) but no rnnkit run: pick another --run-dir")
    if used:
        print(f"note: {run_dir} holds a run that stopped before its first checkpoint: starting it over",
              file=sys.stderr)
    return run_dir, recipe, bool(used)


def _train_and_report(args, recipe: dict, run_dir: Path, resume: bool) -> int:
    """Build, train, and score the best model on the task's own metric (rank 0 only)."""
    from rnnkit.core import recipes as R
    from rnnkit.core.config import from_dict
    from rnnkit.core.train.trainer import TrainConfig, model_kept, train

    if args.pause_at_step is not None and args.pause_at_step < 1:
        raise ValueError(f"--pause-at-step must be >= 1, got {args.pause_at_step}")
    model, task, tokenizer = R.build(recipe, run_dir)
    settings = {**recipe["train"], "run_dir": str(run_dir), "quiet": bool(args.quiet or recipe["train"].get("quiet"))}
    if args.device:
        settings["device"] = args.device
    cfg = from_dict(TrainConfig, settings)
    result = train(model, task, cfg, resume=resume, stop_after_steps=args.pause_at_step)
    if int(os.environ.get("RANK", "0")) != 0:
        return 0  # under torchrun only rank 0 reports and scores the best model
    print(f"{recipe['name']}: {result.stop_reason} after {result.steps} steps, {result.wall_seconds:.0f}s; "
          f"{model_kept(task)} {result.metric} {result.best_metric}", flush=True)
    if hasattr(task, "finalize") and result.stop_reason != "paused":
        from rnnkit.core.models import registry

        best = registry.load(run_dir / "model")
        final = task.finalize(best, run_dir)
        shown = {k: round(v, 4) for k, v in final.items() if isinstance(v, float)}
        print(f"final ({model_kept(task).split(' ')[0]} model): {shown}", flush=True)
    print(f"run directory: {run_dir}", flush=True)
    return 0


def run_sample(args) -> int:
    from rnnkit.core.models import registry
    from rnnkit.core.models.sampling import numpy_step
    from rnnkit.edge.npsample import decode_continuation, generate, start_ids
    from rnnkit.core.text.tokenizers import load_tokenizer

    run_dir = Path(args.run_dir)
    if not (run_dir / "model").is_dir():
        raise FileNotFoundError(f"{run_dir}/model not found: give a run directory made by `rnnkit train`")
    record = registry.read_record(run_dir / "model")
    if record["kind"] not in ("lm", "transformer_lm"):
        raise ValueError(f"sample works on language-model runs; {run_dir} holds a {record['kind']!r} model")
    if args.length < 1:
        raise ValueError(f"--length must be >= 1, got {args.length}")
    if not args.greedy and args.temperature <= 0:
        raise ValueError(f"--temperature must be > 0 (or use --greedy), got {args.temperature}")
    if not 0.0 < args.top_p <= 1.0:
        raise ValueError(f"--top-p must be in (0, 1], got {args.top_p}")
    if args.top_k < 0:
        raise ValueError(f"--top-k must be >= 0, got {args.top_k}")
    model = registry.load(run_dir / "model")
    tok = load_tokenizer(run_dir)
    ids = start_ids(tok, args.prompt)
    if tok.unk_id >= 0 and tok.unk_id in ids[1:]:
        print(f"note: part of the prompt is not in this model's vocabulary (read as {tok.id_to_piece(tok.unk_id)})",
              file=sys.stderr)
    sys.stdout.write(args.prompt)
    shown, new = "", []
    for tid in generate(numpy_step(model), ids, args.length, temperature=args.temperature if not args.greedy else 1.0,
                        top_k=args.top_k, top_p=args.top_p, seed=args.seed, greedy=args.greedy):
        new.append(tid)
        text = decode_continuation(tok, ids, new)
        if text.endswith("\ufffd"):  # half of a multi-byte character: wait for the rest
            continue
        sys.stdout.write(text[len(shown):] if text.startswith(shown) else "\n" + text)
        sys.stdout.flush()
        shown = text
    sys.stdout.write("\n")
    return 0
