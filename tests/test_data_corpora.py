"""The real corpora (`rnnkit data fetch` first; skipped when the cache lacks them) and the
pure-text normalisers they are made with (always run)."""

import hashlib
import json
import shutil

import pytest

from rnnkit.core import data
from rnnkit.core.data import corpora as C
from rnnkit.core.data.textclean import detokenize, shakespeare_markdown_to_plain

PTB_MD5 = {"train": "f26c4b92c5fdc7b3f8c7cdcb991d8420", "valid": "aa0affc06ff7c36e977d7cd49e3839bf",
           "test": "8b80168b89c18661a38ef683c0dc3721"}


def need(name):
    if not data.is_complete(name):
        pytest.skip(f"corpus {name} not fetched (rnnkit data fetch)")
    return data.corpus_dir(name)


# --- pure text ---------------------------------------------------------------------------------
PLAY_MD = """# Hamlet

## ACT I

### SCENE I. Elsinore.

_FRANCISCO at his post. Enter to him BERNARDO_

**BERNARDO**  
Who's there?

**FRANCISCO**  
Nay, answer me: stand, and unfold yourself.  
_\\[Aside]_  
And either _\\[ ]_  
the devil\\--or not.

_Enter KING CLAUDIUS, QUEEN GERTRUDE,
CORNELIUS, Lords, and Attendants_

More from Francisco.

_\\[To FABIAN]_  
**FABIAN**  
*Sound a horn.*
'By the Lord, madam.'
"""

PLAY_TXT = """BERNARDO:
Who's there?

FRANCISCO:
Nay, answer me: stand, and unfold yourself.
And either
the devil--or not.

FRANCISCO:
More from Francisco.

FABIAN:
'By the Lord, madam.'
"""


def test_shakespeare_markdown_to_tiny_layout():
    assert shakespeare_markdown_to_plain(PLAY_MD) == PLAY_TXT


def test_shakespeare_heading_resets_speaker():
    md = "**A**  \nline one\n\n## ACT II\n\nOrphan verse with no speaker.\n"
    assert shakespeare_markdown_to_plain(md) == "A:\nline one\n"


@pytest.mark.parametrize("tokens, text", [
    (["EU", "rejects", "German", "call", "."], "EU rejects German call."),
    (["He", "said", ",", '"', "no", '"', "."], 'He said, "no".'),
    (["It", "'s", "(", "ok", ")", "at", "$", "5", "!"], "It's (ok) at $5!"),
    (["they", "do", "n't", "care", "--", "100", "%"], "they don't care -- 100%"),
])
def test_detokenize(tokens, text):
    assert detokenize(tokens) == text


def test_seeded_split_is_fixed_and_disjoint():
    items = list(range(1000))
    a, b = C.seeded_split(items, (0.1, 0.05)), C.seeded_split(items, (0.1, 0.05))
    assert a == b
    assert (len(a["train"]), len(a["valid"]), len(a["test"])) == (850, 100, 50)
    assert sorted(a["train"] + a["valid"] + a["test"]) == items
    assert a["valid"] == sorted(a["valid"])  # source order kept inside a split
    assert C.seeded_split(items, (0.1, 0.05), seed=1) != a


# --- the real corpora (need `rnnkit data fetch`) ---------------------------------------------
@pytest.mark.data
def test_ptb_is_exactly_the_mikolov_files():
    d = need("ptb")
    for split, md5 in PTB_MD5.items():
        assert hashlib.md5((d / f"{split}.txt").read_bytes()).hexdigest() == md5, split


@pytest.mark.data
def test_shakespeare_layout_and_play_split():
    d = need("shakespeare")
    text = {s: (d / f"{s}.txt").read_text(encoding="utf-8") for s in C.SPLITS}
    total = sum(map(len, text.values()))
    assert 4_700_000 < total < 4_900_000
    assert 0.03 < len(text["valid"]) / total < 0.08 and 0.03 < len(text["test"]) / total < 0.08
    for split, t in text.items():
        assert not set(t) & set("_*[]#\\"), split  # no markdown or stage-direction marks left
        for speech in t.strip("\n").split("\n\n"):
            speaker, *verse = speech.split("\n")
            assert speaker.endswith(":") and verse, speech[:80]
    assert "To be, or not to be" in text["test"]       # Hamlet is held out
    assert "To be, or not to be" not in text["train"]
    assert "Full fathom five" in text["valid"]         # The Tempest


@pytest.mark.data
def test_mr_scores_and_split():
    need("mr")
    rows = {s: data.load_sentiment(s) for s in ("train", "valid", "test")}
    assert [len(rows[s]) for s in ("train", "valid", "test")] == [8485, 1060, 1060]
    scores = [x for r in rows.values() for x, _ in r]
    assert min(scores) >= -1 and max(scores) <= 1
    assert sum(1 for x in scores if x > 0) == 5242 and sum(1 for x in scores if x < 0) == 5326
    texts = [t for s in ("train", "valid", "test") for _, t in rows[s]]
    assert len(set(texts)) > 10_500
    assert len(data.load_sentiment("vader_all")) == 4200 + 3708 + 5190


@pytest.mark.data
def test_bible_pairs_and_held_out_verses():
    need("bible_en_de")
    pairs = {s: data.load_parallel(s) for s in ("train", "valid", "test")}
    # 1,000 verses each held out, less those repeating a verse before them (builder v2)
    assert [len(pairs[s]) for s in ("train", "valid", "test")] == [29102, 983, 979]
    train_en, train_de = {en for en, _ in pairs["train"]}, {de for _, de in pairs["train"]}
    assert not any(en in train_en or de in train_de for s in ("valid", "test") for en, de in pairs[s])
    assert pairs["train"][0] == ("In the beginning God created the heavens and the earth.",
                                 "Im Anfang schuf Gott die Himmel und die Erde.")
    assert not any("`" in en for s in pairs for en, _ in pairs[s])  # God`s -> God's
    assert not any(de.endswith(" -") for s in pairs for _, de in pairs[s])


