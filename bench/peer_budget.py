"""rnnkit at a peer's CPU budget: pytorch/examples word_language_model's two PTB epochs (issue 13).

    python bench/peer_budget.py                      # the peer's recorded 457 CPU-s (../shared/peers/README.md)
    python bench/peer_budget.py --run-peer           # run the peer beside rnnkit and use its measured CPU-s
    python bench/peer_budget.py --set model.dropout=0.2 --tag d02   # a variant (choose on valid, never test)
    python bench/peer_budget.py --cpu-clock --run-peer ...          # the trainer stops on CPU seconds itself

The peer (unmodified, ``OMP_NUM_THREADS=1 python main.py --data DATA --epochs 2``: 2x200 LSTM, SGD lr 20)
reaches test perplexity 159.4 in 457 CPU seconds, its whole process. rnnkit trains ``ptb-lm`` with one
thread for as many steps as fit in the same CPU seconds: the recipe's CPU cost per step is measured
first (bench/cpu_budget.py), then ``--fraction`` of the budget goes to steps and the rest is left for
start-up, data and the final evaluations, with a cosine schedule ending at the last step. The whole
rnnkit process's CPU seconds are reported beside the peer's, so the comparison is checked, not assumed.
``--cpu-clock``: no cost estimate; the trainer stops when its own CPU seconds reach ``--fraction`` of
the budget (``train.max_cpu_seconds``) and the cosine decays on that clock, so a step's cost changing
with the machine's load moves where the run stops, not whether it keeps to the budget.

Writes docs/results/peer_budget-ptb-lm[-TAG].json; ``--report`` writes the "rnnkit at word_language_model's
budget" section of docs/RESULTS.md from every such file.
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from cpu_budget import ROOT, step_cost, train_steps  # noqa: E402  (bench/cpu_budget.py)

PEER = ROOT.parent / "shared" / "peers" / "word_language_model"
PEER_RECORDED = {"cpu_s": 457.0, "test_ppl": 159.4, "source": "../shared/peers/README.md"}
BUDGET_SETS = {"precision": "fp32", "train.schedule": "cosine", "train.warmup_steps": 100, "train.min_lr_ratio": 0.05,
               "train.checkpoint_every": 0}


def start_peer(tmp: Path) -> subprocess.Popen:
    """The peer's own main.py on rnnkit's PTB files (copied into the data/ folder it expects)."""
    from rnnkit.core.data import corpus_dir

    work = tmp / "peer"
    shutil.copytree(PEER, work, ignore=shutil.ignore_patterns("*.pt", "__pycache__"))
    data = work / "data" / "ptb"
    data.mkdir(parents=True)
    for split in ("train", "valid", "test"):
        shutil.copy(corpus_dir("ptb") / f"{split}.txt", data / f"{split}.txt")
    return subprocess.Popen([sys.executable, "main.py", "--data", "./data/ptb", "--epochs", "2"], cwd=work,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish_peer(proc: subprocess.Popen) -> dict:
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    m = re.search(r"End of training \| test loss\s+([\d.]+) \| test ppl\s+([\d.]+)", out)
    if status != 0 or not m:
        raise RuntimeError(f"word_language_model failed (status {status}):\n{out[-2000:]}")
    return {"cpu_s": usage.ru_utime + usage.ru_stime, "user_s": usage.ru_utime, "sys_s": usage.ru_stime,
            "test_ppl": float(m.group(2)), "command": "OMP_NUM_THREADS=1 python main.py --data ./data/ptb --epochs 2"}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", default="ptb-lm")
    p.add_argument("--run-peer", action="store_true", help="run word_language_model beside rnnkit (same time)")
    p.add_argument("--budget", type=float, default=PEER_RECORDED["cpu_s"],
                   help="CPU seconds (default: the peer's recorded 457)")
    p.add_argument("--fraction", type=float, default=0.9, help="share of the budget spent on training steps")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a recipe override (repeatable)")
    p.add_argument("--tag", default="", help="a name for this variant (run directory and JSON)")
    p.add_argument("--cpu-clock", action="store_true",
                   help="the trainer stops on its CPU seconds (train.max_cpu_seconds), no step count")
    p.add_argument("--report", action="store_true", help="only write the RESULTS.md section from the JSON files")
    a = p.parse_args(argv)
    if a.report:
        report()
        return
    from rnnkit.core.config import parse_overrides

    sets = {**BUDGET_SETS, **parse_overrides(a.set)}
    name = a.recipe + (f"-{a.tag}" if a.tag else "")
    with tempfile.TemporaryDirectory() as tmp:
        peer_proc = start_peer(Path(tmp)) if a.run_peer else None
        budget = a.budget  # the run is sized before the peer ends: its recorded figure by default
        t0 = time.perf_counter()
        if a.cpu_clock:
            print(f"{a.recipe}: training stops at {a.fraction:.0%} of {budget:.0f} CPU-s", flush=True)
            ours = train_steps(a.recipe, sets, 0, ROOT / "runs" / "peer-budget" / name, 0.0,
                               cpu_seconds=a.fraction * budget)
        else:
            cost = step_cost(a.recipe, sets)
            steps = int(a.fraction * budget / cost)
            print(f"{a.recipe}: {cost * 1e3:.0f} CPU-ms a step -> {steps} steps for {a.fraction:.0%} of "
                  f"{budget:.0f} CPU-s", flush=True)
            t0 = time.perf_counter()
            ours = train_steps(a.recipe, sets, steps, ROOT / "runs" / "peer-budget" / name, cost)
        peer = finish_peer(peer_proc) if peer_proc else {**PEER_RECORDED, "command": "recorded"}
    test_ppl = math.exp(ours["test_loss"])
    res = {"recipe": a.recipe, "overrides": sets, "peer": peer, "clock": "cpu" if a.cpu_clock else "steps",
           "rnnkit": {k: v for k, v in ours.items() if k not in ("train_curve", "final")},
           "rnnkit_test_ppl": test_ppl, "rnnkit_val_ppl": math.exp(ours["val_loss"]),
           "rnnkit_cpu_s": ours["process_cpu_s"], "wall_s": time.perf_counter() - t0,
           "below_peer": 1 - test_ppl / peer["test_ppl"], "goal": "test perplexity >= 20 % below the peer's"}
    out = ROOT / "docs" / "results" / f"peer_budget-{name}.json"
    from rnnkit.core.atomic import atomic_write_json

    atomic_write_json(out, res)
    print(json.dumps({k: v for k, v in res.items() if k != "rnnkit"}, indent=1))
    print(f"rnnkit {test_ppl:.1f} in {ours['process_cpu_s']:.0f} CPU-s vs word_language_model {peer['test_ppl']:.1f} "
          f"in {peer['cpu_s']:.0f} CPU-s: {res['below_peer']:.1%} below (goal >= 20 %); wrote {out}")


BEGIN, END = "<!-- peer-budget:begin -->", "<!-- peer-budget:end -->"


def report() -> None:
    """The RESULTS.md section: every variant run, chosen on validation perplexity."""
    from rnnkit.core.atomic import atomic_write_section

    runs = [json.loads(f.read_text()) for f in sorted((ROOT / "docs" / "results").glob("peer_budget-*.json"))]
    runs.sort(key=lambda r: r["rnnkit_val_ppl"])
    out = [BEGIN, "## rnnkit at word_language_model's CPU budget (PTB)", "",
           "`python bench/peer_budget.py [--run-peer] [--set KEY=VALUE ...] --tag NAME`: pytorch/examples "
           "word_language_model (unmodified, 2x200 LSTM, SGD lr 20, two epochs, one thread) against `rnnkit train "
           "--recipe ptb-lm` given as many steps as fit in the peer's CPU seconds (cost per step measured first, "
           "cosine schedule ending at the last step, one thread; rows ending in `-cpuclock`: no estimate, the trainer "
           "stops itself at a share of the budget, `train.max_cpu_seconds`, its cosine decaying on the CPU clock, "
           "`--cpu-clock`). Variants are ranked by validation perplexity; "
           "the test column is read only to report it. On this shared 2-vCPU machine a step's CPU seconds rise by up "
           "to a quarter when both vCPUs are busy, so a run sized by a cost measured at another load can land over "
           "its budget: such rows are shown and marked, never chosen.", "",
           "| variant | overrides | steps | rnnkit process CPU-s | valid ppl | test ppl | peer test ppl (CPU-s) | "
           "test vs peer |", "|---|---|---|---|---|---|---|---|"]
    within = [r for r in runs if r["rnnkit_cpu_s"] <= r["peer"]["cpu_s"]]  # over the budget: shown, never chosen
    for r in runs:
        ov = ", ".join(f"{k}={v}" for k, v in r["overrides"].items() if k not in BUDGET_SETS)
        over = "" if r in within else " (over the budget)"
        out.append(f"| {Path(r['rnnkit']['run_dir']).name} | {ov or '(recipe)'} | {r['rnnkit']['steps']:,} | "
                   f"{r['rnnkit_cpu_s']:.0f}{over} | {r['rnnkit_val_ppl']:.1f} | {r['rnnkit_test_ppl']:.1f} | "
                   f"{r['peer']['test_ppl']:.1f} ({r['peer']['cpu_s']:.0f}) | {-r['below_peer']:+.1%} |")
    best = within[0] if within else None
    if best:
        ok = best["below_peer"] >= 0.2
        out += ["", f"Chosen on validation among the runs within the peer's CPU seconds: "
                f"{Path(best['rnnkit']['run_dir']).name}, test perplexity "
                f"{best['rnnkit_test_ppl']:.1f} against the peer's {best['peer']['test_ppl']:.1f}: "
                f"{best['below_peer']:.1%} below (goal >= 20 % below: {'met' if ok else 'missed'}). Common settings: "
                + ", ".join(f"{k}={v}" for k, v in BUDGET_SETS.items()) + f". Command: `{best['rnnkit']['command']}`."]
    out.append(END)
    path = atomic_write_section(ROOT / "docs" / "RESULTS.md", "\n".join(out), BEGIN, END)
    print(f"wrote the peer-budget section of {path}")


if __name__ == "__main__":
    main()
