"""`rnnkit eval RUN_OR_BUNDLE --data FILE`: a tiny run (trained with `rnnkit train --size smoke` on
a synthetic file) and its int8 bundle give the same task metric within the int8 tolerance; the
bundle's fp32 graphs give PyTorch's figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import predict_fixtures as F

pytest.importorskip("torch")

# kind -> (recipe, file writer, extra --set, headline metrics with (relative, absolute) int8 tolerance)
CASES = {
    "lm": ("char-shakespeare", F.write_text, [], {"ppl": (0.01, 0.0), "loss": (0.01, 0.0)}),
    "classifier": ("sentiment-mr", F.write_sentiment, [], {"acc": (0.0, 1.0), "score_mae": (0.0, 0.02)}),
    "tagger": ("ner-conll", lambda p: F.write_conll(p, F.ner_sentences(200)), ["--set", "train.max_epochs=12"],
               {"f1": (0.0, 2.0)}),
    "forecaster": ("timeseries", F.write_series,
                   ["--set", 'data.user_series={"period": 12, "val_len": 12, "test_len": 12, "log": false}'],
                   {"rmse_1step": (0.03, 0.0), "rmse_multi": (0.05, 0.0)}),
    "seq2seq": ("translate-en-de", F.write_pairs, ["--set", "train.max_steps=300", "--set", "train.eval_every=300",
                                                  "--set", "train.lr=0.03", "--set", "model.hidden_size=32"],
                {"bleu": (0.0, 2.0), "chrf": (0.0, 2.0), "loss": (0.01, 0.0)}),
}
SUFFIX = {"lm": ".txt", "classifier": ".tsv", "tagger": ".conll", "forecaster": ".csv", "seq2seq": ".tsv"}


def train_and_export(kind: str, tmp: Path) -> tuple[Path, Path, Path]:
    from rnnkit.cli import main
    from rnnkit.export.build_bundle import export_bundle

    recipe, write, extra, _ = CASES[kind]
    data = write(tmp / f"data{SUFFIX[kind]}")
    run = tmp / "run"
    assert main(["train", "--recipe", recipe, "--size", "smoke", "--train", str(data), "--run-dir", str(run),
                 "--threads", "1", "--quiet", *extra]) == 0
    bundle = tmp / "bundle"
    export_bundle(run, bundle, int8=True, log=lambda *a: None)  # fp32 graphs kept beside the int8 ones
    return run, bundle, data


def close(a: float, b: float, rel: float, abs_: float) -> bool:
    return abs(a - b) <= max(abs_, rel * max(abs(a), abs(b)), 1e-6)


@pytest.mark.parametrize("kind", [pytest.param(k, marks=pytest.mark.slow) if k == "seq2seq" else k for k in CASES])
def test_run_and_bundle_agree(kind, tmp_path, capsys):
    from rnnkit.cli import main
    from rnnkit.core.cli.eval import evaluate

    run, bundle, data = train_and_export(kind, tmp_path)
    torch_res = evaluate(run, data)
    int8_res = evaluate(bundle, data)
    fp32_res = evaluate(bundle, data, precision="fp32")
    assert torch_res["kind"] == int8_res["kind"] == kind
    assert (torch_res["backend"], int8_res["backend"], fp32_res["backend"]) == (
        "pytorch", "onnxruntime int8", "onnxruntime fp32")
    for key, (rel, abs_) in CASES[kind][3].items():
        t, q, f = torch_res[key], int8_res[key], fp32_res[key]
        assert close(t, q, rel, abs_), (key, t, q)
        assert close(t, f, 1e-4, 1e-3), (key, t, f)  # fp32 graphs: PyTorch's figure
    # the command prints the same figures as one JSON object
    assert main(["eval", str(bundle), "--data", str(data), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed[printed["metric"]] == pytest.approx(int8_res[int8_res["metric"]], rel=1e-9)


def test_eval_errors_are_one_line(tmp_path, capsys):
    from rnnkit.cli import main

    data = F.write_text(tmp_path / "t.txt")
    assert main(["eval", str(tmp_path), "--data", str(data)]) == 2
    assert "neither a bundle" in capsys.readouterr().err
    assert main(["eval", str(tmp_path), "--data", str(tmp_path / "missing.txt")]) == 2
    assert "no such file" in capsys.readouterr().err
