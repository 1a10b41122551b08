"""Training checkpoints: safetensors for tensors, JSON for the rest, never pickle.

Layout of ``<run>/checkpoints/latest/``::

    model.safetensors   model weights (tied weights stored once, restored tied)
    state.safetensors   optimizer tensors ("optim.<param idx>.<name>"), RNG states ("rng.*"),
                        carried hidden state ("carry.<n>")
    state.json          everything else: step, epoch, batch index, best metric, scheduler,
                        grad scaler, optimizer param groups, RNG numbers, carry structure.
                        Written last: a directory without it is incomplete.
    rank<r>.safetensors, rank<r>.json   DDP only: rank r's own carry and RNG states (rank 0's
                        are the main ones), written into the same temporary directory first.

Crash safety: a new checkpoint is written in full into ``checkpoints/.tmp-XXXX/`` (each
file fsynced), then swapped with ``latest`` in one step (Linux ``renameat2(RENAME_EXCHANGE)``)
and the old one deleted. Where that call is missing the swap is two renames
(latest -> .prev, tmp -> latest); ``find_latest`` puts ``.prev`` back if a crash fell between
them. Either way a SIGKILL at any moment leaves a complete ``latest`` (or a complete
``.prev`` that becomes it), never a half-written one.
"""

from __future__ import annotations

import ctypes
import errno
import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
from torch import Tensor, nn

from rnnkit.core.atomic import fsync_dir, atomic_write, atomic_write_json
from rnnkit.core.train.rng import get_rng_state

FORMAT_VERSION = 1
LATEST, PREV, TMP_PREFIX = "latest", ".prev", ".tmp-"
MODEL_FILE, TENSORS_FILE, STATE_FILE = "model.safetensors", "state.safetensors", "state.json"


class CheckpointError(ValueError):
    """A checkpoint is missing, incomplete or does not fit the model / optimizer (a ValueError, so
    the CLI prints it as one line)."""


@dataclass
class Checkpoint:
    path: Path
    state: dict            # the trainer's JSON state, as saved
    carry: Any             # carried hidden state, tensors on the requested device
    rng: tuple[dict, dict[str, Tensor]]  # (meta, tensors) for rng.set_rng_state


# --------------------------------------------------------------------------- carry <-> flat tensors
def pack_carry(carry: Any, tensors: dict[str, Tensor]) -> Any:
    """Turn nested tuples / lists / dicts of tensors into a JSON spec; tensors go to ``tensors``."""
    if carry is None or isinstance(carry, (bool, int, float, str)):
        return {"v": carry}
    if isinstance(carry, Tensor):
        key = f"carry.{len([k for k in tensors if k.startswith('carry.')])}"
        tensors[key] = carry.detach().contiguous().cpu()
        return {"t": key}
    if isinstance(carry, (tuple, list)):
        return {"seq": "tuple" if isinstance(carry, tuple) else "list",
                "items": [pack_carry(c, tensors) for c in carry]}
    if isinstance(carry, dict):
        if not all(isinstance(k, str) for k in carry):
            raise CheckpointError("a carried dict must have string keys to be checkpointed")
        return {"dict": {k: pack_carry(v, tensors) for k, v in carry.items()}}
    raise CheckpointError(f"cannot checkpoint a carry of type {type(carry).__name__}; "
                          "use nested tuples / lists / dicts of tensors")


def unpack_carry(spec: Any, tensors: dict[str, Tensor], device: torch.device) -> Any:
    if "v" in spec:
        return spec["v"]
    if "t" in spec:
        return tensors[spec["t"]].to(device)
    if "seq" in spec:
        items = [unpack_carry(s, tensors, device) for s in spec["items"]]
        return tuple(items) if spec["seq"] == "tuple" else items
    return {k: unpack_carry(v, tensors, device) for k, v in spec["dict"].items()}


# --------------------------------------------------------------------------- optimizer <-> flat
def _pack_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, Tensor]) -> dict:
    sd = optimizer.state_dict()
    values: dict[str, dict[str, Any]] = {}
    for idx, slots in sd["state"].items():
        for name, value in slots.items():
            if isinstance(value, Tensor):
                tensors[f"optim.{idx}.{name}"] = value.detach().contiguous().cpu()
            else:  # e.g. SGD's momentum_buffer None, a float step in old torch
                values.setdefault(str(idx), {})[name] = value
    return {"param_groups": sd["param_groups"], "values": values, "class": type(optimizer).__name__}


