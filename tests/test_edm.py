"""EDM family: Heun's sampler against the exact denoiser of a Gaussian, Table 1's preconditioning, the rho
schedule, the temperature, SIMS guidance, training, image rows and the config checks."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import assert_standard_normal, in_default_xla, whitened

from madloop import config as C
from madloop.models import edm as E
from madloop.models.edm import EDMModel
from madloop.precision import precision

KEY = jax.random.key(0)
MEAN = jnp.array([1.0, -0.5])
COV = jnp.array([[0.5, 0.2], [0.2, 0.3]])


def exact_denoiser(mean, cov):
    """D(x; sigma) = E[y | y + sigma n = x] = m + S (S + sigma^2 I)^-1 (x - m) for a truth y ~ N(m, S)."""

    def denoise(x, sigma):
        a = cov @ jnp.linalg.inv(cov + sigma**2 * jnp.eye(cov.shape[0]))
        return mean + (x - mean) @ a.T

    return denoise


def exact_draw(n, steps, lam=1.0, churn=None):
    """n draws of Heun's sampler (Algorithm 1, or 2 with ``churn``) with the exact denoiser of N(MEAN, COV)."""
    key = jax.random.key(1)
    sigmas = E.rho_schedule(steps, 0.002, 80.0, 7.0)
    x_init = E.initial_noise(key, n, 2, sigmas[0], lam)
    return E.heun_sampler(exact_denoiser(MEAN, COV), key, x_init, sigmas, lam=lam, churn=churn)


@pytest.mark.parametrize("churn", [None, E.Churn(10.0)], ids=["deterministic", "churn"])
def test_heun_with_the_exact_denoiser_reproduces_the_gaussian(churn):
    n = 20_000
    z = whitened(jax.jit(lambda: exact_draw(n, 64, churn=churn))(), MEAN, COV)
    # KS per whitened coordinate at the 0.1% level, with its power check (conftest.assert_standard_normal).
    # (x_N ~ N(0, sigma_max^2 I) rather than N(m, S + sigma_max^2 I) leaves a mean bias of m s / sigma_max,
    # 0.012 sd here, and 64 levels a variance bias of 1%: both below what the test resolves.)
    assert_standard_normal(z)


def test_heun_error_shrinks_at_second_order():
    # In 1-D the probability-flow ODE dx/dsigma = (x - D) / sigma of a truth N(m, s^2) has D = m + s^2 (x - m) /
    # (s^2 + sigma^2), so (x - m) / sqrt(s^2 + sigma^2) is constant along a path: x_N at sigma_max maps to
    # x(sigma_min) = m + (x_N - m) sqrt(s^2 + sigma_min^2) / sqrt(s^2 + sigma_max^2), and the last (Euler) step
    # returns D(x(sigma_min); sigma_min). Float64, so that the order shows down to errors of 1e-3 of x_N's 1e-0.
    m, s, s_min, s_max = 0.7, 0.4, 0.002, 80.0
    with precision("float64"):
        x_init = jnp.linspace(-3.0, 3.0, 61)[:, None] * s_max
        at_min = m + (x_init - m) * math.sqrt(s**2 + s_min**2) / math.sqrt(s**2 + s_max**2)
        reference = m + s**2 / (s**2 + s_min**2) * (at_min - m)
        flow_map = m + s * (x_init - m) / math.sqrt(s**2 + s_max**2)  # the ODE's own map from sigma_max to 0
        denoise = exact_denoiser(jnp.array([m]), jnp.array([[s**2]]))
        errors = []
        for heun_steps in (8, 16, 32, 64, 128):
            sigmas = E.rho_schedule(heun_steps + 1, s_min, s_max, 7.0)
            out = E.heun_sampler(denoise, KEY, x_init, sigmas)
            errors.append(float(jnp.max(jnp.abs(out - reference))))
        gap = float(jnp.max(jnp.abs(reference - flow_map)))
    # Each doubling of the Heun steps divides the error by ~4 (measured 4.49, 4.29, 4.14, 4.07); a first-order
    # method (Euler: ratios ~2) fails this.
    ratios = [a / b for a, b in zip(errors, errors[1:], strict=False)]
    assert all(3.8 < r < 4.8 for r in ratios), (errors, ratios)
    # The Euler step from sigma_min to 0 differs from the exact map by a relative sigma_min^2 / (2 s^2) = 1.3e-5
    # of (x - m) ~ 1.2 (measured 1.5e-5): below the errors above.
    assert gap < 3e-5 and gap < errors[-1] / 50, (gap, errors)


