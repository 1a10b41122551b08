"""Reading a bundle, as a device does (torch-free): open one only after every file's hash checks out.

A bundle is a directory::

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
with ``--int8``); ``fp32_graphs`` always point at the fp32 reference graphs. Run a graph with
``rnnkit.edge.runner.Runner(bundle.graph_path(job))``. Writing bundles is ``rnnkit.export.bundle``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from rnnkit.core.config import check_dims

from . import names


class BundleError(ValueError):
    """A bundle that must not be used: missing, truncated or altered file, bad manifest."""


# ----------------------------------------------------------------------------- reading
# A bundle is exactly its manifest: every file a graph or the runtime reads is listed with its
# exact size and sha256, nothing unlisted is read, and links or special files are refused (a
# link can lead out of the bundle; a FIFO or a sparse 50 GB file can hang the hash).
MAX_MANIFEST_BYTES = 1 << 20
MAX_FILE_BYTES = (1 << 31) - 1  # a protobuf stops at 2 GiB; also bounds the time one hash can take (~4 s)
MAX_GRAPH_BYTES = (1 << 31) - 1   # graphs are read into memory once, to scan them before onnxruntime does
MAX_FILES = 64
MAX_META_CHARS = 1 << 16          # one metadata_props value (model_config JSON is ~300 chars)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")
_SHA256 = re.compile(r"[0-9a-f]{64}\Z")


@dataclass
class Bundle:
    """An opened, verified bundle. ``graphs``: {job: path} of the graphs to run."""

    path: Path
    manifest: dict[str, Any]
    graphs: dict[str, Path]
    fp32_graphs: dict[str, Path]
    tokenizer_path: Path | None
    graph_meta: dict[str, dict[str, str]] = field(default_factory=dict, repr=False)  # file name -> metadata_props
    # file name -> the bytes that were hashed (graphs without external data), handed out once
    _verified: dict[str, bytes] = field(default_factory=dict, repr=False)
    _inline: frozenset[str] = frozenset()  # the graphs without external data

    @property
    def kind(self) -> str:
        return self.manifest["kind"]

    @property
    def precision(self) -> str:
        return self.manifest.get("precision") or "fp32"

    @property
    def model_config(self) -> dict[str, Any]:
        return self.manifest["model"]["config"]

    def graph_model(self, job: str, precision: str | None = None) -> bytes | Path:
        """What to hand onnxruntime for ``job``: the graph's bytes as they were hashed, so a file
        swapped after ``open_bundle`` is not what runs (the first call takes the bytes read when the
        bundle was opened; a later one reads the file again and checks its size and sha256 again).
        A graph with external data is its path (its data files are hashed bundle files too)."""
        path = self.graph_path(job, precision)
        if path.name not in self._inline:
            return path
        data = self._verified.pop(path.name, None)
        if data is None:
            data = _read_checked(path, self.manifest["sizes"][path.name], self.manifest["files"][path.name], True)
        return data

    def runner(self, cls, job: str, precision: str | None = None, **kw):
        """``cls`` (``Runner`` / ``StepRunner``) on ``job``'s verified graph (``graph_model``)."""
        return cls(self.graph_model(job, precision), name=str(self.graph_path(job, precision)), **kw)

    def file_path(self, name: str) -> Path | None:
        """A listed (hence size- and sha256-checked) file of the bundle, or None if not listed:
        nothing unlisted is ever read."""
        return self.path / name if name in self.manifest.get("files", {}) else None

    def graph_path(self, job: str, precision: str | None = None) -> Path:
        """The file of ``job``; ``precision="fp32"`` picks the fp32 reference graph."""
        table = self.fp32_graphs if precision == "fp32" else self.graphs
        if precision == "fp32" and not table and self.graphs:
            raise BundleError(f"{self.path}: this bundle ships only {self.precision} graphs (exported with --int8-only)")
        if job not in table:
            raise BundleError(f"{self.path}: no {job!r} graph; this {self.kind} bundle has: {', '.join(table)}")
        return table[job]

    def metadata(self, job: str, precision: str | None = None) -> dict[str, str]:
        """The graph's ``metadata_props`` (read from the verified file itself; no onnxruntime needed)."""
        return dict(self.graph_meta[self.graph_path(job, precision).name])


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0][:300] if lines else type(e).__name__


