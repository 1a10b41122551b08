"""Time-series forecasting (many-to-many): a causal RNN predicts the next value at every step.

Per series: optional log, seasonal difference at lag ``period`` (the model learns what
seasonal-naive gets wrong), then z-normalisation with train-span statistics. Inputs at step
t are (z_t, sin, cos of the seasonal phase): (B, T, 3); the output at t predicts z_{t+1}.

Split per series (last points held out, in time order): train | val (``val_len``) |
test (``test_len``). Reported on val and test, in the series' own units:
- one-step-ahead (history known up to t-1, the way the on-device step runner works),
- a recursive multi-step forecast of the whole span from its start (predictions fed back),
each for the RNN, seasonal-naive and a statsmodels SARIMAX fitted on the data before the span.
The selection metric ``val_rel_rmse`` is the geometric mean over series of
RMSE(RNN) / RMSE(seasonal-naive), one-step on val: below 1 beats seasonal-naive.
"""

from __future__ import annotations

import math
import random
import warnings
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from rnnkit.core.metrics.numeric import mape, rmse, seasonal_naive  # noqa: F401  (torch-free, re-exported)
from rnnkit.core.tasks.common import Batches, evaluating, model_device

INPUT_SIZE = 3  # z, sin(phase), cos(phase)


def fourier_terms(n: int, period: float, k: int, offset: int = 0) -> np.ndarray:
    """(n, 2k) sin/cos harmonics of a (possibly long) season, for SARIMAX's exog."""
    t = np.arange(offset, offset + n)[:, None]
    j = np.arange(1, k + 1)[None, :]
    return np.concatenate([np.sin(2 * np.pi * j * t / period), np.cos(2 * np.pi * j * t / period)], axis=1)


@dataclass
class Series:
    """One univariate series and how to split / model it."""

    name: str
    values: np.ndarray
    period: int
    val_len: int
    test_len: int
    log: bool = True
    # SARIMAX baseline: seasonal_order None -> seasonality through ``fourier_k`` harmonics instead
    # (a 52-week seasonal ARIMA is too slow to fit; harmonics are the usual substitute).
    order: tuple[int, int, int] = (1, 1, 1)
    seasonal_order: Optional[tuple[int, int, int, int]] = None
    fourier_k: int = 3
    trend: Optional[str] = None

    def __post_init__(self):
        self.values = np.asarray(self.values, dtype=float)
        if self.values.ndim != 1 or not np.isfinite(self.values).all():
            raise ValueError(f"series {self.name!r} must be 1-D and finite (interpolate gaps first)")
        if self.log and (self.values <= 0).any():
            raise ValueError(f"series {self.name!r} has values <= 0: set log=false for it")
        if self.train_end < 2 * self.period + 2:
            raise ValueError(f"series {self.name!r}: {len(self.values)} points leave only {self.train_end} for "
                             f"training; need at least two seasons ({2 * self.period}) plus a few")

    @property
    def train_end(self) -> int:
        return len(self.values) - self.val_len - self.test_len

    def span(self, split: str) -> tuple[int, int]:
        n = len(self.values)
        return {"val": (self.train_end, n - self.test_len), "test": (n - self.test_len, n)}[split]


class _Prepared:
    """A series' transform: lv = log y, d_t = lv_t - lv_{t-m}, z = (d - mu) / sd (train stats)."""

    def __init__(self, s: Series):
        self.s, m = s, s.period
        self.lv = np.log(s.values) if s.log else s.values.copy()
        d = np.full_like(self.lv, np.nan)
        d[m:] = self.lv[m:] - self.lv[:-m]
        self.mu = float(np.mean(d[m:s.train_end]))
        self.sd = float(np.std(d[m:s.train_end])) or 1.0
        self.z = (d - self.mu) / self.sd
        phase = 2 * np.pi * np.arange(len(self.lv)) / m
        self.sin, self.cos = np.sin(phase), np.cos(phase)

    def features(self, z: np.ndarray, start: int) -> torch.Tensor:
        """(1, len(z), 3) inputs for z values at positions start, start+1, ..."""
        t = np.arange(start, start + len(z))
        x = np.stack([z, self.sin[t], self.cos[t]], axis=-1)
        return torch.tensor(x, dtype=torch.float32).unsqueeze(0)

    def to_values(self, z_hat: np.ndarray, lv_past: np.ndarray) -> np.ndarray:
        lv = z_hat * self.sd + self.mu + lv_past
        return np.exp(lv) if self.s.log else lv


