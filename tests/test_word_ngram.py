"""The suggester's background word n-gram: the stored back-off form gives Kneser-Ney's
probabilities, pruning keeps what it says, candidates are the exact top n, the session mixes it in."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rnnkit.core.text.kneser_ney import BOS, EOS, KneserNeyTrigram
from rnnkit.core.text.word_ngram import build_word_ngram, word_trigrams, write_word_ngram
from rnnkit.edge.adapt import LINE_START
from rnnkit.edge.word_ngram import FILE_NAME, LP_STEP, WordNgram

from test_edge_support import TRAIN_TEXT

LINES = TRAIN_TEXT.splitlines() + ["see you tomorrow", "see you soon", "see you tomorrow then",
                                   "Thank you so much", "Please call me tomorrow"]
# one byte a probability: within half a step of its log
TOL = LP_STEP / 2 + 1e-6


@pytest.fixture(scope="module")
def kn():
    return KneserNeyTrigram(word_trigrams(LINES))


@pytest.fixture(scope="module")
def full():
    return WordNgram(build_word_ngram(LINES, 1, 1, 1))


def _words(ng: WordNgram) -> list[str]:
    return ng.words[2:]


CONTEXTS = [(), (LINE_START,), (LINE_START, "Thank"), ("see", "you"), ("the",), ("on", "the"),
            ("zebra", "the"), ("the", "zebra"), ("Please", "call")]


def _kn_context(prev):
    h = [BOS, BOS] + [BOS if w == LINE_START else w for w in prev]
    return h[-2], h[-1]


@pytest.mark.parametrize("prev", CONTEXTS)
def test_unpruned_probabilities_are_kneser_ney(kn, full, prev):
    """Kept whole, every P(w | u v) is the interpolated Kneser-Ney trigram's (to a byte's
    rounding of the log), and over the words and the end of a message they sum to one."""
    u, v = _kn_context(prev)
    u, v = kn._map(u) if u != BOS else u, kn._map(v) if v != BOS else v
    total = kn.p3(EOS, u, v) + sum(full.prob(w, prev) for w in _words(full))
    floor = math.exp(-255 * LP_STEP)  # the smallest probability a byte holds
    for w in _words(full):
        want = kn.p3(w, u, v)
        if want > 2 * floor:  # (a product of rounded factors: three roundings at most)
            assert abs(math.log(full.prob(w, prev)) - math.log(want)) <= 3 * TOL, (w, prev)
        else:
            assert full.prob(w, prev) <= 2 * floor
    # <unk> keeps a little mass (a word never seen); the rounding moves each term by < 3 %
    assert total == pytest.approx(1.0 - kn.p3("<unk>", u, v), rel=0.04)


def test_pruning_keeps_the_kept_and_backs_off_the_rest(kn, full):
    pruned = WordNgram(build_word_ngram(LINES, 1, 2, 2))
    assert len(pruned.tri_w) < len(full.tri_w) and len(pruned.bi_w) < len(full.bi_w)
    prev = ("see", "you")  # "see you tomorrow" twice: kept; "see you soon" once: pruned
    assert pruned.prob("tomorrow", prev) == pytest.approx(full.prob("tomorrow", prev))
    assert pruned.prob("soon", prev) < full.prob("soon", prev)
    i, _, _ = pruned._tri_slice(*pruned._context(prev))
    assert pruned.prob("soon", prev) == pytest.approx(pruned.ctx_gamma[i] * pruned._p2(pruned.ids["soon"], pruned.ids["you"]))
    # words seen fewer than min_word_count times are left out whole
    rare = WordNgram(build_word_ngram(LINES, 4, 1, 1))
    assert "zebra" not in rare.ids and "soon" not in rare.ids and "the" in rare.ids
    assert rare.prob("soon", prev) == 0.0
    assert "the" in rare and "soon" not in rare and BOS not in rare and EOS not in rare  # words only


@pytest.mark.parametrize("prefix", ["", "t", "th", "the", "mee", "x", "Th", "café"])
@pytest.mark.parametrize("prev", CONTEXTS[:6])
def test_candidates_are_the_exact_top_n(full, prefix, prev):
    got = full.candidates(prefix, prev, 4)
    pool = [w for w in _words(full) if w.startswith(prefix) and w != prefix]
    best = sorted(pool, key=lambda w: -full.prob(w, prev))[:4]
    assert len(got) == len(best) and set(got) <= set(pool)
    assert [full.prob(w, prev) for w in got] == pytest.approx([full.prob(w, prev) for w in best], rel=1e-9)
    assert EOS not in got and BOS not in got


def test_what_follows_is_learned(full):
    assert full.candidates("", ("see", "you"), 1) == ["tomorrow"]
    assert full.candidates("", (LINE_START, "Thank"), 1) == ["you"]
    assert full.candidates("s", ("see", "you"), 1) == ["soon"]


def test_mix_and_file_round_trip(tmp_path, full):
    path = write_word_ngram(tmp_path / FILE_NAME, build_word_ngram(LINES, 1, 1, 1))
    ng = WordNgram.load(path, lam=0.25)
    p = ng.prob("tomorrow", ("see", "you"))
    assert p == full.prob("tomorrow", ("see", "you")) > 0.3
    assert ng.mix(math.log(0.1), "tomorrow", ("see", "you")) == pytest.approx(math.log(0.75 * 0.1 + 0.25 * p))
    assert ng.mix(-math.inf, "qqq", ("see", "you")) == -math.inf


def test_bad_files_are_named(tmp_path):
    bad = tmp_path / FILE_NAME
    bad.write_bytes(b"not an npz")
    with pytest.raises(ValueError, match="not a readable word n-gram file"):
        WordNgram.load(bad)
    arrays = build_word_ngram(LINES, 1, 1, 1)
    np.savez(bad, **{k: v for k, v in arrays.items() if k != "tri_p"})
    with pytest.raises(ValueError, match="missing tri_p"):
        WordNgram.load(bad)
    arrays["tri_n"] = arrays["tri_n"][:-1]
    np.savez(bad, **arrays)
    with pytest.raises(ValueError, match="do not fit together"):
        WordNgram.load(bad)
    with pytest.raises(ValueError, match="no words"):
        build_word_ngram(["...", "!!"])
    with pytest.raises(ValueError, match="lam"):
        WordNgram(build_word_ngram(LINES), lam=1.0)


def test_the_session_mixes_it_in():
    """The tiny LM never read "see you tomorrow"; with the n-gram that did, it is offered."""
    from rnnkit.edge.session import open_session

    from test_edge_support import tiny_bundle

    plain = open_session(tiny_bundle())
    before = [s.text for s in plain.suggest("I will see you ")]
    ng = WordNgram(build_word_ngram(LINES + ["see you tomorrow"] * 5, 1, 1, 1), lam=0.5)
    mixed = open_session(tiny_bundle(), ngram=ng)
    after = [s.text for s in mixed.suggest("I will see you ")]
    assert "tomorrow" not in before and after[0] == "tomorrow"
    assert [s.text for s in mixed.suggest("I will see you tom")][:1] == ["tomorrow"]
    ng.lam = 0.0  # off: the model's own suggestions
    assert [s.text for s in mixed.suggest("I will see you ")] == before


def test_export_ships_it_and_the_session_loads_it(tmp_path):
    import shutil

    from rnnkit.edge.bundle import open_bundle
    from rnnkit.edge.session import open_session
    from rnnkit.export.build_bundle import export_bundle

    from test_edge_support import tiny_run

    run = tmp_path / "run"
    shutil.copytree(tiny_run(), run)
    write_word_ngram(run / FILE_NAME, build_word_ngram(LINES, 1, 1, 1))
    export_bundle(run, tmp_path / "bundle", log=lambda *a: None)
    assert FILE_NAME in open_bundle(tmp_path / "bundle").manifest["files"]
    s = open_session(tmp_path / "bundle")
    assert isinstance(s.ngram, WordNgram) and s.ngram.prob("tomorrow", ("see", "you")) > 0


def test_cli_ngram_weight(tmp_path, monkeypatch, capsys):
    """`--ngram-weight 0` runs the model alone; a weight outside [0, 1) is a clear error."""
    import io
    import shutil

    from rnnkit.cli import main
    from rnnkit.export.build_bundle import export_bundle

    from test_edge_support import tiny_run

    run = tmp_path / "run"
    shutil.copytree(tiny_run(), run)
    write_word_ngram(run / FILE_NAME, build_word_ngram(LINES + ["see you tomorrow"] * 5, 1, 1, 1))
    export_bundle(run, tmp_path / "bundle", log=lambda *a: None)
    answers = {}
    for w in ("0.5", "0"):
        monkeypatch.setattr("sys.stdin", io.StringIO("I will see you \n"))
        assert main(["suggest", str(tmp_path / "bundle"), "--ngram-weight", w]) == 0
        answers[w] = capsys.readouterr().out
    assert ": tomorrow" in answers["0.5"] and "tomorrow" not in answers["0"]
    assert main(["suggest", str(tmp_path / "bundle"), "--ngram-weight", "1.5"]) != 0
    assert "--ngram-weight must be in [0, 1)" in capsys.readouterr().err


def test_candidates_of_a_wide_prefix_come_from_the_global_order():
    """Over 4,096 words in the prefix's range: the unigram's best are found in its global order
    (not a scan of the range), still exactly the top n."""
    rng = np.random.default_rng(0)
    lines = [f"see you w{int(i):05d}" for i in rng.integers(0, 6000, 20000)] + [f"w{i:05d} then" for i in range(6000)]
    ng = WordNgram(build_word_ngram(lines + LINES, 1, 1, 1))
    assert ng.V > 6000
    for prefix in ("", "w", "w0"):
        for prev in ((), ("see", "you"), ("you",), ("zebra", "w00012"), (LINE_START,)):
            got = ng.candidates(prefix, prev, 5)
            pool = [w for w in ng.words[2:] if w.startswith(prefix) and w != prefix]
            best = sorted(pool, key=lambda w: -ng.prob(w, prev))[:5]
            assert [ng.prob(w, prev) for w in got] == pytest.approx([ng.prob(w, prev) for w in best], rel=1e-9), \
                (prefix, prev)


def test_skipping_hopeless_candidates_changes_no_suggestion(monkeypatch):
    """The session scores an n-gram or user-cache candidate with the model only if it could reach
    the words offered; on these texts that scores fewer words and offers the same ones."""
    from rnnkit.edge.adapt import UserCache
    from rnnkit.edge.session import TypingSession, open_session

    from test_edge_support import tiny_bundle

    texts = [t[:n] for t in ("I will see you tomorrow then", "Thank you for the lovely tea",
                             "Please call me when the garden is nice") for n in range(len(t) + 1)]

    scored = []
    word_logps = TypingSession._word_logps
    monkeypatch.setattr(TypingSession, "_word_logps", lambda self, rows, words: (
        scored.append(len(words)), word_logps(self, rows, words))[1])

    def typed(session):
        scored.clear()
        return [[x.text for x in session.suggest(t, 3, phrase=False)] for t in texts], sum(scored)

    def fresh():
        ng = WordNgram(build_word_ngram(LINES + ["see you tomorrow"] * 3, 1, 1, 1), lam=0.3)
        return open_session(tiny_bundle(), ngram=ng, user=UserCache(lam=0.3))

    bounded, calls = typed(fresh())
    adapt = TypingSession._adapt
    monkeypatch.setattr(TypingSession, "_adapt", lambda self, rows, t, hits, prev=(), keep=0, sources=None:
                        adapt(self, rows, t, hits, prev, 0, sources))
    every, calls_every = typed(fresh())
    assert bounded == every and calls < calls_every


def test_one_ngram_serves_many_threads():
    """The demo shares one n-gram among its users' sessions: answers from threads asking about
    different contexts at once are the answers each gets alone."""
    import threading

    ng = WordNgram(build_word_ngram(LINES, 1, 1, 1))
    asks = [(p, prev) for p in ("", "t", "s", "th") for prev in CONTEXTS]
    alone = {i: (ng.candidates(p, prev, 3), ng.prob("the", prev)) for i, (p, prev) in enumerate(asks)}
    got, errors = {}, []

    def worker(offset):
        try:
            for _ in range(20):
                for i in range(offset, len(asks), 2):
                    p, prev = asks[i]
                    got[i] = (ng.candidates(p, prev, 3), ng.prob("the", prev))
                    assert got[i] == alone[i], asks[i]
        except AssertionError as e:
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(k % 2,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and got == alone


def test_the_demo_sessions_share_the_bundles_lexicon_and_ngram(tmp_path):
    import shutil

    from rnnkit.demo.suggest import Suggester
    from rnnkit.edge.lexicon import FILE_NAME as LEXICON_FILE, build_lexicon, write_lexicon
    from rnnkit.export.build_bundle import export_bundle

    from test_edge_support import tiny_run

    run = tmp_path / "run"
    shutil.copytree(tiny_run(), run)
    write_word_ngram(run / FILE_NAME, build_word_ngram(LINES, 1, 1, 1))
    write_lexicon(run / LEXICON_FILE, build_lexicon(LINES, min_count=1))
    export_bundle(run, tmp_path / "bundle", log=lambda *a: None)
    sug = Suggester(tmp_path / "bundle")
    a, b = sug.new_typing().session, sug.new_typing().session
    assert isinstance(a.ngram, WordNgram) and a.ngram is b.ngram and a.lexicon is b.lexicon is not None
    out = sug.suggest(sug.new_typing(), "I will see you ", 3)
    assert out and all(r["text"] in a.lexicon or r["p_given_typed"] >= a.oov_min_prob for r in out)
