"""Run directory -> verified ONNX bundle: what ``rnnkit export`` does.

1. load the model from ``RUN_DIR/model/`` (or a plain model dir: config.json + model.safetensors);
2. export one graph per job (``names.GRAPHS[kind]``) into a scratch directory;
3. check parity against PyTorch on a few random inputs and refuse to write a bundle that fails;
4. with ``int8``, quantise every graph and make the int8 graphs the ones a runner loads;
5. write the bundle atomically with its manifest (hashes, model record, metrics, figures).
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
from pathlib import Path
from typing import Any

from rnnkit.core.atomic import sha256_file
from rnnkit.core.config import to_dict
from rnnkit.core.models import registry
from rnnkit.edge import names as N
from rnnkit.edge.lexicon import FILE_NAME as LEXICON_FILE
from rnnkit.edge.word_ngram import FILE_NAME as NGRAM_FILE
from rnnkit.edge.runner import load_session

from .bundle import find_tokenizer, read_metrics, run_task, write_bundle
from .onnx_export import OPSET, export_model
from .parity import TOLERANCE, assert_parity, check_parity, parity_limit
from .quantize import (DEFAULT_SCHEME, DEFAULT_TARGET, HEAD_BITS, HEAD_BLOCK, SCHEMES, TARGETS, compare_random,
                       int8_text_report, quantize_graph, size_ratio)

# Export-time parity: a few random inputs (the full grid runs in CI, tests/test_export_parity.py).
QUICK_BATCHES, QUICK_TIMES, QUICK_ROLLOUT = (1, 3), (1, 9), 20


def resolve_model_dir(path: str | os.PathLike) -> tuple[Path, Path]:
    """(run dir, model dir) of a run directory (has ``model/``) or of a plain model directory."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such run or model directory")
    if (path / "model" / registry.CONFIG_FILE).is_file():
        return path, path / "model"
    if (path / registry.CONFIG_FILE).is_file() and (path / registry.WEIGHTS_FILE).is_file():
        return path, path
    raise FileNotFoundError(f"{path}: neither a run directory (model/config.json) nor a model directory "
                            f"({registry.CONFIG_FILE} + {registry.WEIGHTS_FILE})")


def refuse_non_finite(model, model_dir: Path, doing: str = "export") -> None:
    """A NaN / inf weight (a diverged run saved anyway, a tampered file) makes a bundle that
    answers NaN on a device, or a soup that does: refuse it here, naming the tensor."""
    import torch

    for name, t in model.state_dict().items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            bad = int((~torch.isfinite(t)).sum())
            raise ValueError(f"{model_dir}: weight {name} holds {bad} NaN/inf value(s): refusing to {doing} "
                             "(resume from an earlier checkpoint or retrain with a lower lr)")


def _versions() -> dict[str, str]:
    import onnx
    import onnxruntime
    import torch

    return {"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__,
            "opset": str(OPSET), "python": platform.python_version()}


def validation_ids(run_dir: Path, tokenizer_path: Path | None, text_file: str | os.PathLike | None = None,
                   log=print) -> tuple[list[int], str] | None:
    """Real token ids to measure int8 on: ``text_file``'s lines, else the run recipe's validation
    split (``recipe.json`` -> data), encoded exactly as the LM task encodes it. None if unavailable."""
    if tokenizer_path is None or tokenizer_path.name in N.VOCAB_FILES:
        if text_file is not None:
            raise ValueError(f"--eval-text needs the run's tokenizer; none found in {run_dir}")
        return None
    from rnnkit.core.tasks.lm_data import encode_stream, load_splits
    from rnnkit.core.text.tokenizers import CharTokenizer, load_tokenizer

    if text_file is not None:
        lines, source = Path(text_file).read_text(encoding="utf-8").splitlines(), str(text_file)
    else:
        recipe_path = run_dir / "recipe.json"
        if not recipe_path.is_file():
            return None
        recipe = json.loads(recipe_path.read_text(encoding="utf-8"))
        if recipe.get("task") != "lm":
            return None
        try:
            lines = load_splits(recipe["data"])["valid"]
        except (OSError, ValueError, KeyError) as e:  # corpus not fetched: int8 figures stay random-input only
            log(f"note: no validation text for the int8 check ({e})")
            return None
        data = recipe["data"]
        if data.get("valid_file"):  # the user's files: name what was read, never the recipe's corpus
            source = str(data["valid_file"])
        elif data.get("train_file"):
            source = f"the held-out end of {data['train_file']}"
        else:
            source = f"{data.get('corpus') or 'recipe'} valid"
    tok = load_tokenizer(tokenizer_path)
    kind = "char" if isinstance(tok, CharTokenizer) else "word"
    return encode_stream(tok, kind, lines).tolist(), source


