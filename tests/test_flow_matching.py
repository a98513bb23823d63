"""Flow matching family: the ODE samplers against the exact velocity of a Gaussian truth and against diffrax, the
minibatch OT coupling against scipy's assignment and ott-jax, sampling bias, SIMS at omega = 0 and a short fit.

The exact velocity (derived here, checked below against a regression of the path's target): with x0 ~ N(0, I)
independent of x1 ~ N(m, S), c = 1 - sigma_min and a(t) = 1 - c t, the path x_t = a x0 + t x1 is Gaussian,
N(t m, Sigma_t) with Sigma_t = a^2 I + t^2 S, and jointly Gaussian with the target u = x1 - c x0, whose mean is m
and whose covariance with x_t is t S - c a I. So the marginal velocity E[u | x_t = x] is affine in x:
    v(x, t) = m + (t S - c a I) Sigma_t^-1 (x - t m).
Its flow is x_t = t m + Sigma_t^(1/2) x0 (every matrix here commutes with S; d/dt Sigma_t = 2 (t S - c a I)), so
the flow map is x1 = m + (S + sigma_min^2 I)^(1/2) x0 and the ODE turns N(0, I) into N(m, S + sigma_min^2 I).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize
import scipy.stats

import madloop
from madloop.models import flow_matching as F
from madloop.models.flow_matching import FlowMatchingModel

KEY = jax.random.key(0)
# The Sinkhorn plan and the OT pairing compiled once per (epsilon, iters) (eager calls would retrace the scan).
sinkhorn_plan = jax.jit(F.sinkhorn_log_plan, static_argnames=("epsilon", "iters"))
ot_pairing = jax.jit(F.ot_pairing, static_argnames=("epsilon", "iters"))
MEAN = jnp.array([1.0, -0.5])
COV = jnp.array([[0.5, 0.2], [0.2, 0.3]])


def exact_velocity(mean, cov, sigma_min=0.0):
    """The marginal velocity v(x, t) of the path from N(0, I) to N(mean, cov) (the module docstring's formula)."""
    eye = jnp.eye(cov.shape[0])

    def velocity(x, t):
        c = 1.0 - sigma_min
        a = 1.0 - c * t
        gain = jnp.linalg.solve(a**2 * eye + t**2 * cov, t * cov - c * a * eye).T  # (t S - c a I) Sigma_t^-1
        return mean + (x - t * mean) @ gain.T

    return velocity


def sqrtm(cov):
    vals, vecs = np.linalg.eigh(np.asarray(cov, np.float64))
    return (vecs * np.sqrt(vals)) @ vecs.T


def whitened(x, mean, cov):
    chol = np.linalg.cholesky(np.asarray(cov, np.float64))
    return np.linalg.solve(chol, (np.asarray(x, np.float64) - np.asarray(mean)).T).T


@pytest.mark.parametrize("sigma_min", [0.0, 0.3])
def test_the_exact_velocity_is_the_regression_of_the_path_target(sigma_min):
    """E[u_t | x_t] of ``conditional_path`` on independent pairs, estimated by least squares on 200k pairs at
    several t, equals the closed form's affine map (gain and offset); the closed form that forgets sigma_min
    (c = 1) is rejected."""
    n = 100_000
    x0 = jax.random.normal(jax.random.key(1), (n, 2))
    x1 = MEAN + jax.random.normal(jax.random.key(2), (n, 2)) @ jnp.linalg.cholesky(COV).T
    v, wrong = exact_velocity(MEAN, COV, sigma_min), exact_velocity(MEAN, COV, 0.0)
    for t in (0.1, 0.5, 0.9):
        xt, ut = F.conditional_path(x0, x1, jnp.full((n,), t), sigma_min)
        design = np.concatenate([np.asarray(xt, np.float64), np.ones((n, 1))], axis=1)
        coef, *_ = np.linalg.lstsq(design, np.asarray(ut, np.float64), rcond=None)
        probe = jnp.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])  # the affine map from its values at 3 points
        fitted = np.concatenate([np.asarray(probe), np.ones((3, 1))], axis=1) @ coef
        # SE of a regression coefficient here is below 0.004 (residual sd < 1, sd(x_t) > 0.5, n = 100k)
        np.testing.assert_allclose(fitted, v(probe, t), atol=0.02)
        if sigma_min:
            assert np.max(np.abs(fitted - np.asarray(wrong(probe, t)))) > 0.05


