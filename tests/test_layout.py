"""The folder tree is the architecture: who may import whom, checked on the source (no imports run).

core/models   the models; know nothing of training loops, tasks or the CLI
core/train    the model-agnostic trainer; knows no task
core/tasks    one module per task family; tasks use models, the trainer and tasks/common.py,
              never each other
core/text     tokenizers and the n-gram baseline, torch-free
core/metrics  the task metrics (BLEU / chrF, entity F1, perplexity, accuracy, RMSE), torch-free
core/data     corpora and the readers of the user's files, torch-free
edge          what a device runs (bundle reading, the ONNX runner, suggestion, predict), torch-free:
              never imports export/ (which writes bundles and may use edge/), demo/ or torch
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "core"

# Helpers of the task layer that any task may import (not tasks themselves).
TASK_HELPERS = {"common", "lm_data", "next_word_proxy"}


def imported_modules(path: Path, package: str | None = None) -> set[str]:
    """Every module name a file imports, at any depth (lazy imports count too). Relative imports
    are resolved against ``package`` (e.g. "rnnkit.edge"); core/ has none."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                assert package, f"{path}: relative import; rnnkit uses absolute ones"
                base = package.rsplit(".", node.level - 1)[0]
                module = f"{base}.{module}" if module else base
            out.add(module)
            out |= {f"{module}.{a.name}" for a in node.names}
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
    ("metrics", ("torch", "rnnkit.core.models", "rnnkit.core.train", "rnnkit.core.tasks", "rnnkit.export",
                 "rnnkit.edge", "sacrebleu")),
    ("data", ("torch", "rnnkit.core.models", "rnnkit.core.train", "rnnkit.core.tasks", "rnnkit.export")),
])
def test_layers_only_import_downwards(folder, forbidden):
    bad = {f"core/{folder}/{p.name}: {m}" for p in _modules(folder) for m in imported_modules(p)
           if any(m == f or m.startswith(f + ".") for f in forbidden)}
    assert not bad, sorted(bad)


def test_core_top_level_holds_only_shared_basics():
    """New code goes into a subpackage; the top level keeps the few modules every layer uses."""
    top = {p.name for p in CORE.glob("*.py")}
    assert top == {"__init__.py", "atomic.py", "config.py"}, sorted(top)


# The torch-free modules of core/ a device may use (tests/test_edge_torchfree.py runs edge with torch blocked).
EDGE_MAY_USE_CORE = ("rnnkit.core.text", "rnnkit.core.atomic", "rnnkit.core.config", "rnnkit.core.models.state_layout",
                     "rnnkit.core.metrics", "rnnkit.core.data.readers")


@pytest.mark.parametrize("path", sorted((ROOT / "edge").glob("*.py")), ids=lambda p: p.name)
def test_edge_imports_no_export_demo_torch_or_torch_core(path):
    """edge/ reads and runs bundles on a device: export/ writes them and may import edge/, never the reverse."""
    def allowed(m: str) -> bool:
        if m in ("rnnkit.core", "rnnkit.core.models"):  # packages whose __init__ is a docstring
            return True
        if m == "torch" or m.startswith(("torch.", "rnnkit.export", "rnnkit.demo")):
            return False
        if m.startswith("rnnkit.core."):
            return any(m == a or m.startswith(a + ".") for a in EDGE_MAY_USE_CORE)
        return True

    bad = sorted(m for m in imported_modules(path, "rnnkit.edge") if not allowed(m))
    assert not bad, f"edge/{path.name} imports {bad}"


def _package_sources() -> list[Path]:
    """The installed package's code: the root modules and core/, export/, edge/, demo/."""
    files = sorted(ROOT.glob("*.py"))
    for folder in ("core", "export", "edge", "demo"):
        files += sorted((ROOT / folder).rglob("*.py"))
    return files


@pytest.mark.parametrize("call", ["InferenceSession", "SessionOptions"])
def test_one_place_makes_onnxruntime_sessions(call):
    """Options, threads and providers are spelled out once: edge/runner.py's load_session."""
    sites = []
    for path in _package_sources():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Call):
                f = node.func
                name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
                if name == call:
                    sites.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert len(sites) == 1 and sites[0].startswith("edge/runner.py:"), sites
