"""ONNX bundles: write one atomically, open one only after every file's hash checks out.

A bundle is a directory (torch-free to read; onnxruntime only when a session is asked for)::

    step.onnx [step.int8.onnx ...]   one graph per job (names.GRAPHS[kind])
    tokenizer.model | tokenizer.json copied from the run directory (tagger_vocab.json for taggers;
                                     absent for forecasters)
    manifest.json                    {"format_version", "kind", "rnnkit_version",
                                      "files": {name: sha256}, "sizes": {name: bytes},
                                      "graphs": {job: file}, "fp32_graphs": {job: file},
                                      "precision", "model": config.json record,
                                      "metrics": {"last", "best"}, "task": the run's task record
                                      (e.g. a forecaster's normalisation), "parity", "int8", ...}

``graphs`` are the files a runner should load (the int8 ones when the bundle was exported
with ``--int8``); ``fp32_graphs`` always point at the fp32 reference graphs.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from rnnkit.core.atomic import atomic_write_json, fsync_dir, sha256_file

from . import names


class BundleError(ValueError):
    """A bundle that must not be used: missing, truncated or altered file, bad manifest."""


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
    """``{"metric", "best", "last"[, "final"]}`` from ``run_dir/metrics.jsonl`` ({} if absent).

    ``best`` is the evaluation of the saved model (the trainer saves ``model/`` at each new best):
    the best value of ``metric``, the task's metric when it names a logged key, else ``val_loss``;
    lower is better for losses and errors (``task.metric_mode`` overrides). Not the checkpoint's
    ``best_step``: a checkpoint can lag behind ``model/``.
    Unparseable lines are skipped, not fatal: metrics are informative.
    """
    run_dir = Path(run_dir)
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return {}
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict):
            records.append(rec)
    evals = [r for r in records if r.get("kind") == "eval"] or [r for r in records if "kind" not in r]
    if not evals:
        return {}
    task = run_task(run_dir)
    metric = task.get("metric") if any(task.get("metric") in r for r in evals) else "val_loss"
    out: dict[str, Any] = {"metric": metric, "last": evals[-1]}
    scored = [r for r in evals if isinstance(r.get(metric), (int, float))]
    if scored:
        mode = task.get("metric_mode") or ("min" if any(k in metric for k in _LOWER_IS_BETTER) else "max")
        # the first of equal values: the trainer saves on strict improvement only
        out["best"] = (min if mode == "min" else max)(scored, key=lambda r: r[metric])
    final = [r for r in records if r.get("kind") == "final"]
    if final:
        out["final"] = final[-1]
    return out


_LOWER_IS_BETTER = ("loss", "ppl", "bits", "rmse", "mae", "mse", "err")


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
        missing = [f for f in list(full.get("graphs", {}).values()) + list(full.get("fp32_graphs", {}).values())
                   if f not in hashes]
        if missing:
            raise ValueError(f"manifest names graph file(s) not in the bundle: {missing}")
        atomic_write_json(tmp / names.MANIFEST, full)
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


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ----------------------------------------------------------------------------- reading
@dataclass
class Bundle:
    """An opened, verified bundle. ``graphs``: {job: path} of the graphs to run."""

    path: Path
    manifest: dict[str, Any]
    graphs: dict[str, Path]
    fp32_graphs: dict[str, Path]
    tokenizer_path: Path | None
    _sessions: dict[tuple[str, str], Any] = field(default_factory=dict, repr=False)

    @property
    def kind(self) -> str:
        return self.manifest["kind"]

    @property
    def precision(self) -> str:
        return self.manifest.get("precision", "fp32")

    @property
    def model_config(self) -> dict[str, Any]:
        return self.manifest["model"]["config"]

    def graph_path(self, job: str, precision: str | None = None) -> Path:
        """The file of ``job``; ``precision="fp32"`` picks the fp32 reference graph."""
        table = self.fp32_graphs if precision == "fp32" else self.graphs
        if precision == "fp32" and not table and self.graphs:
            raise BundleError(f"{self.path}: this bundle ships only {self.precision} graphs (exported with --int8-only)")
        if job not in table:
            raise BundleError(f"{self.path}: no {job!r} graph; this {self.kind} bundle has: {', '.join(table)}")
        return table[job]

    def session(self, job: str, precision: str | None = None, threads: int = 1):
        """A cached ``onnxruntime.InferenceSession`` for ``job`` (CPU, ``threads`` intra-op threads)."""
        key = (job, precision or self.precision)
        if key not in self._sessions:
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
            self._sessions[key] = ort.InferenceSession(
                str(self.graph_path(job, precision)), opts, providers=["CPUExecutionProvider"])
        return self._sessions[key]

    def metadata(self, job: str, precision: str | None = None) -> dict[str, str]:
        """The graph's ``metadata_props`` (read through onnxruntime, no onnx needed)."""
        return dict(self.session(job, precision).get_modelmeta().custom_metadata_map)