@pytest.mark.parametrize("solver,steps,sigma_min", [("heun", 50, 0.0), ("heun", 50, 0.3), ("euler", 1000, 0.0)])
def test_ode_sampler_with_the_exact_velocity_reproduces_the_gaussian(solver, steps, sigma_min):
    n = 20_000
    draw = jax.jit(
        functools.partial(
            F.sample_with, exact_velocity(MEAN, COV, sigma_min), n=n, dim=2, steps=steps, step=F.SOLVERS[solver]
        )
    )
    target_cov = COV + sigma_min**2 * jnp.eye(2)
    z = whitened(draw(jax.random.key(1), lam=jnp.float32(1.0)), MEAN, target_cov)
    # Whitened coordinates are independent N(0, 1): KS at the 0.1% critical value 1.95 / sqrt(n) = 0.0138.
    crit = 1.95 / np.sqrt(n)
    for j in range(2):
        assert scipy.stats.kstest(z[:, j], "norm").statistic < crit, (j, scipy.stats.kstest(z[:, j], "norm"))
    # Power check: the same test rejects a 10% error in the standard deviation or a 0.05 sd shift of the mean,
    # and (sigma_min > 0) the samples against N(m, S), the target without the path's end width.
    assert scipy.stats.kstest(1.1 * z[:, 0], "norm").statistic > crit
    assert scipy.stats.kstest(z[:, 0] + 0.05, "norm").statistic > crit
    if sigma_min:
        zs = whitened(np.asarray(z) @ np.linalg.cholesky(np.asarray(target_cov)).T + np.asarray(MEAN), MEAN, COV)
        assert max(scipy.stats.kstest(zs[:, j], "norm").statistic for j in range(2)) > crit
    np.testing.assert_allclose(np.cov(z.T), np.eye(2), atol=0.04)  # 4 SE of a sample covariance at n = 20000


def test_heun_converges_at_order_two_and_euler_at_order_one():
    """Against the exact flow map x1 = m + (S + sigma_min^2 I)^(1/2) x0: each doubling of the steps divides the
    error by ~4 for Heun and ~2 for Euler."""
    sigma_min = 0.1
    v = exact_velocity(MEAN, COV, sigma_min)
    x0 = jax.random.normal(KEY, (64, 2)) * 2.0
    exact = np.asarray(MEAN) + np.asarray(x0, np.float64) @ sqrtm(COV + sigma_min**2 * jnp.eye(2))
    for solver, order, grid in (("heun", 2, (8, 16, 32)), ("euler", 1, (16, 32, 64))):
        errors = [
            float(np.max(np.abs(np.asarray(F.integrate(v, x0, steps=s, step=F.SOLVERS[solver])) - exact))) for s in grid
        ]
        ratios = np.array([a / b for a, b in zip(errors, errors[1:], strict=False)])
        # (measured: Heun 3.6, 3.8, then 3.9 at 32 -> 64 steps, from 3.1 at 4 -> 8 steps; Euler 1.9 to 2.0)
        assert np.all(ratios > 0.8 * 2**order) and np.all(ratios < 1.25 * 2**order), (solver, errors, ratios)


def test_the_hand_written_solvers_agree_with_diffrax():
    """The lax.scan solvers equal diffrax's Heun and Euler with the same constant steps, on a nonlinear
    time-dependent velocity (a random one-layer tanh network), to float32 rounding (measured: equal bit for bit)."""
    diffrax = pytest.importorskip("diffrax")
    w1, w2 = jax.random.normal(jax.random.key(1), (2, 16)), jax.random.normal(jax.random.key(2), (16, 2)) / 4

    def v(x, t):
        return jnp.tanh(x @ w1 + 3.0 * t - 1.0) @ w2 + jnp.sin(2.0 * t)

    x0 = jax.random.normal(KEY, (32, 2))
    steps = 20
    term = diffrax.ODETerm(lambda t, y, args: v(y, t))

    @jax.jit
    def both(x):
        out = {}
        for name, method in (("heun", diffrax.Heun()), ("euler", diffrax.Euler())):
            mine = F.integrate(v, x, steps=steps, step=F.SOLVERS[name])
            sol = diffrax.diffeqsolve(term, method, 0.0, 1.0, 1.0 / steps, x, saveat=diffrax.SaveAt(t1=True))
            out[name] = mine, sol.ys[0]
        return out

    for name, (mine, theirs) in both(x0).items():
        assert float(jnp.max(jnp.abs(mine - x0))) > 0.5  # the flow moves the points
        np.testing.assert_allclose(mine, theirs, rtol=1e-5, atol=1e-5, err_msg=name)
    heun, euler = both(x0)["heun"][0], both(x0)["euler"][0]
    assert float(jnp.max(jnp.abs(heun - euler))) > 1e-3  # the two methods differ: the comparison has power


