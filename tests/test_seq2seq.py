"""Seq2Seq: shapes, padding invariance, one step function, greedy/beam, learning, save/load, ONNX."""

from __future__ import annotations

import inspect
import io
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rnnkit.core.models import registry
from rnnkit.core.models.seq2seq import Seq2Seq, Seq2SeqConfig
from rnnkit.core.models.seq2seq_search import length_normalised

torch.set_num_threads(1)
PAD, BOS, EOS = 0, 1, 2

# (cell, attention, input_feeding, bidirectional): every decoder code path at least once.
VARIANTS = [
    ("lstm", "luong", False, True),
    ("gru", "luong", True, True),
    ("lstm", "bahdanau", False, True),
    ("rnn_tanh", "luong", False, False),
    ("rnn_relu", "bahdanau", False, False),
]


def make(cell="lstm", attention="luong", input_feeding=False, bidirectional=True, layers=2, seed=0,
         **kw) -> Seq2Seq:
    torch.manual_seed(seed)
    cfg = Seq2SeqConfig(src_vocab_size=kw.pop("src_vocab_size", 20), tgt_vocab_size=kw.pop("tgt_vocab_size", 23),
                        cell=cell, embed_size=8, hidden_size=12, num_layers=layers, dropout=0.0,
                        bidirectional=bidirectional, attention=attention, input_feeding=input_feeding, **kw)
    return Seq2Seq(cfg).double().eval()


