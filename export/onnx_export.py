"""Export an rnnkit model to ONNX: one graph per job, state as explicit inputs and outputs.

Uses the TorchScript exporter (``dynamo=False``): measured with torch 2.13, the dynamo
exporter sometimes pinned the time axis to the example length for a second export in the
same process, while the TorchScript one gives native LSTM/GRU/RNN nodes and <= 1e-6 parity.
Batch and time axes are dynamic; ``check_graph`` refuses a graph where they are not.
"""

from __future__ import annotations

import inspect
import json
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rnnkit.core.atomic import atomic_write
from rnnkit.edge import names as N

from .wrappers import JobWrapper, wrappers_for

OPSET = 17
# Ops outside the default ONNX domain a graph may use: onnxruntime's own quantised kernels.
ALLOWED_DOMAINS = {"", "ai.onnx", "com.microsoft"}
EXAMPLE_BATCH, EXAMPLE_TIME = 2, 5


def model_facts(model: nn.Module) -> dict[str, Any]:
    """The facts every graph's metadata holds, from the model's config (missing ids are -1)."""
    cfg = model.config
    get = lambda k, d=-1: getattr(cfg, k, d)  # noqa: E731
    vocab = get("vocab_size", 0) or get("tgt_vocab_size", 0)
    return {
        N.META_CELL: get("cell", ""),
        N.META_NUM_LAYERS: get("num_layers", 1),
        N.META_HIDDEN_SIZE: get("hidden_size", 0),
        N.META_NUM_DIRECTIONS: 2 if get("bidirectional", False) else 1,
        N.META_VOCAB_SIZE: vocab,
        N.META_PAD_ID: get("pad_id"), N.META_BOS_ID: get("bos_id"),
        N.META_EOS_ID: get("eos_id"), N.META_UNK_ID: get("unk_id"),
        **({N.META_WINDOW: cfg.window} if hasattr(cfg, "window") else {}),
    }


def graph_metadata(model: nn.Module, wrapper: JobWrapper, precision: str = "fp32",
                   tokenizer_sha256: str = "", tokenizer_file: str = "") -> dict[str, str]:
    """``metadata_props`` of one graph: everything a runner needs, as strings."""
    from rnnkit import __version__
    from rnnkit.core.config import to_dict

    # A graph that produces an initial state (encoder, state_from) lists it as its state outputs.
    state_in = [n for n in wrapper.input_names if N.is_state_input(n)]
    state_out = [n for n in wrapper.output_names if N.is_state_output(n) or N.is_state_input(n)]
    meta = {
        N.META_FORMAT_VERSION: N.FORMAT_VERSION, N.META_KIND: N.bundle_kind(model.kind), N.META_JOB: wrapper.job,
        N.META_PRECISION: precision, **model_facts(model),
        N.META_TOKENIZER_SHA256: tokenizer_sha256, N.META_TOKENIZER_FILE: tokenizer_file,
        N.META_STATE_INPUTS: ",".join(state_in), N.META_STATE_OUTPUTS: ",".join(state_out),
        N.META_INPUTS: ",".join(wrapper.input_names), N.META_OUTPUTS: ",".join(wrapper.output_names),
        N.META_MODEL_CONFIG: json.dumps(to_dict(model.config), sort_keys=True),
        N.META_RNNKIT_VERSION: __version__,
    }
    return {k: str(v) for k, v in meta.items()}


def set_metadata(onnx_model, meta: dict[str, str]) -> None:
    """Replace the graph's ``metadata_props`` entries named in ``meta``."""
    keep = [p for p in onnx_model.metadata_props if p.key not in meta]
    del onnx_model.metadata_props[:]
    onnx_model.metadata_props.extend(keep)
    for key, value in meta.items():
        prop = onnx_model.metadata_props.add()
        prop.key, prop.value = key, str(value)


