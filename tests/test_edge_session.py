"""The typing session: prefix-constrained completions, ranking, incremental state, bad input, fuzz."""

from __future__ import annotations

import math
import os
import re
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnnkit.edge.runner import EdgeError, StepRunner
from rnnkit.edge.pieces import SentencePieceVocab
from rnnkit.edge.search import log_softmax, logsumexp, search_words
from rnnkit.edge.session import TypingSession, open_session

from test_edge_support import TRAIN_TEXT, tiny_bundle


@pytest.fixture(scope="module")
def parts():
    b = tiny_bundle("lstm")
    runner = StepRunner(b / "step.onnx")
    return runner, SentencePieceVocab(b / "tokenizer.model", eos_id=runner.meta.eos_id)


def new_session(parts, **kw) -> TypingSession:
    return TypingSession(*parts, **kw)


@pytest.fixture()
def session(parts):
    return new_session(parts)


# ---------------------------------------------------------------------------- what is suggested
@pytest.mark.parametrize("text", ["The c", "Thank you f", "We will meet at the caf", "I think we sh", "The na"])
def test_every_completion_starts_with_the_typed_characters(session, text):
    typed = text.split()[-1]
    sugg = session.suggest(text, k=5, phrase=False)
    assert sugg, text
    for s in sugg:
        assert s.kind == "completion" and s.text.startswith(typed) and len(s.text) > len(typed), s
    probs = [s.prob for s in sugg]
    assert probs == sorted(probs, reverse=True) and 0 < probs[-1] and probs[0] <= 1


def context_ids(parts, context: str) -> list[int]:
    runner, vocab = parts
    return [runner.meta.eos_id] + [i for w in context.split() for i in vocab.encode_word(w)]


def test_words_spanning_several_pieces_and_bytes(session, parts):
    """'café' is spelled by several pieces including UTF-8 byte-fallback pieces. Whether a toy
    model ranks it in the top k is not asserted (that can flip with float rounding or a library
    release); what is: the search scores it at least at its model probability and never drops
    it below a less probable suggestion, and a typed 'é' constrains completions byte-exactly."""
    runner, vocab = parts
    ids = vocab.encode_word("café")
    assert len(ids) >= 3 and any(vocab.sp.is_byte(i) for i in ids), ids
    lp = exact_word_logp(runner, vocab, context_ids(parts, "We will meet at the"), "café")
    assert lp > len(ids) * math.log(1 / vocab.vocab_size) + math.log(20)  # trained: 20x its pieces' chance
    for text, k in [("We will meet at the caf", 3), ("We will meet at the c", 10)]:
        sugg = session.suggest(text, k=k, phrase=False)
        assert sugg and all(s.text.startswith(text.split()[-1]) for s in sugg), sugg
        got = {s.text: math.log(s.prob) for s in sugg}
        if "café" in got:
            assert got["café"] >= lp - 1e-6  # (the search sums a word's segmentations)
        else:
            assert lp <= math.log(sugg[-1].prob) + 1e-6, (text, lp, sugg)  # missed only if outranked
    typed = session.suggest("We will meet at the café", k=5, phrase=False)
    assert all(s.kind == "completion" and s.text.startswith("café") and s.text != "café" for s in typed), typed


def test_next_words_after_a_space(session, parts):
    """After a space the suggestions are next words. Which three words a toy model ranks
    first is not asserted (near-ties flip with float rounding or a library release); what is:
    training raised P("for" | "Thank you ") far above the untrained model's (chance), and the
    search offers nothing less probable than that word while missing it."""
    runner, vocab = parts
    sugg = session.suggest("Thank you ", k=3, phrase=False)
    assert [s.kind for s in sugg] == ["next"] * 3
    assert all(s.text and " " not in s.text for s in sugg)
    probs = [s.prob for s in sugg]
    assert probs == sorted(probs, reverse=True) and 0 < probs[-1] and probs[0] <= 1

    ctx, ids = context_ids(parts, "Thank you"), vocab.encode_word("for")
    logits, _ = runner.step(np.array([ctx + ids], dtype=np.int64))
    lp = log_softmax(logits[0].astype(np.float64))
    trained = float(sum(lp[len(ctx) - 1 + j, i] for j, i in enumerate(ids)))  # its pieces, as exported
    untrained = untrained_pieces_logp(ctx, ids)
    assert abs(untrained - len(ids) * math.log(1 / vocab.vocab_size)) < len(ids) * math.log(3)  # ~ chance
    assert trained > untrained + math.log(20), (trained, untrained)  # training raised it 20-fold or more
    trained = exact_word_logp(runner, vocab, ctx, "for")  # (and then a word boundary)
    got = {s.text: math.log(s.prob) for s in sugg}
    if "for" in got:
        assert got["for"] >= trained - 1e-6
    else:
        assert trained <= math.log(sugg[-1].prob) + 1e-6, (trained, sugg)


