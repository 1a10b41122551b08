"""Writing a bundle, atomically (torch-free). Reading one is ``rnnkit.edge.bundle`` (what a device does).

The layout and the manifest's fields are described there; ``write_bundle`` fills in ``files``
(sha256) and ``sizes``, refuses graphs whose external data is not a listed file and non-finite
figures, and renames the finished directory into place.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Mapping

from rnnkit.core.atomic import atomic_write_text, fsync_dir, sha256_file
from rnnkit.edge import names
from rnnkit.edge.onnx_scan import scan_onnx


def find_tokenizer(directory: str | os.PathLike) -> Path | None:
    """The tokenizer file of a run or bundle directory: tokenizer.model, tokenizer.json, else
    any other ``tokenizer.*`` file, else a model's own vocabulary file (``names.VOCAB_FILES``);
    None if there is none."""
    directory = Path(directory)
    for name in names.TOKENIZER_FILES:
        if (directory / name).is_file():
            return directory / name
    others = sorted(p for p in directory.glob("tokenizer.*") if p.is_file())
    others += [directory / n for n in names.VOCAB_FILES if (directory / n).is_file()]
    return others[0] if others else None


# ----------------------------------------------------------------------------- metrics
def read_metrics(run_dir: str | os.PathLike) -> dict[str, Any]:
    """What the manifest records about the run: ``summarize_run`` (core/train/run_log.py owns
    metrics.jsonl and best.json): ``{"metric", "mode", "best", "last"[, "final"]}``, {} if absent."""
    from rnnkit.core.train.run_log import summarize_run

    return summarize_run(run_dir)


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def run_task(run_dir: Path) -> dict[str, Any]:
    """The ``task`` record of a run's config.json (metric, normalisation, ...), {} if none."""
    task = _json(Path(run_dir) / "config.json").get("task")
    return task if isinstance(task, dict) else {}


# ----------------------------------------------------------------------------- writing
def write_bundle(out_dir: str | os.PathLike, files: Mapping[str, str | os.PathLike],
                 manifest: Mapping[str, Any], overwrite: bool = True) -> Path:
    """Copy ``files`` ({name in bundle: source path}) and a manifest into ``out_dir``, atomically.

    The bundle is built in a temp directory beside ``out_dir`` and renamed into place, so a
    reader sees the old bundle or the new one, never a mix. ``manifest`` gets ``files`` and
    ``sizes`` filled in here. An existing ``out_dir`` is replaced only if it is a bundle
    (has a manifest) or empty: a typo must not delete someone's directory.
    """
    out_dir = Path(out_dir).absolute()
    if out_dir.exists():
        if not out_dir.is_dir():
            raise FileExistsError(f"{out_dir} exists and is not a directory")
        if any(out_dir.iterdir()) and not (out_dir / names.MANIFEST).is_file():
            raise FileExistsError(f"{out_dir} exists, is not empty and is not a bundle: refusing to replace it")
        if not overwrite:
            raise FileExistsError(f"{out_dir} exists (pass overwrite=True to replace it)")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    try:
        hashes, sizes = {}, {}
        for name, src in files.items():
            if "/" in name or name in ("", ".", "..", names.MANIFEST):
                raise ValueError(f"bad bundle file name {name!r}")
            shutil.copyfile(src, tmp / name)
            with open(tmp / name, "rb+") as f:
                os.fsync(f.fileno())
            hashes[name], sizes[name] = sha256_file(tmp / name), (tmp / name).stat().st_size
        full = {**manifest, "files": hashes, "sizes": sizes}
        graph_files = list(full.get("graphs", {}).values()) + list((full.get("fp32_graphs") or {}).values())
        missing = [f for f in graph_files if f not in hashes]
        if missing:
            raise ValueError(f"manifest names graph file(s) not in the bundle: {missing}")
        _refuse_unlisted_external_data(tmp, set(graph_files), hashes)
        # Strict JSON: a NaN figure would make a manifest other readers (and ours) refuse.
        bad = _non_finite(full)
        if bad:
            raise ValueError(f"manifest value {bad} is not a finite number (NaN or inf): no bundle written")
        atomic_write_text(tmp / names.MANIFEST, json.dumps(full, indent=2, sort_keys=True, allow_nan=False) + "\n")
        # mkdtemp/mkstemp make private (0700/0600) entries; a bundle is meant to be shared.
        umask = _umask()
        os.chmod(tmp, 0o777 & ~umask)
        for name in [*hashes, names.MANIFEST]:
            os.chmod(tmp / name, 0o666 & ~umask)
        fsync_dir(tmp)
        if out_dir.exists():
            old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
            os.replace(out_dir, old)
            os.replace(tmp, out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out_dir)
        fsync_dir(out_dir.parent)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def _non_finite(obj: Any, where: str = "") -> str | None:
    """The JSON path of the first NaN / inf in ``obj``, else None."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return where or "(top level)"
    if isinstance(obj, dict):
        items = obj.items()
    elif isinstance(obj, (list, tuple)):
        items = enumerate(obj)
    else:
        return None
    for k, v in items:
        found = _non_finite(v, f"{where}.{k}" if where else str(k))
        if found:
            return found
    return None


def _refuse_unlisted_external_data(directory: Path, graph_files: set[str], hashes: Mapping[str, str]) -> None:
    for name in graph_files:
        for tensor, location in scan_onnx((directory / name).read_bytes()).external:
            if location not in hashes or location in graph_files:
                raise ValueError(f"{name}: tensor {tensor!r} keeps its data in {location!r}, which is not a "
                                 "bundle file: pass it in ``files`` so that it is hashed")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
