"""``rnnkit eval BUNDLE --data FILE`` without torch: a bundle's task metric on your file.

    from rnnkit.edge.evaluate import evaluate_bundle
    evaluate_bundle("models/ner-conll", "docs/examples/entities.conll")   # {"metric": "f1", "f1": ..., ...}

The figures are the training task's (rnnkit.core.tasks), computed the same way on the bundle's
graphs with numpy + onnxruntime only:

    lm          loss (nats per token), ppl, bits per token (per char for char models): the text as one
                stream in 10 columns, 35-token windows, the state carried (``LMTask.stream_loss``)
    classifier  accuracy over the rows with a polarity, score MAE / MSE (``SentimentTask``; reviews
                cut at 256 tokens, as ``rnnkit predict`` caps them)
    tagger      entity precision / recall / F1 (conlleval rules) and per type, token accuracy
    seq2seq     corpus BLEU and chrF (sacreBLEU's definitions, ``rnnkit.core.metrics.bleu``) of beam
                search translations, teacher-forced loss / perplexity
    forecaster  RMSE / MAPE of the last ``horizon`` values one step ahead and recursive, and
                seasonal-naive's, in the series' units

The metrics themselves live in ``rnnkit.core.metrics`` (torch-free), where training takes them from,
so a run scored with PyTorch (``rnnkit.core.cli.eval``) and its bundle scored here agree within
the int8 tolerance (tests/test_eval_cli.py, tests/test_edge_evaluate.py). The files are read
with ``rnnkit.core.data.readers``, as ``rnnkit train --train`` reads them.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

from rnnkit.core.data.readers import read_conll, read_parallel_tsv, read_series_csv, read_text_lines, read_tsv
from rnnkit.core.metrics.bleu import corpus_scores
from rnnkit.core.metrics.entities import tagger_scores
from rnnkit.core.metrics.numeric import lm_figures, mape, rmse, seasonal_naive, sentiment_figures

from . import names
from .bundle import Bundle, open_bundle
from .npsample import log_softmax
from .predict_series import seasonal_transform
from .runner import Runner, StepRunner

# kind -> the figure ``rnnkit eval`` puts first
HEADLINE = {"lm": "ppl", "classifier": "acc", "tagger": "f1", "seq2seq": "bleu", "forecaster": "rmse_1step"}

# The training tasks' evaluation settings (rnnkit.core.tasks), kept equal so the figures match.
LM_BPTT, LM_COLUMNS = 35, 10             # LMTask(bptt=35, eval_batch_size=10)
REVIEW_MAX_TOKENS, REVIEW_BATCH = 256, 256
TAG_BATCH = 128
PAIR_BATCH = 64                          # TranslationTask: translate / split_loss batches
DECODE_MAX_LEN, LENGTH_PENALTY = 200, 0.6


def _engine(bundle: Bundle, kind: str, threads: int):
    from .predict import engine_class

    return engine_class(kind)(bundle.path, threads=threads)


def _runner(bundle: Bundle, job: str, precision: Optional[str], threads: int, step: bool = False) -> Runner:
    cls = StepRunner if step else Runner
    return bundle.runner(cls, job, precision, threads=threads, mem_arena=False)


def _pad(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Right-padded (B, T) int64 and lengths; an empty list becomes one pad (``tasks.common.pad_ids``)."""
    lengths = [max(1, len(s)) for s in seqs]
    out = np.full((len(seqs), max(lengths)), pad_id, dtype=np.int64)
    for i, s in enumerate(seqs):
        out[i, :len(s)] = s
    return out, np.asarray(lengths, dtype=np.int64)


def _nll_sum(logits: np.ndarray, targets: np.ndarray, ignore: int = -100) -> tuple[float, int]:
    """Summed cross-entropy (nats) of (N, V) logits at (N,) targets, ``ignore`` left out."""
    keep = targets != ignore
    lp = log_softmax(logits[keep])  # float64
    return float(-lp[np.arange(lp.shape[0]), targets[keep]].sum()), int(keep.sum())


