"""KID, the Vendi scores and alpha-precision / beta-recall / authenticity against plain numpy references, closed
forms and hand-checked cases, and their groups in the metric table."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
from scipy.spatial.distance import cdist

from madloop import config as C
from madloop import metrics as M
from madloop.curation import NoCuration, make_curation
from madloop.data import make_source
from madloop.data.toy import Ring8Data
from madloop.metrics import fidelity as F
from madloop.precision import precision
from madloop.types import GenerativeModel

Z = 4.5  # standard errors of tolerance for the statistical checks
NAMES = ("kid", "vendi", "vendi2", "alpha_precision", "beta_recall", "authenticity")


def f64(x) -> np.ndarray:
    return np.asarray(x, np.float64)


def ring(seed: int, n: int) -> jax.Array:
    """n points [n, 2] of an 8-mode ring (radius 2, std 0.05), drawn with numpy (no sampler to compile)."""
    rng = np.random.default_rng(seed)
    angle = 2 * np.pi * rng.integers(0, 8, n) / 8
    return jnp.asarray(
        2 * np.stack([np.cos(angle), np.sin(angle)], 1) + 0.05 * rng.standard_normal((n, 2)), jnp.float32
    )


# ------------------------------------------------------------------------------------------------------- KID


def kid_reference(s: np.ndarray, r: np.ndarray) -> float:
    """Unbiased MMD^2 with k(x, y) = (x . y / f + 1)^3, by double loops in float64."""
    s, r = f64(s), f64(r)
    f = s.shape[1]
    k = lambda x, y: (float(x @ y) / f + 1.0) ** 3
    m, n = len(s), len(r)
    k_ss = sum(k(s[i], s[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    k_rr = sum(k(r[i], r[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    k_rs = sum(k(r[i], s[j]) for i in range(n) for j in range(m)) / (n * m)
    return k_ss + k_rr - 2.0 * k_rs


@jax.jit
def kid_of(s, r):
    return F.kid(s, r, F.polynomial_reference(r))["kid"]


def test_kid_matches_a_double_loop_reference():
    # unequal sizes, 3 features, a shifted and scaled sample (KID ~ 1) and a same-distribution one (KID ~ 0)
    r = jax.random.normal(jax.random.key(1), (25, 3))
    for s in (1.5 * jax.random.normal(jax.random.key(2), (20, 3)) + 0.7, jax.random.normal(jax.random.key(3), (20, 3))):
        want = kid_reference(s, r)
        # float32 sums of kernel values of size ~10: an absolute error of a few 1e-6 of that scale
        assert float(kid_of(s, r)) == pytest.approx(want, rel=1e-5, abs=1e-5)


def kid_f64(s, r) -> float:
    """The unbiased MMD^2 of the uncentred cubic kernel, vectorised in float64."""
    s, r = f64(s), f64(r)
    f, m, n = s.shape[1], len(s), len(r)
    k = lambda a, b: (a @ b.T / f + 1.0) ** 3  # noqa: E731
    k_ss, k_rr = k(s, s), k(r, r)
    k_ss = (k_ss.sum() - np.trace(k_ss)) / (m * (m - 1))
    k_rr = (k_rr.sum() - np.trace(k_rr)) / (n * (n - 1))
    return float(k_ss + k_rr - 2 * k(r, s).mean())


def kid_uncentred(s, r):
    """The three uncentred kernel means' float32 difference (the earlier code)."""
    k = lambda a, b, diag: F.polynomial_kernel_mean(a, b, exclude_diagonal=diag)  # noqa: E731
    return k(s, s, True) + k(r, r, True) - 2 * k(r, s, False)


