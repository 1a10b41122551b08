"""``rnnkit verify BUNDLE``: check a bundle with onnxruntime alone (torch-free, runs on a device).

- every file's sha256 (``open_bundle``), ``onnx.checker`` (when onnx is installed), the metadata
  every graph must carry, and that it agrees with the manifest and the tokenizer file;
- every graph runs on random inputs of batch 1 and 3;
- every step graph fed one step at a time (state fed back) equals one whole-sequence call;
- int8 bundles: the int8 graphs against the fp32 ones on random inputs (a smoke figure); a row-wise
  int8 step graph (``int8_scheme`` rowwise-int8) must step exactly as it runs whole, like fp32;
- every graph's operators and the onnxruntime packages that run them (``runtimes``; with onnx installed).
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from rnnkit.edge import names as N
from rnnkit.edge.bundle import Bundle, BundleError, open_bundle
from rnnkit.edge.runner import EdgeError, int8_products_exact, load_session

from .feeds import max_abs_diff, random_feeds
from .narrow import levels_fit


ROLLOUT_TOLERANCE = 1e-5


def _split(value: str) -> list[str]:
    return [s for s in value.split(",") if s]


def check_metadata(bundle: Bundle, job: str, precision: str | None = None) -> dict[str, str]:
    """The graph's metadata_props, checked against the manifest; raises ``BundleError``."""
    path = bundle.graph_path(job, precision)
    meta = bundle.metadata(job, precision)
    missing = [k for k in N.REQUIRED_META if k not in meta]
    if missing:
        raise BundleError(f"{path}: metadata_props lacks {missing}")
    expect = {N.META_FORMAT_VERSION: str(N.FORMAT_VERSION), N.META_KIND: bundle.kind, N.META_JOB: job}
    tok = bundle.manifest.get("tokenizer")
    if tok:
        expect[N.META_TOKENIZER_SHA256] = tok["sha256"]
    for key, want in expect.items():
        if meta[key] != want:
            raise BundleError(f"{path}: metadata {key}={meta[key]!r}, the manifest says {want!r}")
    try:
        config = json.loads(meta[N.META_MODEL_CONFIG])
    except (ValueError, RecursionError):
        raise BundleError(f"{path}: metadata model_config is not valid JSON") from None
    if config != bundle.model_config:
        raise BundleError(f"{path}: metadata model_config differs from the manifest's model config")
    return meta


# Random inputs are built from the graph's declared shapes: a static dim of 10^9 in a hostile
# graph must be refused, not allocated.
MAX_FEED_ELEMENTS = 1 << 24


def _check_feed_sizes(session, path, batch: int, time: int) -> None:
    for arg in session.get_inputs():
        n = 1
        for d in arg.shape:
            n *= d if isinstance(d, int) and d >= 0 else (batch if d == N.BATCH else max(batch, time))
        if n > MAX_FEED_ELEMENTS:
            raise BundleError(f"{path}: input {arg.name} of shape {arg.shape} would need {n:,} elements "
                              f"(more than {MAX_FEED_ELEMENTS:,}): refusing to allocate it")


def _onnx_check(path) -> None:
    """``onnx.checker`` where the onnx package is installed (a device may have onnxruntime only)."""
    try:
        import onnx
    except ImportError:
        return
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except onnx.checker.ValidationError as e:
        raise BundleError(f"{path}: onnx.checker: {str(e).splitlines()[0]}") from None


def _session(bundle: Bundle, job: str, precision: str | None):
    try:
        return load_session(bundle.graph_path(job, precision))
    except EdgeError as e:  # one line naming the graph file
        raise BundleError(str(e)) from None


def _time_inputs(session) -> list[str]:
    return [i.name for i in session.get_inputs() if len(i.shape) > 1 and i.shape[1] == N.TIME]


def rollout_self_check(session, config: dict[str, Any], meta: dict[str, str], steps: int = 30,
                       batch: int = 2, seed: int = 0) -> tuple[float, float] | None:
    """Step-by-step (state fed back) vs one whole call of the same graph: (max abs diff, largest
    |output|); None if not a step graph."""
    s_in, s_out = _split(meta[N.META_STATE_INPUTS]), _split(meta[N.META_STATE_OUTPUTS])
    timed = _time_inputs(session)
    if not s_in or not timed:
        return None
    feeds = random_feeds(session.get_inputs(), config, batch, steps, seed=seed, src_time=7)
    out_names = [o.name for o in session.get_outputs()]
    whole = dict(zip(out_names, session.run(None, feeds)))
    step_feeds, pieces, last = dict(feeds), {n: [] for n in out_names if n not in s_out}, {}
    for t in range(steps):
        for n in timed:
            step_feeds[n] = feeds[n][:, t:t + 1]
        res = dict(zip(out_names, session.run(None, step_feeds)))
        for i, o in zip(s_in, s_out):
            step_feeds[i] = last[o] = res[o]
        for n in pieces:
            pieces[n].append(res[n])
    stepped = {n: np.concatenate(v, axis=1) for n, v in pieces.items()} | last
    diff = max(max_abs_diff(stepped[n], whole[n]) for n in out_names)
    scale = max(float(np.abs(v).max()) for v in whole.values() if v.dtype != np.bool_ and v.size)
    return diff, scale


