"""The demo's models: every bundle found by its manifest's kind, loaded once and shared by all users.

``load_shelf(models_dir)`` reads ``manifest.json`` of each subfolder (and of ``models_dir`` itself)
and puts each bundle in the tabs of its kind; ``load_shelf(bundles=[...])`` opens exactly the
bundles given. Each tab lists its bundles in a picker; the shipped bundle's folder name is its
default. Loading verifies each bundle (``edge.bundle.open_bundle``, through the engine).

A missing or broken bundle never stops the demo: its slot keeps a friendly message that the
tab shows instead of the model, and using it raises ``ModelUnavailable``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

log = logging.getLogger("rnnkit.demo")

# tab -> (kind, what it shows, the command that makes its shipped bundle, that bundle's folder)
TABS: dict[str, tuple[str, str, str, str]] = {
    "generate": ("lm", "Text generation", "rnnkit train --recipe char-shakespeare && rnnkit export "
                 "runs/char-shakespeare --out models/char-shakespeare", "char-shakespeare"),
    "translate": ("seq2seq", "English → German", "rnnkit train --recipe translate-en-de && rnnkit export "
                  "runs/translate-en-de --out models/translate-en-de", "translate-en-de"),
    "sentiment": ("classifier", "Movie-review sentiment", "rnnkit train --recipe sentiment-mr && rnnkit export "
                  "runs/sentiment-mr --out models/sentiment-mr", "sentiment-mr"),
    "suggest": ("lm", "Live suggestions", "rnnkit train --recipe suggest-en && rnnkit export runs/suggest-en "
                "--out models/suggest-en --int8", "suggest-en"),
    "entities": ("tagger", "Named entities", "rnnkit train --recipe ner-conll && rnnkit export runs/ner-conll "
                 "--out models/ner-conll --int8", "ner-conll"),
    "forecast": ("forecaster", "Forecasting", "rnnkit train --recipe timeseries && rnnkit export runs/timeseries "
                 "--out models/timeseries --int8", "timeseries"),
}
# Friendly names of the shipped bundles (others are shown by their folder name).
LABELS = {"char-shakespeare": "Shakespeare (characters)", "suggest-en": "English (subwords)",
          "char-shakespeare-gpt": "Shakespeare (characters, Transformer)",
          "sentiment-mr": "Movie reviews (sentiment-mr)", "translate-en-de": "English → German (translate-en-de)",
          "ner-conll": "CoNLL-2003 English (ner-conll)", "timeseries": "Airline + CO₂ (timeseries)"}
LEGACY = {"shakespeare": ("generate", "char-shakespeare"), "english": ("generate", "suggest-en")}
MAX_BUNDLES = 32  # bundles one demo opens (each costs its graphs' memory)


class ModelUnavailable(RuntimeError):
    """A tab whose bundle could not be loaded; the message says why and how to make it."""


@dataclass
class Slot:
    name: str
    directory: Path
    label: str
    engine: Any = None
    problem: str = ""      # why ``engine`` is None, written for the user
    info: str = ""         # one line about the loaded model

    def get(self) -> Any:
        if self.engine is None:
            raise ModelUnavailable(self.problem)
        return self.engine

    def status_markdown(self) -> str:
        if self.engine is not None:
            return f"**Model:** `{self.directory.name}` — {self.info}"
        return f"**{self.label} is not available.** {self.problem}"


@dataclass
class Tab:
    name: str
    kind: str
    placeholder: Slot                                   # shown when the tab has no bundle
    choices: dict[str, Slot] = field(default_factory=dict)  # label -> slot, in picker order
    default: Optional[str] = None

    def slot(self, label: Optional[str] = None) -> Slot:
        """The chosen bundle (the default for None); an unknown label is a user mistake."""
        if label is None or label == "":
            return self.choices[self.default] if self.default else self.placeholder
        if label not in self.choices:
            from .validation import InputError

            shown = ", ".join(self.choices) or "none"
            raise InputError(f"unknown model {str(label)[:60]!r}; choose one of: {shown}")
        return self.choices[label]

    def by_folder(self, folder: str) -> Optional[Slot]:
        return next((s for s in self.choices.values() if s.directory.name == folder), None)

    def status_markdown(self, label: Optional[str] = None) -> str:
        text = self.slot(label).status_markdown()
        broken = [s for s in self.choices.values() if s.engine is None and s.label != (label or self.default)]
        return text + "".join(f"  \n<small>`{s.directory.name}` is not available: {s.problem}</small>" for s in broken)


@dataclass
class Shelf:
    models_dir: Path
    tabs: dict[str, Tab] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)  # folders that are not usable bundles, with why

    def __getitem__(self, name: str) -> Slot:
        if name in LEGACY:
            tab, folder = LEGACY[name]
            return self.tabs[tab].by_folder(folder) or self.tabs[tab].slot()
        return self.tabs[name].slot()

    @property
    def slots(self) -> dict[str, Slot]:
        """Every bundle slot (not the empty tabs' placeholders), keyed ``tab/label``."""
        return {f"{t.name}/{label}": s for t in self.tabs.values() for label, s in t.choices.items()}


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def load_slot(name: str, directory: Path, label: str, make: Callable[[Path], Any], how: str) -> Slot:
    """Load one engine; any failure becomes the slot's ``problem`` (logged with its traceback)."""
    from rnnkit.edge.predict import describe

    slot = Slot(name, directory, label)
    if not directory.is_dir():
        slot.problem = f"No bundle at `{directory}`. Make one with `{how}`."
        return slot
    try:
        slot.engine = make(directory)
        bundle = getattr(slot.engine, "bundle", None)
        slot.info = describe(bundle) if bundle is not None else ""
    except Exception as e:  # any broken bundle: the demo must still start
        log.warning("could not load %s from %s", name, directory, exc_info=True)
        slot.problem = f"The bundle at `{directory}` could not be loaded: {_first_line(e)}"
    return slot


@dataclass
class Found:
    path: Path
    kind: str
    tokenizer: str  # the manifest's tokenizer file name ("" if none)


def find_bundles(paths: Iterable[Path], skipped: list[str]) -> list[Found]:
    """The bundles among ``paths`` by their manifest (strictly read); others go to ``skipped``."""
    from rnnkit.edge.bundle import read_manifest

    found = []
    for path in paths:
        try:
            m = read_manifest(path)
        except ValueError as e:
            skipped.append(f"`{path.name}`: {_first_line(e)}")
            continue
        tok = m.get("tokenizer") or {}
        found.append(Found(path, m["kind"], str(tok.get("file", "")) if isinstance(tok, dict) else ""))
    if len(found) > MAX_BUNDLES:
        skipped.append(f"{len(found) - MAX_BUNDLES} bundle(s) beyond the first {MAX_BUNDLES}")
        found = found[:MAX_BUNDLES]
    return found


def candidate_dirs(models_dir: Path) -> list[Path]:
    """``models_dir`` itself if it is a bundle, else its subfolders holding a manifest.json."""
    if (models_dir / "manifest.json").exists():
        return [models_dir]
    subs = sorted(p for p in models_dir.iterdir() if p.is_dir() and not p.name.startswith(".")) \
        if models_dir.is_dir() else []
    return [p for p in subs if (p / "manifest.json").exists()]


def _labels(found: list[Found]) -> dict[Path, str]:
    """Unique picker labels: the friendly name of a shipped folder, else the folder name."""
    out: dict[Path, str] = {}
    for f in found:
        label = LABELS.get(f.path.name, f.path.name)
        if label in out.values():
            label = f"{f.path.name} ({f.path.parent.name or f.path.parent})"
        n = 2
        while label in out.values():
            label, n = f"{f.path.name} ({n})", n + 1
        out[f.path] = label
    return out


def _makers() -> dict[str, Callable[[Path], Any]]:
    from rnnkit.edge.predict_series import SeriesForecaster
    from rnnkit.edge.predict_tag import EntityTagger
    from rnnkit.edge.predict_text import SentimentScorer, TextGenerator, Translator

    from .suggest import Suggester

    return {"generate": TextGenerator, "translate": Translator, "sentiment": SentimentScorer, "suggest": Suggester,
            "entities": EntityTagger, "forecast": SeriesForecaster}


def _fits(tab: str, f: Found) -> bool:
    # The Suggest tab runs the edge runner over subword pieces: SentencePiece language models only.
    return f.kind == TABS[tab][0] and (tab != "suggest" or f.tokenizer.endswith(".model"))


def load_shelf(models_dir: str | Path = "models", bundles: Optional[Iterable[str | Path]] = None) -> Shelf:
    """Open every bundle under ``models_dir`` (or exactly ``bundles``) and sort them into tabs."""
    models_dir = Path(models_dir)
    shelf = Shelf(models_dir)
    paths = [Path(b) for b in bundles] if bundles is not None else candidate_dirs(models_dir)
    found = find_bundles(paths, shelf.skipped)
    labels, makers = _labels(found), _makers()
    where = ", ".join(f"`{p}`" for p in paths) if bundles is not None else f"`{models_dir}`"
    for name, (kind, title, how, shipped) in TABS.items():
        what = "a SentencePiece language model" if name == "suggest" else f"kind `{kind}`"
        placeholder = Slot(name, models_dir / shipped, title,
                           problem=f"No bundle at {where} is {what}. Make one with `{how}`.")
        tab = shelf.tabs[name] = Tab(name, kind, placeholder)
        for f in (f for f in found if _fits(name, f)):
            tab.choices[labels[f.path]] = load_slot(name, f.path, labels[f.path], makers[name], how)
        loaded = [lab for lab, s in tab.choices.items() if s.engine is not None]
        preferred = [lab for lab in loaded if tab.choices[lab].directory.name == shipped]
        tab.default = (preferred or loaded or list(tab.choices) or [None])[0]
    for line in shelf.skipped:
        log.warning("not a usable bundle: %s", line)
    return shelf
