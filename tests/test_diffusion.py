"""Diffusion family: samplers against the exact score of a Gaussian, training, warm start and sampling bias."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import assert_standard_normal, whitened

from madloop.models import diffusion as D
from madloop.models.diffusion import DiffusionModel

KEY = jax.random.key(0)
MEAN = jnp.array([1.0, -0.5])
COV = jnp.array([[0.5, 0.2], [0.2, 0.3]])


def exact_denoiser(mean, cov, alpha_bar):
    """The exact noise prediction of a Gaussian truth N(mean, cov) under the VP forward process:
    x_t ~ N(sqrt(abar) mean, abar cov + (1 - abar) I), score = -Sigma_t^-1 (x - sqrt(abar) mean),
    eps = -sqrt(1 - abar) score."""

    def denoise(x, t):
        abar = alpha_bar(t)
        cov_t = abar * cov + (1 - abar) * jnp.eye(cov.shape[0])
        eps = jnp.sqrt(1 - abar) * jnp.linalg.solve(cov_t, (x - jnp.sqrt(abar) * mean).T).T
        return D.from_eps(x, abar, eps)

    return denoise


@pytest.mark.parametrize("schedule", ["cosine", "linear"])
@pytest.mark.parametrize("sampler,steps", [("ddpm", 500), ("ddim", 200)])
def test_samplers_with_exact_score_reproduce_the_gaussian(schedule, sampler, steps):
    alpha_bar = D.SCHEDULES[schedule]
    n = 20_000
    draw = jax.jit(
        functools.partial(
            D.sample_with,
            exact_denoiser(MEAN, COV, alpha_bar),
            n=n,
            dim=2,
            alpha_bar=alpha_bar,
            steps=steps,
            update=D.SAMPLERS[sampler],
        )
    )
    # KS per whitened coordinate at the 0.1% level, with its power check (conftest.assert_standard_normal)
    assert_standard_normal(whitened(draw(jax.random.key(1), lam=jnp.float32(1.0)), MEAN, COV))


def test_ddim_error_shrinks_with_steps():
    # In 1-D the probability-flow ODE of a Gaussian truth N(m, s^2) maps x1 to the standardised value
    # m + s (x1 - sqrt(abar_1) m) / sqrt(abar_1 s^2 + 1 - abar_1); DDIM should approach that map as steps grow.
    m, s = jnp.array([0.7]), jnp.array([[0.16]])
    alpha_bar = D.cosine_alpha_bar
    x1 = jnp.linspace(-3.0, 3.0, 61)[:, None]
    a1 = alpha_bar(jnp.float32(1.0))
    exact = m + 0.4 * (x1 - jnp.sqrt(a1) * m) / jnp.sqrt(a1 * 0.16 + 1 - a1)
    errors = []
    for steps in (4, 8, 16, 32, 64, 128):
        out = D.reverse_process(
            exact_denoiser(m, s, alpha_bar),
            KEY,
            x1,
            alpha_bar=alpha_bar,
            steps=steps,
            update=D.ddim_update,
            lam=jnp.float32(1.0),
        )
        errors.append(float(jnp.max(jnp.abs(out - exact))))
    # DDIM is a first-order method: each doubling of the steps halves the error (measured ratios 1.85 to 1.97).
    ratios = [a / b for a, b in zip(errors, errors[1:], strict=False)]
    assert all(1.7 < r < 2.3 for r in ratios), (errors, ratios)
    assert errors[-1] < errors[0] / 20, errors


def test_temperature_scales_the_ddim_spread():
    # DDIM with the exact score is a monotone map of x1; lam < 1 shrinks x1 and hence the samples' spread.
    alpha_bar = D.cosine_alpha_bar
    draw = functools.partial(
        D.sample_with,
        exact_denoiser(MEAN, COV, alpha_bar),
        jax.random.key(2),
        5000,
        2,
        alpha_bar=alpha_bar,
        steps=100,
        update=D.ddim_update,
    )
    spread = [float(jnp.trace(jnp.cov(draw(lam=jnp.float32(lam)).T))) for lam in (0.5, 1.0)]
    assert spread[0] < 0.7 * spread[1], spread
    # for a Gaussian truth the flow is affine, so the covariance scales with lam (~ lam * tr cov = 0.4)
    np.testing.assert_allclose(spread[0], 0.5 * float(jnp.trace(COV)), rtol=0.06)


def test_prediction_conversions_are_inverse():
    x, x0 = jax.random.normal(KEY, (5, 2)), jax.random.normal(jax.random.key(1), (5, 2))
    abar = jnp.float32(0.3)
    eps = (x - jnp.sqrt(abar) * x0) / jnp.sqrt(1 - abar)
    a, b = D.from_eps(x, abar, eps), D.from_x0(x, abar, x0)
    np.testing.assert_allclose(a.x0, x0, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(b.eps, eps, rtol=1e-5, atol=1e-5)


def test_guided_prediction_with_zero_omega_is_the_base_bit_for_bit():
    base = D.Prediction(jax.random.normal(KEY, (7, 2)), jax.random.normal(jax.random.key(1), (7, 2)))
    aux = D.Prediction(jax.random.normal(jax.random.key(2), (7, 2)), jax.random.normal(jax.random.key(3), (7, 2)))
    out = D.guided(base, aux, jnp.float32(0.0))
    assert np.array_equal(out.eps, base.eps) and np.array_equal(out.x0, base.x0)
    # omega = 1: 2 base - aux (the score extrapolates away from the auxiliary model)
    np.testing.assert_allclose(D.guided(base, aux, jnp.float32(1.0)).eps, 2 * base.eps - aux.eps, rtol=1e-6)


TINY_NET = dict(width=32, depth=2, time_features=8, batch=64, sample_steps=20, lr=3e-3)


def knobs(cfg: DiffusionModel, lam: jax.Array | float = 1.0) -> dict[str, jax.Array]:
    """The traced knobs a diffusion fit and sample read: the sampling bias, and the config's learning rate and
    EMA decay (the values a run of this config would trace)."""
    return {"lam": jnp.float32(lam), "lr": jnp.float32(cfg.lr), "ema": jnp.float32(cfg.ema)}


@pytest.mark.parametrize("prediction", ["eps", "x0"])
def test_training_fits_a_gaussian(prediction):
    # A small denoiser trained on N(MEAN, COV) must reproduce its mean and covariance (DDPM, 100 steps; DDIM at
    # 50 steps under-disperses by ~10% from discretisation alone, see test_ddim_error_shrinks_with_steps).
    net = {**TINY_NET, "width": 64, "depth": 3, "sample_steps": 100}
    cfg = DiffusionModel(**net, sampler="ddpm", train_steps=2000, prediction=prediction)
    model = D.diffusion_family(cfg).model
    x = MEAN + jax.random.normal(KEY, (2000, 2)) @ jnp.linalg.cholesky(COV).T
    w = jnp.ones((2000,))

    @jax.jit
    def run(key):
        params = model.fit(key, model.init(key, x, w), x, w, False, knobs(cfg))
        return model.sample(jax.random.key(9), params, 4000, knobs(cfg))

    y = run(jax.random.key(3))
    # Sampling SE of the mean and covariance entries ~0.01; the rest is the fit's error (measured over training
    # keys 3, 4, 5: at most 0.045 on the mean and 0.027 on the covariance).
    np.testing.assert_allclose(jnp.mean(y, 0), MEAN, atol=0.08)
    np.testing.assert_allclose(jnp.cov(y.T), COV, atol=0.06)


def test_training_loss_falls_and_weights_select_the_minibatches():
    # Weight 0 on half of the data: the model must learn only the other half (a point mass at +2 in 1-D).
    cfg = DiffusionModel(**TINY_NET, train_steps=600)
    fam = D.diffusion_family(cfg)
    x = jnp.concatenate([jnp.full((50, 1), 2.0), jnp.full((50, 1), -2.0)])
    w = jnp.concatenate([jnp.ones(50), jnp.zeros(50)])

    @jax.jit
    def run(key):
        params, losses = fam.train(key, fam.model.init(key, x, w), x, w, cfg.train_steps)
        return losses, fam.model.sample(jax.random.key(4), params, 500, knobs(cfg))

    losses, y = run(KEY)
    assert float(jnp.mean(losses[-100:])) < 0.5 * float(jnp.mean(losses[:20]))
    assert float(jnp.mean(y > 0)) > 0.97, float(jnp.mean(y > 0))


def test_warm_start_uses_the_finetune_budget_and_starts_from_the_previous_weights():
    cfg = DiffusionModel(**TINY_NET, train_steps=7, finetune_steps=3)
    fam = D.diffusion_family(cfg)
    x, w = jax.random.normal(KEY, (32, 2)), jnp.ones((32,))
    p0 = fam.model.init(KEY, x, w)
    p1 = fam.model.fit(KEY, p0, x, w, False, knobs(cfg))
    manual, _ = fam.train(KEY, p1, x, w, 3)
    warm = fam.model.fit(KEY, p1, x, w, True, knobs(cfg))
    assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)), warm.net, manual.net))
    cold = fam.model.fit(KEY, p0, x, w, False, knobs(cfg))
    assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)), cold.net, p1.net))
    assert not jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)), warm.net, cold.net))


def two_classes(n: int, means=(-2.0, 2.0), share1=0.75, std=0.3):
    """1-D data [n, 2]: x and its class label in a last column (class 1 with probability share1)."""
    y = (jax.random.uniform(jax.random.key(11), (n,)) < share1).astype(jnp.float32)
    x = jnp.where(y == 1, means[1], means[0]) + std * jax.random.normal(jax.random.key(12), (n,))
    return jnp.stack([x, y], axis=1)


def test_conditional_model_learns_each_class_and_the_label_frequencies():
    cfg = DiffusionModel(**TINY_NET, train_steps=1500, classes=2)
    model = D.diffusion_family(cfg).model
    data = two_classes(1000)
    w = jnp.ones((1000,))

    @jax.jit
    def run(key):
        params = model.fit(key, model.init(key, data, w), data, w, False, knobs(cfg))
        return params.label_freq, model.sample(jax.random.key(5), params, 4000, knobs(cfg))

    freq, out = run(KEY)
    np.testing.assert_allclose(freq, [float(jnp.mean(data[:, 1] == 0)), float(jnp.mean(data[:, 1] == 1))], rtol=1e-5)
    assert out.shape == (4000, 2) and set(np.unique(out[:, 1])) == {0.0, 1.0}
    # generated labels follow the training frequencies (0.75 +- 4 SE of a proportion at n = 4000: 0.027)
    assert abs(float(jnp.mean(out[:, 1])) - float(freq[1])) < 0.027
    # each class's samples sit on its own mode (means -2 and 2, sd 0.3)
    for label, mean in ((0, -2.0), (1, 2.0)):
        x = out[out[:, 1] == label, 0]
        assert abs(float(jnp.mean(x)) - mean) < 0.1 and 0.2 < float(jnp.std(x)) < 0.45, (label, x.mean(), x.std())


def test_classifier_free_guidance_tilts_each_class_away_from_the_other():
    # Overlapping classes N(-0.5, 1) and N(0.5, 1): CFG with w = 1 / lam - 1 > 0 samples roughly from
    # p(x | y) p(y | x)^w, which pushes class 1 to the right and class 0 to the left (p(y = 1 | x) rises with x).
    cfg = DiffusionModel(**TINY_NET, train_steps=1500, classes=2, bias="cfg", label_dropout=0.2)
    model = D.diffusion_family(cfg).model
    data = two_classes(2000, means=(-0.5, 0.5), share1=0.5, std=1.0)
    w = jnp.ones((2000,))

    @jax.jit
    def run(key, lam):
        params = model.fit(key, model.init(key, data, w), data, w, False, knobs(cfg))
        return model.sample(jax.random.key(5), params, 4000, knobs(cfg, lam))

    plain, guided = run(KEY, jnp.float32(1.0)), run(KEY, jnp.float32(0.5))
    gap = [float(jnp.mean(o[o[:, 1] == 1, 0]) - jnp.mean(o[o[:, 1] == 0, 0])) for o in (plain, guided)]
    # unguided: the class means differ by ~1 (measured 1.31: the small model over-separates a little);
    # guided (w = 1): much wider (measured 2.37)
    assert 0.7 < gap[0] < 1.45 and gap[1] > gap[0] + 0.5, gap


def test_conv3x3_is_a_same_convolution():
    """The slice-and-dot convolution equals lax.conv_general_dilated with the same 3 x 3 kernel ('SAME')."""
    from madloop.models.networks import Conv3x3

    x = jax.random.normal(jax.random.key(0), (6, 5, 3))
    conv = Conv3x3(4)
    params = conv.init(jax.random.key(1), x)["params"]
    params = {"kernel": jax.random.normal(jax.random.key(2), (27, 4)), "bias": jnp.arange(4.0)}
    got = conv.apply({"params": params}, x)
    kernel = params["kernel"].reshape(3, 3, 3, 4)  # rows ordered (dy, dx, c_in), as the patches are
    want = jax.lax.conv_general_dilated(x[None], kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    np.testing.assert_allclose(got, want[0] + params["bias"], rtol=1e-5, atol=1e-5)


def test_unet_maps_image_rows_to_image_rows_and_reads_time_and_label():
    """The U-Net at 8 x 8 (one pooling): rows in, rows out; its output depends on t and on the class label, and
    starts at zero (the output convolution is zero-initialised). At 28 x 28 (28 -> 14 -> 7) the shapes trace."""
    from madloop.models.networks import UNetDenoiser

    big = UNetDenoiser(shape=(28, 28, 1), channels=(4, 8, 8), blocks=1, time_features=4, classes=10)
    row = jax.ShapeDtypeStruct((784,), jnp.float32)
    init = jax.eval_shape(big.init, jax.random.key(0), row, jnp.float32(0.5), jnp.int32(3))
    assert jax.eval_shape(big.apply, init, row, jnp.float32(0.5), jnp.int32(3)).shape == (784,)
    shape, channels = (8, 8, 1), (4, 8)
    d = int(np.prod(shape))
    net = UNetDenoiser(shape=shape, channels=channels, blocks=1, time_features=4, classes=10)
    x = jax.random.normal(jax.random.key(0), (d,))
    params = jax.jit(net.init)(jax.random.key(1), x, jnp.float32(0.5), jnp.int32(3))["params"]
    # one compiled program for the four evaluations (eager Flax dispatches hundreds of small ops one by one)
    ts, ys = jnp.array([0.5, 0.5, 0.9, 0.5]), jnp.array([3, 3, 3, 10])  # the last: the null label
    scale = jnp.array([0.0, 1.0, 1.0, 1.0])  # the first: the initial weights

    @jax.jit
    def outs(params):
        def one(t, y, s):
            p = jax.tree.map(lambda a, i: a + s * 0.5 * jax.random.normal(jax.random.key(i), a.shape), params, idx)
            return net.apply({"params": p}, x, t, y)

        return jax.vmap(one)(ts, ys, scale)

    idx = jax.tree.unflatten(jax.tree.structure(params), list(range(len(jax.tree.leaves(params)))))
    out = outs(params)
    assert out.shape == (4, d) and np.all(np.isfinite(out))
    assert not np.any(out[0])
    assert np.max(np.abs(out[1] - out[2])) > 1e-3 and np.max(np.abs(out[1] - out[3])) > 1e-3
