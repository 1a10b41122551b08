"""`rnnkit predict` and the torch-free engines of edge/predict*.py, on every bundle kind."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from predict_fixtures import tiny_models
from test_demo_fixtures import demo_models  # noqa: F401  (session fixture)
from test_edge_torchfree import BLOCKER


@pytest.fixture(scope="module")
def models(demo_models, tmp_path_factory) -> Path:
    """The demo fixture's four bundles plus a tiny tagger and forecaster, in one folder."""
    root = tmp_path_factory.mktemp("predict")
    out = tiny_models(root)
    for d in demo_models.iterdir():
        shutil.copytree(d, out / d.name)
    return out


def cli(*args: str, stdin: str = "", blocked: bool = False) -> subprocess.CompletedProcess:
    code = f"import sys\nfrom rnnkit.cli import main\nsys.exit(main({list(args)!r}))\n"
    return subprocess.run([sys.executable, "-c", (BLOCKER if blocked else "") + code], input=stdin,
                          capture_output=True, text=True, timeout=120)


# --------------------------------------------------------------------------- torch-free, every kind
def test_predict_runs_every_kind_without_torch(models):
    """Every engine through open_predictor, torch / gradio / onnx imports blocked."""
    code = BLOCKER + textwrap.dedent(f"""
        import json, sys
        from rnnkit.edge.predict import open_predictor
        m = {str(models)!r}
        out = {{
            "lm": open_predictor(m + "/char-shakespeare").predict("ROMEO:", length=20, seed=1),
            "classifier": open_predictor(m + "/sentiment-mr").predict("a good film"),
            "seq2seq": open_predictor(m + "/translate-en-de").predict("love your neighbor", beam=2),
            "tagger": open_predictor(m + "/ner-tiny").predict("John Smith visited Paris ."),
            "forecaster": open_predictor(m + "/ts-tiny").predict(" ".join(str(100 + i % 12) for i in range(48)), 6),
        }}
        heavy = sorted(x for x in sys.modules if x.split(".")[0] in ("torch", "gradio", "onnx", "safetensors"))
        print(json.dumps({{"out": out, "heavy": heavy}}))
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["heavy"] == []
    out = res["out"]
    assert out["lm"]["text"].startswith("ROMEO:") and out["lm"]["continuation"]
    assert out["classifier"]["label"] in ("positive", "negative") and -1 <= out["classifier"]["score"] <= 1
    assert isinstance(out["seq2seq"]["translation"], str)
    assert out["tagger"]["tokens"] == ["John", "Smith", "visited", "Paris", "."] and len(out["tagger"]["tags"]) == 5
    assert len(out["forecaster"]["forecast"]) == 6 and out["forecaster"]["period"] == 12


def test_json_cli_one_line_in_one_line_out_without_torch(models):
    lines = '{"text": "a dull film"}\nnot json\n\n{"text": 5}\n{"text": "ok", "beam": 2}\n["a"]\n{"text": "fine"}\n'
    r = cli("predict", str(models / "sentiment-mr"), "--json", stdin=lines, blocked=True)
    assert r.returncode == 0, r.stderr[-2000:]
    answers = [json.loads(x) for x in r.stdout.splitlines()]
    assert len(answers) == 7
    assert answers[0]["label"] in ("positive", "negative") and answers[0]["ms"] > 0
    assert "not JSON" in answers[1]["error"] and "empty line" in answers[2]["error"]
    assert "text" in answers[3]["error"] and "unknown key(s) ['beam']" in answers[4]["error"]
    assert "error" in answers[5] and "label" in answers[6]


@pytest.mark.parametrize("bundle, request_line, check", [
    ("char-shakespeare", {"text": "ROMEO:", "length": 15, "seed": 3}, lambda a: a["text"].startswith("ROMEO:")),
    ("char-shakespeare", {"text": "ROMEO:", "length": 5000}, lambda a: "length must be from 1 to 1000" in a["error"]),
    ("translate-en-de", {"text": "the lord is my shepherd", "beam": 3}, lambda a: "translation" in a),
    ("translate-en-de", {"text": "x", "beam": 99}, lambda a: "beam must be from 1 to 16" in a["error"]),
    ("ner-tiny", {"text": "Mary Jones works for Google in London ."},
     lambda a: all(e["text"] == "Mary Jones works for Google in London ."[e["start"]:e["end"]] for e in a["entities"])),
    ("ner-tiny", {"tokens": ["Anna", "Berg", "."]}, lambda a: a["tokens"] == ["Anna", "Berg", "."]),
    ("ts-tiny", {"history": [100 + (i % 12) for i in range(40)], "horizon": 3}, lambda a: len(a["forecast"]) == 3),
    ("ts-tiny", {"history": [1, 2, 3]}, lambda a: "needs 14" in a["error"]),
    ("ts-tiny", {"history": [1.0] * 30, "series": "nope"}, lambda a: "unknown series 'nope'" in a["error"]),
])
def test_json_requests_of_each_kind(models, bundle, request_line, check):
    r = cli("predict", str(models / bundle), "--json", stdin=json.dumps(request_line) + "\n")
    assert r.returncode == 0, r.stderr[-2000:]
    (answer,) = [json.loads(x) for x in r.stdout.splitlines()]
    assert check(answer), answer


def test_plain_output_per_kind(models, tmp_path):
    reviews = tmp_path / "reviews.txt"
    reviews.write_text("a good film\n\nawful\n", encoding="utf-8")
    r = cli("predict", str(models / "sentiment-mr"), "--file", str(reviews))
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 2  # blank lines are skipped
    assert all(line.split("\t")[0] in ("positive", "negative") for line in r.stdout.splitlines())
    r = cli("predict", str(models / "ner-tiny"), stdin="John Smith visited Paris .\n")
    assert r.returncode == 0 and r.stdout.split()[0].startswith("John")
    series = tmp_path / "s.csv"
    series.write_text("date,value\n" + "".join(f"2000-{i},{100 + i % 12}\n" for i in range(40)) + "2003-1,\n")
    r = cli("predict", str(models / "ts-tiny"), "--file", str(series), "--horizon", "5")
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.split()) == 5 and all(float(v) > 0 for v in r.stdout.split())


def test_cli_errors_are_one_line(models, tmp_path):
    r = cli("predict", str(tmp_path / "nope"), "--text", "x")
    assert r.returncode == 2 and "no such bundle directory" in r.stderr and "Traceback" not in r.stderr
    r = cli("predict", str(models / "char-shakespeare"), "--text", "x", "--top-p", "3")
    assert r.returncode == 2 and "top_p must be from 0.01 to 1" in r.stderr


def test_generate_is_the_name_and_sample_its_alias():
    from rnnkit.cli import build_parser

    p = build_parser()
    for name in ("generate", "sample"):
        args = p.parse_args([name, "runs/x", "--prompt", "Hi", "--length", "5"])
        assert (args.run_dir, args.prompt, args.length) == ("runs/x", "Hi", 5) and args.func.__name__ == "run_sample"


# --------------------------------------------------------------------------- engines
def test_entity_spans_are_the_scorers_chunks():
    """predict's entities and the F1 scorer use one chunker (rnnkit.core.metrics.entities)."""
    from rnnkit.core.metrics import entities
    from rnnkit.core.tasks import tagger
    from rnnkit.edge import predict_tag

    assert predict_tag.chunks is entities.chunks is tagger.chunks
    assert tagger.chunk_f1 is entities.chunk_f1
    tags = ["B-PER", "I-PER", "O", "I-LOC", "S-ORG", "B-ORG", "E-ORG", "MISC"]
    assert entities.chunks(tags) == [("PER", 0, 1), ("LOC", 3, 3), ("ORG", 4, 4), ("ORG", 5, 6), ("MISC", 7, 7)]


def test_tokenize_keeps_offsets_and_highlighting_rebuilds_the_text():
    from rnnkit.edge.predict_tag import highlighted, tokenize

    text = "The U.S. and Mr. O'Neil's 1,000-strong team met in São Paulo (Brazil)."
    toks = tokenize(text)
    assert [t for t, _, _ in toks][:3] == ["The", "U.S.", "and"] and "1,000-strong" in [t for t, _, _ in toks]
    assert all(text[a:b] == t for t, a, b in toks)
    assert ("O'Neil", text.index("O'Neil"), text.index("'s 1")) in toks and ("'s", text.index("'s 1"), text.index(" 1,")) in toks
    assert [t for t, _, _ in tokenize("Germany\u2019s Ross' it's")] == ["Germany", "\u2019s", "Ross", "'", "it", "'s"]
    # a missing space after punctuation splits words; inner dots stay in numbers and domain names
    assert [t for t, _, _ in tokenize("Paris.Then Berlin,Germany 3.5m reuters.com 1,500m the 1,000th 12,5mg")] == [
        "Paris", ".", "Then", "Berlin", ",", "Germany", "3.5m", "reuters.com", "1,500m", "the", "1,000th", "12,5mg"]
    # a combining accent (NFD) stays inside its word, offsets into the text as typed
    nfd = "Jose\u0301 met Zu\u0308rich"
    assert [(t, a, b) for t, a, b in tokenize(nfd)] == [("Jose\u0301", 0, 5), ("met", 6, 9), ("Zu\u0308rich", 10, 17)]
    ents = [{"type": "LOC", "start": text.index("São"), "end": text.index(" (")}]
    segs = highlighted(text, ents)
    assert "".join(s for s, _ in segs) == text and ("São Paulo", "LOC") in segs


def test_forecast_equals_the_tasks_recursive_forecast(models):
    """The engine's forecast = TimeseriesTask.multi_step of the PyTorch model (history's own mu / sd)."""
    import torch  # noqa: F401

    from rnnkit.core.models import registry
    from rnnkit.core.tasks.timeseries import Series, TimeseriesTask
    from rnnkit.edge.predict_series import SeriesForecaster

    history = [100 + 20 * np.sin(i / 2) + i for i in range(60)]
    got = SeriesForecaster(models / "ts-tiny").forecast(history, 10)["forecast"]
    model = registry.load(models.parent / "runs" / "ts-tiny" / "model")
    task = TimeseriesTask([Series("x", history + [history[-1]] * 10, 12, val_len=0, test_len=10, log=True)],
                          sarimax=False)
    want = task.multi_step(model, task.series[0], 60, 70)
    # the bundle is int8: the same forecast within the quantisation's error
    assert np.allclose(got, want, rtol=2e-2), (got, want)


def test_sentiment_predict_agrees_with_the_demo_analysis(models):
    from rnnkit.edge.predict_text import SentimentScorer

    s = SentimentScorer(models / "sentiment-mr")
    p, r = s.predict("a dull film with a moving story"), s.analyse("a dull film with a moving story")
    assert p["score"] == pytest.approx(r.score, abs=1e-6) and p["positive"] == pytest.approx(r.positive, abs=1e-6)


def test_parse_history_formats():
    from rnnkit.edge.predict import InputError
    from rnnkit.edge.predict_series import parse_history

    assert parse_history("1 2,3;4\n5") == [1, 2, 3, 4, 5]
    assert parse_history("date,value\n2000-01,1\n2000-02,\n2000-03,3\n") == [1, 2, 3]
    with pytest.raises(InputError, match="'abc' is not a finite number"):
        parse_history("1 2\nabc")
    with pytest.raises(InputError, match="not a finite number"):
        parse_history("1 nan inf")


def test_options_set_to_zero_are_kept():
    """`--seed 0` is a seed (the same text twice), and `--length 0` an out-of-range value, not
    "no option given"."""
    import argparse

    from rnnkit.edge.predict_cli import _defaults

    args = argparse.Namespace(length=None, temperature=None, top_k=0, top_p=None, seed=0, greedy=False)
    assert _defaults(args, "lm") == {"top_k": 0, "seed": 0}
    assert _defaults(argparse.Namespace(greedy=True), "lm") == {"greedy": True}


def test_file_lines_lose_windows_line_ends_and_the_byte_order_mark(models, tmp_path):
    import argparse

    from rnnkit.edge.predict_cli import _inputs

    f = tmp_path / "reviews.txt"
    f.write_bytes("\ufeffa good film\r\n\r\nawful\r\n".encode("utf-8"))
    args = argparse.Namespace(text=None, file=str(f))
    assert list(_inputs(args, "classifier", keep_blank=False)) == [{"text": "a good film"}, {"text": "awful"}]
    r = cli("predict", str(models / "char-shakespeare"), "--text", "ROMEO:", "--length", "0")
    assert r.returncode == 2 and "length must be from 1 to 1000, got 0" in r.stderr


def test_decomposed_accents_tag_as_composed_ones(models):
    """Text typed with combining accents (NFD) gets the tags of the same text composed (NFC),
    with spans into the text as given."""
    import unicodedata

    from rnnkit.edge.predict import open_predictor

    tagger = open_predictor(str(models / "ner-tiny"))
    nfc = "Jos\u00e9 Smith visited Z\u00fcrich ."
    nfd = unicodedata.normalize("NFD", nfc)
    a, b = tagger.predict(nfc), tagger.predict(nfd)
    assert a["tags"] == b["tags"]
    assert all(nfd[e["start"]:e["end"]] == e["text"] for e in b["entities"])


def test_translation_keeps_every_line_and_refuses_text_it_cannot_read(models):
    from rnnkit.edge.predict import InputError
    from rnnkit.edge.predict_text import SentimentScorer, Translator

    tr = Translator(models / "translate-en-de")
    one, two = tr.translate("love your neighbor", 2), tr.translate("the lord is my shepherd", 2)
    both = tr.translate("love your neighbor\r\n\nthe lord is my shepherd\n", 2)
    assert both.text == one.text + "\n" + two.text
    assert both.attention.shape == (one.attention.shape[0] + two.attention.shape[0],
                                    one.attention.shape[1] + two.attention.shape[1])
    assert both.src_pieces == one.src_pieces + two.src_pieces
    assert both.logprob == pytest.approx(one.logprob + two.logprob)
    scorer = SentimentScorer(models / "sentiment-mr")
    for text in ("\u200b", "\U0001F600", "\u200b \u200d"):
        with pytest.raises(InputError, match="no word this model knows"):
            tr.translate(text)
        with pytest.raises(InputError, match="no word this model knows"):
            scorer.predict(text)
    assert scorer.predict("a good film \U0001F600")["label"] in ("positive", "negative")


def test_forecast_edge_cases(models):
    """A flat history forecasts about flat (not +-50 % swings), tiny values keep their digits,
    and a CSV whose first row is a gap keeps that row (it is data, not a header)."""
    from rnnkit.edge.predict_series import SeriesForecaster, parse_history

    f = SeriesForecaster(models / "ts-tiny")
    flat = f.predict([100.0] * 48, 12)["forecast"]
    assert all(80 < v < 125 for v in flat), flat
    hist = [100 + (i % 12) for i in range(40)]
    small = f.predict([v * 1e-7 for v in hist], 6)["forecast"]
    big = f.predict(hist, 6)["forecast"]
    assert all(s > 0 for s in small) and small == pytest.approx([b * 1e-7 for b in big], rel=1e-4)
    csv = "1949-01,\n" + "".join(f"1949-{i:02d},{v}\n" for i, v in enumerate(hist[1:], 2))
    assert len(parse_history(csv)) == len(hist) and parse_history(csv)[0] == hist[1]  # the gap filled
    assert parse_history("date,value\n1949-01,112\n1949-02,118") == [112.0, 118.0]


def test_each_line_is_a_sentence_of_its_own(models):
    """An entity never runs across a line break (a signature: name / company / city); every line
    gets the tags it gets alone, with offsets into the whole text."""
    from rnnkit.edge.predict import open_predictor

    tagger = open_predictor(str(models / "ner-tiny"))
    lines = ["John Smith visited Paris .", "", "Mary Jones works for Google in London ."]
    text = "\n".join(lines)
    got = tagger.predict(text)
    alone = [tagger.predict(line) for line in lines if line]
    assert got["tags"] == alone[0]["tags"] + alone[1]["tags"]
    assert all("\n" not in e["text"] and text[e["start"]:e["end"]] == e["text"] for e in got["entities"])
    shift = len(lines[0]) + 2
    assert [(e["type"], e["start"]) for e in got["entities"]] == [(e["type"], e["start"]) for e in alone[0]["entities"]] + [
        (e["type"], e["start"] + shift) for e in alone[1]["entities"]]


def test_the_status_line_names_a_transformer_and_shows_test_figures(models, tmp_path):
    from rnnkit.edge.bundle import open_bundle
    from rnnkit.edge.predict import describe

    line = describe(open_bundle(models / "sentiment-mr"))
    assert "valid" not in line or "test" not in line  # test figures first; validation only without them
    repo = Path(__file__).resolve().parents[1] / "models"
    assert describe(open_bundle(repo / "char-shakespeare-gpt")).startswith("Transformer 4×128")
    ner = describe(open_bundle(repo / "ner-conll"))
    assert "test entity F1" in ner and "valid" not in ner  # its valid rows were trained on


def test_a_closed_pipe_ends_quietly(models):
    """`rnnkit ... | head`: when the reader goes away the CLI stops without a traceback."""
    code = "import sys\nfrom rnnkit.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    proc = subprocess.Popen([sys.executable, "-c", code, "predict", str(models / "sentiment-mr"), "--json"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdin.write(b'{"text": "a good film"}\n')
    proc.stdin.flush()
    assert b"label" in proc.stdout.readline()
    proc.stdout.close()  # the reader leaves
    try:
        proc.stdin.write(b'{"text": "a good film"}\n' * 50)
        proc.stdin.close()
    except BrokenPipeError:
        pass
    assert proc.wait(timeout=60) == 141
    assert b"Traceback" not in proc.stderr.read()
