"""Config dataclasses: JSON round-trip and overrides checked against the fields.

Every model has one config dataclass; ``config.json`` beside ``model.safetensors``
is enough to rebuild it (nanoGPT keeps ``model_args`` in its checkpoint the same way).
"""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from pathlib import Path
from typing import Any, Mapping, TypeVar

from rnnkit.core.atomic import atomic_write_json

T = TypeVar("T")


def to_dict(cfg: Any) -> dict:
    return dataclasses.asdict(cfg)


_TYPES = {int: "int", float: "float", bool: "bool", str: "str", "int": "int", "float": "float",
          "bool": "bool", "str": "str"}


def _coerce(value: Any, annotation: Any) -> Any:
    """Turn a JSON / command-line value into the field's declared type; ValueError if it is not one.

    Strict on purpose: ``lr=abc`` or ``hidden_size=[1]`` must fail here, with the key named,
    not later inside the optimizer or the model after the run directory was written.
    """
    origin = typing.get_origin(annotation)
    if origin in (tuple, list) and isinstance(value, (list, tuple)):
        return origin(value)
    name = _TYPES.get(annotation) if isinstance(annotation, (type, str)) else None
    if name is None:
        return value
    if name == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        low = value.strip().lower() if isinstance(value, str) else None
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"expected true or false, got {_short(value)}")
    if name == "str":
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise ValueError(f"expected a string, got {_short(value)}")
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"expected {'an integer' if name == 'int' else 'a number'}, got {_short(value)}")
    if isinstance(value, str):
        try:
            value = int(value) if name == "int" and value.strip().lstrip("+-").isdigit() else float(value)
        except (ValueError, OverflowError):
            raise ValueError(f"expected {'an integer' if name == 'int' else 'a number'}, got {_short(value)}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {value}")
    if name == "int":
        if isinstance(value, float):
            if not value.is_integer():
                raise ValueError(f"expected an integer, got {value}")
            value = int(value)
        return value
    return float(value)


def _short(value: Any) -> str:
    text = repr(value) if not isinstance(value, int) or abs(value) < 10 ** 30 else "a huge integer"
    return text if len(text) <= 60 else text[:57] + "..."


def coerce_fields(cls: type, data: Mapping[str, Any], where: str | None = None) -> dict[str, Any]:
    """``data``'s known fields converted to ``cls``'s declared types; ValueError naming the first bad key."""
    fields = {f.name for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    out = {}
    for k, v in data.items():
        if k not in fields:
            continue
        try:
            out[k] = _coerce(v, hints.get(k))
        except ValueError as e:
            raise ValueError(f"{where or cls.__name__}.{k}: {e}") from None
    return out


def from_dict(cls: type[T], data: Mapping[str, Any], *, strict: bool = True) -> T:
    """Build ``cls`` from a mapping; unknown keys are an error when ``strict``; a value of the
    wrong type is a ValueError naming its key."""
    if not isinstance(data, Mapping):
        raise ValueError(f"{cls.__name__}: expected a JSON object, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown and strict:
        raise ValueError(
            f"{cls.__name__} has no field(s) {[str(u)[:40] for u in unknown[:10]]}; allowed: {sorted(fields)}"
        )
    missing = sorted(n for n, f in fields.items() if n not in data and f.default is dataclasses.MISSING
                     and f.default_factory is dataclasses.MISSING)
    if missing:
        raise ValueError(f"{cls.__name__} lacks required field(s) {missing}")
    return cls(**coerce_fields(cls, data))


# Sizes anything allocates from (``*_size``, ``num_*``): far above what rnnkit trains, far below
# what a number typed into a config (or a tampered config.json) would make torch or numpy allocate.
DIM_LIMITS = {"num_layers": 64, "num_directions": 2, "hidden_size": 1 << 15, "embed_size": 1 << 15,
              "vocab_size": 1 << 21}


def dim_limit(key: str) -> int | None:
    if key in DIM_LIMITS:
        return DIM_LIMITS[key]
    if key.endswith("vocab_size"):
        return DIM_LIMITS["vocab_size"]
    if key.endswith("_size") or key.startswith("num_") or key == "char_filters":
        return DIM_LIMITS["hidden_size"]
    return None


def check_dims(record: Mapping[str, Any], where: str) -> None:
    """ValueError unless every size in ``record`` is an integer within ``DIM_LIMITS`` (numeric strings
    count: graph metadata is text; None / "" mean "not set")."""
    for key, value in record.items():
        limit = dim_limit(key)
        if limit is None or value is None or value in ("", "None"):
            continue
        n = value if isinstance(value, int) and not isinstance(value, bool) else None
        if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 12:
            n = int(value)
        if n is None or not 0 <= n <= limit:
            raise ValueError(f"{where}: {key}={_short(value)} is not an integer in [0, {limit}]")


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
        except (ValueError, RecursionError):  # an integer beyond Python's 4300-digit limit, deep nesting
            raise ValueError(f"override {key.strip()[:40]!r}: the value is not a usable number or JSON value") from None
    return out


def save_json(cfg: Any, path: str | Path) -> None:
    atomic_write_json(path, to_dict(cfg) if dataclasses.is_dataclass(cfg) else cfg)


def load_json(path: str | Path) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)