@pytest.mark.parametrize(("f", "offset"), [(2, 10.0), (2, 100.0), (64, 30.0)])
def test_kid_of_features_far_from_the_origin(f, offset):
    """KID's three kernel means are each ~(c . c / f + 1)^3 for features centred at c far from the origin (ReLU
    features, data with an offset), and their float32 difference erred by 0.15% (f = 2, offset 10), 0.8% (offset
    100) and 0.3% (f = 64, offset 30) against float64. The kernel centred at the held-out mean gives the same MMD^2
    within 2e-5 relative; the uncentred float32 sums (the earlier code, the power check) miss that by over 10x. A
    collapsed sample (every row one point) far from the origin is held to the same tolerance."""
    rng = np.random.default_rng(0)
    r = rng.normal(size=(500, f)) + offset
    collapsed = np.broadcast_to(r[:1] + 0.3, (400, f))
    for s in (rng.normal(size=(400, f)) * 1.1 + offset + 0.05, collapsed):
        want = kid_f64(s, r)
        r32, s32 = jnp.asarray(r, jnp.float32), jnp.asarray(s, jnp.float32)
        assert float(kid_of(s32, r32)) == pytest.approx(want, rel=2e-5)
        uncentred = float(jax.jit(kid_uncentred)(s32, r32))
        if s is not collapsed:
            assert abs(uncentred - want) > 2e-4 * abs(want)


def test_the_centred_kernel_equals_the_difference_of_kernels():
    """k_c(x, y) = k(x, y) - k(x, c) - k(c, y) + k(c, c), elementwise, in float64."""
    rng = np.random.default_rng(1)
    a, b, c = rng.normal(size=(7, 5)) + 2, rng.normal(size=(6, 5)) - 1, rng.normal(size=5)
    with precision("float64"):
        got = np.asarray(F.centred_polynomial_kernel(jnp.asarray(a), jnp.asarray(b), jnp.asarray(c)))
    k = lambda x, y: (x @ y.T / 5 + 1.0) ** 3  # noqa: E731
    want = k(a, b) - k(a, c[None])[:, :1] - k(c[None], b)[:1] + k(c[None], c[None])
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_kid_is_unbiased_and_grows_with_a_shift():
    """Over 400 keys, KID of two samples of N(0, I_3) averages to 0 within 4.5 SE; the V-statistic (the diagonal
    kept, a plausible slip) is biased up by (E k(x, x) - E k(x, y)) (1/m + 1/n) and is rejected; a mean shift of
    0.5 gives a KID far above 0."""
    n, d = 40, 3

    def draws(key, shift):
        k1, k2 = jax.random.split(key)
        r = jax.random.normal(k1, (n, d))
        s = jax.random.normal(k2, (n, d)) + shift
        k_ss, k_rr, k_rs = (jnp.mean(F.polynomial_kernel(a, b)) for a, b in ((s, s), (r, r), (r, s)))
        return kid_of(s, r), k_ss + k_rr - 2.0 * k_rs

    keys = jax.random.split(jax.random.key(0), 400)
    kid, biased = jax.jit(jax.vmap(draws, in_axes=(0, None)))(keys, 0.0)
    se = float(jnp.std(kid)) / np.sqrt(len(keys))
    assert abs(float(jnp.mean(kid))) < Z * se
    assert float(jnp.mean(biased)) > Z * se  # the power check: the diagonal's bias is many SE
    shifted, _ = jax.jit(jax.vmap(draws, in_axes=(0, None)))(keys, 0.5)
    assert float(jnp.mean(shifted)) > 10 * se and float(jnp.mean(shifted > 0)) > 0.95


# ---------------------------------------------------------------------------------------------- Vendi scores


def vendi_reference(x, bandwidth) -> tuple[float, float]:
    """exp(entropy of eig(K / m)) with scipy's float64 eigh, and m^2 / ||K||_F^2."""
    x = f64(x)
    k = np.exp(-cdist(x, x, "sqeuclidean") / (2.0 * float(bandwidth) ** 2))
    m = len(x)
    lam = np.clip(scipy.linalg.eigh(k / m, eigvals_only=True), 0.0, None)
    lam = lam[lam > 0]
    return float(np.exp(-np.sum(lam * np.log(lam)))), float(m**2 / np.sum(k**2))


vendi_scores = jax.jit(F.vendi_scores)


def scores(x, bandwidth=1.0):
    vs1, vs2 = vendi_scores(jnp.asarray(x, jnp.float32), jnp.float32(bandwidth))
    return float(vs1), float(vs2)


def clusters(sizes, gap=100.0):
    """Points stacked at (gap * c, -1) for cluster c: identical within a cluster, K ~ 0 between clusters."""
    return np.concatenate([np.tile([gap * c, -1.0], (size, 1)) for c, size in enumerate(sizes)])


