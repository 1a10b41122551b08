"""bench/int8_levels.py keeps running: one run exported with 127- and 64-level weights, against fp32."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.data
def test_int8_levels_bench_measures_both_exports(tmp_path, capsys):
    from rnnkit.cli import main
    from rnnkit.core.data import is_complete
    from rnnkit.export import rowwise

    if not is_complete("shakespeare"):
        pytest.skip("corpus 'shakespeare' not fetched: run `rnnkit data fetch` (CI does)")
    run = tmp_path / "run"
    assert main(["train", "--recipe", "char-shakespeare", "--size", "smoke", "--run-dir", str(run), "--quiet"]) == 0
    out = tmp_path / "levels.json"
    runpy.run_path(str(ROOT / "bench" / "int8_levels.py"), run_name="bench")["main"](
        [str(run), "--tokens", "3000", "--json", str(out)])
    assert rowwise.W_DIGIT == 64.0            # put back
    rows = json.loads(out.read_text())["rows"]
    assert set(rows) == {"127 levels, this machine", "127 levels, exact products", "64 levels, this machine"}
    assert len({(r["fp32_ppl"], r["tokens"]) for r in rows.values()}) == 1   # the same text, the same fp32 graph
    assert all(0.5 < r["top1_agreement"] <= 1 and abs(r["ppl_change"]) < 0.05 for r in rows.values())
    assert "64 levels, this machine" in capsys.readouterr().out
