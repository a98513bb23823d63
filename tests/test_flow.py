"""Flow family and the Rosenbrock truth: log-determinants against autodiff Jacobians, exact inverses, a normalised
density, the sampling bias, weighted fits, fitted moments, and the Rosenbrock sampler against its closed forms."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import madloop
from madloop.data import make_source
from madloop.data.toy import RosenbrockData, rosenbrock_moments
from madloop.models.flow import FlowModel, flow_family
from madloop.precision import precision

KEY = jax.random.key(0)
SMALL = {"layers": 3, "width": 16, "depth": 2}
# The fits below share one config and one compiled program (x [256, 2], w [256]): fit from scratch, then sample
# (slow tier: the program compiles in about 10 s on 2 cores).
FIT = FlowModel(**SMALL, train_steps=600, finetune_steps=3, batch=64, lr=1e-2)


def knobs(cfg: FlowModel, lam: float = 1.0) -> dict:
    return {"lr": jnp.float32(cfg.lr), "ema": jnp.float32(cfg.ema), "lam": jnp.float32(lam)}


def perturbed(net, key, scale: float):
    """Every parameter plus N(0, scale^2) noise: couplings that are not the identity, an LU map that is not the
    reversal, actnorms away from their initialisation (so every term of every log-determinant is exercised)."""
    flat, unravel = ravel_pytree(net)
    return unravel(flat + scale * jax.random.normal(key, flat.shape, flat.dtype))


def random_flow(fam, d: int, key=KEY, scale: float = 0.3, spread: float = 1.0):
    """A flow's net on d dimensions, initialised on N(0, spread^2 I) data (the run's precision), then perturbed."""
    x = spread * jax.random.normal(jax.random.fold_in(key, 1), (256, d), jnp.zeros(()).dtype)
    params = fam.model.init(jax.random.fold_in(key, 2), x, jnp.ones((256,), x.dtype))
    return perturbed(params.net, jax.random.fold_in(key, 3), scale)


@pytest.mark.parametrize("mixing,d", [("lu", 3), ("permute", 2)])
def test_every_log_det_equals_the_autodiff_jacobian_and_every_inverse_is_exact(mixing, d):
    """Each step's and the whole flow's log-det equals log |det J| of jax.jacfwd's Jacobian (float64, numpy's
    slogdet), at random inputs; step and flow inverses undo the forward maps (odd d: unequal halves; d = 2 also in
    the quadrature test; d = 64 > 4, the looped triangular solve, in the image-row test)."""
    fam = flow_family(FlowModel(**SMALL, mixing=mixing))

    def check_step(layer, x):
        y, log_det = fam.step_forward(layer, x)
        return log_det, jax.jacfwd(lambda v: fam.step_forward(layer, v)[0])(x), fam.step_inverse(layer, y)

    def check_flow(net, x):
        z, log_det = fam.forward(net, x)
        return log_det, jax.jacfwd(lambda v: fam.forward(net, v)[0])(x), fam.inverse(net, z)

    @jax.jit
    def run(xs):
        net = random_flow(fam, d)
        per_step = jax.vmap(jax.vmap(check_step, (None, 0)), (0, None))(net, xs)  # [layers, 4, ...]
        return per_step, jax.vmap(check_flow, (None, 0))(net, xs)

    with precision("float64"):
        xs = 1.5 * jax.random.normal(jax.random.key(5), (4, d), jnp.float64)
        per_step, whole = run(xs)
    assert per_step[0].shape == (SMALL["layers"], 4)
    for log_det, jac, back in (per_step, whole):
        sign, want = np.linalg.slogdet(np.asarray(jac))
        assert np.all(sign != 0)
        np.testing.assert_allclose(np.asarray(log_det), want, rtol=0, atol=1e-10)
        np.testing.assert_allclose(np.asarray(back), np.broadcast_to(np.asarray(xs), back.shape), rtol=0, atol=1e-10)


def test_log_prob_integrates_to_one():
    """Midpoint quadrature of exp(log_prob) of a perturbed random flow (initialised on data of scale 2, so that it
    changes volume) over a box is 1 (float64). The box holds the mass: at most 1e-4 of 100,000 flow samples fall
    outside it. Power: the density without the log-det term (a flow that forgets its Jacobian) integrates to
    something else."""
    half, h = np.array([32.0, 24.0]), 0.08
    fam = flow_family(FlowModel(**SMALL))

    @jax.jit
    def run(z, grid):
        net = random_flow(fam, 2, scale=0.1, spread=2.0)
        samples = jax.vmap(lambda zi: fam.inverse(net, zi))(z)
        outside = jnp.mean(jnp.any(jnp.abs(samples) > half, axis=1))
        latent, _ = jax.vmap(lambda xi: fam.forward(net, xi))(grid)
        without_log_det = -0.5 * jnp.sum(latent**2, axis=1) - math.log(2 * math.pi)
        return outside, jnp.sum(jnp.exp(fam.log_prob(net, grid))) * h * h, jnp.sum(jnp.exp(without_log_det)) * h * h

    with precision("float64"):
        z = jax.random.normal(jax.random.key(7), (100_000, 2), jnp.float64)
        t1, t2 = (jnp.arange(-b + h / 2, b, h, dtype=jnp.float64) for b in half)
        outside, total, wrong = map(float, run(z, jnp.stack(jnp.meshgrid(t1, t2, indexing="ij"), -1).reshape(-1, 2)))
    assert outside <= 1e-4, outside
    assert abs(total - 1.0) < 1e-3, total
    assert abs(wrong - 1.0) > 0.05, wrong


@pytest.mark.parametrize("mixing", ["lu", "permute"])
def test_initial_flow_is_the_data_gaussian_and_lam_scales_its_latent(mixing):
    """At initialisation (identity couplings, reversal mixing, data-dependent actnorm) the flow is the affine map
    x = m + s * z with m, s the data's weighted mean and standard deviation per coordinate, so its log_prob is
    N(x; m, diag s^2) and its samples at sampling bias lam have covariance lam diag(s^2). The sample variances
    match lam s^2 within 4.5 SE (SE = var sqrt(2 / n)); the wrong laws lam^2 s^2 and s^2 (lam ignored) are
    rejected."""
    d, n, lam = 3, 40_000, 0.5
    cfg = FlowModel(**SMALL, mixing=mixing)
    model = flow_family(cfg).model
    scale = jnp.array([0.5, 2.0, 1.0])
    x = jnp.array([1.0, -2.0, 0.5]) + scale * jax.random.normal(KEY, (1000, d))
    w = jax.random.uniform(jax.random.key(1), (1000,), minval=0.5, maxval=2.0)  # frequency weights

    @jax.jit
    def run(x, w):
        params = model.init(jax.random.key(2), x, w)
        return model.density.log_prob(params, x), model.sample(jax.random.key(3), params, n, knobs(cfg, lam))

    log_prob, y = run(x, w)
    p = w / jnp.sum(w)
    mean = p @ x
    var = p @ (x - mean) ** 2
    want = -0.5 * jnp.sum((x - mean) ** 2 / var + jnp.log(2 * jnp.pi * var), axis=1)
    np.testing.assert_allclose(log_prob, want, rtol=0, atol=1e-4)
    got = np.var(np.asarray(y, np.float64), axis=0, ddof=1)
    se = np.asarray(lam * var) * np.sqrt(2 / n)
    np.testing.assert_allclose(np.mean(np.asarray(y), axis=0), mean, atol=float(4.5 * np.sqrt(lam * var.max() / n)))
    assert np.all(np.abs(got - lam * var) < 4.5 * se), (got, lam * var)
    for wrong in (lam**2 * var, var):
        assert np.all(np.abs(got - wrong) > 4.5 * se), (got, wrong)


@jax.jit
def fit_and_sample(x, w):
    """(params, 20,000 samples) of FIT fitted from scratch on x [256, 2] with weights w [256]."""
    model = flow_family(FIT).model
    params = model.fit(KEY, model.init(KEY, x, w), x, w, False, knobs(FIT))
    return params, model.sample(jax.random.key(9), params, 20_000, knobs(FIT))


def two_blobs(n: int):
    """[2n, 2]: n points around (-2, 0) (blob A), then n around (+2, 0) (blob B)."""
    e = 0.3 * jax.random.normal(jax.random.key(11), (2 * n, 2))
    return e + jnp.where(jnp.arange(2 * n)[:, None] < n, jnp.array([-2.0, 0.0]), jnp.array([2.0, 0.0]))


def test_weighted_objective_equals_the_objective_of_duplicated_data():
    """Weight 3 on blob A and 1 on blob B against blob A's rows written three times (and zero-weight padding rows):
    the weighted negative log-likelihood is the same number. Power: ignoring the weights gives another number."""
    n = 64
    fam = flow_family(FIT)
    x = two_blobs(n)
    w = jnp.concatenate([jnp.full((n,), 3.0), jnp.ones((n,)), jnp.zeros((2 * n,))])
    padded = jnp.concatenate([x, x])
    dup = jnp.concatenate([x[:n], x[:n], x[:n], x[n:]])
    ones = jnp.ones((4 * n,))
    uniform = jnp.concatenate([jnp.ones((2 * n,)), jnp.zeros((2 * n,))])

    @jax.jit
    def run(padded, dup, w, ones, uniform):
        net = perturbed(fam.model.init(KEY, dup, ones).net, jax.random.key(1), 0.2)
        return fam.objective(net, padded, w), fam.objective(net, dup, ones), fam.objective(net, padded, uniform)

    weighted, duplicated, unweighted = run(padded, dup, w, ones, uniform)
    np.testing.assert_allclose(weighted, duplicated, rtol=1e-6)
    assert abs(float(unweighted - duplicated)) > 1e-3


@pytest.mark.slow
def test_weighted_fit_equals_the_fit_on_duplicated_data():
    """The fits on the weighted and on the duplicated data give the same share of samples in blob A (3/4). Power:
    the fit that ignores the weights gives a share near 1/2. (The weighted sets are padded with zero-weight rows to
    the duplicated set's size, so one compiled program fits all three.)"""
    n = 64
    x = two_blobs(n)
    w = jnp.concatenate([jnp.full((n,), 3.0), jnp.ones((n,))])
    dup = jnp.concatenate([x[:n], x[:n], x[:n], x[n:]])
    padded, pad = jnp.concatenate([x, x]), jnp.zeros((2 * n,))

    def share_in_a(x, w):
        return float(jnp.mean(fit_and_sample(x, w)[1][:, 0] < 0))

    weighted, duplicated = share_in_a(padded, jnp.concatenate([w, pad])), share_in_a(dup, jnp.ones((4 * n,)))
    unweighted = share_in_a(padded, jnp.concatenate([jnp.ones((2 * n,)), pad]))
    # Binomial SE at 20,000 samples: 0.003; the rest is the fits' error (measured: 0.741, 0.746 and 0.505).
    assert abs(weighted - 0.75) < 0.06 and abs(duplicated - 0.75) < 0.06, (weighted, duplicated)
    assert abs(unweighted - 0.5) < 0.06, unweighted


@pytest.mark.slow
def test_fitted_flow_recovers_a_gaussian_and_warm_start_continues_it():
    """A small flow fitted on 256 draws of N(MEAN, COV) reproduces their mean and covariance, and its held-out NLL
    is near the truth's entropy (overfitting aside). Power: the covariance with the correlation's sign flipped is
    rejected at the same tolerance. A warm fit runs ``finetune_steps`` from the given parameters (as ``train`` for
    that many steps)."""
    mean = jnp.array([1.0, -0.5])
    cov = jnp.array([[0.5, 0.3], [0.3, 0.4]])
    chol = jnp.linalg.cholesky(cov)
    x = mean + jax.random.normal(KEY, (256, 2)) @ chol.T
    w = jnp.ones((256,))
    x_mean, x_cov = np.mean(np.asarray(x), 0), np.cov(np.asarray(x).T, bias=True)
    params, y = fit_and_sample(x, w)
    got = np.cov(np.asarray(y).T)
    # Against the training data's own moments (the fit's target): sampling SE of the entries ~0.005; the rest is
    # the fit's error (measured: 0.009 on the mean, 0.007 on the covariance).
    np.testing.assert_allclose(np.mean(np.asarray(y), 0), x_mean, atol=0.05)
    np.testing.assert_allclose(got, x_cov, atol=0.05)
    flipped = x_cov * np.array([[1, -1], [-1, 1]])
    assert np.abs(got - flipped).max() > 0.05
    model = flow_family(FIT).model
    held = mean + jax.random.normal(jax.random.key(4), (20_000, 2)) @ chol.T
    entropy = 0.5 * math.log(float(jnp.linalg.det(2 * math.pi * math.e * cov)))
    nll = -float(jnp.mean(jax.jit(model.density.log_prob)(params, held)))
    # Measured 0.077 above the entropy (600 steps on 256 points overfit; SE of the mean 0.007); the Gaussian with
    # the correlation's sign flipped would be KL = 1.64 nats above it.
    assert abs(nll - entropy) < 0.15, (nll, entropy)

    fam = flow_family(FIT)
    warm = fam.model.fit(KEY, params, x, w, True, knobs(FIT))
    manual, losses = fam.train(KEY, params, x, w, 3, knobs(FIT))
    assert losses.shape == (3,)
    assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)), warm.net, manual.net))


