"""Training at an equal CPU budget: a recipe's CPU cost per step, and a run of ``budget / cost`` steps.

Used by bench/rnn_vs_transformer.py (models at equal CPU minutes) and bench/peer_budget.py (rnnkit
at a peer's CPU seconds). A wall-clock budget would charge a model for the other jobs on a shared
machine; CPU seconds of one thread measure the work.
"""

from __future__ import annotations

import json
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOKENIZERS = ROOT / "runs" / "bench-tokenizers"


def rnnkit_cmd(args: list[str]) -> list[str]:
    """``rnnkit ARGS`` as this interpreter runs it (no dependence on PATH)."""
    return [sys.executable, "-c", "import sys; from rnnkit.cli import main; sys.argv[0] = 'rnnkit'; sys.exit(main())",
            *args]


def step_cost(recipe: str, overrides: dict, first: int = 10, last: int = 40) -> float:
    """CPU seconds per training step (forward, backward, clip, AdamW) of the real task and model,
    one thread: ``time.process_time`` over steps ``first..last`` of the task's own batches."""
    import torch

    from rnnkit.core.recipes import build, resolve_recipe
    from rnnkit.core.train.schedules import build_optimizer
    from rnnkit.core.train.types import detach_state

    torch.set_num_threads(1)
    r = resolve_recipe(recipe, "full", {**overrides, "data.max_eval_lines": 50})
    with tempfile.TemporaryDirectory() as tmp:
        # A SentencePiece on everyday_en takes a minute: train it once per corpus and tokenizer.
        tok = r["tokenizer"]
        tok_dir = TOKENIZERS / f"{r['data']['corpus']}-{tok['kind']}-{tok.get('vocab_size', 0)}"
        for f in tok_dir.glob("*") if tok_dir.is_dir() else ():
            shutil.copy(f, tmp)
        model, task, _ = build(r, tmp)
        if not tok_dir.is_dir():
            tok_dir.mkdir(parents=True)
            for f in Path(tmp).glob("*"):
                if f.is_file() and f.name != "recipe.json":
                    shutil.copy(f, tok_dir)
    model.train()
    opt = build_optimizer(model, "adamw", 1e-3, r["train"]["weight_decay"])
    carry, t0 = None, 0.0
    for i, batch in enumerate(task.train_batches(0)):
        if i == first:
            t0 = time.process_time()
        if i == last:
            break
        loss, _, carry = task.loss(model, batch, carry)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        carry = detach_state(carry)
    return (time.process_time() - t0) / (last - first)


def train_steps(recipe: str, overrides: dict, steps: int, run: Path, cost: float,
                cpu_seconds: float = 0.0) -> dict:
    """``rnnkit train`` for ``steps`` steps (cosine schedule ending there if the overrides say so;
    one evaluation, at the end), one thread; its figures, CPU seconds and command. With
    ``cpu_seconds`` the trainer itself stops there instead (``train.max_cpu_seconds``; a cosine
    then decays on the CPU clock) and ``steps`` / ``cost`` are only what the run reports."""
    from rnnkit.core.train.run_log import read_metrics

    sets = {**overrides, "train.max_steps": steps, "train.eval_every": steps}
    if cpu_seconds:
        sets = {**overrides, "train.max_steps": 0, "train.max_cpu_seconds": cpu_seconds, "train.eval_every": 10**9}
    shown = run.relative_to(ROOT) if run.is_relative_to(ROOT) else run
    args = ["train", "--recipe", recipe, "--run-dir", str(shown), "--threads", "1", "--quiet"]
    for k, v in sets.items():
        args += ["--set", f"{k}={json.dumps(v) if isinstance(v, bool) else v}"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(rnnkit_cmd(args), check=True, cwd=ROOT)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    final = json.loads((run / "results.json").read_text())
    recipe_rec = json.loads((run / "recipe.json").read_text())
    tokens_per_step = recipe_rec["data"]["batch_size"] * recipe_rec["data"]["bptt"]
    records = read_metrics(run / "metrics.jsonl")
    curve = [(r["step"], r["loss"]) for r in records if r.get("kind") == "train"]
    if cpu_seconds:  # the trainer decided the step count: the last one any record names
        steps = max((r["step"] for r in records if isinstance(r.get("step"), int)), default=steps)
        cost = cpu_seconds / max(steps, 1)
    return {"recipe": recipe, "run_dir": str(shown), "steps": steps, "tokens": steps * tokens_per_step,
            "cpu_s_per_step": cost, "train_cpu_s": steps * cost,
            "process_cpu_s": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
            "wall_s": time.perf_counter() - t0, "tokens_per_cpu_s": tokens_per_step / cost,
            "batch": f"{recipe_rec['data']['batch_size']} x {recipe_rec['data']['bptt']}",
            "tokens_per_step": tokens_per_step, "final": final,
            "val_loss": final["val_loss"], "test_loss": final.get("test_loss"), "params": final["params"],
            "command": "rnnkit " + shlex.join(args), "train_curve": curve}