def test_preconditioning_scalings_hand_checked():
    # EDM column at sigma = sigma_data = 0.5: sigma^2 + sd^2 = 0.5, so c_skip = 0.25 / 0.5 = 0.5,
    # c_out = 0.25 / sqrt(0.5) = 0.35355, c_in = 1 / sqrt(0.5) = 1.41421, c_noise = ln(0.5) / 4 = -0.17329,
    # lambda = 0.5 / 0.25^2 = 8 (and lambda c_out^2 = 8 * 0.125 = 1).
    edm = E.edm_preconditioning(0.5)
    np.testing.assert_allclose(edm.scalings(jnp.float32(0.5)), [0.5, 0.353553, 1.414214, -0.173287], rtol=1e-5)
    assert float(edm.weight(jnp.float32(0.5))) == pytest.approx(8.0)
    # VP column at sigma = 1: t = (sqrt(0.1^2 + 2 * 19.9 * ln 2) - 0.1) / 19.9 = 0.258961, c_noise = 999 t = 258.70,
    # c_skip = 1, c_out = -1, c_in = 1 / sqrt(2), lambda = 1.
    vp = E.vp_preconditioning()
    np.testing.assert_allclose(vp.scalings(jnp.float32(1.0)), [1.0, -1.0, 0.707107, 258.702], rtol=1e-5)
    assert float(vp.weight(jnp.float32(1.0))) == 1.0
    sigma = jnp.array([1e-3, 0.1, 1.0, 80.0, 152.0])
    np.testing.assert_allclose(E.vp_sigma(E.vp_time(sigma)), sigma, rtol=1e-4)  # sigma(t) and t(sigma) invert


@pytest.mark.parametrize("precond", ["edm", "vp"])
def test_a_zero_network_leaves_c_skip_x(precond):
    pre = E.PRECONDITIONINGS[precond](EDMModel(precond=precond))
    x = jax.random.normal(KEY, (6, 3))
    sigma = jnp.array([0.002, 0.1, 0.5, 1.0, 10.0, 80.0])
    got = E.precondition(lambda x_in, c: jnp.zeros_like(x_in), pre, x, sigma)
    np.testing.assert_array_equal(got, pre.scalings(sigma)[0][:, None] * x)  # exactly c_skip x (VP: x itself)


def test_the_loss_of_a_perfect_network_is_zero_and_of_a_zero_network_is_eq_2():
    # One row y = 0.3 at sigma = 0.5 with noise n = 1: x = 0.8. EDM column (sd = 0.5): c_skip = 0.5, so a zero F
    # gives D = 0.4, and lambda |D - y|^2 = 8 * 0.1^2 = 0.08. The perfect F, (y - c_skip x) / c_out, gives D = y.
    pre = E.edm_preconditioning(0.5)
    y, sigma, noise = jnp.array([[0.3]]), jnp.array([0.5]), jnp.array([[1.0]])
    assert float(E.denoising_loss(lambda x_in, c: jnp.zeros_like(x_in), pre, y, sigma, noise)) == pytest.approx(0.08)

    def perfect(x_in, c_noise):  # F that makes D(x; sigma) = y, read back from the scaled input
        sig = jnp.exp(4 * c_noise)[:, None]
        c_skip, c_out, c_in, _ = pre.scalings(sig)
        return (y - c_skip * x_in / c_in) / c_out

    assert float(E.denoising_loss(perfect, pre, y, sigma, noise)) < 1e-12
    # A batch: the eq.-8 form equals eq. 2's lambda |D - y|^2 written plainly (numpy, float64).
    k1, k2, k3 = jax.random.split(KEY, 3)
    y, noise = jax.random.normal(k1, (64, 3)), jax.random.normal(k2, (64, 3))
    sigma = jnp.exp(-1.2 + 1.2 * jax.random.normal(k3, (64,)))

    def raw(x_in, c):
        return jnp.sin(x_in + c[:, None])

    got = E.denoising_loss(raw, pre, y, sigma, noise)
    s, yy, nn = (np.asarray(a, np.float64) for a in (sigma, y, noise))
    x = yy + s[:, None] * nn
    v = s**2 + 0.25
    d = 0.25 / v[:, None] * x + (0.5 * s / np.sqrt(v))[:, None] * np.sin(
        x / np.sqrt(v)[:, None] + np.log(s)[:, None] / 4
    )
    want = np.mean((v / (0.5 * s) ** 2)[:, None] * (d - yy) ** 2)
    assert float(got) == pytest.approx(want, rel=2e-4)
    # VP column: lambda |D - y|^2 = |F - n|^2 (noise prediction).
    vp_loss = E.denoising_loss(lambda x_in, c: jnp.full_like(x_in, 0.3), E.vp_preconditioning(), y, sigma, noise)
    assert float(vp_loss) == pytest.approx(float(jnp.mean((0.3 - noise) ** 2)), rel=1e-5)