def lsa_partner(x0, x1):
    """For each data row j the noise index the optimal assignment pairs it with (scipy, float64), and the
    assignment's mean squared distance."""
    cost = np.sum((np.asarray(x0, np.float64)[:, None] - np.asarray(x1, np.float64)[None]) ** 2, axis=-1)
    rows, cols = scipy.optimize.linear_sum_assignment(cost)
    partner = np.empty(len(cols), int)
    partner[cols] = rows
    return partner, cost, cost[rows, cols].mean()


def test_ot_pairing_recovers_a_clear_optimal_assignment():
    """Data that are a shuffled, slightly moved copy of the noise: the assignment is that shuffle, and at a small
    epsilon (1e-3 of the mean cost) the pairs drawn from the Sinkhorn plan are exactly scipy's
    linear_sum_assignment pairing (at 1e-2, 0.36 here, two of the eight closest pairs are still mixed)."""
    n = 8
    x0 = 3.0 * jax.random.normal(jax.random.key(1), (n, 2))
    shuffle = np.asarray(jax.random.permutation(jax.random.key(2), n))
    x1 = x0[shuffle] + 0.1 * jax.random.normal(jax.random.key(3), (n, 2))
    partner, _, _ = lsa_partner(x0, x1)
    np.testing.assert_array_equal(partner, shuffle)
    for k in range(5):
        got = ot_pairing(jax.random.key(10 + k), x0, x1, None, epsilon=0.001, iters=200)
        np.testing.assert_array_equal(np.asarray(got), partner)


@pytest.mark.parametrize("n,d", [(8, 2), (128, 2), (128, 16)])
def test_sinkhorn_plan_is_within_epsilon_log_n_of_the_optimal_assignment(n, d):
    """The entropic plan's cost exceeds the assignment's by at most eps log n (its entropy lies between log n and
    2 log n; Peyre & Cuturi Prop. 4.1's argument), at eps = 0.01 and at the family's default 0.03 (x the mean
    cost) with its default 100 iterations; its columns sum to 1/n, its rows to 1/n within 5% and 1%. The drawn
    pairs have a mean squared distance well below independent pairing's and within the bound (plus sampling
    noise) of the assignment's. Power check: the plan's transpose (pairs read the wrong way round) is outside
    the bound."""
    iters = FlowMatchingModel().ot_iters
    # (rows: measured up to 3.8% off at eps = 0.01, 0.6% at the default: slower convergence at smaller eps)
    for eps, row_tol in ((0.01, 0.05), (FlowMatchingModel().ot_epsilon, 0.01)):
        gaps, drawn, allowed, indep, transposed = [], [], [], [], []
        for s in range(6):
            x0 = jax.random.normal(jax.random.key(100 + s), (n, d))
            stretch = jnp.linspace(0.3, 1.2, d)
            x1 = jnp.array([1.5] + [0.0] * (d - 1)) + jax.random.normal(jax.random.key(200 + s), (n, d)) * stretch
            partner, cost, best = lsa_partner(x0, x1)
            plan = np.exp(
                np.asarray(sinkhorn_plan(jnp.asarray(cost, jnp.float32), None, epsilon=eps, iters=iters), float)
            )
            np.testing.assert_allclose(plan.sum(axis=0), 1 / n, rtol=1e-4)
            np.testing.assert_allclose(plan.sum(axis=1), 1 / n, rtol=row_tol)
            bound = eps * cost.mean() * np.log(n)
            gaps.append((np.sum(plan * cost) - best) / bound)
            transposed.append((np.sum(plan.T * cost) - best) / bound)
            pick = np.asarray(ot_pairing(jax.random.key(300 + s), x0, x1, None, epsilon=eps, iters=iters))
            drawn.append(cost[pick, np.arange(n)].mean() / best)
            allowed.append(1 + bound / best)
            indep.append(np.trace(cost) / n / best)
        # (measured: gaps 0.05 to 0.3 of the bound; drawn pairs within 2-7% of the assignment's cost, independent
        # pairs 1.5 to 3 times it)
        assert max(gaps) <= 1.0 and min(gaps) >= -1e-3, (eps, gaps)
        assert np.mean(drawn) < np.mean(allowed) and np.mean(drawn) < 1.1 and np.mean(indep) > 1.3, (drawn, indep)
        assert min(transposed) > 1.0, (eps, transposed)


def small_batch():
    """16 noise rows and 16 data rows (a shifted, stretched Gaussian), and their squared-distance cost."""
    n = 16
    x0 = jax.random.normal(jax.random.key(1), (n, 2))
    x1 = 2.0 + jax.random.normal(jax.random.key(2), (n, 2)) * jnp.array([0.5, 1.0])
    return x0, x1, jnp.sum((x0[:, None] - x1[None]) ** 2, axis=-1)


