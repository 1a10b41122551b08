"""What a word is, once, for everything that counts or offers words: the suggestion session,
the piece search, the lexicon, the user cache, eval-suggest, the Kneser-Ney baseline and the
training-time next-word metric.

A word is a run of letters and digits of any script, joined by inner apostrophes or hyphens:
"don't", "e-mail", "café's", "2nd". Punctuation, symbols and "_" are not word characters; a
leading or trailing apostrophe or hyphen is not part of the word.

SentencePiece marks a word start with ``SPACE`` ("▁"). Working on UTF-8 bytes, the piece
search cannot tell a letter from a symbol inside a multi-byte character, so at the byte level
every non-ASCII byte counts as a word byte (``WORD_BYTES``); the lexicon then decides whether
what was spelled is a word.

Torch-free: stdlib only.
"""

from __future__ import annotations

import re
import unicodedata

SPACE = "\u2581"  # SentencePiece's meta symbol for a space (the start of a word)
APOSTROPHES = "'\u2019"
WORD = re.compile(r"[^\W_]+(?:['\u2019-][^\W_]+)*")
TOKEN = re.compile(WORD.pattern + r"|[^\w\s]|_")  # words, and every other mark on its own
WORD_BYTES = frozenset(
    b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'-" + bytes(range(0x80, 0x100)))


def words_of(text: str) -> list[str]:
    """The words of a text, in order. The typographic apostrophe is read as "'", and a letter
    typed as a base letter and a combining accent (NFD: "cafe" + U+0301) as the one accented
    letter (NFC: "café"), as the tokenizer reads it; a combining mark is no word character."""
    if not text.isascii():
        text = unicodedata.normalize("NFC", text).replace("\u2019", "'")
    return WORD.findall(text)


def tokenize(line: str) -> list[str]:
    """Words and punctuation marks of one line, in order."""
    return TOKEN.findall(line)


def is_word(token: str) -> bool:
    return bool(WORD.fullmatch(token))


def split_possessive(token: str) -> list[str]:
    """CoNLL / Penn Treebank split the possessive off a name: "Germany's" -> "Germany", "'s"."""
    if len(token) > 2 and token[-2] in APOSTROPHES and token[-1] in "sS":
        return [token[:-2], token[-2:]]
    return [token]


def norm_word(word: str) -> str:
    """A tagger's vocabulary key: lower case, every digit 0 ("Paris" and "paris", "1996" and "2001"
    share an entry). Training (core/tasks/tagger.py) and the device (edge/predict_tag.py) both use it."""
    return re.sub(r"\d", "0", word.lower())
