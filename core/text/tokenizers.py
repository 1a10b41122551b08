"""Tokenizers: SentencePiece (unigram | bpe), characters, whitespace words. TORCH-FREE.

Imports only the standard library, numpy and sentencepiece, so the on-device runner and the
demo can load them without torch. Every kind has the same protocol (docs/CONTRACTS.md):

    encode(text, add_bos=False, add_eos=False) -> list[int]     decode(ids) -> str
    vocab_size, pad_id, unk_id, bos_id, eos_id (-1 if absent), id_to_piece(i)
    save(dir) -> Path   writes tokenizer.model (sentencepiece) or tokenizer.json (char / word)
    sha256()            of exactly the bytes save() writes (bundles record it)
    load_tokenizer(dir) picks the kind by the file present.

Special ids: sentencepiece and word share pad=0, unk=1, bos=2, eos=3; char has pad=0, unk=1.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from collections import Counter
from pathlib import Path
from typing import Iterable, Sequence

from rnnkit.core.atomic import atomic_write_bytes  # stdlib only

MODEL_FILE = "tokenizer.model"
JSON_FILE = "tokenizer.json"
FORMAT_VERSION = 1
REPLACEMENT = "\ufffd"  # what an unknown character decodes to (CharTokenizer)


def _check_ids(ids: Sequence[int], vocab_size: int) -> list[int]:
    out = [int(i) for i in ids]
    bad = [i for i in out if not 0 <= i < vocab_size]
    if bad:
        raise ValueError(f"token id(s) {bad[:5]} out of range [0, {vocab_size})")
    return out


class _Base:
    kind = "base"
    pad_id = unk_id = bos_id = eos_id = -1

    def _with_specials(self, ids: list[int], add_bos: bool, add_eos: bool) -> list[int]:
        for flag, name in ((add_bos, "bos"), (add_eos, "eos")):
            if flag and getattr(self, f"{name}_id") < 0:
                raise ValueError(f"{type(self).__name__} has no {name} token")
        return ([self.bos_id] if add_bos else []) + ids + ([self.eos_id] if add_eos else [])

    def to_bytes(self) -> bytes:
        raise NotImplementedError

    @property
    def file_name(self) -> str:
        return JSON_FILE

    def save(self, directory: str | os.PathLike) -> Path:
        """Write the tokenizer file into ``directory`` atomically; returns its path."""
        return atomic_write_bytes(Path(directory) / self.file_name, self.to_bytes())

    def sha256(self) -> str:
        return hashlib.sha256(self.to_bytes()).hexdigest()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab_size={self.vocab_size})"


# --- SentencePiece ---------------------------------------------------------------------------
class SentencePieceTokenizer(_Base):
    """A SentencePiece model held as its serialized proto (bytes). Byte fallback means any
    text (emoji, other scripts) round-trips: ``decode(encode(t)) == t``."""

    kind = "sentencepiece"

    def __init__(self, model_proto: bytes):
        import sentencepiece as spm

        self._proto = bytes(model_proto)
        self._sp = spm.SentencePieceProcessor()
        try:
            self._sp.LoadFromSerializedProto(self._proto)
        except Exception as e:  # sentencepiece raises RuntimeError / OSError with C++ text
            raise ValueError(f"not a SentencePiece model: {e}") from None
        self.vocab_size = self._sp.get_piece_size()
        self.pad_id, self.unk_id = self._sp.pad_id(), self._sp.unk_id()
        self.bos_id, self.eos_id = self._sp.bos_id(), self._sp.eos_id()

    @property
    def file_name(self) -> str:
        return MODEL_FILE

    def encode(self, text: str, add_bos: bool = False, add_eos: bool = False) -> list[int]:
        return self._with_specials(list(self._sp.encode(text)), add_bos, add_eos)

    def decode(self, ids: Sequence[int]) -> str:
        """pad / bos / eos are dropped (they are control symbols)."""
        return self._sp.decode(_check_ids(ids, self.vocab_size))

    def id_to_piece(self, i: int) -> str:
        return self._sp.id_to_piece(_check_ids([i], self.vocab_size)[0])

    def knows(self, ids: Sequence[int]) -> bool:
        """Whether ``ids`` hold a piece the model learned as such: not only byte-fallback pieces
        (an emoji, a zero-width space), unknowns, control ids or the bare word-start mark."""
        sp = self._sp
        return any(not (sp.is_byte(i) or sp.is_unknown(i) or sp.is_control(i)) and sp.id_to_piece(i) != "\u2581"
                   for i in _check_ids(ids, self.vocab_size))

    def to_bytes(self) -> bytes:
        return self._proto

    @classmethod
    def load(cls, path: str | os.PathLike) -> "SentencePieceTokenizer":
        return cls(Path(path).read_bytes())


def _sentences(texts: Iterable[str]) -> Iterable[str]:
    for text in texts:  # a sentence must not hold a newline; blank lines teach nothing
        for line in str(text).split("\n"):
            if line.strip():
                yield line


def train_sentencepiece(texts: Iterable[str], vocab_size: int = 8000, model_type: str = "unigram",
                        directory: str | os.PathLike | None = None, *,
                        character_coverage: float = 0.9995, input_sentence_size: int = 1_000_000,
                        user_defined_symbols: Sequence[str] = (), seed: int = 0,
                        num_threads: int = 2) -> SentencePieceTokenizer:
    """Train on an iterable of lines (in memory, no temp files); save into ``directory`` if given.

    byte_fallback (unknown characters -> UTF-8 byte pieces, so everything round-trips),
    identity normalisation (case, spacing and Unicode form kept exactly), pad=0 unk=1 bos=2
    eos=3. ``input_sentence_size`` caps the lines sampled for training (speed).
    """
    import sentencepiece as spm

    if model_type not in ("unigram", "bpe"):
        raise ValueError(f"model_type must be 'unigram' or 'bpe', got {model_type!r}")
    minimum = 4 + 256 + len(user_defined_symbols) + 1  # specials + byte pieces + one more
    if vocab_size < minimum:
        raise ValueError(f"vocab_size {vocab_size} is too small: byte fallback alone needs "
                         f"{4 + 256} ids; use at least {minimum}")
    sentences = list(_sentences(texts))
    if not sentences:
        raise ValueError("no text to train the tokenizer on (all lines empty)")
    spm.set_random_generator_seed(seed)
    proto = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences), model_writer=proto, vocab_size=vocab_size,
            model_type=model_type, byte_fallback=True, pad_id=0, unk_id=1, bos_id=2, eos_id=3,
            normalization_rule_name="identity", remove_extra_whitespaces=False,
            character_coverage=character_coverage, input_sentence_size=input_sentence_size,
            shuffle_input_sentence=True, user_defined_symbols=list(user_defined_symbols),
            hard_vocab_limit=False, num_threads=num_threads, minloglevel=2)
    except RuntimeError as e:
        need = re.search(r"required_chars\. (\d+) vs (\d+)", str(e))
        if need:  # byte pieces + specials + the characters the text needs do not fit
            raise ValueError(f"vocab_size {vocab_size} is too small for this text: it needs at "
                             f"least {int(need.group(2)) + 1} (260 specials and byte pieces + "
                             "the characters that cover it)") from None
        raise ValueError(f"sentencepiece training failed ({model_type}, vocab_size "
                         f"{vocab_size}, {len(sentences)} lines): {e}") from None
    tok = SentencePieceTokenizer(proto.getvalue())
    if directory is not None:
        tok.save(directory)
    return tok


# --- vocabulary-list tokenizers (tokenizer.json) --------------------------------------------
class _VocabTokenizer(_Base):
    specials: tuple[str, ...] = ()

    def __init__(self, vocab: Sequence[str]):
        vocab = list(vocab)
        if list(vocab[:len(self.specials)]) != list(self.specials):
            raise ValueError(f"{type(self).__name__} vocab must start with {self.specials}, "
                             f"got {vocab[:len(self.specials)]}")
        if len(set(vocab)) != len(vocab):
            dup = [p for p, n in Counter(vocab).items() if n > 1][:5]
            raise ValueError(f"{type(self).__name__} vocab has duplicates: {dup}")
        self.vocab = vocab
        self.index = {p: i for i, p in enumerate(vocab)}
        self.vocab_size = len(vocab)
        for name in ("pad", "unk", "bos", "eos"):
            setattr(self, f"{name}_id", self.index.get(f"<{name}>", -1))

    def id_to_piece(self, i: int) -> str:
        return self.vocab[_check_ids([i], self.vocab_size)[0]]

    def knows(self, ids: Sequence[int]) -> bool:
        """Whether ``ids`` hold an entry other than the unknown one and the specials."""
        n = len(self.specials)
        return any(i >= n and i != self.unk_id for i in _check_ids(ids, self.vocab_size))

    def _record(self) -> dict:
        return {"kind": self.kind, "format_version": FORMAT_VERSION, "vocab": self.vocab}

    def to_bytes(self) -> bytes:
        return (json.dumps(self._record(), ensure_ascii=False, indent=1) + "\n").encode("utf-8")


class CharTokenizer(_VocabTokenizer):
    """One id per character seen in training; others -> ``<unk>`` (decoded as U+FFFD)."""

    kind = "char"
    specials = ("<pad>", "<unk>")

    @classmethod
    def train(cls, texts: Iterable[str]) -> "CharTokenizer":
        chars: set[str] = set()
        for text in texts:
            chars.update(text)
        if not chars:
            raise ValueError("no text to build a character vocabulary from")
        return cls(list(cls.specials) + sorted(chars))

    def encode(self, text: str, add_bos: bool = False, add_eos: bool = False) -> list[int]:
        get, unk = self.index.get, self.unk_id
        return self._with_specials([get(c, unk) for c in text], add_bos, add_eos)

    def decode(self, ids: Sequence[int]) -> str:
        out = []
        for i in _check_ids(ids, self.vocab_size):
            if i == self.unk_id:
                out.append(REPLACEMENT)
            elif i != self.pad_id:
                out.append(self.vocab[i])
        return "".join(out)


class WordTokenizer(_VocabTokenizer):
    """Whitespace words, PTB style: ``<unk>`` for out-of-vocabulary words, ``<eos>`` for each
    line break. ``encode("a b\\nc")`` -> a b <eos> c; ``decode`` turns <eos> back into ``\\n``
    (spacing inside a line becomes single spaces)."""

    kind = "word"
    specials = ("<pad>", "<unk>", "<bos>", "<eos>")

    @classmethod
    def train(cls, lines: Iterable[str], vocab_size: int = 0, min_freq: int = 1) -> "WordTokenizer":
        """Most frequent words first (ties alphabetical); ``vocab_size`` counts the specials
        (0 = every word with at least ``min_freq`` occurrences)."""
        counts = Counter(w for line in lines for w in line.split())
        for s in cls.specials:
            counts.pop(s, None)
        words = sorted((w for w, n in counts.items() if n >= min_freq), key=lambda w: (-counts[w], w))
        if not words:
            raise ValueError("no words to build a vocabulary from")
        if vocab_size:
            if vocab_size <= len(cls.specials):
                raise ValueError(f"vocab_size must exceed the {len(cls.specials)} special tokens")
            words = words[:vocab_size - len(cls.specials)]
        return cls(list(cls.specials) + words)

    def __init__(self, vocab: Sequence[str]):
        super().__init__(vocab)
        # Text can spell "<eos>" or "<pad>": that is an unknown word, never a control token
        # (only "<unk>", as PTB writes it, maps to its id).
        self._words = {w: i for w, i in self.index.items() if w not in ("<pad>", "<bos>", "<eos>")}

    def encode(self, text: str, add_bos: bool = False, add_eos: bool = False) -> list[int]:
        get, unk = self._words.get, self.unk_id
        lines = text.split("\n")
        ids: list[int] = []
        for n, line in enumerate(lines):
            ids.extend(get(w, unk) for w in line.split())
            if n < len(lines) - 1:
                ids.append(self.eos_id)
        return self._with_specials(ids, add_bos, add_eos)

    def decode(self, ids: Sequence[int]) -> str:
        out: list[str] = []
        line: list[str] = []
        for i in _check_ids(ids, self.vocab_size):
            if i == self.eos_id:
                out.append(" ".join(line) + "\n")
                line = []
            elif i not in (self.pad_id, self.bos_id):
                line.append(self.vocab[i])
        return "".join(out) + " ".join(line)


_JSON_KINDS = {"char": CharTokenizer, "word": WordTokenizer}


def load_tokenizer(path: str | os.PathLike):
    """A run / bundle directory (or the tokenizer file itself) -> its tokenizer."""
    path = Path(path)
    if path.is_dir():
        found = [path / n for n in (MODEL_FILE, JSON_FILE) if (path / n).is_file()]
        if not found:
            raise FileNotFoundError(f"{path}: no {MODEL_FILE} or {JSON_FILE} in this directory")
        if len(found) > 1:
            raise ValueError(f"{path}: both {MODEL_FILE} and {JSON_FILE}; keep the one the model "
                             "was trained with")
        path = found[0]
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such tokenizer file")
    if path.suffix == ".model":
        return SentencePieceTokenizer.load(path)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        kind = record["kind"]
        vocab = record["vocab"]
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: not an rnnkit tokenizer.json ({e})") from None
    if kind not in _JSON_KINDS:
        raise ValueError(f"{path}: unknown tokenizer kind {kind!r}; known: {sorted(_JSON_KINDS)}")
    if record.get("format_version", 1) > FORMAT_VERSION:
        raise ValueError(f"{path}: format_version {record['format_version']} is newer than this "
                         f"rnnkit understands ({FORMAT_VERSION}); upgrade rnnkit")
    return _JSON_KINDS[kind](vocab)


def stream_ids(tokenizer, kind: str, lines: Sequence[str]) -> list[int]:
    """A language model's token stream of ``lines``: char -- the text with its line breaks; word /
    sentencepiece -- each non-blank line's ids followed by ``eos_id``. Training (``lm_data.encode_stream``)
    and scoring a bundle (``rnnkit.edge.evaluate``) read text this one way."""
    if kind == "char":
        return list(tokenizer.encode("\n".join(lines) + "\n"))
    eos = tokenizer.eos_id
    if eos < 0:
        raise ValueError(f"{type(tokenizer).__name__} has no eos id: a {kind} LM stream needs one")
    ids: list[int] = []
    for line in lines:
        if line.strip():
            ids.extend(tokenizer.encode(line))
            ids.append(eos)
    return ids
