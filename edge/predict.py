"""Torch-free inference on every bundle kind: one place for ``rnnkit predict`` and the demo.

    from rnnkit.edge.predict import open_predictor
    p = open_predictor("models/sentiment-mr")     # verifies the bundle's hashes first
    p.predict("A gorgeous, witty film.")          # {"label": "positive", "positive": 0.97, "score": 0.71, ...}

``open_predictor(dir)`` reads the manifest's kind and returns its engine:

    lm          TextGenerator      continue text (edge/predict_text.py)
    classifier  SentimentScorer    polarity with confidence, score in [-1, 1], score after each token
    seq2seq     Translator         beam search with attention (edge/predict_text.py)
    tagger      EntityTagger       entities in a text (edge/predict_tag.py)
    forecaster  SeriesForecaster   next values of a series (edge/predict_series.py)

Every engine opens a verified bundle (``rnnkit.edge.bundle.open_bundle``), runs its graphs with
``rnnkit.edge.runner.Runner`` and reads every dimension and special id from the graphs' metadata,
so any bundle of its kind works. Engines keep
no per-request state: one engine serves many threads (``InferenceSession.run`` is thread-safe).
Work per request is bounded by the token caps below, checked right after tokenising and before
any model call. Imports only numpy, onnxruntime and sentencepiece (through the tokenizer).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import names
from .bundle import Bundle, BundleError, open_bundle
from .runner import Runner

# Per-request token caps: characters alone do not bound the work (1,000 emoji are 4,000
# byte-fallback tokens).
MAX_PROMPT_TOKENS = 2048
MAX_SOURCE_TOKENS = 128    # the translation model was trained on sentences of <= 48 tokens
MAX_REVIEW_TOKENS = 256
MAX_TAG_TOKENS = 512       # words of one text to tag
MAX_HISTORY_POINTS = 5000  # values of one series to forecast from (co2 has 2,284 weekly points)
MAX_HORIZON = 520


class InputError(ValueError):
    """A user mistake; the message says what to change (shown as is by the demo and the CLI)."""


def graph(bundle: Bundle, job: str, threads: int = 1) -> Runner:
    """The runner of a bundle's ``job`` graph, for a server: no CPU arena (a shared session would keep
    one at the peak of concurrent runs)."""
    return bundle.runner(Runner, job, threads=threads, mem_arena=False)


def load_bundle(directory: str | Path, kind: str, tokenizer: bool = True) -> Bundle:
    """A verified bundle of ``kind`` (``BundleError`` naming the problem otherwise)."""
    bundle = open_bundle(directory)
    if bundle.kind != kind:
        raise BundleError(f"{directory}: a {bundle.kind} bundle; this needs a {kind} bundle")
    if tokenizer and bundle.tokenizer_path is None:
        raise BundleError(f"{directory}: the bundle has no tokenizer file")
    return bundle


def load_tokenizer(bundle: Bundle):
    from rnnkit.core.text.tokenizers import load_tokenizer as load

    # The manifest's tokenizer file (hashed, and checked against the graphs), never a directory listing.
    return load(bundle.tokenizer_path)


def piece_text(tok, i: int) -> str:
    """A token as the user should see it (sentencepiece's ``▁`` shown as a space)."""
    return str(tok.id_to_piece(int(i))).replace("\u2581", " ")


# The figures worth a glance, most telling first (a bundle's metrics come from its run's metrics.jsonl).
HEADLINE_METRICS = {"test_acc": "test accuracy {:.1f}%", "test_f1": "test entity F1 {:.1f}",
                    "test_bleu": "test BLEU {:.1f}", "test_chrf": "chrF {:.1f}",
                    "test_rel_rmse": "test RMSE {:.2f}× seasonal-naive",
                    "test_ppl": "test perplexity {:.1f}", "test_bits": "test {:.2f} bits/{unit}",
                    "val_acc": "valid accuracy {:.1f}%", "val_f1": "valid entity F1 {:.1f}",
                    "val_rel_rmse": "valid RMSE {:.2f}× seasonal-naive",
                    "val_ppl": "valid perplexity {:.2f}", "val_bits": "valid {:.2f} bits/{unit}"}


def describe(bundle: Bundle) -> str:
    """One line about a bundle for people: cell, size, precision and up to two headline metrics."""
    cfg = bundle.model_config
    cell = "Transformer" if "num_heads" in cfg else str(cfg.get("cell", "?")).upper()
    layers, hidden = cfg.get("num_layers", "?"), cfg.get("hidden_size", "?")
    # the whole folder, as the model card counts it: the listed files and the manifest itself
    size = sum(bundle.manifest.get("sizes", {}).values()) + _file_size(bundle.path / names.MANIFEST)
    text = f"{cell} {layers}×{hidden}, {bundle.precision}, " + (f"{size / 1e6:.1f} MB" if size >= 100_000
                                                                  else f"{size / 1e3:.0f} kB")
    metrics = bundle.manifest.get("metrics") or {}
    last = metrics.get("last")
    last = last if isinstance(last, dict) else {}
    # The final (test) record if there is one, else the last evaluation; never "best", which is
    # picked by a min/max mode that a run may not record (an accuracy "best" can be the worst).
    record = metrics.get("final") or (last if last.get("kind") in ("final", "eval") else {})
    record = record if isinstance(record, dict) else {}
    unit = str(record.get("unit", "token"))  # char models record "char"
    # Test figures when the record has them: a validation figure can be of rows the model
    # trained on (data.train_on_valid), and is a tuning figure anyway.
    keys = [k for k in HEADLINE_METRICS if isinstance(record.get(k), (int, float))]
    keys = [k for k in keys if k.startswith("test_")] or keys
    shown = [HEADLINE_METRICS[k].format(record[k], unit=unit) for k in keys]
    return text + "".join(f", {x}" for x in shown[:2])


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


# kind -> "module:class" of its engine (imported when asked for)
ENGINES = {"lm": "predict_text:TextGenerator", "classifier": "predict_text:SentimentScorer",
           "seq2seq": "predict_text:Translator", "tagger": "predict_tag:EntityTagger",
           "forecaster": "predict_series:SeriesForecaster"}
WHAT = {"lm": "continues text", "classifier": "scores sentiment", "seq2seq": "translates",
        "tagger": "tags entities", "forecaster": "forecasts a series"}


def engine_class(kind: str):
    import importlib

    if kind not in ENGINES:
        raise BundleError(f"rnnkit predict has no engine for {kind!r} bundles; it runs: {', '.join(ENGINES)}")
    module, cls = ENGINES[kind].split(":")
    return getattr(importlib.import_module(f"rnnkit.edge.{module}"), cls)


def open_predictor(directory: str | Path, threads: int = 1) -> Any:
    """The engine for the bundle at ``directory``, chosen by its manifest's kind."""
    from .bundle import read_manifest

    kind = read_manifest(directory)["kind"]
    return engine_class(kind)(directory, threads=threads)