def padded_batch(seed=1):
    """3 sources of lengths 7, 4, 1 padded to 7 (pads are PAD), targets (3, 5)."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([7, 4, 1])
    src = torch.randint(3, 20, (3, 7), generator=g)
    src[torch.arange(7).unsqueeze(0) >= lengths.unsqueeze(1)] = PAD
    tgt = torch.randint(3, 23, (3, 5), generator=g)
    return src, lengths, tgt


@pytest.mark.parametrize("cell,attention,feeding,bidir", VARIANTS)
def test_shapes_and_attention_mask(cell, attention, feeding, bidir):
    m = make(cell, attention, feeding, bidir)
    src, lengths, tgt = padded_batch()
    memory, mask, state = m.encode(src, lengths)
    H = 12
    assert memory.shape == (3, 7, (2 if bidir else 1) * H)
    assert mask.dtype == torch.bool and mask.sum(1).tolist() == [7, 4, 1]
    n_rnn = 2 if cell == "lstm" else 1
    assert [tuple(s.shape) for s in state] == [(2, 3, H)] * n_rnn + [(1, 3, H)] * feeding
    assert len(m.state_names()) == len(state)
    logits, state2, attn = m.decode_step(tgt, state, memory, mask)
    assert logits.shape == (3, 5, 23) and attn.shape == (3, 5, 7)
    assert [s.shape for s in state2] == [s.shape for s in state]
    torch.testing.assert_close(attn.sum(-1), torch.ones(3, 5, dtype=attn.dtype))
    assert attn[~mask.unsqueeze(1).expand_as(attn)].abs().max() == 0  # pads get exactly no attention


@pytest.mark.parametrize("cell,attention,feeding,bidir", VARIANTS)
def test_teacher_forcing_equals_step_by_step(cell, attention, feeding, bidir):
    m = make(cell, attention, feeding, bidir)
    src, lengths, tgt = padded_batch()
    full, full_state = m(src, lengths, tgt)
    memory, mask, state = m.encode(src, lengths)
    steps = []
    for t in range(tgt.shape[1]):
        logits, state, _ = m.decode_step(tgt[:, t:t + 1], state, memory, mask)
        steps.append(logits)
    torch.testing.assert_close(torch.cat(steps, 1), full, rtol=0, atol=1e-12)
    for a, b in zip(state, full_state):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


@pytest.mark.parametrize("cell,attention,feeding,bidir", VARIANTS)
def test_padded_batch_equals_each_sequence_alone(cell, attention, feeding, bidir):
    m = make(cell, attention, feeding, bidir)
    src, lengths, tgt = padded_batch()
    logits, _ = m(src, lengths, tgt)
    memory, _, _ = m.encode(src, lengths)
    for i, n in enumerate(lengths.tolist()):
        alone, _ = m(src[i:i + 1, :n], lengths[i:i + 1], tgt[i:i + 1])
        torch.testing.assert_close(logits[i:i + 1], alone, rtol=0, atol=1e-12)
        mem_alone, _, _ = m.encode(src[i:i + 1, :n], lengths[i:i + 1])
        torch.testing.assert_close(memory[i:i + 1, :n], mem_alone, rtol=0, atol=1e-12)
    # A different pad token id (garbage in the pads) must not matter either.
    src2 = src.clone()
    src2[src == PAD] = 5
    torch.testing.assert_close(m(src2, lengths, tgt)[0], logits, rtol=0, atol=1e-12)


@pytest.mark.parametrize("cell,attention,feeding,bidir", VARIANTS)
def test_beam1_equals_greedy_and_beam_not_worse(cell, attention, feeding, bidir):
    m = make(cell, attention, feeding, bidir, seed=3)
    src, lengths, _ = padded_batch(seed=4)
    g = m.greedy(src, lengths, max_len=12)
    b1 = m.beam_search(src, lengths, beam=1, max_len=12)
    assert torch.equal(g.tokens, b1.tokens)
    torch.testing.assert_close(g.attn, b1.attn)
    torch.testing.assert_close(g.logprob, b1.logprob)
    b4 = m.beam_search(src, lengths, beam=4, max_len=12)
    assert (b4.logprob >= g.logprob - 1e-9).all(), (b4.logprob, g.logprob)
    # The reported scores are the model's real log-probs of the returned sequences.
    torch.testing.assert_close(m.sequence_logprob(src, lengths, b4.tokens), b4.logprob)
    torch.testing.assert_close(m.sequence_logprob(src, lengths, g.tokens), g.logprob)
    # Everything after EOS is padding with zero attention.
    for d in (g, b4):
        is_eos = (d.tokens == EOS).long()
        after = (torch.cumsum(is_eos, 1) - is_eos) > 0
        assert (d.tokens[after] == PAD).all()
        assert d.attn[after].abs().sum() == 0


def test_beam_over_a_batch_equals_beam_per_source():
    m = make("gru", "luong", seed=5)
    src, lengths, _ = padded_batch(seed=6)
    batch = m.beam_search(src, lengths, beam=3, max_len=10)
    for i, n in enumerate(lengths.tolist()):
        alone = m.beam_search(src[i:i + 1, :n], lengths[i:i + 1], beam=3, max_len=10)
        T = alone.tokens.shape[1]
        assert torch.equal(batch.tokens[i, :T], alone.tokens[0])
        assert (batch.tokens[i, T:] == PAD).all()
        torch.testing.assert_close(batch.logprob[i], alone.logprob[0])


def test_length_penalty_prefers_longer_or_equal():
    scores = torch.tensor([[-2.0, -3.0]])
    lengths = torch.tensor([[2, 10]])
    assert length_normalised(scores, lengths, 0.0).argmax().item() == 0
    # ((5+2)/6)**1 = 7/6, ((5+10)/6)**1 = 2.5: -2/1.1667 = -1.714 < -3/2.5 = -1.2
    assert length_normalised(scores, lengths, 1.0).argmax().item() == 1
    m = make("lstm", "luong", seed=7)
    src, lengths, _ = padded_batch(seed=8)
    raw = m.beam_search(src, lengths, beam=4, max_len=15)
    pen = m.beam_search(src, lengths, beam=4, max_len=15, length_penalty=1.0)
    length = lambda d: (d.tokens != PAD).sum(1)  # noqa: E731
    assert (length(pen) >= length(raw)).all()


def reverse_batch(n: int, vocab: int, g: torch.Generator):
    """Sources of 3..7 random symbols; targets are the reversed source then EOS."""
    lengths = torch.randint(3, 8, (n,), generator=g)
    S = int(lengths.max())
    src = torch.full((n, S), PAD)
    tgt = torch.full((n, S + 1), PAD)
    for i, k in enumerate(lengths.tolist()):
        x = torch.randint(3, vocab, (k,), generator=g)
        src[i, :k], tgt[i, :k], tgt[i, k] = x, x.flip(0), EOS
    return src, lengths, tgt


def test_learns_to_reverse_sequences():
    torch.manual_seed(0)
    V = 12
    m = Seq2Seq(Seq2SeqConfig(V, V, cell="gru", embed_size=16, hidden_size=32, dropout=0.0))
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(1)
    for _ in range(250):
        src, lengths, tgt = reverse_batch(64, V, g)
        tgt_in = torch.cat([torch.full((64, 1), BOS), tgt[:, :-1]], 1)
        logits, _ = m(src, lengths, tgt_in)
        loss = F.cross_entropy(logits.reshape(-1, V), tgt.reshape(-1), ignore_index=PAD)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if loss.item() < 0.02:
            break
    src, lengths, tgt = reverse_batch(200, V, torch.Generator().manual_seed(99))
    out = m.greedy(src, lengths, max_len=tgt.shape[1])
    pred = torch.full_like(tgt, PAD)
    pred[:, :out.tokens.shape[1]] = out.tokens
    real = tgt != PAD
    acc = ((pred == tgt) & real).sum().item() / real.sum().item()
    assert acc > 0.95, acc
    assert m.training  # greedy restored the training mode


@pytest.mark.parametrize("shared,tied", [(False, False), (True, True), (False, True)])
def test_save_load_round_trip(tmp_path, shared, tied):
    m = make("lstm", "bahdanau", src_vocab_size=23, shared_vocab=shared, tie_output=tied).float()
    src, lengths, tgt = padded_batch()
    registry.save(m, tmp_path)
    m2 = registry.load(tmp_path)
    assert type(m2) is Seq2Seq and m2.config == m.config
    torch.testing.assert_close(m2(src, lengths, tgt)[0], m(src, lengths, tgt)[0], rtol=0, atol=0)
    assert (m2.src_embed.weight is m2.tgt_embed.weight) == shared
    assert (m2.head.weight is m2.tgt_embed.weight) == tied
    if tied:  # one tensor, not two equal copies: a step on it moves both names
        with torch.no_grad():
            m2.tgt_embed.weight[3, 0] += 1.0
        assert m2.head.weight[3, 0] == m2.tgt_embed.weight[3, 0]
    assert (m2.proj is not None) == tied  # hidden 12 != embed 8: tying needs a projection


def test_bad_config_and_inputs_give_clear_errors():
    with pytest.raises(ValueError, match="unknown attention"):
        Seq2SeqConfig(10, 10, attention="dot")
    with pytest.raises(ValueError, match="unknown cell"):
        Seq2SeqConfig(10, 10, cell="transformer")
    with pytest.raises(ValueError, match="shared_vocab"):
        Seq2SeqConfig(10, 12, shared_vocab=True)
    with pytest.raises(ValueError, match="input_feeding"):
        Seq2SeqConfig(10, 10, attention="bahdanau", input_feeding=True)
    with pytest.raises(ValueError, match="eos_id"):
        Seq2SeqConfig(10, 2, eos_id=2)
    m = make()
    src, lengths, _ = padded_batch()
    with pytest.raises(ValueError, match="src_len"):
        m.greedy(src, torch.tensor([7, 0, 1]))
    with pytest.raises(ValueError, match="src_len"):
        m.greedy(src, torch.tensor([8, 4, 1]))
    with pytest.raises(ValueError, match="source ids"):
        m.greedy(src + 100, lengths)
    with pytest.raises(ValueError, match="beam"):
        m.beam_search(src, lengths, beam=0)
    with pytest.raises(ValueError, match="max_len"):
        m.greedy(src, lengths, max_len=0)


class _Encoder(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, src, src_len):
        memory, mask, state = self.m.encode(src, src_len)
        return (memory, mask) + tuple(state)


class _Decoder(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, prev, memory, mask, *state):
        logits, state, attn = self.m.decode_step(prev, tuple(state), memory, mask)
        return (logits, attn) + tuple(state)


@pytest.mark.parametrize("cell,attention,feeding,bidir", [VARIANTS[0], VARIANTS[1], VARIANTS[2]])
def test_exports_with_torchscript_onnx_exporter(cell, attention, feeding, bidir):
    """encode and decode_step trace to ONNX with dynamic batch and source length."""
    ort = pytest.importorskip("onnxruntime")
    m = make(cell, attention, feeding, bidir).float()
    n = len(m.state_names())
    st_names = [f"state{i}" for i in range(n)]
    src, lengths, _ = padded_batch()
    dyn = {"src": {0: "B", 1: "S"}, "src_len": {0: "B"}, "memory": {0: "B", 1: "S"}, "src_mask": {0: "B", 1: "S"},
           "prev": {0: "B"}, "logits": {0: "B"}, "attn": {0: "B", 2: "S"}, **{k: {1: "B"} for k in st_names}}
    # The TorchScript exporter: the default since torch 2.9 is dynamo, which older torch lacks.
    legacy = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
    enc_f, dec_f = io.BytesIO(), io.BytesIO()
    memory, mask, state = m.encode(src, lengths)
    prev = torch.full((3, 1), BOS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(_Encoder(m), (src, lengths), enc_f, **legacy, input_names=["src", "src_len"],
                          output_names=["memory", "src_mask"] + st_names,
                          dynamic_axes={k: v for k, v in dyn.items() if k in ("src", "src_len", "memory", "src_mask",
                                                                               *st_names)})
        torch.onnx.export(_Decoder(m), (prev, memory, mask, *state), dec_f, **legacy,
                          input_names=["prev", "memory", "src_mask"] + st_names,
                          output_names=["logits", "attn"] + [f"next_{k}" for k in st_names],
                          dynamic_axes={k: v for k, v in dyn.items() if k in ("prev", "memory", "src_mask", "logits",
                                                                               "attn", *st_names)})
    enc = ort.InferenceSession(enc_f.getvalue(), providers=["CPUExecutionProvider"])
    dec = ort.InferenceSession(dec_f.getvalue(), providers=["CPUExecutionProvider"])
    # Other batch and source sizes than traced, and a two-step rollout feeding the state back.
    src2 = torch.randint(3, 20, (2, 9))
    len2 = torch.tensor([9, 3])
    got = enc.run(None, {"src": src2.numpy(), "src_len": len2.numpy()})
    memory, mask, state = m.encode(src2, len2)
    np.testing.assert_allclose(got[0], memory.detach().numpy(), atol=1e-5)
    assert (got[1] == mask.numpy()).all()
    onnx_state = got[2:]
    prev = torch.tensor([[BOS], [BOS]])
    for step in range(2):
        out = dec.run(None, {"prev": prev.numpy(), "memory": got[0], "src_mask": got[1],
                             **dict(zip(st_names, onnx_state))})
        logits, state, attn = m.decode_step(prev, state, memory, mask)
        np.testing.assert_allclose(out[0], logits.detach().numpy(), atol=1e-5)
        np.testing.assert_allclose(out[1], attn.detach().numpy(), atol=1e-5)
        onnx_state = out[2:]
        prev = logits.argmax(-1)
