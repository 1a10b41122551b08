"""Text engines on ONNX bundles (numpy + onnxruntime): generation, sentiment, translation.

Moved here from the demo so that ``rnnkit predict`` and the demo run the same code; each engine
has ``predict(...) -> dict`` (one JSON-able answer, what ``rnnkit predict --json`` prints) besides
the richer calls the demo uses (streaming, running score, attention).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import numpy as np

from . import names
from .bundle import BundleError
from .npsample import beam_search, decode_continuation, generate, start_ids
from .predict import (MAX_PROMPT_TOKENS, MAX_REVIEW_TOKENS, MAX_SOURCE_TOKENS, InputError, graph, load_bundle,
                      load_tokenizer, piece_text)
from .runner import StepRunner

LENGTH_PENALTY = 0.6  # GNMT alpha; the translation recipe's default (rnnkit.core.tasks.translate)
MAX_TARGET_TOKENS = 160  # 2 x MAX_SOURCE_TOKENS + 10 would be 266: the cap keeps the worst request short
MAX_NEW_TOKENS = 1000
MAX_LINES = 16  # lines one translation request may hold (each is its own beam search)
NO_KNOWN_WORDS = ("the {what} has no word this model knows (only characters it never learned, such as "
                  "emoji or invisible ones): type some words")


# --------------------------------------------------------------------------- generation
class TextGenerator:
    """Streams text from a language-model bundle (``lm`` kind, ``step`` graph): the same start-of-text
    rule, sampler and decoding as ``rnnkit generate`` on the run (``npsample``)."""

    def __init__(self, directory: str | Path, threads: int = 1):
        self.bundle = load_bundle(directory, "lm")
        self.tok = load_tokenizer(self.bundle)
        self.step = self.bundle.runner(StepRunner, names.JOB_STEP, threads=threads, mem_arena=False)
        self.bos_id = self.step.int_meta(names.META_BOS_ID)
        self.eos_id = self.step.int_meta(names.META_EOS_ID)
        self.unk_id = self.step.int_meta(names.META_UNK_ID)

    def encode_prompt(self, prompt: str) -> tuple[list[int], int]:
        """The prompt's ids and how many of them are unknown to the model."""
        ids = list(self.tok.encode(prompt))
        unknown = sum(1 for i in ids if i == self.unk_id) if self.unk_id >= 0 else 0
        return ids, unknown

    def stream(self, prompt: str, max_new_tokens: int, temperature: float = 1.0, top_k: int = 0,
               top_p: float = 1.0, seed: Optional[int] = None, min_interval: float = 0.0,
               greedy: bool = False) -> Iterator[str]:
        """Yield ``prompt`` + the continuation so far, after the first new token and then at most
        every ``min_interval`` seconds (and at the end). A fixed seed gives the same text.

        Models were trained on lines each followed by EOS (char models: "\\n"), so the context
        starts after one (``npsample.start_ids``) and a generated EOS is a line break.
        """
        prompt_ids, _ = self.encode_prompt(prompt)
        if len(prompt_ids) > MAX_PROMPT_TOKENS:
            raise InputError(f"the prompt is {len(prompt_ids):,} tokens long for this model; the limit is "
                             f"{MAX_PROMPT_TOKENS:,}")
        ids = start_ids(self.tok, prompt)
        new: list[int] = []
        last_yield = 0.0
        steps = generate(self.step.step_unchecked, ids, max_new_tokens, temperature, top_k, top_p, seed, greedy,
                         state=self.step.init_state(1))
        for n, tok in enumerate(steps):
            new.append(tok)
            now = time.perf_counter()
            if n == 0 or now - last_yield >= min_interval:
                last_yield = now
                yield prompt + decode_continuation(self.tok, ids, new)
        yield prompt + decode_continuation(self.tok, ids, new)

    def predict(self, text: str, length: int = 100, temperature: float = 0.8, top_k: int = 0, top_p: float = 0.95,
                seed: Optional[int] = None, greedy: bool = False) -> dict:
        """``{"text": prompt + continuation, "continuation"}``; ``greedy`` takes the likeliest token."""
        if not 1 <= length <= MAX_NEW_TOKENS:
            raise InputError(f"length must be from 1 to {MAX_NEW_TOKENS}, got {length}")
        *_, full = self.stream(text, length, temperature, top_k, top_p, seed, min_interval=1e9, greedy=greedy)
        return {"text": full, "continuation": full[len(text):]}


# --------------------------------------------------------------------------- sentiment
@dataclass
class SentimentResult:
    score: float                 # in [-1, 1]: -1 hate ... +1 love
    positive: float              # probability of the positive class
    pieces: list[str]            # the tokens as read
    running: list[float]         # the score after each token (same length as pieces)


MAX_RUNNING_POINTS = 64  # running scores computed exactly up to this many tokens, sampled beyond


