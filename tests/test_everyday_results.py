"""docs/make_everyday_results.py: the adaptation gain it prints is the mean of (on - off) in points."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "docs"))
import make_everyday_results as E  # noqa: E402


def test_mean_gain_is_the_mean_of_on_minus_off_in_points(tmp_path):
    files = []
    for name, off, on in (("a", 0.30, 0.35), ("b", 0.40, 0.39)):
        f = tmp_path / f"{name}.json"
        f.write_text(json.dumps({"lstm": {"keystroke_savings": off, "keystroke_savings_space_typed": off - 0.1},
                                 "lstm_adapt": {"keystroke_savings": on, "keystroke_savings_space_typed": on - 0.1}}))
        files.append(f)
    assert E.mean_gain(files) == pytest.approx((5.0 - 1.0) / 2)


def test_mean_gain_reads_both_definitions_and_old_files(tmp_path):
    new, old = tmp_path / "new.json", tmp_path / "old.json"
    new.write_text(json.dumps({"lstm": {"keystroke_savings": 0.45, "keystroke_savings_space_typed": 0.30},
                               "lstm_adapt": {"keystroke_savings": 0.50, "keystroke_savings_space_typed": 0.34}}))
    old.write_text(json.dumps({"lstm": {"keystroke_savings": 0.30}, "lstm_adapt": {"keystroke_savings": 0.32}}))
    assert E.mean_gain([new]) == pytest.approx(5.0)
    assert E.mean_gain([new], tap_space=False) == pytest.approx(4.0)
    assert E.mean_gain([new, old]) is None  # an old file has no tap-space figure: no mean of mixed definitions
    assert E.mean_gain([new, old], tap_space=False) == pytest.approx(3.0)
