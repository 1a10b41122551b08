"""The folder tree is the architecture: who may import whom, checked on the source (no imports run).

core/models   the models; know nothing of training loops, tasks or the CLI
core/train    the model-agnostic trainer; knows no task
core/tasks    one module per task family; tasks use models, the trainer and tasks/common.py,
              never each other
core/text     tokenizers and the n-gram baseline, torch-free
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "core"

# Helpers of the task layer that any task may import (not tasks themselves).
TASK_HELPERS = {"common", "lm_data", "next_word_proxy"}


def imported_modules(path: Path) -> set[str]:
    """Every absolute module name a file imports, at any depth (lazy imports count too)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import; rnnkit uses absolute ones"
            out.add(node.module or "")
            out |= {f"{node.module}.{a.name}" for a in node.names}
    return out


def _modules(folder: str) -> list[Path]:
    return sorted((CORE / folder).glob("*.py"))


@pytest.mark.parametrize("path", _modules("tasks"), ids=lambda p: p.name)
def test_tasks_never_import_each_other(path):
    me = path.stem
    others = {p.stem for p in _modules("tasks")} - TASK_HELPERS - {me, "__init__"}
    bad = {m for m in imported_modules(path) if any(m == f"rnnkit.core.tasks.{o}" for o in others)}
    assert not bad, f"core/tasks/{path.name} imports another task: {sorted(bad)} (move shared code to tasks/common.py)"


@pytest.mark.parametrize("folder,forbidden", [
    ("models", ("rnnkit.core.tasks", "rnnkit.core.train", "rnnkit.core.cli", "rnnkit.core.recipes",
                "rnnkit.export", "rnnkit.edge", "rnnkit.demo")),
    ("train", ("rnnkit.core.tasks", "rnnkit.core.cli", "rnnkit.core.recipes", "rnnkit.export", "rnnkit.demo")),
    ("text", ("torch", "rnnkit.core.models", "rnnkit.core.train", "rnnkit.core.tasks")),
    ("reference", ("torch", "rnnkit.core.models", "rnnkit.core.train", "rnnkit.core.tasks")),
])
def test_layers_only_import_downwards(folder, forbidden):
    bad = {f"core/{folder}/{p.name}: {m}" for p in _modules(folder) for m in imported_modules(p)
           if any(m == f or m.startswith(f + ".") for f in forbidden)}
    assert not bad, sorted(bad)


def test_core_top_level_holds_only_shared_basics():
    """New code goes into a subpackage; the top level keeps the few modules every layer uses."""
    top = {p.name for p in CORE.glob("*.py")}
    assert top == {"__init__.py", "atomic.py", "config.py"}, sorted(top)