@pytest.mark.data
def test_conll_official_splits():
    need("conll2003")
    counts = [len(data.load_conll(s)) for s in ("train", "valid", "test")]
    assert counts == [14041, 3250, 3453]
    tokens, tags = data.load_conll("train")[0]
    assert tokens[:3] == ["EU", "rejects", "German"] and tags[:3] == ["B-ORG", "O", "B-MISC"]


@pytest.mark.data
def test_suggest_en_split_is_disjoint_and_excludes_translation_test():
    d = need("suggest_en")
    lines = {s: data.load_lines("suggest_en", s) for s in ("train", "valid", "test")}
    sets = {s: set(v) for s, v in lines.items()}
    assert all(len(sets[s]) == len(lines[s]) for s in lines)  # deduplicated
    assert not (sets["train"] & sets["valid"]) and not (sets["train"] & sets["test"])
    assert 0.02 < len(lines["valid"]) / sum(map(len, lines.values())) < 0.03
    bible_test = {en for en, _ in data.load_parallel("test")}
    bible_train = {en for en, _ in data.load_parallel("train")}
    assert not (bible_test - bible_train) & (sets["train"] | sets["valid"] | sets["test"])
    assert 'EU rejects German call to boycott British lamb.' in sets["train"] | sets["valid"] | sets["test"]
    every = sets["train"] | sets["valid"] | sets["test"]
    conll = {s: {detokenize(toks) for toks, _ in data.load_conll(s)} for s in ("train", "valid", "test")}
    mr = {s: {t.replace("''", '"') for _, t in data.load_sentiment(s)} for s in ("train", "valid", "test")}
    # no other task's test text (a line such as "!" that their train splits also hold is not test text)
    assert not every & (conll["test"] - conll["train"] - conll["valid"])
    assert not every & (mr["test"] - mr["train"] - mr["valid"])
    assert (d / "meta.json").is_file()


def test_an_older_build_of_a_corpus_counts_as_missing(tmp_path, monkeypatch):
    """A corpus whose builder changed (Corpus.version) is rebuilt by `rnnkit data fetch`."""
    from rnnkit.core.data import fetcher

    monkeypatch.setenv("RNNKIT_DATA", str(tmp_path))
    d = tmp_path / "corpora" / "suggest_en"
    d.mkdir(parents=True)
    (d / fetcher.COMPLETE).write_text("")
    (d / "meta.json").write_text('{"name": "suggest_en"}')  # built before versions existed: 1
    assert fetcher.CORPORA["suggest_en"].version >= 2 and not data.is_complete("suggest_en")
    with pytest.raises(data.CorpusMissingError, match="older copy"):
        data.corpus_dir("suggest_en")
    needs = {n: fetcher.CORPORA[n].version for n in fetcher.CORPORA["suggest_en"].needs}
    meta = {"name": "suggest_en", "builder_version": fetcher.CORPORA["suggest_en"].version, "needs_versions": needs}
    (d / "meta.json").write_text(json.dumps(meta))
    assert data.is_complete("suggest_en")
    # built from an older copy of a corpus it derives from (bible_en_de v1, with repeated verses in
    # test): missing too, so fetch rebuilds it from the new input
    (d / "meta.json").write_text(json.dumps({**meta, "needs_versions": {**needs, "bible_en_de": 1}}))
    assert fetcher.CORPORA["bible_en_de"].version >= 2 and not data.is_complete("suggest_en")
    (d / "meta.json").write_text(json.dumps({k: v for k, v in meta.items() if k != "needs_versions"}))
    assert not data.is_complete("suggest_en")  # a copy from before the record: its inputs count as v1
    assert data.is_complete("ptb") is False  # not there at all


@pytest.mark.data
def test_timeseries():
    need("timeseries")
    air, co2 = data.load_series("airline"), data.load_series("co2")
    assert len(air.values) == 144 and air.values[0] == 112 and air.times[0] == "1949-01-01"
    assert len(co2.values) == 2284 and len(co2.missing_lines) == 59
    assert not any(v != v for v in co2.values)  # gaps interpolated


@pytest.mark.data
@pytest.mark.slow
def test_rebuild_from_cached_downloads_is_identical(tmp_path, monkeypatch):
    """Fixed splits: rebuilding from the same pinned files gives byte-identical corpora."""
    root = data.data_root()
    if not all(data.is_complete(n) for n in data.CORPORA):
        pytest.skip("corpora not fetched")
    shutil.copytree(root / "downloads", tmp_path / "downloads")
    monkeypatch.setenv("RNNKIT_DATA", str(tmp_path))
    monkeypatch.setattr(data.fetcher, "DOWNLOADER", lambda *a: pytest.fail("must not download"))
    data.fetch(progress=False)
    for name in data.CORPORA:
        files = lambda base: sorted(p.relative_to(base) for p in base.rglob("*") if p.is_file())  # noqa: E731
        old, rebuilt = root / "corpora" / name, tmp_path / "corpora" / name
        assert files(rebuilt) == files(old), name  # the same files (a corpus may have sub-folders)
        for rel in files(old):
            if rel.name != "meta.json":  # meta records the build time
                assert (rebuilt / rel).read_bytes() == (old / rel).read_bytes(), (name, str(rel))