def export_bundle(run_dir: str | os.PathLike, out_dir: str | os.PathLike, int8: bool = False,
                  int8_head: str = "int8", seed: int = 0, eval_text: str | os.PathLike | None = None,
                  eval_tokens: int = 0, eval_task: bool = False, int8_only: bool = False,
                  int8_scheme: str = DEFAULT_SCHEME, ort_format: bool = False, int8_target: str = DEFAULT_TARGET,
                  log=print) -> dict[str, Any]:
    """Export ``run_dir`` to a bundle at ``out_dir``; returns the manifest written.

    ``int8_scheme``: "rowwise" (default: int8 weights, activations quantised per token in standard
    ops; the same logits however the input is chunked or batched, and on every onnxruntime) or
    "dynamic" (the earlier onnxruntime dynamic quantisation), see ``quantize.SCHEMES``.
    ``int8_target`` (rowwise): "portable" (default: LSTM activations by table lookup, bit-exact on every
    runtime) or "native" (onnxruntime's Tanh / Sigmoid: no faster since the lookups became GatherElements,
    0.93-1.0x on x86 in bench/step_speed.py, and WebAssembly / ARM drift from x86 by up to ~0.1 in the
    logits over a long text), see ``quantize.TARGETS``.
    ``int8_head``: "int8" (default) quantises the layer producing ``logits`` too; "fp32" keeps it fp32
    (four times its bytes: on suggest-en the one-token step is ~1.9x slower).
    ``ort_format``: also write each graph in onnxruntime's ORT format (``<job>[.int8].ort``, listed in
    the manifest's ``ort_graphs``) for the mobile packages (onnxruntime-android / -objc).

    With ``int8`` on a language model, top-1 agreement and perplexity of int8 vs fp32 are
    measured on ``eval_text`` (or the recipe's validation split) and recorded in the manifest.
    With ``int8`` and ``eval_task`` (classifier, tagger, forecaster, seq2seq), the recipe task's own
    validation metrics of PyTorch, fp32 and int8 graphs are recorded (``manifest["int8"]["task"]``).
    ``int8_only`` leaves the fp32 graphs out of the bundle (the shipped models, to stay small); the
    parity and int8 figures measured against them stay in the manifest.
    """
    import torch

    from rnnkit import __version__

    _check_options(int8, int8_only, int8_head, int8_target, int8_scheme)
    torch.manual_seed(seed)
    run_dir, model_dir = resolve_model_dir(run_dir)
    record = registry.read_record(model_dir)
    model = registry.load(model_dir)
    refuse_non_finite(model, model_dir)
    # The manifest's config is the loaded model's, as written into each graph's metadata: a
    # config.json saved before a field with a default was added lacks that field.
    record = {**record, "config": to_dict(model.config)}
    kind = N.bundle_kind(record["kind"])  # transformer_lm -> an "lm" bundle (what its graphs do)
    tok = find_tokenizer(run_dir) or find_tokenizer(model_dir)
    if tok is None and kind != "forecaster":
        log(f"warning: no tokenizer.* in {run_dir}: the bundle will have ids only")
    tok_sha = sha256_file(tok) if tok else ""

    with tempfile.TemporaryDirectory(prefix="rnnkit-export-") as scratch:
        fp32 = export_model(model, scratch, tok_sha, tok.name if tok else "")
        report = check_parity(model, fp32, QUICK_BATCHES, QUICK_TIMES, QUICK_ROLLOUT, seed=seed)
        # A bundle that disagrees with PyTorch is never written. The limit is 1e-5 relative to the
        # largest output (1e-5 absolute for outputs within [-1, 1]); CI holds small models to 1e-5 absolute.
        assert_parity(report, TOLERANCE, relative=True)
        log(f"parity (ONNX Runtime vs PyTorch, fp32): max abs diff {report['max_abs_diff']:.2e} "
            f"(largest |output| {report['max_abs_value']:.3g})")
        files = {p.name: p for p in fp32.values()}
        graphs = {job: p.name for job, p in fp32.items()}
        manifest: dict[str, Any] = {
            "format_version": N.FORMAT_VERSION, "kind": kind, "rnnkit_version": __version__,
            "precision": "fp32", "graphs": graphs, "fp32_graphs": dict(graphs),
            "graph_docs": {job: N.GRAPHS[kind][job] for job in graphs},
            "model": record, "metrics": read_metrics(run_dir), "task": run_task(run_dir) or None,
            "tokenizer": {"file": tok.name, "sha256": tok_sha} if tok else None,
            "parity": _parity_record(report), "exported_with": _versions(),
        }
        crf = model.crf_tables() if hasattr(model, "crf_tables") else None
        if crf is not None:  # a CRF tagger: the graph gives emissions, Viterbi needs these (edge/viterbi.py)
            manifest["crf"] = {"transitions": crf[0].tolist(), "start": crf[1].tolist(), "end": crf[2].tolist(),
                               "decode": "viterbi: start[y0] + sum emissions[t, yt] + sum transitions[yt-1, yt] "
                                         "+ end[yT-1], maximised (rnnkit.edge.viterbi)"}
        if int8:
            _add_int8(manifest, run_dir, model, fp32, Path(scratch), files, tok, log, int8_head=int8_head,
                      int8_scheme=int8_scheme, int8_target=int8_target, eval_text=eval_text,
                      eval_tokens=eval_tokens, eval_task=eval_task, int8_only=int8_only)
        manifest["graph_ops"] = graph_listing({job: Path(scratch) / f for job, f in graphs.items()})
        if ort_format:
            manifest["ort_graphs"] = _write_ort(graphs, Path(scratch), files, record["config"], log)
        if tok:
            files[tok.name] = tok
        lexicon = run_dir / LEXICON_FILE
        if kind == "lm" and lexicon.is_file():  # the words the suggester offers (edge/lexicon.py)
            files[LEXICON_FILE] = lexicon
        ngram = run_dir / NGRAM_FILE
        if kind == "lm" and ngram.is_file():  # the suggester's background word n-gram (edge/word_ngram.py)
            files[NGRAM_FILE] = ngram
        write_bundle(out_dir, files, manifest)
    log(f"wrote {out_dir}: {kind}, graphs {', '.join(f'{j}={f}' for j, f in graphs.items())}")
    return manifest


