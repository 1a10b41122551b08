"""The model learns its user: the decayed user n-gram cache, counted by hand, and the session
and CLI around it."""

from __future__ import annotations

import io
import json
import math

import pytest

from rnnkit.cli import main
from rnnkit.edge.adapt import FILE_NAME, LINE_START, NewChunks, UserCache, committed_text, forget
from rnnkit.edge.session import open_session

from test_edge_support import tiny_bundle


def test_counts_by_hand_and_edits_are_not_repeats():
    c = UserCache(decay=1.0)
    c.observe("hello world hello wor")  # "wor" is still being typed: not counted
    assert dict(c.uni) == {"hello": 2, "world": 1}
    assert dict(c.bi) == {(LINE_START, "hello"): 1, ("hello", "world"): 1, ("world", "hello"): 1}
    c.observe("hello world hello wor")  # the same keystroke again counts nothing
    c.observe("hello world hello world ")
    assert dict(c.uni) == {"hello": 2, "world": 2}
    c.observe("hello there ")  # an edit: counted again only from where it changed
    assert c.uni["there"] == 1 and c.bi[("hello", "there")] == 1 and c.uni["hello"] == 2
    c.observe("hello there\nnew line ")  # a line break: no bigram across it
    assert ("there", "new") not in c.bi and c.bi[("new", "line")] == 1
    assert c.bi[(LINE_START, "new")] == 1  # how the user opens a line is learned


def typed_chunks(steps) -> list[str]:
    """The chunks NewChunks reports new over a sequence of texts before the cursor."""
    tracker, out = NewChunks(), []
    for text in steps:
        committed = committed_text(text)
        out += [committed[s:e] for s, e in tracker.update(committed)]
    return out


def test_new_chunks_count_each_typed_word_once():
    full = "I lke the zoo and "
    typing = [full[:i] for i in range(len(full) + 1)]
    assert typed_chunks(typing) == ["I", "lke", "the", "zoo", "and"]
    # the cursor goes back and forth (Home, End, arrows): nothing is new
    assert typed_chunks(typing + ["", "I lk", full, "I lke the ", full]) == ["I", "lke", "the", "zoo", "and"]
    # a backspace over the space, then the space again: nothing is new
    assert typed_chunks(typing + ["I lke the zoo and", full]) == ["I", "lke", "the", "zoo", "and"]
    # a typo fixed in the middle (text before the cursor), then End: only the fixed word
    fixed = "I like the zoo and "
    assert typed_chunks(typing + ["I lk", "I lki", "I like", fixed]) == ["I", "lke", "the", "zoo", "and", "like"]
    # a word inserted in the middle (its space typed there), then End: only that word
    assert typed_chunks(typing + ["I lke the ", "I lke the big ", "I lke the big zoo and "])[-1:] == ["big"]
    # the last word replaced at the end: the new one counts
    assert typed_chunks(typing + ["I lke the zoo ", "I lke the zoo or "])[-1:] == ["or"]
    # a new text after an old one: its words count (what it shares at its start does not)
    assert typed_chunks(typing + ["", "See you ", "See you soon "])[-3:] == ["See", "you", "soon"]


@pytest.mark.parametrize("space", [" ", "\t", "\xa0", "\u3000", "\r\n"])
def test_every_kind_of_whitespace_commits_a_word(space):
    c = UserCache(decay=1.0)
    text = space.join(["see", "you", "then", "tomorrow"]) + space
    for i in range(len(text) + 1):
        c.observe(text[:i])
    assert dict(c.uni) == {"see": 1, "you": 1, "then": 1, "tomorrow": 1}
    c.observe(text.replace("tomorrow", "today"))  # an edit after tabs: only the changed word
    assert c.uni["today"] == 1 and c.uni["then"] == 1


def test_words_are_learned_as_the_tokenizer_reads_them():
    """A combining accent (NFD, as macOS and some keyboards send it) is one letter with its
    base (NFC); a typographic apostrophe is "'" (as in the training text)."""
    c = UserCache(decay=1.0)
    c.observe("Meet at the cafe\u0301 with Kaz\u2019s friend ")
    assert {"caf\u00e9", "Kaz's"} <= set(c.uni) and "cafe" not in c.uni


