"""Model families: weighted fits equal fits on duplicated data, EM recovers a known mixture, KDE matches
scipy, and sampling bias scales the sampled covariance."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from madloop import linalg
from madloop.mixture import Mixture, mixture_log_prob, sample_mixture
from madloop.models import make_model
from madloop.models.gaussian import GaussianModel
from madloop.models.gmm import GMMModel, em_step, kmeans_pp_centers
from madloop.models.kde import KDEModel

KEY = jax.random.key(0)
KNOBS = {"lam": jnp.float32(1.0)}  # the closed-form families read only the sampling bias


def micro_case():
    # 4 points with integer weights (2, 1, 0, 3) vs the same data with each point repeated w times.
    x = jnp.array([[0.0, 1.0], [2.0, -1.0], [9.0, 9.0], [1.0, 3.0]])
    w = jnp.array([2.0, 1.0, 0.0, 3.0])
    dup = jnp.repeat(x, w.astype(int), axis=0, total_repeat_length=6)
    return x, w, dup, jnp.ones((6,))


@pytest.mark.parametrize("estimator", ["mle", "unbiased"])
def test_gaussian_weighted_fit_equals_duplicated_data(estimator):
    x, w, dup, ones = micro_case()
    model = make_model(GaussianModel(estimator=estimator))
    fit = lambda x, w: model.fit(KEY, model.init(KEY, x, w), x, w, False, KNOBS)
    a, b = fit(x, w), fit(dup, ones)
    np.testing.assert_allclose(a.mean, b.mean, rtol=1e-6)
    np.testing.assert_allclose(a.cov, b.cov, rtol=1e-5)
    # and the duplicated fit is numpy's: mean (2*[0,1] + [2,-1] + 3*[1,3]) / 6 = [5/6, 10/6]
    np.testing.assert_allclose(b.mean, [5 / 6, 10 / 6], rtol=1e-6)
    np.testing.assert_allclose(b.cov, np.cov(np.asarray(dup).T, ddof=0 if estimator == "mle" else 1), rtol=1e-5)


@pytest.mark.parametrize("on_cpu", [True, False])
@pytest.mark.parametrize("d", [2, 3, 4, 5, 10])
@pytest.mark.parametrize("case", ["spread", "collapsed", "zero_weights"])
def test_gaussian_statistics_equal_float64_on_both_paths(d, case, on_cpu, monkeypatch):
    """The weighted mean and scatter, as broadcast sums (d <= ELEMENTWISE_STATS_MAX_DIM on the CPU) or as dots (the
    other d, or the path of another backend, forced by ``on_cpu``), against float64 numpy, on the inputs a
    collapsing loop makes: a spread sample far from the origin, a collapsed one (every point the same: the scatter
    is 0, not rounding noise about a wrong mean) and one whose weights are mostly 0 (a pool's empty slots).
    Tolerance: float32 sums of 100 terms, relative to the sample's scale."""
    from madloop.models import gaussian

    monkeypatch.setattr(gaussian, "_on_cpu", lambda: on_cpu)
    assert gaussian.ELEMENTWISE_STATS_MAX_DIM == 4 and gaussian.ELEMENTWISE_STATS_MAX_N >= 100
    rng = np.random.default_rng(d)
    x = 100.0 + rng.normal(size=(100, d)) @ rng.normal(size=(d, d))
    w = rng.integers(0, 3, size=100).astype(np.float64)
    if case == "collapsed":
        x = np.broadcast_to(x[0], x.shape).copy()
    if case == "zero_weights":
        w[5:] = 0.0
    x32, w32 = np.float32(x), np.float32(w)
    stats = jax.jit(gaussian.gaussian_stats)(jnp.asarray(x32), jnp.asarray(w32))
    x64, w64 = np.float64(x32), np.float64(w32)
    mean = w64 @ x64 / w64.sum()
    scatter = ((x64 - mean) * w64[:, None]).T @ (x64 - mean)
    assert float(stats.count) == w64.sum()
    np.testing.assert_allclose(stats.mean, mean, rtol=2e-7 * 8, atol=0)
    scale = np.abs(x64 - mean).max() ** 2 * w64.sum()
    np.testing.assert_allclose(stats.scatter, scatter, rtol=0, atol=1e-5 * max(scale, 1.0))
    if case == "collapsed":  # a mean that misses the point by rounding leaves a scatter of that rounding squared
        assert np.abs(np.asarray(stats.scatter)).max() <= 1e-6 * w64.sum() * 100.0**2


@pytest.mark.parametrize("on_cpu", [True, False])
@pytest.mark.parametrize("d", [2, 3, 10, 20, 24])
def test_gaussian_samples_are_the_factor_times_the_draws_on_both_paths(d, on_cpu, monkeypatch):
    """sample_gaussian's (sqrt(lam) F z)^T + mean, with F applied as broadcast sums (3 <= d <= 20 on the CPU, the
    draws materialised first) or as a dot (the other d, or another backend's path, forced by ``on_cpu``), equals
    float64 numpy's product with the same draws z [d, n]; and a covariance of rank 1 gives samples on its line
    (the factor's zero columns add exact zeros)."""
    from madloop.models import gaussian

    monkeypatch.setattr(gaussian, "_on_cpu", lambda: on_cpu)
    assert gaussian.ELEMENTWISE_FACTOR_DIMS == (3, 20)
    rng = np.random.default_rng(d)
    a = rng.normal(size=(d, d))
    for cov in (a @ a.T + np.eye(d), np.outer(a[0], a[0])):
        params = gaussian.GaussianParams(jnp.asarray(np.float32(rng.normal(size=d))), jnp.asarray(np.float32(cov)))
        key = jax.random.key(d)
        x = jax.jit(gaussian.sample_gaussian, static_argnums=2)(key, params, 300, jnp.float32(0.5))
        z = np.float64(jax.random.normal(key, (d, 300)))
        factor = np.sqrt(np.float32(0.5)) * np.float64(linalg.sqrt_factor(params.cov))
        want = np.float64(params.mean) + (factor @ z).T
        np.testing.assert_allclose(x, want, rtol=0, atol=2e-6 * (np.abs(factor).sum(1).max() * 5 + 1))
        if np.linalg.matrix_rank(cov) == 1:  # every sample - mean is a multiple of the line a[0]
            u = a[0] / np.linalg.norm(a[0])
            off = (np.float64(x) - np.float64(params.mean)) @ (np.eye(d) - np.outer(u, u))
            assert np.abs(off).max() <= 1e-5 * np.abs(np.float64(x) - np.float64(params.mean)).max()


def test_a_large_sample_keeps_the_dots_for_its_statistics():
    """Above ELEMENTWISE_STATS_MAX_N samples the statistics are dots (the broadcast sums would write [n, d, d]
    products): the compiled program of n = 2 * MAX_N has a dot, and n = 100 none; both equal float64 numpy."""
    from madloop.models import gaussian

    for n, dots in ((100, False), (2 * gaussian.ELEMENTWISE_STATS_MAX_N, True)):
        rng = np.random.default_rng(n)
        x, w = np.float32(rng.normal(size=(n, 3)) + 5.0), np.float32(rng.integers(0, 3, size=n))
        fn = jax.jit(gaussian.gaussian_stats)
        assert (" dot(" in fn.lower(x, w).compile().as_text()) == dots
        stats = fn(x, w)
        x64, w64 = np.float64(x), np.float64(w)
        mean = w64 @ x64 / w64.sum()
        np.testing.assert_allclose(stats.mean, mean, rtol=1e-6)
        np.testing.assert_allclose(stats.scatter, ((x64 - mean) * w64[:, None]).T @ (x64 - mean), rtol=1e-4)


def test_the_truth_moments_are_the_mixture_moments():
    """A toy truth's mean and covariance, computed once in float64 numpy, equal ``mixture_moments`` (float32 JAX)
    to float32 rounding for a mixture, and are the Gaussian's own mean and covariance for one component."""
    from madloop.data.toy import Ring8Data, _truth_moments, make_source
    from madloop.mixture import mixture_moments

    mix = make_source(Ring8Data()).mixture
    for got, want in zip(_truth_moments(mix), mixture_moments(mix), strict=True):
        np.testing.assert_allclose(got, want, rtol=2e-6, atol=2e-7)
    one = Mixture(jnp.ones(1), jnp.array([[3.0, -1.5]]), jnp.array([[[2.0, 0.3], [0.3, 0.7]]]))
    mean, cov = _truth_moments(one)
    np.testing.assert_array_equal(mean, one.means[0])
    np.testing.assert_array_equal(cov, one.covs[0])


def test_gmm_weighted_em_equals_duplicated_data():
    x, w, dup, ones = micro_case()
    start = Mixture(jnp.array([0.5, 0.5]), jnp.array([[0.0, 0.0], [1.0, 2.0]]), jnp.stack([jnp.eye(2)] * 2))
    a = b = start
    for _ in range(5):
        a, b = em_step(a, x, w, 1e-6), em_step(b, dup, ones, 1e-6)
    for u, v in zip(a, b, strict=True):
        np.testing.assert_allclose(u, v, rtol=1e-4, atol=1e-6)


def test_em_step_reproduces_the_weighted_mean_and_second_moment():
    """After any M-step, sum_k pi_k m_k is the weighted mean of the data and sum_k pi_k (C_k + (m_k - xbar)(...)^T) is
    its weighted scatter about that mean over the total weight plus reg_covar I, whatever the components do (a
    poor start, a weight-0 point): the identities that make a GMM's overall moments contract as an exponential
    family's do in the synthetic augmentation loop (docs/theory.md, law 10)."""
    x = jax.random.normal(KEY, (200, 2)) * jnp.array([2.0, 0.5]) + jnp.array([1.0, -3.0])
    w = jnp.where(jnp.arange(200) == 7, 0.0, 1.0) * (1.0 + (jnp.arange(200) % 3))  # weights 0, 1, 2, 3
    mix = Mixture(jnp.full(3, 1 / 3), jnp.array([[0.0, 0.0], [5.0, 5.0], [-4.0, 1.0]]), jnp.stack([jnp.eye(2)] * 3))
    xbar = (w @ x) / w.sum()
    scatter = ((w[:, None] * (x - xbar)).T @ (x - xbar)) / w.sum()
    for _ in range(3):
        mix = em_step(mix, x, w, 1e-3)
        dev = mix.means - (mix.weights @ mix.means)
        second = jnp.einsum("k,kij->ij", mix.weights, mix.covs + jnp.einsum("ki,kj->kij", dev, dev))
        np.testing.assert_allclose(mix.weights @ mix.means, xbar, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(second, scatter + 1e-3 * jnp.eye(2), rtol=1e-4, atol=1e-5)


def test_kde_weighted_fit_equals_duplicated_data():
    x, w, dup, ones = micro_case()
    model = make_model(KDEModel())
    a = model.fit(KEY, model.init(KEY, x, w), x, w, False, KNOBS)
    b = model.fit(KEY, model.init(KEY, dup, ones), dup, ones, False, KNOBS)
    grid = jax.random.normal(KEY, (50, 2)) * 3
    np.testing.assert_allclose(model.density.log_prob(a, grid), model.density.log_prob(b, grid), rtol=1e-4)


def test_em_recovers_a_well_separated_mixture():
    truth = Mixture(
        jnp.array([0.2, 0.3, 0.5]),
        jnp.array([[-5.0, 0.0], [0.0, 5.0], [5.0, -1.0]]),
        jnp.array([[[1.0, 0.3], [0.3, 0.5]], [[0.4, 0.0], [0.0, 0.4]], [[0.8, -0.2], [-0.2, 1.0]]]),
    )
    n = 6000
    x = sample_mixture(jax.random.key(1), truth, n)
    model = make_model(GMMModel(components=3, init_iters=100))
    w = jnp.ones((n,))
    fit = model.fit(KEY, model.init(jax.random.key(2), x, w), x, w, False, KNOBS)
    order = np.argsort(np.asarray(fit.means[:, 0]))
    # Standard errors at n = 6000: weights ~ sqrt(.25 / 6000) = .006, means ~ sqrt(1 / 1200) = .03.
    np.testing.assert_allclose(fit.weights[order], truth.weights, atol=0.03)
    np.testing.assert_allclose(fit.means[order], truth.means, atol=0.12)
    np.testing.assert_allclose(fit.covs[order], truth.covs, atol=0.12)
    # The fitted log-likelihood is at least the truth's (EM maximises it) and close to it.
    ll_fit, ll_true = mixture_log_prob(fit, x).mean(), mixture_log_prob(truth, x).mean()
    assert ll_true - 1e-3 <= ll_fit <= ll_true + 0.01


def test_kmeans_pp_seeds_every_separated_cluster():
    means = jnp.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])
    x = (means[:, None, :] + 0.1 * jax.random.normal(KEY, (4, 50, 2))).reshape(-1, 2)
    for seed in range(5):
        centres = kmeans_pp_centers(jax.random.key(seed), x, jnp.ones((200,)), 4)
        nearest = jnp.argmin(jnp.sum((centres[:, None] - means[None]) ** 2, -1), axis=1)
        assert sorted(np.asarray(nearest).tolist()) == [0, 1, 2, 3]