def test_rho_schedule_endpoints_monotonicity_and_spacing():
    s = np.asarray(E.rho_schedule(18, 0.002, 80.0, 7.0))
    assert s.shape == (19,) and s[-1] == 0.0
    np.testing.assert_allclose([s[0], s[-2]], [80.0, 0.002], rtol=1e-5)
    assert np.all(np.diff(s) < 0)
    # Eq. 5 written plainly (float64), and rho = 1 is an even grid.
    i = np.arange(18)
    want = (80 ** (1 / 7) + i / 17 * (0.002 ** (1 / 7) - 80 ** (1 / 7))) ** 7
    np.testing.assert_allclose(s[:-1], want, rtol=1e-5)
    np.testing.assert_allclose(E.rho_schedule(5, 1.0, 5.0, 1.0), [5, 4, 3, 2, 1, 0], rtol=1e-6)
    # rho = 7 spends more levels at small sigma: 7 of the 18 lie below 1, where an even grid puts 1.
    assert np.sum(s[:-1] < 1.0) == 7 and np.sum(np.linspace(80.0, 0.002, 18) < 1.0) == 1


def test_temperature_scales_the_initial_and_the_churn_noise():
    # With an affine denoiser (a Gaussian truth) every step is affine in x and in the noise, so the sample drawn
    # with temperature lam is out_0 + sqrt(lam) (out_1 - out_0), out_0 the sample at lam = 0, out_1 at lam = 1 (same
    # key): exactly when lam scales the variance of x_N ~ N(0, lam sigma_max^2 I) and of every churn noise.
    x = E.initial_noise(KEY, 20_000, 2, 80.0, 0.25)
    np.testing.assert_allclose(np.var(np.asarray(x), axis=0), 0.25 * 80.0**2, rtol=0.04)  # 4 SE at n = 20000
    for churn in (None, E.Churn(10.0)):
        draw = jax.jit(jax.vmap(lambda lam, churn=churn: exact_draw(500, 16, lam=lam, churn=churn)))
        out0, out_half, out1 = draw(jnp.array([0.0, 0.5, 1.0]))
        np.testing.assert_allclose(out_half, out0 + np.sqrt(0.5) * (out1 - out0), rtol=1e-4, atol=1e-4)
        spread = [float(jnp.trace(jnp.cov(o.T))) for o in (out_half, out1)]
        np.testing.assert_allclose(spread[0] / spread[1], 0.5, rtol=1e-3)


TINY_NET = dict(width=32, depth=2, time_features=8, batch=64, sample_steps=8, lr=3e-3)


def knobs(cfg: EDMModel, lam: float = 1.0, omega: float = 0.0) -> dict[str, jax.Array]:
    """The traced knobs an EDM fit and sample read (a run of this config traces the same values)."""
    return {
        "lam": jnp.float32(lam),
        "lr": jnp.float32(cfg.lr),
        "ema": jnp.float32(cfg.ema),
        "omega": jnp.float32(omega),
    }


@in_default_xla
def test_omega_zero_guided_sampling_is_the_base_and_cfg_at_lam_one_is_plain_conditional_sampling():
    """(1 + 0) D_base - 0 D_aux is D_base bit for bit (with a different auxiliary network); omega = 1 differs. A
    conditional model with bias=cfg at lam = 1 (w = 0) samples as bias=temperature does (to rounding), labels
    included."""
    cfg = EDMModel(**TINY_NET, classes=2, bias="cfg")
    cond = E.edm_family(cfg).model
    plain = E.edm_family(EDMModel(**TINY_NET, classes=2)).model
    x = jnp.concatenate([jax.random.normal(KEY, (32, 2)), (jnp.arange(32) % 2)[:, None].astype(jnp.float32)], axis=1)
    w = jnp.ones((32,))
    base, aux = cond.init(KEY, x, w), cond.init(jax.random.key(1), x, w)  # two different networks

    @jax.jit
    def run(omega0, omega1):
        k = jax.random.key(2)
        return (
            cond.sample(k, base, 64, knobs(cfg)),
            cond.guidance.guided_sample(k, base, aux, 64, {**knobs(cfg), "omega": omega0}),
            cond.guidance.guided_sample(k, base, aux, 64, {**knobs(cfg), "omega": omega1}),
            plain.sample(k, base, 64, knobs(cfg)),
        )

    out, omega0, omega1, temperature = run(jnp.float32(0.0), jnp.float32(1.0))
    assert out.shape == (64, 3) and np.isfinite(out).all()
    np.testing.assert_array_equal(omega0, out)
    # (1 + 0) D_cond - 0 D_uncond against D_cond: equal to rounding, not bit for bit (XLA's default compilation
    # moved 31 of 192 values in the 7th digit; the temperature sampler is a different expression)
    np.testing.assert_allclose(temperature, out, rtol=0, atol=1e-6)
    assert not np.allclose(omega1[:, :2], out[:, :2])
    np.testing.assert_array_equal(omega1[:, 2], out[:, 2])  # the same labels


