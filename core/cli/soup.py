"""Model soups: one model whose weights are the mean of several fine-tuned runs' weights.

Wortsman et al. 2022 ("Model soups: averaging weights of multiple fine-tuned models improves
accuracy without increasing inference time"): runs fine-tuned from the same pretrained weights
land in one basin, so their mean is a model too -- often a better one, at the cost of one. The
*greedy* soup ranks the runs by their validation metric and adds each one only if the soup's
validation metric does not get worse; the test split is never looked at to choose.

    rnnkit soup runs/sent-a runs/sent-b runs/sent-c --out runs/sent-soup
    rnnkit export runs/sent-soup --out models/sentiment-mr --int8 --int8-only --eval-task

The runs must share the model configuration and the tokenizer (same file), and should start from the
same weights (one pretrained model fine-tuned several ways, or forks of one run: ``rnnkit train
--pause-at-step N``, copies of the run resumed with their own ``train.seed``): two taggers
trained from different random initialisations average to a broken model (CoNLL valid F1 92 and 92 ->
49), which the greedy check then leaves out. The soup is written
as a run directory (``model/``, the recipe, the tokenizer, ``results.json`` with validation and
test figures from the task's ``finalize``, ``soup.json`` saying who went in and why), so
``rnnkit export`` and ``rnnkit eval`` take it like any run.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Callable, Sequence

import torch

from rnnkit.core.atomic import atomic_write_json, sha256_file
from rnnkit.core.models import registry
from rnnkit.core.train.run_log import append_jsonl, write_best

# What a run directory holds that is not the soup's to copy: the trainer's own record of one run.
RUN_ONLY = {"metrics.jsonl", "best.json", "results.json", "loss.png", "samples.txt", "checkpoints", "model",
            "model_last", "soup.json"}


def _same_kind(runs: Sequence[Path]) -> None:
    first = registry.read_record(runs[0] / "model")
    for r in runs[1:]:
        rec = registry.read_record(r / "model")
        if (rec["kind"], rec["config"]) != (first["kind"], first["config"]):
            raise ValueError(f"{r} is a different model from {runs[0]} (kind or configuration differ): "
                             "only runs of one architecture can be averaged")
    from rnnkit.export.bundle import find_tokenizer

    toks = [find_tokenizer(r) for r in runs]
    shas = {sha256_file(t) if t else None for t in toks}
    if len(shas) > 1:
        raise ValueError("the runs have different tokenizers (" + ", ".join(str(t) for t in toks) + "): their "
                         "token ids mean different things, so their weights cannot be averaged")


def average(models: Sequence[torch.nn.Module]) -> dict[str, torch.Tensor]:
    """The mean of the models' floating-point weights (other buffers: the first model's)."""
    states = [m.state_dict() for m in models]
    out = {}
    for k, v in states[0].items():
        out[k] = (sum(s[k].double() for s in states) / len(states)).to(v.dtype) if v.is_floating_point() else v
    return out


def soup(runs: Sequence[str | Path], out: str | Path, greedy: bool = True,
         log: Callable[[str], None] = print) -> dict:
    """Average ``runs``' best models into the run directory ``out``; -> the ``soup.json`` record."""
    from rnnkit.core import recipes

    runs, out = [Path(r) for r in runs], Path(out)
    if len(runs) < 2:
        raise ValueError("a soup needs at least two runs")
    for r in runs:
        if not (r / "model").is_dir() or not (r / "recipe.json").is_file():
            raise FileNotFoundError(f"{r}: not a run directory (model/ and recipe.json)")
    if out.exists() and any(out.iterdir()) and not (out / "soup.json").is_file():
        raise FileExistsError(f"{out} exists and is not an earlier soup: refusing to write into it")
    _same_kind(runs)
    seen = [str(r) for r in runs if recipes.load_run_recipe(r)["data"].get("train_on_valid")]
    if greedy and seen:  # the greedy rule chooses on validation: rows these runs trained on
        raise ValueError(f"{', '.join(seen)}: trained on the validation split (data.train_on_valid), so "
                         f"validation cannot choose what joins the soup; soup the held-out runs, or pass --uniform")
    recipe = recipes.load_run_recipe(runs[0])
    torch.manual_seed(0)
    _, task, _ = recipes.build(recipe, runs[0])  # the first run's tokenizer and splits
    from rnnkit.export.build_bundle import refuse_non_finite

    models = [registry.load(r / "model").eval() for r in runs]
    for r, m in zip(runs, models):  # a NaN weight would poison every average it joined
        refuse_non_finite(m, r / "model", doing="average it")
    metric, higher = task.metric, task.metric_mode == "max"

    def score(model) -> float:
        return float(task.evaluate(model)[metric])

    def better_or_equal(a: float, b: float) -> bool:
        return a >= b if higher else a <= b

    scores = [score(m) for m in models]
    for r, s in zip(runs, scores):
        log(f"{r}: {metric} {s:.4f}")
    broken = [str(r) for r, s in zip(runs, scores) if not math.isfinite(s)]
    if broken:
        raise ValueError(f"{', '.join(broken)}: validation {metric} is not a number; leave these runs out")
    order = sorted(range(len(runs)), key=lambda i: -scores[i] if higher else scores[i])
    soup_model = registry.load(runs[0] / "model").eval()
    members, best, tried = [order[0]], scores[order[0]], []
    if greedy:
        for i in order[1:]:
            soup_model.load_state_dict(average([models[j] for j in members + [i]]))
            s = score(soup_model)
            kept = math.isfinite(s) and better_or_equal(s, best)
            tried.append({"run": str(runs[i]), metric: s, "kept": kept})
            log(f"  + {runs[i]}: {metric} {s:.4f} {'kept' if kept else 'left out'}")
            if kept:
                members, best = members + [i], s
    else:
        members = order
    soup_model.load_state_dict(average([models[j] for j in members]))
    evaluation = task.evaluate(soup_model)
    best = float(evaluation[metric])
    log(f"soup of {len(members)} of {len(runs)} runs: {metric} {best:.4f} (best single run {scores[order[0]]:.4f})")

    out.mkdir(parents=True, exist_ok=True)
    for f in runs[0].iterdir():  # recipe, tokenizer, vocabularies, lexicon, config.json
        if f.name not in RUN_ONLY and f.is_file():
            shutil.copy2(f, out / f.name)
    if (out / "metrics.jsonl").exists():  # an earlier soup here: this one replaces its record
        (out / "metrics.jsonl").unlink()
    registry.save(soup_model, out / "model")
    # The soup's one evaluation is what its model/ was chosen at (as a run's best.json says), so
    # bundles and cards read a soup like any run.
    record_eval = {"kind": "eval", "step": 0, **evaluation}
    append_jsonl(out / "metrics.jsonl", record_eval)
    write_best(out, metric, task.metric_mode, record_eval)
    record = {"method": "greedy" if greedy else "uniform", "metric": metric, "mode": task.metric_mode,
              "runs": [{"run": str(r), metric: s} for r, s in zip(runs, scores)], "tried": tried,
              "members": [str(runs[j]) for j in members], f"soup_{metric}": best,
              "reference": "Wortsman et al. 2022, Model soups (greedy soup: chosen on validation only)"}
    atomic_write_json(out / "soup.json", record)
    config_path = out / "config.json"  # the first run's (its task record is what export reads), marked as a soup
    config = json.loads(config_path.read_text(encoding="utf-8")) if config_path.is_file() else {}
    atomic_write_json(config_path, {**config, "soup": {"members": record["members"], "method": record["method"]}})
    final = task.finalize(soup_model, out)
    log(json.dumps({k: v for k, v in final.items() if isinstance(v, (int, float)) and k != "params"}))
    return record
