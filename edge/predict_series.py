"""Forecasts from a ``forecaster`` bundle (``step`` graph + the run's series record), torch-free.

The transform is the recipe's (``rnnkit.core.tasks.timeseries``): lv = log y (or y), seasonal
difference d_t = lv_t - lv_{t-m}, z = (d - mu) / sd; inputs (z_t, sin, cos of the phase t / m),
the output at t predicts z_{t+1}. A forecast feeds the history through the graph once, then its
own predictions back, one step at a time (``TimeseriesTask.multi_step``).

Period and log come from a series the model was trained on (the bundle's ``task.series`` record;
the first one unless named). mu / sd are that series' training figures when it is named, else the
history's own (a new series in other units or growth stays in the range the model knows).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from rnnkit.core.data.readers import MISSING, finite_number  # the training readers' rules (stdlib + numpy)

from . import names
from .bundle import BundleError
from .predict import MAX_HISTORY_POINTS, MAX_HORIZON, InputError, graph, load_bundle

_SEP = re.compile(r"[\s,;]+")


def parse_history(text: str) -> list[float]:
    """Numbers separated by spaces, commas, semicolons or lines; CSV rows ``label,value`` take
    their last field (empty / NA there: a gap, filled linearly as ``read_series_csv`` does), and a
    first line without numbers (a header such as ``date,value``) is skipped."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    if lines and all(finite_number(f) is None for f in _SEP.split(lines[0]) if f) and not _gap_row(lines[0]):
        lines = lines[1:]
    out: list[float] = []
    for no, line in enumerate(lines, 1):
        fields = [f for f in _SEP.split(line) if f]
        if "," in line and finite_number(fields[0]) is None:  # a CSV row: time label, ..., value
            last = line.rsplit(",", 1)[1].strip()
            fields = [last] if last.lower() not in MISSING else []
            if not fields:
                out.append(math.nan)
        for f in fields:
            x = finite_number(f)
            if x is None:
                raise InputError(f"line {no}: {f[:30]!r} is not a finite number")
            out.append(x)
        if len(out) > MAX_HISTORY_POINTS:
            raise InputError(f"the history has more than {MAX_HISTORY_POINTS:,} values; give the recent ones")
    y = np.asarray(out, dtype=np.float64)
    known = ~np.isnan(y)
    if y.size and not known.all():
        if not known.any():
            raise InputError("the history has no values, only gaps")
        idx = np.arange(len(y))
        y = np.interp(idx, idx[known], y[known])
    return y.tolist()


def _gap_row(line: str) -> bool:
    """A CSV row whose value is missing ("1949-01," or "1949-01,NA"): data, not a header."""
    return "," in line and line.rsplit(",", 1)[1].strip().lower() in MISSING


def seasonal_transform(y: np.ndarray, m: int, log: bool, mu: Optional[float] = None, sd: Optional[float] = None,
                       fit: Optional[int] = None, sd_if_flat: float = 1.0) -> tuple[np.ndarray, np.ndarray, float, float]:
    """The recipe's transform of a series: ``(lv, z, mu, sd)`` with lv = log y (or y) and z = (d - mu) / sd
    of the seasonal differences d_t = lv_t - lv_{t-m} (z[k] is position m + k). mu / sd as given, else
    those of the first ``fit`` differences (default all of them; sd 0 -> ``sd_if_flat``)."""
    lv = np.log(y) if log else np.array(y, dtype=np.float64)
    d = lv[m:] - lv[:-m]
    if mu is None or sd is None:
        part = d[:fit] if fit is not None else d
        mu, sd = float(part.mean()), float(part.std()) or sd_if_flat
    return lv, (d - mu) / sd, float(mu), float(sd)