@pytest.mark.slow
@pytest.mark.parametrize("precond", ["edm", "vp"])
def test_training_fits_a_gaussian(precond):
    # A small network trained on N(MEAN, COV) reproduces its mean and covariance; the untrained one does not.
    cfg = EDMModel(**{**TINY_NET, "width": 64, "depth": 3, "sample_steps": 32}, train_steps=2000, precond=precond)
    model = E.edm_family(cfg).model
    x = MEAN + jax.random.normal(KEY, (2000, 2)) @ jnp.linalg.cholesky(COV).T
    w = jnp.ones((2000,))

    @jax.jit
    def run(key):
        params = model.init(key, x, w)
        fitted = model.fit(key, params, x, w, False, knobs(cfg))
        k = jax.random.key(9)
        return [model.sample(k, p, 4000, knobs(cfg, lam)) for p, lam in ((params, 1.0), (fitted, 1.0), (fitted, 0.5))]

    untrained, y, cold = run(jax.random.key(3))
    # Sampling SE of the mean and covariance entries ~0.01; the rest is the fit's (measured over training keys 3,
    # 4, 5 at precond=edm: at most 0.025 on the mean and 0.094 on the covariance, the variance too wide: the
    # log-normal sigma of Karras et al. rarely trains sigma > 2, where this truth's denoiser still shrinks; 32
    # sampler levels add 3%; precond=vp: at most 0.02 and 0.046).
    np.testing.assert_allclose(jnp.mean(y, 0), MEAN, atol=0.06)
    np.testing.assert_allclose(jnp.cov(y.T), COV, atol=0.12)
    # Power check: the untrained network's samples fail the same tolerances.
    bad = np.max(np.abs(jnp.mean(untrained, 0) - MEAN)) > 0.06 or np.max(np.abs(jnp.cov(untrained.T) - COV)) > 0.12
    assert bad, (jnp.mean(untrained, 0), jnp.cov(untrained.T))
    # lam = 0.5 halves the fitted covariance (the fitted flow is nearly affine); the mean stays.
    np.testing.assert_allclose(jnp.cov(cold.T), 0.5 * jnp.cov(y.T), atol=0.03)
    np.testing.assert_allclose(jnp.mean(cold, 0), jnp.mean(y, 0), atol=0.03)


def test_unet_family_traces_on_image_rows():
    """Digits-shaped rows (8 x 8 x 1): the U-Net family's init, fit and sample trace to rows of 64 values (shapes
    only: compiling the U-Net costs ~20 s of CPU; the slow tests below run it)."""
    cfg = EDMModel(network="unet", channels=[4, 8], time_features=4, batch=8, sample_steps=2, train_steps=2)
    model = E.edm_family(cfg, shape=(8, 8, 1)).model
    x, w = jax.ShapeDtypeStruct((24, 64), jnp.float32), jax.ShapeDtypeStruct((24,), jnp.float32)

    def run(key, x, w):
        params = model.fit(key, model.init(key, x, w), x, w, False, knobs(cfg))
        return model.sample(key, params, 16, knobs(cfg))

    assert jax.eval_shape(run, KEY, x, w).shape == (16, 64)


@pytest.mark.slow
def test_unet_samples_rows_in_the_pixel_range():
    """The U-Net's denoiser output is clipped to [-1, 1] for an image source (clip_x0 null); unclipped
    (clip_x0=false) the same network leaves that range."""
    cfg = EDMModel(network="unet", channels=[4, 8], time_features=4, sample_steps=2)
    fams = [E.edm_family(cfg, shape=(8, 8, 1)), E.edm_family(EDMModel(**{**cfg.__dict__, "clip_x0": False}), (8, 8, 1))]
    x, w = jnp.tanh(jax.random.normal(KEY, (24, 64))), jnp.ones((24,))
    params = fams[0].model.init(KEY, x, w)
    # the output convolution starts at zero: give the network some output (F = 0 would leave D = c_skip x)
    params = params._replace(ema=jax.tree.map(lambda a: a + 0.3, params.ema))
    clipped, free = jax.jit(lambda: [f.model.sample(jax.random.key(4), params, 16, knobs(cfg)) for f in fams])()
    assert clipped.shape == (16, 64) and np.isfinite(clipped).all()
    assert np.all(np.abs(clipped) <= 1.0) and np.max(np.abs(free)) > 1.0


