"""Named entities in a text from a ``tagger`` bundle (``tag`` graph + ``tagger_vocab.json``), torch-free.

The text is split into CoNLL-like tokens (words, numbers, each punctuation mark; ``U.S.`` stays
one token), each token gets a tag, and runs of tags become entities with their character
offsets in the text. The word / character ids follow ``rnnkit.core.tasks.tagger.TaggerVocab``
(words lower-cased with digits -> 0, characters with their case; 0 pad, 1 unk).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Sequence

import numpy as np

from . import names
from .bundle import BundleError
from .predict import MAX_TAG_TOKENS, InputError, graph, load_bundle

# Abbreviations with inner dots (U.S., e.g.), words with inner apostrophes / hyphens / dots,
# numbers with separators, then any other single non-space character.
TOKEN = re.compile(r"(?:[^\W\d_]\.){2,}|\w+(?:[-'’.,]\w+)*|\S")


def tokenize(text: str) -> list[tuple[str, int, int]]:
    """CoNLL-like tokens of ``text`` as (token, start, end) character offsets."""
    return [(m.group(), m.start(), m.end()) for m in TOKEN.finditer(text)]


def _split_tag(tag: str) -> tuple[str, str]:
    if tag in ("O", ""):
        return "O", ""
    if len(tag) > 1 and tag[1] in "-_" and tag[0] in "BIES":
        return tag[0], tag[2:]
    return "I", tag


def spans(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """Entities as (type, first, last) token indices, inclusive: the conlleval chunk rules
    (BIO1, BIO2 and IOBES; an I- after O or after another type starts an entity), the same
    chunks ``rnnkit.core.tasks.tagger.chunks`` scores (tested)."""
    out: list[tuple[str, int, int]] = []
    prev, ptype, begin = "O", "", -1
    for i, tag in enumerate(list(tags) + ["O"]):
        cur, ctype = _split_tag(tag)
        ends = prev in ("E", "S") or (prev in ("B", "I") and cur in ("B", "S", "O")) or (prev != "O" and ptype != ctype)
        if begin >= 0 and ends:
            out.append((ptype, begin, i - 1))
            begin = -1
        starts = cur in ("B", "S") or (cur in ("I", "E") and prev in ("O", "E", "S")) or (cur != "O" and ptype != ctype)
        if starts:
            begin = i
        prev, ptype = cur, ctype
    return out


def norm_word(word: str) -> str:
    return re.sub(r"\d", "0", word.lower())


class EntityTagger:
    """Tags tokens with a ``tagger`` bundle; ``predict(text)`` returns the entities."""

    def __init__(self, directory: str | Path, threads: int = 1):
        self.bundle = load_bundle(directory, "tagger")
        self.graph = graph(self.bundle, names.JOB_TAG, threads)
        try:
            vocab = json.loads(self.bundle.tokenizer_path.read_text(encoding="utf-8"))
            self.tags = [str(t) for t in vocab["tags"]]
            self.word_id = {str(w): i for i, w in enumerate(vocab["words"])}
            self.char_id = {str(c): i for i, c in enumerate(vocab["chars"])}
            self.max_word_len = int(vocab.get("max_word_len", 20))
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise BundleError(f"{directory}: not a tagger vocabulary ({type(e).__name__}: {str(e)[:80]})") from None
        if not self.tags or not 1 <= self.max_word_len <= 1000:
            raise BundleError(f"{directory}: the tagger vocabulary has no tags or a bad max_word_len")
        self.types = sorted({_split_tag(t)[1] for t in self.tags if t != "O"})

    def _feeds(self, tokens: Sequence[str]) -> dict[str, np.ndarray]:
        T = len(tokens)
        words = np.asarray([[self.word_id.get(norm_word(w), 1) for w in tokens]], dtype=np.int64)
        char_ids = [[self.char_id.get(c, 1) for c in w[:self.max_word_len]] or [1] for w in tokens]
        chars = np.zeros((1, T, max(len(c) for c in char_ids)), dtype=np.int64)
        for t, c in enumerate(char_ids):
            chars[0, t, :len(c)] = c
        return {names.TOKENS: words, names.LENGTHS: np.asarray([T], dtype=np.int64), names.CHARS: chars}

    def tag(self, tokens: Sequence[str]) -> list[str]:
        """One tag per token (the most likely; no CRF)."""
        if not tokens:
            return []
        if len(tokens) > MAX_TAG_TOKENS:
            raise InputError(f"the text is {len(tokens):,} tokens long; the limit is {MAX_TAG_TOKENS} (split it)")
        if not all(isinstance(t, str) and t and not t.isspace() for t in tokens):
            raise InputError("every token must be a non-empty string without only spaces")
        logits = self.graph.run(**self._feeds(tokens))[names.LOGITS]  # (1, T, K)
        return [self.tags[int(k)] if int(k) < len(self.tags) else "O" for k in logits[0].argmax(-1)]

    def predict(self, text: str) -> dict:
        """``{"tokens", "tags", "entities": [{"text", "type", "start", "end"}]}`` (character offsets)."""
        toks = tokenize(text)
        if not toks:
            raise InputError("the text has no words to tag")
        out = self.predict_tokens([t for t, _, _ in toks])
        for e in out["entities"]:
            first, last = e.pop("first"), e.pop("last")
            e["start"], e["end"] = toks[first][1], toks[last][2]
            e["text"] = text[e["start"]:e["end"]]
        return out

    def predict_tokens(self, tokens: Sequence[str]) -> dict:
        """Like ``predict`` on tokens already split; entities carry token indices ``first``/``last``."""
        tags = self.tag(list(tokens))
        ents = [{"text": " ".join(tokens[a:b + 1]), "type": kind, "first": a, "last": b} for kind, a, b in spans(tags)]
        return {"tokens": list(tokens), "tags": tags, "entities": ents}


def highlighted(text: str, entities: Sequence[dict]) -> list[tuple[str, str | None]]:
    """``text`` cut into (segment, entity type or None) pieces, for gr.HighlightedText."""
    out: list[tuple[str, str | None]] = []
    at = 0
    for e in sorted(entities, key=lambda e: e["start"]):
        if e["start"] > at:
            out.append((text[at:e["start"]], None))
        out.append((text[e["start"]:e["end"]], e["type"]))
        at = e["end"]
    if at < len(text):
        out.append((text[at:], None))
    return out
