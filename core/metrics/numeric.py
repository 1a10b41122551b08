"""Number-valued task figures: language-model perplexity, sentiment accuracy / score error,
forecast errors and the seasonal-naive baseline (numpy only)."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np


# --------------------------------------------------------------------------- language models
def lm_figures(nats: float) -> dict[str, float]:
    """Mean nats per token -> ``{"loss", "ppl", "bits"}`` (ppl = exp(loss), capped at exp(50))."""
    return {"loss": nats, "ppl": math.exp(min(nats, 50.0)), "bits": nats / math.log(2)}


# --------------------------------------------------------------------------- sentiment
def sentiment_figures(labels: Sequence[int], scores: Sequence[float], gold: Sequence[float]) -> dict[str, float]:
    """Predicted polarity (+1 / -1) and score against gold scores in [-1, 1].

    ``acc``: polarity right, in %, over the rows with a polarity (gold != 0); ``acc_from_score``: the
    sign of the predicted score right; ``score_mae`` / ``score_mse`` over every row.
    """
    lab, pred, g = np.asarray(labels, np.int64), np.asarray(scores, np.float64), np.asarray(gold, np.float64)
    if not lab.shape == pred.shape == g.shape:
        raise ValueError(f"{lab.size} labels, {pred.size} scores and {g.size} gold scores")
    polar = g != 0
    n = max(1, int(polar.sum()))
    return {"acc": 100.0 * int(((lab == np.sign(g)) & polar).sum()) / n,
            "acc_from_score": 100.0 * int(((np.sign(pred) == np.sign(g)) & polar).sum()) / n,
            "score_mae": float(np.abs(pred - g).mean()) if g.size else 0.0,
            "score_mse": float(((pred - g) ** 2).mean()) if g.size else 0.0}


# --------------------------------------------------------------------------- forecasts
def mape(y: np.ndarray, yhat: np.ndarray) -> float:
    """Mean absolute percentage error in %; zero actuals are left out (undefined there)."""
    y, yhat = np.asarray(y, float), np.asarray(yhat, float)
    if y.shape != yhat.shape:
        raise ValueError(f"shapes differ: {y.shape} vs {yhat.shape}")
    keep = y != 0
    if not keep.any():
        raise ValueError("MAPE is undefined: every actual value is 0")
    return float(100.0 * np.mean(np.abs((y[keep] - yhat[keep]) / y[keep])))


def rmse(y: np.ndarray, yhat: np.ndarray) -> float:
    y, yhat = np.asarray(y, float), np.asarray(yhat, float)
    if y.shape != yhat.shape:
        raise ValueError(f"shapes differ: {y.shape} vs {yhat.shape}")
    return float(np.sqrt(np.mean((y - yhat) ** 2)))


def seasonal_naive(y: np.ndarray, period: int, start: int, end: int, one_step: bool = True) -> np.ndarray:
    """Seasonal-naive predictions of y[start:end].

    one-step: y_hat[t] = y[t - period] (the actual of one season ago);
    multi-step from origin ``start``: the last observed season repeated, y[start - period + (h mod period)].
    """
    if start < period:
        raise ValueError(f"seasonal-naive needs one full season ({period}) before index {start}")
    if one_step:
        return np.asarray(y[start - period:end - period], float)
    h = np.arange(end - start)
    return np.asarray(y[start - period + (h % period)], float)