def test_session_reads_typographic_apostrophes_and_answers_in_kind(no_prefetch_budget):
    """Phone and Mac keyboards type U+2019: the model reads it as "'" and the suggestions come
    back spelled the way the user writes."""
    s = open_session(tiny_bundle("lstm"), user=UserCache(lam=0.5))
    text = "I met Zorb\u2019s dog. Zorb\u2019s dog barks. "
    for i in range(len(text) + 1):
        s.suggest(text[:i], 3, phrase=False)
    assert "Zorb's" in s.user.uni
    curly = [x.text for x in s.suggest(text + "Then Zorb\u2019", 3, phrase=False)]
    assert "Zorb\u2019s" in curly and all(x.startswith("Zorb\u2019") for x in curly)
    straight = [x.text for x in s.suggest(text + "It's Zorb'", 3, phrase=False)]
    assert "Zorb's" in straight and all(x.startswith("Zorb'") for x in straight)


def test_session_caches_learn_nothing_twice_when_the_cursor_moves(no_prefetch_budget):
    from rnnkit.edge.neural_cache import WordCache

    hidden = open_session(tiny_bundle("lstm")).runner.meta.hidden_size
    s = open_session(tiny_bundle("lstm"), user=UserCache(decay=1.0), neural=WordCache(hidden))
    text = "see you at the zoo tomorrow "
    for i in range(len(text) + 1):
        s.suggest(text[:i], 3, phrase=False)
    counts, pairs = dict(s.user.uni), len(s.neural)
    assert pairs == 6 and counts["zoo"] == 1
    for before in ["", "see you", text, "see you at the zoo tomorrow", text]:  # Home, arrows, End, backspace
        s.suggest(before, 3, phrase=False)
    assert dict(s.user.uni) == counts and len(s.neural) == pairs
    s.suggest("see you at the park ", 3, phrase=False)  # an edit: the changed word only
    assert s.user.uni["park"] == 1 and len(s.neural) == pairs + 1 and s.user.uni["zoo"] == 1


def test_prob_formula_by_hand():
    c = UserCache(lam=0.2, beta=2.0, decay=1.0)
    c.observe("a b a c a b ")  # uni a3 b2 c1 (N=6); bigrams ab2 ba1 ac1 ca1 -> c(a)=3
    assert c.prob("b", None) == pytest.approx(2 / 6)
    assert c.prob("b", "a") == pytest.approx((2 + 2.0 * 2 / 6) / (3 + 2.0))
    assert c.prob("z", "a") == 0.0
    assert c.mix(math.log(0.5), "b", "a") == pytest.approx(math.log(0.8 * 0.5 + 0.2 * (2 + 2 / 3) / 5))
    assert c.candidates("", "a", 2) == ["b", "c"] and c.candidates("c", None, 3) == []  # "c" itself is typed


def test_trigram_level_by_hand_and_order_2_is_the_bigram_cache():
    c = UserCache(beta=2.0, decay=1.0)
    c.observe("a b c a b d a b c ")  # trigrams after "a b": c 2, d 1 -> c(a b) = 3
    assert dict(c.tri)[("a", "b", "c")] == 2 and c.pair_total[("a", "b")] == 3
    p_bi = c.prob("c", "b")  # the bigram level, as before
    assert p_bi == pytest.approx((2 + 2.0 * 2 / 9) / (3 + 2.0))
    assert c.prob("c", ("a", "b")) == pytest.approx((2 + 2.0 * p_bi) / (3 + 2.0))
    assert c.prob("c", ("x", "b")) == pytest.approx(p_bi)  # an unseen pair backs off to the bigram
    two = UserCache(beta=2.0, decay=1.0, order=2)
    two.observe("a b c a b d a b c ")
    assert two.prob("c", ("a", "b")) == pytest.approx(p_bi)
    c.observe("a b c a b d a b c \nb c ")  # a line break: no trigram across it
    assert ("b", "c", "b") not in c.tri and ("c", "b", "c") not in c.tri
    with pytest.raises(ValueError, match="order"):
        UserCache(order=4)


def test_session_context_is_the_last_two_words_of_the_line():
    from rnnkit.edge.adapt import last_words
    assert last_words("hello there my ") == ("there", "my")
    assert last_words("one\ntwo ") == (LINE_START, "two") and last_words("done\n") == (LINE_START,)
    assert last_words("") == (LINE_START,) and last_words("x " * 100) == ("x", "x")


