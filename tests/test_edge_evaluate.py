"""`rnnkit eval BUNDLE --data FILE` from the base install: every shipped bundle is scored torch-free
(numpy + onnxruntime; no torch, no sacrebleu), and the figures equal the PyTorch task code's on the
same graphs (export.ort_model), which tests/test_eval_cli.py ties to the run itself."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from test_edge_torchfree import run_blocked

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "docs" / "examples"

# bundle -> the example file in its task's format (docs/OWN_DATA.md)
SHIPPED = {
    "suggest-en": "notes.txt",
    "char-shakespeare": "notes.txt",
    "sentiment-mr": "sentiment.tsv",
    "ner-conll": "entities.conll",
    "translate-en-de": "translation.tsv",
    "timeseries": "sales.csv",
}
KINDS = {"suggest-en": "lm", "char-shakespeare": "lm", "sentiment-mr": "classifier", "ner-conll": "tagger",
         "translate-en-de": "seq2seq", "timeseries": "forecaster"}


def paths(name: str) -> tuple[str, str]:
    return str(ROOT / "models" / name), str(EXAMPLES / SHIPPED[name])


def same(a: dict, b: dict, rel: float) -> list[str]:
    """Keys whose values differ (numbers beyond ``rel``)."""
    bad = sorted(set(a) ^ set(b))
    for k in set(a) & set(b):
        x, y = a[k], b[k]
        if isinstance(x, float) or isinstance(y, float):
            if not math.isclose(x, y, rel_tol=rel, abs_tol=1e-9):
                bad.append(f"{k}: {x} vs {y}")
        elif x != y:
            bad.append(f"{k}: {x!r} vs {y!r}")
    return bad


def test_eval_runs_every_shipped_bundle_without_torch_or_sacrebleu():
    """The real entry point (`rnnkit eval ... --json`) in a process where torch and sacrebleu cannot
    be imported; its figures equal the in-process torch-free ones."""
    from rnnkit.edge.evaluate import evaluate_bundle

    jobs = [paths(name) for name in SHIPPED]
    r = run_blocked(f"""
        import contextlib, io, json, sys
        from rnnkit.cli import build_parser, main
        assert "eval" in build_parser()._subparsers._group_actions[0].choices
        for bundle, data in {jobs!r}:
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                rc = main(["eval", bundle, "--data", data, "--json"])
            assert rc == 0, (bundle, rc)
            print(out.getvalue().strip().splitlines()[-1])
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            assert main(["eval", {str(ROOT)!r}, "--data", {jobs[0][1]!r}]) == 2
        assert "scoring a run needs PyTorch" in err.getvalue(), err.getvalue()
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "sacrebleu", "onnx", "statsmodels"))
        print(json.dumps({{"heavy": heavy}}))
    """)
    assert r.returncode == 0, r.stderr[-3000:]
    lines = [json.loads(x) for x in r.stdout.strip().splitlines()]
    assert lines[-1] == {"heavy": []}
    for name, got in zip(SHIPPED, lines[:-1]):
        want = evaluate_bundle(*paths(name))
        assert got["kind"] == KINDS[name] and got["backend"] == "onnxruntime int8"
        assert not same(got, want, 1e-12), (name, same(got, want, 1e-12))
        assert math.isfinite(got[got["metric"]])


@pytest.mark.parametrize("name", list(SHIPPED))
def test_torch_free_figures_equal_the_pytorch_task_code(name):
    """The same graphs scored through the training tasks (PyTorch + export.ort_model): equal up to
    float32 summation order."""
    pytest.importorskip("torch")
    from rnnkit.core.cli.eval import evaluate

    free = evaluate(*paths(name))
    adapter = evaluate(*paths(name), torch_adapter=True)
    assert free["backend"] == adapter["backend"] == "onnxruntime int8"
    assert not same(free, adapter, 1e-5), same(free, adapter, 1e-5)


def test_figures_by_hand_on_the_shipped_examples():
    """Properties that hold whatever the weights: counts of the example files, bits = loss / ln 2,
    seasonal-naive on a series that repeats its season plus a trend."""
    from rnnkit.edge.evaluate import evaluate_bundle

    lm = evaluate_bundle(*paths("char-shakespeare"))
    assert lm["unit"] == "char" and lm["lines"] == 5
    assert lm["bits"] == pytest.approx(lm["loss"] / math.log(2)) and lm["ppl"] == pytest.approx(math.exp(lm["loss"]))
    ner = evaluate_bundle(*paths("ner-conll"))
    assert (ner["sentences"], ner["tokens"]) == (2, 13)
    mt = evaluate_bundle(*paths("translate-en-de"), beam=1)
    assert (mt["pairs"], mt["beam"]) == (3, 1) and 0 <= mt["bleu"] <= 100 and 0 <= mt["chrf"] <= 100
    ts = evaluate_bundle(*paths("timeseries"), horizon=6)
    assert (ts["points"], ts["horizon"], ts["period"], ts["like_series"]) == (60, 6, 12, "airline")
    assert ts["rel_rmse"] == pytest.approx(ts["rmse_1step"] / ts["snaive_rmse_1step"])


def test_user_mistakes_are_one_line(tmp_path, capsys):
    from rnnkit.cli import main

    bundle, data = paths("timeseries")
    short = tmp_path / "short.csv"
    short.write_text("month,sales\n" + "".join(f"2020-{i:02d},{100 + i}\n" for i in range(20)), encoding="utf-8")
    assert main(["eval", bundle, "--data", str(short)]) == 2
    assert "two seasons" in capsys.readouterr().err
    assert main(["eval", bundle, "--data", str(tmp_path / "missing.csv")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["eval", bundle, "--data", data, "--series", "nope"]) == 2
    assert "this model knows" in capsys.readouterr().err
