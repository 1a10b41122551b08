"""Write docs/RESULTS.md from the run directories that `rnnkit train` left in runs/.

    .venv/bin/python docs/make_results.py [--runs runs] [--out docs/RESULTS.md]

Reads each run's recipe.json (what was trained, the command), config.json (hardware),
metrics.jsonl (curves, wall time, the final line) and results.json / samples.txt (the best
model on valid and test, samples). Copies loss.png to docs/results/<run>-loss.png. For
suggest-en the next-word figures here are the training-time proxy; what a user gets (and the
Kneser-Ney baseline) is measured by `rnnkit eval-suggest` through the typing session
(docs/make_everyday_results.py).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from rnnkit.core.atomic import atomic_write_bytes, atomic_write_text

# recipe -> [(result keys to try, label, bar op, bar, anchor text)]
ANCHORS: dict[str, list[tuple[tuple[str, ...], str, str | None, float | None, str]]] = {
    "char-shakespeare": [
        (("val_loss",), "validation nats/char", "<=", 1.55, "bar 1.55 (issue); char-rnn LSTMs on tiny-shakespeare ~1.4-1.5"),
        (("test_loss",), "test nats/char", None, None, "held-out plays"),
    ],
    "ptb-lm": [
        (("test_ppl",), "test perplexity", "<=", 114.0, "Zaremba et al. 2014: small 114, medium 82.7"),
        (("val_ppl",), "validation perplexity", None, None, "Zaremba small: valid 120.7"),
    ],
    "suggest-en": [
        (("test_ppl",), "test perplexity per piece (8k unigram)", None, None, "-"),
        (("test_next_proxy_top1", "test_next_top1"), "training-time next-word proxy, top-1", None, None,
         "not the typing session's figure: that one, and Kneser-Ney's, are in the Everyday English section"),
        (("test_next_proxy_top3", "test_next_top3"), "training-time next-word proxy, top-3", None, None, "idem"),
    ],
    "sentiment-mr": [
        (("test_acc", "val_acc"), "polarity accuracy (%)", ">=", 77.0, "Kim 2014 CNN 81.5; BiLSTMs ~77-79"),
        (("test_score_mae", "val_score_mae"), "score MAE (score in [-1, 1])", None, None, "-"),
    ],
    "ner-conll": [
        (("test_f1", "val_f1"), "entity F1 (test)", ">=", 80.0, "BiLSTM-CRF + pretrained vectors 90.9"),
    ],
    "translate-en-de": [
        (("test_bleu", "val_bleu"), "sacreBLEU (test)", None, None, "-"),
        (("test_chrf", "val_chrf"), "chrF (test)", None, None, "-"),
    ],
    "timeseries": [
        (("test_rel_rmse",), "RNN RMSE / seasonal-naive RMSE (geo. mean, test)", "<=", 1.0,
         "< 1 beats seasonal-naive"),
        (("test_airline_rnn_1step_mape",), "airline 1-step MAPE % (test)", None, None, "see all figures: snaive, SARIMAX"),
        (("test_co2_rnn_1step_mape",), "co2 1-step MAPE % (test)", None, None, "see all figures: snaive, SARIMAX"),
    ],
    "colors": [
        (("val_mse",), "MSE (RGB units^2)", "<=", 1.0, "test bar MSE < 1"),
    ],
}


HARDWARE_NOTE = "2 shared CPU cores (other jobs running)"  # --hardware-note on another machine


def read_jsonl(path: Path) -> list[dict]:
    out = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                pass  # a line torn by a crash
    return out


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def command_of(recipe: dict) -> str:
    """The command that made the run (recorded, else rebuilt from the recipe's overrides)."""
    if recipe.get("commands"):
        return " && ".join(recipe["commands"])
    parts = ["rnnkit", "train", "--recipe", recipe["name"]]
    if recipe.get("size", "full") != "full":
        parts += ["--size", recipe["size"]]
    for key, value in recipe.get("overrides", {}).items():
        if key.startswith("data.") and key.endswith("_file"):
            parts += [f"--{key[5:-5]}", str(value)]
        else:
            parts += ["--set", f"{key}={json.dumps(value) if not isinstance(value, str) else value}"]
    return " ".join(parts + ["--threads", "1", "--quiet"])


def fmt(value) -> str:
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.4g}"
    return str(value)


def pick(results: dict, keys: tuple[str, ...]):
    for k in keys:
        if k in results and isinstance(results[k], (int, float)):
            return k, results[k]
    return None, None


def verdict(value, op, bar) -> str:
    if op is None or value is None:
        return ""
    ok = value <= bar if op == "<=" else value >= bar
    return f"{'meets' if ok else 'MISSES'} bar {op} {bar:g}"


# --------------------------------------------------------------------------- report
def _model_of(recipe: dict, config: dict) -> dict:
    """The model that was trained: the run's own record (a pretrained start overrides the recipe's
    sizes), else the recipe's model section."""
    record = config.get("model") or {}
    if isinstance(record.get("config"), dict):
        return {"kind": record.get("kind"), **{k: v for k, v in record["config"].items()
                                               if not k.endswith("_id") and k != "vocab_size"}}
    return recipe.get("model", {})