def _open_regular(path: Path) -> int:
    """An fd on ``path`` if it is a regular file and not a link (checked on the fd too: no race)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise BundleError(f"{path}: missing from the bundle (listed in {names.MANIFEST})") from None
    except OSError as e:
        raise BundleError(f"{path}: cannot be read ({e.strerror})") from None
    if stat.S_ISLNK(st.st_mode):
        raise BundleError(f"{path}: is a symbolic link; bundle files must be regular files inside the bundle")
    if not stat.S_ISREG(st.st_mode):
        raise BundleError(f"{path}: not a regular file")
    try:  # O_NONBLOCK: if the file was swapped for a FIFO since lstat, open must not wait for a writer
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError as e:
        raise BundleError(f"{path}: cannot be opened ({e.strerror})") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise BundleError(f"{path}: not a regular file")
    return fd


def _read_checked(path: Path, size: int, digest: str, keep: bool) -> bytes | None:
    """Check ``path``'s exact size (before hashing a byte), then its sha256; its bytes when ``keep``."""
    fd = _open_regular(path)
    try:
        actual = os.fstat(fd).st_size
        if actual < size:
            raise BundleError(f"{path}: truncated ({actual} of {size} bytes)")
        if actual != size:
            raise BundleError(f"{path}: {actual} bytes, the manifest says {size}: altered")
        h, parts, left = hashlib.sha256(), [], size
        while left > 0:
            block = os.read(fd, min(left, 1 << 20))
            if not block:
                raise BundleError(f"{path}: truncated while reading")
            h.update(block)
            if keep:
                parts.append(block)
            left -= len(block)
    finally:
        os.close(fd)
    if h.hexdigest() != digest:
        raise BundleError(f"{path}: altered (sha256 differs from {names.MANIFEST})")
    return b"".join(parts) if keep else None


def _json_strict(text: str, where: Path) -> Any:
    def no_constant(name: str):
        raise ValueError(f"{name} is not JSON")

    try:
        return json.loads(text, parse_constant=no_constant)
    except RecursionError:
        raise BundleError(f"{where}: not valid JSON (nested too deeply)") from None
    except ValueError as e:  # JSONDecodeError, NaN/Infinity, an integer of > 4300 digits
        raise BundleError(f"{where}: not valid JSON ({_first_line(e)})") from None


def _check_dims(record: Mapping[str, Any], where: str) -> None:
    try:
        check_dims(record, where)
    except ValueError as e:
        raise BundleError(str(e)) from None