@pytest.mark.parametrize(
    ("sizes", "vendi", "vendi2"),
    [
        ((40,), 1.0, 1.0),  # one point repeated: K = 1 1^T, eigenvalues (1, 0, ...)
        ((1,) * 40, 40.0, 40.0),  # 40 points 100 bandwidths apart: K = I, eigenvalues 1/40 each
        ((20, 20), 2.0, 2.0),  # two equal clusters: eigenvalues (1/2, 1/2)
        # sizes 3:1: eigenvalues (3/4, 1/4); exp(H) = exp(-(3/4) ln(3/4) - (1/4) ln(1/4)) = 1.7548;
        # order 2: 1 / (9/16 + 1/16) = 1.6
        ((30, 10), float(np.exp(-0.75 * np.log(0.75) - 0.25 * np.log(0.25))), 1.6),
    ],
    ids=["identical", "far_apart", "two_equal", "three_to_one"],
)
def test_vendi_by_hand(sizes, vendi, vendi2):
    vs1, vs2 = scores(clusters(sizes))
    # float32 eigh returns the zero eigenvalues as noise of size eps; the eps max(l) cut leaves 4e-5 at most
    assert vs1 == pytest.approx(vendi, rel=1e-4)
    assert vs2 == pytest.approx(vendi2, rel=1e-6)


def test_vendi_matches_a_float64_eigh_reference():
    # an 8-mode ring and a 16-d Gaussian under their median bandwidth, and under a bandwidth 20x smaller
    # the ring padded with 14 zero coordinates (the same distances), so both cases share one compiled program
    flat_ring = jnp.pad(ring(1, 120), ((0, 0), (0, 14)))
    for x in (flat_ring, jax.random.normal(jax.random.key(2), (120, 16))):
        bw = jax.jit(F.median_bandwidth)(x).bandwidth
        for h in (bw, bw / 20):
            got, want = scores(x, h), vendi_reference(x, h)
            assert got[0] == pytest.approx(want[0], rel=5e-4)  # measured <= 3.4e-4 at m = 1000 (fidelity.py)
            assert got[1] == pytest.approx(want[1], rel=1e-5)
            assert 1.0 <= got[1] <= got[0] <= 120 * (1 + 1e-5)  # VS_2 <= VS_1: Renyi entropies fall with the order


# ---------------------------------------------------------------- alpha-precision, beta-recall, authenticity


def alpha_beta_reference(s, r, k):
    """The three metrics and two curves by the definitions, written with loops in float64."""
    s, r = f64(s), f64(r)
    alphas = np.linspace(0, 1, 30)
    to_centre = np.linalg.norm(s - r.mean(0), axis=1)
    radii = np.quantile(np.linalg.norm(r - r.mean(0), axis=1), alphas)
    precision = np.array([np.mean(to_centre <= rad) for rad in radii])

    d_rr = cdist(r, r)
    np.fill_diagonal(d_rr, np.inf)
    nn = np.sort(d_rr, axis=1)  # column k - 1: the distance to the k-th nearest other real point
    d_rs = cdist(r, s)
    to_own = np.linalg.norm(s - s.mean(0), axis=1)
    recall = []
    for rad in np.quantile(to_own, alphas):
        support = np.flatnonzero(to_own <= rad)  # the samples in the beta-support
        hits = 0
        for i in range(len(r)):
            j = support[np.argmin(d_rs[i, support])]  # the nearest in-support sample to real point i
            hits += d_rs[i, j] <= nn[i, k - 1]
        recall.append(hits / len(r))
    recall = np.array(recall)

    authentic = [d_rs[np.argmin(d_rs[:, j]), j] > nn[np.argmin(d_rs[:, j]), 0] for j in range(len(s))]
    delta = lambda curve: 1.0 - 2.0 * np.mean(np.abs(curve - alphas))
    return precision, recall, (delta(precision), delta(recall), float(np.mean(authentic)))


def test_quantiles_match_numpy():
    v = jax.random.normal(jax.random.key(4), (101,)) ** 3
    np.testing.assert_allclose(
        jax.jit(lambda v: F.quantiles(v, F.ALPHAS))(v), np.quantile(f64(v), F.ALPHAS), rtol=1e-6, atol=1e-7
    )