# --------------------------------------------------------------------------- language models
def stream_nats(step: StepRunner, ids: np.ndarray, bptt: int = LM_BPTT, columns: int = LM_COLUMNS) -> float:
    """Mean nats per token over a stream: ``columns`` contiguous columns read in ``bptt`` windows,
    the state carried (``LMTask.stream_loss`` with ``batchify``)."""
    cols = min(columns, max(1, ids.size // 2 - 1))
    n = ids.size // cols
    if n < 2:
        raise ValueError(f"a stream of {ids.size} tokens is too short for {cols} columns")
    data = ids[:n * cols].reshape(cols, n).astype(np.int64)
    state = step.init_state(cols)
    total, count = 0.0, 0
    for i in range(0, n - 1, bptt):
        t = min(bptt, n - 1 - i)
        logits, state = step.step_unchecked(np.ascontiguousarray(data[:, i:i + t]), state)
        nll, k = _nll_sum(logits.reshape(-1, logits.shape[-1]), data[:, i + 1:i + 1 + t].reshape(-1))
        total, count = total + nll, count + k
    return total / max(count, 1)


def eval_lm(bundle: Bundle, data: Path, precision: Optional[str], threads: int, **_) -> dict:
    from rnnkit.core.text.tokenizers import CharTokenizer, stream_ids

    from .predict import load_tokenizer

    tok = load_tokenizer(bundle)
    lines = read_text_lines(data, skip_blank=True)
    if not lines:
        raise ValueError(f"{data}: no text")
    kind = "char" if isinstance(tok, CharTokenizer) else "word"
    ids = np.asarray(stream_ids(tok, kind, lines), dtype=np.int64)
    if ids.size < 2:
        raise ValueError(f"{data}: fewer than 2 tokens")
    step = _runner(bundle, names.JOB_STEP, precision, threads, step=True)
    unit = "char" if kind == "char" else "token"
    return {**lm_figures(stream_nats(step, ids)), "tokens": int(ids.size), "unit": unit, "lines": len(lines)}


# --------------------------------------------------------------------------- sentiment
def eval_classifier(bundle: Bundle, data: Path, precision: Optional[str], threads: int, **_) -> dict:
    from .predict import load_tokenizer

    rows = read_tsv(data)
    if not rows:
        raise ValueError(f"{data}: no rows")
    tok = load_tokenizer(bundle)
    graph = _runner(bundle, names.JOB_CLASSIFY, precision, threads)
    ids = [list(tok.encode(t))[:REVIEW_MAX_TOKENS] for _, t in rows]
    labels: list[int] = []
    scores: list[float] = []
    for i in range(0, len(ids), REVIEW_BATCH):
        tokens, lengths = _pad(ids[i:i + REVIEW_BATCH], tok.pad_id)
        out = graph.run(**{names.TOKENS: tokens, names.LENGTHS: lengths})
        labels += [1 if k == 1 else -1 for k in out[names.LOGITS].argmax(-1).tolist()]
        scores += out[names.SCORE][:, 0].astype(np.float64).tolist()
    gold = [float(sc) for sc, _ in rows]
    return {**sentiment_figures(labels, scores, gold), "rows": len(rows),
            "rows_with_polarity": sum(1 for g in gold if g != 0)}


# --------------------------------------------------------------------------- tagger
def eval_tagger(bundle: Bundle, data: Path, precision: Optional[str], threads: int, **_) -> dict:
    sents = [x for x in read_conll(data) if x[0]]
    if not sents:
        raise ValueError(f"{data}: no sentences")
    tagger = _engine(bundle, "tagger", threads)
    if precision:
        tagger.graph = _runner(bundle, names.JOB_TAG, precision, threads)
    pred: list[list[str]] = []
    for k in range(0, len(sents), TAG_BATCH):
        pred += tagger.tag_batch([toks for toks, _ in sents[k:k + TAG_BATCH]])
    return {**tagger_scores([g for _, g in sents], pred), "sentences": len(sents),
            "tokens": sum(len(t) for t, _ in sents)}


# --------------------------------------------------------------------------- translation
def _teacher_forced(tr, pairs: Sequence[tuple[list[int], list[int]]]) -> tuple[float, int]:
    """Summed cross-entropy of the targets given the sources (decoder input [bos] + y, target y + [eos])."""
    src, src_len = _pad([s for s, _ in pairs], tr.pad_id)
    tgt_in, _ = _pad([[tr.bos_id] + t for _, t in pairs], tr.pad_id)
    tgt_out, _ = _pad([t + [tr.eos_id] for _, t in pairs], -100)
    enc = tr.encoder.run(**{names.SRC: src, names.SRC_LEN: src_len})
    state = tuple(enc[n] for n in tr.decoder.state_in)
    one_step = tr.decoder.inputs[names.PREV].shape[1] == 1  # bahdanau / input feeding: one token a call
    logits = []
    for prev in ([tgt_in[:, t:t + 1] for t in range(tgt_in.shape[1])] if one_step else [tgt_in]):
        out = tr.decoder.run(**{names.PREV: np.ascontiguousarray(prev), names.MEMORY: enc[names.MEMORY],
                                names.SRC_MASK: enc[names.SRC_MASK]}, **dict(zip(tr.decoder.state_in, state)))
        state = tuple(out[n] for n in tr.decoder.state_out)
        logits.append(out[names.LOGITS])
    z = np.concatenate(logits, axis=1)
    return _nll_sum(z.reshape(-1, z.shape[-1]), tgt_out.reshape(-1))


def translate_all(tr, sources: Sequence[list[int]], beam: int, length_penalty: float = LENGTH_PENALTY) -> list[str]:
    """Beam-search translations of source ids, as ``TranslationTask.translate`` decodes: sources sorted
    by length in batches of 64, at most min(200, 2 * the batch's longest source + 10) tokens out."""
    order = sorted(range(len(sources)), key=lambda i: len(sources[i]))
    out: dict[int, str] = {}
    for k in range(0, len(order), PAIR_BATCH):
        rows = order[k:k + PAIR_BATCH]
        limit = min(DECODE_MAX_LEN, 2 * max(len(sources[i]) for i in rows) + 10)
        for i in rows:
            best = tr.search(sources[i], beam, limit, length_penalty)
            toks = best.tokens[:best.tokens.index(tr.eos_id)] if tr.eos_id in best.tokens else best.tokens
            out[i] = tr.tok.decode([t for t in toks if t != tr.pad_id])
    return [out[i] for i in range(len(sources))]


def eval_seq2seq(bundle: Bundle, data: Path, precision: Optional[str], threads: int, beam: int = 4, **_) -> dict:
    pairs = read_parallel_tsv(data)
    if not pairs:
        raise ValueError(f"{data}: no pairs")
    if not 1 <= beam <= 16:
        raise ValueError(f"--beam must be from 1 to 16, got {beam}")
    tr = _engine(bundle, "seq2seq", threads)
    if precision:
        tr.encoder = _runner(bundle, names.JOB_ENCODER, precision, threads)
        tr.decoder = _runner(bundle, names.JOB_DECODER, precision, threads)
    kept, ids = [], []
    for a, b in pairs:  # a pair with an empty side has nothing to score (TranslationTask._add)
        s, t = list(tr.tok.encode(a)), list(tr.tok.encode(b))
        if s and t:
            kept.append((a, b))
            ids.append((s, t))
    if not kept:
        raise ValueError(f"{data}: no pair has tokens on both sides")
    total, count = 0.0, 0
    order = sorted(range(len(ids)), key=lambda i: len(ids[i][0]))
    for k in range(0, len(order), PAIR_BATCH):
        nll, n = _teacher_forced(tr, [ids[i] for i in order[k:k + PAIR_BATCH]])
        total, count = total + nll, count + n
    loss = total / max(1, count)
    hyps = translate_all(tr, [s for s, _ in ids], beam)
    return {**corpus_scores(hyps, [b for _, b in kept]), "loss": loss, "ppl": math.exp(min(loss, 50.0)),
            "pairs": len(kept), "skipped_empty": len(pairs) - len(kept), "beam": beam}


# --------------------------------------------------------------------------- forecaster
def eval_forecaster(bundle: Bundle, data: Path, precision: Optional[str], threads: int,
                    horizon: Optional[int] = None, series: Optional[str] = None, **_) -> dict:
    fc = _engine(bundle, "forecaster", threads)
    if precision:
        fc.step = _runner(bundle, names.JOB_STEP, precision, threads)
    known = fc.series
    name = series or fc.default_series
    if name not in known:
        raise ValueError(f"--series {name!r}: this model knows {', '.join(known)}")
    m, log = known[name]["period"], known[name]["log"]
    raw = read_series_csv(data)
    y = np.asarray(raw.values, dtype=np.float64)
    horizon = horizon or m
    if horizon < 1:
        raise ValueError(f"--horizon must be >= 1, got {horizon}")
    n, start = len(y), len(y) - horizon
    if start < 2 * m + 2:  # as rnnkit.core.tasks.timeseries.Series checks
        raise ValueError(f"series {raw.name!r}: {n} points leave only {start} before the last {horizon}; "
                         f"need at least two seasons ({2 * m}) plus a few")
    if log and (y <= 0).any():
        raise ValueError(f"series {raw.name!r} has values <= 0: series like {name!r} are modelled in logs")
    # TimeseriesTask's transform, mu / sd from the span before the scored values
    lv, z, mu, sd = seasonal_transform(y, m, log, fit=start - m)
    back = np.exp if log else (lambda v: v)
    one = back(fc.one_step(lv, z, m, mu, sd, start, n))
    multi = back(fc.recursive(lv[:start], z[:start - m], m, mu, sd, horizon))
    actual = y[start:]
    sn_one, sn_multi = seasonal_naive(y, m, start, n), seasonal_naive(y, m, start, n, one_step=False)
    out = {"rmse_1step": rmse(actual, one), "mape_1step": mape(actual, one), "rmse_multi": rmse(actual, multi),
           "mape_multi": mape(actual, multi), "snaive_rmse_1step": rmse(actual, sn_one),
           "snaive_rmse_multi": rmse(actual, sn_multi)}
    out["rel_rmse"] = out["rmse_1step"] / max(out["snaive_rmse_1step"], 1e-12)
    return {**out, "points": n, "horizon": horizon, "period": m, "log": log, "like_series": name}


EVALUATORS: dict[str, Callable[..., dict]] = {"lm": eval_lm, "classifier": eval_classifier, "tagger": eval_tagger,
                                              "seq2seq": eval_seq2seq, "forecaster": eval_forecaster}


def evaluate_bundle(directory: str | Path, data: str | Path, precision: Optional[str] = None, threads: int = 1,
                    **options: Any) -> dict:
    """``{"kind", "backend", "metric", <the task's figures>}`` of the bundle at ``directory`` on ``data``.

    ``precision``: "fp32" runs the bundle's fp32 reference graphs (default: the bundle's own);
    ``options``: ``beam`` (translation), ``horizon`` and ``series`` (forecasters)."""
    data = Path(data)
    if not data.is_file():
        raise FileNotFoundError(f"--data {data}: no such file")
    bundle = open_bundle(directory)
    if bundle.kind not in EVALUATORS:
        raise ValueError(f"{directory}: rnnkit eval scores {', '.join(EVALUATORS)} bundles, not {bundle.kind!r}")
    if threads < 1:
        raise ValueError(f"--threads must be >= 1, got {threads}")
    figures = EVALUATORS[bundle.kind](bundle, data, precision, threads,
                                      **{k: v for k, v in options.items() if v is not None})
    return {"kind": bundle.kind, "backend": f"onnxruntime {precision or bundle.precision}",
            "metric": HEADLINE[bundle.kind], **figures}