def read_manifest(directory: str | os.PathLike) -> dict[str, Any]:
    path = Path(directory) / names.MANIFEST
    if not Path(directory).is_dir():
        raise BundleError(f"{directory}: no such bundle directory")
    if not path.is_file():
        raise BundleError(f"{path}: missing; {directory} is not an rnnkit bundle")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BundleError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(manifest, dict):
        raise BundleError(f"{path}: not a JSON object")
    for key in ("format_version", "kind", "files", "graphs", "model"):
        if key not in manifest:
            raise BundleError(f"{path}: lacks {key!r}")
    if manifest["format_version"] != names.FORMAT_VERSION:
        raise BundleError(f"{path}: format_version {manifest['format_version']!r}, "
                          f"this rnnkit reads {names.FORMAT_VERSION}")
    return manifest


def verify_files(directory: str | os.PathLike, manifest: Mapping[str, Any]) -> None:
    """Raise ``BundleError`` naming the first missing, truncated or altered file."""
    directory = Path(directory)
    sizes = manifest.get("sizes", {})
    for name, digest in manifest["files"].items():
        path = directory / name
        if "/" in name or not path.is_file():
            raise BundleError(f"{path}: missing from the bundle (listed in {names.MANIFEST})")
        size = path.stat().st_size
        if name in sizes and size < sizes[name]:
            raise BundleError(f"{path}: truncated ({size} of {sizes[name]} bytes)")
        if sha256_file(path) != digest:
            raise BundleError(f"{path}: altered (sha256 differs from {names.MANIFEST})")


def open_bundle(directory: str | os.PathLike) -> Bundle:
    """Open a bundle after verifying the manifest and every file's sha256.

    Raises ``BundleError`` (a ``ValueError``) naming the bad file.
    """
    directory = Path(directory)
    manifest = read_manifest(directory)
    verify_files(directory, manifest)
    files = manifest["files"]
    expected = names.GRAPHS.get(manifest["kind"])
    if expected is None:
        raise BundleError(f"{directory / names.MANIFEST}: unknown kind {manifest['kind']!r}")

    def table(key: str) -> dict[str, Path]:
        graphs = manifest.get(key) or {}
        for job, file in graphs.items():
            if file not in files:
                raise BundleError(f"{directory / file}: {key}[{job!r}] is not a hashed bundle file")
        return {job: directory / file for job, file in graphs.items()}

    graphs = table("graphs")
    # An int8-only bundle (export --int8-only, for shipping small) has an empty fp32 table.
    fp32 = table("fp32_graphs") if "fp32_graphs" in manifest else dict(graphs)
    lacking = sorted(set(expected) - set(graphs))
    if lacking:
        raise BundleError(f"{directory / names.MANIFEST}: a {manifest['kind']} bundle needs graph(s) {lacking}")
    tok = next((directory / n for n in files if n.startswith("tokenizer.") or n in names.VOCAB_FILES), None)
    return Bundle(directory, manifest, graphs, fp32, tok)