def test_gmm_never_seeds_on_zero_weight_points():
    x = jnp.array([[0.0, 0.0], [100.0, 100.0], [1.0, 0.0], [0.0, 1.0]])
    w = jnp.array([1.0, 0.0, 1.0, 1.0])
    for seed in range(10):
        centres = kmeans_pp_centers(jax.random.key(seed), x, w, 3)
        assert float(jnp.max(jnp.abs(centres))) <= 1.0


@pytest.mark.parametrize("bandwidth", ["scott", "silverman", 0.3])
def test_kde_matches_scipy(bandwidth):
    x = jax.random.normal(KEY, (200, 2)) * jnp.array([1.0, 2.0])
    model = make_model(KDEModel(bandwidth=bandwidth))
    w = jnp.ones((200,))
    params = model.fit(KEY, model.init(KEY, x, w), x, w, False, KNOBS)
    ref = scipy.stats.gaussian_kde(np.asarray(x, np.float64).T, bw_method=bandwidth)
    grid = np.asarray(jax.random.normal(jax.random.key(3), (100, 2)) * 2)
    np.testing.assert_allclose(
        model.density.log_prob(params, jnp.asarray(grid)), ref.logpdf(grid.T), rtol=1e-4, atol=1e-4
    )


@pytest.mark.parametrize("family", [GaussianModel(), GMMModel(components=1), KDEModel(bandwidth=0.5)])
@pytest.mark.parametrize("lam", [0.5, 2.0])
def test_sampling_bias_scales_the_sampled_covariance(family, lam):
    # Gaussian and GMM sample N(mu, lam Sigma). The KDE adds lam-scaled kernel noise to resampled points:
    # Cov = Cov_points + lam H. Compare the sample covariance of 200k draws with the model's closed form.
    x = jax.random.normal(KEY, (500, 2)) @ jnp.array([[1.0, 0.5], [0.0, 1.0]])
    w = jnp.ones((500,))
    model = make_model(family)
    params = model.fit(KEY, model.init(KEY, x, w), x, w, False, KNOBS)
    draws = model.sample(jax.random.key(5), params, 200_000, {"lam": lam})
    mean, cov = model.moments.moments(params)
    if isinstance(family, KDEModel):
        factor = linalg.factor_matrix(params.kernel)
        kernel = factor @ factor.T
        cov = cov - kernel + lam * kernel
    else:
        cov = lam * cov
    np.testing.assert_allclose(jnp.mean(draws, 0), mean, atol=0.02 * np.sqrt(lam))
    # relative SE of a sample covariance entry at 200k draws ~ sqrt(2 / 2e5) = 0.3%
    np.testing.assert_allclose(jnp.cov(draws.T), cov, rtol=0.03, atol=0.01)


