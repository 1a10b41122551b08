"""The tokenizer seen as bytes: which pieces start a word, continue one, or end one.

Prefix-constrained search works on UTF-8 bytes, not on piece strings, so a word spelled by
byte-fallback pieces (``<0xC3><0xA9>`` for "é") matches a typed prefix like any other.
A piece's *surface* is its bytes with SentencePiece's "▁" turned into a space.

Word bytes: ASCII letters, digits, apostrophe and hyphen, and every non-ASCII byte (letters
of other scripts). A word ends where the next piece starts with a space, starts with
punctuation, or is end-of-sequence.

Torch-free: numpy and sentencepiece.
"""

from __future__ import annotations

import bisect
import hashlib
import os
import re

import numpy as np

from .words import SPACE, WORD_BYTES

_BYTE_PIECE = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")
MAX_PIECE_BYTES = 64
SENTENCE_END = (b".", b"!", b"?")  # a phrase never goes past these (edge/phrase.py)
# Surrogates cannot be UTF-8 encoded; C0/C1 controls (other than whitespace) mean nothing to a
# keyboard. Both are replaced before anything else sees the text.
_SURROGATES = re.compile("[\ud800-\udfff]")
_CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def clean_text(text: str) -> str:
    """Lone surrogates -> U+FFFD, control characters -> space (whitespace kept)."""
    return _CONTROLS.sub(" ", _SURROGATES.sub("\ufffd", text))


def is_word_bytes(b: bytes) -> bool:
    return bool(b) and all(c in WORD_BYTES for c in b)


class SentencePieceVocab:
    """A SentencePiece model with every piece's surface bytes and class precomputed.

    Arrays are indexed by piece id (length V): ``word_start`` (a space then word bytes),
    ``word_cont`` (word bytes, no space), ``ends_word`` (what may follow a finished word),
    ``last_nonword`` (index of the last non-word byte in the surface, -1 if none).
    """

    def __init__(self, model_file: str | os.PathLike, eos_id: int = -1):
        import sentencepiece as spm

        path = str(model_file)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path}: tokenizer model not found")
        with open(path, "rb") as f:
            blob = f.read()
        self.sha256 = hashlib.sha256(blob).hexdigest()
        try:
            self.sp = spm.SentencePieceProcessor(model_proto=blob)
        except Exception as e:  # sentencepiece raises RuntimeError/OSError on a bad proto
            raise ValueError(f"{path}: not a SentencePiece model ({str(e).splitlines()[0][:200]})") from None
        sp = self.sp
        V = self.vocab_size = sp.get_piece_size()
        self.eos_id = eos_id if eos_id >= 0 else sp.eos_id()
        self.unk_id = sp.unk_id()
        surf: list[bytes] = []
        special = np.zeros(V, dtype=bool)
        for i in range(V):
            piece = sp.id_to_piece(i)
            m = _BYTE_PIECE.match(piece) if sp.is_byte(i) else None
            if m:
                surf.append(bytes([int(m.group(1), 16)]))
            elif sp.is_control(i) or sp.is_unknown(i) or sp.is_unused(i):
                surf.append(b"")
                special[i] = True
            else:
                surf.append(piece.replace(SPACE, " ").encode("utf-8"))
        self.surface = surf
        self.special = special
        self.starts_space = starts_space = np.array([s[:1] == b" " for s in surf])
        wordy = np.array([is_word_bytes(s[1:] if s[:1] == b" " else s) for s in surf])
        self.word_start = starts_space & ~special & np.array([is_word_bytes(s[1:]) or s == b" " for s in surf])
        self.word_cont = ~starts_space & ~special & wordy
        first_nonword = np.array([bool(s) and s[0] not in WORD_BYTES for s in surf])
        self.ends_word = (starts_space | first_nonword) & ~special
        if 0 <= self.eos_id < V:
            self.ends_word[self.eos_id] = True
        self.ends_word_f32 = self.ends_word.astype(np.float32)  # for one matrix-vector product per batch
        self.ends_sentence = np.array([s.rstrip()[-1:] in SENTENCE_END for s in surf]) & ~special
        self.last_nonword = np.array(
            [max((j for j, c in enumerate(s) if c not in WORD_BYTES), default=-1) for s in surf], dtype=np.int64)
        # Sorted surfaces for "pieces that start with these bytes" (a bisect range), and the
        # exact-surface index for "pieces that are a prefix of these bytes".
        order = sorted((s, i) for i, s in enumerate(surf) if s and not special[i])
        self._sorted = [s for s, _ in order]
        self._sorted_ids = np.array([i for _, i in order], dtype=np.int64)
        self._matching: dict[tuple[bytes, bool], np.ndarray] = {}  # typed prefixes repeat keystroke to keystroke
        self._exact: dict[bytes, list[int]] = {}
        for s, i in order:
            self._exact.setdefault(s, []).append(i)

    # ------------------------------------------------------------------ text
    def encode_word(self, word: str) -> list[int]:
        """Ids of one whitespace-free word as it appears after a space (or at the start)."""
        return self.sp.encode(word)

    def normalize(self, word: str) -> str:
        """A partial word as the tokenizer's own normaliser sees it (e.g. NFKC), no leading space."""
        text = self.sp.normalize(word).replace(SPACE, " ")
        return text[1:] if text.startswith(" ") else text

    # ------------------------------------------------------------------ search
    def matching(self, remaining: bytes, first: bool) -> np.ndarray:
        """Piece ids that can come next when ``remaining`` typed bytes are still unmatched.

        ``first``: the word's first piece (must start with a space). A piece matches when it
        is a prefix of ``remaining`` or starts with it and adds only word bytes after it.
        With nothing left to match, any word-continuation piece does.
        """
        key = (remaining, first)
        hit = self._matching.get(key)
        if hit is None:
            if len(self._matching) > 4096:
                self._matching.clear()
            hit = self._matching[key] = self._match(remaining, first)
        return hit

    def _match(self, remaining: bytes, first: bool) -> np.ndarray:
        if not remaining:
            return np.flatnonzero(self.word_cont)
        lo = bisect.bisect_left(self._sorted, remaining)
        hi = bisect.bisect_left(self._sorted, remaining + b"\xff" * MAX_PIECE_BYTES, lo)
        longer = self._sorted_ids[lo:hi]
        longer = longer[self.last_nonword[longer] < len(remaining)]
        shorter = [i for j in range(1, min(len(remaining), MAX_PIECE_BYTES) + 1)
                   for i in self._exact.get(remaining[:j], ())]
        ids = np.unique(np.concatenate([longer, np.array(shorter, dtype=np.int64)]))
        starts = self.starts_space[ids]
        return ids[starts] if first else ids[~starts]