def test_candidates_equal_a_scan_of_every_word():
    """The indexes (sorted words, followers, top words) give what ranking every word would."""
    import random

    rng = random.Random(3)
    vocab = [f"{a}{b}" for a in "abcst" for b in ("", "o", "un", "ee", "ay")]
    c = UserCache(decay=0.999)
    text = ""
    for i in range(600):
        text += rng.choice(vocab[:8] if rng.random() < 0.6 else vocab) + ("\n" if rng.random() < 0.1 else " ")
        c.observe(text)

    def scan(prefix, prev, n):
        pool = [w for w in c.uni if w.startswith(prefix) and w != prefix]
        return sorted(pool, key=lambda w: (-c.prob(w, prev), w))[:n]

    for prefix in ("", "s", "su", "b", "x"):
        for prev in (None, "a", ("b", "so"), ("\n",), ("\n", "c"), ("zz", "a")):
            for n in (1, 3, 20):
                assert c.candidates(prefix, prev, n) == scan(prefix, prev, n), (prefix, prev, n)
    c._prune()  # rebuilt indexes give the same
    assert c.candidates("", ("b", "so"), 3) == scan("", ("b", "so"), 3)


def test_decay_fades_old_words():
    c = UserCache(decay=0.5)
    c.observe("old new ")
    assert c.uni["new"] / c.uni["old"] == pytest.approx(2.0)  # one word later, half the weight
    for _ in range(200):  # scale stays bounded: counts are rescaled, ratios kept
        c.observe(c._new.seen + "new ")
    assert c._scale <= 1e30 and c.prob("old", None) < 1e-50


def test_save_load_forget(tmp_path):
    c = UserCache(decay=1.0)
    c.observe("see you tomorrow see you ")
    c.save(tmp_path)
    d = UserCache.load(tmp_path)
    assert dict(d.uni) == dict(c.uni) and dict(d.bi) == dict(c.bi) and dict(d.tri) == dict(c.tri)
    assert d.prob("tomorrow", ("see", "you")) == pytest.approx(c.prob("tomorrow", ("see", "you")))
    assert d.prob("you", "see") == pytest.approx(c.prob("you", "see"))
    assert UserCache.load(tmp_path / "nobody").total == 0  # no file yet: empty
    old = tmp_path / "old"  # a file written before the trigram level: no "tri", no "order"
    old.mkdir()
    (old / FILE_NAME).write_text('{"format": 1, "lam": 0.1, "beta": 2.0, "decay": 1.0, "uni": {"a": 1.0}, "bi": []}')
    assert UserCache.load(old).uni["a"] == 1.0 and not UserCache.load(old).tri
    (tmp_path / FILE_NAME).write_text('{"format": 1, "uni": 5}')
    with pytest.raises(ValueError, match="rnnkit suggest --forget"):
        UserCache.load(tmp_path)
    assert forget(tmp_path) and not (tmp_path / FILE_NAME).exists() and not forget(tmp_path)


def test_session_learns_a_new_word_and_what_follows_it(no_prefetch_budget):
    plain = open_session(tiny_bundle("lstm"))
    assert "zorblax" not in {s.text for s in plain.suggest("The zo", 3, phrase=False)}
    adapted = open_session(tiny_bundle("lstm"), user=UserCache(lam=0.5))
    text = "I met zorblax today. zorblax sings well. "
    for i in range(len(text) + 1):  # typed keystroke by keystroke
        adapted.suggest(text[:i], 3, phrase=False)
    assert adapted.user.uni["zorblax"] > 0
    assert "zorblax" in [s.text for s in adapted.suggest(text + "Then zo", 3, phrase=False)]
    after = {s.text: s.prob for s in adapted.suggest(text + "zorblax ", 3, phrase=False)}
    assert "sings" in after and "today" in after  # both followed "zorblax"
    assert after["sings"] >= 0.5 * adapted.user.prob("sings", "zorblax")  # the mixture, lam = 0.5
    # what is being typed now is not learned yet
    fresh = open_session(tiny_bundle("lstm"), user=UserCache())
    fresh.suggest("quuxly", 3, phrase=False)
    assert len(fresh.user) == 0


