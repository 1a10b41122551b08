"""Exported graphs behind the PyTorch model's call signature, so a task's ``evaluate()`` scores them.

``OrtModel(kind, {job: path}, config)`` answers ``model(tokens, lengths[, chars])`` (classifier,
tagger) or ``model(x, state)`` (lm, forecaster) with onnxruntime, so the recipe's own metric
(accuracy, entity F1, RMSE, BLEU...) can be compared between PyTorch, fp32 ONNX and int8 ONNX
(``task_metrics``). ``OrtSeq2Seq`` does the same for seq2seq (encode, decode_step, greedy, beam
search). One-to-many is not covered.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from rnnkit.edge import names as N
from rnnkit.edge.runner import Runner

KINDS = ("lm", "classifier", "tagger", "forecaster")  # OrtModel; seq2seq: OrtSeq2Seq
TASK_KINDS = ("classifier", "tagger", "forecaster", "seq2seq")


class OrtModel(nn.Module):
    """A stand-in for an rnnkit model whose forward runs exported graphs (CPU, one thread)."""

    def __init__(self, kind: str, graphs: dict[str, str | os.PathLike], config: Any):
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"OrtModel covers {', '.join(KINDS)}, not {kind!r}")
        self.kind, self.config = kind, config
        self.job = {"lm": N.JOB_STEP, "forecaster": N.JOB_STEP, "classifier": N.JOB_CLASSIFY,
                    "tagger": N.JOB_TAG}[kind]
        self.graph = Runner(graphs[self.job])
        self.crf = None  # a tagger's CRF tables (transitions, start, end): the graph gives emissions only
        # Tasks find the device through parameters(); one dummy keeps them working.
        self.anchor = nn.Parameter(torch.zeros(1), requires_grad=False)

    def _run(self, feeds: dict[str, Tensor]) -> dict[str, Tensor]:
        return _run(self.graph, feeds)

    def _state(self, batch: int, state) -> dict[str, Tensor]:
        if state is None:
            return {n: torch.from_numpy(z) for n, z in zip(self.graph.state_in, self.graph.zero_state(batch))}
        return dict(zip(self.graph.state_in, state))

    def forward(self, x: Tensor, *args, **kwargs):
        if self.kind in ("lm", "forecaster"):
            state = args[0] if args else kwargs.get("state")
            key = N.TOKENS if self.kind == "lm" else N.FEATURES
            out = self._run({key: x.long() if self.kind == "lm" else x.float(), **self._state(x.shape[0], state)})
            head = N.LOGITS if self.kind == "lm" else N.PREDICTIONS
            return out[head], tuple(out[n] for n in self.graph.state_out)
        lengths = args[0] if args else kwargs.get("lengths")
        if lengths is None:
            lengths = torch.full((x.shape[0],), x.shape[1], dtype=torch.long)
        feeds = {N.TOKENS: x.long(), N.LENGTHS: lengths.long()}
        if self.kind == "tagger":
            chars = args[1] if len(args) > 1 else kwargs.get("chars")
            if chars is not None:
                feeds[N.CHARS] = chars.long()
            return self._run(feeds)[N.LOGITS], ()
        return self._run(feeds), ()

    def crf_tables(self):
        return self.crf


class OrtSeq2Seq(nn.Module):
    """``encode`` / ``decode_step`` / ``forward`` / ``greedy`` of ``Seq2Seq`` on the encoder and decoder graphs."""

    kind = "seq2seq"

    def __init__(self, graphs: dict[str, str | os.PathLike], config: Any):
        super().__init__()
        self.config = config
        self.enc, self.dec = Runner(graphs[N.JOB_ENCODER]), Runner(graphs[N.JOB_DECODER])
        self.one_step = self.dec.inputs[N.PREV].shape[1] == 1  # bahdanau / input feeding: T fixed to 1
        self.anchor = nn.Parameter(torch.zeros(1), requires_grad=False)

    def encode(self, src: Tensor, src_len: Tensor):
        out = _run(self.enc, {N.SRC: src.long(), N.SRC_LEN: src_len.long()})
        return out[N.MEMORY], out[N.SRC_MASK], tuple(out[n] for n in self.dec.state_in)

    def decode_step(self, prev: Tensor, state, memory: Tensor, src_mask: Tensor):
        steps = [prev[:, t:t + 1] for t in range(prev.shape[1])] if self.one_step else [prev]
        logits, attn = [], []
        for p in steps:
            out = _run(self.dec, {N.PREV: p.long(), **dict(zip(self.dec.state_in, state)),
                                  N.MEMORY: memory, N.SRC_MASK: src_mask})
            state = tuple(out[n] for n in self.dec.state_out)
            logits.append(out[N.LOGITS])
            attn.append(out[N.ATTN])
        return torch.cat(logits, 1), state, torch.cat(attn, 1)

    def forward(self, src: Tensor, src_len: Tensor, tgt_in: Tensor):
        memory, src_mask, state = self.encode(src, src_len)
        logits, state, _ = self.decode_step(tgt_in, state, memory, src_mask)
        return logits, state

    def greedy(self, src: Tensor, src_len: Tensor, max_len: int = 100):
        from rnnkit.core.models.seq2seq_search import greedy_search

        with torch.no_grad():
            return greedy_search(self, src, src_len, max_len)

    def beam_search(self, src: Tensor, src_len: Tensor, beam: int = 4, max_len: int = 100,
                    length_penalty: float = 0.0):
        from rnnkit.core.models.seq2seq_search import beam_search

        with torch.no_grad():
            return beam_search(self, src, src_len, beam, max_len, length_penalty)


def _run(graph: Runner, feeds: dict[str, Tensor]) -> dict[str, Tensor]:
    arrays = {k: np.ascontiguousarray(v.detach().cpu().numpy()) for k, v in feeds.items() if k in graph.inputs}
    return {k: torch.from_numpy(v) for k, v in graph.run(**arrays).items()}


def ort_model(kind: str, graphs: dict[str, str | os.PathLike], config: Any) -> nn.Module:
    """The stand-in for a model of ``kind`` (see ``OrtModel`` / ``OrtSeq2Seq``)."""
    return OrtSeq2Seq(graphs, config) if kind == "seq2seq" else OrtModel(kind, graphs, config)


def task_metrics(run_dir: str | os.PathLike, graphs: dict[str, dict[str, Path]], model: nn.Module) -> dict[str, Any]:
    """The recipe task's metrics of ``model`` (PyTorch) and of each ``{label: {job: path}}`` graph set.

    Rebuilds the task from ``run_dir/recipe.json`` (data, and the tokenizer saved in the run).
    Returns ``{"metric": name, "torch": {...}, label: {...}, ...}``.
    """
    from rnnkit.core import recipes

    run_dir = Path(run_dir)
    recipe = json.loads((run_dir / "recipe.json").read_text(encoding="utf-8"))
    torch.manual_seed(0)
    _, task, _ = recipes.build(recipe, run_dir)
    out: dict[str, Any] = {"metric": task.metric, "torch": task.evaluate(model)}
    for label, paths in graphs.items():
        stand_in = ort_model(model.kind, paths, model.config)
        if hasattr(model, "crf_tables"):  # the tables travel beside the graph (manifest["crf"])
            stand_in.crf = model.crf_tables()
        out[label] = task.evaluate(stand_in)
    return out
