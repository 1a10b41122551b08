"""Parity: ONNX Runtime against PyTorch, for every graph of every model kind.

Two checks (icefall's export check, plus the streaming one it never ran):
- one call: random non-zero state, batch 1 and 3, sequence lengths 1, 7 and 33;
- a rollout: a step graph fed one step at a time for 50 steps, its state fed back, equals
  the same graph (and PyTorch) run on the whole sequence at once.
Figures are max abs differences over every output; fp32 should stay <= 1e-5.
"""

from __future__ import annotations

import math
import os
from typing import Any, Iterable

import numpy as np
import torch
from torch import nn

from rnnkit.edge import names as N
from rnnkit.edge.runner import load_session

from .feeds import max_abs_diff, random_feeds, vocab_bound
from .wrappers import JobWrapper, wrappers_for

TOLERANCE = 1e-5


def ort_run(session, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds)))


@torch.no_grad()
def torch_run(wrapper: JobWrapper, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    args = [torch.from_numpy(np.ascontiguousarray(feeds[n])) for n in wrapper.input_names]
    out = wrapper(*args)
    out = out if isinstance(out, tuple) else (out,)
    return {n: t.numpy() for n, t in zip(wrapper.output_names, out)}


def finite_diff(a: np.ndarray, b: np.ndarray) -> float:
    """``max_abs_diff``, but inf when either side holds a NaN / inf: NaN compares as nothing, so a
    NaN output would otherwise pass as "max abs diff 0.00e+00"."""
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != np.bool_ and a.size and not (np.isfinite(a).all() and np.isfinite(b).all()):
        return math.inf
    return max_abs_diff(a, b)


def compare(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    if set(a) != set(b):
        raise AssertionError(f"output names differ: {sorted(a)} vs {sorted(b)}")
    return max(finite_diff(a[k], b[k]) for k in a)


def magnitude(outputs: dict[str, np.ndarray]) -> float:
    """Largest |value| among the float outputs: the scale a float32 rounding error grows with
    (inf if any is NaN / inf, which then fails the check instead of widening its limit)."""
    out = 0.0
    for v in outputs.values():
        if v.dtype != np.bool_ and v.size:
            top = float(np.abs(v).max())
            out = max(out, top if math.isfinite(top) else math.inf)
    return out


def _time_inputs(wrapper: JobWrapper) -> list[str]:
    """Inputs with a time axis (dim 1): the ones a rollout slices step by step."""
    if wrapper.fixed_time:
        return [N.PREV]
    return [n for n in wrapper.input_names if wrapper.axes.get(n, {}).get(1) == N.TIME]


def is_step_graph(wrapper: JobWrapper) -> bool:
    """State in and out, plus a time axis: the graphs a runner calls token by token."""
    return (any(N.is_state_input(n) for n in wrapper.input_names)
            and any(N.is_state_output(n) for n in wrapper.output_names)
            and (bool(_time_inputs(wrapper)) or wrapper.fixed_time == 1))


def rollout(wrapper: JobWrapper, session, config: dict[str, Any], steps: int = 50,
            batch: int = 2, seed: int = 0) -> dict[str, float]:
    """Feed ``steps`` inputs one at a time, the state fed back; compare with one whole-sequence call.

    Returns ``{"step_vs_whole": ..., "step_vs_torch": ...}`` (max abs over outputs along time and
    the final state).
    """
    timed_in = _time_inputs(wrapper)
    if wrapper.fixed_time:
        # A one-token graph: build the whole-sequence inputs by hand, PyTorch is the only reference.
        feeds = random_feeds(session.get_inputs(), config, batch, 1, seed=seed, src_time=11)
        rng = np.random.default_rng(seed)
        for n in timed_in:
            feeds[n] = rng.integers(0, vocab_bound(n, config), size=(batch, steps)).astype(np.int64)
        whole = None
    else:
        feeds = random_feeds(session.get_inputs(), config, batch, steps, seed=seed, src_time=11)
        whole = ort_run(session, feeds)
    ref = torch_run(wrapper, feeds)
    state_map = {n: n.removeprefix("next_") for n in wrapper.output_names if N.is_state_output(n)}
    step_feeds = dict(feeds)
    pieces: dict[str, list[np.ndarray]] = {n: [] for n in ref if n not in state_map}
    last: dict[str, np.ndarray] = {}
    for t in range(steps):
        for n in timed_in:
            step_feeds[n] = feeds[n][:, t:t + 1]
        out = ort_run(session, step_feeds)
        for n, v in out.items():
            if n in state_map:
                step_feeds[state_map[n]] = v
                last[n] = v
            else:
                pieces[n].append(v)
    stepped = {n: np.concatenate(v, axis=1) for n, v in pieces.items()}
    stepped.update(last)
    out = {"step_vs_torch": compare(stepped, ref)}
    if whole is not None:
        out["step_vs_whole"] = compare(stepped, whole)
    return out


def model_config(model: nn.Module) -> dict[str, Any]:
    from rnnkit.core.config import to_dict

    return to_dict(model.config)


def check_parity(model: nn.Module, graphs: dict[str, str | os.PathLike], batches: Iterable[int] = (1, 3),
                 times: Iterable[int] = (1, 7, 33), rollout_steps: int = 50, seed: int = 0) -> dict[str, Any]:
    """ONNX Runtime vs PyTorch for every ``{job: graph path}``.

    Returns ``{"max_abs_diff": worst, "jobs": {job: {"max_abs_diff", "cases": [...], "rollout": {...}}}}``.
    """
    model.eval()
    cfg = model_config(model)
    wrappers = wrappers_for(model)
    report: dict[str, Any] = {"jobs": {}}
    worst = 0.0
    for job, path in graphs.items():
        wrapper, session = wrappers[job], load_session(path)
        cases = []
        for b in batches:
            for t in ((wrapper.fixed_time,) if wrapper.fixed_time else times):
                feeds = random_feeds(session.get_inputs(), cfg, b, t, seed=seed + 1000 * b + t, src_time=t + 2)
                ref = torch_run(wrapper, feeds)
                diff = compare(ort_run(session, feeds), ref)
                cases.append({"batch": b, "time": t, "max_abs_diff": diff, "max_abs_value": magnitude(ref)})
        entry: dict[str, Any] = {"cases": cases, "max_abs_diff": max(c["max_abs_diff"] for c in cases)}
        if rollout_steps and is_step_graph(wrapper):
            entry["rollout"] = rollout(wrapper, session, cfg, rollout_steps, seed=seed)
            entry["max_abs_diff"] = max(entry["max_abs_diff"], *entry["rollout"].values())
        entry["max_abs_value"] = max(c["max_abs_value"] for c in cases)
        report["jobs"][job] = entry
        worst = max(worst, entry["max_abs_diff"])
    report["max_abs_diff"] = worst
    report["max_abs_value"] = max((e["max_abs_value"] for e in report["jobs"].values()), default=0.0)
    return report


def format_report(report: dict[str, Any]) -> str:
    """One line per job: worst one-call diff per (batch, time) and the rollout figures."""
    lines = []
    for job, e in report["jobs"].items():
        cases = " ".join(f"B{c['batch']}T{c['time']}={c['max_abs_diff']:.1e}" for c in e["cases"])
        roll = e.get("rollout")
        roll_s = "".join(f" rollout {k.replace('_vs_', '/')}={v:.1e}" for k, v in (roll or {}).items())
        lines.append(f"{job}: max {e['max_abs_diff']:.2e} [{cases}]{roll_s}")
    return "\n".join(lines)


def parity_limit(report: dict[str, Any], tol: float = TOLERANCE, relative: bool = False) -> float:
    """``tol`` absolute, or with ``relative`` scaled by the outputs' magnitude when above 1: a
    trained model's logits reach tens, and float32 rounding grows with them."""
    return tol * max(1.0, report.get("max_abs_value", 0.0)) if relative else tol


def assert_parity(report: dict[str, Any], tol: float = TOLERANCE, relative: bool = False) -> None:
    limit = parity_limit(report, tol, relative)
    if not math.isfinite(report.get("max_abs_value", 0.0)):
        raise AssertionError("ONNX or PyTorch outputs hold NaN / inf (non-finite weights?):\n" + format_report(report))
    if not report["max_abs_diff"] <= limit:  # `not <=`: a NaN difference fails too
        raise AssertionError(f"ONNX vs PyTorch max abs diff {report['max_abs_diff']:.3e} > {limit:.3e}:\n"
                             + format_report(report))

