"""The categorical loop against its exact laws (docs/theory.md, law 14), and the samplers against their laws.

As in tests/test_gaussian_laws.py: thousands of vmapped seeds through the real engine (madloop.simulate), the
across-seed mean compared with the closed form within Z = 4.5 standard errors (fixed keys), and a plausible wrong
law rejected (the power check).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import madloop
from madloop import theory
from madloop import tokens as T
from madloop.data import make_source
from madloop.data.discrete import MarkovData
from madloop.models.ngram import NgramParams, ngram_family

Z = 4.5


def categorical_loop(regime: str, vocab: int, n_real: int, n_synth: int, generations: int, seeds: int, *extra):
    return madloop.simulate(
        ["data=zipf", f"data.vocab={vocab}", "data.alpha=1.0", "model=categorical", f"regime={regime}"]
        + [f"regime.n_real={n_real}", f"regime.n_synth={n_synth}", f"loop.generations={generations}"]
        + [f"loop.seeds={seeds}", f"loop.chunk={generations}", "eval.metrics=[gini_simpson]", "eval.snapshots=0"]
        + ["eval.snapshot_n=1", "plots=false", *extra]
    )


def assert_mean_law(samples: np.ndarray, expected: np.ndarray, wrong: np.ndarray | None = None) -> None:
    """samples [S, ...] vs expected [...] within Z standard errors; ``wrong`` must be rejected somewhere."""
    mean = samples.mean(axis=0)
    se = samples.std(axis=0, ddof=1) / np.sqrt(samples.shape[0])
    z = np.abs(mean - expected) / np.maximum(se, 1e-12)
    assert np.all(z < Z), f"max |z| = {z.max():.2f} at {np.unravel_index(z.argmax(), z.shape)}"
    if wrong is not None:
        assert np.any(np.abs(mean - wrong) > Z * se), "the test cannot tell the law from a wrong one"


def test_wright_fisher_heterozygosity_decays_by_one_minus_one_over_n():
    # Fully synthetic, MLE, n tokens per generation: the Wright-Fisher model. E[1 - sum q_g^2] =
    # (1 - 1/n)^(g + 1) (1 - sum p^2), generation 0 being a fit of n real tokens; the off-by-one law is rejected.
    v, n, g = 20, 25, 20
    r = categorical_loop("fully_synthetic", v, n, n, g, 4000)
    p = T.zipf_probs(v, 1.0)
    law = theory.wright_fisher_heterozygosity(p, g, n)
    assert_mean_law(r.metrics["gini_simpson"], law, wrong=law / (1 - 1 / n))
    np.testing.assert_allclose(1 - theory.categorical_moments(p, g, n, n, "fully_synthetic")[1], law)


@pytest.mark.parametrize("regime", ["fresh_data", pytest.param("synthetic_augmentation", marks=pytest.mark.slow)])
def test_smoothed_loops_follow_their_exact_recursions(regime):
    # Additive smoothing 0.25, V = 8, n_real = 4, n_synth = 12: E sum q_g^2 and E q_G per type follow
    # theory.categorical_moments. The power check uses another regime's law: fresh data and augmentation differ only
    # in the cross term (a fresh real set against the fixed one). (Fully synthetic: tests/validation/test_discrete.py.)
    v, g, alpha = 8, 12, 0.25
    r = categorical_loop(regime, v, 4, 12, g, 3000, f"model.smoothing={alpha}")
    p = T.zipf_probs(v, 1.0)
    m, s = theory.categorical_moments(p, g, 4, 12, regime, alpha)
    other = {"fresh_data": "synthetic_augmentation", "synthetic_augmentation": "fresh_data"}[regime]
    wrong = 1 - theory.categorical_moments(p, g, 4, 12, other, alpha)[1]
    assert_mean_law(r.metrics["gini_simpson"], 1 - s, wrong=wrong)
    assert_mean_law(np.asarray(r.state.params.trans)[:, 0], m[-1])


@pytest.mark.parametrize("lam,top_k,top_p", [(0.5, 0, 1.0), (2.0, 0, 1.0), (1.3, 5, 1.0), (0.8, 0, 0.7)])
def test_biased_sampler_draws_from_the_tempered_truncated_law(lam, top_k, top_p):
    # 200,000 tokens of a categorical model at (lam, top_k, top_p): every token's frequency within 4.5 SE of
    # truncate(temperature_map(q, lam), top_k, top_p); power: the map with the exponent lam (not 1 / lam), or no
    # truncation, is rejected.
    v, n = 10, 200_000
    q = T.zipf_probs(v, 0.8)
    model = ngram_family(v, 1, 0, 0.0)
    knobs = {"lam": jnp.float32(lam), "top_k": jnp.float32(top_k), "top_p": jnp.float32(top_p)}
    x = np.asarray(model.sample(jax.random.key(3), NgramParams(jnp.asarray(q[None], jnp.float32)), n, knobs))
    freq = np.eye(v)[x[:, 0].astype(int)]
    law = theory.truncate(theory.temperature_map(q, lam), top_k, top_p)
    wrong = theory.temperature_map(q, 1 / lam) if top_k == 0 and top_p == 1 else theory.temperature_map(q, lam)
    assert_mean_law(freq, law, wrong=wrong)
    assert freq[:, law == 0].sum() == 0  # a truncated token is never drawn


@pytest.mark.slow  # the default tier's discrete tests stay near a minute
def test_markov_truth_draws_its_exact_pair_law():
    # Rows of the order-2 Markov truth: the share of rows with each (context, token) pair at each position follows
    # the chain's exact pair mass; power: an order-1 chain (each token's law given only the token before it, as
    # the truth's second token has) is rejected.
    cfg = MarkovData(vocab=4, order=2, length=6, alpha=1.0, support=3, layout_seed=1)
    src = make_source(cfg)
    x = T.as_tokens(src.sample(jax.random.key(5), 50_000))
    ctx = np.asarray(T.row_contexts(x, 4, 2))
    counts = np.zeros((50_000, 25 * 4))
    np.add.at(counts, (np.arange(50_000)[:, None], ctx * 4 + np.asarray(x)), 1.0)
    law = np.asarray(T.ngram_mass(src.tokens.trans, 4, 2, 6)).reshape(-1)
    wrong_chain = T.lift(src.tokens.trans[20:25], 4, 1, 2)  # contexts (BOS, x): the second token's law given x
    wrong = np.asarray(T.ngram_mass(wrong_chain, 4, 2, 6)).reshape(-1)
    assert_mean_law(counts, law, wrong=wrong)


@pytest.mark.slow
def test_held_out_kl_rate_estimates_the_exact_kl_without_bias():
    # kl_rate reads one held-out set: mean over its rows of (log p(x) - log q(x)) / L, whose expectation over
    # held-out sets is KL(P || Q) per token, exactly sequence_kl. 2,000 held-out sets of 64 rows for a fixed
    # model Q; power: the same estimate per row (without the 1 / L) is rejected.
    src = make_source(MarkovData(vocab=6, order=1, length=10))
    p = src.tokens.trans
    q = T.smoothed(T.count_ngrams(T.as_tokens(src.sample(jax.random.key(1), 30)), jnp.ones(30), 6, 1), 0.5)
    keys = jax.random.split(jax.random.key(2), 2000)

    def rate(key):
        x = T.as_tokens(src.sample(key, 64))
        return jnp.mean(T.log_prob(p, x, 6, 1) - T.log_prob(q, x, 6, 1)) / 10

    rates = np.asarray(jax.jit(jax.vmap(rate))(keys))[:, None]
    exact = float(T.sequence_kl(p, q, 6, 1, 1, 10))
    assert_mean_law(rates, np.array([exact]), wrong=np.array([exact * 10]))