def test_flow_on_image_rows_is_invertible_and_samples_rows():
    """d = 64 (digits rows): a flow's samples are rows [n, 64], and its inverse undoes its forward map (the
    training step is the vectors' code: nothing in it depends on d)."""
    cfg = FlowModel(layers=2, width=32, depth=1)
    fam = flow_family(cfg)
    x = jnp.tanh(jax.random.normal(KEY, (64, 64)))

    @jax.jit
    def run(x):
        params = fam.model.init(KEY, x, jnp.ones((64,)))
        params = params._replace(ema=perturbed(params.ema, jax.random.key(2), 0.05))
        z, _ = jax.vmap(lambda xi: fam.forward(params.ema, xi))(x)
        return jax.vmap(lambda zi: fam.inverse(params.ema, zi))(z), fam.model.sample(KEY, params, 10, knobs(cfg))

    back, y = run(x)
    np.testing.assert_allclose(back, x, atol=2e-4)
    assert y.shape == (10, 64) and bool(jnp.all(jnp.isfinite(y)))


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["model=flow", "model.mixing=conv"], "model.mixing=conv: allowed: lu, permute"),
        (["model=flow", "model.clamp=-1"], "model.clamp=-1.0: must be a finite number > 0"),
        (["model=flow", "data=gaussian", "data.dim=1"], "data.dim=1: model=flow needs d >= 2"),
        (["data=rosenbrock", "data.b=-1"], "data.b=-1.0: must be a finite number > 0"),
        (["data=rosenbrock", "data.mu=1e300"], "gives moments beyond float32's range"),
    ],
)
def test_bad_flow_and_rosenbrock_settings_name_the_field(overrides, message):
    with pytest.raises(madloop.ConfigError) as err:
        madloop.compose(overrides)
    assert message in str(err.value)


