"""core/models/recurrent.py and core/models/kinds.py: state layout, step == one-shot, padding, save/load."""

from __future__ import annotations

import pytest
import torch

from rnnkit.core.models import registry
from rnnkit.core.models.kinds import (ClassifierConfig, ConditionedGenerator, Forecaster, ForecasterConfig,
                                LanguageModel, LMConfig, OneToManyConfig, SequenceClassifier, Tagger,
                                TaggerConfig)
from rnnkit.core.models.recurrent import CELLS, RecurrentStack, last_valid, reverse_padded

torch.set_num_threads(1)
ATOL = 1e-12  # every model runs in float64 here: equal means equal up to rounding


def seeded(cls, cfg, seed=0):
    torch.manual_seed(seed)
    return cls(cfg).double().eval()


def tokens(B, T, vocab, seed=1, low=1):
    return torch.randint(low, vocab, (B, T), generator=torch.Generator().manual_seed(seed))


def pad_after(x: torch.Tensor, lengths: torch.Tensor, value=0) -> torch.Tensor:
    x = x.clone()
    x[torch.arange(x.shape[1]).unsqueeze(0) >= lengths.unsqueeze(1)] = value
    return x


# --------------------------------------------------------------------------- recurrent stack
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_init_state_is_tuple_of_LD_B_H(cell, bidirectional):
    stack = RecurrentStack(cell, 5, 7, num_layers=3, bidirectional=bidirectional)
    state = stack.init_state(4)
    assert isinstance(state, tuple) and len(state) == (2 if cell == "lstm" else 1)
    D = 2 if bidirectional else 1
    for s in state:
        assert s.shape == (3 * D, 4, 7) and s.abs().sum() == 0
    out, new = stack(torch.randn(4, 6, 5), state)
    assert out.shape == (4, 6, D * 7) and stack.output_size == D * 7
    assert [s.shape for s in new] == [s.shape for s in state]


def test_bidirectional_stack_matches_torch_on_unpadded_input():
    """Without pads our per-direction stack equals torch's fused bidirectional nn.LSTM."""
    torch.manual_seed(0)
    ours = RecurrentStack("lstm", 5, 6, num_layers=2, bidirectional=True).double()
    ref = torch.nn.LSTM(5, 6, num_layers=2, bidirectional=True, batch_first=True).double()
    with torch.no_grad():
        for layer in range(2):
            for suffix, mod in (("", ours.fwd[layer]), ("_reverse", ours.bwd[layer])):
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    getattr(ref, f"{name}_l{layer}{suffix}").copy_(getattr(mod, f"{name}_l0"))
    x = torch.randn(3, 7, 5, dtype=torch.float64)
    out, (h, c) = ours(x)
    out_ref, (h_ref, c_ref) = ref(x)
    torch.testing.assert_close(out, out_ref, rtol=0, atol=ATOL)
    torch.testing.assert_close(h, h_ref, rtol=0, atol=ATOL)
    torch.testing.assert_close(c, c_ref, rtol=0, atol=ATOL)


def test_reverse_padded_and_last_valid():
    x = torch.arange(2 * 4, dtype=torch.float64).view(2, 4, 1)  # rows [0 1 2 3], [4 5 6 7]
    lengths = torch.tensor([4, 2])
    assert reverse_padded(x, lengths).view(2, 4).tolist() == [[3, 2, 1, 0], [5, 4, 6, 7]]
    out = torch.cat([x, 10 * x], dim=-1)  # (B, T, 2): "forward" then "backward" half
    assert last_valid(out, lengths, 2).tolist() == [[3, 0], [5, 40]]
    assert last_valid(x, lengths).view(-1).tolist() == [3, 5]


@pytest.mark.parametrize("cell", CELLS)
def test_stack_rejects_wrong_state_length(cell):
    stack = RecurrentStack(cell, 3, 4)
    wrong = (torch.zeros(1, 2, 4),) * (1 if cell == "lstm" else 2)
    with pytest.raises(ValueError, match="state is a tuple"):
        stack(torch.randn(2, 3, 3), wrong)


