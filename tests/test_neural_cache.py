"""The continuous cache: the incremental form (sessions) equals the block form (perplexity)."""

from __future__ import annotations

import numpy as np
import pytest

from rnnkit.edge.neural_cache import NeuralCache, cache_target_logprobs


def _stream(T=300, H=8, V=11, seed=0):
    rng = np.random.default_rng(seed)
    hidden = rng.normal(size=(T, H)).astype(np.float32)
    logits = rng.normal(size=(T, V))
    logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    targets = rng.integers(0, V, size=T)
    return hidden, targets, logp


@pytest.mark.parametrize("size", [1, 7, 50, 1000])
def test_block_form_equals_feeding_the_cache_one_position_at_a_time(size):
    hidden, targets, logp = _stream()
    cache = NeuralCache(hidden.shape[1], size=size, theta=0.7, lam=0.25)
    step = []
    for t in range(len(targets)):
        step.append(cache.mix(logp[t], hidden[t])[targets[t]])
        cache.add(hidden[t], int(targets[t]))
    block = cache_target_logprobs(hidden, targets, logp[np.arange(len(targets)), targets],
                                  size=size, theta=0.7, lam=0.25, chunk=64)
    np.testing.assert_allclose(block, np.array(step), rtol=0, atol=1e-9)


def test_lambda_zero_and_an_empty_cache_are_the_model():
    hidden, targets, logp = _stream(T=20)
    model = logp[np.arange(20), targets]
    np.testing.assert_allclose(cache_target_logprobs(hidden, targets, model, lam=0.0), model, atol=1e-12)
    cache = NeuralCache(8)
    np.testing.assert_array_equal(cache.mix(logp[0], hidden[0]), logp[0])


def test_a_repeated_context_makes_its_word_likely():
    h = np.ones(4, np.float32)
    cache = NeuralCache(4, theta=1.0, lam=0.5)
    uniform = np.log(np.full(10, 0.1))
    cache.add(h, 7)
    cache.add(-h, 3)  # an unlike state
    p = np.exp(cache.mix(uniform, h))
    assert p.argmax() == 7 and p[7] > 0.5 and p.sum() == pytest.approx(1.0)
    assert p[3] < p[7] and p[3] > 0.05  # the unlike state's word gets a little


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="0 <= lam < 1"):
        NeuralCache(4, lam=1.0)


def test_word_cache_offers_what_followed_similar_states_and_stays_bounded():
    from rnnkit.edge.neural_cache import WordCache

    h = np.ones(4, np.float32)
    cache = WordCache(4, size=3, theta=1.0, lam=0.5)
    for w in ["alpha", "beta", "gamma", "delta"]:  # size 3: "alpha" falls out
        cache.add(h, w)
    p = cache.probs(h)
    assert set(p) == {"beta", "gamma", "delta"} and sum(p.values()) == pytest.approx(1.0)
    for i in range(40):  # many distinct words: the id table is compacted, not grown without end
        cache.add(h if i % 2 else -h, f"w{i}")
    assert len(cache._words) <= 4 * 3 + 1
    p = cache.probs(h)
    assert max(p, key=p.get) in {"w37", "w39"} and cache.mix(np.log(0.2), p["w39"]) > np.log(0.2)