def _check_options(int8: bool, int8_only: bool, int8_head: str, int8_target: str, int8_scheme: str) -> None:
    if int8_only and not int8:
        raise ValueError("--int8-only needs --int8")
    if int8_head not in ("fp32", "int8"):
        raise ValueError(f"int8_head must be fp32 or int8, got {int8_head!r}")
    if int8_target not in TARGETS:
        raise ValueError(f"int8_target must be one of {', '.join(TARGETS)}, got {int8_target!r}")
    if int8_scheme not in SCHEMES:
        raise ValueError(f"int8_scheme must be one of {', '.join(SCHEMES)}, got {int8_scheme!r}")


def _parity_record(report: dict) -> dict[str, Any]:
    """The manifest's ``parity``: the fp32 graphs against PyTorch, and what was compared."""
    return {"limit": parity_limit(report, TOLERANCE, relative=True),
            "max_abs_diff": report["max_abs_diff"], "max_abs_value": report["max_abs_value"],
            "jobs": {j: e["max_abs_diff"] for j, e in report["jobs"].items()},
            "batches": list(QUICK_BATCHES), "times": list(QUICK_TIMES), "rollout_steps": QUICK_ROLLOUT}


def _add_int8(manifest: dict, run_dir: Path, model, fp32: dict, scratch: Path, files: dict, tok, log, *,
              int8_head: str, int8_scheme: str, int8_target: str, eval_text, eval_tokens: int, eval_task: bool,
              int8_only: bool) -> None:
    """Quantise every graph, point the manifest's ``graphs`` at the int8 files and record how far
    they are from fp32: on real text for a language model, on the task's metric with ``eval_task``."""
    graphs, kind = manifest["graphs"], manifest["kind"]
    # ``graphs`` is the manifest's own dict: _quantize_all repoints it at the int8 files.
    manifest["int8"] = _quantize_all(fp32, scratch, files, graphs, manifest["model"]["config"], int8_head, log,
                                     int8_scheme, int8_target)
    manifest["int8_options"] = int8_options(int8_scheme, int8_head, int8_target)
    manifest["precision"] = "int8"
    real = validation_ids(run_dir, tok, eval_text, log) if kind == "lm" else None
    if real:
        ids, source = real
        rep = int8_text_report(fp32[N.JOB_STEP], scratch / graphs[N.JOB_STEP], ids, eval_tokens)
        manifest["int8"][N.JOB_STEP]["text"] = {"source": source, **rep}
        log(f"int8 on {source} ({rep['tokens']} tokens): top-1 agreement {rep['top1_agreement']:.2%}, "
            f"ppl {rep['fp32_ppl']:.2f} -> {rep['int8_ppl']:.2f} ({rep['ppl_change']:+.2%}), "
            f"step {rep['fp32_step_ms']:.2f} -> {rep['int8_step_ms']:.2f} ms")
    if eval_task:
        manifest["int8"]["task"] = _task_eval(run_dir, model, fp32, scratch, graphs, log)
    if int8_only:
        for p in fp32.values():
            files.pop(p.name, None)
        manifest["fp32_graphs"] = {}


