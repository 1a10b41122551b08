"""Weight decay where it belongs, and a coupled decay that would erase the weights refused."""

import pytest
import torch

from rnnkit.core.models.kinds import LanguageModel, LMConfig
from rnnkit.core.train.schedules import build_optimizer, decay_groups


def test_decay_only_on_weight_matrices_not_embeddings_biases():
    model = LanguageModel(LMConfig(vocab_size=50, embed_size=8, hidden_size=8, num_layers=1, tie_weights=True))
    decay, keep = decay_groups(model, 0.01)
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = sorted(names[id(p)] for p in decay["params"])
    kept = sorted(names[id(p)] for p in keep["params"])
    assert decayed and all("weight" in n and "embed" not in n for n in decayed), decayed
    assert any("embed" in n for n in kept) and all(
        "bias" in n or "embed" in n or p.ndim < 2 for n, p in model.named_parameters() if n in kept)
    assert len(decay["params"]) + len(keep["params"]) == len(list(model.parameters()))
    opt = build_optimizer(model, "adamw", 1e-3, 0.01)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.01, 0.0]


def test_embedding_is_not_decayed_by_a_step():
    torch.manual_seed(0)
    model = LanguageModel(LMConfig(vocab_size=50, embed_size=8, hidden_size=8, num_layers=1, tie_weights=False))
    emb = next(m for m in model.modules() if isinstance(m, torch.nn.Embedding)).weight
    lstm_w = next(p for n, p in model.named_parameters() if "weight_hh" in n)
    before, before_w = emb.detach().clone(), lstm_w.detach().clone()
    opt = build_optimizer(model, "adamw", 0.1, 0.5)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)  # zero gradients: only the decoupled decay moves a parameter
    opt.step()
    assert torch.equal(emb, before)
    assert torch.allclose(lstm_w, before_w * (1 - 0.1 * 0.5))  # the matrices are decayed


def test_coupled_decay_that_erases_weights_is_refused():
    model = torch.nn.Linear(3, 3)
    with pytest.raises(ValueError, match="weight_decay=0"):
        build_optimizer(model, "sgd", 20.0, 0.01)
    build_optimizer(model, "sgd", 20.0, 0.0)
    build_optimizer(model, "adamw", 20.0, 0.01)  # decoupled: fine


def test_a_run_checkpointed_with_one_group_resumes(tmp_path, monkeypatch):
    """Runs started before decay groups have a one-group optimizer in their checkpoints: they
    resume with one group instead of refusing."""
    from rnnkit.core.train import schedules
    from rnnkit.core.train import trainer
    from rnnkit.core.train.checkpoint import saved_group_count
    from test_trainer import cfg_for
    from test_trainer_toys import ToyLMTask, tiny_lm

    one_group = lambda params, *a, **kw: schedules.build_optimizer(  # noqa: E731
        list(params.parameters()) if isinstance(params, torch.nn.Module) else params, *a, **kw)
    with monkeypatch.context() as m:
        m.setattr(trainer, "build_optimizer", one_group)
        trainer.train(tiny_lm(), ToyLMTask(), cfg_for(tmp_path, weight_decay=0.01), stop_after_steps=6)
    assert saved_group_count(tmp_path / "run" / "checkpoints") == 1
    result = trainer.train(tiny_lm(seed=3), ToyLMTask(), cfg_for(tmp_path, weight_decay=0.01), resume=True)
    assert result.steps == 24
