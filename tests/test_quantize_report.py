"""The int8 text figures (top-1 agreement, perplexity) computed by hand on stand-in graphs."""

import math
from types import SimpleNamespace

import numpy as np
import pytest

from rnnkit.edge import names as N
from rnnkit.export.quantize import lm_stream_eval

V = 4


class FakeStep:
    """A stateless 'step graph': logits depend on the token only (table[token])."""

    def __init__(self, table):
        self.table = np.asarray(table, np.float32)

    def get_inputs(self):
        return [SimpleNamespace(name=N.TOKENS, shape=["B", "T"])]

    def get_outputs(self):
        return [SimpleNamespace(name=N.LOGITS)]

    def run(self, _, feeds):
        return [self.table[feeds[N.TOKENS]]]


def test_agreement_and_perplexity_by_hand():
    ref = FakeStep(np.eye(V) * 3)                    # predicts the token it reads
    other = FakeStep(np.roll(np.eye(V) * 3, 1, axis=1))  # predicts token + 1
    ids = [0, 1, 2, 3] * 8 + [0]                    # every next token is the current one + 1
    rep = lm_stream_eval({"fp32": ref, "int8": other}, ids, batch=2, chunk=4)
    assert rep["fp32"]["top1_agreement"] == 1.0     # the reference against itself
    assert rep["int8"]["top1_agreement"] == 0.0     # never the same argmax as the reference
    assert rep["int8"]["top1_accuracy"] == 1.0 and rep["fp32"]["top1_accuracy"] == 0.0
    p_hit = math.exp(3) / (math.exp(3) + 3)         # softmax of a 3 among three 0s
    assert rep["int8"]["ppl"] == pytest.approx(1 / p_hit, rel=1e-5)
    assert rep["fp32"]["ppl"] == pytest.approx(1 / ((1 - p_hit) / 3), rel=1e-5)
