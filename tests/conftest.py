"""Suite-wide switches: CI cannot go green by skipping.

A test skips when Chromium, a corpus or an optional package is missing; on a developer's
machine that is a convenience, in CI it would hide a broken setup. Under these environment
switches (``make test`` and ``.ci/run`` set them all) such a skip is reported as a FAILURE
with the skip's reason:

  RNNKIT_REQUIRE_BROWSER=1  browser tests (Chromium / Playwright missing)
  RNNKIT_REQUIRE_DATA=1     tests that need the real corpora (``rnnkit data fetch``)
  RNNKIT_REQUIRE_DEPS=1     optional packages (``pytest.importorskip``), the PyTorch runs of the
                            demo's golden tests
  RNNKIT_REQUIRE_ALL=1      every skip, whatever the reason

Skips at collection (a module-level ``importorskip``) are covered as well. Deselection with
``-m`` / ``-k`` is not a skip and is unaffected; ``xfail`` is left alone.
"""

from __future__ import annotations

import os
import re

import pytest

SWITCHES = ("RNNKIT_REQUIRE_BROWSER", "RNNKIT_REQUIRE_DATA", "RNNKIT_REQUIRE_DEPS", "RNNKIT_REQUIRE_ALL")
_BROWSER = re.compile(r"chromium|playwright|browser", re.I)
_DATA = re.compile(r"corpus|corpora|not fetched|data fetch", re.I)
_DEPS = re.compile(r"could not import|is not installed|no module named|PyTorch model of this bundle", re.I)


def _on(name: str) -> bool:
    return os.environ.get(name, "").strip() not in ("", "0", "false", "no")


def required_by(reason: str, markers: set[str] = frozenset()) -> str | None:
    """The switch (if any is on) under which a skip with this reason must fail."""
    if _on("RNNKIT_REQUIRE_BROWSER") and ("browser" in markers or _BROWSER.search(reason)):
        return "RNNKIT_REQUIRE_BROWSER"
    if _on("RNNKIT_REQUIRE_DATA") and ("data" in markers or _DATA.search(reason)):
        return "RNNKIT_REQUIRE_DATA"
    if _on("RNNKIT_REQUIRE_DEPS") and _DEPS.search(reason):
        return "RNNKIT_REQUIRE_DEPS"
    if _on("RNNKIT_REQUIRE_ALL"):
        return "RNNKIT_REQUIRE_ALL"
    return None


def _skip_reason(longrepr) -> str:
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # (path, line, "Skipped: reason")
        return str(longrepr[2])
    return str(longrepr)


def _fail(report, switch: str, reason: str) -> None:
    report.outcome = "failed"
    report.longrepr = (f"skipped, but {switch} is set (CI must run every test, not skip it):\n  {reason}\n"
                       f"fix the machine (make browser-deps / rnnkit data fetch / pip install -c constraints.txt "
                       f"-e '.[all]'), or unset {switch} to allow the skip locally")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = _skip_reason(report.longrepr)
        switch = required_by(reason, {m.name for m in item.iter_markers()})
        if switch:
            _fail(report, switch, reason)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    report = outcome.get_result()
    if report.skipped:
        reason = _skip_reason(report.longrepr)
        switch = required_by(reason)
        if switch:
            _fail(report, switch, reason)


def pytest_report_header(config):
    on = [s for s in SWITCHES if _on(s)]
    return f"rnnkit: skips fail under {', '.join(on)}" if on else None


@pytest.fixture
def no_prefetch_budget(monkeypatch):
    """``TypingSession.prefetch`` without its time budget (20 ms by default): what a test checks
    about prefetch (keys prepared, then no model call) must not depend on how fast a loaded
    machine is. The budget itself is a latency matter, measured in bench/."""
    import functools
    import math

    from rnnkit.edge.session import TypingSession

    monkeypatch.setattr(TypingSession, "prefetch", functools.partialmethod(TypingSession.prefetch, budget_ms=math.inf))