# ---------------------------------------------------------------------------------------------- the Rosenbrock truth


@pytest.mark.parametrize("mu,a,b", [(0.0, 0.5, 1.0), (1.0, 0.25, 2.0)])
def test_rosenbrock_sampler_matches_its_closed_form_moments(mu, a, b):
    """Sample mean, E[x1^2] and covariance of 400,000 draws against the closed forms (x1 ~ N(mu, v1), x2 = x1^2 +
    N(0, v2): E x2 = E x1^2 = mu^2 + v1, Var x2 = 4 mu^2 v1 + 2 v1^2 + v2, Cov = 2 mu v1), each within 4.5 SE (SE
    from the sample's own fourth moments). Power: a sampler that forgets x2's noise (v2 = 0) or draws x1 with
    variance 1 / a instead of 1 / (2a) is rejected by the same test."""
    n = 400_000
    source = make_source(RosenbrockData(mu=mu, a=a, b=b))
    x = np.asarray(source.sample(jax.random.key(21), n), np.float64)
    v1, v2 = 1 / (2 * a), 1 / (2 * b)
    mean, cov = rosenbrock_moments(mu, a, b)
    np.testing.assert_allclose(np.asarray(source.mean), mean, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(source.cov), cov, rtol=1e-6)

    def stats(x):
        """The statistics [n, k] whose means are tested: x1, x2, x1^2, centred products (as against closed forms)."""
        return np.stack([x[:, 0], x[:, 1], x[:, 0] ** 2, (x[:, 0] - mu) ** 2, (x[:, 0] - mu) * (x[:, 1] - mean[1])])

    law = np.array([mu, mean[1], mu**2 + v1, v1, cov[0, 1]])
    s = stats(x)
    se = s.std(axis=1, ddof=1) / np.sqrt(n)
    assert np.all(np.abs(s.mean(axis=1) - law) < 4.5 * se), (s.mean(axis=1), law, se)
    var_x2 = np.var(x[:, 1], ddof=1)
    se_var = np.sqrt((np.mean((x[:, 1] - x[:, 1].mean()) ** 4) - var_x2**2) / n)
    assert abs(var_x2 - cov[1, 1]) < 4.5 * se_var, (var_x2, cov[1, 1], se_var)

    e = np.asarray(jax.random.normal(jax.random.key(22), (n, 2)), np.float64)
    no_noise = np.stack([mu + np.sqrt(v1) * e[:, 0], (mu + np.sqrt(v1) * e[:, 0]) ** 2], axis=1)
    assert abs(np.var(no_noise[:, 1], ddof=1) - cov[1, 1]) > 4.5 * se_var
    wide = np.stack([mu + np.sqrt(2 * v1) * e[:, 0], (mu + np.sqrt(2 * v1) * e[:, 0]) ** 2 + np.sqrt(v2) * e[:, 1]], 1)
    assert np.any(np.abs(stats(wide).mean(axis=1) - law) > 4.5 * se)