def _export_kwargs() -> dict[str, Any]:
    # torch < 2.5 has no ``dynamo`` argument (and only the TorchScript exporter).
    params = inspect.signature(torch.onnx.export).parameters
    return {"dynamo": False} if "dynamo" in params else {}


def _torch_export(wrapper: JobWrapper, args: tuple, path: str, opset: int) -> None:
    with warnings.catch_warnings():
        # Known and harmless: the legacy-exporter deprecation notices, the tracer noting the
        # shape checks inside nn.RNN/LSTM/GRU, and the LSTM batch-size note (parity tests
        # run batch 1 and 3 against a batch-2 trace). Warnings from our own code still show.
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning, module=r"torch\.nn\.modules\.rnn")
        warnings.filterwarnings("ignore", message=r".*batch_size other than 1.*")
        # state_from iterates over the (static) number of state tensors: a fixed count is right.
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning,
                                message=r"Iterating over a tensor", module=r"rnnkit\.core\.models")
        torch.onnx.export(
            wrapper, args, path,
            input_names=wrapper.input_names, output_names=wrapper.output_names,
            dynamic_axes=wrapper.axes, opset_version=opset, do_constant_folding=True,
            **_export_kwargs(),
        )


def export_graph(wrapper: JobWrapper, path: str | os.PathLike, meta: dict[str, str],
                 example_batch: int = EXAMPLE_BATCH, example_time: int = EXAMPLE_TIME,
                 opset: int = OPSET) -> Path:
    """Trace ``wrapper`` on random example inputs, add ``meta``, check and write the graph atomically."""
    import onnx

    wrapper.eval()
    with torch.no_grad():
        args = wrapper.example_inputs(example_batch, wrapper.fixed_time or example_time)

    def write(tmp: str) -> None:
        _torch_export(wrapper, args, tmp, opset)
        model = onnx.load(tmp)
        set_metadata(model, meta)
        onnx.save(model, tmp)
        check_graph(tmp, wrapper.axes)

    return atomic_write(path, write)


def symbolic_dims(onnx_model) -> dict[str, list]:
    """{tensor name: [dim_param or dim_value, ...]} of every graph input and output."""
    out = {}
    for v in list(onnx_model.graph.input) + list(onnx_model.graph.output):
        out[v.name] = [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
    return out


def check_graph(path: str | os.PathLike, axes: dict[str, dict[int, str]] | None = None) -> None:
    """``onnx.checker`` (full), only standard or onnxruntime ops, and the declared axes symbolic.

    Raises ``ValueError`` naming the problem: a pinned axis is the silent failure we guard against.
    """
    import onnx

    path = str(path)
    onnx.checker.check_model(path, full_check=True)
    model = onnx.load(path, load_external_data=False)
    domains = {n.domain for n in model.graph.node} - ALLOWED_DOMAINS
    if domains:
        raise ValueError(f"{path}: custom operator domain(s) {sorted(domains)}")
    dims = symbolic_dims(model)
    for name, ax in (axes or {}).items():
        if name not in dims:
            raise ValueError(f"{path}: graph has no tensor {name!r}; it has {sorted(dims)}")
        for i, axis in ax.items():
            if dims[name][i] != axis:
                raise ValueError(f"{path}: {name} dim {i} is {dims[name][i]!r}, expected symbolic {axis!r}")


def export_model(model: nn.Module, out_dir: str | os.PathLike, tokenizer_sha256: str = "", tokenizer_file: str = "",
                 example_batch: int = EXAMPLE_BATCH, example_time: int = EXAMPLE_TIME) -> dict[str, Path]:
    """Write every graph of ``model`` into ``out_dir``: ``{job: path}``."""
    model.eval()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for job, wrapper in wrappers_for(model).items():
        meta = graph_metadata(model, wrapper, "fp32", tokenizer_sha256, tokenizer_file)
        paths[job] = export_graph(wrapper, out_dir / N.graph_file(job), meta, example_batch, example_time)
    return paths
