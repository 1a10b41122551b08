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
        f.write_text(json.dumps({"lstm": {"keystroke_savings": off}, "lstm_adapt": {"keystroke_savings": on}}))
        files.append(f)
    assert E.mean_gain(files) == pytest.approx((5.0 - 1.0) / 2)