def untrained_pieces_logp(context_ids: list[int], word_ids: list[int]) -> float:
    """log P(word's pieces | context) under the tiny LM's initial weights (before any step)."""
    import torch

    from test_edge_support import tiny_run, train_tiny_lm

    model = train_tiny_lm(tiny_run("lstm") / "tokenizer.model", steps=0)  # same seed and init, no update
    ids = context_ids + word_ids
    with torch.no_grad():
        logits, _ = model(torch.tensor([ids]))
    lp = torch.log_softmax(logits[0].double(), -1)
    n = len(context_ids)
    return float(sum(lp[n - 1 + j, i] for j, i in enumerate(word_ids)))


def exact_word_logp(runner, vocab, context_ids, word) -> float:
    """log P(word's pieces, then a word boundary | context), by feeding the pieces directly."""
    ids = vocab.encode_word(word)
    logits, _ = runner.step(np.array([context_ids + ids], dtype=np.int64))
    lp = log_softmax(logits[0])
    n = len(context_ids)
    total = sum(lp[n - 1 + j, i] for j, i in enumerate(ids))
    return float(total + logsumexp(lp[n - 1 + len(ids)][vocab.ends_word]))


@pytest.mark.parametrize("text", ["Thank you f", "The c", "I think ", "Please s", "Thank you "])
def test_ranking_matches_brute_force_model_probabilities(parts, text):
    """Against every word of the training text: the search finds the most probable ones."""
    runner, vocab = parts
    session = new_session(parts, beam=64, max_pieces=6)
    typed = "" if text.endswith(" ") else text.split()[-1]
    context = text[: len(text) - len(typed)]
    ctx_ids = [runner.meta.eos_id] + [i for w in context.split() for i in vocab.encode_word(w)]
    words = {w.strip(".,?!") for w in TRAIN_TEXT.split()}
    cands = sorted(w for w in words if w.startswith(typed) and len(w) > len(typed) and w.isalpha())
    brute = sorted(((exact_word_logp(runner, vocab, ctx_ids, w), w) for w in cands), reverse=True)
    sugg = session.suggest(text, k=3, phrase=False)
    # the best word has at least the probability of the best training word (the search may find
    # other strings, and sums a word's segmentations, so >=)
    assert math.log(sugg[0].prob) >= brute[0][0] - 1e-6
    # and each suggested training word is scored no lower than its canonical segmentation
    exact = dict((w, lp) for lp, w in brute)
    for s in sugg:
        if s.text in exact:
            assert math.log(s.prob) >= exact[s.text] - 1e-6
    # no training word more probable than the k-th suggestion was missed
    top5 = session.suggest(text, k=5, phrase=False)
    for lp, w in brute:
        if lp > math.log(top5[-1].prob) + 1e-6:
            assert w in [s.text for s in top5], (w, lp, top5)


def test_phrase_is_offered_only_above_its_threshold(parts):
    always = new_session(parts, phrase_min_prob=0.0)
    never = new_session(parts, phrase_min_prob=1.0)
    a = always.suggest("Thank you f", k=3)
    assert a[-1].kind == "phrase" and a[-1].text.startswith("f") and len(a[-1].text.split()) >= 2
    assert all(s.kind != "phrase" for s in never.suggest("Thank you f", k=3))
    hit = always.phrase("Thank you ")
    assert hit is not None and 2 <= hit.words <= 3 and 0 < hit.prob < 1
    assert math.isclose(hit.prob, math.exp(hit.logp))


def test_a_phrase_ends_with_its_sentence(parts):
    """A scripted model sure of "thank you. See you soon": the phrase stops at the full stop
    (what follows a sentence is another thought, rarely exactly what the user writes)."""
    from rnnkit.edge.phrase import search_phrase
    from rnnkit.edge.search import Dist

    _, vocab = parts
    script = [p for w in ("thank", "you.", "See", "you", "soon") for p in vocab.encode_word(w)]

    def rows(prefixes):
        out = []
        for ids in prefixes:
            lp = np.full(len(vocab.surface), -30.0, np.float32)
            lp[script[len(ids)] if len(ids) < len(script) else vocab.eos_id] = 0.0
            out.append(Dist(lp))
        return out

    best = search_phrase(vocab, rows, max_words=4, min_words=2, beam=2)
    likely = [h for h in best.values() if h.logp > -5]  # the beam also keeps junk at -30 a piece
    assert likely and all("See" not in h.text for h in likely), best
    assert best[2].text.startswith("thank you") and best[2].logp > -1e-3