def test_kde_resamples_points_in_proportion_to_their_weights():
    # weights (0, 1, 3, 0, 4) / 8: a zero-weight slot is never drawn; the others with prob. 1/8, 3/8, 4/8.
    model = make_model(KDEModel(bandwidth=1e-3))
    x = jnp.arange(5.0)[:, None] * 10
    w = jnp.array([0.0, 1.0, 3.0, 0.0, 4.0])
    params = model.fit(KEY, model.init(KEY, x, w), x, w, False, KNOBS)
    draws = np.asarray(model.sample(jax.random.key(4), params, 40_000, {"lam": 1.0}))[:, 0]
    counts = np.bincount(np.rint(draws / 10).astype(int), minlength=5)
    assert counts[0] == 0 and counts[3] == 0
    # binomial SE at 40k draws <= sqrt(40000 / 4) = 100
    np.testing.assert_allclose(counts[[1, 2, 4]], 40_000 * np.array([1, 3, 4]) / 8, atol=450)


def test_gmm_m_step_floors_a_covariance_that_rounding_made_singular():
    """A component spanning two far, tight modes: scatter [[64, -32], [-32, 16]] is singular, and reg_covar = 1e-6
    is below float32's spacing at 64 and 16, so scatter + 1e-6 I is still exactly singular (a zero pivot, NaN
    log-densities: the GMM loop's one non-finite run of 256 in benchmarks/gmm_torch.py). The M-step floors such a
    component at 4x the rank threshold; a regular component's covariance is left bit for bit."""
    import jax.numpy as jnp

    from madloop import linalg
    from madloop.mixture import Mixture, component_log_prob
    from madloop.models.gmm import m_step

    x = jnp.asarray([[-8.0, 4.0], [-8.0, 4.0], [8.0, -4.0], [8.0, -4.0], [0.5, 0.25], [0.25, 0.5]], jnp.float32)
    resp = jnp.asarray([[1, 0], [1, 0], [1, 0], [1, 0], [0, 1], [0, 1]], jnp.float32)
    prev = Mixture(jnp.full((2,), 0.5), jnp.zeros((2, 2)), jnp.stack([jnp.eye(2)] * 2))
    # the power check: without the floor the covariance is exactly singular and the log-densities are NaN
    unfloored = jnp.asarray([[64.0, -32.0], [-32.0, 16.0]], jnp.float32) + 1e-6 * jnp.eye(2, dtype=jnp.float32)
    assert float(jnp.diagonal(linalg.pivoted_cholesky(unfloored).lower)[-1]) == 0.0
    bad = Mixture(jnp.full((2,), 0.5), jnp.zeros((2, 2)), jnp.stack([unfloored, jnp.eye(2)]))
    assert bool(jnp.any(jnp.isnan(component_log_prob(bad, x))))
    m = m_step(x, resp, prev, 1e-6)
    np.testing.assert_array_equal(m.covs[0][0], [64.0 + 4 * 2 * np.finfo(np.float32).eps * 64.0, -32.0])
    assert float(jnp.min(jnp.diagonal(linalg.pivoted_cholesky(m.covs).lower, axis1=-2, axis2=-1))) > 0
    assert bool(jnp.all(jnp.isfinite(component_log_prob(m, x))))
    # the regular component: its weighted scatter + reg_covar, as before the floor existed
    xc = x[4:] - jnp.mean(x[4:], axis=0)
    np.testing.assert_array_equal(m.covs[1], xc.T @ xc / 2 + 1e-6 * jnp.eye(2, dtype=jnp.float32))


def test_the_row_sampler_never_draws_an_empty_slot_at_the_largest_uniform(monkeypatch):
    """A pool's training set ends with weight-0 slots. In float32 its cdf (cumsum / sum) stopped at 0.9999995 for
    500 rows of weight 2 / 1300 and 300 of weight 1 / 1300, so the largest uniform fell past every weighted row
    onto an empty (all-zero) slot: about 3 draws in 10^7, in every neural family's minibatches."""
    from madloop.models.training import row_sampler

    w = jnp.concatenate([jnp.full(500, 2 / 1300), jnp.full(300, 1 / 1300), jnp.zeros(200)]).astype(jnp.float32)
    assert float(jnp.cumsum(w)[799] / jnp.sum(w)) < 1.0  # the case the old sampler got wrong
    top = jnp.nextafter(jnp.float32(1), jnp.float32(0))  # the largest float32 below 1
    monkeypatch.setattr(jax.random, "uniform", lambda key, shape, *a, **k: jnp.full(shape, top, jnp.float32))
    drawn = np.asarray(row_sampler(w)(jax.random.key(0), 4))
    assert (drawn == 799).all()
