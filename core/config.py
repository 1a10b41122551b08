"""Config dataclasses: JSON round-trip and overrides checked against the fields.

Every model has one config dataclass; ``config.json`` beside ``model.safetensors``
is enough to rebuild it (nanoGPT keeps ``model_args`` in its checkpoint the same way).
"""

from __future__ import annotations

import dataclasses
import json
import typing
from pathlib import Path
from typing import Any, Mapping, TypeVar

from .atomic import atomic_write_json

T = TypeVar("T")


def to_dict(cfg: Any) -> dict:
    return dataclasses.asdict(cfg)


def _coerce(value: Any, annotation: Any) -> Any:
    """Turn a JSON / command-line value into the field's declared type."""
    origin = typing.get_origin(annotation)
    if origin in (tuple, list) and isinstance(value, (list, tuple)):
        return origin(value)
    if isinstance(value, str) and annotation in (int, float, bool, "int", "float", "bool"):
        name = annotation if isinstance(annotation, str) else annotation.__name__
        if name == "bool":
            low = value.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError(f"expected a boolean, got {value!r}")
        return int(value) if name == "int" else float(value)
    return value


def from_dict(cls: type[T], data: Mapping[str, Any], *, strict: bool = True) -> T:
    """Build ``cls`` from a mapping; unknown keys are an error when ``strict``."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown and strict:
        raise ValueError(
            f"{cls.__name__} has no field(s) {unknown}; allowed: {sorted(fields)}"
        )
    hints = typing.get_type_hints(cls)
    kwargs = {k: _coerce(v, hints.get(k)) for k, v in data.items() if k in fields}
    return cls(**kwargs)


def merge_overrides(cfg: T, overrides: Mapping[str, Any]) -> T:
    """Return a copy of ``cfg`` with ``overrides`` applied; each key must be a field."""
    return from_dict(type(cfg), {**to_dict(cfg), **dict(overrides)})


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """Parse ``["hidden_size=256", "cell=gru"]`` (``key=value``; JSON values allowed)."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ValueError(f"override {item!r} must look like key=value")
        key, raw = item.split("=", 1)
        try:
            out[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            out[key.strip()] = raw
    return out


def save_json(cfg: Any, path: str | Path) -> None:
    atomic_write_json(path, to_dict(cfg) if dataclasses.is_dataclass(cfg) else cfg)


def load_json(path: str | Path) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)