def test_pick_phrase_offers_the_longest_confident_one():
    from rnnkit.edge.phrase import PhraseHit, pick_phrase

    best = {2: PhraseHit("for the", -1.2, 2, 3), 3: PhraseHit("for the park", -3.0, 3, 4)}  # P 0.30, 0.05
    assert pick_phrase(best, 0.1).text == "for the"          # the 3-word one is below the bar
    assert pick_phrase(best, 0.04).text == "for the park"    # both pass: the longer wins
    assert pick_phrase(best, 0.5) is None and pick_phrase({}, 0.0) is None


@pytest.mark.parametrize("text", ["Thank you ", "I will see you ", "The ", "Thank you f"])
def test_the_bar_cuts_the_search_exactly(parts, text):
    """A phrase's probability only falls as it grows, so searching with a bar finds every phrase
    above it that the unbarred search finds (the same words and probabilities), and none below:
    bars at, just below and just above each phrase's probability, for several beam widths."""
    for beam in (1, 2, 4, 8):
        every = new_session(parts, phrase_beam=beam).phrase_candidates(text)
        assert every, (text, beam)
        probs = sorted(h.prob for h in every.values())
        for bar in {x * f for x in probs for f in (0.999, 1.0, 1.001)} | {0.5, 0.1}:
            bar = min(bar, 1.0)
            cut = new_session(parts, phrase_beam=beam).phrase_candidates(text, bar)
            assert all(h.prob >= bar * (1 - 1e-12) for h in cut.values())
            # (the same words; the probabilities to float noise: this toy graph is fp32, whose
            # batched matmuls round by batch size, and the cut changes the batches)
            want = {n: h for n, h in every.items() if math.log(bar) <= h.logp}
            if any(abs(h.logp - math.log(bar)) < 1e-5 for h in every.values()):
                continue  # a knife-edge of the float noise
            assert {n: h.text for n, h in want.items()} == {n: h.text for n, h in cut.items()}, (beam, bar, every, cut)
            assert all(abs(want[n].logp - h.logp) < 1e-5 for n, h in cut.items())


def test_a_lower_bars_search_serves_a_higher_one(parts):
    """The session keeps a search's phrases with the bar it cut at and filters them for a higher
    bar (the cut is exact): the same phrases as a fresh session's search at that bar."""
    s = new_session(parts)
    low = s.phrase_candidates("Thank you ", 1e-6)
    probs = sorted(h.prob for h in low.values())
    assert len(probs) >= 2
    calls = s.graph_calls
    for bar in [(a + b) / 2 for a, b in zip(probs, probs[1:])] + [probs[-1] * 1.5]:  # between phrases
        served = s.phrase_candidates("Thank you ", bar)
        fresh = new_session(parts).phrase_candidates("Thank you ", bar)
        assert {n: h.text for n, h in served.items()} == {n: h.text for n, h in fresh.items()}
        assert all(abs(served[n].logp - h.logp) < 1e-5 for n, h in fresh.items())
    assert s.graph_calls == calls  # served from the first search


def test_a_sentence_ended_a_word_short_does_not_crowd_out_the_phrase(parts):
    """A scripted model: after the typed space "you" (0.8) then "!" or "." (most of the time), or
    "the" (0.2) then "time". With a beam of 2, "you!" and "you." outrank "the time" but can never
    be phrases of two words (a phrase ends with its sentence): they are not let into the beam, so
    "the time" is found ("Thank you so much for " found no phrase at all)."""
    from rnnkit.edge.phrase import search_phrase
    from rnnkit.edge.search import Dist

    _, vocab = parts
    ends = [int(i) for i in np.flatnonzero(vocab.ends_sentence & ~vocab.starts_space)][:2]
    you, the, time = (tuple(vocab.encode_word(w)) for w in ("you", "the", "time"))
    assert ends and you[0] != the[0]
    the_time = the + time

    def rows(prefixes):
        out = []
        for ids in prefixes:
            lp = np.full(len(vocab.surface), -60.0, np.float32)
            if not ids:
                lp[you[0]], lp[the[0]] = math.log(0.8), math.log(0.2)
            elif ids == you:
                for e in ends:
                    lp[e] = math.log(0.95 / len(ends))
            elif you[:len(ids)] == ids:
                lp[you[len(ids)]] = 0.0
            elif the_time[:len(ids)] == ids and len(ids) < len(the_time):
                lp[the_time[len(ids)]] = 0.0
            else:
                lp[vocab.eos_id] = 0.0
            out.append(Dist(lp))
        return out

    best = search_phrase(vocab, rows, max_words=3, min_words=2, beam=2)
    assert best[2].text == "the time" and best[2].prob == pytest.approx(0.2, rel=1e-4), best


