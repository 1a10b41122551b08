"""``rnnkit train`` (a recipe, a size, checked overrides, your own files) and ``rnnkit sample``.

    rnnkit train --list
    rnnkit train --recipe char-shakespeare --size smoke
    rnnkit train --recipe suggest-en --set hidden_size=640 --set train.max_minutes=30 --quiet
    rnnkit train --recipe char-shakespeare --train my.txt [--valid v.txt] --run-dir runs/mine
    rnnkit train --resume runs/suggest-en [--set max_minutes=20]
    rnnkit sample runs/char-shakespeare --prompt "ROMEO:" --temperature 0.8 --length 400

A run directory holds ``recipe.json`` (the resolved recipe), the tokenizer (trained on the
train split or on ``--train``), everything the trainer writes (core/trainer.py) and, from the
task's ``finalize``, ``results.json`` / ``samples.txt``.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

DEFAULT_RUNS = Path("runs")


def register(subparsers) -> None:
    p = subparsers.add_parser("train", help="train a recipe (rnnkit train --list shows them)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
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
                   help="your own validation file (default: the last 5%% of --train's lines)")
    p.add_argument("--run-dir", help="where the run goes (default runs/<recipe>[-smoke])")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its latest checkpoint")
    p.add_argument("--device", default=None, help="auto | cpu | cuda | cuda:N | mps (default: the recipe's, auto)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--quiet", action="store_true", help="log lines instead of a progress bar (for nohup logs)")
    p.set_defaults(func=run_train)

    s = subparsers.add_parser("sample", help="stream text from a trained language model run")
    s.add_argument("run_dir", help="a run directory made by `rnnkit train`")
    s.add_argument("--prompt", default="", help="text to continue (default: start a new line)")
    s.add_argument("--length", type=int, default=300, help="tokens to generate (default 300)")
    s.add_argument("--temperature", type=float, default=0.8)
    s.add_argument("--top-k", type=int, default=0, help="keep the k most likely tokens (0: all)")
    s.add_argument("--top-p", type=float, default=0.95, help="nucleus sampling mass in (0, 1]")
    s.add_argument("--seed", type=int, default=None, help="fixed seed: the same text every time")
    s.add_argument("--greedy", action="store_true", help="always take the most likely token")
    s.set_defaults(func=run_sample)


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
    for item in args.set:
        parts += ["--set", item]
    parts += (["--device", args.device] if args.device else []) + (["--threads", str(args.threads)] if args.threads else [])
    return shlex.join(parts + (["--quiet"] if args.quiet else []))


def _default_run_dir(name: str, size: str, user: dict) -> Path:
    suffix = "" if size == "full" else f"-{size}"
    if "data.train_file" in user:
        suffix = f"-{Path(user['data.train_file']).stem}{suffix}"
    return DEFAULT_RUNS / f"{name}{suffix}"


def run_train(args) -> int:
    import torch

    from . import recipes as R
    from .config import from_dict, parse_overrides

    if args.list:
        for name in R.list_recipes():
            print(f"{name:18s} {R.read_recipe(name).get('description', '')}")
        return 0
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    overrides = parse_overrides(args.set)
    if args.resume:
        run_dir = Path(args.resume)
        recipe = R.load_run_recipe(run_dir)
        if args.recipe and args.recipe != recipe["name"]:
            raise ValueError(f"{run_dir} is a {recipe['name']!r} run, not {args.recipe!r}")
        allowed = R.allowed_keys(R.read_recipe(recipe["name"]))["train"]
        for key, value in overrides.items():  # a resumed run may change its budget, not its model or data
            field = key.split(".", 1)[1] if key.startswith("train.") else key
            if field not in allowed:
                raise ValueError(f"--resume accepts train settings only; {key!r} is not one of: {', '.join(allowed)}")
            recipe["train"][field] = value
    else:
        if not args.recipe:
            raise ValueError(f"--recipe NAME is required; recipes: {', '.join(R.list_recipes())}")
        user = user_data_overrides(args)
        recipe = R.resolve_recipe(args.recipe, args.size, {**overrides, **user})
        run_dir = Path(args.run_dir) if args.run_dir else _default_run_dir(args.recipe, args.size, user)
        used = [n for n in ("recipe.json", "tokenizer.model", "tokenizer.json", "checkpoints") if (run_dir / n).exists()]
        if used:
            raise ValueError(f"{run_dir} already holds a run ({', '.join(used)}): continue it with "
                             f"--resume {run_dir}, or pick another --run-dir")
        run_dir.mkdir(parents=True, exist_ok=True)

    from .trainer import TrainConfig, train

    model, task, tokenizer = R.build(recipe, run_dir)
    recipe["commands"] = [*recipe.get("commands", []), command_line(args, run_dir)]
    R.save_recipe(recipe, run_dir)  # after a successful build; on resume: the budget it now runs under
    settings = {**recipe["train"], "run_dir": str(run_dir), "quiet": bool(args.quiet or recipe["train"].get("quiet"))}
    if args.device:
        settings["device"] = args.device
    cfg = from_dict(TrainConfig, settings)
    result = train(model, task, cfg, resume=bool(args.resume))
    if int(os.environ.get("RANK", "0")) != 0:
        return 0  # under torchrun only rank 0 reports and scores the best model
    print(f"{recipe['name']}: {result.stop_reason} after {result.steps} steps, {result.wall_seconds:.0f}s; "
          f"best {result.metric} {result.best_metric}", flush=True)
    if hasattr(task, "finalize") and result.stop_reason != "paused":
        from . import registry

        best = registry.load(run_dir / "model")
        final = task.finalize(best, run_dir)
        shown = {k: round(v, 4) for k, v in final.items() if isinstance(v, float)}
        print(f"final (best model): {shown}", flush=True)
    print(f"run directory: {run_dir}", flush=True)
    return 0


def run_sample(args) -> int:
    from . import registry
    from .sampling import generate
    from .tasks_lm import decode_continuation, start_ids
    from .tokenizers import load_tokenizer

    run_dir = Path(args.run_dir)
    if not (run_dir / "model").is_dir():
        raise FileNotFoundError(f"{run_dir}/model not found: give a run directory made by `rnnkit train`")
    record = registry.read_record(run_dir / "model")
    if record["kind"] != "lm":
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
    for tid in generate(model, ids, args.length, temperature=args.temperature if not args.greedy else 1.0,
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