def _check_manifest(m: Any, where: Path) -> dict[str, Any]:
    """Every field a reader uses, with its JSON type: one clear line naming the bad field."""
    if not isinstance(m, dict):
        raise BundleError(f"{where}: not a JSON object")
    for key in ("format_version", "kind", "files", "graphs", "model"):
        if key not in m:
            raise BundleError(f"{where}: lacks {key!r}")
    if m["format_version"] != names.FORMAT_VERSION or isinstance(m["format_version"], bool):
        raise BundleError(f"{where}: format_version {json.dumps(m['format_version'])[:40]}, "
                          f"this rnnkit reads {names.FORMAT_VERSION}")
    if not isinstance(m["kind"], str) or m["kind"] not in names.GRAPHS:
        raise BundleError(f"{where}: unknown kind {str(m['kind'])[:40]!r}; allowed: {', '.join(names.GRAPHS)}")

    def table(key: str, value_ok, what: str) -> dict:
        t = m.get(key)
        if not isinstance(t, dict) or not all(isinstance(k, str) and value_ok(v) for k, v in t.items()):
            raise BundleError(f"{where}: {key!r} must be an object of {what}")
        return t

    files = table("files", lambda v: isinstance(v, str) and _SHA256.match(v), "file name -> sha256 hex")
    if not 0 < len(files) <= MAX_FILES:
        raise BundleError(f"{where}: 'files' lists {len(files)} files (1 to {MAX_FILES} allowed)")
    bad = [n for n in files if not _NAME.match(n) or n == names.MANIFEST]
    if bad:
        raise BundleError(f"{where}: bad file name(s) {[b[:60] for b in bad[:3]]}: plain names inside the bundle only")
    if "sizes" not in m:
        raise BundleError(f"{where}: lacks 'sizes' (every file's exact size)")
    sizes = table("sizes", lambda v: isinstance(v, int) and not isinstance(v, bool) and 0 < v <= MAX_FILE_BYTES,
                  f"file name -> size in bytes (1 to {MAX_FILE_BYTES})")
    if set(sizes) != set(files):
        raise BundleError(f"{where}: 'sizes' and 'files' list different files")
    for key in ("graphs", "fp32_graphs", "ort_graphs"):  # (ort_graphs: what a mobile app loads)
        if key in m or key == "graphs":
            t = table(key, lambda v: isinstance(v, str), "job -> file")
            outside = [f for f in t.values() if f not in files]
            if outside:
                raise BundleError(f"{where}: {key} names {outside[0][:60]!r}, which is not a hashed bundle file")
    model = m["model"]
    if not isinstance(model, dict) or not isinstance(model.get("config"), dict):
        raise BundleError(f"{where}: 'model' must be an object with a 'config' object")
    model_kind = model.get("kind", m["kind"])  # the registry kind: transformer_lm makes an "lm" bundle
    if not isinstance(model_kind, str) or names.bundle_kind(model_kind) != m["kind"]:
        raise BundleError(f"{where}: model kind {str(model.get('kind'))[:40]!r} differs from the bundle's kind")
    _check_dims(model["config"], f"{where}: model config")
    tok = m.get("tokenizer")
    if tok is not None:
        if not (isinstance(tok, dict) and isinstance(tok.get("file"), str) and tok["file"] in files
                and tok.get("sha256") == files[tok["file"]]):
            raise BundleError(f"{where}: 'tokenizer' must be {{file, sha256}} of a hashed bundle file")
    for key, ok in (("precision", lambda v: v in names.PRECISIONS), ("metrics", lambda v: isinstance(v, dict)),
                    ("task", lambda v: isinstance(v, dict)), ("parity", lambda v: isinstance(v, dict)),
                    ("int8", lambda v: isinstance(v, dict))):
        if m.get(key) is not None and not ok(m[key]):
            raise BundleError(f"{where}: {key!r} has the wrong type or value ({str(m[key])[:40]!r})")
    return m


def read_manifest(directory: str | os.PathLike) -> dict[str, Any]:
    """The manifest, parsed as strict JSON (no NaN) and type-checked; raises ``BundleError``."""
    directory = Path(directory)
    if not directory.is_dir():
        raise BundleError(f"{directory}: no such bundle directory")
    path = directory / names.MANIFEST
    if not os.path.lexists(path):
        raise BundleError(f"{path}: missing; {directory} is not an rnnkit bundle")
    fd = _open_regular(path)
    try:
        size = os.fstat(fd).st_size
        if size > MAX_MANIFEST_BYTES:
            raise BundleError(f"{path}: {size} bytes; a manifest is at most {MAX_MANIFEST_BYTES}")
        with os.fdopen(os.dup(fd), "rb") as f:
            raw = f.read(MAX_MANIFEST_BYTES + 1)
    finally:
        os.close(fd)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BundleError(f"{path}: not valid JSON (not UTF-8: {e.reason})") from None
    return _check_manifest(_json_strict(text, path), path)


def verify_files(directory: str | os.PathLike, manifest: Mapping[str, Any],
                 keep: frozenset[str] = frozenset()) -> dict[str, bytes]:
    """Raise ``BundleError`` naming the first missing, linked, resized or altered file.
    Returns the bytes of the files named in ``keep`` (the graphs, scanned next)."""
    directory = Path(directory)
    kept = {}
    for name, digest in manifest["files"].items():
        data = _read_checked(directory / name, manifest["sizes"][name], digest, name in keep)
        if data is not None:
            kept[name] = data
    return kept


