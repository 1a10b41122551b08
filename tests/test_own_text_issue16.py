"""Issue 16's items that had no test of their own: the README's own-text commands, the help texts,
the package list setuptools checks, eval-suggest's baseline column, and what ``max_minutes`` means
on ``--resume``. Small and fast: nothing here trains more than a toy model for a second.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path

import pytest

from rnnkit.cli import build_parser, main

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
SKIP_DIRS = {"tests", "build", "node_modules", "__pycache__", "test-artifacts"}
OWN_TEXT = "### Train on your own text, export it, get suggestions from it"


def _section(text: str, heading: str) -> str:
    start = text.index(heading)
    end = text.find("\n## ", start)  # the next section of the same or a higher level
    nxt = text.find("\n### ", start + len(heading))
    ends = [e for e in (end, nxt) if e != -1]
    return text[start:min(ends)] if ends else text[start:]


def _shell_lines(markdown: str) -> list[str]:
    """The commands of every ```bash block: continuation lines joined, comments cut."""
    out = []
    for block in re.findall(r"```bash\n(.*?)```", markdown, flags=re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                out.append(shlex.split(line, comments=True))
    return out


def _help(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as done:
        main(argv)
    assert done.value.code == 0
    return capsys.readouterr().out


# ---------------------------------------------------------------- the README's own-text flow
def test_readme_own_text_commands_parse_as_written():
    """Every `rnnkit ...` line of the README's own-text section is a valid command line, and a file
    it reads (my_notes.txt, held_out.txt) is one the section makes or tells the user to bring."""
    section = _section((ROOT / "README.md").read_text(encoding="utf-8"), OWN_TEXT)
    commands = _shell_lines(section)
    rnnkit = [c for c in commands if c and c[0] == "rnnkit"]
    assert [c[1] for c in rnnkit][:4] == ["train", "generate", "export", "suggest"]
    parser = build_parser()
    for argv in rnnkit:
        parser.parse_args(argv[1:])  # SystemExit (argparse's usage error) fails the test
    # held_out.txt is explained where it appears: the section makes it from the user's file
    if "held_out.txt" in section:
        makers = [c for c in commands if c and c[0] != "rnnkit" and any("held_out.txt" in a for a in c)]
        assert makers, "the README uses held_out.txt without saying where it comes from"
        evals = [c for c in rnnkit if c[1] == "eval-suggest"]
        assert evals and all("--text" in c and "--train-text" in c for c in evals)


def test_own_data_doc_commands_parse_as_written():
    parser = build_parser()
    commands = [c for c in _shell_lines((ROOT / "docs" / "OWN_DATA.md").read_text(encoding="utf-8"))
                if c and c[0] == "rnnkit"]
    assert len(commands) >= 8
    for argv in commands:
        parser.parse_args(argv[1:])


# ---------------------------------------------------------------- item 10: the help texts
def test_train_help_is_plain_text(capsys):
    out = _help(["train", "--help"], capsys)
    for markup in ("``", ":func:", ":class:", ":mod:", ".. code", "::\n"):
        assert markup not in out, markup
    assert "rnnkit train --recipe char-shakespeare --train my.txt" in out


def test_sample_temperature_has_help_and_default(capsys):
    out = re.sub(r"\s+", " ", _help(["sample", "--help"], capsys))
    assert re.search(r"--temperature TEMPERATURE \S.*\(default 0\.8\)", out), out
    args = build_parser().parse_args(["sample", "runs/x"])
    assert args.temperature == 0.8


def test_valid_help_says_how_each_task_holds_out(capsys):
    out = re.sub(r"\s+", " ", _help(["train", "--help"], capsys))
    assert "language models hold out the last 5% of --train's lines" in out
    assert "a seeded random 10%" in out


# ---------------------------------------------------------------- item 10: the install warning
def test_every_package_folder_is_in_the_packages_list():
    """setuptools warns ("Package 'rnnkit.core.recipes' is absent from the `packages`
    configuration", 40 lines) for a folder it installs files from that is not listed."""
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    listed, dirs = set(conf["packages"]), conf["package-dir"]
    found = set()
    for name, folder in dirs.items():
        base = ROOT / folder
        for where, subdirs, files in os.walk(base):
            subdirs[:] = [d for d in subdirs if not d.startswith(".") and d not in SKIP_DIRS]
            if "__init__.py" not in files:
                continue
            rel = Path(where).relative_to(base)
            if name == "rnnkit" and rel.parts and any(
                    (ROOT / rel.parts[0]).resolve() == (ROOT / d).resolve() for d in dirs.values() if d != "."):
                continue  # reached through its own package-dir entry
            found.add(".".join([name, *rel.parts]) if rel.parts else name)
    assert found - listed == set(), "folders with __init__.py missing from [tool.setuptools] packages"
    for package, patterns in conf.get("package-data", {}).items():
        assert package in listed
        parts = package.split(".")
        folder = next(ROOT / dirs[".".join(parts[:i])] / Path(*parts[i:])
                      for i in range(len(parts), 0, -1) if ".".join(parts[:i]) in dirs)
        assert all(list(folder.glob(p)) for p in patterns), (package, patterns)


# ---------------------------------------------------------------- item 10: eval-suggest's table
def test_eval_suggest_prints_no_nan(tmp_path, capsys, no_prefetch_budget):
    """The Kneser-Ney column has no per-thread CPU time: a dash, not `nan`; its latency is measured."""
    from test_edge_support import TRAIN_TEXT, tiny_bundle

    held = tmp_path / "held_out.txt"
    held.write_text("Thank you for the lovely dinner.\nPlease call me when you arrive.\n", encoding="utf-8")
    train = tmp_path / "my_notes.txt"
    train.write_text(TRAIN_TEXT, encoding="utf-8")
    out = tmp_path / "figures.json"
    assert main(["eval-suggest", str(tiny_bundle("lstm")), "--text", str(held), "--train-text", str(train),
                 "--prefetch", "0", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "nan" not in printed.lower(), printed
    latency = next(line for line in printed.splitlines() if line.startswith("latency p50"))
    lstm_ms, kn_ms = (float(x) for x in latency.split()[-2:])
    assert lstm_ms > 0 and kn_ms > 0
    cpu = next(line for line in printed.splitlines() if line.startswith("cpu time p50"))
    assert cpu.split()[-1] == "-"
    r = json.loads(out.read_text())
    assert r["kneser_ney"]["latency_ms_p50"] > 0 and "not_words" in r["lstm"]


# ---------------------------------------------------------------- item 6: max_minutes on resume
def test_max_minutes_on_resume_is_this_calls_budget(tmp_path):
    """`--resume --set max_minutes=M` means M more minutes (the log's "this call"), not M in all:
    a resumed run whose first call already used its whole budget still trains for M again."""
    import torch

    from rnnkit.core.train.trainer import TrainConfig, train
    from test_trainer_toys import ToyLMTask, tiny_lm

    torch.set_num_threads(1)
    budget = 1.0 / 60  # one second
    cfg = dict(run_dir=str(tmp_path / "run"), device="cpu", lr=3e-3, max_steps=10**6, max_minutes=budget,
               eval_every=0, checkpoint_every=0, log_every=2, quiet=True)
    first = train(tiny_lm(), ToyLMTask(), TrainConfig(**cfg))
    assert first.stop_reason == "time_budget" and first.wall_seconds >= 1.0
    second = train(tiny_lm(seed=5), ToyLMTask(), TrainConfig(**cfg), resume=True)
    assert second.stop_reason == "time_budget"
    added = second.steps - first.steps
    assert added > 2 * cfg["log_every"], added  # a total budget (already spent) would stop at the first check
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    resumed = [r for r in records if r.get("kind") == "train" and r["step"] > first.steps]
    assert resumed and resumed[0]["call_minutes"] < budget  # the clock restarts with the call
