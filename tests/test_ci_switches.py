"""tests/conftest.py: under CI's switches a skip is a failure (CI cannot go green by skipping)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

CONFTEST = (Path(__file__).with_name("conftest.py")).read_text(encoding="utf-8")
SWITCHES = ("RNNKIT_REQUIRE_BROWSER", "RNNKIT_REQUIRE_DATA", "RNNKIT_REQUIRE_DEPS", "RNNKIT_REQUIRE_ALL",
            "RNNKIT_DEMO_MODELS")

SKIPPING = """
import sys
import pytest

@pytest.fixture
def chromium():
    pytest.skip("/usr/bin/chromium not found: install Debian's chromium (make browser-deps)")

@pytest.mark.browser
def test_browser(chromium):
    pass

@pytest.mark.data
def test_corpus():
    pytest.skip("corpus 'ptb' not fetched (rnnkit data fetch)")

def test_optional():
    pytest.importorskip("no_such_module_for_rnnkit_tests")

@pytest.mark.skipif(sys.platform != "no-such-platform", reason="needs a pseudo-terminal")
def test_platform():
    pass

@pytest.mark.xfail(reason="known", strict=True)
def test_known():
    assert False

def test_passes():
    pass
"""


@pytest.fixture
def suite(pytester, monkeypatch):
    for name in SWITCHES:
        monkeypatch.delenv(name, raising=False)
    pytester.makeconftest(CONFTEST)
    pytester.makeini("[pytest]\nmarkers =\n    browser: b\n    data: d\n")
    pytester.makepyfile(test_skipping=SKIPPING)
    return pytester


def test_without_switches_skips_stay_skips(suite):
    result = suite.inline_run()
    result.assertoutcome(passed=1, skipped=5)  # (the xfail counts as a skip here)
    assert result.ret == 0


@pytest.mark.parametrize("switch, failing", [
    ("RNNKIT_REQUIRE_BROWSER", {"test_browser"}),
    ("RNNKIT_REQUIRE_DATA", {"test_corpus"}),
    ("RNNKIT_REQUIRE_DEPS", {"test_optional"}),
    ("RNNKIT_REQUIRE_ALL", {"test_browser", "test_corpus", "test_optional", "test_platform"}),
])
def test_each_switch_turns_its_skips_into_failures(suite, monkeypatch, switch, failing):
    monkeypatch.setenv(switch, "1")
    result = suite.inline_run()
    reports = [r for r in result.getreports("pytest_runtest_logreport")]
    failed = {r.nodeid.split("::")[-1] for r in reports if r.failed}
    skipped = {r.nodeid.split("::")[-1] for r in reports if r.skipped and not hasattr(r, "wasxfail")}
    assert failed == failing
    assert skipped == {"test_browser", "test_corpus", "test_optional", "test_platform"} - failing
    xfailed = [r for r in reports if hasattr(r, "wasxfail")]
    assert len(xfailed) == 1 and xfailed[0].skipped  # an expected failure is not a skip to fail
    text = "\n".join(str(r.longrepr) for r in reports if r.failed)
    assert f"{switch} is set" in text


def test_a_module_level_importorskip_fails_under_the_switch(pytester, monkeypatch):
    for name in SWITCHES:
        monkeypatch.delenv(name, raising=False)
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_module='import pytest\npytest.importorskip("gradio_not_here")\n\n'
                                    'def test_x():\n    pass\n',
                        test_other="def test_y():\n    pass\n")
    assert pytester.inline_run().ret == 0  # skipped module: a green run, which CI must not get
    monkeypatch.setenv("RNNKIT_REQUIRE_DEPS", "1")
    result = pytester.runpytest()
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*RNNKIT_REQUIRE_DEPS is set*"])


def test_ci_sets_the_switches_and_not_the_shipped_models_shortcut():
    """`make test` (= .ci/run) runs pytest under every switch; the demo golden tests would skip
    under RNNKIT_DEMO_MODELS (no PyTorch runs beside the shipped bundles), so CI unsets it."""
    root = Path(__file__).resolve().parents[1]
    make = (root / "Makefile").read_text()
    ci = (root / ".ci" / "run").read_text()
    for switch in ("RNNKIT_REQUIRE_BROWSER=1", "RNNKIT_REQUIRE_DATA=1", "RNNKIT_REQUIRE_DEPS=1", "RNNKIT_REQUIRE_ALL=1"):
        assert switch in make and switch in ci, switch
    assert "unset RNNKIT_DEMO_MODELS" in ci and "make test" in ci
    assert "|| echo" not in make.split("browser-deps:")[1].split("\n\n")[0]  # an apt failure is not swallowed
