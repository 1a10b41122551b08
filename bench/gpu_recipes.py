"""The recipes on a lent GPU: the CUDA tests, then every job of a table at once, one process each.

A GPU machine is lent rarely and for minutes (the `device` tool), so one call does it all:
``pytest -m cuda`` (tests/test_cuda.py), then the jobs below side by side on the one GPU, each
with the same wall-clock budget; ``summary.json`` gathers each job's figures, wall and CPU time.
Small recurrent models leave an H200 mostly idle, so running them together costs each little.

    python bench/gpu_recipes.py --out /tmp/gpu --minutes 5.5 [--only suggest-s1,ptb-medium] [--seed-runs DIR]
    python bench/gpu_recipes.py --report docs/results/gpu_recipes.json     # the RESULTS.md section

``--seed-runs DIR``: a job whose recipe has a folder DIR/<recipe> takes its tokenizer from there
(``rnnkit train --tokenizer-from``), so a GPU run keeps the shipped model's pieces (perplexities
comparable) and does not spend its minutes training a SentencePiece.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from cpu_budget import rnnkit_cmd

# name: (recipe, overrides). Steps are unbounded: the wall-clock budget ends each run, and the
# plateau schedule decays the learning rate on validation, which needs no step count.
PLATEAU = {"train.schedule": "plateau", "train.max_steps": 10**7, "train.plateau_patience": 1}
JOBS: dict[str, tuple[str, dict]] = {
    # the everyday suggester, same architecture as the shipped one (phone-sized), regularised for many passes
    "suggest-s1": ("suggest-en", {**PLATEAU, "data.batch_size": 64, "model.dropout": 0.25,
                                  "train.eval_every": 1500, "train.checkpoint_every": 6000}),
    "suggest-s2": ("suggest-en", {**PLATEAU, "data.batch_size": 64, "data.bptt": 70, "model.dropout": 0.4,
                                  "model.weight_drop": 0.2, "model.locked_dropout": True,
                                  "train.eval_every": 800, "train.checkpoint_every": 4000}),
    "suggest-s3": ("suggest-en", {**PLATEAU, "data.batch_size": 128, "model.dropout": 0.3, "train.lr": 0.003,
                                  "train.eval_every": 800, "train.checkpoint_every": 4000}),
    # PTB, Zaremba et al.'s medium size with tied weights, as word_language_model trains it
    # (SGD lr 20, clip 0.25, lr / 4 when validation stalls)
    "ptb-medium": ("ptb-lm", {**PLATEAU, "model.embed_size": 650, "model.hidden_size": 650, "model.dropout": 0.5,
                              "data.batch_size": 20, "optimizer": "sgd", "lr": 20, "grad_clip": 0.25,
                              "weight_decay": 0, "warmup_steps": 0, "train.plateau_factor": 0.25,
                              "train.plateau_patience": 0, "train.eval_every": 0,
                              "train.checkpoint_every": 0}),
    "ptb-medium-b32": ("ptb-lm", {**PLATEAU, "model.embed_size": 650, "model.hidden_size": 650, "model.dropout": 0.5,
                                  "model.weight_drop": 0.15, "data.batch_size": 32, "optimizer": "sgd", "lr": 20,
                                  "grad_clip": 0.25, "weight_decay": 0, "warmup_steps": 0,
                                  "train.plateau_factor": 0.25, "train.plateau_patience": 0, "train.eval_every": 0,
                                  "train.checkpoint_every": 0}),
    # recipe defaults, for the GPU / CPU comparison (budget as given)
    "char-shakespeare": ("char-shakespeare", {}),
    "sentiment-mr": ("sentiment-mr", {}),
    "translate-en-de": ("translate-en-de", {}),
    # the translator with the everyday pairs weighted up and trained to a plateau
    "translate-long": ("translate-en-de", {**PLATEAU, "data.extra_corpora": {"everyday_en_de": 4},
                                           "train.eval_every": 1500, "train.checkpoint_every": 0,
                                           "train.plateau_patience": 2}),
    # ... and with the course sentences (phrasebook_en_de): on the CPU recipe's 5,000 steps they took its
    # phrasebook valid BLEU from 7.2 to 18.2 (docs/results/translate-en-de-phrasebook-cpu.json)
    "translate-phrasebook": ("translate-en-de", {**PLATEAU, "data.extra_corpora": {"everyday_en_de": 4,
                                                                                   "phrasebook_en_de": 8},
                                                 "train.eval_every": 1500, "train.checkpoint_every": 0,
                                                 "train.plateau_patience": 2}),
}


def _final(run: Path) -> dict:
    from rnnkit.core.train.run_log import read_metrics  # a job stopped at the deadline can leave a torn line

    recs = read_metrics(run / "metrics.jsonl")
    finals = [r for r in recs if r.get("kind") == "final"]
    train = [r for r in recs if r.get("kind") == "train"]
    return {**(finals[-1] if finals else {}), "steps": train[-1].get("step") if train else 0}


def start(name: str, out: Path, minutes: float, device: str, seed_runs: Path | None) -> subprocess.Popen:
    recipe, overrides = JOBS[name]
    run = out / "runs" / name
    args = ["train", "--recipe", recipe, "--run-dir", str(run), "--device", device, "--threads", "1", "--quiet",
            "--set", f"train.max_minutes={minutes}"]
    if seed_runs and (seed_runs / recipe).is_dir():
        args += ["--tokenizer-from", str(seed_runs / recipe)]
    for k, v in overrides.items():
        args += ["--set", f"{k}={json.dumps(v)}"]
    (out / f"{name}.cmd").write_text("rnnkit " + " ".join(args[:1] + [a if " " not in a else repr(a) for a in args[1:]]) + "\n")
    log = open(out / f"{name}.log", "w")
    return subprocess.Popen(rnnkit_cmd(args), stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--report", type=Path, help="write RESULTS.md's GPU section from this summary.json and exit")
    ap.add_argument("--minutes", type=float, default=5.5, help="each job's training budget (wall clock)")
    ap.add_argument("--only", default="", help="comma-separated job names (default: all)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--seed-runs", type=Path, default=None)
    ap.add_argument("--deadline-s", type=float, default=0,
                    help="stop jobs still running this many seconds after the start, then pack (0: wait)")
    ap.add_argument("--no-tests", action="store_true", help="skip pytest -m cuda")
    ap.add_argument("--keep-models", default="",
                    help="comma-separated jobs whose model/ goes into pack.tar; 'best:PREFIX' = the job of that "
                         "prefix with the lowest val_loss (the figures and logs of every job always go in)")
    a = ap.parse_args()
    if a.report:
        from rnnkit.core.atomic import atomic_write_section

        atomic_write_section(ROOT / "docs" / "RESULTS.md", report(json.loads(a.report.read_text()), a.report),
                             BEGIN, END, before="<!-- rnn-vs-transformer:begin -->")
        print(f"wrote the GPU section of {ROOT / 'docs' / 'RESULTS.md'}")
        return 0
    if not a.out:
        ap.error("--out DIR is required (or --report SUMMARY)")
    names = [n for n in a.only.split(",") if n] or list(JOBS)
    unknown = set(names) - set(JOBS)
    if unknown:
        ap.error(f"unknown jobs {sorted(unknown)}; known: {', '.join(JOBS)}")
    a.out.mkdir(parents=True, exist_ok=True)
    import torch

    info = {"torch": torch.__version__, "cuda": torch.cuda.is_available(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "cpus": os.cpu_count(), "minutes": a.minutes}
    print(json.dumps(info), flush=True)
    t0 = time.perf_counter()
    procs = {n: start(n, a.out, a.minutes, a.device, a.seed_runs) for n in names}
    tests = None
    if not a.no_tests:  # beside the jobs: it needs seconds of GPU, the jobs minutes
        tests = subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider",
                                  "tests/test_cuda.py"], cwd=ROOT, stdout=open(a.out / "pytest-cuda.log", "w"),
                                 stderr=subprocess.STDOUT)
    summary: dict = {"info": info, "jobs": {}}
    for n, p in procs.items():
        try:  # past the deadline a job is stopped, so that what is done still gets packed
            rc = p.wait(timeout=max(1.0, a.deadline_s - (time.perf_counter() - t0)) if a.deadline_s else None)
        except subprocess.TimeoutExpired:
            p.kill()
            rc = "killed at the deadline"
        run = a.out / "runs" / n
        summary["jobs"][n] = {"recipe": JOBS[n][0], "overrides": JOBS[n][1], "rc": rc,
                              "wall_s": round(time.perf_counter() - t0, 1), **_final(run)}
        print(n, json.dumps(summary["jobs"][n]), flush=True)
    if tests is not None:
        try:
            summary["pytest_cuda_rc"] = tests.wait(timeout=30)
        except subprocess.TimeoutExpired:
            tests.kill()
            summary["pytest_cuda_rc"] = "killed at the deadline"
        summary["pytest_cuda_tail"] = (a.out / "pytest-cuda.log").read_text()[-1500:]
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    summary["children_cpu_s"] = round(usage.ru_utime + usage.ru_stime, 1)
    summary["wall_s"] = round(time.perf_counter() - t0, 1)
    (a.out / "summary.json").write_text(json.dumps(summary, indent=1))
    pack(a.out, summary, [k for k in a.keep_models.split(",") if k])
    print(f"done in {summary['wall_s']} s", flush=True)
    return 0


BEGIN, END = "<!-- gpu:begin -->", "<!-- gpu:end -->"
# The same recipe's figure on this project's 2-core CPU, from its RESULTS.md section or model card
# (run, budget): what the GPU column is read against.
CPU_REFERENCE = {
    "suggest-en": ("valid ppl 61.6, test ppl 72.6 (the CPU suggest-en run, 207 CPU-minutes, 15,000 steps at batch 32)",
                   "val_ppl"),
    "ptb-lm": ("test ppl 99.2 (recipe 2x256, 43 CPU-minutes); word_language_model 2x200, 2 epochs: 159.4", "test_ppl"),
    "char-shakespeare": ("valid 1.526 nats/char (recipe, 87 CPU-minutes); 1.367 with a GRU at 12x64 batches, 30 min",
                         "val_loss"),
    "sentiment-mr": ("test accuracy 78.0 % (recipe, CPU); 79.6 % with the everyday LM underneath", "test_acc"),
    "translate-en-de": ("Bible test BLEU 16.99, everyday 4.46 (recipe, 45 CPU-minutes)", "test_bleu"),
}


def _shown(job: dict) -> str:
    if "test_bleu" in job:
        return (f"Bible test BLEU {job['test_bleu']:.2f}, everyday test BLEU {job['test_everyday_en_de_bleu']:.2f} "
                f"(val loss {job['val_loss']:.3f})")
    if "test_acc" in job:
        return f"val accuracy {job['val_acc']:.2f} %, test {job['test_acc']:.2f} %"
    if job.get("unit") == "char":
        return f"val {job['val_loss']:.3f} nats/char, test {job['test_loss']:.3f}"
    if "val_ppl" in job:
        extra = (f"; next-word proxy top-3 val {100 * job['val_next_proxy_top3']:.1f} %"
                 if "val_next_proxy_top3" in job else "")
        return f"val ppl {job['val_ppl']:.1f}, test ppl {job['test_ppl']:.1f}{extra}"
    return "no figures (rc {})".format(job.get("rc"))


def report(summary: dict, path: Path) -> str:
    """The RESULTS.md section: each job's figures beside the same recipe's on the CPU."""
    info = summary["info"]
    shown = path.resolve().relative_to(ROOT) if path.resolve().is_relative_to(ROOT) else path
    out = [BEGIN, f"## On a GPU ({info['gpu']}, torch {info['torch']})", "",
           f"`python bench/gpu_recipes.py --out /tmp/g --minutes {info['minutes']} --deadline-s 440 --seed-runs SEEDS "
           "--keep-models best:suggest,translate-long,translate-en-de,sentiment-mr,char-shakespeare` on a lent GPU "
           f"machine; figures in `{shown}`. All {len(summary['jobs'])} jobs ran at once on the one GPU (CUDA MPS on), "
           f"each for {info['minutes']} minutes of training (wall clock) after its data was read, bf16 autocast; "
           "`SEEDS` holds the shipped suggest-en and translate-en-de tokenizers (`--tokenizer-from`), so perplexities "
           "compare with the CPU runs'. Model choices among variants were made on validation.", "",
           f"The CUDA tests ran beside them: {summary.get('pytest_cuda', summary.get('pytest_cuda_rc'))}. "
           "The first try found that no model trained on a GPU could be saved (cuDNN's flat weight buffer; fixed "
           "in `core/models/registry.saveable`).", "",
           "| job | recipe, changes | steps | figures (best checkpoint by validation) | the same recipe on the 2-core CPU |",
           "|---|---|---|---|---|"]
    for name, job in summary["jobs"].items():
        changes = ", ".join(f"{k.split('.')[-1]}={v}" for k, v in job["overrides"].items()
                            if k not in ("train.max_steps", "train.checkpoint_every")) or "recipe defaults"
        cpu = CPU_REFERENCE.get(job["recipe"], ("-", ""))[0]
        out.append(f"| {name} | `{job['recipe']}`: {changes} | {job.get('steps', 0):,} | {_shown(job)} | {cpu} |")
    out += ["", "- The PTB row `ptb-medium-b32` is Zaremba et al.'s medium LSTM (2x650, tied) with a light "
            "DropConnect (0.15) at batch 32, SGD lr 20, lr / 4 when validation stalls: test perplexity below 82 "
            "(issue 13's target; Zaremba medium 82.7) in under five GPU-minutes: 21,650 steps of 32x35 words, about "
            "26 passes over PTB. It is not a 2-core result: at about 80 MFLOP per word (forward and backward), "
            "26 passes are some 2e15 FLOP, about 11 hours of one core at 50 GFLOP/s (an estimate, not a run).",
            "- Not covered: NCCL (one GPU: DDP needs two ranks on two devices; the gloo path is tested on the CPU).",
            END]
    return "\n".join(out)


def pack(out: Path, summary: dict, keep: list[str]) -> None:
    """``out/pack.tar``: summary, logs, each run's figures, and the model directories asked for
    (a lent machine's files go back in a few small files; checkpoints stay behind)."""
    import tarfile

    jobs = summary["jobs"]
    chosen = set()
    for k in keep:
        if k.startswith("best:"):
            scored = [(j["val_loss"], n) for n, j in jobs.items() if n.startswith(k[5:]) and "val_loss" in j]
            if scored:
                chosen.add(min(scored)[1])
        elif k in jobs:
            chosen.add(k)
    summary["kept_models"] = sorted(chosen)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    figures = ("recipe.json", "config.json", "metrics.jsonl", "results.json", "best.json", "samples.txt", "loss.png",
               "test_translations.tsv")
    with tarfile.open(out / "pack.tar", "w") as tar:
        for f in sorted(out.glob("*.log")) + sorted(out.glob("*.cmd")) + [out / "summary.json"]:
            tar.add(f, arcname=f.name)
        for n in jobs:
            run = out / "runs" / n
            for f in figures:
                if (run / f).is_file():
                    tar.add(run / f, arcname=f"runs/{n}/{f}")
            if n in chosen:
                for f in ("model", "tokenizer.model", "tokenizer.json", "lexicon.txt", "tokenizer_src",
                          "tokenizer_tgt", "tagger_vocab.json"):
                    if (run / f).exists():
                        tar.add(run / f, arcname=f"runs/{n}/{f}")


if __name__ == "__main__":
    sys.exit(main())
