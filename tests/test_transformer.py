"""The causal transformer family: causality, its sampler against its own likelihood, and a fit that learns."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from madloop import tokens as T
from madloop.data import make_source
from madloop.data.discrete import MarkovData
from madloop.models.transformer import TransformerModel, transformer_family

TINY = TransformerModel(width=16, depth=1, heads=2, train_steps=300, finetune_steps=50, batch=32, lr=1e-2)
KNOBS = {"lam": jnp.float32(1.0), "top_k": jnp.float32(0), "top_p": jnp.float32(1.0)}


def test_position_t_sees_only_the_tokens_before_it():
    from madloop.models.lm_network import CausalLM

    module = CausalLM(vocab=5, length=6, width=16, depth=2, heads=2)
    x = jnp.array([1, 2, 3, 4, 0, 1])
    net = module.init(jax.random.key(0), x)["params"]
    apply = jax.jit(lambda row: module.apply({"params": net}, row))
    base = apply(x)
    for t in range(6):  # changing token t changes the logits of positions after t only
        other = apply(x.at[t].set((x[t] + 1) % 5))
        np.testing.assert_array_equal(other[: t + 1], base[: t + 1])
        assert not np.allclose(other[t + 1 :], base[t + 1 :]) or t == 5


@pytest.mark.slow  # 3 min of compilation on a loaded 2-core CPU (the autoregressive sampler with its truncation)
def test_sampler_draws_rows_with_the_probability_its_likelihood_gives():
    # An untrained net over V = 3, L = 3 (27 rows): 30,000 sampled rows' frequencies within 4.5 SE of
    # exp(log_prob(row)), which sum to 1 over all rows. Power: the uniform law over rows is rejected. At
    # temperature 2 the sampler follows the tempered conditionals (per position), not the tempered joint.
    model = transformer_family(TINY, 3, 3)
    x0 = jnp.zeros((4, 3))
    params = model.init(jax.random.key(1), x0, jnp.ones(4))
    rows = jnp.asarray(list(itertools.product(range(3), repeat=3)), jnp.float32)
    law = np.exp(np.asarray(model.density.log_prob(params, rows), np.float64))
    assert law.sum() == pytest.approx(1.0, abs=1e-5)
    n = 30_000
    x = np.asarray(model.sample(jax.random.key(2), params, n, KNOBS)).astype(int)
    index = x @ np.array([9, 3, 1])
    freq = np.eye(27)[index]
    se = freq.std(axis=0, ddof=1) / np.sqrt(n)
    assert np.all(np.abs(freq.mean(axis=0) - law) < 4.5 * se + 1e-9)
    assert np.any(np.abs(freq.mean(axis=0) - 1 / 27) > 4.5 * se)


@pytest.mark.slow
def test_a_fit_learns_a_markov_language():
    # 300 AdamW steps on 256 rows of an order-1 chain over 4 tokens: the held-out cross-entropy falls from about
    # log 4 (an untrained net) to within 0.1 nats of the truth's entropy per token (the bigram's own fit of the same
    # rows is the yardstick: within 0.1 of it too).
    src = make_source(MarkovData(vocab=4, order=1, length=8, alpha=1.5))
    model = transformer_family(TINY, 4, 8)
    x = src.sample(jax.random.key(0), 256)
    held = T.as_tokens(src.sample(jax.random.key(1), 2000))
    knobs = {"lr": jnp.float32(TINY.lr), "ema": jnp.float32(0.0)}
    params = model.init(jax.random.key(2), x, jnp.ones(256))
    before = -float(jnp.mean(model.density.log_prob(params, held))) / 8
    params = jax.jit(lambda p: model.fit(jax.random.key(3), p, x, jnp.ones(256), False, knobs))(params)
    after = -float(jnp.mean(model.density.log_prob(params, held))) / 8
    truth = float(T.sequence_entropy(src.tokens.trans, 4, 1, 8))
    bigram = T.smoothed(T.count_ngrams(T.as_tokens(x), jnp.ones(256), 4, 1), 0.5)
    yardstick = -float(jnp.mean(T.log_prob(bigram, held, 4, 1))) / 8
    assert before > np.log(4) - 0.1
    assert after < truth + 0.1 and after < yardstick + 0.1, (before, after, truth, yardstick)
