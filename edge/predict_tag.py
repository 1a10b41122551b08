"""Named entities in a text from a ``tagger`` bundle (``tag`` graph + ``tagger_vocab.json``), torch-free.

The text is split into CoNLL-like tokens (words, numbers, each punctuation mark; ``U.S.`` stays
one token), each token gets a tag, and runs of tags become entities (``chunks``: the conlleval
rules that entity F1 scores, rnnkit.core.metrics.entities) with their character offsets in the text. The word / character ids follow ``rnnkit.core.tasks.tagger.TaggerVocab``
(words lower-cased with digits -> 0, characters with their case; 0 pad, 1 unk).
"""

from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path
from typing import Sequence

import numpy as np

from rnnkit.core.metrics.entities import chunks, split_tag  # torch-free: the one conlleval chunker

from . import names
from .bundle import BundleError
from .words import norm_word, split_possessive
from .predict import MAX_TAG_TOKENS, InputError, graph, load_bundle
from .viterbi import decode_batch, tables as viterbi_tables

# A word character, combining accents included ("Jose" + U+0301 is one word, as "José").
_W = r"[\w\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]"
# Abbreviations with inner dots (U.S., e.g.), numbers with separators (1,000.5, 1,500m), words with inner
# apostrophes / hyphens or a dot before a lower-case letter or digit (reuters.com), then any
# other single non-space character: "Paris.Then" and "Berlin,Germany" are two words each.
TOKEN = re.compile(rf"(?:[^\W\d_]\.){{2,}}|\d+(?:[.,]\d+)+{_W}*(?:-{_W}+)*|{_W}+(?:[-'’]{_W}+|\.[a-z0-9]{_W}*)*|\S")


def tokenize(text: str) -> list[tuple[str, int, int]]:
    """CoNLL-like tokens of ``text`` as (token, start, end) character offsets; a possessive is its
    own token, as in the training sentences ("Germany's" -> "Germany" "'s")."""
    out = []
    for m in TOKEN.finditer(text):
        start = m.start()
        for part in split_possessive(m.group()):
            out.append((part, start, start + len(part)))
            start += len(part)
    return out


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
        self.types = sorted({split_tag(t)[1] for t in self.tags if t != "O"})
        try:  # a CRF tagger: its transition scores, for Viterbi decoding
            self.crf = viterbi_tables(self.bundle.manifest["crf"]) if self.bundle.manifest.get("crf") else None
        except ValueError as e:
            raise BundleError(f"{directory}: {e}") from None
        if self.crf is not None and self.crf[0].shape[0] != len(self.tags):
            raise BundleError(f"{directory}: the CRF has {self.crf[0].shape[0]} tags, the vocabulary {len(self.tags)}")

    def _feeds(self, token_lists: Sequence[Sequence[str]]) -> dict[str, np.ndarray]:
        """words (B, T), lengths (B,), chars (B, T, W) of token lists, padded with 0 (as the task pads)."""
        # The vocabulary holds NFC words ("José"); a token may be typed decomposed ("Jose" + U+0301).
        token_lists = [[unicodedata.normalize("NFC", w) for w in toks] for toks in token_lists]
        B, T = len(token_lists), max(len(t) for t in token_lists)
        words = np.zeros((B, T), dtype=np.int64)
        char_ids = [[[self.char_id.get(c, 1) for c in w[:self.max_word_len]] or [1] for w in toks]
                    for toks in token_lists]
        chars = np.zeros((B, T, max(len(c) for cs in char_ids for c in cs)), dtype=np.int64)
        for b, (toks, cs) in enumerate(zip(token_lists, char_ids)):
            words[b, :len(toks)] = [self.word_id.get(norm_word(w), 1) for w in toks]
            for t, c in enumerate(cs):
                chars[b, t, :len(c)] = c
        lengths = np.asarray([len(t) for t in token_lists], dtype=np.int64)
        return {names.TOKENS: words, names.LENGTHS: lengths, names.CHARS: chars}

    def tag_batch(self, token_lists: Sequence[Sequence[str]]) -> list[list[str]]:
        """One tag per token of each (non-empty) token list, the lists run as one batch."""
        if not token_lists:
            return []
        logits = self.graph.run(**self._feeds(token_lists))[names.LOGITS]  # (B, T, K)
        best = decode_batch(logits, [len(t) for t in token_lists], self.crf)
        return [[self.tags[int(k)] if int(k) < len(self.tags) else "O" for k in row] for row in best]

    def tag(self, tokens: Sequence[str]) -> list[str]:
        """One tag per token: the best sequence under the CRF when the bundle has one, else each token's most likely."""
        if not tokens:
            return []
        if len(tokens) > MAX_TAG_TOKENS:
            raise InputError(f"the text is {len(tokens):,} tokens long; the limit is {MAX_TAG_TOKENS} (split it)")
        if not all(isinstance(t, str) and t and not t.isspace() for t in tokens):
            raise InputError("every token must be a non-empty string without only spaces")
        return self.tag_batch([list(tokens)])[0]

    def predict(self, text: str) -> dict:
        """``{"tokens", "tags", "entities": [{"text", "type", "start", "end"}]}`` (character offsets).
        Each line is a sentence of its own (as a CoNLL sentence, and as `rnnkit predict` reads a
        file): an entity never runs across a line break ("Acme Corp" / "London" in a signature)."""
        lines, at = [], 0
        for line in text.split("\n"):
            toks = [(t, a + at, b + at) for t, a, b in tokenize(line)]
            if toks:
                lines.append(toks)
            at += len(line) + 1
        if not lines:
            raise InputError("the text has no words to tag")
        n = sum(len(t) for t in lines)
        if n > MAX_TAG_TOKENS:
            raise InputError(f"the text is {n:,} tokens long; the limit is {MAX_TAG_TOKENS} (split it)")
        out = {"tokens": [], "tags": [], "entities": []}
        for toks, tags in zip(lines, self.tag_batch([[t for t, _, _ in toks] for toks in lines])):
            out["tokens"] += [t for t, _, _ in toks]
            out["tags"] += tags
            for kind, a, b in chunks(tags):
                start, end = toks[a][1], toks[b][2]
                out["entities"].append({"text": text[start:end], "type": kind, "start": start, "end": end})
        return out

    def predict_tokens(self, tokens: Sequence[str]) -> dict:
        """Like ``predict`` on tokens already split; entities carry token indices ``first``/``last``."""
        tags = self.tag(list(tokens))
        ents = [{"text": " ".join(tokens[a:b + 1]), "type": kind, "first": a, "last": b} for kind, a, b in chunks(tags)]
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