def test_forget_wins_over_a_session_running_meanwhile(tmp_path):
    """`rnnkit suggest --forget` while a keyboard session runs on the same directory: the
    session must not write back what it knew when it saves (it forgets too), and a temp file
    a killed save left behind is deleted with the cache."""
    first = UserCache.load(tmp_path)
    first.observe("my password is hunter2 ")
    first.save(tmp_path)
    running = UserCache.load(tmp_path)  # a second session, open
    running.observe("hello there ")
    (tmp_path / f".{FILE_NAME}.abc123.tmp").write_text("{}")  # a save killed mid-write
    assert forget(tmp_path)
    assert not list(tmp_path.glob("*user_cache*"))
    assert running.save(tmp_path) is None and not (tmp_path / FILE_NAME).exists()
    assert len(running) == 0  # forgotten here too
    running.observe("hello there again ")  # what it learns from now on is kept
    assert running.save(tmp_path) is not None and set(UserCache.load(tmp_path).uni) == {"again"}
    assert not forget(tmp_path / "nobody")


def test_autosave_saves_what_was_learned(tmp_path):
    from rnnkit.edge.cli import _autosave

    user = UserCache.load(tmp_path)
    idle = _autosave(user, tmp_path, every_s=0.0)
    idle()
    assert not (tmp_path / FILE_NAME).exists()  # nothing learned: nothing written
    user.observe("Quillfield is near ")
    idle()
    assert set(UserCache.load(tmp_path).uni) == {"Quillfield", "is", "near"}
    rare = _autosave(user, tmp_path, every_s=3600.0)
    user.observe("Quillfield is near here ")
    rare()
    assert "here" not in UserCache.load(tmp_path).uni  # not yet: at most every every_s