def test_rosenbrock_log_density_is_normalised_and_the_tail_metric_applies():
    """The truth's log_prob integrates to 1 on a grid (midpoint rule) and equals the two Gaussian conditionals'
    log-densities; tail_mass and nll apply to a flow on it (the truth's density is known)."""
    import scipy.stats

    source = make_source(RosenbrockData(mu=0.5, a=0.5, b=2.0))
    x = np.asarray(source.sample(jax.random.key(3), 1000), np.float64)
    want = scipy.stats.norm.logpdf(x[:, 0], 0.5, 1.0) + scipy.stats.norm.logpdf(x[:, 1], x[:, 0] ** 2, 0.5)
    np.testing.assert_allclose(source.log_prob(jnp.asarray(x, jnp.float32)), want, rtol=1e-5, atol=1e-4)
    t1 = np.linspace(-6.5, 7.5, 701)
    t2 = np.linspace(-3.0, 60.0, 2101)
    grid = np.stack(np.meshgrid(t1, t2, indexing="ij"), axis=-1).reshape(-1, 2)
    total = np.sum(np.exp(np.asarray(source.log_prob(jnp.asarray(grid, jnp.float32)), np.float64)))
    assert abs(total * (t1[1] - t1[0]) * (t2[1] - t2[0]) - 1.0) < 2e-3

    from madloop.parts import parts_of

    names = parts_of(madloop.compose(["data=rosenbrock", "model=flow"])).metrics
    assert {"tail_mass", "nll", "sw2", "precision", "recall"} <= set(names), names