# --------------------------------------------------------------------------- every kind x cell
def all_models(cell):
    """One small model of every kind (bidirectional where the kind allows it)."""
    return {
        "lm": seeded(LanguageModel, LMConfig(30, cell=cell, embed_size=6, hidden_size=8, num_layers=2, dropout=0.0)),
        "classifier": seeded(SequenceClassifier, ClassifierConfig(30, num_classes=3, num_targets=2, cell=cell,
                                                                  embed_size=6, hidden_size=8, num_layers=2,
                                                                  dropout=0.0, bidirectional=True)),
        "tagger": seeded(Tagger, TaggerConfig(30, num_tags=5, cell=cell, embed_size=6, hidden_size=8, num_layers=2,
                                              dropout=0.0, bidirectional=True, char_vocab_size=12,
                                              char_embed_size=4, char_filters=5)),
        "forecaster": seeded(Forecaster, ForecasterConfig(input_size=3, output_size=2, cell=cell, hidden_size=8,
                                                          num_layers=2)),
        "one_to_many": seeded(ConditionedGenerator, OneToManyConfig(cond_size=4, vocab_size=30, cell=cell,
                                                                    embed_size=6, hidden_size=8, num_layers=2)),
    }


@pytest.mark.parametrize("cell", CELLS)
def test_every_kind_init_state_shapes(cell):
    for kind, model in all_models(cell).items():
        assert model.kind == kind
        D = 2 if kind in ("classifier", "tagger") else 1
        state = model.init_state(3)
        assert isinstance(state, tuple) and len(state) == (2 if cell == "lstm" else 1), kind
        assert all(s.shape == (2 * D, 3, 8) for s in state), (kind, [s.shape for s in state])


@pytest.mark.parametrize("cell", CELLS)
def test_step_by_step_equals_one_shot(cell):
    models = all_models(cell)
    x_tok = tokens(2, 6, 30)
    x_real = torch.randn(2, 6, 3, dtype=torch.float64)
    cond = torch.randn(2, 4, dtype=torch.float64)
    for kind, x, state in (("lm", x_tok, None), ("forecaster", x_real, None),
                           ("one_to_many", x_tok, models["one_to_many"].state_from(cond))):
        model = models[kind]
        full, full_state = model(x, state)
        steps, s = [], state
        for t in range(x.shape[1]):  # also uneven chunks: 1 step at a time carries the state
            out, s = model(x[:, t:t + 1], s)
            steps.append(out)
        torch.testing.assert_close(torch.cat(steps, 1), full, rtol=0, atol=ATOL, msg=kind)
        for a, b in zip(s, full_state):
            torch.testing.assert_close(a, b, rtol=0, atol=ATOL, msg=kind)
        two, s2 = model(x[:, :4], state)  # chunks of 4 + 2
        two2, _ = model(x[:, 4:], s2)
        torch.testing.assert_close(torch.cat([two, two2], 1), full, rtol=0, atol=ATOL, msg=kind)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_classifier_padded_batch_equals_each_alone(cell, bidirectional):
    model = seeded(SequenceClassifier, ClassifierConfig(30, num_classes=3, num_targets=1, bounded=True, cell=cell,
                                                        embed_size=6, hidden_size=8, num_layers=2, dropout=0.0,
                                                        bidirectional=bidirectional))
    lengths = torch.tensor([6, 3, 1])
    x = pad_after(tokens(3, 6, 30), lengths)
    out, _ = model(x, lengths)
    assert out["logits"].shape == (3, 3) and out["score"].shape == (3, 1)
    assert out["score"].abs().max() <= 1  # bounded: tanh
    for i, n in enumerate(lengths.tolist()):
        alone, _ = model(x[i:i + 1, :n], lengths[i:i + 1])
        for k in out:
            torch.testing.assert_close(out[k][i:i + 1], alone[k], rtol=0, atol=ATOL, msg=k)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_tagger_padded_batch_equals_each_alone(cell, bidirectional):
    model = seeded(Tagger, TaggerConfig(30, num_tags=5, cell=cell, embed_size=6, hidden_size=8, num_layers=2,
                                        dropout=0.0, bidirectional=bidirectional, char_vocab_size=12,
                                        char_embed_size=4, char_filters=5))
    lengths = torch.tensor([5, 2, 1])
    x = pad_after(tokens(3, 5, 30), lengths)
    # Characters per word, padded with 0 to W = 5; alone, rows 1 and 2 need only W = 3 and 1.
    word_len = torch.tensor([[5, 1, 3, 2, 4], [3, 2, 5, 5, 5], [1, 5, 5, 5, 5]])
    chars = torch.randint(1, 12, (3, 5, 5), generator=torch.Generator().manual_seed(2))
    chars[torch.arange(5).view(1, 1, 5) >= word_len.unsqueeze(-1)] = 0
    chars[torch.arange(5).unsqueeze(0) >= lengths.unsqueeze(1)] = 0
    logits, _ = model(x, lengths, chars)
    assert logits.shape == (3, 5, 5)
    for i, n in enumerate(lengths.tolist()):
        W = int(word_len[i, :n].max())  # alone, the words need less character padding too
        alone, _ = model(x[i:i + 1, :n], lengths[i:i + 1], chars[i:i + 1, :n, :W])
        torch.testing.assert_close(logits[i:i + 1, :n], alone, rtol=0, atol=ATOL)
    with pytest.raises(ValueError, match="chars"):
        model(x, lengths)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_classifier_running_matches_forward_on_each_prefix(cell, bidirectional):
    model = seeded(SequenceClassifier, ClassifierConfig(30, num_classes=3, num_targets=2, cell=cell, embed_size=6,
                                                        hidden_size=8, num_layers=1, dropout=0.0,
                                                        bidirectional=bidirectional))
    x = tokens(2, 5, 30)
    running = model.running(x)
    assert running["logits"].shape == (2, 5, 3) and running["score"].shape == (2, 5, 2)
    full, _ = model(x)
    for k in full:
        torch.testing.assert_close(running[k][:, -1], full[k], rtol=0, atol=ATOL)
    for t in range(1, 5):
        prefix, _ = model(x[:, :t])
        torch.testing.assert_close(running["logits"][:, t - 1], prefix["logits"], rtol=0, atol=ATOL)


