"""The demo's models: one bundle directory per tab, each loaded once and shared by all users.

A missing or broken bundle never stops the demo: its slot keeps a friendly message that
the tab shows instead of the model, and using that tab raises ``ModelUnavailable``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

log = logging.getLogger("rnnkit.demo")

# slot -> (bundle directory under models/, what it is, the command that makes it)
BUNDLES: dict[str, tuple[str, str, str]] = {
    "shakespeare": ("char-shakespeare", "Shakespeare (characters)",
                    "rnnkit train --recipe char-shakespeare && rnnkit export runs/char-shakespeare --out models/char-shakespeare"),
    "english": ("suggest-en", "English (subwords)",
                "rnnkit train --recipe suggest-en && rnnkit export runs/suggest-en --out models/suggest-en --int8"),
    "sentiment": ("sentiment-mr", "Movie-review sentiment",
                  "rnnkit train --recipe sentiment-mr && rnnkit export runs/sentiment-mr --out models/sentiment-mr"),
    "translate": ("translate-en-de", "English → German",
                  "rnnkit train --recipe translate-en-de && rnnkit export runs/translate-en-de --out models/translate-en-de"),
}
GENERATORS = ("shakespeare", "english")  # the Generate tab's choices, in this order


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
class Shelf:
    models_dir: Path
    slots: dict[str, Slot] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Slot:
        return self.slots[name]


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def load_slot(name: str, directory: Path, label: str, make: Callable[[Path], Any], how: str) -> Slot:
    """Load one engine; any failure becomes the slot's ``problem`` (logged with its traceback)."""
    from .engines import describe

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


def load_shelf(models_dir: str | Path = "models") -> Shelf:
    """Open every bundle the demo knows under ``models_dir``."""
    from . import engines, suggest

    makers: dict[str, Callable[[Path], Any]] = {
        "shakespeare": engines.TextGenerator,
        "english": engines.TextGenerator,
        "sentiment": engines.SentimentScorer,
        "translate": engines.Translator,
    }
    models_dir = Path(models_dir)
    shelf = Shelf(models_dir)
    for name, (sub, label, how) in BUNDLES.items():
        shelf.slots[name] = load_slot(name, models_dir / sub, label, makers[name], how)
    # The Suggest tab runs the edge runner on the same bundle a device would use.
    sub, _, how = BUNDLES["english"]
    shelf.slots["suggest"] = load_slot("suggest", models_dir / sub, "Live suggestions",
                                       suggest.Suggester, how)
    return shelf
