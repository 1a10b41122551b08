"""Save and load any rnnkit model: ``config.json`` + ``model.safetensors``, no pickle.

``config.json`` holds ``{"kind": ..., "config": {...}, "rnnkit_version": ...}``; the kind
names the model class, the config rebuilds it, the safetensors file fills the weights.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rnnkit.core.atomic import atomic_write, atomic_write_json
from rnnkit.core.config import from_dict, to_dict

# kind -> (module, config class, model class); imported lazily so one broken or heavy
# model module does not stop the others from loading.
KINDS: dict[str, tuple[str, str, str]] = {
    "lm": ("rnnkit.core.models.kinds", "LMConfig", "LanguageModel"),
    "classifier": ("rnnkit.core.models.kinds", "ClassifierConfig", "SequenceClassifier"),
    "tagger": ("rnnkit.core.models.kinds", "TaggerConfig", "Tagger"),
    "forecaster": ("rnnkit.core.models.kinds", "ForecasterConfig", "Forecaster"),
    "one_to_many": ("rnnkit.core.models.kinds", "OneToManyConfig", "ConditionedGenerator"),
    "seq2seq": ("rnnkit.core.models.seq2seq", "Seq2SeqConfig", "Seq2Seq"),
    "transformer_lm": ("rnnkit.core.models.transformer", "TransformerConfig", "TransformerLM"),
}

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


def classes(kind: str) -> tuple[type, type]:
    if kind not in KINDS:
        raise ValueError(f"unknown model kind {kind!r}; allowed: {', '.join(KINDS)}")
    module, cfg_name, model_name = KINDS[kind]
    mod = importlib.import_module(module)
    return getattr(mod, cfg_name), getattr(mod, model_name)


def build_model(kind: str, config: dict[str, Any] | Any) -> nn.Module:
    cfg_cls, model_cls = classes(kind)
    cfg = config if isinstance(config, cfg_cls) else from_dict(cfg_cls, config)
    return model_cls(cfg)


def model_record(model: nn.Module) -> dict[str, Any]:
    """What ``config.json`` holds for ``model``."""
    from rnnkit import __version__

    return {"kind": model.kind, "config": to_dict(model.config), "rnnkit_version": __version__}


def saveable(model: nn.Module) -> nn.Module:
    """``model`` itself on the CPU, else a CPU copy of it. On a GPU cuDNN packs an RNN's weights
    into one flat buffer (``flatten_parameters``), each weight a view of it, and safetensors
    refuses to save views; a copy moved to the CPU has one storage per weight and keeps the ties."""
    if all(p.device.type == "cpu" for p in model.parameters()):
        return model
    import copy

    return copy.deepcopy(model).to("cpu")


def load_weights_into(model: nn.Module, path: str | Path) -> None:
    """safetensors' ``load_model`` into ``model`` wherever it lives: on a GPU through a CPU copy
    (``saveable``: safetensors refuses cuDNN's views), then copied into the model's own tensors."""
    from safetensors.torch import load_model

    target = saveable(model)
    load_model(target, str(path), strict=True)
    if target is not model:
        model.load_state_dict(target.state_dict())


def save_weights(model: nn.Module, path: str | Path, metadata: dict[str, str] | None = None) -> None:
    from safetensors.torch import save_model

    # save_model drops the duplicate name of tied weights; load_model restores the tie.
    model = saveable(model)
    atomic_write(path, lambda tmp: save_model(model, tmp, metadata=metadata))


def save(model: nn.Module, directory: str | Path) -> Path:
    """Write ``config.json`` and ``model.safetensors`` into ``directory`` (atomically each)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_weights(model, directory / WEIGHTS_FILE)
    atomic_write_json(directory / CONFIG_FILE, model_record(model))
    return directory


def read_record(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: not an rnnkit model directory")
    if path.stat().st_size > 1 << 20:  # a config is a few hundred bytes
        raise ValueError(f"{path}: {path.stat().st_size} bytes is too large for a model config")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as e:  # bad JSON or UTF-8, NaN-free ints of > 4300 digits, deep nesting
        raise ValueError(f"{path} is not valid JSON: {str(e)[:200]}") from None
    if not isinstance(record, dict) or "kind" not in record or "config" not in record:
        raise ValueError(f"{path} lacks 'kind' and 'config'")
    if not isinstance(record["kind"], str) or record["kind"] not in KINDS:
        raise ValueError(f"{path}: unknown model kind {str(record['kind'])[:40]!r}; allowed: {', '.join(KINDS)}")
    if not isinstance(record["config"], dict):
        raise ValueError(f"{path}: 'config' must be a JSON object")
    return record


def load(directory: str | Path, map_location: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the model from ``config.json`` and fill it from ``model.safetensors``.

    The file's header is checked against the config's shapes first (``weights_check``), so a
    config that does not belong to the weights fails in milliseconds without allocating."""
    from safetensors import SafetensorError
    from safetensors.torch import load_model

    from rnnkit.core.models.weights_check import WeightsError, check_fits

    directory = Path(directory)
    record = read_record(directory)
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise FileNotFoundError(f"{weights} not found")
    check_fits(record["kind"], record["config"], weights)
    model = build_model(record["kind"], record["config"])
    try:
        load_model(model, str(weights), strict=True, device=str(map_location))
    except (SafetensorError, RuntimeError, OSError) as e:
        raise WeightsError(f"{weights}: cannot be loaded: {str(e).strip().splitlines()[0][:200]}") from None
    model.eval()
    return model