@pytest.mark.slow  # ott-jax's solver compiles in ~7 s of CPU
def test_sinkhorn_plan_equals_ott_jax():
    """The converged plan at a fixed epsilon is the unique entropic OT plan: ott-jax's Sinkhorn gives the same
    matrix (measured: within 1.5e-6 after scaling by n)."""
    ott_sinkhorn = pytest.importorskip("ott.solvers.linear.sinkhorn")
    from ott.geometry import pointcloud
    from ott.problems.linear import linear_problem

    x0, x1, cost = small_batch()
    n, eps = x0.shape[0], 0.05
    mine = np.exp(np.asarray(sinkhorn_plan(cost, None, epsilon=eps, iters=400)))
    geom = pointcloud.PointCloud(x0, x1, epsilon=eps * float(jnp.mean(cost)))
    theirs = ott_sinkhorn.Sinkhorn(threshold=1e-6, max_iterations=20_000)(linear_problem.LinearProblem(geom)).matrix
    np.testing.assert_allclose(n * mine, n * np.asarray(theirs), atol=1e-4)
    # a spread plan (at eps = 0.05 some rows split their mass), so agreement is more than a shared permutation
    assert np.min(np.max(n * mine, axis=1)) < 0.9, np.max(n * mine, axis=1)


def test_ot_pairing_with_labels_pairs_within_each_class():
    """With labels, noise of label y pairs only with data of label y, and at small epsilon the drawn pairing is
    each class's own optimal assignment (scipy per class)."""
    x0, x1, _ = small_batch()
    n = x0.shape[0]
    # labels: three classes with 6, 5 and 5 members among the data; noise i carries data i's label
    labels = jnp.array([0] * 6 + [1] * 5 + [2] * 5)[np.asarray(jax.random.permutation(jax.random.key(5), n))]
    pick = np.asarray(ot_pairing(jax.random.key(6), x0, x1, labels, epsilon=0.001, iters=300))
    lab = np.asarray(labels)
    np.testing.assert_array_equal(lab[pick], lab)
    for c in range(3):
        members = np.flatnonzero(lab == c)
        partner, _, _ = lsa_partner(x0[members], x1[members])
        np.testing.assert_array_equal(pick[members], members[partner])


def test_sampling_bias_scales_the_initial_noise():
    """lam is the initial noise's variance: with a zero velocity the samples are sqrt(lam) z; with a Gaussian
    truth's exact velocity (an affine flow, and Heun's map of an affine field is affine) the samples are
    m + sqrt(lam) (x(lam = 1) - m), so their covariance is lam S."""
    draw = functools.partial(F.sample_with, key=jax.random.key(2), n=4000, dim=2, steps=20, step=F.heun_step)
    zero = functools.partial(draw, lambda x, t: jnp.zeros_like(x))
    np.testing.assert_allclose(zero(lam=jnp.float32(0.3)), np.sqrt(0.3) * zero(lam=jnp.float32(1.0)), rtol=1e-6)
    gaussian = functools.partial(draw, exact_velocity(MEAN, COV))
    one, half = gaussian(lam=jnp.float32(1.0)), gaussian(lam=jnp.float32(0.5))
    np.testing.assert_allclose(half - MEAN, np.sqrt(0.5) * (one - MEAN), atol=2e-5)
    np.testing.assert_allclose(np.cov(np.asarray(half).T), 0.5 * np.asarray(COV), atol=0.03)  # 4 SE at n = 4000


TINY_NET = dict(width=16, depth=1, time_features=4, batch=16, sample_steps=6)


def knobs(cfg: FlowMatchingModel, lam=1.0, omega=0.0) -> dict[str, jax.Array]:
    """The traced knobs a fit and a sample read (the values a run of this config would trace)."""
    return {k: jnp.float32(v) for k, v in {"lam": lam, "lr": cfg.lr, "ema": cfg.ema, "omega": omega}.items()}


