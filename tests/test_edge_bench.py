"""bench/edge_latency.py must keep running on the shipped suggestion bundle (a fresh clone has it)."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench" / "edge_latency.py"


@pytest.mark.slow
def test_edge_bench_runs_on_the_shipped_bundle(tmp_path, capsys, no_prefetch_budget):
    text = tmp_path / "typed.txt"
    text.write_text("Thank you for the lovely dinner. I think we should leave before the rain starts.\n" * 4)
    out = tmp_path / "figures.json"
    runpy.run_path(str(BENCH), run_name="bench")["main"](
        ["--bundle", str(ROOT / "models" / "suggest-en"), "--steps", "40", "--keystrokes", "20",
         "--kind-chars", "120", "--text", str(text), "--out", str(out)])
    printed = capsys.readouterr().out
    for line in ("onnx_int8", "torch_eager_mkldnn_off", "floor: weight bytes / stream, int8", "int8 step, batch 8",
                 "keystroke words, idle prefetch", "keystroke without word n-gram", "floor: int8 products alone"):
        assert line in printed, line
    r = json.loads(out.read_text())
    assert r["onnx_int8"]["p99_ms"] >= r["onnx_int8"]["p50_ms"] > 0
    assert 0 < r["floor"]["bytes_floor_int8_ms"] < r["floor"]["bytes_floor_fp32_ms"]
    # the shipped graph's four products (input, recurrent, projection, head), each cheaper than the step
    products = r["floor"]["int8_products"]
    cfg = json.loads((ROOT / "models" / "suggest-en" / "manifest.json").read_text())["model"]["config"]
    e, h, v = cfg["embed_size"], cfg["hidden_size"], cfg["vocab_size"]
    assert set(products["products_p50_ms"]) == {f"{e}x{4 * h}", f"{h}x{4 * h}", f"{h}x{e}", f"{e}x{v}"}
    assert 0 < products["products_ms"] < products["step_p50_ms"]
    kinds = r["keystroke_kinds_prefetch"]
    assert kinds["all"]["keystrokes"] == 120
    assert kinds["all"]["graph_calls_per_keystroke"] < r["keystroke_kinds"]["all"]["graph_calls_per_keystroke"]
    # the shipped bundle's word n-gram, typed with and without it in turn: it adds candidates to score
    cost = r["ngram_cost"]
    assert cost["with"]["keystrokes"] == cost["without"]["keystrokes"] == 120
    assert cost["without"]["graph_calls_per_keystroke"] <= cost["with"]["graph_calls_per_keystroke"]


@pytest.mark.parametrize("phrases", [[], ["--phrase"]])
def test_keystroke_ab_against_this_commit_finds_no_difference(tmp_path, capsys, phrases):
    """bench/keystroke_ab.py types one text with the session of another commit and this one, in
    turn; against the committed edge/ itself (HEAD) every keystroke gets the same suggestions
    (phrases too, with --phrase)."""
    import subprocess

    if subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True).returncode:
        pytest.fail("the A/B bench needs a git checkout (it reads edge/ at another commit with git archive)")
    text = tmp_path / "typed.txt"
    text.write_text("Thank you for the lovely dinner.\nSee you tomorrow at the station\n" * 3)
    out = tmp_path / "ab.json"
    runpy.run_path(str(ROOT / "bench" / "keystroke_ab.py"), run_name="bench")["main"](
        ["--before", "HEAD", "--text", str(text), "--max-chars", "120", "--prefetch", "2", "--out", str(out)] + phrases)
    r = json.loads(out.read_text())
    assert r["keystrokes"] > 60 and r["phrase"] == bool(phrases)
    # (a working tree whose edge/ differs from HEAD may rightly answer otherwise)
    if subprocess.run(["git", "-C", str(ROOT), "diff", "--quiet", "HEAD", "--", "edge"]).returncode == 0:
        assert r["keystrokes_with_other_suggestions"] == 0
        assert "keystrokes with other suggestions: 0" in capsys.readouterr().out
    for side in ("before", "now"):
        assert r[side]["wall_ms"]["p99"] >= r[side]["wall_ms"]["p50"] > 0
        assert 0 < r[side]["calls_per_keystroke"] < 5


def test_tune_suggest_phrase_grid_runs(tmp_path, capsys):
    """bench/tune_suggest.py --only phrase (how the default bar was chosen) keeps running: a lower
    bar never triggers less, and the inside-word figures come at the session's bar."""
    import os

    corpora = Path(os.environ.get("RNNKIT_DATA", Path.home() / ".cache" / "rnnkit")) / "corpora"
    if not (corpora / "everyday_en" / "valid.txt").exists() or not (corpora / "wordfreq_en" / "words.txt").exists():
        pytest.skip("everyday_en / wordfreq_en not fetched (rnnkit data fetch)")
    out = tmp_path / "tune.json"
    runpy.run_path(str(ROOT / "bench" / "tune_suggest.py"), run_name="bench")["main"](
        [str(ROOT / "models" / "suggest-en"), "--only", "phrase", "--phrase-chars", "1500",
         "--phrase-min-prob", "0.5,0.1,0.01", "--out", str(out)])
    r = json.loads(out.read_text())
    rates = [row["trigger_rate"] for row in r["phrase"]]
    assert [row["threshold"] for row in r["phrase"]] == [0.5, 0.1, 0.01] and rates == sorted(rates)
    assert r["phrase_positions"] > 50
    assert [row["typed"] for row in r["phrase_inside_words"]] == [1, 2]


def test_tune_suggest_search_grid_runs(tmp_path):
    """bench/tune_suggest.py --only search (what the word search's width costs a keystroke) keeps
    running: one row a setting, each with its own rows fed; the default setting typed in lockstep
    with others gets the session's own figures."""
    import os

    corpora = Path(os.environ.get("RNNKIT_DATA", Path.home() / ".cache" / "rnnkit")) / "corpora"
    if not (corpora / "everyday_en" / "valid.txt").exists() or not (corpora / "wordfreq_en" / "words.txt").exists():
        pytest.skip("everyday_en / wordfreq_en not fetched (rnnkit data fetch)")
    out = tmp_path / "tune.json"
    runpy.run_path(str(ROOT / "bench" / "tune_suggest.py"), run_name="bench")["main"](
        [str(ROOT / "models" / "suggest-en"), "--only", "search", "--chars", "300", "--search", "8:4,2:2",
         "--rounds", "2", "--out", str(out)])
    rows = json.loads(out.read_text())["search"]
    assert [(r["beam"], r["max_pieces"]) for r in rows] == [(8, 4), (2, 2)]
    for r in rows:
        assert r["rounds"] == 2 and r["cpu_ms_p99"] >= r["cpu_ms_p50"] > 0
        assert 0 <= r["keystroke_savings"] <= 1 and r["tokens_fed_per_keystroke"] > 0
    # a narrower, shallower search reads fewer rows (each setting counts its own, not the session's total)
    assert rows[1]["tokens_fed_per_keystroke"] < rows[0]["tokens_fed_per_keystroke"]
    from rnnkit.edge.cli import spread_lines
    from rnnkit.edge.eval import lstm_eval
    from rnnkit.edge.session import open_session

    alone = lstm_eval(open_session(ROOT / "models" / "suggest-en"),
                      spread_lines((corpora / "everyday_en" / "valid.txt").read_text(encoding="utf-8"), 300))
    for key in ("keystroke_savings", "next_word_top3", "graph_calls_per_keystroke", "tokens_fed_per_keystroke"):
        assert rows[0][key] == pytest.approx(alone[key]), key
