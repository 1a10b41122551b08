"""phrasebook_en_de (core/data/phrasebook.py): auf-deutsch's course sentences, split by unit."""

import io
import json
import zipfile

import pytest

from rnnkit.core import data
from rnnkit.core.data import everyday as E
from rnnkit.core.data import fetcher
from rnnkit.core.data import phrasebook as P


def test_clean_pair_drops_notes_alternatives_and_empty_sides():
    assert P.clean_pair("big / tall", "groß") == ("big", "groß")
    assert P.clean_pair("How is that spelled? (slightly less direct)", "Wie schreibt sich das?") == \
        ("How is that spelled?", "Wie schreibt sich das?")
    assert P.clean_pair("It\u2019s  late.", "Es ist spät.") == ("It's late.", "Es ist spät.")
    assert P.clean_pair("...", "Ich hätte gern") is None
    assert P.clean_pair("a\tb", "c") == ("a b", "c")  # a tab would split the TSV line


def _wheel(tmp_path, files: dict[str, object]):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, doc in files.items():
            z.writestr(f"auf_deutsch/content/{name}", json.dumps(doc))
    path = tmp_path / "auf_deutsch-0.1.1-py3-none-any.whl"
    path.write_bytes(buf.getvalue())
    return path


def test_a_pack_and_its_dialogues_are_one_unit(tmp_path):
    """A dialogue reuses its pack's phrases: both go to one split, keyed by the pack; a story is a unit
    of its own; the curriculum index holds no sentences."""
    wheel = _wheel(tmp_path, {
        "curriculum.json": {"levels": [{"title": "A1", "en": "x", "de": "y"}]},
        "packs/bakery.json": {"pack_id": "bakery", "phrases": [
            {"de": "ein Brot", "en": "a loaf", "examples": [{"de": "Ich hätte gern ein Brot.", "en": "I'd like a loaf."}]}]},
        "dialogues/bakery_d1.json": {"pack_id": "bakery", "lines": [
            {"speaker": "A", "de": "Guten Morgen!", "en": "Good morning!"}]},
        "stories/am_bahnhof.json": {"story_id": "am_bahnhof", "pack_ids": ["transport"], "paragraphs": [
            {"de": "Anna ist am Bahnhof.", "en": "Anna is at the station."}]},
    })
    units = P.phrasebook_units(wheel)
    assert units == {"pack:bakery": [("Good morning!", "Guten Morgen!"), ("a loaf", "ein Brot"),
                                     ("I'd like a loaf.", "Ich hätte gern ein Brot.")],
                     "stories:am_bahnhof": [("Anna is at the station.", "Anna ist am Bahnhof.")]}


def test_auf_deutsch_is_pinned():
    pin = fetcher.load_pins()["auf-deutsch"]
    assert pin["version"] == "0.1.1" and len(pin["sha256"]) == 64 and pin["licence"] == "MIT"
    assert fetcher.CORPORA["phrasebook_en_de"].packages == ("auf-deutsch",)


@pytest.mark.data
def test_phrasebook_held_out_pairs_are_new_sentences():
    if not data.is_complete("phrasebook_en_de"):
        pytest.skip("corpus phrasebook_en_de not fetched (rnnkit data fetch)")
    d = data.corpus_dir("phrasebook_en_de")
    pairs = {s: [l.split("\t") for l in (d / f"{s}.tsv").read_text("utf-8").splitlines()]
             for s in ("train", "valid", "test")}
    assert len(pairs["train"]) > 1000 and min(len(pairs["valid"]), len(pairs["test"])) > 150
    known_en, known_de = set(), set()
    for name, split in (("phrasebook_en_de", "train"), ("everyday_en_de", "train"), ("bible_en_de", "train")):
        for line in (data.corpus_dir(name) / f"{split}.tsv").read_text("utf-8").splitlines():
            en, de = line.split("\t")
            known_en.add(E.near_key(en))
            known_de.add(E.near_key(de))
    for split in ("valid", "test"):
        for en, de in pairs[split]:
            assert len(en.split()) >= 3 and E.near_key(en) not in known_en and E.near_key(de) not in known_de, (en, de)
    other = E._other_test_lines({n: data.corpus_dir(n) for n in ("mr", "bible_en_de", "conll2003", "ptb",
                                                                  "everyday_en_de")})
    other |= {E.near_key(l) for l in (data.corpus_dir("everyday_en") / "test.txt").read_text("utf-8").splitlines()}
    assert not {E.near_key(en) for en, _ in pairs["train"]} & other
