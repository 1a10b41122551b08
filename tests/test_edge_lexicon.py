"""Words, not fragments: the lexicon the session checks offered words against, the user's own
words, and the probability given what was typed."""

from __future__ import annotations


import pytest

from rnnkit.edge.lexicon import Lexicon, build_lexicon, words_of
from rnnkit.edge.pieces import SentencePieceVocab
from rnnkit.edge.runner import StepRunner
from rnnkit.edge.session import TypingSession, open_session

from test_edge_support import TRAIN_TEXT, tiny_bundle

PREFIXES = ["", "Thank you ", "Thank you f", "I think the m", "The ", "The w", "Please send me the r",
            "x", "qz", "We will meet at the c"]


def test_words_of_and_build_lexicon():
    assert words_of("I'm sure -- don't e-mail me! it's' café's 2nd") == [
        "I'm", "sure", "don't", "e-mail", "me", "it's", "café's", "2nd"]
    assert build_lexicon(["the cat the", "a cat the dog"], min_count=2) == ["the", "cat"]


def test_lexicon_case_folding_and_user_words():
    lex = Lexicon(["thanks", "NASA", "iPhone"], max_user_words=2)
    assert "Thanks" in lex and "THANKS" in lex and "thanks" in lex
    assert "iphone" not in lex and "Nasa" not in lex and "nasa" not in lex
    lex.learn("Grüße from Zürich, Zürich!")
    assert "Zürich" in lex and "Grüße" not in lex and "from" in lex  # bounded: the oldest went first
    assert len(lex.user) == 2


def _session(**kw) -> TypingSession:
    bundle = tiny_bundle("lstm")
    runner = StepRunner(bundle / "step.onnx")
    return TypingSession(runner, SentencePieceVocab(bundle / "tokenizer.model", eos_id=runner.meta.eos_id), **kw)


def test_offered_words_are_known_or_sure_enough(no_prefetch_budget):
    known = set(build_lexicon([TRAIN_TEXT], min_count=1))
    lex = Lexicon(known)
    plain, filtered = _session(), _session(lexicon=lex, oov_min_prob=0.5)
    strict = _session(lexicon=lex, oov_min_prob=1.0)
    for text in PREFIXES:
        got = filtered.suggest(text, 3, phrase=False)
        for s in got:
            assert s.text in lex or s.p_given_typed >= 0.5, (text, s)
        assert all(s.text in lex for s in strict.suggest(text, 3, phrase=False)), text
        # nothing real is lost: the unfiltered suggestions that are words are still offered, in order
        real = [s.text for s in plain.suggest(text, 3, phrase=False) if s.text in lex]
        assert [s.text for s in got][:len(real)] == real, (text, real, got)


def test_lexicon_removes_spelled_junk(no_prefetch_budget):
    """An unfamiliar prefix ("qz") makes the piece search spell strings: none is offered unless
    the model is sure of it."""
    plain = _session()
    lex = Lexicon(build_lexicon([TRAIN_TEXT], min_count=1))
    junk = [s for s in plain.suggest("qz", 3, phrase=False) if s.text not in lex]
    assert junk  # the toy model does spell something after "qz"
    strict = _session(lexicon=lex, oov_min_prob=1.0)
    assert strict.suggest("qz", 3, phrase=False) == []


def test_user_words_are_offered(no_prefetch_budget):
    lex = Lexicon(["the"])
    s = _session(lexicon=lex, oov_min_prob=1.0)
    assert all(x.text == "the" for x in s.suggest("Thank you ", 3, phrase=False))
    lex.learn(TRAIN_TEXT)
    assert {x.text for x in s.suggest("Thank you ", 3, phrase=False)} - {"the"}


def test_p_given_typed(no_prefetch_budget):
    s = _session()
    nxt = s.suggest("Thank you ", 3, phrase=False)
    assert all(x.p_given_typed == pytest.approx(x.prob, rel=1e-6) for x in nxt)  # nothing typed
    comp = s.suggest("Thank you f", 3, phrase=False)
    assert comp and all(x.p_given_typed > x.prob for x in comp)  # renormalised over "f..." words
    assert sum(x.p_given_typed for x in comp) <= 1 + 1e-6
    # the ratio of two completions is the ratio of their probabilities: only the scale changes
    if len(comp) > 1:
        assert comp[0].p_given_typed / comp[1].p_given_typed == pytest.approx(comp[0].prob / comp[1].prob, rel=1e-5)


def test_open_session_reads_a_listed_lexicon(tmp_path, no_prefetch_budget):
    import shutil

    from rnnkit.edge.bundle import open_bundle
    src = tiny_bundle("lstm")
    assert open_session(src).lexicon is None  # no lexicon.txt: every spelled word counts, as before
    bundle = tmp_path / "b"
    shutil.copytree(src, bundle)
    (bundle / "lexicon.txt").write_text("the\ncat\n")  # unlisted: never read
    assert open_session(bundle).lexicon is None
    assert open_bundle(bundle).file_path("lexicon.txt") is None


def test_export_ships_the_runs_lexicon(tmp_path, no_prefetch_budget):
    import shutil

    from rnnkit.edge.lexicon import write_lexicon
    from rnnkit.export.build_bundle import export_bundle
    from test_edge_support import tiny_run
    run = tmp_path / "run"
    shutil.copytree(tiny_run("lstm"), run)
    write_lexicon(run / "lexicon.txt", build_lexicon([TRAIN_TEXT], min_count=2))
    export_bundle(run, tmp_path / "bundle", log=lambda *a: None)
    from rnnkit.edge.bundle import read_manifest
    assert "lexicon.txt" in read_manifest(tmp_path / "bundle")["files"]  # listed, so hashed
    session = open_session(tmp_path / "bundle")
    assert session.lexicon is not None and "Thank" in session.lexicon and "naïve" not in session.lexicon