def test_a_phrase_counts_its_first_words_boundary_once(parts):
    """A scripted model: "thank" then the boundary with probability 1/2 ("you" as the next piece, or
    the word going on as "s"), then "you" surely ends. Continuing the completed word "thank"
    (log P = log 1/2, its boundary included), the phrase "thank you" has P = 1/2, not 1/4."""
    from rnnkit.edge.phrase import search_phrase
    from rnnkit.edge.search import Dist

    _, vocab = parts
    thank, you = tuple(vocab.encode_word("thank")), tuple(vocab.encode_word("you"))
    s_id = int(np.flatnonzero(vocab.word_cont)[0])
    assert vocab.surface[you[0]][:1] == b" " and s_id not in you

    def rows(prefixes):
        out = []
        for ids in prefixes:
            lp = np.full(len(vocab.surface), -60.0, np.float32)
            after = ids[len(thank):]
            if not after:
                lp[you[0]] = lp[s_id] = math.log(0.5)
            elif after == you[:len(after)] and len(after) < len(you):
                lp[you[len(after)]] = 0.0
            else:
                lp[vocab.eos_id] = 0.0
            out.append(Dist(lp))
        return out

    best = search_phrase(vocab, rows, thank, b" thank", math.log(0.5), max_words=2, min_words=2, beam=2)
    assert best[2].text == "thank you" and best[2].prob == pytest.approx(0.5, rel=1e-4)


def test_a_phrase_at_a_word_start_begins_with_a_word(parts):
    """After a typed space the phrase's first piece starts a new word: never a piece that would
    glue onto the word before ("I" + "'m"), which the typed space rules out."""
    s = new_session(parts)
    for text in ("I ", "Thank you ", "The ", "see you "):
        for hit in s.phrase_candidates(text).values():
            assert hit.text[:1].isalnum(), (text, hit)


def test_a_likelier_glued_piece_does_not_start_a_phrase(parts):
    """A scripted model that would rather glue a piece onto the word before (0.9) than start a
    new word (0.1): after the typed space every phrase still begins with the new word."""
    from rnnkit.edge.phrase import search_phrase
    from rnnkit.edge.search import Dist

    _, vocab = parts
    glued = int(np.flatnonzero(vocab.word_cont)[0])
    first, then = [int(i) for i in np.flatnonzero(vocab.word_start) if len(vocab.surface[i]) >= 3][:2]

    def rows(prefixes):
        out = []
        for ids in prefixes:
            lp = np.full(len(vocab.surface), -60.0, np.float32)
            if not ids:
                lp[glued], lp[first] = math.log(0.9), math.log(0.1)
            elif len(ids) < 3:
                lp[then] = 0.0
            else:
                lp[vocab.eos_id] = 0.0
            out.append(Dist(lp))
        return out

    best = search_phrase(vocab, rows, max_words=3, min_words=2, beam=4)
    word = vocab.surface[first].decode().strip()
    assert best and all(h.text.startswith(word) for h in best.values()), (word, best)


def test_whether_a_phrase_shows_does_not_depend_on_k(parts):
    text = "Thank you f"
    phrases = {k: [(x.text, x.p_given_typed) for x in new_session(parts, phrase_min_prob=0.01).suggest(text, k)
                   if x.kind == "phrase"] for k in (1, 2, 3, 5, 10)}
    assert phrases[3] and all(v == phrases[3] for v in phrases.values()), phrases  # the same share, too


def test_bad_bars_are_clear_errors(parts):
    from rnnkit.edge.phrase import pick_phrase
    s = new_session(parts)
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="probability"):
            s.phrase_candidates("Thank you ", bad)
        with pytest.raises(ValueError, match="probability"):
            pick_phrase({}, bad)
        with pytest.raises(EdgeError, match="phrase-min-prob"):
            new_session(parts, phrase_min_prob=bad)