class SeriesForecaster:
    """``forecast(history, horizon)`` with a ``forecaster`` bundle."""

    def __init__(self, directory: str | Path, threads: int = 1):
        self.bundle = load_bundle(directory, "forecaster", tokenizer=False)
        self.step = graph(self.bundle, names.JOB_STEP, threads)
        task = self.bundle.manifest.get("task") or {}
        series = task.get("series") if isinstance(task, dict) else None
        self.series: dict[str, dict] = {}
        for name, rec in (series or {}).items():
            try:
                spec = {"period": int(rec["period"]), "log": bool(rec.get("log", False)),
                        "mu": float(rec["mu"]), "sd": float(rec["sd"])}
            except (KeyError, TypeError, ValueError):
                continue
            if 1 <= spec["period"] <= 10_000 and math.isfinite(spec["mu"]) and math.isfinite(spec["sd"]) and spec["sd"] > 0:
                self.series[str(name)] = spec
        if not self.series:
            raise BundleError(f"{directory}: the manifest's task record names no series (period, mu, sd)")

    @property
    def default_series(self) -> str:
        return next(iter(self.series))

    def spec(self, series: Optional[str]) -> dict:
        if series is None:
            return self.series[self.default_series]
        if series not in self.series:
            raise InputError(f"unknown series {str(series)[:40]!r}; this model knows: {', '.join(self.series)}")
        return self.series[series]

    def _features(self, z: np.ndarray, t0: int, period: int, phase: int) -> np.ndarray:
        angle = 2 * np.pi * (np.arange(t0, t0 + len(z)) + phase) / period
        return np.stack([z, np.sin(angle), np.cos(angle)], axis=-1)[None].astype(np.float32)

    def _run(self, z: np.ndarray, t0: int, period: int, phase: int, state=None) -> dict[str, np.ndarray]:
        state = self.step.zero_state(1) if state is None else state
        return self.step.run(**{names.FEATURES: self._features(z, t0, period, phase)},
                             **dict(zip(self.step.state_in, state)))

    def recursive(self, lv: np.ndarray, z: np.ndarray, m: int, mu: float, sd: float, horizon: int,
                  phase: int = 0) -> np.ndarray:
        """The next ``horizon`` values of the transformed series ``lv`` (log y or y): the history's
        ``z`` (its normalised seasonal differences (d - mu) / sd of positions m .. len(lv) - 1) read once, then each
        prediction fed back (``TimeseriesTask.multi_step``)."""
        n = len(lv)
        out = self._run(z, m, m, phase)
        lv_all = list(lv)
        for t in range(n, n + horizon):
            z_next = float(out[names.PREDICTIONS][0, -1, 0])
            lv_all.append(z_next * sd + mu + lv_all[t - m])
            if t + 1 < n + horizon:
                out = self._run(np.array([z_next]), t, m, phase, [out[k] for k in self.step.state_out])
        return np.asarray(lv_all[n:])

    def one_step(self, lv: np.ndarray, z: np.ndarray, m: int, mu: float, sd: float, start: int, end: int,
                 phase: int = 0) -> np.ndarray:
        """Predictions of lv[start:end], each from the true history before it (``TimeseriesTask.one_step``):
        the output at t - 1 predicts t. ``z``: as for ``recursive``, of positions m, m + 1, ... (at least to end - 2)."""
        out = self._run(z[:end - 1 - m], m, m, phase)
        z_hat = out[names.PREDICTIONS][0, start - m - 1:end - m - 1, 0].astype(np.float64)
        return z_hat * sd + mu + lv[start - m:end - m]

    def forecast(self, history: Sequence[float], horizon: int, series: Optional[str] = None,
                 phase: int = 0) -> dict:
        """The next ``horizon`` values after ``history``. ``phase``: the position of the first
        value within the season (0: the season's start, as the training series began)."""
        spec = self.spec(series)
        m, log = spec["period"], spec["log"]
        y = np.asarray(history, dtype=np.float64)
        if y.ndim != 1 or not np.isfinite(y).all():
            raise InputError("the history must be a list of finite numbers")
        if not 1 <= horizon <= MAX_HORIZON:
            raise InputError(f"horizon must be from 1 to {MAX_HORIZON}, got {horizon}")
        if not m + 2 <= len(y) <= MAX_HISTORY_POINTS:
            raise InputError(f"the history has {len(y)} values; this model needs {m + 2} to "
                             f"{MAX_HISTORY_POINTS:,} (one season of {m} and more)")
        if log and (y <= 0).any():
            raise InputError(f"series like {series or self.default_series!r} are modelled in logs: every value must be > 0")
        # A flat history (no seasonal change at all) has no spread of its own: take the recorded
        # series' (sd 1 would make the model's usual wiggles +-100 % swings in log space).
        lv, z, mu, sd = seasonal_transform(y, m, log, *((spec["mu"], spec["sd"]) if series is not None else ()),
                                           sd_if_flat=spec["sd"])
        fc = self.recursive(lv, z, m, mu, sd, horizon, phase)
        fc = np.exp(fc) if log else fc
        if not np.isfinite(fc).all():
            raise InputError("the forecast overflowed: the history is far outside what this model knows")
        return {"forecast": [float(f"{v:.6g}") for v in fc], "period": m, "log": log,  # 6 significant digits
                "series": series or self.default_series, "stats": "recorded" if series is not None else "history"}

    def predict(self, history: Sequence[float] | str, horizon: Optional[int] = None, series: Optional[str] = None,
                phase: int = 0) -> dict:
        """``forecast`` with the history as numbers or text; horizon defaults to one season."""
        values = parse_history(history) if isinstance(history, str) else list(history)
        return self.forecast(values, horizon or self.spec(series)["period"], series, phase)
