"""Re-quantise a shipped int8 bundle whose training run is gone: ``python -m rnnkit.export.requantize BUNDLE``.

models/ ships int8 graphs only and their runs are not in the repo. Two cases:

- a row-wise bundle made before the weights kept to 64 levels is narrowed (``narrow_bundle``,
  export/narrow.py): its weights halved, its figures measured against its old graphs with exact products;
- a bundle of the earlier dynamic scheme: the int8 graphs hold the int8 weights and their scales, so
  ``quantize.dequantize_model`` rebuilds the fp32 graph those weights define (exactly what the int8 graph
  multiplies with); that graph is quantised again with ``quantize_graph`` (``requantize_bundle``).

Either way the bundle is re-written:

- ``graphs`` point at the new int8 files (same names); every file hashed again;
- ``int8`` figures re-measured against the rebuilt fp32 graph (sizes, random inputs, step vs whole
  rollout, and real text for a language model / the recipe's task metrics for other kinds), with the
  previous figures kept under ``previous``;
- ``requantized`` says what was done, from which files (their sha256) and why the reference is the
  rebuilt graph rather than the original fp32 one (``parity`` and ``metrics`` still describe the
  original export and training run);
- the bundle's README.md (model card, not part of the manifest) is kept, with its int8 line updated.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from rnnkit.core.atomic import atomic_write_text
from rnnkit.edge import names as N


def _recipe_name(bundle_dir: Path) -> str:
    return bundle_dir.resolve().name


def _lm_ids(bundle, recipe_name: str):
    from rnnkit.core.tasks.lm_data import encode_stream, load_splits
    from rnnkit.core.recipes import resolve_recipe
    from rnnkit.core.text.tokenizers import CharTokenizer, load_tokenizer

    recipe = resolve_recipe(recipe_name, "full")
    lines = load_splits(recipe["data"])["valid"]
    tok = load_tokenizer(bundle.tokenizer_path.parent)
    kind = "char" if isinstance(tok, CharTokenizer) else "word"
    source = f"{recipe['data'].get('corpus', recipe_name)} valid"
    return encode_stream(tok, kind, lines).tolist(), source


def _task_metrics(bundle, recipe_name: str, graph_sets: dict[str, dict[str, Path]]) -> dict[str, Any]:
    """The recipe task's metrics of each graph set (the task rebuilt with the bundle's tokenizer)."""
    import torch

    from rnnkit.core import recipes
    from rnnkit.core.models.registry import build_model

    from .ort_model import ort_model

    recipe = recipes.resolve_recipe(recipe_name, "full")
    config = build_model(bundle.manifest["model"].get("kind", bundle.kind), bundle.model_config).config
    with tempfile.TemporaryDirectory(prefix="rnnkit-requant-task-") as run_dir:
        if bundle.tokenizer_path is not None:   # a time-series model has none
            shutil.copy(bundle.tokenizer_path, Path(run_dir) / bundle.tokenizer_path.name)
        torch.manual_seed(0)
        _, task, _ = recipes.build(recipe, run_dir)
        out: dict[str, Any] = {"metric": task.metric}
        for label, paths in graph_sets.items():
            out[label] = task.evaluate(ort_model(bundle.kind, paths, config))
    return out


def requantize_bundle(src: str | Path, out: str | Path | None = None, scheme: str = "rowwise",
                      head: str | None = None, eval_tokens: int = 0, target: str = "portable",
                      source_ref: str | None = None, log=print) -> dict[str, Any]:
    """``source_ref``: the git revision the source bundle comes from, when it is not ``out`` itself (for the
    command recorded in the manifest)."""
    import onnx

    from .build_bundle import _quantize_all, _versions, graph_listing, int8_options
    from rnnkit.edge.bundle import open_bundle
    from .quantize import dequantize_model

    src = Path(src)
    out = Path(out) if out else src
    bundle = open_bundle(src)
    old = json.loads(json.dumps(bundle.manifest))
    if bundle.fp32_graphs:
        raise ValueError(f"{src} has fp32 graphs: re-export them with `rnnkit export` instead")
    if (old.get("int8_options") or {}).get("scheme") == "rowwise-int8":
        raise ValueError(f"{src} is row-wise int8 already: nothing to re-quantise (one with 127-level weights is "
                         "narrowed instead; to change its scheme, head or target, export its run again with "
                         "`rnnkit export`)")
    head = head or (old.get("int8_options") or {}).get("output_head", "int8")
    recipe_name = _recipe_name(src)
    readme = (src / "README.md").read_text(encoding="utf-8") if (src / "README.md").is_file() else None
    with tempfile.TemporaryDirectory(prefix="rnnkit-requant-") as scratch:
        scratch = Path(scratch)
        fp32: dict[str, Path] = {}
        for job, path in bundle.graphs.items():
            model = dequantize_model(onnx.load(str(path)))
            fp32[job] = scratch / N.graph_file(job)
            onnx.save(model, fp32[job])
        files: dict[str, Path] = {}
        graphs: dict[str, str] = {}
        figures = _quantize_all(fp32, scratch, files, graphs, bundle.model_config, head, log, scheme, target)
        for job in figures:
            figures[job]["previous"] = (old.get("int8") or {}).get(job)
        if bundle.kind == "lm" and N.JOB_STEP in graphs:
            _text_figures(bundle, recipe_name, fp32[N.JOB_STEP], scratch / graphs[N.JOB_STEP], figures, eval_tokens,
                          "fp32 graph rebuilt from the shipped int8 weights", log)
        elif (old.get("int8") or {}).get("task"):
            sets = {"fp32": fp32, "previous_int8": dict(bundle.graphs),
                    "int8": {j: scratch / f for j, f in graphs.items()}}
            figures["task"] = _task_metrics(bundle, recipe_name, sets)
            figures["task"]["torch_at_export"] = old["int8"]["task"].get("torch")
            k = figures["task"]["metric"]
            log("task " + ", ".join(f"{label} {figures['task'][label][k]:.4f}" for label in sets))
        updates = {
            "graphs": graphs, "fp32_graphs": {}, "int8": figures, "int8_options": int8_options(scheme, head, target),
            "graph_ops": graph_listing({j: scratch / f for j, f in graphs.items()}),
            "requantized": {
                "from": {f: old["files"][f] for f in old["graphs"].values()},
                "from_int8_options": old.get("int8_options"),
                "note": "re-quantised from the int8 weights of the shipped graphs (their training run is not in the "
                        "repo): fp32 graphs rebuilt from int8 values x scales, quantised again; the int8 figures "
                        "compare with that rebuilt fp32 graph. parity and metrics are the original export's.",
                "with": _versions(),
                "command": (f"git checkout {source_ref} -- {out} && " if source_ref else "")
                + f"python -m rnnkit.export.requantize {out} --scheme {scheme} --head {head} --target {target}"},
        }
        return _write_out(bundle, old, out, scratch, files, updates, readme, log)


def _text_figures(bundle, recipe_name: str, ref: Path, new: Path, figures: dict[str, Any], eval_tokens: int,
                  reference: str, log) -> None:
    """A language model's new step graph against ``ref`` on the recipe's validation text, into ``figures``."""
    from .quantize import int8_text_report

    try:
        ids, source = _lm_ids(bundle, recipe_name)
    except (OSError, ValueError, KeyError) as e:
        log(f"note: no validation text ({e})")
        return
    rep = int8_text_report(ref, new, ids, eval_tokens or None)
    figures[N.JOB_STEP]["text"] = {"source": source, "reference": reference, **rep}
    log(f"int8 on {source} ({rep['tokens']} tokens) vs {reference}: top-1 agreement {rep['top1_agreement']:.2%}, "
        f"ppl {rep['fp32_ppl']:.3f} -> {rep['int8_ppl']:.3f} ({rep['ppl_change']:+.3%})")


def _write_out(bundle, old: dict[str, Any], out: Path, scratch: Path, files: dict[str, Path],
               updates: dict[str, Any], readme: str | None, log) -> dict[str, Any]:
    """Write the re-quantised bundle: ``files`` (the new graphs) and the old bundle's other files, its manifest
    with ``updates``, and its model card updated (``_card``). Returns the written manifest."""
    from .bundle import write_bundle

    manifest = {k: v for k, v in old.items() if k not in ("files", "sizes")}
    manifest.update(updates)
    for name in old["files"]:
        if name not in old["graphs"].values():
            files[name] = bundle.path / name  # tokenizer, lexicon, ...
    staged = scratch / "files"
    staged.mkdir()
    for name, path in list(files.items()):  # copy out before the bundle directory is replaced
        shutil.copy(path, staged / name)
        files[name] = staged / name
    write_bundle(out, files, manifest)
    manifest = json.loads((out / N.MANIFEST).read_text(encoding="utf-8"))  # with files and sizes
    if readme is not None:
        atomic_write_text(out / "README.md", _card(readme, manifest, out))
    log(f"wrote {out}: graphs {', '.join(f'{j}={f}' for j, f in manifest['graphs'].items())}")
    return manifest


def narrow_bundle(src: str | Path, out: str | Path | None = None, eval_tokens: int = 0,
                  source_ref: str | None = None, log=print) -> dict[str, Any]:
    """Re-write a row-wise bundle's graphs with 64-level weights (``narrow.narrow_weights``): the same
    answers on every CPU. Figures compare with the bundle's previous graphs with their products computed
    exactly (``narrow.exact_products``), i.e. as a CPU that does not saturate runs them."""
    import onnx

    from rnnkit.edge.bundle import open_bundle
    from rnnkit.edge.runner import load_session

    from .build_bundle import _versions, graph_listing, int8_options
    from .narrow import exact_products, narrow_weights, needs_narrowing
    from .quantize import compare_random
    from .verify import rollout_self_check

    src = Path(src)
    out = Path(out) if out else src
    bundle = open_bundle(src)
    old = json.loads(json.dumps(bundle.manifest))
    if not needs_narrowing(old):
        raise ValueError(f"{src}: not a row-wise bundle with 127-level weights (int8_options "
                         f"{old.get('int8_options')}); nothing to narrow")
    recipe_name = _recipe_name(src)
    readme = (src / "README.md").read_text(encoding="utf-8") if (src / "README.md").is_file() else None
    with tempfile.TemporaryDirectory(prefix="rnnkit-narrow-") as scratch:
        scratch = Path(scratch)
        files: dict[str, Path] = {}
        graphs: dict[str, str] = {}
        refs: dict[str, Path] = {}
        figures: dict[str, Any] = {}
        for job, path in bundle.graphs.items():
            model = onnx.load(str(path))
            done = narrow_weights(model)
            dst = scratch / path.name
            onnx.save(model, dst)
            ref = onnx.load(str(path))
            exact_products(ref)
            refs[job] = scratch / f"reference-{path.name}"
            onnx.save(ref, refs[job])
            sess = load_session(dst)
            meta = {p.key: p.value for p in model.metadata_props}
            figures[job] = {"int8_bytes": dst.stat().st_size, "narrowed": done,
                            "random_inputs_vs_previous": compare_random(load_session(refs[job]), sess,
                                                                        bundle.model_config),
                            "previous": (old.get("int8") or {}).get(job)}
            roll = rollout_self_check(sess, bundle.model_config, meta)
            if roll is not None:
                figures[job]["rollout_step_vs_whole"] = roll[0]
            files[dst.name] = dst
            graphs[job] = dst.name
            log(f"{job}: {done}, random inputs vs the previous graph {figures[job]['random_inputs_vs_previous']}")
        reference = "the previous graphs (127-level weights), their int8 products computed exactly"
        if bundle.kind == "lm" and N.JOB_STEP in graphs:
            _text_figures(bundle, recipe_name, refs[N.JOB_STEP], scratch / graphs[N.JOB_STEP], figures, eval_tokens,
                          reference, log)
        elif (old.get("int8") or {}).get("task"):
            sets = {"previous_int8": refs, "int8": {j: scratch / f for j, f in graphs.items()}}
            figures["task"] = _task_metrics(bundle, recipe_name, sets)
            figures["task"]["before_narrowing"] = old["int8"]["task"]
            k = figures["task"]["metric"]
            log("task " + ", ".join(f"{label} {figures['task'][label][k]:.4f}" for label in sets))
        opt = int8_options("rowwise", (old.get("int8_options") or {}).get("output_head", "int8"),
                           (old.get("int8_options") or {}).get("target", "portable"))
        updates = {
            "graphs": graphs, "int8": figures, "int8_options": opt,
            "graph_ops": graph_listing({j: scratch / f for j, f in graphs.items()}),
            "requantized": {
                "from": {f: old["files"][f] for f in old["graphs"].values()},
                "from_int8_options": old.get("int8_options"),
                "earlier": old.get("requantized"),
                "note": f"{NARROWED_NOTE} (q' = round(q / 2), scales doubled) so that no x86 CPU saturates the int8 "
                        f"products (AVX2 without VNNI did); the int8 figures compare with {reference}. parity and "
                        "metrics are the original export's.",
                "with": _versions(),
                "command": (f"git checkout {source_ref} -- {out} && " if source_ref else "")
                + f"python -m rnnkit.export.requantize {out}"},
        }
        return _write_out(bundle, old, out, scratch, files, updates, readme, log)


NARROWED = "Weights narrowed to 64 levels"
NARROWED_NOTE = "weights narrowed from 127 to 64 levels"


def _card(readme: str, manifest: dict[str, Any], out: Path) -> str:
    """The model card with its int8 figures re-measured, its size, and a "Runs on" section
    (``runtimes.card_section``) before "## Reproduce"."""
    import re

    from .runtimes import card_section

    readme = _narrowed_lines(readme, manifest) if (manifest.get("requantized") or {}).get("note", "").startswith(
        NARROWED_NOTE) else _requantized_lines(readme, manifest)
    if manifest.get("sizes"):
        size = sum(manifest["sizes"].values()) + (out / N.MANIFEST).stat().st_size   # as `rnnkit describe`
        text = f"{size / 1e6:.1f} MB" if size >= 100_000 else f"{size / 1e3:.0f} kB"   # as docs/make_model_cards.py
        readme = re.sub(r"^\| bundle size \| .* \|$", f"| bundle size | {text} |", readme, flags=re.M)
    readme = re.sub(r"\n## Runs on\n.*?(?=\n## |\Z)", "", readme, flags=re.S)
    section = card_section(manifest)
    marker = "\n## Reproduce"
    if marker in readme:
        return readme.replace(marker, f"\n{section}\n{marker}", 1)
    return readme.rstrip() + "\n\n" + section + "\n"


def _requantized_lines(readme: str, manifest: dict[str, Any]) -> str:
    """After ``requantize_bundle``: the int8 line (language models) or the recipe metrics line, replaced."""
    import re

    text = (manifest.get("int8") or {}).get(N.JOB_STEP, {}).get("text")
    if text:
        line = (f"int8 (re-quantised, row-wise) vs the fp32 graph rebuilt from the shipped int8 weights, on "
                f"{text['source']} ({text['tokens']:,} tokens): top-1 agreement {text['top1_agreement']:.2%}, "
                f"perplexity {text['fp32_ppl']:.3f} → {text['int8_ppl']:.3f} ({text['ppl_change']:+.3%}).")
        readme = re.sub(r"^int8 (\(re-quantised.*|vs fp32 on .*)$", line, readme, flags=re.M)
    task = (manifest.get("int8") or {}).get("task")
    if task:
        line = "Recipe metrics of the graphs (re-quantised): " + ", ".join(
            f"{k} fp32 rebuilt from int8 {task['fp32'][k]:.4g} / previous int8 {task['previous_int8'][k]:.4g} / "
            f"row-wise int8 {task['int8'][k]:.4g}" for k in task["fp32"] if k.startswith("val_"))
        readme = re.sub(r"^Recipe metrics of the graphs.*$", line, readme, flags=re.M)
    return readme


def _narrowed_lines(readme: str, manifest: dict[str, Any]) -> str:
    """After ``narrow_bundle``: one line with what the narrowing cost, after the int8 figures."""
    import re

    figs = manifest.get("int8") or {}
    text = figs.get(N.JOB_STEP, {}).get("text")
    line = (f"{NARROWED} (every x86 CPU gives the same answers; `python -m rnnkit.export.requantize`), against the "
            "previous int8 graphs with exact products")
    if text:
        line += (f", on {text['source']} ({text['tokens']:,} tokens): top-1 agreement {text['top1_agreement']:.2%}, "
                 f"perplexity {text['fp32_ppl']:.3f} → {text['int8_ppl']:.3f} ({text['ppl_change']:+.3%}).")
    elif figs.get("task"):
        task = figs["task"]
        line += ": recipe metrics " + ", ".join(f"{k} {task['previous_int8'][k]:.4g} → {task['int8'][k]:.4g}"
                                                for k in task["int8"] if k.startswith("val_")) + "."
    else:
        line += "."
    readme = re.sub(rf"^{NARROWED}.*\n", "", readme, flags=re.M)
    anchor = re.search(r"^(int8 vs fp32 on .*|int8 \(re-quantised.*|Recipe metrics of the graphs.*)$", readme, flags=re.M)
    return readme[:anchor.end()] + "\n" + line + readme[anchor.end():] if anchor else readme


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m rnnkit.export.requantize",
        description="Rewrite the int8 graphs of a shipped int8-only bundle whose training run is gone, in place "
                    "(or to --out). A row-wise bundle made before the weights kept to 64 levels is narrowed "
                    "(same answers on every CPU; no option applies); a bundle of the earlier dynamic scheme is "
                    "re-quantised row-wise from its int8 weights.")
    p.add_argument("bundle")
    p.add_argument("--out", help="write here instead of replacing BUNDLE")
    p.add_argument("--scheme", choices=("rowwise", "dynamic"), help="re-quantising only (default rowwise)")
    p.add_argument("--head", choices=("int8", "fp32"), help="re-quantising only (default: as the bundle was exported)")
    p.add_argument("--target", choices=("portable", "native"), help="re-quantising only (default portable)")
    p.add_argument("--eval-tokens", type=int, default=0, help="tokens of validation text to measure on (0: all)")
    p.add_argument("--source-ref", help="git revision BUNDLE was checked out from (recorded in the command)")
    args = p.parse_args(argv)
    import torch

    from rnnkit.edge.bundle import BundleError, open_bundle

    from .narrow import needs_narrowing

    torch.set_num_threads(1)
    try:
        if needs_narrowing(open_bundle(args.bundle).manifest):
            if args.scheme or args.head or args.target:
                p.error("--scheme / --head / --target do not apply: this bundle's weights are narrowed, as they are")
            narrow_bundle(args.bundle, args.out, args.eval_tokens, args.source_ref)
        else:
            requantize_bundle(args.bundle, args.out, args.scheme or "rowwise", args.head, args.eval_tokens,
                              args.target or "portable", args.source_ref)
    except (BundleError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