def test_inside_a_word_the_bar_is_on_the_letters_typed(parts):
    """After "Thank you f" what must reach the bar is the phrase's share among what the letters
    allow, P(phrase | "f"), which is above its probability before the letters."""
    text = "Thank you f"
    [any_phrase] = [x for x in new_session(parts, phrase_min_prob=0.0).suggest(text) if x.kind == "phrase"]
    assert any_phrase.p_given_typed > any_phrase.prob
    between = (any_phrase.prob + any_phrase.p_given_typed) / 2
    offered = [x for x in new_session(parts, phrase_min_prob=between).suggest(text) if x.kind == "phrase"]
    assert offered and offered[0].p_given_typed >= between
    assert offered[0].prob < between  # offered although its probability before the letters is below the bar
    for bar in (0.3, 0.6, 0.9):
        assert all(x.p_given_typed >= bar for x in new_session(parts, phrase_min_prob=bar).suggest(text)
                   if x.kind == "phrase")


# ---------------------------------------------------------------------------- incremental state
TEXT = " ".join(TRAIN_TEXT.split())


def test_keystroke_cost_is_flat_as_the_text_grows(session):
    """Tokens fed per keystroke do not grow with the length of the text (counted, not timed)."""
    long_text = (TEXT + " ") * 10  # ~10 k characters

    def typing(start: int, stop: int) -> np.ndarray:
        fed = []
        for i in range(start, stop):
            before = session.tokens_fed
            session.suggest(long_text[:i], phrase=False)
            fed.append(session.tokens_fed - before)
        return np.array(fed)

    early = typing(1, 400)                       # the first 400 keystrokes
    session.suggest(long_text[:-400], phrase=False)  # (pasted up to 400 before the end)
    late = typing(len(long_text) - 399, len(long_text) + 1)  # the last 400, at ~10 k characters
    print(f"tokens fed per keystroke: early mean {early.mean():.2f} max {early.max()}, "
          f"late mean {late.mean():.2f} max {late.max()}")
    bound = session.beam * (session.max_pieces + 1) + 12
    assert early.max() <= bound and late.max() <= bound
    assert late.mean() <= 1.5 * early.mean() + 1


def test_backspace_and_edits_roll_back_to_cached_states(parts):
    s = new_session(parts)
    n_tok = lambda text: sum(len(parts[1].encode_word(w)) for w in text.split())  # noqa: E731
    s.suggest("The cat sat on the mat and ", phrase=False)
    fed = s.context_tokens_fed
    assert fed == 1 + n_tok("The cat sat on the mat and")  # EOS first, then each word once
    s.suggest("The cat sat on the mat and", phrase=False)  # backspace over the space
    s.suggest("The cat sat on the mat an", phrase=False)   # and inside the word
    assert s.context_tokens_fed == fed                     # rolled back, nothing re-read
    s.suggest("The cat sat on the mat and ", phrase=False)
    assert s.context_tokens_fed == fed                     # the re-typed word was read before: cached
    s.suggest("The dog sat on the mat and ", phrase=False)  # an edit in the middle
    assert s.context_tokens_fed == fed + n_tok("dog sat on the mat and")  # "The" is kept
    same(s.suggest("The dog sat on the mat and "), new_session(parts).suggest("The dog sat on the mat and "))


def test_a_word_typed_to_its_end_is_committed_from_the_search(parts):
    """Typing a word letter by letter lets the word search score it; the space then takes that
    state instead of reading the word again, and the suggestions equal a fresh session's."""
    s = new_session(parts)
    text = "Thank you for the "
    for i in range(1, len(text) + 1):
        s.suggest(text[:i], phrase=False)
    words = text.split()
    n_tok = sum(len(parts[1].encode_word(w)) for w in words)
    assert s.context_tokens_reused > 0
    assert s.context_tokens_fed + s.context_tokens_reused == 1 + n_tok  # each word once, fed or reused
    same(s.suggest(text), new_session(parts).suggest(text))