def _operators(bundle: Bundle, job: str) -> str | None:
    """The graph's operators and where they run, one line (None without the onnx package)."""
    try:
        import onnx  # noqa: F401
    except ImportError:
        return None
    from .runtimes import describe, graph_ops

    return describe(graph_ops(bundle.graph_path(job)))


ORT_TOLERANCE = 1e-4  # relative to the outputs' size; the ORT file differs by constant folding only


def _check_ort(bundle: Bundle, job: str, ort_file: str, config: dict[str, Any], seed: int) -> float:
    path = bundle.file_path(ort_file)
    try:
        a, b = _session(bundle, job, None), load_session(path)
    except EdgeError as e:
        raise BundleError(str(e)) from None
    feeds = random_feeds(a.get_inputs(), config, 2, 5, seed=seed)
    ra, rb = a.run(None, feeds), b.run(None, feeds)
    pairs = [(x, y) for x, y in zip(ra, rb) if x.dtype != np.bool_]
    diff = max((max_abs_diff(x, y) for x, y in pairs), default=0.0)
    scale = max((float(np.abs(x).max()) for x, _ in pairs if x.size), default=1.0)
    if len(ra) != len(rb) or diff > ORT_TOLERANCE * max(1.0, scale):
        raise BundleError(f"{path}: the ORT-format graph differs from {bundle.graph_path(job).name} by {diff:.2e}")
    return diff


def verify_bundle(directory: str | os.PathLike, seed: int = 0) -> dict[str, Any]:
    """Run every check; returns ``{"kind", "jobs": {job: {...figures}}}`` or raises ``BundleError``."""
    bundle = open_bundle(directory)
    config = bundle.model_config
    report: dict[str, Any] = {"kind": bundle.kind, "precision": bundle.precision, "jobs": {}}
    if bundle.precision == "int8":
        report["int8_products_exact"] = int8_products_exact()
        report["int8_levels_fit_int16"] = levels_fit(bundle.manifest.get("int8_options"))
    for job in bundle.graphs:
        try:
            report["jobs"][job] = _verify_job(bundle, job, config, seed)
        except BundleError:
            raise
        except Exception as e:  # onnxruntime / numpy errors on a hostile graph: one line naming it
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
            raise BundleError(f"{bundle.graph_path(job)}: fails on random inputs: {first}") from None
    return report


def _verify_job(bundle: Bundle, job: str, config: dict[str, Any], seed: int) -> dict[str, Any]:
    entry: dict[str, Any] = {}
    fp32_file = bundle.fp32_graphs.get(job)
    precisions = (["fp32"] if fp32_file else []) + (["int8"] if bundle.graphs[job] != fp32_file else [])
    for precision in precisions:
        meta = check_metadata(bundle, job, precision)
        if meta[N.META_PRECISION] != precision:
            raise BundleError(f"{bundle.graph_path(job, precision)}: metadata precision "
                              f"{meta[N.META_PRECISION]!r}, expected {precision!r}")
        _onnx_check(bundle.graph_path(job, precision))
        sess = _session(bundle, job, precision)
        _check_feed_sizes(sess, bundle.graph_path(job, precision), 3, 30)
        for b in (1, 3):
            feeds = random_feeds(sess.get_inputs(), config, b, 5, seed=seed + b)
            outs = sess.run(None, feeds)
            bad = [o.name for o, v in zip(sess.get_outputs(), outs)
                   if v.dtype != np.bool_ and not np.all(np.isfinite(v))]
            if bad:
                raise BundleError(f"{bundle.graph_path(job, precision)}: non-finite values in {bad}")
        roll = rollout_self_check(sess, config, meta, seed=seed)
        if roll is not None:
            diff, scale = roll
            entry[f"{precision}_rollout_step_vs_whole"] = diff
            # Relative to the outputs' size (trained logits reach tens; float32 error grows with
            # them). int8 quantises activations per call, so step and whole differ a little there.
            limit = ROLLOUT_TOLERANCE * max(1.0, scale)
            exact = precision == "fp32" or meta.get("int8_scheme") == "rowwise-int8"
            if exact and diff > limit:
                raise BundleError(f"{bundle.graph_path(job, precision)}: stepping with the state fed back "
                                  f"differs from one whole-sequence call by {diff:.2e} (> {limit:.2e})")
    ort_file = (bundle.manifest.get("ort_graphs") or {}).get(job)
    if ort_file:  # what a mobile app loads: it must answer as the graph it was converted from
        entry["ort_vs_onnx_max_abs_diff"] = _check_ort(bundle, job, ort_file, config, seed)
    listing = _operators(bundle, job)
    if listing:
        entry["operators"] = listing
    if "int8" in precisions and "fp32" in precisions:
        a, b = _session(bundle, job, "fp32"), _session(bundle, job, "int8")
        feeds = random_feeds(a.get_inputs(), config, 2, 16, seed=seed)
        ra, rb = a.run(None, feeds), b.run(None, feeds)
        entry["int8_vs_fp32_max_abs_diff"] = max(max_abs_diff(x, y) for x, y in zip(ra, rb)
                                                 if x.dtype != np.bool_)
    return entry