def _graph_meta(directory: Path, name: str, data: bytes, manifest: Mapping[str, Any], tok: str | None,
                graph_files: set[str]) -> tuple[dict[str, str], bool]:
    """Scan a graph before onnxruntime sees it: external data must be hashed bundle files, the
    tokenizer hash in its metadata must be the bundle's tokenizer file's, dimensions bounded.
    Returns (metadata_props, whether it reads external data)."""
    from .onnx_scan import ScanError, scan_onnx

    path = directory / name
    if len(data) > MAX_GRAPH_BYTES:
        raise BundleError(f"{path}: larger than a protobuf can be ({len(data)} bytes)")
    try:
        scan = scan_onnx(data)
    except ScanError as e:
        raise BundleError(f"{path}: not a readable ONNX graph ({e})") from None
    files = manifest["files"]
    for tensor, location in scan.external:
        if location not in files or location in graph_files or location == tok:
            raise BundleError(f"{path}: tensor {tensor[:60]!r} reads external data from {location[:80]!r}, which "
                              f"is not a hashed data file of this bundle ({names.MANIFEST} must list it)")
    meta = scan.metadata
    long = [k for k, v in meta.items() if len(v) > MAX_META_CHARS]
    if long:
        raise BundleError(f"{path}: metadata {long[0][:40]!r} is longer than {MAX_META_CHARS} characters")
    if names.META_TOKENIZER_SHA256 not in meta:
        raise BundleError(f"{path}: metadata_props lacks {names.META_TOKENIZER_SHA256!r}; re-export it")
    want = files[tok] if tok else ""
    if meta[names.META_TOKENIZER_SHA256] != want:
        raise BundleError(f"{path}: metadata tokenizer_sha256 {meta[names.META_TOKENIZER_SHA256][:16]!r}... is not "
                          f"the sha256 of the bundle's tokenizer file {tok or '(none)'}: they do not belong together")
    if tok and meta.get(names.META_TOKENIZER_FILE) not in (None, "", tok):
        raise BundleError(f"{path}: metadata tokenizer_file {meta[names.META_TOKENIZER_FILE][:60]!r}, "
                          f"the manifest's tokenizer is {tok}")
    if meta.get(names.META_KIND, manifest["kind"]) != manifest["kind"]:
        raise BundleError(f"{path}: metadata kind {meta[names.META_KIND][:40]!r}, the manifest says {manifest['kind']!r}")
    _check_dims(meta, f"{path}: metadata")
    return meta, bool(scan.external)


def _tokenizer_file(manifest: Mapping[str, Any]) -> str | None:
    """The tokenizer named by the manifest (never found by listing the directory)."""
    if "tokenizer" in manifest:
        rec = manifest["tokenizer"]
        return rec["file"] if rec else None
    # manifests written before the tokenizer record: the one hashed tokenizer file, if any
    listed = [n for n in (*names.TOKENIZER_FILES, *names.VOCAB_FILES) if n in manifest["files"]]
    return listed[0] if listed else None


def open_bundle(directory: str | os.PathLike) -> Bundle:
    """Open a bundle after verifying the manifest, every file's size and sha256, and what each
    graph reads. Raises ``BundleError`` (a ``ValueError``) naming the bad file."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    expected = names.GRAPHS[manifest["kind"]]
    graphs_t = manifest["graphs"]
    fp32_t = manifest["fp32_graphs"] if "fp32_graphs" in manifest else dict(graphs_t)
    lacking = sorted(set(expected) - set(graphs_t))
    if lacking:
        raise BundleError(f"{directory / names.MANIFEST}: a {manifest['kind']} bundle needs graph(s) {lacking}")
    graph_files = set(graphs_t.values()) | set(fp32_t.values())
    data = verify_files(directory, manifest, keep=frozenset(graph_files))
    tok = _tokenizer_file(manifest)
    scanned = {name: _graph_meta(directory, name, data[name], manifest, tok, graph_files)
               for name in sorted(graph_files)}
    meta = {name: m for name, (m, _) in scanned.items()}
    inline = frozenset(name for name, (_, external) in scanned.items() if not external)
    # An int8-only bundle (export --int8-only, for shipping small) has an empty fp32 table.
    return Bundle(directory, manifest, {j: directory / f for j, f in graphs_t.items()},
                  {j: directory / f for j, f in fp32_t.items()}, directory / tok if tok else None, meta,
                  {name: data[name] for name in inline}, inline)
