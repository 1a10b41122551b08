"""Parity in CI: ONNX Runtime vs PyTorch for every model kind and cell type.

Random non-zero state, batch 1 and 3, sequence lengths 1, 7 and 33, plus a 50-step rollout
feeding the state back; fp32 max abs diff <= 1e-5. Run with ``-s`` to see the figures.
"""

from __future__ import annotations

import pytest
import torch

from rnnkit.core.models.registry import build_model
from rnnkit.export.onnx_export import export_model
from rnnkit.export.parity import TOLERANCE, assert_parity, check_parity, format_report

torch.set_num_threads(1)

CELLS = ("lstm", "gru", "rnn_tanh")
SMALL = dict(embed_size=8, hidden_size=12)

# (id, kind, config without cell); two layers wherever the kind stacks, so state wiring across
# layers is exercised.
VARIANTS = [
    ("lm", "lm", dict(vocab_size=37, num_layers=2, **SMALL)),
    ("lm-untied", "lm", dict(vocab_size=37, num_layers=1, tie_weights=False, **SMALL)),
    ("classifier-bi", "classifier", dict(vocab_size=29, num_classes=3, num_targets=1, bounded=True,
                                         num_layers=2, **SMALL)),
    ("classifier-uni", "classifier", dict(vocab_size=29, num_classes=2, num_targets=2, bidirectional=False,
                                          num_layers=2, **SMALL)),
    ("regressor-uni", "classifier", dict(vocab_size=29, num_classes=0, num_targets=1, bounded=True,
                                         bidirectional=False, **SMALL)),
    ("tagger", "tagger", dict(vocab_size=31, num_tags=7, num_layers=2, **SMALL)),
    ("tagger-chars", "tagger", dict(vocab_size=31, num_tags=7, char_vocab_size=23, **SMALL)),
    ("tagger-uni-chars", "tagger", dict(vocab_size=31, num_tags=7, char_vocab_size=23, bidirectional=False,
                                        **SMALL)),
    ("forecaster", "forecaster", dict(input_size=3, output_size=2, hidden_size=12, num_layers=2)),
    ("one_to_many", "one_to_many", dict(cond_size=5, vocab_size=19, num_layers=2, **SMALL)),
    ("seq2seq-luong", "seq2seq", dict(src_vocab_size=31, tgt_vocab_size=27, num_layers=2, **SMALL)),
    ("seq2seq-bahdanau", "seq2seq", dict(src_vocab_size=31, tgt_vocab_size=27, attention="bahdanau", **SMALL)),
    ("seq2seq-feed", "seq2seq", dict(src_vocab_size=31, tgt_vocab_size=27, input_feeding=True,
                                     bidirectional=False, num_layers=2, tie_output=True, **SMALL)),
]


# The LM (the on-device path) runs in the fast suite; the rest of the grid is marked slow
# (about 40 s on one thread) but still runs in CI.
GRID = [pytest.param(*v, id=v[0], marks=() if v[0] == "lm" else pytest.mark.slow) for v in VARIANTS]


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("name,kind,cfg", GRID)
def test_onnx_matches_pytorch(name, kind, cfg, cell, tmp_path):
    torch.manual_seed(0)
    model = build_model(kind, {**cfg, "cell": cell}).eval()
    graphs = export_model(model, tmp_path)
    report = check_parity(model, graphs, batches=(1, 3), times=(1, 7, 33), rollout_steps=50, seed=1)
    print(f"\n[{name} {cell}]\n{format_report(report)}")
    assert_parity(report, TOLERANCE)
    # every step graph got its 50-step rollout, checked against PyTorch's one-shot run
    for job, entry in report["jobs"].items():
        if job in ("step", "decoder") or (job == "running" and not cfg.get("bidirectional", True)):
            assert "step_vs_torch" in entry["rollout"], (job, entry)
    assert {c["time"] for e in report["jobs"].values() for c in e["cases"]} >= {1}


def test_parity_check_catches_a_wrong_graph(tmp_path):
    """The check is not vacuous: a graph from other weights fails it."""
    torch.manual_seed(0)
    a = build_model("lm", dict(vocab_size=37, **SMALL)).eval()
    b = build_model("lm", dict(vocab_size=37, **SMALL)).eval()
    graphs = export_model(b, tmp_path)
    report = check_parity(a, graphs, batches=(2,), times=(5,), rollout_steps=0)
    with pytest.raises(AssertionError, match="max abs diff"):
        assert_parity(report)


def test_a_graph_that_ignores_its_input_state_is_caught(tmp_path):
    """Random non-zero state matters: a zero state would hide a step graph that drops h0/c0."""
    from rnnkit.export.onnx_export import export_graph, graph_metadata
    from rnnkit.export.wrappers import TokenStep

    class ForgetfulStep(TokenStep):
        def forward(self, tokens, *state):
            logits, next_state = self.model(tokens, None)  # starts from zeros, whatever h0/c0 say
            keep = sum(s.sum() for s in state) * 0.0  # keeps h0/c0 as graph inputs
            return (logits + keep, *next_state)

    torch.manual_seed(0)
    model = build_model("lm", dict(vocab_size=37, **SMALL)).eval()
    wrapper = ForgetfulStep(model)
    path = export_graph(wrapper, tmp_path / "step.onnx", graph_metadata(model, wrapper))
    report = check_parity(model, {"step": path}, batches=(2,), times=(5,), rollout_steps=0)
    with pytest.raises(AssertionError, match="max abs diff"):
        assert_parity(report)


def test_export_time_limit_scales_with_output_magnitude():
    from rnnkit.export.parity import parity_limit

    report = {"max_abs_diff": 5e-5, "max_abs_value": 20.0}
    assert parity_limit(report) == 1e-5  # CI: absolute
    assert parity_limit(report, relative=True) == pytest.approx(2e-4)
    assert parity_limit({"max_abs_value": 0.3}, relative=True) == 1e-5  # never looser than absolute
    with pytest.raises(AssertionError):
        assert_parity({**report, "jobs": {}})
    assert_parity({**report, "jobs": {}}, relative=True)