@pytest.mark.slow
def test_unet_on_image_rows_trains():
    """The U-Net family trains (a cold fit, then a warm start) on digits-shaped rows and its loss falls."""
    cfg = EDMModel(network="unet", channels=[8, 16], time_features=8, batch=32, sample_steps=8, train_steps=150)
    cfg = EDMModel(**{**cfg.__dict__, "finetune_steps": 50, "lr": 3e-3})
    fam = E.edm_family(cfg, shape=(8, 8, 1))
    x = jnp.tanh(2 * jax.random.normal(KEY, (1, 64)) + 0.1 * jax.random.normal(jax.random.key(1), (256, 64)))
    w = jnp.ones((256,))

    @jax.jit
    def run():
        p0 = fam.model.init(KEY, x, w)
        p1, losses = fam.train(KEY, p0, x, w, cfg.train_steps, knobs(cfg))
        p2 = fam.model.fit(jax.random.key(1), p1, x, w, True, knobs(cfg))
        return losses, fam.model.sample(jax.random.key(4), p2, 64, knobs(cfg))

    losses, out = run()
    assert float(jnp.mean(losses[-30:])) < 0.5 * float(jnp.mean(losses[:10])), (losses[:10], losses[-30:])
    assert out.shape == (64, 64) and np.isfinite(out).all()
    # the rows are one image plus small noise: the samples sit near it (the untrained network, D = c_skip x,
    # samples N(0, 0.25 I): a mean absolute deviation of ~0.75 from this image)
    err = float(jnp.mean(jnp.abs(out - jnp.mean(x, 0))))
    assert err < 0.25, err  # measured 0.13


@pytest.mark.slow
def test_heun_matches_diffrax_heun_on_the_same_ode():
    """Diffrax's Heun (an explicit Runge-Kutta tableau, steps at the same sigmas) integrates the same probability
    -flow ODE to the same point, to float64 rounding; the last Euler step to 0 is D(x; sigma_min) on both."""
    diffrax = pytest.importorskip("diffrax")
    with precision("float64"):
        mean, cov = jnp.array(MEAN, jnp.float64), jnp.array(COV, jnp.float64)
        denoise = exact_denoiser(mean, cov)
        sigmas = E.rho_schedule(12, 0.002, 80.0, 7.0)
        x_init = E.initial_noise(KEY, 50, 2, 80.0, 1.0)
        ours = E.heun_sampler(denoise, KEY, x_init, sigmas)

        def field(sigma, x, args):
            return (x - denoise(x, sigma)) / sigma

        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(field),
            diffrax.Heun(),
            t0=sigmas[0],
            t1=sigmas[-2],
            dt0=None,
            y0=x_init,
            stepsize_controller=diffrax.StepTo(ts=sigmas[:-1]),
        )
        theirs = denoise(sol.ys[-1], sigmas[-2])
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "overrides,key",
    [
        ({"precond": "ve"}, "model.precond"),
        ({"sample_steps": 1}, "model.sample_steps"),
        ({"sigma_max": 0.001}, "model.sigma_max"),
        ({"sigma_data": 0.0}, "model.sigma_data"),
        ({"s_churn": -1.0}, "model.s_churn"),
        ({"s_tmin": 2.0, "s_tmax": 1.0}, "model.s_tmax"),
        ({"bias": "cfg"}, "model.bias"),
        ({"network": "unet", "channels": []}, "model.channels"),
        ({"time_features": 5}, "model.time_features"),
    ],
)
def test_check_names_the_field(overrides, key):
    with pytest.raises(C.ConfigError, match=key.replace(".", r"\.")):
        E.check(EDMModel(**overrides))


def test_the_registered_config_composes_and_builds():
    import madloop

    cfg = madloop.compose(["model=edm", "model.precond=vp", "model.s_churn=5"])
    assert isinstance(cfg.model, EDMModel) and cfg.model.precond == "vp" and cfg.model.s_tmax is None
    assert cfg.model == EDMModel(precond="vp", s_churn=5.0)  # the YAML's values are the dataclass defaults
