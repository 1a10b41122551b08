"""``rnnkit export RUN_DIR --out BUNDLE [--int8]`` and ``rnnkit verify BUNDLE``."""

from __future__ import annotations

import argparse
import json
import sys
import textwrap

from rnnkit.edge import names as N


def _graphs_table() -> str:
    lines = ["graphs each model kind produces (one .onnx file per job; state is explicit I/O,",
             "batch and time axes are dynamic):"]
    for kind, jobs in N.GRAPHS.items():
        lines.append(f"  {kind}:")
        for job, doc in jobs.items():
            lines.append(f"    {N.graph_file(job):<17} {doc}")
    lines.append("with --int8 each graph also gets a <job>.int8.onnx twin, and the manifest's 'graphs' "
                 "point at those.")
    return "\n".join(lines)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "export", help="export a trained model to a verified ONNX bundle",
        description=textwrap.fill(
            "Export RUN_DIR (a training run with model/ and tokenizer.*, or a plain model directory with "
            "config.json + model.safetensors) to an ONNX bundle: the graphs, the tokenizer and manifest.json "
            "(sha256 of every file, model config, training metrics, parity figures). Parity with PyTorch "
            "is checked before anything is written.", 88),
        epilog=_graphs_table(), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", metavar="RUN_DIR", help="training run directory or model directory")
    p.add_argument("--out", required=True, metavar="BUNDLE_DIR", help="bundle directory to write (replaced atomically)")
    p.add_argument("--int8", action="store_true",
                   help="also write int8 graphs (onnxruntime dynamic quantisation) and make them the default")
    p.add_argument("--int8-only", action="store_true",
                   help="with --int8: leave the fp32 graphs out of the bundle (what models/ ships, to stay small)")
    p.add_argument("--int8-head", choices=("int8", "fp32"), default="int8",
                   help="with --int8: quantise the output layer (logits) too, block-wise (default; needs "
                        "onnxruntime >= 1.22; on suggest-en the one-token step is 1.9x faster for -0.07 points "
                        "of top-1 agreement) or keep it fp32")
    p.add_argument("--int8-scheme", choices=("rowwise", "dynamic"), default="rowwise",
                   help="with --int8: rowwise (default: int8 weights, activations quantised per token in standard "
                        "ONNX ops; the same logits however the text is chunked or batched, and on every onnxruntime: "
                        "Python, Node, WebAssembly, mobile) or dynamic (onnxruntime's quantize_dynamic, one activation "
                        "scale per call: results depend on the chunking; kept to compare with)")
    p.add_argument("--target", choices=("portable", "native"), default="portable",
                   help="with --int8 (rowwise): portable (default: LSTM gates by table lookup, bit-exact on every "
                        "onnxruntime) or native (onnxruntime's Tanh/Sigmoid: since the table lookups became GatherElements "
                        "no faster on x86 (0.93-1.0x, bench/step_speed.py), and WebAssembly/ARM drift from x86 by "
                        "up to ~0.1 in the logits over a long text)")
    p.add_argument("--ort", action="store_true",
                   help="also write every graph in onnxruntime's ORT format (<job>[.int8].ort, listed and hashed in "
                        "the manifest's ort_graphs) for onnxruntime-android / onnxruntime-objc")
    p.add_argument("--eval-text", metavar="FILE",
                   help="language models with --int8: measure int8 vs fp32 (top-1 agreement, perplexity) on "
                        "this text (default: the run recipe's validation split, when fetched)")
    p.add_argument("--eval-tokens", type=int, default=0, metavar="N",
                   help="use only the first N tokens of that text (default 0: all of it)")
    p.add_argument("--eval-task", action="store_true",
                   help="with --int8 (classifier, tagger, forecaster, seq2seq runs): rebuild the recipe's task and record "
                        "its validation metrics for PyTorch, fp32 and int8 graphs")
    p.add_argument("--seed", type=int, default=0, help="seed of the parity check's random inputs")
    p.set_defaults(func=run_export)

    v = subparsers.add_parser(
        "verify", help="check a bundle: hashes, metadata, runs, step-vs-whole consistency (torch-free)",
        description="Open BUNDLE_DIR (every file's sha256 is checked), check every graph's metadata "
                    "against the manifest, run each graph on random inputs and check that stepping "
                    "with the state fed back equals one whole-sequence call.")
    v.add_argument("bundle", metavar="BUNDLE_DIR")
    v.add_argument("--json", action="store_true", help="print the report as JSON")
    v.set_defaults(func=run_verify)


def run_export(args) -> int:
    import torch

    from .build_bundle import export_bundle

    torch.set_num_threads(1)  # small graphs; the machine is shared
    try:
        export_bundle(args.run_dir, args.out, int8=args.int8, int8_head=args.int8_head, int8_only=args.int8_only, seed=args.seed,
                      eval_text=args.eval_text, eval_tokens=args.eval_tokens, eval_task=args.eval_task,
                      int8_scheme=args.int8_scheme, ort_format=args.ort, int8_target=args.target)
    except FileExistsError as e:
        raise ValueError(str(e)) from None
    except OSError as e:  # a read-only or full --out: one line, not a traceback
        raise ValueError(f"{e.filename or args.out}: {e.strerror or e}") from None
    except AssertionError as e:  # parity failed (NaN outputs included): one line on stderr, details on stdout
        lines = str(e).splitlines() or ["(no details)"]
        print("\n".join(lines[1:]))
        print(f"rnnkit export: error: parity check failed, no bundle written: {lines[0]}", file=sys.stderr)
        return 1
    return 0


def run_verify(args) -> int:
    from .verify import verify_bundle

    report = verify_bundle(args.bundle)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{args.bundle}: ok ({report['kind']}, {report['precision']}); every file's size and sha256 match "
          "the manifest, and the graphs read no file it does not list")
    if report.get("int8_products_exact") is False and not report.get("int8_levels_fit_int16"):
        print("  warning: this machine's onnxruntime saturates uint8 x int8 products (an x86 CPU with AVX2 and "
              "no VNNI) and this bundle's int8 weights use all 127 levels (row-wise before 64-level weights, or the "
              "dynamic scheme): its graphs answer differently here than elsewhere. "
              f"Export its run again (`rnnkit export RUN --int8`) or, for an int8-only bundle, `python -m "
              f"rnnkit.export.requantize {args.bundle}` rewrites them so they do not (docs/APP.md)")
    for job, figures in report["jobs"].items():
        ops = figures.pop("operators", None)
        figs = ", ".join(f"{k}={v:.2e}" for k, v in figures.items()) or "runs"
        print(f"  {job}: {figs}")
        if ops:
            print(f"    operators: {ops}")
    return 0
