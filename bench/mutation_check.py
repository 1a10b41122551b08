"""Break the code that computes reported figures, one mutation at a time, and check a test fails.

    .venv/bin/python bench/mutation_check.py            # every mutation (a few minutes)
    .venv/bin/python bench/mutation_check.py -k savings # the ones whose name matches

Each mutation replaces one snippet in one file of a copy of the repository (tracked and
untracked, not ignored, files) and runs the tests named for it against that copy (the copy is
imported as ``rnnkit`` through PYTHONPATH, ahead of the editable install). A mutation is
*caught* when the tests fail. A snippet that is no longer in its file is reported as stale:
update the list when the code moves. Prints a table and exits 1 if any mutation survives.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# (name, file, snippet, replacement, tests that must catch it)
MUTATIONS = [
    ("eval scores each keystroke's suggestions against the one before", "edge/eval.py",
     "out = score(text, lambda t, start, typed: cache[len(t)], k)",
     "out = score(text, lambda t, start, typed: cache[max(len(t) - 1, 0)], k)",
     ["tests/test_edge_eval.py", "tests/test_edge_lexicon.py"]),
    ("keystroke savings count one keystroke too many", "edge/eval.py",
     "saved += len(word) - accepted - 1", "saved += len(word) - accepted",
     ["tests/test_edge_eval.py::test_score_by_hand"]),
    ("top-1 counts a hit in the first two", "edge/eval.py",
     "hits[key][0] += bool(sugg) and sugg[0] == word", "hits[key][0] += word in sugg[:2]",
     ["tests/test_edge_eval.py::test_score_by_hand"]),
    ("non-words never counted", "edge/eval.py",
     "row[0] += not is_word(sg.text)", "row[0] += 0",
     ["tests/test_edge_eval.py::test_non_word_shares_counted_by_hand"]),
    ("phrase exact match by first word only", "edge/eval.py",
     "follow.startswith(hit.text)", "follow.startswith(hit.text.split()[0])",
     ["tests/test_edge_eval.py"]),
    ("trainer ignores bf16 autocast", "core/train/device.py",
     "return torch.autocast(device_type=device.type, dtype=_DTYPES[precision])",
     "return contextlib.nullcontext()",
     ["tests/test_trainer.py", "tests/test_ci_switches.py"]),
    ("cosine schedule ignores its floor", "core/train/schedules.py",
     "ratio = self.min_lr_ratio + (1 - self.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))",
     "ratio = 0.5 * (1 + math.cos(math.pi * progress))",
     ["tests/test_trainer.py"]),
    ("LM perplexity from half the loss", "core/metrics/numeric.py",
     '"ppl": math.exp(min(nats, 50.0))', '"ppl": math.exp(min(nats / 2, 50.0))',
     ["tests/test_recipes_lm.py", "tests/test_cli_train.py"]),
    ("int8 top-1 agreement against itself", "export/quantize.py",
     '"top1_agreement": float((preds == ref).mean())', '"top1_agreement": float((preds == preds).mean())',
     ["tests/test_quantize_report.py", "tests/test_export_int8.py"]),
    ("sentiment score MAE without abs", "core/metrics/numeric.py",
     '"score_mae": float(np.abs(pred - g).mean())', '"score_mae": float((pred - g).mean())',
     ["tests/test_task_metrics.py"]),
    ("BLEU with hypotheses and references swapped", "core/metrics/bleu.py",
     'return {"bleu": float(corpus_bleu(hyps, refs)), "chrf": float(corpus_chrf(hyps, refs))}',
     'return {"bleu": float(corpus_bleu(refs, hyps)), "chrf": float(corpus_chrf(hyps, refs))}',
     ["tests/test_task_metrics.py"]),
    ("BLEU without the brevity penalty", "core/metrics/bleu.py",
     "bp = 1.0 if sys_len >= ref_len else", "bp = 1.0 if True else",
     ["tests/test_metrics_bleu.py"]),
    ("chrF with beta 1", "core/metrics/bleu.py", "BETA = 2", "BETA = 1", ["tests/test_metrics_bleu.py"]),
    ("probability given typed not renormalised", "edge/session.py",
     'out = [Suggestion(h.text, math.exp(h.logp), kind, math.exp(h.logp - log_z)) for h in hits]',
     'out = [Suggestion(h.text, math.exp(h.logp), kind, math.exp(h.logp)) for h in hits]',
     ["tests/test_edge_lexicon.py::test_p_given_typed"]),
    ("lexicon filter off", "edge/session.py",
     "return [h for h in hits if h.text in self.lexicon or h.text in user or h.logp - log_z >= floor]",
     "return hits",
     ["tests/test_edge_lexicon.py"]),
    ("user cache mixture ignores lambda", "edge/adapt.py",
     "p = (1 - self.lam) * math.exp(model_logp) + self.lam * self.prob(word, prev)",
     "p = math.exp(model_logp) + self.prob(word, prev)",
     ["tests/test_edge_adapt.py"]),
    ("user cache bigram back-off weight dropped", "edge/adapt.py",
     "return (self.bi.get((prev, word), 0.0) + self.beta * p_uni * self._scale) / (",
     "return (self.bi.get((prev, word), 0.0) + p_uni * self._scale) / (",
     ["tests/test_edge_adapt.py"]),
    ("Kneser-Ney first discount off by one count", "core/text/kneser_ney.py",
     "d1 = 1 - 2 * y * n2 / n1", "d1 = 1 - 2 * y * n2 / (n1 + 1)",
     ["tests/test_edge_kneser_ney.py"]),
    ("entity F1 from precision only", "core/metrics/entities.py",
     'out = {"precision": prec, "recall": rec, "f1": f}', 'out = {"precision": prec, "recall": rec, "f1": prec}',
     ["tests/test_task_metrics.py"]),
]


def copy_repo(dest: Path) -> Path:
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.splitlines()
    for f in files:
        src = ROOT / f
        if src.is_file() and not src.is_symlink():
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / f)
    site = dest.parent / "site"
    site.mkdir(exist_ok=True)
    (site / "rnnkit").symlink_to(dest)
    return site


def run(selected: list, timeout: float) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="rnnkit-mut-") as tmp:
        repo = Path(tmp) / "repo"
        site = copy_repo(repo)
        env = {**os.environ, "PYTHONPATH": str(site), "RNNKIT_REQUIRE_ALL": "0"}
        for name, rel, old, new, tests in selected:
            path = repo / rel
            text = path.read_text(encoding="utf-8")
            if text.count(old) != 1:
                rows.append({"name": name, "file": rel, "result": "stale (snippet not found once)", "tests": tests})
                continue
            path.write_text(text.replace(old, new), encoding="utf-8")
            t0 = time.time()
            try:
                proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                                       "-m", "not browser", *tests], cwd=repo, env=env, capture_output=True,
                                      text=True, timeout=timeout)
                failed = [l.split(" ")[1] for l in proc.stdout.splitlines() if l.startswith("FAILED ")]
                result = "caught" if proc.returncode == 1 and failed else (
                    "SURVIVED" if proc.returncode == 0 else f"error (pytest rc {proc.returncode})")
            except subprocess.TimeoutExpired:
                failed, result = [], "timeout"
            finally:
                path.write_text(text, encoding="utf-8")
            rows.append({"name": name, "file": rel, "result": result, "by": failed[:1],
                         "seconds": round(time.time() - t0, 1), "tests": tests})
            print(f"{result:>8}  {name}  ({rel}) {failed[:1]}", flush=True)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-k", default="", help="only mutations whose name contains this text")
    ap.add_argument("--timeout", type=float, default=900, help="seconds per mutation's test run (default 900)")
    args = ap.parse_args(argv)
    selected = [m for m in MUTATIONS if args.k.lower() in m[0].lower()]
    rows = run(selected, args.timeout)
    print("\n| mutation | file | result | caught by |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['name']} | `{r['file']}` | {r['result']} | {', '.join(r.get('by') or []) or '-'} |")
    return 0 if all(r["result"] == "caught" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
