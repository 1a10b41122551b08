"""Recipes: one JSON file per task setup, resolved with a size and checked ``--set`` overrides.

A recipe file (``core/recipes/<name>.json``) looks like::

    {"task": "lm",
     "description": "one line for `rnnkit train --list`",
     "data":      {"corpus": "ptb", "batch_size": 32, "bptt": 35, ...},   # corpus + batching
     "tokenizer": {"kind": "char" | "word" | "sentencepiece", "vocab_size": 8000, "model_type": "unigram"},
     "model":     {"kind": "lm", ...fields of the model's config dataclass (vocab/special ids come from the tokenizer)},
     "train":     {...fields of rnnkit.core.train.trainer.TrainConfig},
     "sizes":     {"smoke": {"model": {...}, "train": {...}, "data": {...}}, "full": {...}}}

``resolve_recipe(name, size, overrides)`` merges ``sizes[size]`` then the overrides into the base
sections and checks every key: model keys against the model's config dataclass, train keys
against ``TrainConfig``, data/tokenizer keys against the keys the recipe itself declares (plus
the user-data keys below). An unknown key is an error that lists the allowed ones (minGPT's
``merge_from_args`` habit). The resolved recipe is what ``recipe.json`` in a run directory holds.

``RECIPES`` maps a recipe name to its builder, ``"module:function"``, imported lazily:
``build(recipe: dict, run_dir: Path) -> (model, task, tokenizer)``. A builder trains its tokenizer
on the recipe's TRAIN split (or the user's ``data.train_file``) and saves it into ``run_dir``
(``load_or_train_tokenizer`` does both and reuses the saved one on ``--resume``).
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import json
from pathlib import Path
from typing import Any, Callable, Mapping

RECIPE_DIR = Path(__file__).parent  # the recipe JSON files live beside this module

# recipe name -> builder "module:function". Language models (tasks/lm.py) and the other tasks;
# a recipe whose JSON file is missing is simply not listed.
RECIPES: dict[str, str] = {
    "char-shakespeare": "rnnkit.core.tasks.lm:build",
    "char-shakespeare-gpt": "rnnkit.core.tasks.lm:build",
    "ptb-lm": "rnnkit.core.tasks.lm:build",
    "suggest-en": "rnnkit.core.tasks.lm:build",
    "suggest-en-gpt": "rnnkit.core.tasks.lm:build",
    "colors": "rnnkit.core.tasks.classify:build_colors",
    "sentiment-mr": "rnnkit.core.tasks.classify:build_sentiment",
    "translate-en-de": "rnnkit.core.tasks.translate:build",
    "ner-conll": "rnnkit.core.tasks.tagger:build",
    "timeseries": "rnnkit.core.tasks.timeseries:build",
}

SECTIONS = ("data", "tokenizer", "model", "train")
SIZES = ("smoke", "full")
# Keys every recipe's data section accepts: the user's own files (rnnkit train --train/--valid/--data).
USER_DATA_KEYS = ("train_file", "valid_file", "test_file")
# Set by the CLI, never by a recipe or --set.
RESERVED_TRAIN_KEYS = ("run_dir",)


class RecipeError(ValueError):
    """A recipe name, size or override the user got wrong (one clear line, no traceback)."""


def list_recipes() -> list[str]:
    """Names of the recipes whose JSON file exists, in table order."""
    return [n for n in RECIPES if (RECIPE_DIR / f"{n}.json").is_file()]


def recipe_path(name: str) -> Path:
    path = RECIPE_DIR / f"{name}.json"
    if name not in RECIPES or not path.is_file():
        raise RecipeError(f"unknown recipe {name!r}; available: {', '.join(list_recipes())}")
    return path


def read_recipe(name: str) -> dict[str, Any]:
    """The raw recipe file (sizes not applied)."""
    path = recipe_path(name)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise RecipeError(f"{path}: invalid JSON: {e}") from e
    missing = [k for k in ("task", *SECTIONS) if k not in raw]
    if missing:
        raise RecipeError(f"{path}: missing section(s) {missing}")
    return raw


def _train_config_fields() -> list[str] | None:
    try:
        from rnnkit.core.train.trainer import TrainConfig
    except ImportError:  # trainer not importable: fall back to the recipe's own keys
        return None
    return [f.name for f in dataclasses.fields(TrainConfig) if f.name not in RESERVED_TRAIN_KEYS]


def _model_config_fields(kind: str) -> list[str] | None:
    from rnnkit.core.models.registry import KINDS, classes

    if kind not in KINDS:
        raise RecipeError(f"model kind {kind!r} unknown; allowed: {', '.join(KINDS)}")
    try:
        cfg_cls, _ = classes(kind)
    except (ImportError, AttributeError):
        return None
    # vocab sizes and special ids come from the trained tokenizer, never from the recipe
    return ["kind", *(f.name for f in dataclasses.fields(cfg_cls)
                      if f.name != "vocab_size" and not f.name.endswith("_id"))]


def allowed_keys(raw: Mapping[str, Any]) -> dict[str, list[str]]:
    """Per section, the keys a size or ``--set`` may give."""
    declared = {s: set(raw.get(s, {})) for s in SECTIONS}
    for size in raw.get("sizes", {}).values():
        for s in ("data", "tokenizer"):
            declared[s] |= set(size.get(s, {}))
    model = _model_config_fields(raw["model"].get("kind", "")) or sorted(declared["model"])
    train = _train_config_fields() or sorted(declared["train"])
    return {
        "data": sorted(declared["data"] | set(USER_DATA_KEYS)),
        "tokenizer": sorted(declared["tokenizer"]),
        "model": sorted(model),
        "train": sorted(train),
    }


def _locate(key: str, allowed: Mapping[str, list[str]]) -> tuple[str, str]:
    """``"model.hidden_size"`` or bare ``"hidden_size"`` -> ("model", "hidden_size")."""
    if "." in key:
        section, field = key.split(".", 1)
        if section not in allowed:
            raise RecipeError(f"override {key!r}: unknown section {section!r}; sections: {', '.join(SECTIONS)}")
        if field not in allowed[section]:
            raise RecipeError(f"override {key!r}: {section} has no key {field!r}; allowed: {', '.join(allowed[section])}")
        return section, field
    hits = [s for s in SECTIONS if key in allowed[s]]
    if not hits:
        listing = "; ".join(f"{s}: {', '.join(allowed[s])}" for s in SECTIONS)
        raise RecipeError(f"unknown override key {key!r}; allowed keys -- {listing}")
    if len(hits) > 1:
        raise RecipeError(f"override key {key!r} is ambiguous; write one of {', '.join(f'{s}.{key}' for s in hits)}")
    return hits[0], key


def resolve_recipe(name: str, size: str = "full", overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The recipe with ``sizes[size]`` and ``overrides`` applied, every key checked.

    Returns ``{"name", "size", "task", "description", "data", "tokenizer", "model", "train",
    "overrides"}``; JSON-serialisable, written to ``run_dir/recipe.json``.
    """
    raw = read_recipe(name)
    if size not in SIZES:
        raise RecipeError(f"unknown size {size!r}; allowed: {', '.join(SIZES)}")
    allowed = allowed_keys(raw)
    out = {s: copy.deepcopy(raw[s]) for s in SECTIONS}
    for s in SECTIONS:  # the base file is checked too: a typo there should not pass silently
        for key in out[s]:
            _locate(f"{s}.{key}", allowed)
    for s, values in raw.get("sizes", {}).get(size, {}).items():
        if s not in SECTIONS:
            raise RecipeError(f"{name}.json sizes.{size}: unknown section {s!r}; sections: {', '.join(SECTIONS)}")
        for key, value in values.items():
            _locate(f"{s}.{key}", allowed)
            out[s][key] = value
    applied = {}
    for key, value in (overrides or {}).items():
        s, field = _locate(key, allowed)
        out[s][field] = value
        applied[f"{s}.{field}"] = value
    return {"name": name, "size": size, "task": raw["task"], "description": raw.get("description", ""),
            **out, "overrides": applied}


