"""What the demo runs: generation, translation and sentiment on ONNX bundles (numpy + onnxruntime).

Each engine opens a verified bundle (``rnnkit.export.bundle.open_bundle``), loads its
tokenizer and reads every dimension and special id from the graphs' metadata, so any
bundle of the right kind works. Engines are shared by all users of the demo:
``InferenceSession.run`` is thread-safe and engines keep no per-request state.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import numpy as np

from rnnkit.export import names
from rnnkit.export.bundle import Bundle, BundleError, open_bundle

from .npsample import beam_search, sample_next
from .validation import MAX_PROMPT_TOKENS, MAX_REVIEW_TOKENS, MAX_SOURCE_TOKENS, InputError

LENGTH_PENALTY = 0.6  # GNMT alpha; the translation recipe's default (rnnkit.core.tasks_seq2seq)
MAX_TARGET_TOKENS = 160  # 2 x MAX_SOURCE_TOKENS + 10 would be 266: the cap keeps the worst request short


def _split(value: str) -> list[str]:
    return [s for s in (value or "").split(",") if s]


class Graph:
    """One graph of a bundle: ``run(**feeds) -> {output name: array}`` plus its state layout."""

    def __init__(self, bundle: Bundle, job: str):
        self.job = job
        self.session = bundle.session(job, mem_arena=False)  # shared by every user: no arena kept at its peak
        self.meta = bundle.metadata(job)
        self.inputs = {i.name: i for i in self.session.get_inputs()}
        self.outputs = [o.name for o in self.session.get_outputs()]
        self.state_in = _split(self.meta.get(names.META_STATE_INPUTS, ""))
        self.state_out = _split(self.meta.get(names.META_STATE_OUTPUTS, ""))

    def int_meta(self, key: str, default: int = -1) -> int:
        try:
            return int(self.meta.get(key, default))
        except ValueError:
            return default

    def zero_state(self, batch: int) -> tuple[np.ndarray, ...]:
        """Zeros for every state input, each (L*D, batch, H) with L*D and H from the graph."""
        out = []
        for name in self.state_in:
            shape = self.inputs[name].shape
            if len(shape) != 3 or not isinstance(shape[0], int) or not isinstance(shape[2], int):
                raise BundleError(f"{self.job} graph: state input {name} has no fixed (L, B, H) shape: {shape}")
            if not (0 < shape[0] <= 128 and 0 < shape[2] <= 1 << 15):  # a graph's numbers decide this allocation
                raise BundleError(f"{self.job} graph: state input {name} shape {shape} is out of bounds")
            out.append(np.zeros((shape[0], batch, shape[2]), dtype=np.float32))
        return tuple(out)

    def run(self, **feeds: np.ndarray) -> dict[str, np.ndarray]:
        missing = set(self.inputs) - set(feeds)
        if missing:
            raise BundleError(f"{self.job} graph needs inputs {sorted(missing)} the demo does not know")
        values = self.session.run(None, {k: v for k, v in feeds.items() if k in self.inputs})
        return dict(zip(self.outputs, values))


def _load(directory: str | Path, kind: str) -> Bundle:
    from rnnkit.core.tokenizers import load_tokenizer  # noqa: F401  (fail early if missing)

    bundle = open_bundle(directory)
    if bundle.kind != kind:
        raise BundleError(f"{directory}: a {bundle.kind} bundle, the demo needs a {kind} bundle here")
    if bundle.tokenizer_path is None:
        raise BundleError(f"{directory}: the bundle has no tokenizer file")
    return bundle


def _tokenizer(bundle: Bundle):
    from rnnkit.core.tokenizers import load_tokenizer

    # The manifest's tokenizer file (hashed, and checked against the graphs), never a directory listing.
    return load_tokenizer(bundle.tokenizer_path)


# The figures worth a glance, most telling first (a bundle's metrics come from its run's metrics.jsonl).
HEADLINE_METRICS = {"test_acc": "test accuracy {:.1f}%", "test_bleu": "test BLEU {:.1f}", "test_chrf": "chrF {:.1f}",
                    "test_ppl": "test perplexity {:.1f}", "test_bits": "test {:.2f} bits/{unit}",
                    "val_acc": "valid accuracy {:.1f}%", "val_ppl": "valid perplexity {:.2f}",
                    "val_bits": "valid {:.2f} bits/{unit}"}


def describe(bundle: Bundle) -> str:
    """One line about a bundle for the UI: cell, size, precision and up to two headline metrics."""
    cfg = bundle.model_config
    cell = str(cfg.get("cell", "?")).upper()
    layers, hidden = cfg.get("num_layers", "?"), cfg.get("hidden_size", "?")
    size_mb = sum(bundle.manifest.get("sizes", {}).values()) / 1e6
    text = f"{cell} {layers}×{hidden}, {bundle.precision}, {size_mb:.1f} MB"
    metrics = bundle.manifest.get("metrics") or {}
    last = metrics.get("last")
    last = last if isinstance(last, dict) else {}
    # The final (test) record if there is one, else the last evaluation; never "best", which is
    # picked by a min/max mode that a run may not record (an accuracy "best" can be the worst).
    record = metrics.get("final") or (last if last.get("kind") in ("final", "eval") else {})
    record = record if isinstance(record, dict) else {}
    unit = str(record.get("unit", "token"))  # char models record "char"
    shown = [f.format(record[k], unit=unit) for k, f in HEADLINE_METRICS.items()
             if isinstance(record.get(k), (int, float))]
    return text + "".join(f", {x}" for x in shown[:2])


def piece_text(tok, i: int) -> str:
    """A token as the user should see it (sentencepiece's ``▁`` shown as a space)."""
    return str(tok.id_to_piece(int(i))).replace("\u2581", " ")


# --------------------------------------------------------------------------- generation
class TextGenerator:
    """Streams text from a language-model bundle (``lm`` kind, ``step`` graph)."""

    def __init__(self, directory: str | Path):
        self.bundle = _load(directory, "lm")
        self.tok = _tokenizer(self.bundle)
        self.step = Graph(self.bundle, names.JOB_STEP)
        self.bos_id = self.step.int_meta(names.META_BOS_ID)
        self.eos_id = self.step.int_meta(names.META_EOS_ID)
        self.unk_id = self.step.int_meta(names.META_UNK_ID)

    def encode_prompt(self, prompt: str) -> tuple[list[int], int]:
        """The prompt's ids and how many of them are unknown to the model."""
        ids = list(self.tok.encode(prompt))
        unknown = sum(1 for i in ids if i == self.unk_id) if self.unk_id >= 0 else 0
        return ids, unknown

    def _text(self, prompt: str, head: str, lines: list[list[int]]) -> str:
        # Decoding prompt + new ids and cutting the prompt's decoding off keeps the space a
        # subword piece like "▁the" carries, which decoding the new ids alone would drop.
        first = self.tok.decode(lines[0])[len(head):]
        return prompt + first + "".join("\n" + self.tok.decode(ids) for ids in lines[1:])

    def stream(self, prompt: str, max_new_tokens: int, temperature: float = 1.0, top_k: int = 0,
               top_p: float = 1.0, seed: Optional[int] = None, min_interval: float = 0.0) -> Iterator[str]:
        """Yield ``prompt`` + the continuation so far, after the first new token and then at most
        every ``min_interval`` seconds (and at the end). A fixed seed gives the same text.

        Word and subword models were trained on lines each followed by EOS (rnnkit.core.tasks_lm),
        so EOS starts the context ("a sentence starts here") and a generated EOS is a line break.
        """
        prompt_ids, _ = self.encode_prompt(prompt)
        if len(prompt_ids) > MAX_PROMPT_TOKENS:
            raise InputError(f"the prompt is {len(prompt_ids):,} tokens long for this model; the limit is "
                             f"{MAX_PROMPT_TOKENS:,}")
        ids = ([self.eos_id] if self.eos_id >= 0 else []) + prompt_ids
        if not ids:
            raise ValueError("the prompt has no tokens this model knows")
        rng = np.random.default_rng(seed)
        out = self.step.run(**{names.TOKENS: np.asarray([ids], dtype=np.int64)},
                            **dict(zip(self.step.state_in, self.step.zero_state(1))))
        head = self.tok.decode(prompt_ids)
        lines: list[list[int]] = [list(prompt_ids)]
        last_yield = 0.0
        for n in range(max_new_tokens):
            tok = sample_next(out[names.LOGITS][0, -1], rng, temperature, top_k, top_p)
            if tok == self.eos_id:
                lines.append([])
            else:
                lines[-1].append(tok)
            now = time.perf_counter()
            if n == 0 or now - last_yield >= min_interval:
                last_yield = now
                yield self._text(prompt, head, lines)
            state = [out[name] for name in self.step.state_out]
            out = self.step.run(**{names.TOKENS: np.asarray([[tok]], dtype=np.int64)},
                                **dict(zip(self.step.state_in, state)))
        yield self._text(prompt, head, lines)


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

    Class 1 is positive (``rnnkit.core.tasks_classify``). Without a score head the score is
    p(positive) - p(negative), which also lies in [-1, 1].
    """

    def __init__(self, directory: str | Path):
        self.bundle = _load(directory, "classifier")
        self.tok = _tokenizer(self.bundle)
        self.classify = Graph(self.bundle, names.JOB_CLASSIFY)
        self.running = Graph(self.bundle, names.JOB_RUNNING)

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

    def analyse(self, text: str, max_points: int = MAX_RUNNING_POINTS) -> SentimentResult:
        ids = list(self.tok.encode(text))
        if not ids:
            raise InputError("the text has no tokens this model knows")
        if len(ids) > MAX_REVIEW_TOKENS:
            raise InputError(f"the review is {len(ids):,} tokens long for this model; the limit is {MAX_REVIEW_TOKENS}")
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


class Translator:
    """Beam search over a ``seq2seq`` bundle's ``encoder`` and ``decoder`` graphs."""

    def __init__(self, directory: str | Path):
        self.bundle = _load(directory, "seq2seq")
        self.tok = _tokenizer(self.bundle)
        self.encoder = Graph(self.bundle, names.JOB_ENCODER)
        self.decoder = Graph(self.bundle, names.JOB_DECODER)
        cfg = self.bundle.model_config
        meta = self.decoder
        self.bos_id = meta.int_meta(names.META_BOS_ID, int(cfg.get("bos_id", 1)))
        self.eos_id = meta.int_meta(names.META_EOS_ID, int(cfg.get("eos_id", 2)))
        self.pad_id = meta.int_meta(names.META_PAD_ID, int(cfg.get("pad_id", 0)))

    def source_ids(self, text: str) -> list[int]:
        # Sources are plain ids, no BOS/EOS, as in training (rnnkit.core.tasks_seq2seq).
        return list(self.tok.encode(text))

    def translate(self, text: str, beam: int = 4, max_len: Optional[int] = None,
                  length_penalty: float = LENGTH_PENALTY) -> Translation:
        src = self.source_ids(text)
        if not src:
            raise InputError("the sentence has no tokens this model knows")
        if len(src) > MAX_SOURCE_TOKENS:  # before the encoder: the work and the attention map grow with it
            raise InputError(f"the sentence is {len(src):,} tokens long for this model; the limit is "
                             f"{MAX_SOURCE_TOKENS} (split it into shorter sentences)")
        if not 1 <= beam <= 16:
            raise InputError(f"beam width must be from 1 to 16, got {beam}")
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

        # Output proportional to the input (German runs longer in pieces than English) and capped.
        max_len = min(max_len or 2 * len(src) + 10, MAX_TARGET_TOKENS)
        best = beam_search(step, state, self.bos_id, self.eos_id, self.pad_id, K, max_len, length_penalty)
        words = [t for t in best.tokens if t != self.eos_id]
        return Translation(self.tok.decode(words), [piece_text(self.tok, i) for i in src],
                           [piece_text(self.tok, i) for i in best.tokens], best.attention, best.logprob)