class SentimentScorer:
    """Score and polarity of a text (``classifier`` kind: ``classify`` + ``running`` graphs).

    Class 1 is positive (``rnnkit.core.tasks.classify``). Without a score head the score is
    p(positive) - p(negative), which also lies in [-1, 1].
    """

    def __init__(self, directory: str | Path, threads: int = 1):
        self.bundle = load_bundle(directory, "classifier")
        self.tok = load_tokenizer(self.bundle)
        self.classify = graph(self.bundle, names.JOB_CLASSIFY, threads)
        self.running = graph(self.bundle, names.JOB_RUNNING, threads)

    @staticmethod
    def _score(out: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(score, p(positive)) over the leading axes of the graph's outputs."""
        probs = None
        if names.LOGITS in out:
            z = out[names.LOGITS].astype(np.float64)
            z = np.exp(z - z.max(-1, keepdims=True))
            probs = (z / z.sum(-1, keepdims=True))[..., -1]
        if names.SCORE in out:
            score = np.clip(out[names.SCORE][..., 0].astype(np.float64), -1.0, 1.0)
        elif probs is not None:
            score = 2 * probs - 1
        else:
            raise BundleError("the classifier graph outputs neither logits nor score")
        return score, (probs if probs is not None else (score + 1) / 2)

    def ids(self, text: str) -> list[int]:
        ids = list(self.tok.encode(text))
        if len(ids) > MAX_REVIEW_TOKENS:
            raise InputError(f"the review is {len(ids):,} tokens long for this model; the limit is {MAX_REVIEW_TOKENS}")
        if not self.tok.knows(ids):
            raise InputError(NO_KNOWN_WORDS.format(what="text"))
        return ids

    def predict(self, text: str) -> dict:
        """``{"label": "positive" | "negative", "positive": p(positive), "score": in [-1, 1]}``."""
        ids = self.ids(text)
        score, pos = self._score(self.classify.run(**{names.TOKENS: np.asarray([ids], dtype=np.int64),
                                                      names.LENGTHS: np.asarray([len(ids)], dtype=np.int64)}))
        p = float(pos[0])
        return {"label": "positive" if p >= 0.5 else "negative", "positive": round(p, 6),
                "score": round(float(score[0]), 6)}

    def analyse(self, text: str, max_points: int = MAX_RUNNING_POINTS) -> SentimentResult:
        ids = self.ids(text)
        T = len(ids)
        tokens = np.asarray([ids], dtype=np.int64)
        feeds = {names.TOKENS: tokens, names.LENGTHS: np.asarray([T], dtype=np.int64)}
        score, pos = self._score(self.classify.run(**feeds))
        if self.running.state_in or T <= max_points:
            # A step graph (unidirectional) is O(T); the prefix graph is O(T^2) but fine when short.
            run_feeds = dict(feeds, **dict(zip(self.running.state_in, self.running.zero_state(1))))
            running = self._score(self.running.run(**run_feeds))[0][0]  # (T,)
        else:
            running = self._sampled_running(ids, max_points)
        return SentimentResult(float(score[0]), float(pos[0]), [piece_text(self.tok, i) for i in ids],
                               [float(x) for x in running])

    def _sampled_running(self, ids: list[int], max_points: int, rows: int = 16) -> np.ndarray:
        """(T,) running score of a bidirectional model at ~``max_points`` prefix lengths.

        Each prefix is the whole row with ``lengths`` = its end: the model ignores what follows
        (as ``SequenceClassifier.running`` relies on too), so these values equal the prefix
        graph's at those positions. The tokens in between take the score at the end of their
        stretch. Cost O(points * T) instead of O(T^2): 2 s -> 0.2 s for a 350-token review.
        """
        T = len(ids)
        stride = -(-T // max_points)
        ends = list(range(stride, T, stride)) + [T]
        scores = []
        for i in range(0, len(ends), rows):  # a few rows at a time bounds the memory
            chunk = ends[i:i + rows]
            out = self.classify.run(**{names.TOKENS: np.repeat(np.asarray([ids], dtype=np.int64), len(chunk), 0),
                                       names.LENGTHS: np.asarray(chunk, dtype=np.int64)})
            scores.extend(self._score(out)[0].tolist())
        return np.repeat(scores, np.diff([0] + ends))


# --------------------------------------------------------------------------- translation
@dataclass
class Translation:
    text: str
    src_pieces: list[str]
    tgt_pieces: list[str]
    attention: np.ndarray        # (target tokens incl. EOS, source tokens)
    logprob: float


def _joined(parts: list[Translation]) -> Translation:
    """Line-by-line translations as one: texts joined by line breaks, pieces in order, attention
    block-diagonal (each line's target attends to its own source only)."""
    rows = sum(t.attention.shape[0] for t in parts)
    cols = sum(t.attention.shape[1] for t in parts)
    attention = np.zeros((rows, cols), dtype=np.float32)
    r = c = 0
    for t in parts:
        h, w = t.attention.shape
        attention[r:r + h, c:c + w] = t.attention
        r, c = r + h, c + w
    return Translation("\n".join(t.text for t in parts), [p for t in parts for p in t.src_pieces],
                       [p for t in parts for p in t.tgt_pieces], attention, float(sum(t.logprob for t in parts)))


class Translator:
    """Beam search over a ``seq2seq`` bundle's ``encoder`` and ``decoder`` graphs."""

    def __init__(self, directory: str | Path, threads: int = 1):
        self.bundle = load_bundle(directory, "seq2seq")
        self.tok = load_tokenizer(self.bundle)
        self.encoder = graph(self.bundle, names.JOB_ENCODER, threads)
        self.decoder = graph(self.bundle, names.JOB_DECODER, threads)
        cfg = self.bundle.model_config
        meta = self.decoder
        self.bos_id = meta.int_meta(names.META_BOS_ID, int(cfg.get("bos_id", 1)))
        self.eos_id = meta.int_meta(names.META_EOS_ID, int(cfg.get("eos_id", 2)))
        self.pad_id = meta.int_meta(names.META_PAD_ID, int(cfg.get("pad_id", 0)))

    def source_ids(self, text: str) -> list[int]:
        # Sources are plain ids, no BOS/EOS, as in training (rnnkit.core.tasks.translate).
        return list(self.tok.encode(text))

    def translate(self, text: str, beam: int = 4, max_len: Optional[int] = None,
                  length_penalty: float = LENGTH_PENALTY) -> Translation:
        """The translation of ``text``; several lines are translated one by one (the model learned
        single sentences and pairs) and joined by line breaks, their attention maps block by block."""
        lines = [ln.strip() for ln in text.split("\n") if ln.strip()]
        if len(lines) > 1:
            if len(lines) > MAX_LINES:  # each line is a search: bound the work of one request
                raise InputError(f"the text has {len(lines)} lines; translate at most {MAX_LINES} at a time")
            total = sum(len(self.source_ids(ln)) for ln in lines)
            if total > 2 * MAX_SOURCE_TOKENS:
                raise InputError(f"the text is {total:,} tokens long for this model; the limit is "
                                 f"{2 * MAX_SOURCE_TOKENS} over all its lines")
            return _joined([self.translate(ln, beam, max_len, length_penalty) for ln in lines])
        src = self.source_ids(lines[0] if lines else text)
        if len(src) > MAX_SOURCE_TOKENS:  # before the encoder: the work and the attention map grow with it
            raise InputError(f"the sentence is {len(src):,} tokens long for this model; the limit is "
                             f"{MAX_SOURCE_TOKENS} (split it into shorter sentences)")
        if not self.tok.knows(src):
            raise InputError(NO_KNOWN_WORDS.format(what="sentence"))
        if not 1 <= beam <= 16:
            raise InputError(f"beam width must be from 1 to 16, got {beam}")
        # Output proportional to the input (German runs longer in pieces than English) and capped.
        max_len = min(max_len or 2 * len(src) + 10, MAX_TARGET_TOKENS)
        best = self.search(src, beam, max_len, length_penalty)
        words = [t for t in best.tokens if t != self.eos_id]
        return Translation(self.tok.decode(words), [piece_text(self.tok, i) for i in src],
                           [piece_text(self.tok, i) for i in best.tokens], best.attention, best.logprob)

    def search(self, src: list[int], beam: int, max_len: int, length_penalty: float = LENGTH_PENALTY):
        """The best ``npsample.Hypothesis`` for source ids ``src`` (no input caps: callers check)."""
        enc = self.encoder.run(**{names.SRC: np.asarray([src], dtype=np.int64),
                                  names.SRC_LEN: np.asarray([len(src)], dtype=np.int64)})
        K = beam
        memory = np.repeat(enc[names.MEMORY], K, axis=0)            # (K, S, H')
        mask = np.repeat(enc[names.SRC_MASK], K, axis=0)            # (K, S)
        state = tuple(np.repeat(enc[name], K, axis=1) for name in self.decoder.state_in)

        def step(prev: np.ndarray, state):
            out = self.decoder.run(**{names.PREV: prev[:, None], names.MEMORY: memory, names.SRC_MASK: mask},
                                   **dict(zip(self.decoder.state_in, state)))
            attn = out.get(names.ATTN)
            return (out[names.LOGITS][:, -1], tuple(out[n] for n in self.decoder.state_out),
                    attn[:, -1] if attn is not None else None)

        return beam_search(step, state, self.bos_id, self.eos_id, self.pad_id, K, max_len, length_penalty)

    def predict(self, text: str, beam: int = 4) -> dict:
        """``{"translation", "logprob"}`` (beam search, GNMT length penalty)."""
        out = self.translate(text, beam)
        return {"translation": out.text, "logprob": round(out.logprob, 6)}