@jax.jit
def curves(s, r):
    """alpha-precision and beta-recall curves and the three metrics with k = 3."""
    sup = F.real_supports(r, 3)
    d_rs = M.pairwise_distances(r, s)
    return F.alpha_precision_curve(s, sup), F.beta_recall_curve(s, d_rs, sup), F.alpha_beta(s, r, sup)


@pytest.mark.parametrize("scale", [1.0, 0.6])
def test_alpha_beta_match_a_loop_reference(scale):
    r = jax.random.normal(jax.random.key(5), (60, 2))
    s = scale * jax.random.normal(jax.random.key(6), (50, 2)) + 0.2
    precision, recall, want = alpha_beta_reference(s, r, 3)
    got_precision, got_recall, got = curves(s, r)
    # the curves are shares of counts: the counts are equal
    count = lambda share, n: np.round(np.asarray(share) * n)
    np.testing.assert_array_equal(count(got_precision, 50), count(precision, 50))
    np.testing.assert_array_equal(count(got_recall, 60), count(recall, 60))
    names = ("alpha_precision", "beta_recall", "authenticity")
    np.testing.assert_allclose([float(got[name]) for name in names], want, rtol=1e-6, atol=1e-6)


def test_copies_of_held_out_points_are_not_authentic():
    # memorisation: every sample a copy of a held-out point (shuffled), so its nearest held-out point is at 0
    r = ring(7, 300)
    copies = r[jax.random.permutation(jax.random.key(8), 300)]
    authenticity = jax.jit(lambda s: F.alpha_beta(s, r, F.real_supports(r, 5))["authenticity"])
    assert float(authenticity(copies)) == 0.0
    half = copies.at[:150].set(ring(9, 150))  # half copies, half fresh: ~ 0.5 x 0.38
    assert 0.1 < float(authenticity(half)) < 0.3


def contracted_precision() -> float:
    """Delta-precision of N(0, I_2) samples scaled by 1/2 against N(0, I_2), on the grid: |z|^2 ~ chi2(2) gives
    r_a^2 = -2 ln(1 - a), and P(|z| / 2 <= r_a) = 1 - exp(-2 r_a^2) = 1 - (1 - a)^4."""
    a = F.ALPHAS
    return float(1.0 - 2.0 * np.mean(np.abs(1.0 - (1.0 - a) ** 4 - a)))


