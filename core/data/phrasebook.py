"""phrasebook_en_de: the everyday English–German pairs of a German course (auf-deutsch, A1–A2).

Stdlib only. auf-deutsch's content (MIT) is modern, everyday and translated sentence by sentence:
phrase packs (a phrase, its examples and variations), dialogues, graded stories and listening
exercises, grouped by situation (the bakery, appointments, the doctor ...). It is the translator's
second everyday test: Ding's examples (everyday_en_de) are written to show one dictionary word
each, these to get a learner through a day.

- Split by unit: a pack with its dialogues (they reuse the pack's phrases), a story, a listening
  exercise, a grammar track. The corpus is small (~2.5 k pairs), so 15 % of the units go to
  valid and 15 % to test, for a few hundred held-out pairs each.
- Held out are sentences only (three words or more on the English side): a gloss such as
  "to cancel" -> "absagen" teaches words in training but makes a poor BLEU reference.
- A held-out pair whose English or German a training pair of this corpus, of everyday_en_de or
  of the Bible has is dropped (it would score recall); a training pair whose English is a line
  of another task's test split (everyday_en, everyday_en_de, the Bible, MR, CoNLL, PTB) goes.
- English glosses lose their notes: "big / tall" keeps "big", "(slightly less direct)" goes.
"""

from __future__ import annotations

import json
import re
import zipfile
from collections import defaultdict
from pathlib import Path

from rnnkit.core.data.corpora import SPLITS, write_lines
from rnnkit.core.data.everyday import _other_test_lines, near_key, split_of
from rnnkit.core.data.textclean import squash_spaces

HELD_OUT = (0.15, 0.15)
_NOTE = re.compile(r"\s*\([^)]*\)\s*$")
_LETTER = re.compile(r"[^\W\d_]")


def _pairs_in(obj, out: list[tuple[str, str]]) -> None:
    """Every object with an English and a German string (``en`` / ``de``), depth first."""
    if isinstance(obj, dict):
        if isinstance(obj.get("en"), str) and isinstance(obj.get("de"), str):
            out.append((obj["en"], obj["de"]))
        for v in obj.values():
            _pairs_in(v, out)
    elif isinstance(obj, list):
        for v in obj:
            _pairs_in(v, out)


def clean_pair(en: str, de: str) -> tuple[str, str] | None:
    """(en, de) as a translation pair, or None: notes and alternatives dropped, quotes straight."""
    en, de = (_NOTE.sub("", squash_spaces(x.replace("\u2019", "'"))).split(" / ")[0].strip() for x in (en, de))
    if not (_LETTER.search(en) and _LETTER.search(de)):  # (squash_spaces made any tab a space)
        return None
    return en, de


def phrasebook_units(wheel: Path) -> dict[str, list[tuple[str, str]]]:
    """Unit key -> its (en, de) pairs in file order. A pack and its dialogues share the pack's key."""
    units: dict[str, list[tuple[str, str]]] = defaultdict(list)
    with zipfile.ZipFile(wheel) as z:
        for name in sorted(n for n in z.namelist() if n.startswith("auf_deutsch/content/") and n.endswith(".json")):
            parts = name.split("/")
            if len(parts) < 4:  # curriculum.json: an index, no sentences
                continue
            doc = json.loads(z.read(name).decode("utf-8"))
            stem = parts[-1][:-len(".json")]
            key = f"pack:{doc['pack_id']}" if isinstance(doc, dict) and doc.get("pack_id") else f"{parts[2]}:{stem}"
            found: list[tuple[str, str]] = []
            _pairs_in(doc, found)
            units[key] += [p for p in (clean_pair(en, de) for en, de in found) if p is not None]
    return dict(units)


def _english_lines(path: Path, tsv: bool) -> set[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return {near_key(line.split("\t", 1)[0] if tsv else line) for line in lines} - {""}


def build_phrasebook_en_de(sources: dict[str, Path], out: Path, scratch: Path) -> dict:
    units = phrasebook_units(sources["auf-deutsch"])
    parts: dict[str, list[tuple[str, str]]] = defaultdict(list)
    seen = set()
    for key in sorted(units):
        split = split_of(key, HELD_OUT)
        for en, de in units[key]:
            if (en, de) not in seen:
                seen.add((en, de))
                parts[split].append((en, de))
    # no training pair repeats another task's test line
    other = _other_test_lines(sources) | _english_lines(sources["everyday_en"] / "test.txt", False) \
        | _english_lines(sources["everyday_en"] / "valid.txt", False) \
        | _english_lines(sources["everyday_en_de"] / "valid.tsv", True)
    before = len(parts["train"])
    parts["train"] = [(en, de) for en, de in parts["train"] if near_key(en) not in other]
    dropped = {"train_other_task_test": before - len(parts["train"])}
    # held out: sentences nobody trained on, in this corpus or beside it in the translator's training
    known_en, known_de = set(), set()
    for en, de in parts["train"]:
        known_en.add(near_key(en))
        known_de.add(near_key(de))
    for name in ("everyday_en_de", "bible_en_de"):
        for line in (sources[name] / "train.tsv").read_text(encoding="utf-8").splitlines():
            en, _, de = line.partition("\t")
            known_en.add(near_key(en))
            known_de.add(near_key(de))
    for split in ("valid", "test"):
        kept = [(en, de) for en, de in parts[split]
                if len(en.split()) >= 3 and near_key(en) not in known_en and near_key(de) not in known_de]
        dropped[f"{split}_not_a_new_sentence"] = len(parts[split]) - len(kept)
        parts[split] = kept
    counts = {s: write_lines(out / f"{s}.tsv", [f"{en}\t{de}" for en, de in parts[s]]) for s in SPLITS}
    return {"pairs": counts, "units": len(units), "dropped": dropped,
            "split": f"by unit (a pack with its dialogues, a story, an exercise), sha256 of key with seed 1337, "
                     f"valid {HELD_OUT[0]:.0%} / test {HELD_OUT[1]:.0%}; held out: sentences of 3+ English words "
                     "that no training pair (this corpus, everyday_en_de, the Bible) has on either side"}


WHY = ("A second everyday test for the translator, and more everyday training pairs: modern A1-A2 German for "
       "a learner's day (shopping, appointments, travel, the doctor), translated sentence by sentence. Ding's "
       "examples (everyday_en_de) each show one dictionary word; these are what people say. Small (about 2.5 k "
       "pairs), so it complements everyday_en_de rather than replacing it. Not taken from the same list of "
       "sources (shared/DATA.md): Wesnoth's dialogue (fantasy, translated loosely, 146 MB a fetch) and GNOME's "
       "help pages (instructions; pages must be aligned block by block).")
