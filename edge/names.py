"""The names every ONNX graph and bundle uses, defined once (torch-free).

The device reads bundles with these names (edge/bundle.py, edge/runner.py); the exporter writes
them (export/). Graphs per model kind
(``GRAPHS[kind]``), each graph's job name, its tensor names, the dynamic axis names and the
``metadata_props`` keys all live here.

Step graphs (state in, state out), icefall's convention::

    tokens[B,T] int64, h0[L*D,B,H] float32 (, c0) -> logits[B,T,V], next_h0 (, next_c0)

A graph that *produces* an initial state (seq2seq encoder, one-to-many ``state_from``)
names it ``h0`` / ``c0``, exactly the step graph's input names, so a runner feeds it on as is.
"""

from __future__ import annotations

# torch-free; re-exported so that every graph name is found here
from rnnkit.core.models.state_layout import (input_name as state_input, is_state_input,  # noqa: F401
                                             is_state_output, next_state, output_name as state_output, role_of,
                                             state_io)

FORMAT_VERSION = 1

# ----------------------------------------------------------------------------- tensor names
TOKENS = "tokens"          # (B, T) int64
LENGTHS = "lengths"        # (B,) int64, real length of each padded row
CHARS = "chars"            # (B, T, W) int64, characters of each word (tagger with char features)
FEATURES = "features"      # (B, T, F) float32, forecaster input
COND = "cond"              # (B, C) float32, one-to-many conditioning vector
SRC = "src"                # (B, S) int64, seq2seq source tokens
SRC_LEN = "src_len"        # (B,) int64
PREV = "prev"              # (B, T) int64, seq2seq previous target token(s)
MEMORY = "memory"          # (B, S, H') float32, encoder outputs
SRC_MASK = "src_mask"      # (B, S) bool, True at real source tokens

LOGITS = "logits"          # (B, T, V) | (B, C) | (B, T, C)
SCORE = "score"            # (B, R) | (B, T, R)
PREDICTIONS = "predictions"  # (B, T, O) forecaster output
ATTN = "attn"              # (B, T, S) seq2seq attention weights

# State tensors: their names come from their roles (core/models/state_layout.py, the one table):
# role "h" -> input "h0", output "next_h0"; (h, c) for LSTM, (h,) for GRU / RNN, (h[, c], feed) for
# seq2seq with input feeding, (k, v, len) for a Transformer's cache. A graph lists its own in the
# ``state_inputs`` / ``state_outputs`` metadata, which is what a runner reads.

# ----------------------------------------------------------------------------- dynamic axes
BATCH = "batch"
TIME = "time"
SRC_TIME = "src_time"
WORD_LEN = "word_len"

# ----------------------------------------------------------------------------- jobs (graphs)
JOB_STEP = "step"              # tokens/features + state -> outputs + next state
JOB_CLASSIFY = "classify"      # whole sequence: tokens, lengths -> logits, score
JOB_RUNNING = "running"        # score after each token (step graph if unidirectional)
JOB_TAG = "tag"                # whole sequence: tokens, lengths (, chars) -> logits (B, T, K)
JOB_ENCODER = "encoder"        # src, src_len -> memory, src_mask, h0 (, c0)
JOB_DECODER = "decoder"        # prev, state, memory, src_mask -> logits, next state, attn
JOB_STATE_FROM = "state_from"  # cond -> h0 (, c0)

# A bundle's kind says what its graphs do; it is the model's registry kind except for these, whose graphs
# do another kind's job with another architecture (the graph metadata "cell" names the architecture).
BUNDLE_KIND = {"transformer_lm": "lm"}


def bundle_kind(model_kind: str) -> str:
    """The kind of bundle (``GRAPHS`` key) a model of registry kind ``model_kind`` exports to."""
    return BUNDLE_KIND.get(model_kind, model_kind)