class TimeseriesTask:
    """Forecaster task over one or more series; batch = (x (B, W, 3), y (B, W, 1)) of one series."""

    name = "timeseries"
    metric = "val_rel_rmse"
    metric_mode = "min"

    def __init__(self, series: Sequence[Series], window: int = 48, batch_size: int = 16,
                 batches_per_epoch: int = 20, seed: int = 0, sarimax: bool = True):
        if not series:
            raise ValueError("no series given")
        self.series = [_Prepared(s) for s in series]
        self.window, self.batch_size, self.batches_per_epoch, self.seed = window, batch_size, batches_per_epoch, seed
        self.use_sarimax = sarimax
        self.rank, self.world_size = 0, 1
        self._baselines: dict[str, dict[str, float]] = {}

    # ----------------------------------------------------------------- training
    def train_batches(self, epoch: int) -> Batches:
        rng = random.Random(self.seed * 104729 + epoch)
        plan = []
        for b in range(self.batches_per_epoch):
            p = self.series[(b + epoch) % len(self.series)]  # alternate series, one per batch
            m, end = p.s.period, p.s.train_end
            w = min(self.window, end - m - 1)  # targets z[s+1 .. s+w] stay inside the train span
            plan.append((p, w, [rng.randrange(m, end - w) for _ in range(self.batch_size)]))
        n = len(plan) - len(plan) % self.world_size if self.world_size > 1 else len(plan)
        return Batches(plan[:n][self.rank::self.world_size], lambda k, item: self._batch(*item))

    @staticmethod
    def _batch(p: "_Prepared", w: int, starts: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.cat([p.features(p.z[s:s + w], s) for s in starts])
        y = torch.tensor(np.stack([p.z[s + 1:s + w + 1] for s in starts]), dtype=torch.float32).unsqueeze(-1)
        return x, y

    def loss(self, model, batch, carry):
        x, y = (t.to(model_device(model)) for t in batch)
        pred, _ = model(x)
        return F.mse_loss(pred, y), y.numel(), None

    # ----------------------------------------------------------------- forecasting
    def one_step(self, model, p: _Prepared, start: int, end: int) -> np.ndarray:
        """RNN predictions of y[start:end], each from the true history before it."""
        m = p.s.period
        with evaluating(model):
            pred, _ = model(p.features(p.z[m:end - 1], m).to(model_device(model)))
        z_hat = pred[0, start - m - 1:end - m - 1, 0].double().cpu().numpy()  # output at t-1 predicts t
        return p.to_values(z_hat, p.lv[start - m:end - m])

    def multi_step(self, model, p: _Prepared, start: int, end: int) -> np.ndarray:
        """Recursive forecast of y[start:end] from history before ``start``; predictions fed back."""
        m = p.s.period
        dev = model_device(model)
        lv = p.lv[:start].tolist()
        out = []
        with evaluating(model):
            pred, state = model(p.features(p.z[m:start], m).to(dev))
            z_next = float(pred[0, -1, 0])
            for t in range(start, end):
                lv.append(float(p.to_values(np.array([z_next]), np.array([lv[t - m]]))[0]))
                if p.s.log:
                    lv[-1] = math.log(lv[-1])
                out.append(math.exp(lv[-1]) if p.s.log else lv[-1])
                pred, state = model(p.features(np.array([z_next]), t).to(dev), state)
                z_next = float(pred[0, -1, 0])
        return np.array(out)

    def sarimax(self, p: _Prepared, start: int, end: int) -> tuple[np.ndarray, np.ndarray]:
        """SARIMAX fitted on y[:start]: (one-step predictions, multi-step forecast) of y[start:end]."""
        from statsmodels.tsa.statespace.sarimax import SARIMAX

        s = p.s
        exog = None if s.seasonal_order else fourier_terms(end, s.period, s.fourier_k)
        kw = dict(order=s.order, seasonal_order=s.seasonal_order or (0, 0, 0, 0), trend=s.trend)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence chatter; the metrics say how good it is
            res = SARIMAX(p.lv[:start], exog=None if exog is None else exog[:start], **kw).fit(disp=False)
            full = res.apply(p.lv[:end], exog=exog, refit=False)
            one = full.get_prediction(start=start, end=end - 1).predicted_mean
            multi = res.get_forecast(end - start, exog=None if exog is None else exog[start:end]).predicted_mean
        back = np.exp if s.log else (lambda v: v)
        return back(np.asarray(one)), back(np.asarray(multi))

    def baselines(self, p: _Prepared, split: str) -> dict[str, float]:
        """Seasonal-naive and SARIMAX scores on a span (they do not change: computed once)."""
        key = f"{p.s.name}/{split}"
        if key not in self._baselines:
            start, end = p.s.span(split)
            y = p.s.values[start:end]
            out = {}
            for how, one in (("1step", True), ("multi", False)):
                yh = seasonal_naive(p.s.values, p.s.period, start, end, one_step=one)
                out[f"snaive_{how}_rmse"], out[f"snaive_{how}_mape"] = rmse(y, yh), mape(y, yh)
            if self.use_sarimax:
                one, multi = self.sarimax(p, start, end)
                out["sarimax_1step_rmse"], out["sarimax_1step_mape"] = rmse(y, one), mape(y, one)
                out["sarimax_multi_rmse"], out["sarimax_multi_mape"] = rmse(y, multi), mape(y, multi)
            self._baselines[key] = out
        return self._baselines[key]

    def split_metrics(self, model, split: str, with_baselines: bool = True) -> dict[str, float]:
        out: dict[str, float] = {}
        rel = []
        for p in self.series:
            start, end = p.s.span(split)
            if end <= start:
                continue
            y = p.s.values[start:end]
            one, multi = self.one_step(model, p, start, end), self.multi_step(model, p, start, end)
            pre = f"{split}_{p.s.name}_"
            out[pre + "rnn_1step_rmse"], out[pre + "rnn_1step_mape"] = rmse(y, one), mape(y, one)
            out[pre + "rnn_multi_rmse"], out[pre + "rnn_multi_mape"] = rmse(y, multi), mape(y, multi)
            base = self.baselines(p, split) if with_baselines else {}
            out.update({pre + k: v for k, v in base.items()})
            sn = rmse(y, seasonal_naive(p.s.values, p.s.period, start, end))
            rel.append(out[pre + "rnn_1step_rmse"] / max(sn, 1e-12))
        if rel:
            out[f"{split}_rel_rmse"] = float(np.exp(np.mean(np.log(rel))))
        return out

    def evaluate(self, model) -> dict[str, float]:
        """val metrics (selection) only: the test span is scored once, by ``finalize``."""
        return self.split_metrics(model, "val", with_baselines=False)

    def scores(self, model) -> dict[str, float]:
        """val metrics and test metrics with the baselines, all on the same spans."""
        return {**self.evaluate(model), **self.split_metrics(model, "test")}

    def finalize(self, model, run_dir=None) -> dict:
        """Best model's scores; per series a CSV of the test span: actual and every forecast."""
        from pathlib import Path

        from rnnkit.core.atomic import atomic_write_text
        from rnnkit.core.tasks.common import write_final

        rec = self.scores(model)
        for p in self.series:
            start, end = p.s.span("test")
            cols = {"actual": p.s.values[start:end], "rnn_1step": self.one_step(model, p, start, end),
                    "rnn_multi": self.multi_step(model, p, start, end),
                    "snaive_1step": seasonal_naive(p.s.values, p.s.period, start, end),
                    "snaive_multi": seasonal_naive(p.s.values, p.s.period, start, end, one_step=False)}
            if self.use_sarimax:
                cols["sarimax_1step"], cols["sarimax_multi"] = self.sarimax(p, start, end)
            if run_dir is not None:
                lines = ["index," + ",".join(cols)] + [
                    f"{start + i}," + ",".join(f"{c[i]:.6g}" for c in cols.values()) for i in range(end - start)]
                atomic_write_text(Path(run_dir) / f"forecast_{p.s.name}.csv", "\n".join(lines) + "\n")
        rec["params"] = sum(p.numel() for p in model.parameters())
        return write_final(run_dir, rec)

    def describe(self) -> dict:
        return {"task": self.name, "metric": self.metric,
                "units": "RMSE in the series' units, MAPE in %; rel_rmse = RNN / seasonal-naive (one-step)",
                "series": {p.s.name: {"points": len(p.s.values), "period": p.s.period, "val_len": p.s.val_len,
                                      "test_len": p.s.test_len, "log": p.s.log, "mu": p.mu, "sd": p.sd,
                                      "sarimax": {"order": p.s.order, "seasonal_order": p.s.seasonal_order,
                                                  "fourier_k": p.s.fourier_k, "trend": p.s.trend}}
                           for p in self.series},
                "window": self.window, "batch_size": self.batch_size}


# --------------------------------------------------------------------------- recipe builder
_SPEC_KEYS = ("period", "val_len", "test_len", "log", "order", "seasonal_order", "fourier_k", "trend")


def _series_spec(spec, name: str = "user_series") -> dict:
    """A series' settings, checked: a misspelt key, a string period or ``log: "no"`` is a clear
    error before anything is written, not a traceback (or a silent yes) later."""
    if not isinstance(spec, dict):
        raise ValueError(f"{name}: expected an object like {{\"period\": 12}}, got {str(spec)[:40]!r}")
    unknown = sorted(set(spec) - set(_SPEC_KEYS))
    if unknown:
        raise ValueError(f"{name}: unknown key(s) {unknown}; allowed: {', '.join(_SPEC_KEYS)}")
    out = dict(spec)
    for key in ("period", "val_len", "test_len", "fourier_k"):
        if key in out:
            v = out[key]
            if isinstance(v, bool) or not isinstance(v, int) or v < (0 if key == "fourier_k" else 1):
                raise ValueError(f"{name}: {key} must be a whole number >= {0 if key == 'fourier_k' else 1}, "
                                 f"got {str(v)[:40]!r}")
    if "log" in out and not isinstance(out["log"], bool):
        raise ValueError(f"{name}: log must be true or false, got {str(out['log'])[:40]!r}")
    try:
        for key in ("order", "seasonal_order"):
            if out.get(key) is not None:
                out[key] = tuple(int(v) for v in out[key])
    except (TypeError, ValueError):
        raise ValueError(f"{name}: {key} must be a list of whole numbers, got {str(out[key])[:40]!r}") from None
    return out


def build(recipe, run_dir):
    """``(model, task, None)`` for the timeseries recipe: one Forecaster on every listed series.

    data.series names the fetched series (airline, co2) and data.specs their split / transform /
    SARIMAX settings; with --train my.csv the user's series uses data.user_series instead.
    """
    from rnnkit.core.models.kinds import Forecaster, ForecasterConfig
    from rnnkit.core.tasks.common import model_fields, seeded_model

    data = recipe["data"]
    if data.get("train_file"):
        from rnnkit.core.data.readers import read_series_csv

        raw = read_series_csv(data["train_file"])
        loaded = [(raw.name, raw, data.get("user_series", {}))]
    else:
        from rnnkit.core.data.loaders import load_series

        specs = data.get("specs", {})
        names = list(data.get("series", ["airline", "co2"]))
        unknown = [n for n in names if n not in specs]
        if unknown:
            raise ValueError(f"data.series {unknown} have no entry in data.specs (known: {sorted(specs)})")
        loaded = [(n, load_series(n), specs[n]) for n in names]
    series = []
    for name, raw, spec in loaded:
        spec = _series_spec(spec, f"series {name!r}")
        if "period" not in spec:
            raise ValueError(f"series {name!r}: give its seasonal period (e.g. --set data.user_series="
                             "'{\"period\": 12, \"val_len\": 12, \"test_len\": 24}')")
        spec.setdefault("val_len", spec["period"])
        spec.setdefault("test_len", spec["period"])
        series.append(Series(name, raw.values, **spec))
    fields = {**model_fields(recipe), "input_size": INPUT_SIZE, "output_size": 1}
    task = TimeseriesTask(series, window=int(data.get("window", 48)), batch_size=int(data.get("batch_size", 16)),
                          batches_per_epoch=int(data.get("batches_per_epoch", 20)),
                          seed=int(recipe["train"].get("seed", 1337)), sarimax=bool(data.get("sarimax", True)))
    return seeded_model(recipe, Forecaster, ForecasterConfig(**fields)), task, None