# --------------------------------------------------------------------------- save / load
@pytest.mark.parametrize("cell", CELLS)
def test_save_load_round_trip_every_kind(tmp_path, cell):
    x_tok = tokens(2, 5, 30)
    x_real = torch.randn(2, 5, 3)
    chars = torch.randint(0, 12, (2, 5, 3))
    cond = torch.randn(2, 4)
    lengths = torch.tensor([5, 3])
    calls = {
        "lm": lambda m: m(x_tok)[0],
        "classifier": lambda m: m(x_tok, lengths)[0]["logits"],
        "tagger": lambda m: m(x_tok, lengths, chars)[0],
        "forecaster": lambda m: m(x_real)[0],
        "one_to_many": lambda m: m(x_tok, m.state_from(cond))[0],
    }
    for kind, model in all_models(cell).items():
        model = model.float()
        registry.save(model, tmp_path / kind)
        loaded = registry.load(tmp_path / kind)
        assert type(loaded) is type(model) and loaded.config == model.config
        torch.testing.assert_close(calls[kind](loaded), calls[kind](model), rtol=0, atol=0, msg=kind)


@pytest.mark.parametrize("embed,hidden", [(8, 8), (6, 8)])
def test_tied_weights_stay_tied_after_load(tmp_path, embed, hidden):
    model = seeded(LanguageModel, LMConfig(30, embed_size=embed, hidden_size=hidden, tie_weights=True)).float()
    assert model.head.weight is model.embed.weight
    assert (model.proj is not None) == (embed != hidden)
    registry.save(model, tmp_path)
    loaded = registry.load(tmp_path)
    assert loaded.head.weight is loaded.embed.weight
    assert loaded.num_params() == model.num_params()
    with torch.no_grad():  # one tensor: an update through one name shows through the other
        loaded.embed.weight[4, 0] += 1.0
    assert loaded.head.weight[4, 0] == loaded.embed.weight[4, 0]
    untied = seeded(LanguageModel, LMConfig(30, embed_size=embed, hidden_size=hidden, tie_weights=False))
    assert untied.head.weight is not untied.embed.weight


def test_bad_cell_and_kind_give_clear_errors(tmp_path):
    for make in (lambda: LMConfig(10, cell="lstmm"), lambda: RecurrentStack("transformer", 3, 4),
                 lambda: ClassifierConfig(10, cell="GRU")):
        with pytest.raises(ValueError, match="unknown cell .*allowed: lstm, gru, rnn_tanh, rnn_relu"):
            make()
    with pytest.raises(ValueError, match="unknown model kind 'cnn'"):
        registry.build_model("cnn", {})
    with pytest.raises(ValueError, match="no field"):
        registry.build_model("lm", {"vocab_size": 10, "hiden_size": 3})
    with pytest.raises(FileNotFoundError, match="not an rnnkit model directory"):
        registry.load(tmp_path)
    with pytest.raises(ValueError, match="num_classes > 0 or num_targets > 0"):
        ClassifierConfig(10, num_classes=0, num_targets=0)
