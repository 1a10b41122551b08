"""What keeping the int8 weights to 64 levels costs: one run exported with 127- and with 64-level weights.

    rnnkit train --recipe char-shakespeare --run-dir runs/cs-small --threads 1 --quiet --set train.max_minutes=6
    python bench/int8_levels.py runs/cs-small --tokens 100000 --json docs/results/int8_levels.json

For each, the int8 step graph against the run's fp32 graph on the recipe's validation text: top-1
agreement and perplexity change. The 127-level graph is measured twice: as this machine's onnxruntime runs
it (on an x86 with AVX2 and no VNNI its products saturate) and with every product widened
(``export.narrow.exact_products``: what a CPU that does not saturate computes). The 64-level graph is exact
everywhere (``export/rowwise.py``, ``W_DIGIT``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", help="a language-model run directory (rnnkit train)")
    p.add_argument("--tokens", type=int, default=100_000, help="validation tokens to measure on")
    p.add_argument("--json", help="write the figures here")
    args = p.parse_args(argv)

    import onnx
    import torch

    from rnnkit.edge.bundle import open_bundle
    from rnnkit.edge.runner import int8_products_exact
    from rnnkit.export import rowwise
    from rnnkit.export.build_bundle import export_bundle
    from rnnkit.export.narrow import exact_products
    from rnnkit.export.quantize import int8_text_report
    from rnnkit.export.requantize import _lm_ids

    torch.set_num_threads(1)
    keys = ("tokens", "top1_agreement", "fp32_ppl", "int8_ppl", "ppl_change")
    out = {"command": "python bench/int8_levels.py " + " ".join(sys.argv[1:] if argv is None else argv),
           "run": args.run, "int8_products_exact_here": int8_products_exact(), "rows": {}}
    saved = rowwise.W_DIGIT
    with tempfile.TemporaryDirectory(prefix="rnnkit-levels-") as tmp:
        try:
            for levels in (127.0, 64.0):
                rowwise.W_DIGIT = levels
                bundle = Path(tmp) / f"w{int(levels)}"
                m = export_bundle(args.run, bundle, int8=True, eval_tokens=args.tokens, log=lambda *a: None)
                text = m["int8"]["step"]["text"]
                out["rows"][f"{int(levels)} levels, this machine"] = {k: text[k] for k in keys}
                if levels == 127.0:
                    model = onnx.load(str(bundle / "step.int8.onnx"))
                    exact_products(model)
                    onnx.save(model, bundle / "exact.onnx")
                    recipe = json.loads((Path(args.run) / "recipe.json").read_text())["name"]
                    ids, _ = _lm_ids(open_bundle(bundle), recipe)   # the text export_bundle measured on
                    rep = int8_text_report(bundle / "step.onnx", bundle / "exact.onnx", ids, args.tokens)
                    out["rows"]["127 levels, exact products"] = {k: rep[k] for k in keys}
        finally:
            rowwise.W_DIGIT = saved
    print(f"{'graph':32} {'tokens':>8} {'top-1 agreement':>16} {'ppl fp32 -> int8':>22}")
    for label, r in out["rows"].items():
        print(f"{label:32} {r['tokens']:>8,} {r['top1_agreement']:>16.2%} "
              f"{r['fp32_ppl']:>9.3f} -> {r['int8_ppl']:.3f} ({r['ppl_change']:+.3%})")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
