"""``rnnkit eval RUN_OR_BUNDLE --data FILE``: the task's own metric on your file.

    rnnkit eval runs/char-shakespeare --data my.txt        perplexity, bits per token (char for char models)
    rnnkit eval models/sentiment-mr --data reviews.tsv     accuracy, score MAE  (score<TAB>text or pos/neg)
    rnnkit eval models/ner-conll --data my.conll           entity F1 (conlleval), per type too
    rnnkit eval models/translate-en-de --data pairs.tsv    sacreBLEU, chrF      (source<TAB>target)
    rnnkit eval models/timeseries --data series.csv        RMSE / MAPE of the last --horizon values,
                                                           one step ahead and recursive, vs seasonal-naive

A run (``rnnkit train``'s directory) is scored with PyTorch; a bundle torch-free, with numpy and
onnxruntime only (``rnnkit.edge.evaluate``: works from the base install), and the two agree within
the int8 tolerance. Both take their metrics from ``rnnkit.core.metrics`` and read the files with the
same readers as ``rnnkit train --train`` (docs/OWN_DATA.md).
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def register(subparsers) -> None:
    p = subparsers.add_parser("eval", help="score a run or a bundle on your own file with its task's metric",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="a run directory (rnnkit train) or a bundle directory (rnnkit export)")
    p.add_argument("--data", required=True, metavar="FILE", help="your file, in the task's training format")
    p.add_argument("--precision", choices=("fp32", "int8"), default=None,
                   help="a bundle's graphs to run (default: the bundle's own)")
    p.add_argument("--beam", type=int, default=4, help="translation beam width (default 4)")
    p.add_argument("--horizon", type=int, default=None,
                   help="time series: score the last N values (default: one season)")
    p.add_argument("--series", default=None, help="time series: take period / log from this trained series")
    p.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    p.add_argument("--threads", type=int, default=1,
                   help="CPU threads: torch's for a run, onnxruntime's for a bundle (default 1)")
    p.set_defaults(func=run)


@dataclass
class Subject:
    """What is scored: a model (PyTorch, or onnxruntime graphs behind its call signature)."""

    kind: str
    model: Any
    directory: Path        # holds the tokenizer / tagger_vocab.json
    task: dict             # the run's task record (a forecaster's series)
    backend: str


def is_bundle(path: str | Path) -> bool:
    return (Path(path) / "manifest.json").is_file()


def open_subject(path: str | Path, precision: str | None = None) -> Subject:
    """A run's PyTorch model, or a bundle's graphs behind the PyTorch model's call signature
    (``export.ort_model``: the cross-check of the torch-free ``rnnkit.edge.evaluate``)."""
    from rnnkit.edge.bundle import open_bundle
    from rnnkit.edge.evaluate import HEADLINE
    from rnnkit.export.bundle import run_task

    from rnnkit.core.models import registry

    path = Path(path)
    if (path / "manifest.json").is_file():
        from rnnkit.export.ort_model import ort_model

        from rnnkit.core.config import from_dict

        bundle = open_bundle(path)
        if bundle.kind not in HEADLINE:
            raise ValueError(f"{path}: rnnkit eval scores {', '.join(HEADLINE)} bundles, not {bundle.kind!r}")
        graphs = {job: bundle.graph_path(job, precision) for job in bundle.graphs}
        config = from_dict(registry.classes(bundle.kind)[0], bundle.model_config)
        return Subject(bundle.kind, ort_model(bundle.kind, graphs, config), path, bundle.manifest.get("task") or {},
                       f"onnxruntime {precision or bundle.precision}")
    if not (path / "model").is_dir():
        raise FileNotFoundError(f"{path}: neither a bundle (manifest.json) nor a run directory (model/)")
    if precision:
        raise ValueError("--precision is for bundles; a run is scored with PyTorch")
    kind = registry.read_record(path / "model")["kind"]
    if kind not in HEADLINE:
        raise ValueError(f"{path}: rnnkit eval scores {', '.join(HEADLINE)} runs, not {kind!r}")
    model = registry.load(path / "model")
    model.eval()
    return Subject(kind, model, path, run_task(path), "pytorch")


def _strip(metrics: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in metrics.items() if k.startswith(prefix)}


def eval_lm(s: Subject, data: Path, **_) -> dict:
    from rnnkit.core.data.readers import read_text_lines
    from rnnkit.core.tasks.lm_data import encode_stream
    from rnnkit.core.tasks.lm import LMTask
    from rnnkit.core.text.tokenizers import CharTokenizer, load_tokenizer

    tok = load_tokenizer(s.directory)
    lines = read_text_lines(data, skip_blank=True)
    if not lines:
        raise ValueError(f"{data}: no text")
    kind = "char" if isinstance(tok, CharTokenizer) else "word"
    stream = encode_stream(tok, kind, lines)
    if stream.numel() < 2:
        raise ValueError(f"{data}: fewer than 2 tokens")
    task = LMTask(stream, stream, unit="char" if kind == "char" else "token")
    return {**_strip(task.split_metrics(s.model, "valid"), "val_"), "tokens": int(stream.numel()),
            "unit": task.unit, "lines": len(lines)}


def eval_classifier(s: Subject, data: Path, **_) -> dict:
    from rnnkit.core.data.readers import read_tsv
    from rnnkit.core.tasks.classify import SentimentSplit, SentimentTask
    from rnnkit.core.text.tokenizers import load_tokenizer

    rows = read_tsv(data)
    if not rows:
        raise ValueError(f"{data}: no rows")
    split = SentimentSplit([t for _, t in rows], [float(sc) for sc, _ in rows])
    task = SentimentTask(load_tokenizer(s.directory), split, split)  # scores read up to the bundle's review cap
    polar = sum(1 for sc, _ in rows if sc != 0)
    return {**_strip(task.split_metrics(s.model, "val"), "val_"), "rows": len(rows), "rows_with_polarity": polar}


def eval_tagger(s: Subject, data: Path, **_) -> dict:
    from rnnkit.core.data.readers import read_conll
    from rnnkit.core.tasks.tagger import TaggerTask, TaggerVocab

    sents = [x for x in read_conll(data) if x[0]]
    if not sents:
        raise ValueError(f"{data}: no sentences")
    task = TaggerTask(TaggerVocab.load(s.directory), sents, sents)
    return {**_strip(task.split_metrics(s.model, "val"), "val_"), "sentences": len(sents),
            "tokens": sum(len(t) for t, _ in sents)}


def _seq2seq_tokenizers(directory: Path):
    from rnnkit.core.text.tokenizers import load_tokenizer

    if (directory / "tokenizer_src").is_dir():
        return load_tokenizer(directory / "tokenizer_src"), load_tokenizer(directory / "tokenizer_tgt")
    tok = load_tokenizer(directory)
    return tok, tok


def eval_seq2seq(s: Subject, data: Path, beam: int = 4, **_) -> dict:
    from rnnkit.core.data.readers import read_parallel_tsv
    from rnnkit.core.tasks.translate import TranslationTask, corpus_scores

    pairs = read_parallel_tsv(data)
    if not pairs:
        raise ValueError(f"{data}: no pairs")
    if not 1 <= beam <= 16:
        raise ValueError(f"--beam must be from 1 to 16, got {beam}")
    src_tok, tgt_tok = _seq2seq_tokenizers(s.directory)
    cfg = s.model.config
    task = TranslationTask(src_tok, tgt_tok, pairs, pairs, max_len=10**6, bos_id=cfg.bos_id, eos_id=cfg.eos_id,
                           beam=beam)
    kept = task.raw["val"]
    loss = task.split_loss(s.model, "val")
    hyps = task.translate(s.model, [a for a, _ in kept], beam=beam)
    return {**corpus_scores(hyps, [b for _, b in kept]), "loss": loss, "ppl": math.exp(min(loss, 50.0)),
            "pairs": len(kept), "skipped_empty": len(pairs) - len(kept), "beam": beam}


def eval_forecaster(s: Subject, data: Path, horizon: int | None = None, series: str | None = None, **_) -> dict:
    from rnnkit.core.data.readers import read_series_csv
    from rnnkit.core.tasks.timeseries import Series, TimeseriesTask

    known = (s.task.get("series") or {}) if isinstance(s.task, dict) else {}
    if not known:
        raise ValueError(f"{s.directory}: no series record (period, log) in the run's task")
    name = series or next(iter(known))
    if name not in known:
        raise ValueError(f"--series {name!r}: this model knows {', '.join(known)}")
    period, log = int(known[name]["period"]), bool(known[name].get("log", False))
    raw = read_series_csv(data)
    horizon = horizon or period
    if horizon < 1:
        raise ValueError(f"--horizon must be >= 1, got {horizon}")
    task = TimeseriesTask([Series(raw.name, raw.values, period, val_len=0, test_len=horizon, log=log)], sarimax=False)
    m = _strip(task.split_metrics(s.model, "test"), f"test_{raw.name}_")
    out = {"rmse_1step": m["rnn_1step_rmse"], "mape_1step": m["rnn_1step_mape"], "rmse_multi": m["rnn_multi_rmse"],
           "mape_multi": m["rnn_multi_mape"], "snaive_rmse_1step": m["snaive_1step_rmse"],
           "snaive_rmse_multi": m["snaive_multi_rmse"]}
    out["rel_rmse"] = out["rmse_1step"] / max(out["snaive_rmse_1step"], 1e-12)
    return {**out, "points": len(raw.values), "horizon": horizon, "period": period, "log": log, "like_series": name}


EVALUATORS = {"lm": eval_lm, "classifier": eval_classifier, "tagger": eval_tagger, "seq2seq": eval_seq2seq,
              "forecaster": eval_forecaster}


def evaluate(model_dir: str | Path, data: str | Path, precision: str | None = None, torch_adapter: bool = False,
             threads: int = 1, **options) -> dict:
    """``{"kind", "backend", "metric", <the task's figures>}`` for a run or a bundle on ``data``.

    A bundle is scored torch-free (``rnnkit.edge.evaluate``); ``torch_adapter=True`` scores it
    through the PyTorch task code instead (``export.ort_model``), to cross-check the two."""
    if is_bundle(model_dir) and not torch_adapter:
        from rnnkit.edge.evaluate import evaluate_bundle

        return evaluate_bundle(model_dir, data, precision, threads=threads, **options)
    import torch

    from rnnkit.edge.evaluate import HEADLINE

    data = Path(data)
    if not data.is_file():
        raise FileNotFoundError(f"--data {data}: no such file")
    s = open_subject(model_dir, precision)
    torch.manual_seed(0)
    with torch.no_grad():
        figures = EVALUATORS[s.kind](s, data, **options)
    return {"kind": s.kind, "backend": s.backend, "metric": HEADLINE[s.kind], **figures}


def report(res: dict) -> str:
    head = f"{res['kind']} ({res['backend']}): {res['metric']} {res[res['metric']]:.4g}"
    rest = [f"  {k:22s} {v:.4f}" if isinstance(v, float) else f"  {k:22s} {v}"
            for k, v in res.items() if k not in ("kind", "backend", "metric")]
    return "\n".join([head, *rest])


def run(args) -> int:
    if args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    if not is_bundle(args.model):  # a run: PyTorch (a bundle needs no torch)
        try:
            import torch
        except ImportError:
            raise ValueError(f"{args.model} is not a bundle (no manifest.json): scoring a run needs PyTorch "
                             "(pip install 'rnnkit[train]'); a bundle is scored without it") from None
        torch.set_num_threads(args.threads)
    res = evaluate(args.model, args.data, args.precision, threads=args.threads, beam=args.beam,
                   horizon=args.horizon, series=args.series)
    print(json.dumps(res, allow_nan=False) if args.json else report(res))
    return 0
