"""What a training run tells the world: ``metrics.jsonl``, a tqdm bar or plain log lines.

metrics.jsonl holds one JSON object a line, two kinds:
``{"kind": "train", "step", "epoch", "loss", "items_per_s", "lr", "elapsed"}`` every
``log_every`` steps (loss is the item-weighted mean since the previous line) and
``{"kind": "eval", "step", "epoch", <task.evaluate() metrics>, "elapsed"}`` after each evaluation.

The file is appended a line at a time through one open handle (a ``write`` + flush per line,
so a SIGKILL loses nothing written; reopening the file per line cost ~0.9 ms here): rewriting
it whole every log would be quadratic, and a line torn by a crash is skipped by
``plots.read_metrics``. On
resume it is rewritten atomically up to the checkpoint's step, so no step appears twice.
Only the main process (rank 0) writes or prints.

``best.json`` says which evaluation the saved ``model/`` is and which way the metric points, so
nothing downstream guesses "lower is better" from a metric's name. ``summarize_run`` is what a
bundle's manifest records about its run.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any, Mapping, Optional

from rnnkit.core.atomic import atomic_write_json, atomic_write_text

BEST_FILE = "best.json"


class RunLog:
    def __init__(self, path: Path, enabled: bool, quiet: bool, total_steps: Optional[int], start_step: int,
                 name: str = "train", budget_minutes: float = 0.0):
        """``budget_minutes`` > 0: this call stops on time too, so the bar counts steps without a
        step-based ETA (which would be wrong) and shows the minutes used of the budget."""
        self.path, self.enabled, self.quiet = path, enabled, quiet
        self.bar = None
        self._file = None
        self.budget_minutes, self.max_steps = budget_minutes, total_steps
        if enabled and not quiet:
            from tqdm.auto import tqdm

            total = None if budget_minutes > 0 else (total_steps or None)
            self.bar = tqdm(total=total, initial=start_step, desc=name, unit="step",
                            dynamic_ncols=True, mininterval=0.5, file=sys.stderr)

    def start(self, resume_step: Optional[int]) -> None:
        """Fresh run: empty the file. Resume: keep only records up to the checkpoint's step."""
        if not self.enabled:
            return
        kept = [] if resume_step is None else [r for r in read_metrics(self.path) if r.get("step", 0) <= resume_step]
        atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))

    def write(self, record: dict) -> None:
        if not self.enabled:
            return
        if self._file is None:
            self._file = open(self.path, "a", encoding="utf-8")
        self._file.write(json.dumps({k: _json_number(v) for k, v in record.items()}) + "\n")
        self._file.flush()

    def step(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def train_line(self, rec: dict) -> None:
        self.write(rec)
        if not self.enabled:
            return
        if self.bar is not None:
            budget = self.budget_text(rec.get("call_minutes", 0.0))
            self.bar.set_postfix(loss=f"{rec['loss']:.4f}", items_s=f"{rec['items_per_s']:,.0f}",
                                 **({"budget": budget} if budget else {}), refresh=False)
        else:
            budget = self.budget_text(rec.get("call_minutes", 0.0))
            self.print(f"step {rec['step']:>7} | epoch {rec['epoch']:>3} | loss {rec['loss']:.4f} | "
                       f"{rec['items_per_s']:>9,.0f} items/s | lr {rec['lr']:.2e} | {rec['elapsed']:.1f}s"
                       + (f" | this call {budget}" if budget else ""))

    def budget_text(self, call_minutes: float) -> str:
        """"12.0/95 min" (and the step limit) when this call has a time budget."""
        if self.budget_minutes <= 0:
            return ""
        steps = f", or step {self.max_steps}" if self.max_steps else ""
        return f"{call_minutes:.1f}/{self.budget_minutes:g} min{steps}"

    def eval_line(self, rec: dict, metric: str, is_best: bool) -> None:
        self.write(rec)
        shown = ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in rec.items()
                          if k not in ("kind", "step", "epoch", "elapsed"))
        self.print(f"eval step {rec['step']} | {shown}" + (f" | best {metric}" if is_best else ""))

    def print(self, msg: str) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(msg, file=sys.stderr)
        else:
            print(msg, flush=True)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _json_number(v):
    # JSON has no NaN / inf; write them as strings a reader can still recognise.
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return v


def append_jsonl(path: Path, record: Mapping[str, Any]) -> None:
    """Append one record by rewriting the file atomically (runs once per run, so O(n) is fine)."""
    old = path.read_text(encoding="utf-8") if path.is_file() else ""
    if old and not old.endswith("\n"):
        old += "\n"
    atomic_write_text(path, old + json.dumps(dict(record)) + "\n")


def read_metrics(path: str | Path) -> list[dict]:
    """Records of a metrics.jsonl file; a torn last line (run killed mid-write) is skipped."""
    path = Path(path)
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def write_best(run_dir: str | Path, metric: str, mode: str, record: Mapping[str, Any]) -> None:
    """``best.json`` for the model just saved as ``model/``: the metric, its direction, the step."""
    if mode not in ("min", "max"):
        raise ValueError(f"metric mode must be 'min' or 'max', got {mode!r}")
    atomic_write_json(Path(run_dir) / BEST_FILE, {"metric": metric, "mode": mode, "best_step": record["step"],
                                                  "best_value": _json_number(record[metric]),
                                                  "record": {k: _json_number(v) for k, v in record.items()}})


def read_best(run_dir: str | Path) -> dict[str, Any]:
    """``best.json`` of a run, {} if the run has none (runs older than it, or never evaluated)."""
    try:
        best = json.loads((Path(run_dir) / BEST_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    ok = isinstance(best, dict) and best.get("mode") in ("min", "max") and isinstance(best.get("record"), dict)
    return best if ok else {}


def summarize_run(run_dir: str | Path) -> dict[str, Any]:
    """``{"metric", "mode", "best", "last"[, "final"]}`` of a run ({} if it has no evaluation).

    ``best`` is the evaluation the saved ``model/`` was chosen at, as ``best.json`` records it;
    a run without ``best.json`` gets no ``best`` (its direction is unknown, so it is not guessed).
    """
    records = [r for r in read_metrics(Path(run_dir) / "metrics.jsonl") if isinstance(r, dict)]
    evals = [r for r in records if r.get("kind") == "eval"]
    if not evals:
        return {}
    best = read_best(run_dir)
    out: dict[str, Any] = {"last": evals[-1]}
    if best:
        out.update(metric=best["metric"], mode=best["mode"], best=best["record"])
    final = [r for r in records if r.get("kind") == "final"]
    if final:
        out["final"] = final[-1]
    return out