@pytest.mark.parametrize("text", ["Thank you for", "The c", "I think we sh", "The na", "We will meet at the caf"])
def test_completions_far_below_the_best_word_are_not_offered(parts, text):
    """The typed word competes as a complete word but is not offered; a completion under
    min_ratio x the best word is dropped: the offered list is the head of the unfiltered one."""
    every = new_session(parts, min_ratio=0.0).suggest(text, k=5, phrase=False)
    some = new_session(parts, min_ratio=0.05).suggest(text, k=5, phrase=False)
    typed = text.split()[-1]
    assert all(s.text != typed for s in every + some)
    assert [s.text for s in some] == [s.text for s in every[:len(some)]]
    ref = new_session(parts)
    _, rows, typed_bytes = ref._prepare(text)
    best = search_words(ref.vocab, rows, b" " + typed_bytes, 6, ref.beam, ref.max_pieces, include_typed=True)[0]
    bar = best.logp + math.log(0.05)
    assert all(math.log(s.prob) >= bar - 1e-9 for s in some)
    if len(some) < len(every):
        assert math.log(every[len(some)].prob) < bar


def test_min_ratio_is_checked(parts):
    with pytest.raises(EdgeError, match="min_ratio"):
        new_session(parts, min_ratio=1.0)


def test_prefetch_prepares_the_likely_next_keys(parts):
    """After idle-time prefetch, a prefetched key costs no model call, and the suggestions are
    those a fresh session gives."""
    s = new_session(parts)
    text = "Thank you f"
    s.suggest(text)
    keys = s.prefetch(text, keys=3, budget_ms=math.inf)  # (no time budget: not a timing test)
    assert 1 <= len(keys) <= 3 and all(isinstance(key, str) and len(key) == 1 for key in keys)
    # the keys are next letters of words the search finds (or a space ending the typed word),
    # not which letters a toy model happens to rank first
    offered = new_session(parts, min_ratio=0.0).suggest(text, k=20, phrase=False)
    assert set(keys) <= {x.text[1] for x in offered} | {" "}, (keys, offered)
    assert offered[0].text[1] in keys or len(keys) == 3  # the best word's letter, unless 3 keys outweigh it
    for key in keys:
        calls = s.graph_calls
        got = s.suggest(text + key)
        assert s.graph_calls == calls, key
        same(got, new_session(parts).suggest(text + key))
    # a space is a key when the typed word, complete, outweighs the rest: every other key's
    # words extend it, so if it is not among 3 keys, each of those has at least its probability
    s.suggest("Thank you for")
    keys = s.prefetch("Thank you for", keys=3, budget_ms=math.inf)
    runner, vocab = parts
    p_space = math.exp(exact_word_logp(runner, vocab, context_ids(parts, "Thank you"), "for"))
    assert " " in keys or (len(keys) == 3 and p_space <= 0.25), (keys, p_space)
    assert set(keys) - {" "} <= {x.text[3] for x in new_session(parts, min_ratio=0.0).suggest(
        "Thank you for", k=20, phrase=False)}


@pytest.mark.parametrize("text", ["", "   ", "\ud800", "x" * 5000, "😀", None])
def test_prefetch_never_raises(session, text):
    assert isinstance(session.prefetch(text), list)
    assert session.prefetch("Thank you f", budget_ms=0.0) == []  # no time: nothing done
    assert session.prefetch("Thank you f", stop=lambda: True) == []  # a key is waiting: nothing done


def same(a, b) -> None:
    """The same suggestions with the same log-probabilities up to float32 rounding (a word
    committed from the search's rows and one read in one call agree to ~1e-6 per logit, summed
    over a phrase's pieces); two that tie to within that may swap places."""
    def close(u: float, v: float) -> bool:
        return abs(u - v) < 1e-4 + 3e-5 * abs(v)

    assert sorted((x.text, x.kind) for x in a) == sorted((x.text, x.kind) for x in b)
    lp_b = {(x.text, x.kind): math.log(x.prob) for x in b}
    for i, (x, y) in enumerate(zip(a, b)):
        assert close(math.log(x.prob), lp_b[(x.text, x.kind)]), (x, lp_b[(x.text, x.kind)])
        if (x.text, x.kind) != (y.text, y.kind):
            assert close(math.log(x.prob), math.log(y.prob)), (i, x, y)


FUZZ_EXAMPLES = int(os.environ.get("EDGE_FUZZ_EXAMPLES", "40"))  # e.g. 400 for a longer local run
ODD_WORDS = ["zzq", "café", "مرحبا", "שלום", "😀", "a\u200bb"]
words = st.sampled_from(sorted(set(TRAIN_TEXT.split())) + ODD_WORDS)
chunks = st.one_of(words, st.text(max_size=6), st.sampled_from([" ", "  ", "\n", "\t", "\x00", "\ud800"]))


@settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pieces=st.lists(chunks, max_size=12),
       edits=st.lists(st.tuples(st.sampled_from(["append", "delete", "insert", "cut"]),
                                st.integers(0, 1000), chunks), max_size=10))
def test_incremental_equals_from_scratch(parts, pieces, edits):
    """Random strings and random edit sequences: the incremental session matches a fresh one."""
    inc = new_session(parts, phrase_min_prob=1e-5)
    text = ""
    for chunk in pieces:  # typed one character at a time
        for ch in chunk:
            text += ch
            inc.suggest(text)
    for op, pos, chunk in edits:
        pos = pos % (len(text) + 1)
        if op == "append":
            text += chunk
        elif op == "delete":
            text = text[:pos] + text[pos + 1:]
        elif op == "insert":
            text = text[:pos] + chunk + text[pos:]
        else:
            text = text[:pos]
        same(inc.suggest(text), new_session(parts, phrase_min_prob=1e-5).suggest(text))


@settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pieces=st.lists(chunks, max_size=30),
       edits=st.lists(st.tuples(st.sampled_from(["append", "delete", "insert", "cut"]),
                                st.integers(0, 1000), chunks), max_size=10))
def test_small_window_moves_and_edits_keep_the_context_right(parts, pieces, edits):
    """Random typing and edits across moves of a small window (the state carried over): the
    cached context is always exactly the window's whole words, and completions start with the
    typed characters."""
    from rnnkit.edge.pieces import clean_text

    s = new_session(parts, max_context_chars=64, phrase_min_prob=1e-5)
    text = ""

    def check(t: str) -> None:
        out = s.suggest(t)
        w = clean_text(t[s._window_start(t):])
        tail = re.search(r"\S*\Z", w).group()
        if len(tail) <= 48:  # (a longer "word" gets no suggestions and leaves the context as it was)
            assert s._ctx == w[:len(w) - len(tail)]
        typed = parts[1].normalize(tail)
        for x in out:
            if x.kind == "completion":
                assert x.text.startswith(typed), (x, typed)

    for chunk in pieces:
        for ch in chunk:
            text += ch
            check(text)
    for op, pos, chunk in edits:
        pos = pos % (len(text) + 1)
        text = {"append": text + chunk, "delete": text[:pos] + text[pos + 1:],
                "insert": text[:pos] + chunk + text[pos:], "cut": text[:pos]}[op]
        check(text)


# ---------------------------------------------------------------------------- bad input
STRANGE = ["", "   ", "\n\n", "\x00\x01\x07 hello\x1b[2J", "😀😀 ", "I ❤️ th", "مرحبا بالعالم ", "שלום עולם",
           "\ud800\udc00 lone \udfff", "zzzqqxv", "x" * 5000, "\u200b\u200b", "Thank you f\u0301"]


@pytest.mark.parametrize("text", STRANGE)
def test_strange_text_never_crashes(session, text):
    out = session.suggest(text)
    assert isinstance(out, list)
    for s in out:
        assert s.kind in ("next", "completion", "phrase") and 0 < s.prob <= 1 and s.text
        s.text.encode("utf-8")  # no lone surrogates leak out