# kind -> {job: what the graph does}; ``rnnkit export --help`` prints this table.
GRAPHS: dict[str, dict[str, str]] = {
    "lm": {
        JOB_STEP: "tokens[B,T], h0 (, c0) -> logits[B,T,V], next_h0 (, next_c0); a Transformer LM's state is "
                  "its KV cache: k0, v0 [L,B,N,C], len0 [1,B,1] -> next_k0, next_v0, next_len0",
    },
    "classifier": {
        JOB_CLASSIFY: "tokens[B,T], lengths[B] -> logits[B,C] and/or score[B,R]",
        JOB_RUNNING: "unidirectional: tokens[B,T], h0 (, c0) -> logits/score after each token [B,T,.], "
                     "next state; bidirectional: tokens[B,T] -> per-prefix logits/score [B,T,.]",
    },
    "tagger": {
        JOB_TAG: "tokens[B,T], lengths[B] (bidirectional only) (, chars[B,T,W]) -> logits[B,T,K]",
    },
    "forecaster": {
        JOB_STEP: "features[B,T,F], h0 (, c0) -> predictions[B,T,O], next_h0 (, next_c0)",
    },
    "one_to_many": {
        JOB_STATE_FROM: "cond[B,C] -> h0 (, c0)",
        JOB_STEP: "tokens[B,T], h0 (, c0) -> logits[B,T,V], next_h0 (, next_c0)",
    },
    "seq2seq": {
        JOB_ENCODER: "src[B,S], src_len[B] -> memory[B,S,H'], src_mask[B,S] bool, h0 (, c0) (, feed0)",
        JOB_DECODER: "prev[B,T], h0 (, c0) (, feed0), memory, src_mask -> logits[B,T,V], next state, "
                     "attn[B,T,S] (T is fixed to 1 for bahdanau / input feeding: they loop over time)",
    },
}


def graph_file(job: str, precision: str = "fp32") -> str:
    """File name of a job's graph inside a bundle: ``step.onnx``, ``step.int8.onnx``."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; allowed: {', '.join(PRECISIONS)}")
    return f"{job}.onnx" if precision == "fp32" else f"{job}.{precision}.onnx"


PRECISIONS = ("fp32", "int8")

# ----------------------------------------------------------------------------- metadata_props
# Every graph carries these (values are strings, ONNX metadata is str -> str).
META_FORMAT_VERSION = "format_version"
META_KIND = "kind"
META_JOB = "job"
META_PRECISION = "precision"          # fp32 | int8
META_CELL = "cell"
META_NUM_LAYERS = "num_layers"
META_HIDDEN_SIZE = "hidden_size"
META_NUM_DIRECTIONS = "num_directions"
META_VOCAB_SIZE = "vocab_size"
META_PAD_ID = "pad_id"
META_BOS_ID = "bos_id"
META_EOS_ID = "eos_id"
META_UNK_ID = "unk_id"
META_TOKENIZER_SHA256 = "tokenizer_sha256"  # "" when the model has no tokenizer (forecaster)
META_TOKENIZER_FILE = "tokenizer_file"      # tokenizer.model | tokenizer.json | ""
META_STATE_INPUTS = "state_inputs"          # comma-separated, "" for stateless graphs
META_STATE_OUTPUTS = "state_outputs"
META_INPUTS = "inputs"                      # comma-separated input names, in order
META_OUTPUTS = "outputs"
META_WINDOW = "window"                      # KV-cache positions of a Transformer (state axis N); absent otherwise
META_MODEL_CONFIG = "model_config"          # JSON of the model's config dataclass
META_RNNKIT_VERSION = "rnnkit_version"

REQUIRED_META = (
    META_FORMAT_VERSION, META_KIND, META_JOB, META_PRECISION, META_CELL, META_NUM_LAYERS,
    META_HIDDEN_SIZE, META_NUM_DIRECTIONS, META_VOCAB_SIZE, META_PAD_ID, META_BOS_ID, META_EOS_ID,
    META_UNK_ID, META_TOKENIZER_SHA256, META_STATE_INPUTS, META_STATE_OUTPUTS, META_INPUTS,
    META_OUTPUTS, META_MODEL_CONFIG,
)

# ----------------------------------------------------------------------------- bundle files
MANIFEST = "manifest.json"
TOKENIZER_FILES = ("tokenizer.model", "tokenizer.json")
# Models without a Tokenizer carry their own vocabulary file instead (the tagger: words, chars,
# tags); it is copied and hashed the same way and stands in for the tokenizer in the metadata.
VOCAB_FILES = ("tagger_vocab.json",)