def _unpack_optimizer(optimizer: torch.optim.Optimizer, meta: dict, tensors: dict[str, Tensor]) -> None:
    if meta["class"] != type(optimizer).__name__:
        raise CheckpointError(f"checkpoint optimizer is {meta['class']}, this run uses "
                              f"{type(optimizer).__name__}; resume with the same optimizer")
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = value
    for idx, slots in meta["values"].items():
        state.setdefault(int(idx), {}).update(slots)
    groups = []
    if len(meta["param_groups"]) != len(optimizer.param_groups):
        raise CheckpointError(f"checkpoint has {len(meta['param_groups'])} optimizer parameter group(s), this "
                              f"run {len(optimizer.param_groups)}")
    for saved, current in zip(meta["param_groups"], optimizer.param_groups):
        for k, v in current.items():  # lr, betas, eps...: numbers the next step computes with
            if k == "params" or isinstance(v, bool):
                continue
            want = list(v) if isinstance(v, tuple) else [v]
            got = saved.get(k)
            got = got if isinstance(got, list) else [got]
            if all(_is_num(x) for x in want) and not (len(got) == len(want) and all(_is_num(x) for x in got)):
                raise CheckpointError(f"optimizer setting {k}={json.dumps(saved.get(k))[:40]} in the checkpoint "
                                      "is not a finite number")
        # JSON turned tuples (Adam's betas) into lists; give them their type back.
        groups.append({k: tuple(v) if isinstance(current.get(k), tuple) and isinstance(v, list) else v
                       for k, v in saved.items()})
    try:
        optimizer.load_state_dict({"state": state, "param_groups": groups})
    except (ValueError, KeyError) as e:
        raise CheckpointError(f"optimizer state does not fit this model: {e}") from e


# --------------------------------------------------------------------------- directory swap
def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two existing paths (Linux renameat2). False where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    AT_FDCWD, RENAME_EXCHANGE = -100, 2
    rc = renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, getattr(errno, "ENOTSUP", errno.EINVAL)):
        return False  # kernel or filesystem without RENAME_EXCHANGE
    raise OSError(err, f"renameat2({a}, {b}) failed: {os.strerror(err)}")


def _publish(tmp: Path, root: Path) -> None:
    """Make the complete directory ``tmp`` the new ``root/latest``; the old one goes last."""
    latest, prev = root / LATEST, root / PREV
    if not latest.exists():
        os.replace(tmp, latest)
    elif _exchange(tmp, latest):
        shutil.rmtree(tmp)  # tmp now holds the previous checkpoint
    else:
        if prev.exists():
            shutil.rmtree(prev)
        os.replace(latest, prev)
        os.replace(tmp, latest)
        shutil.rmtree(prev)
    fsync_dir(root)


def _complete(path: Path) -> bool:
    return (path / STATE_FILE).is_file() and (path / MODEL_FILE).is_file() and (path / TENSORS_FILE).is_file()


def find_latest(root: str | Path) -> Optional[Path]:
    """``root/latest`` if complete; recovers a ``.prev`` left by a crash mid-swap; else None."""
    root = Path(root)
    latest, prev = root / LATEST, root / PREV
    if _complete(latest):
        return latest
    if not latest.exists() and _complete(prev):
        os.replace(prev, latest)
        return latest
    return None


# --------------------------------------------------------------------------- save / load
def shared_tmp_dir(root: str | Path, step: int) -> Path:
    """The temporary directory every DDP rank writes into for the checkpoint of ``step``;
    rank 0 creates it with ``prepare_tmp_dir`` before the others write."""
    return Path(root) / f"{TMP_PREFIX}step{step}"


def _remove_stale(root: Path) -> None:
    for stale in root.glob(TMP_PREFIX + "*"):  # left by a run killed while writing
        shutil.rmtree(stale, ignore_errors=True)


def prepare_tmp_dir(tmp: Path) -> Path:
    _remove_stale(tmp.parent)
    tmp.mkdir(parents=True)
    return tmp


def save_rank_state(tmp: Path, rank: int, carry: Any) -> None:
    """DDP rank ``rank`` (> 0): its carry and RNG states, into the shared temporary directory."""
    from safetensors.torch import save_file

    tensors: dict[str, Tensor] = {}
    rng_meta, rng_tensors = get_rng_state()
    tensors.update(rng_tensors)
    spec = pack_carry(carry, tensors)
    atomic_write(tmp / f"rank{rank}.safetensors", lambda p: save_file(tensors, p))
    atomic_write_json(tmp / f"rank{rank}.json", {"carry": spec, "rng": rng_meta})


