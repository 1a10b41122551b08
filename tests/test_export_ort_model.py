"""OrtModel: exported graphs behind the model's call signature give the model's outputs."""

from __future__ import annotations

import pytest
import torch

from rnnkit.core.models.registry import build_model
from rnnkit.export.onnx_export import export_model
from rnnkit.export.ort_model import OrtModel

torch.set_num_threads(1)

CASES = {
    "classifier": dict(vocab_size=30, num_classes=3, num_targets=1, bounded=True, embed_size=8, hidden_size=8),
    "tagger": dict(vocab_size=30, num_tags=5, char_vocab_size=20, embed_size=8, hidden_size=8),
    "lm": dict(vocab_size=30, embed_size=8, hidden_size=8, num_layers=2),
    "forecaster": dict(input_size=3, output_size=2, hidden_size=8, cell="gru"),
}


@pytest.mark.parametrize("kind", list(CASES))
def test_ort_model_answers_like_the_model(kind, tmp_path):
    torch.manual_seed(0)
    model = build_model(kind, CASES[kind]).eval()
    shim = OrtModel(kind, export_model(model, tmp_path), model.config)
    assert next(shim.parameters()).device.type == "cpu"  # tasks find the device this way
    tokens = torch.randint(0, 30, (3, 6))
    lengths = torch.tensor([6, 2, 4])
    with torch.no_grad():
        if kind == "classifier":
            want, got = model(tokens, lengths)[0], shim(tokens, lengths)[0]
            assert set(got) == {"logits", "score"}
            for k in want:
                torch.testing.assert_close(got[k], want[k], atol=1e-5, rtol=0)
        elif kind == "tagger":
            chars = torch.randint(0, 20, (3, 6, 5))
            torch.testing.assert_close(shim(tokens, lengths, chars)[0], model(tokens, lengths, chars)[0],
                                       atol=1e-5, rtol=0)
        else:
            x = tokens if kind == "lm" else torch.randn(3, 6, 3)
            want, want_state = model(x)
            got, got_state = shim(x)  # zero state by default, like the model
            torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
            # the state carries on: a second chunk from the returned state still agrees
            torch.testing.assert_close(shim(x, got_state)[0], model(x, want_state)[0], atol=1e-5, rtol=0)


def test_ort_model_refuses_kinds_it_does_not_cover(tmp_path):
    with pytest.raises(ValueError, match="not 'seq2seq'"):
        OrtModel("seq2seq", {}, None)


@pytest.mark.parametrize("variant", [dict(), dict(attention="bahdanau"), dict(input_feeding=True, cell="gru")])
def test_ort_seq2seq_decodes_like_the_model(variant, tmp_path):
    from rnnkit.export.ort_model import ort_model

    torch.manual_seed(0)
    cfg = dict(src_vocab_size=30, tgt_vocab_size=25, embed_size=8, hidden_size=8, **variant)
    model = build_model("seq2seq", cfg).eval()
    shim = ort_model("seq2seq", export_model(model, tmp_path), model.config)
    src, src_len = torch.randint(4, 30, (3, 7)), torch.tensor([7, 3, 5])
    tgt_in = torch.randint(4, 25, (3, 6))
    with torch.no_grad():
        torch.testing.assert_close(shim(src, src_len, tgt_in)[0], model(src, src_len, tgt_in)[0], atol=1e-5, rtol=0)
        assert torch.equal(shim.greedy(src, src_len, 12).tokens, model.greedy(src, src_len, 12).tokens)