def test_a_stopped_server_saves_what_it_learned(tmp_path):
    """SIGTERM (a service stopped, a terminal closed: SIGHUP) ends the server through its
    normal exit, so the user's words are saved."""
    import signal
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "rnnkit.cli", "suggest", str(tiny_bundle("lstm")), "--json",
                             "--user-dir", str(tmp_path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        proc.stdin.write(json.dumps({"text": "Meet me at Quillfield "}) + "\n")
        proc.stdin.flush()
        assert "suggestions" in json.loads(proc.stdout.readline())
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    finally:
        proc.kill()
    assert set(UserCache.load(tmp_path).uni) == {"Meet", "me", "at", "Quillfield"}


def test_cli_user_dir_and_forget(tmp_path, monkeypatch, capsys, no_prefetch_budget):
    monkeypatch.setattr("sys.stdin", io.StringIO("Meet me at Quillfield \n"))
    assert main(["suggest", str(tiny_bundle("lstm")), "--user-dir", str(tmp_path)]) == 0
    saved = json.loads((tmp_path / FILE_NAME).read_text())
    assert saved["uni"].keys() == {"Meet", "me", "at", "Quillfield"}
    capsys.readouterr()
    assert main(["suggest", "--forget", "--user-dir", str(tmp_path)]) == 0
    assert "forgot" in capsys.readouterr().out and not (tmp_path / FILE_NAME).exists()


def test_json_server_with_prefetch_saves_only_what_was_typed(tmp_path, monkeypatch, capsys, no_prefetch_budget):
    """An app sends each keystroke with "prefetch": the user's file holds the typed words, once
    each, and none of the keys prefetch tried ("Mee", "Quill"...)."""
    text = "Meet me at Quillfield "
    lines = "".join(json.dumps({"text": text[:i], "prefetch": 3, "phrase": False}) + "\n"
                    for i in range(len(text) + 1))
    bundle = tiny_bundle("lstm")
    capsys.readouterr()  # (building the toy bundle prints its loss)
    monkeypatch.setattr("sys.stdin", io.StringIO(lines))
    assert main(["suggest", str(bundle), "--json", "--user-dir", str(tmp_path)]) == 0
    answers = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert len(answers) == len(text) + 1 and all("suggestions" in a for a in answers)
    saved = json.loads((tmp_path / FILE_NAME).read_text())
    assert saved["uni"].keys() == {"Meet", "me", "at", "Quillfield"}
    assert max(saved["uni"].values()) < 1.01  # each counted once (a later word weighs a little more: decay)


def test_session_neural_cache_learns_typed_words_once_and_offers_them(no_prefetch_budget):
    from rnnkit.edge.neural_cache import WordCache

    plain = open_session(tiny_bundle("lstm"))
    hidden = plain.runner.meta.hidden_size
    s = open_session(tiny_bundle("lstm"), neural=WordCache(hidden, theta=0.5, lam=0.6))
    text = "I met zorblax today. "
    for i in range(len(text) + 1):  # typed keystroke by keystroke: each word learned once
        s.suggest(text[:i], 3, phrase=False)
    assert sorted(s.neural.words) == ["I", "met", "today", "zorblax"] and len(s.neural) == 4
    # a control character inside a chunk is a space to the session: both words are learned
    glued = open_session(tiny_bundle("lstm"), neural=WordCache(hidden, theta=0.5, lam=0.6))
    text = "I said hello\x01world to them "
    for i in range(len(text) + 1):
        glued.suggest(text[:i], 3, phrase=False)
    assert sorted(glued.neural.words) == ["I", "hello", "said", "them", "to", "world"] and len(glued.neural) == 6
    offered = [x.text for x in s.suggest(text + "Then zo", 3, phrase=False)]
    assert "zorblax" in offered  # never in the model's top words, but typed before
    assert "zorblax" not in {x.text for x in plain.suggest(text + "Then zo", 3, phrase=False)}
    for x in s.suggest(text + "Then zo", 3, phrase=False):
        assert x.text.startswith("zo")
    # a graph without h0 (a KV cache) cannot key the cache: a clear error, not a wrong answer
    class NoH:
        state_in = ["k0", "v0", "len0"]

    with pytest.raises(Exception, match="needs a recurrent step graph"):
        from rnnkit.edge.session import TypingSession

        runner = plain.runner
        runner_state = runner.state_in
        try:
            runner.state_in = NoH.state_in
            TypingSession(runner, plain.vocab, neural=WordCache(hidden))
        finally:
            runner.state_in = runner_state


def test_prefetch_teaches_the_caches_nothing(no_prefetch_budget):
    """Prefetch tries keys the user has not typed (a space after "tom" commits "tom"): neither
    cache may learn from them. Typed with prefetch between keystrokes, the caches hold exactly
    what they hold typed without it, and the suggestions are the same."""
    from rnnkit.edge.neural_cache import WordCache

    hidden = open_session(tiny_bundle("lstm")).runner.meta.hidden_size
    text = "I met zorblax today. zorblax sings well. Then zorb"
    sessions = [open_session(tiny_bundle("lstm"), user=UserCache(decay=1.0), neural=WordCache(hidden, lam=0.5))
                for _ in range(2)]
    answers = [[], []]
    for i in range(len(text) + 1):
        for j, s in enumerate(sessions):
            answers[j].append([(x.text, round(x.prob, 5)) for x in s.suggest(text[:i], 3, phrase=False)])
            if j:
                s.prefetch(text[:i], keys=3, phrase=False)
    plain, pre = sessions
    assert dict(pre.user.uni) == dict(plain.user.uni) == {"I": 1, "met": 1, "zorblax": 2, "today": 1,
                                                          "sings": 1, "well": 1, "Then": 1}
    assert pre.neural.words == plain.neural.words and len(pre.neural) == len(plain.neural) == 8  # one per typed word
    assert answers[1] == answers[0]


def test_eval_suggest_adapt_prints_off_and_both_caches_side_by_side(tmp_path, capsys, no_prefetch_budget):
    text = tmp_path / "me.txt"
    text.write_text("I met zorblax today. zorblax sings well. Then zorblax sings again.\n" * 3)
    out = tmp_path / "r.json"
    assert main(["eval-suggest", str(tiny_bundle("lstm")), "--text", str(text), "--adapt", "--prefetch", "0",
                 "--phrase-every", "1000000", "--out", str(out)]) == 0
    r = json.loads(out.read_text())
    table = capsys.readouterr().out
    assert "+adapt" in table and "+neural" in table
    for key in ("lstm", "lstm_adapt", "lstm_adapt_neural"):
        assert 0.0 <= r[key]["keystroke_savings"] < 1.0
    # a repeated made-up word: the caches must save keystrokes the plain model cannot
    assert r["lstm_adapt"]["keystroke_savings"] > r["lstm"]["keystroke_savings"]
    assert r["lstm_adapt_neural"]["keystroke_savings"] > r["lstm"]["keystroke_savings"]