def run_section(run: Path, docs: Path, hardware_note: str = HARDWARE_NOTE
                ) -> tuple[list[str], list[str]]:
    """(summary rows, section lines) for one run directory."""
    recipe = read_json(run / "recipe.json")
    config = read_json(run / "config.json")
    recs = read_jsonl(run / "metrics.jsonl")
    results = read_json(run / "results.json") or next((r for r in reversed(recs) if r.get("kind") == "final"), {})
    finished = bool(results)
    if not results:  # still training (or stopped without finalize): the best validation eval so far
        evals = [r for r in recs if r.get("kind") == "eval" and isinstance(r.get("val_loss"), (int, float))]
        results = min(evals, key=lambda r: r["val_loss"]) if evals else {}
    name = recipe.get("name", run.name)
    train_lines = [r for r in recs if r.get("kind") == "train"]
    elapsed = max((r.get("elapsed", 0) for r in recs if isinstance(r.get("elapsed"), (int, float))), default=0)
    steps = train_lines[-1]["step"] if train_lines else 0
    rate = sum(r["items_per_s"] for r in train_lines) / len(train_lines) if train_lines else 0
    hw = config.get("hardware", {})
    params = results.get("params") or ""

    status = "" if finished else " (IN PROGRESS: best validation eval so far, no test figures yet)"
    rows, lines = [], [f"## {run.name}{status}", ""]
    lines += [f"`{command_of(recipe)}`", "",
              *([f"- note: {recipe['notes']}"] if recipe.get("notes") else []),
              f"- recipe: `{name}` ({recipe.get('size', '?')}); {recipe.get('description', '')}",
              f"- model: `{json.dumps(_model_of(recipe, config))}`" + (f", {params:,} parameters" if params else ""),
              f"- trained {steps} steps in {elapsed / 60:.1f} min ({rate:,.0f} items/s mean) on "
              f"{hw.get('device', '?')} {hw.get('precision', '')}, {hw.get('threads', '?')} thread(s), "
              f"torch {hw.get('torch', '?')}; {hardware_note}", ""]
    lines += ["| metric | value | anchor / bar | |", "|---|---|---|---|"]
    for keys, label, op, bar, anchor in ANCHORS.get(name, []):
        key, value = pick(results, keys)
        lines.append(f"| {label} | {fmt(value) if key else 'n/a'} | {anchor} | {verdict(value, op, bar)} |")
        if op is not None:
            rows.append(f"| {run.name} | {label} | {fmt(value) if key else 'n/a'} | {op} {bar:g} | "
                        f"{verdict(value, op, bar) or 'not run'}{'' if finished else ' (in progress)'} | "
                        f"{elapsed / 60:.0f} min{' on a GPU' if hw.get('device') == 'cuda' else ''} |")
    other = {k: v for k, v in results.items() if isinstance(v, (int, float)) and k not in ("step", "epoch")}
    lines += ["", "<details><summary>all final figures</summary>", "", "```",
              json.dumps(other, indent=1, sort_keys=True), "```", "</details>", ""]
    if (run / "loss.png").is_file():
        target = docs / "results" / f"{run.name}-loss.png"
        atomic_write_bytes(target, (run / "loss.png").read_bytes())
        lines += [f"![loss curve of {run.name}](results/{target.name})", ""]
    samples = (run / "samples.txt").read_text(encoding="utf-8") if (run / "samples.txt").is_file() else ""
    if samples.strip():
        lines += ["Samples (best model, temperature 0.8, top-p 0.95, seeds 0-2):", "", "```",
                  samples.strip()[:2500], "```", ""]
    return rows, lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default="runs")
    ap.add_argument("--out", default=str(Path(__file__).parent / "RESULTS.md"))
    ap.add_argument("--hardware-note", default=HARDWARE_NOTE, help="where the runs ran (goes into every section)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    runs = sorted(p for p in Path(args.runs).iterdir() if (p / "recipe.json").is_file() and
                  read_json(p / "recipe.json").get("size") == "full") if Path(args.runs).is_dir() else []
    summary = ["| run | metric | value | bar | verdict | train time |", "|---|---|---|---|---|---|"]
    body: list[str] = []
    for run in runs:
        rows, lines = run_section(run, out.parent, args.hardware_note)
        summary += rows
        body += lines
    head = ["# rnnkit results", "",
            "Produced by `docs/make_results.py` from the full-size runs' `metrics.jsonl` / `results.json`.",
            f"Hardware: {args.hardware_note}; no GPU, except the runs each section marks as trained on one "
            "(a GPU was lent once: the section On a GPU). "
            "`results.json` scores the best checkpoint (by validation loss) on valid and test.", "",
            "Next-word figures of suggest-en: the typing session's (`rnnkit eval-suggest`, beside Kneser-Ney) are "
            "in the Everyday English section; the per-recipe section shows only the training-time proxy "
            "(`*_next_proxy_*`, core/tasks/next_word_proxy.py), which is cheaper and not the same figure.", ""]
    atomic_write_text(out, "\n".join(head + summary + [""] + body) + "\n")
    print(f"wrote {out} ({len(runs)} runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