def save_checkpoint(root: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer, state: dict,
                    carry: Any = None, tmp: Optional[Path] = None) -> Path:
    """Write a checkpoint and make it ``root/latest``. ``state`` must be JSON-able.

    RNG states are captured here, so call this at the exact point a resume should continue from.
    ``tmp``: a directory from ``prepare_tmp_dir`` that other DDP ranks already wrote into.
    """
    from safetensors.torch import save_file, save_model

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    if tmp is None:
        _remove_stale(root)
        tmp = Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir=root))
    try:
        tensors: dict[str, Tensor] = {}
        rng_meta, rng_tensors = get_rng_state()
        tensors.update(rng_tensors)
        full = {
            "format_version": FORMAT_VERSION,
            **state,
            "optimizer": _pack_optimizer(optimizer, tensors),
            "carry": pack_carry(carry, tensors),
            "rng": rng_meta,
        }
        from rnnkit.core.models.registry import saveable

        cpu_model = saveable(model)  # cuDNN's flat weight buffer on a GPU (see saveable)
        atomic_write(tmp / MODEL_FILE, lambda p: save_model(cpu_model, p))
        atomic_write(tmp / TENSORS_FILE, lambda p: save_file(tensors, p))
        atomic_write_json(tmp / STATE_FILE, full)  # last: marks the directory complete
        _publish(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root / LATEST


def saved_group_count(root: str | Path) -> Optional[int]:
    """How many optimizer parameter groups the latest checkpoint has (None: none readable). Runs
    started before weight decay was split by parameter kind have one group."""
    path = find_latest(Path(root))
    try:
        state = json.loads((path / STATE_FILE).read_text(encoding="utf-8")) if path is not None else None
        return len(state["optimizer"]["param_groups"]) if state else None
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
        return None  # load_checkpoint then says what is wrong, in one line


def load_checkpoint(root: str | Path, model: nn.Module, optimizer: Optional[torch.optim.Optimizer] = None,
                    device: torch.device | str = "cpu", rank: int = 0) -> Checkpoint:
    """Fill ``model`` (and ``optimizer``) from ``root/latest``; returns the rest for the trainer.

    ``rank`` > 0 (DDP): carry and RNG come from that rank's own files when present."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from rnnkit.core.models.registry import load_weights_into

    root = Path(root)
    path = find_latest(root)
    if path is None:
        raise CheckpointError(f"no complete checkpoint in {root}")
    device = torch.device(device)
    try:
        state = json.loads((path / STATE_FILE).read_text(encoding="utf-8"))
        _check_state(state, path)
        tensors = load_file(str(path / TENSORS_FILE), device="cpu")
        load_weights_into(model, path / MODEL_FILE)
    except CheckpointError:
        raise
    except (ValueError, RecursionError, SafetensorError, OSError) as e:  # bad JSON / UTF-8, truncated file
        raise CheckpointError(f"checkpoint {path} is unreadable: {_line(e)}") from None
    except RuntimeError as e:  # missing / unexpected / mis-shaped weights
        raise CheckpointError(f"checkpoint {path} does not fit this model: {_line(e)}") from None
    try:
        if optimizer is not None:
            saved = [len(g.get("params", ())) for g in state["optimizer"]["param_groups"]]
            ours = [len(g["params"]) for g in optimizer.param_groups]
            if saved != ours:  # before the shapes: a different grouping maps indices to other parameters
                raise CheckpointError(f"checkpoint optimizer has parameter groups of sizes {saved[:8]}, this run "
                                      f"{ours[:8]}: resume with the same optimizer settings")
            _check_optimizer_tensors(optimizer, tensors)
            _unpack_optimizer(optimizer, state["optimizer"], tensors)
        carry_spec, rng_meta = state["carry"], state["rng"]
        if rank > 0 and (path / f"rank{rank}.json").is_file():
            own = json.loads((path / f"rank{rank}.json").read_text(encoding="utf-8"))
            tensors = load_file(str(path / f"rank{rank}.safetensors"), device="cpu")
            carry_spec, rng_meta = own["carry"], own["rng"]
        carry = unpack_carry(carry_spec, tensors, device)
        rng_tensors = {k: v for k, v in tensors.items() if k.startswith("rng.")}
        _check_rng(rng_meta, rng_tensors)
    except CheckpointError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, RuntimeError, RecursionError,
            SafetensorError, OSError) as e:  # a tampered state: one line naming the checkpoint
        raise CheckpointError(f"checkpoint {path} is damaged ({type(e).__name__}: {_line(e)}); "
                              "resume from another copy or start the run over") from None
    return Checkpoint(path=path, state=state, carry=carry, rng=(rng_meta, rng_tensors))


def _line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0][:200] if lines else type(e).__name__


# The trainer's counters: integers that decide loops (a batch_in_epoch of 10^12 is a skip that
# never ends), so they are checked before anything uses them.
_COUNTERS = ("step", "epoch", "batch_in_epoch", "bad_evals", "log_items")
MAX_COUNTER = 10 ** 12


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return (_is_int(v) or isinstance(v, float)) and math.isfinite(v)


def _check_state(state: Any, path: Path) -> None:
    """CheckpointError naming the first field of state.json with a wrong type or value (fields
    that are present; the trainer checks that its own are all there)."""
    def bad(key: str, want: str) -> CheckpointError:
        return CheckpointError(f"checkpoint {path}: state.json {key}={json.dumps(state.get(key))[:40]} must be {want}")

    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path}: state.json is not a JSON object")
    if state.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"checkpoint format {json.dumps(state.get('format_version'))[:40]} != {FORMAT_VERSION}")
    has = lambda key: key in state  # noqa: E731
    for key in _COUNTERS:
        if has(key) and not (_is_int(state[key]) and 0 <= state[key] <= MAX_COUNTER):
            raise bad(key, f"an integer from 0 to {MAX_COUNTER}")
    step = state.get("step", MAX_COUNTER)
    if has("batch_in_epoch") and state["batch_in_epoch"] > step:
        raise bad("batch_in_epoch", "at most step (every batch is a step)")
    if has("eval_step") and not (_is_int(state["eval_step"]) and -1 <= state["eval_step"] <= step):
        raise bad("eval_step", "an integer from -1 to step")
    for key in ("best_metric", "patience_best"):
        if state.get(key) is not None and not _is_num(state[key]):
            raise bad(key, "null or a finite number")
    if state.get("best_step") is not None and not (_is_int(state["best_step"]) and 0 <= state["best_step"] <= step):
        raise bad("best_step", "null or an integer from 0 to step")
    for key in ("elapsed", "log_loss_sum"):
        if has(key) and not _is_num(state[key]):
            raise bad(key, "a finite number")
    for key in ("last_eval", "schedule", "optimizer", "carry", "rng"):
        if has(key) and not isinstance(state[key], dict):
            raise bad(key, "a JSON object")
    if state.get("scaler") is not None and not isinstance(state["scaler"], dict):
        raise bad("scaler", "null or a JSON object")
    if has("world_size") and not (_is_int(state["world_size"]) and 1 <= state["world_size"] <= 4096):
        raise bad("world_size", "an integer from 1 to 4096")
    opt = state.get("optimizer", {})
    if has("optimizer") and not (isinstance(opt.get("param_groups"), list)
                                 and all(isinstance(g, dict) for g in opt["param_groups"])
                                 and isinstance(opt.get("values"), dict) and isinstance(opt.get("class"), str)):
        raise bad("optimizer", "{param_groups: [...], values: {...}, class: name}")


def _check_optimizer_tensors(optimizer: torch.optim.Optimizer, tensors: dict[str, Tensor]) -> None:
    """Every saved per-parameter tensor has its parameter's shape (else the first step fails
    deep inside the optimizer, or silently broadcasts)."""
    params = [p for g in optimizer.param_groups for p in g["params"]]
    for key, value in tensors.items():
        if not key.startswith("optim."):
            continue
        parts = key.split(".", 2)
        if len(parts) != 3 or not parts[1].isdigit() or int(parts[1]) >= len(params):
            raise CheckpointError(f"optimizer tensor {key[:60]!r} names no parameter of this model")
        p = params[int(parts[1])]
        if value.dim() > 0 and tuple(value.shape) != tuple(p.shape):
            raise CheckpointError(f"optimizer tensor {key[:60]!r} has shape {list(value.shape)}, its parameter "
                                  f"{list(p.shape)}")
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise CheckpointError(f"optimizer tensor {key[:60]!r} holds NaN / inf")


def _check_rng(meta: Any, tensors: dict[str, Tensor]) -> None:
    """Apply the saved generator states once (then put the current ones back): a tampered state
    fails here, as one line, instead of after the batches were skipped."""
    from rnnkit.core.train.rng import get_rng_state, set_rng_state

    current = get_rng_state()
    try:
        set_rng_state(meta, tensors)
    except (KeyError, TypeError, ValueError, IndexError, OverflowError, RuntimeError) as e:
        raise CheckpointError(f"checkpoint RNG state is damaged ({type(e).__name__}: {_line(e)})") from None
    finally:
        set_rng_state(*current)