def test_a_one_megabyte_paste_is_bounded(session):
    paste = (TEXT + " ") * (1_000_000 // (len(TEXT) + 1) + 1)
    t0 = time.perf_counter()
    out = session.suggest(paste[:1_000_000] + " Thank you f")
    assert out and out[0].text.startswith("f")
    # only the last max_context_chars are read, in whole words
    assert len(session._ctx) <= session.max_context_chars
    print(f"1 MB paste: {time.perf_counter() - t0:.2f} s, {session.tokens_fed} tokens fed")
    # typing on after the paste is incremental again
    before = session.tokens_fed
    session.suggest(paste[:1_000_000] + " Thank you fo", phrase=False)
    assert session.tokens_fed - before <= session.beam * (session.max_pieces + 1)


@pytest.mark.parametrize("bad, message", [(None, "text must be a str"), (b"bytes", "text must be a str"),
                                          (42, "text must be a str")])
def test_non_text_is_a_clear_error(session, bad, message):
    with pytest.raises(EdgeError, match=message):
        session.suggest(bad)


@pytest.mark.parametrize("k", [0, -1, 21, 2.5, "3", True])
def test_bad_k_lists_the_allowed_range(session, k):
    with pytest.raises(EdgeError, match="k must be an int from 1 to 20"):
        session.suggest("hello", k=k)


def test_open_session_checks_the_bundle(tmp_path):
    with pytest.raises(ValueError, match="no such bundle directory"):
        open_session(tmp_path / "nope")
    with pytest.raises(EdgeError, match="precision must be fp32 or int8"):
        open_session(tiny_bundle("lstm"), precision="fp16")
    with pytest.raises(EdgeError, match="has no int8 graph"):
        open_session(tiny_bundle("lstm"), precision="int8")
    s8 = open_session(tiny_bundle("lstm", int8=True))
    assert s8.runner.path.endswith("step.int8.onnx")
    assert [x.text for x in s8.suggest("Thank you f", phrase=False)][0].startswith("f")


def test_context_window_moves_on_without_rereading(parts):
    """Typing across several window moves: the state is carried over, so no keystroke reads
    more than the word it commits (no stall when the window moves), and the window always
    starts at a word. A text that fits in the window equals reading it from scratch."""
    inc = new_session(parts, max_context_chars=200, words_kept=0)  # no word cache to hide a re-read
    text = (TEXT + " ") * 2
    longest_word = max(len(parts[1].encode_word(w)) for w in text.split())
    wins = set()
    for i in range(1, 800):
        before = inc.context_tokens_fed + inc.context_tokens_reused
        inc.suggest(text[:i], phrase=False)
        assert inc.context_tokens_fed + inc.context_tokens_reused - before <= longest_word + 1, i
        wins.add(inc._win)
        if i == 190:  # still inside the first window: exactly what a fresh session reads
            same(inc.suggest(text[:i]), new_session(parts, max_context_chars=200).suggest(text[:i]))
    assert len(wins) >= 4  # it moved, in steps of max_context_chars // 4
    assert all(w == 0 or text[w - 1].isspace() for w in wins)  # always at a word start
    assert len(inc._ctx) <= 200 and inc._ctx == text[inc._win:799][:len(inc._ctx)]
    fresh = new_session(parts, max_context_chars=200)
    fresh.suggest(text[:799], phrase=False)  # a fresh session reads the window from the start state
    assert not np.array_equal(inc._nodes[0].state[0], fresh._nodes[0].state[0])  # the typed one carried it
    # an edit inside the moved window re-reads from the edited word on, and only that
    ctx = text[:799][: text[:799].rstrip().rfind(" ") + 1]
    inc.suggest(ctx, phrase=False)
    words = text[inc._win:len(ctx)].split()
    at = 2  # near the window start: words that came through a move
    start = inc._win + len(" ".join(words[:at])) + 1
    edited = ctx[:start] + "zq" + ctx[start:]
    inc._cache.clear()  # nor the search's rows
    before = inc.context_tokens_fed
    inc.suggest(edited, phrase=False)
    redo = ["zq" + words[at]] + words[at + 1:]
    assert inc.context_tokens_fed - before == sum(len(parts[1].encode_word(w)) for w in redo)


def test_a_window_that_moves_back_reads_from_the_start_of_a_text(parts):
    """After the window moved on, its first node is the state after the words it dropped. A new
    short text (or a big delete) moves the window back: it must be read from the start of a
    text, as a fresh session reads it, not from that carried state."""
    s = new_session(parts, max_context_chars=64)
    long = (TEXT + " ") * 2
    for i in range(1, len(long)):
        s.suggest(long[:i], phrase=False)
    assert s._win > 0
    same(s.suggest("Thank you f"), new_session(parts, max_context_chars=64).suggest("Thank you f"))


def test_blank_lines_add_nothing(session, parts):
    """A line break is read as one end-of-text; more blank lines change nothing."""
    one = session.suggest("Thank you.\n", phrase=False)
    for n in (2, 3, 4):
        same(session.suggest("Thank you." + "\n" * n, phrase=False), one)
        same(new_session(parts).suggest("Thank you." + "\n" * n, phrase=False), one)


@pytest.mark.parametrize("before", ["see you ", "see you " * 40])
def test_a_word_longer_than_the_window_gets_nothing(parts, before):
    """A 60-character "word" (a pasted hash) with a 64-character window: no suggestion, whether
    or not the text before it moved the window (not the start-of-text words)."""
    s = new_session(parts, max_context_chars=64)
    assert s.suggest(before + "x" * 60) == []
    assert s.suggest(before + "x" * 60 + " ", phrase=False)  # committed: next words again