@pytest.mark.parametrize(
    ("n", "keys"), [(500, 16), pytest.param(1000, 64, marks=pytest.mark.slow)], ids=["n500", "n1000"]
)
def test_independent_draws_contractions_and_the_authenticity_of_fresh_samples(n, keys):
    """Over many keys of n = m samples (the default eval.n = 1000 in the slow tier):

    - an independent draw from the truth (2-D Gaussian): alpha_precision and beta_recall near 1. Measured over 64
      keys at n = 1000: 0.973 +- 0.012 (min 0.934) and 0.949 +- 0.019 (min 0.896); at n = 500: 0.963 +- 0.015
      (min 0.921) and 0.912 +- 0.031 (min 0.853). The deficit is the curves' sampling noise, which |.| turns
      into a bias; it shrinks with n.
    - its authenticity is not 1/2: a fresh sample counts as a copy when it and its nearest real point are mutual
      nearest neighbours. For a locally uniform density that happens with probability 1 / (2 - w_d), w_d the
      overlap of two unit balls at unit distance as a share of one (w_1 = 1/2, w_2 = 2/3 - sqrt(3) / (2 pi)), so
      authenticity = 1/3 in 1-D and 0.3785 in 2-D, rising toward 1/2 only as d grows. Indexing the real 1-NN
      radii with the samples' indices (as synthcity's code does) gives about 1/2: the power check.
    - samples contracted by 1/2 about the mean: alpha_precision matches its closed form (``contracted_precision``)
      and the score without the factor 2 (1 - mean |P - a|) is rejected; beta_recall is low.
    """

    @jax.jit
    @jax.vmap
    def run(key):
        k1, k2, k3, k4 = jax.random.split(key, 4)
        r2, s2 = jax.random.normal(k1, (n, 2)), jax.random.normal(k2, (n, 2))
        r1, s1 = jax.random.normal(k3, (n, 1)), jax.random.normal(k4, (n, 1))
        sup2 = F.real_supports(r2, 5)
        d_rs = M.pairwise_distances(r2, s2)
        mixed = jnp.mean(jnp.min(d_rs, axis=1) > sup2.nn_radius[jnp.argmin(d_rs, axis=1)])  # synthcity's indices
        fresh_1d = F.alpha_beta(s1, r1, F.real_supports(r1, 5))["authenticity"]
        return F.alpha_beta(s2, r2, sup2), fresh_1d, F.alpha_beta(0.5 * s2, r2, sup2), mixed

    fresh, fresh_1d, contracted, mixed = run(jax.random.split(jax.random.key(10), keys))
    mean_se = lambda v: (float(jnp.mean(v)), float(jnp.std(v)) / np.sqrt(keys))

    assert float(jnp.min(fresh["alpha_precision"])) > 0.9 and float(jnp.mean(fresh["alpha_precision"])) > 0.95
    assert float(jnp.min(fresh["beta_recall"])) > 0.8 and float(jnp.mean(fresh["beta_recall"])) > 0.9

    w2 = 2 / 3 - np.sqrt(3) / (2 * np.pi)
    for got, want in ((fresh["authenticity"], 1 - 1 / (2 - w2)), (fresh_1d, 1 / 3)):
        mean, se = mean_se(got)
        assert abs(mean - want) < Z * se, (mean, se, want)
        assert abs(mean - 0.5) > Z * se
    mean, se = mean_se(mixed)
    assert abs(mean - 0.5) < Z * se and abs(mean - (1 - 1 / (2 - w2))) > Z * se

    mean, se = mean_se(contracted["alpha_precision"])
    want = contracted_precision()  # 0.4208
    assert abs(mean - want) < Z * se, (mean, se, want)
    assert abs(mean - (1 + want) / 2) > Z * se  # 1 - mean |P - a|: the factor 2 missing
    assert float(jnp.max(contracted["beta_recall"])) < 0.6  # measured 0.47 +- 0.02 at n = 1000, 0.51 at 500


# ------------------------------------------------------------------------------------------------- the table


def context(**eval_settings) -> M.Context:
    source = make_source(Ring8Data())
    unused = lambda *args: None
    model = GenerativeModel(unused, unused, unused)
    return M.Context(source, model, make_curation(NoCuration(), source), C.EvalConfig(**eval_settings))


def test_the_groups_are_listed_selected_prepared_and_vmapped():
    """KID is a default metric, the Vendi and alpha-beta groups are opt-in; through the table (jit over vmapped
    seeds) each equals its function on the same inputs."""
    ctx = context(k=5)
    listed = tuple(M.available(ctx))
    assert listed[listed.index("coverage") + 1 :][:6] == NAMES  # after prdc, before modes
    assert "kid" in M.select(ctx) and not set(NAMES[1:]) & set(M.select(ctx))
    assert M.select(ctx._replace(eval=C.EvalConfig(metrics=list(NAMES)))) == NAMES
    assert M.needs_classifier(NAMES) and all(M.is_sample_metric(name) for name in NAMES)  # features on images

    real = ring(1, 120)
    ref = jax.jit(lambda h: M.make_reference(jax.random.key(2), h, ctx, NAMES))(real)
    assert set(ref.stats) == {"kid", "vendi", "alpha_beta"}
    samples = 1.1 * ring(3, 240).reshape(2, 120, 2)
    got = jax.jit(jax.vmap(lambda s: M.evaluate_samples(NAMES, s, ctx, ref)))(samples)
    assert set(got) == set(NAMES)

    @jax.jit
    def direct(s):
        return {
            **F.kid(s, real, F.polynomial_reference(real)),
            **F.vendi(s, real, F.median_bandwidth(real)),
            **F.alpha_beta(s, real, F.real_supports(real, 5)),
        }

    for seed in range(2):
        want = direct(samples[seed])
        for name in NAMES:
            # KID is a difference of kernel means of 1-10 that two programs sum in another order: float32 puts them
            # 2e-6 apart on jax 0.12 (leaving the diagonal in would move it by about 0.08)
            tol = 1e-5 if name == "kid" else 1e-6
            assert float(got[name][seed]) == pytest.approx(float(want[name]), rel=1e-5, abs=tol), name