def int8_options(scheme: str, head: str, target: str = DEFAULT_TARGET) -> dict[str, Any]:
    """The manifest's ``int8_options``: how the int8 graphs were made."""
    if scheme == "rowwise":
        from .rowwise import A_DIGIT, SCHEME, TANH_MAX, TANH_STEPS, W_DIGIT

        return {"scheme": SCHEME, "target": target,
                "weights": f"int8 (|q| <= {W_DIGIT:.0f}), symmetric, one scale per output channel",
                "activations": f"int8 per row (token): scale max|row| / {A_DIGIT:.0f}, standard ONNX ops",
                "levels": {"activations": int(A_DIGIT), "weights": int(W_DIGIT)},
                "lstm": "input projection + Scan over time; gates " + (
                    f"by tanh table lookup ({TANH_STEPS} points per unit on [-{TANH_MAX}, {TANH_MAX}])"
                    if target == "portable" else "by onnxruntime's Tanh / Sigmoid"), "output_head": head}
    return {"scheme": "dynamic", "per_channel": True, "weight_type": "QInt8", "output_head": head,
            **({"head_bits": HEAD_BITS, "head_block": HEAD_BLOCK} if head == "int8" else {})}


def graph_listing(paths: dict[str, Path]) -> dict[str, Any]:
    """``{file: {"opset", "ops", "min_onnxruntime", "packages"}}``: what each graph needs to run."""
    from .runtimes import graph_ops, runs_on

    out = {}
    for path in paths.values():
        listing = graph_ops(path)
        out[path.name] = {**listing, **runs_on(listing)}
    return out


def _write_ort(graphs: dict[str, str], scratch: Path, files: dict[str, Path], config: dict[str, Any],
               log) -> dict[str, str]:
    """Each graph in ORT format (basic, hardware-independent optimisations), checked to give the same
    outputs as the .onnx graph. Returns ``{job: file}``."""
    from .quantize import to_ort_format

    out = {}
    for job, name in graphs.items():
        src = scratch / name
        dst = scratch / (Path(name).stem + ".ort")
        diff = to_ort_format(src, dst, config)
        files[dst.name] = dst
        out[job] = dst.name
        log(f"ORT format {dst.name}: {dst.stat().st_size / 1e6:.2f} MB (outputs vs {name}: max abs diff {diff:.1e})")
    return out


def _quantize_all(fp32: dict[str, Path], scratch: Path, files: dict[str, Path], graphs: dict[str, str],
                  config: dict[str, Any], head: str, log, scheme: str = DEFAULT_SCHEME,
                  target: str = DEFAULT_TARGET) -> dict[str, Any]:
    """Quantise every graph; point ``graphs`` at the int8 files. Returns the per-job figures."""
    from .verify import rollout_self_check

    figures: dict[str, Any] = {}
    for job, src in fp32.items():
        dst = scratch / N.graph_file(job, "int8")
        quantize_graph(src, dst, head=head, scheme=scheme, target=target)
        sess = load_session(dst)
        smoke = compare_random(load_session(src), sess, config)
        figures[job] = {"size_ratio": size_ratio(src, dst), "fp32_bytes": src.stat().st_size,
                        "int8_bytes": dst.stat().st_size, "random_inputs": smoke}
        import onnx

        meta = {p.key: p.value for p in onnx.load(str(dst), load_external_data=False).metadata_props}
        roll = rollout_self_check(sess, config, meta)
        if roll is not None:  # a step graph: one call vs one token per call, state fed back
            figures[job]["rollout_step_vs_whole"] = roll[0]
        files[dst.name] = dst
        graphs[job] = dst.name
        log(f"int8 {job}: {src.stat().st_size / 1e6:.2f} MB -> {dst.stat().st_size / 1e6:.2f} MB "
            f"(random-input max abs diff {smoke['max_abs_diff']:.2e})")
    return figures


def _task_eval(run_dir: Path, model, fp32: dict[str, Path], scratch: Path, graphs: dict[str, str], log):
    """The recipe's validation metrics for PyTorch, fp32 and int8 graphs (None if not applicable)."""
    from .ort_model import TASK_KINDS, task_metrics

    if model.kind not in TASK_KINDS or not (run_dir / "recipe.json").is_file():
        log(f"note: --eval-task needs a {'/'.join(TASK_KINDS)} run with recipe.json; skipped")
        return None
    res = task_metrics(run_dir, {"fp32": fp32, "int8": {j: scratch / f for j, f in graphs.items()}}, model)
    k = res["metric"]
    log(f"task {k}: torch {res['torch'][k]:.4f}, fp32 graph {res['fp32'][k]:.4f}, int8 graph {res['int8'][k]:.4f}")
    return res