def test_guided_sampling_at_omega_zero_is_the_base_sampler_and_warm_starts_use_the_finetune_budget():
    """A conditional model with classifier-free guidance (bias=cfg, lam = 0.7): SIMS guided sampling at omega = 0
    equals the base sampler bit for bit, at omega = 1 it differs. A warm-started fit is ``finetune_steps`` steps
    of training from the previous generation's parameters."""
    cfg = FlowMatchingModel(**TINY_NET, train_steps=5, finetune_steps=3, classes=2, bias="cfg")
    fam = F.flow_matching_family(cfg)
    model = fam.model
    x = jnp.concatenate([jax.random.normal(KEY, (32, 1)), (jnp.arange(32) % 2)[:, None]], axis=1)
    w = jnp.ones((32,))

    @jax.jit
    def run(lam, omega):
        base = model.fit(KEY, model.init(KEY, x, w), x, w, False, knobs(cfg))
        aux = model.guidance.finetune(jax.random.key(1), base, x[:8], w[:8], 3, knobs(cfg))
        k = knobs(cfg, lam, omega)
        plain = model.sample(jax.random.key(2), base, 64, k)
        guided = model.guidance.guided_sample(jax.random.key(2), base, aux, 64, k)
        return (
            plain,
            guided,
            (base, fam.train(KEY, base, x, w, 3, knobs(cfg))[0], model.fit(KEY, base, x, w, True, knobs(cfg))),
        )

    plain, guided, (base, manual, warm) = run(jnp.float32(0.7), jnp.float32(0.0))
    np.testing.assert_array_equal(np.asarray(plain), np.asarray(guided))
    plain, guided, _ = run(jnp.float32(0.7), jnp.float32(1.0))  # omega = 1 moves them
    assert np.max(np.abs(np.asarray(plain) - np.asarray(guided))) > 1e-3
    assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)), warm.net, manual.net))
    assert not jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)), warm.net, base.net))


# OT-CFM's fit is slow tier: its Sinkhorn (50 iterations of 128 x 128 logsumexps a step) runs 15x slower under
# the suite's XLA optimisation level 0 (measured 133 ms against 9 ms a pairing).
@pytest.mark.parametrize("coupling", ["independent", pytest.param("ot", marks=pytest.mark.slow)])
def test_a_short_fit_recovers_a_gaussian(coupling):
    """A small velocity network trained 800 steps on N(MEAN, COV) samples it within tolerance; the untrained
    network (the power check) does not."""
    cfg = FlowMatchingModel(
        width=64, depth=2, time_features=8, batch=128, sample_steps=16, train_steps=800, coupling=coupling, ot_iters=50
    )
    model = F.flow_matching_family(cfg).model
    x = MEAN + jax.random.normal(KEY, (2000, 2)) @ jnp.linalg.cholesky(COV).T
    w = jnp.ones((2000,))

    @jax.jit
    def run(key):
        start = model.init(key, x, w)
        params = model.fit(key, start, x, w, False, knobs(cfg))
        return model.sample(jax.random.key(9), params, 4000, knobs(cfg)), model.sample(
            jax.random.key(9), start, 4000, knobs(cfg)
        )

    fitted, untrained = run(jax.random.key(3))

    def close(y):
        # sampling SE of the mean and covariance entries ~0.01; the rest is the fit's error
        return bool(np.all(np.abs(np.mean(y, 0) - MEAN) < 0.1) and np.all(np.abs(np.cov(y.T) - COV) < 0.08))

    assert close(np.asarray(fitted)), (np.mean(fitted, 0), np.cov(np.asarray(fitted).T))
    assert not close(np.asarray(untrained))


def test_a_unet_flow_matching_loop_traces_on_image_rows():
    """model.network=unet on data=digits: generation 0 (fit, conditional sampling, metrics) traces
    (jax.eval_shape, no compilation) with image rows and the label column; bad fields are one-line config
    errors."""
    from madloop.engine import Programs
    from madloop.knobs import knobs_of

    cfg = madloop.compose(
        ["data=digits", "model=flow_matching", "model.network=unet", "model.channels=[4,8]", "model.classes=10"]
        + ["model.solver=euler", "regime.n_real=32", "regime.n_synth=32", "eval.n=32", "eval.snapshot_n=8"]
        + ["loop.generations=2", "eval.metrics=[sw2]"]
    )
    programs = Programs(cfg)
    ref = jax.eval_shape(programs.reference, jax.random.key(0), jax.random.key(1), programs.fixed_heldout)
    k = knobs_of(cfg)
    state, _ = jax.eval_shape(programs.loop.start, jax.random.key(2), k, ref)
    assert state.real.shape == (32, 65) and state.snapshots.shape[-1] == 64
    for bad, match in (
        ("model.coupling=exact", "model.coupling=exact: allowed: independent, ot"),
        ("model.solver=rk4", "model.solver=rk4: allowed: euler, heun"),
        ("model.sigma_min=1.0", r"model.sigma_min=1.0: must lie in \[0, 1\)"),
        ("model.bias=cfg", "model.bias=cfg: classifier-free guidance needs a conditional model"),
    ):
        with pytest.raises(madloop.ConfigError, match=match):
            madloop.compose(["model=flow_matching", bad])
