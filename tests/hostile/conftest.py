"""Shared helpers for the hostile corpus: tampered copies of the shipped bundles, a deadline,
a memory bound, and the CLI run in-process or as a subprocess.

Every case asserts one of: a specific exception type with a one-line message, a CLI exit code
!= 0 with one line on stderr and no traceback, or a graceful answer -- within a deadline and
without a large allocation.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
MODELS = ROOT / "models"
sys.path.insert(0, str(HERE.parent))  # the tests' own helpers (test_edge_support, test_trainer_toys, ...)

MAX_RSS_GROWTH_MB = 600   # what one hostile input may add to this process's peak memory
MAX_CHILD_RSS_MB = 1500   # the peak of any CLI subprocess


def rss_mb(who=resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # Linux: kB


@contextlib.contextmanager
def bounded(seconds: float = 10.0, mb: float = MAX_RSS_GROWTH_MB):
    """Fail if the block takes longer than ``seconds`` (SIGALRM interrupts Python code) or
    raises this process's peak RSS by more than ``mb``."""
    before = rss_mb()

    def alarm(signum, frame):
        raise TimeoutError(f"hostile input took longer than {seconds} s")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    t0 = time.perf_counter()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert time.perf_counter() - t0 < seconds
    grown = rss_mb() - before
    assert grown < mb, f"peak memory grew by {grown:.0f} MB"


def one_line_error(err: str) -> str:
    """The single stderr line of a CLI error (no traceback, nothing else)."""
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("note:")]
    assert "Traceback" not in err, err[-2000:]
    assert len(lines) == 1, err[-2000:]
    return lines[0]


def cli(capsys, *argv: str, seconds: float = 20.0) -> tuple[int, str, str]:
    """``rnnkit ARGV`` in this process: (exit code, stdout, stderr)."""
    from rnnkit.cli import main

    capsys.readouterr()
    with bounded(seconds):
        rc = main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def cli_error(capsys, *argv: str, match: str, seconds: float = 20.0) -> str:
    """Assert the CLI fails with exit code != 0 and one clear stderr line containing ``match``."""
    rc, _, err = cli(capsys, *argv, seconds=seconds)
    assert rc != 0
    line = one_line_error(err)
    assert match in line, line
    return line


def run(args: list[str], stdin: bytes = b"", timeout: float = 60.0, cwd=None) -> subprocess.CompletedProcess:
    """A real subprocess (the installed entry point), bounded in time and checked for memory."""
    r = subprocess.run([sys.executable, "-m", "rnnkit.cli", *map(str, args)], input=stdin, capture_output=True,
                       timeout=timeout, cwd=cwd)
    assert rss_mb(resource.RUSAGE_CHILDREN) < MAX_CHILD_RSS_MB
    return r


# --------------------------------------------------------------------------- bundles
def copy_bundle(name: str, dst: Path) -> Path:
    out = dst / name
    shutil.copytree(MODELS / name, out)
    return out


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def manifest(bundle: Path) -> dict:
    return json.loads((bundle / "manifest.json").read_text())


def write_manifest(bundle: Path, m: dict | str) -> None:
    (bundle / "manifest.json").write_text(m if isinstance(m, str) else json.dumps(m))


def rehash(bundle: Path, *names: str, m: dict | None = None) -> dict:
    """Record the current size and sha256 of ``names`` in the manifest (what an attacker who can
    edit the manifest does); the tokenizer record follows its file."""
    m = m or manifest(bundle)
    for n in names:
        m["files"][n], m["sizes"][n] = sha(bundle / n), (bundle / n).stat().st_size
        if (m.get("tokenizer") or {}).get("file") == n:
            m["tokenizer"]["sha256"] = m["files"][n]
    write_manifest(bundle, m)
    return m


def edit_graph(path: Path, edit) -> None:
    """Load an ONNX graph, let ``edit(model)`` change it, save it back (onnx is a dev dependency)."""
    import onnx

    model = onnx.load(str(path))
    edit(model)
    onnx.save(model, str(path))


def set_meta(model, **meta: str) -> None:
    props = {p.key: p.value for p in model.metadata_props}
    props.update(meta)
    del model.metadata_props[:]
    for k, v in props.items():
        p = model.metadata_props.add()
        p.key, p.value = k, v


@pytest.fixture
def lm_bundle(tmp_path) -> Path:
    """A private copy of the smallest shipped bundle (char-shakespeare, 2 MB) to tamper with."""
    return copy_bundle("char-shakespeare", tmp_path)


@pytest.fixture
def sp_bundle(tmp_path) -> Path:
    """A private copy of the suggestion bundle (suggest-en, SentencePiece)."""
    return copy_bundle("suggest-en", tmp_path)