def builder(recipe: Mapping[str, Any]) -> Callable:
    """The ``build(recipe, run_dir)`` function for a resolved recipe."""
    target = RECIPES.get(recipe["name"])
    if target is None:
        raise RecipeError(f"no builder for recipe {recipe['name']!r}; available: {', '.join(list_recipes())}")
    module, func = target.split(":")
    return getattr(importlib.import_module(module), func)


def build(recipe: Mapping[str, Any], run_dir: str | Path):
    """``(model, task, tokenizer)`` for a resolved recipe; the tokenizer is saved in ``run_dir``."""
    return builder(recipe)(dict(recipe), Path(run_dir))


def load_or_train_tokenizer(run_dir: str | Path, train: Callable[[], Any]):
    """The tokenizer saved in ``run_dir`` (resume, or a second build), else ``train()`` and save it."""
    from rnnkit.core.text.tokenizers import load_tokenizer

    run_dir = Path(run_dir)
    if (run_dir / "tokenizer.model").is_file() or (run_dir / "tokenizer.json").is_file():
        return load_tokenizer(run_dir)
    tokenizer = train()
    run_dir.mkdir(parents=True, exist_ok=True)
    tokenizer.save(run_dir)
    recipe_file = run_dir / "recipe.json"
    if recipe_file.is_file() and isinstance(getattr(tokenizer, "vocab_size", None), int):
        # The size the tokenizer really has (a small text gives fewer pieces than asked).
        recipe = json.loads(recipe_file.read_text(encoding="utf-8"))
        if isinstance(recipe.get("tokenizer"), dict):
            recipe["tokenizer"]["vocab_size_actual"] = tokenizer.vocab_size
            save_recipe(recipe, run_dir)
    return tokenizer


def save_recipe(recipe: Mapping[str, Any], run_dir: str | Path) -> Path:
    from rnnkit.core.atomic import atomic_write_json

    return atomic_write_json(Path(run_dir) / "recipe.json", dict(recipe))


def load_run_recipe(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / "recipe.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {run_dir} is not a run directory made by `rnnkit train`")
    return json.loads(path.read_text(encoding="utf-8"))
