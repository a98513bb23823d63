"""Metrics against reference libraries (POT, prdc, scipy) and hand-checkable cases."""

import jax
import jax.numpy as jnp
import numpy as np
import ot
import prdc as prdc_ref
import pytest
import scipy.linalg
from scipy.spatial.distance import cdist

from madloop import config as C
from madloop import metrics as M
from madloop.data import make_source

KEY = jax.random.key(0)


def two_samples(n=300, d=3, shift=0.5):
    a = jax.random.normal(jax.random.key(1), (n, d))
    b = jax.random.normal(jax.random.key(2), (n, d)) * 1.3 + shift
    return a, b


def test_sort_floats_is_numpy_sort():
    x = jnp.array([[3.0, -1.0, 0.0, -2.5, 1e-30, -1e-30, jnp.inf, -jnp.inf, 2.0, -0.0]])
    np.testing.assert_array_equal(np.abs(np.asarray(M.sort_floats(x))), np.abs(np.sort(np.asarray(x))))
    y = jax.random.normal(KEY, (7, 1000)) * 1e3
    np.testing.assert_array_equal(M.sort_floats(y), np.sort(np.asarray(y), axis=-1))


def test_kth_smallest_keeps_ties():
    v = jnp.array([[5.0, 1.0, 1.0, 3.0, 1.0, 2.0]])
    # sorted: 1 1 1 2 3 5
    assert [float(M.kth_smallest(v, k)[0]) for k in range(6)] == [1, 1, 1, 2, 3, 5]


def test_sliced_w2_matches_pot_with_the_same_directions():
    a, b = two_samples()
    ref = M.make_reference(KEY, a, 5, 64)
    ours = M.sliced_w2(ref.proj_sorted, b, ref.directions)
    theirs = ot.sliced_wasserstein_distance(
        np.asarray(a, np.float64), np.asarray(b, np.float64), projections=np.asarray(ref.directions, np.float64).T, p=2
    )
    assert float(ours) == pytest.approx(float(theirs), rel=1e-4)


def test_one_dimensional_sliced_w2_is_exact_w2():
    a = jax.random.normal(jax.random.key(1), (200, 1))
    b = jax.random.exponential(jax.random.key(2), (200, 1))
    ref = M.make_reference(KEY, a, 5, 3)  # in 1-D every direction is +-1: SW2 = W2
    exact = np.sqrt(ot.emd2([], [], ot.dist(np.asarray(a, np.float64), np.asarray(b, np.float64))))
    assert float(M.sliced_w2(ref.proj_sorted, b, ref.directions)) == pytest.approx(exact, rel=1e-4)


def test_sliced_w2_of_unequal_sizes_matches_pot():
    """Different sample sizes (a fixed held-out set against eval.n model samples): the merged-breakpoint
    quantile integral equals POT's sliced W2 and, in 1-D, the exact optimal-transport W2."""
    a = jax.random.normal(jax.random.key(3), (90, 3))
    b = 0.5 + jax.random.exponential(jax.random.key(4), (140, 3))
    ref = M.make_reference(KEY, a, 5, 32, ("sw2",))
    theirs = ot.sliced_wasserstein_distance(
        np.asarray(a, np.float64), np.asarray(b, np.float64), projections=np.asarray(ref.directions, np.float64).T, p=2
    )
    assert float(M.sliced_w2(ref.proj_sorted, b, ref.directions)) == pytest.approx(float(theirs), rel=1e-4)
    a1, b1 = a[:, :1], b[:, :1]
    ref1 = M.make_reference(KEY, a1, 5, 3, ("sw2",))
    exact = np.sqrt(ot.emd2([], [], ot.dist(np.asarray(a1, np.float64), np.asarray(b1, np.float64))))
    assert float(M.sliced_w2(ref1.proj_sorted, b1, ref1.directions)) == pytest.approx(exact, rel=1e-4)


def test_prdc_matches_reference_package():
    a, b = two_samples(n=400, d=4, shift=0.7)
    for k in (3, 5):
        ref = M.make_reference(KEY, a, k, 8)
        ours = M.prdc(ref.radii, a, b, k)
        theirs = prdc_ref.compute_prdc(np.asarray(a, np.float64), np.asarray(b, np.float64), k)
        for name in ("precision", "recall", "density", "coverage"):
            # float32 vs float64 distances can flip a ball membership that sits on the boundary: allow 2 of 400
            assert float(ours[name]) == pytest.approx(theirs[name], abs=2 / 400), name


def test_mmd_matches_numpy_reference_and_is_unbiased():
    a, b = two_samples(n=250, d=2)
    ref = M.make_reference(KEY, a, 5, 8)
    s = float(ref.bandwidth)
    an, bn = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert s == pytest.approx(np.median(cdist(an, an)[np.triu_indices(250, 1)]), rel=1e-5)
    kxx, kyy, kxy = (np.exp(-cdist(u, v, "sqeuclidean") / (2 * s * s)) for u, v in ((an, an), (bn, bn), (an, bn)))
    m = 250
    expected = (
        (kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * kxy.mean()
    )
    cfg = C.EvalConfig(n=250)
    src = make_source(C.GaussianData())
    ours = M.sample_metrics(("mmd",), b, ref, cfg, src)["mmd"]
    assert float(ours) == pytest.approx(expected, rel=1e-3)

    # Unbiased: over fresh pairs of samples from one law, the mean of MMD^2 is 0 within its standard error
    # (the biased V-statistic would sit near +2 (1 - E k) / n instead).
    def fresh_pair(k):
        k1, k2 = jax.random.split(k)
        r = M.make_reference(KEY, jax.random.normal(k1, (100, 2)), 5, 8)
        return M.sample_metrics(("mmd",), jax.random.normal(k2, (100, 2)), r, cfg, src)["mmd"]

    vals = np.asarray(jax.vmap(fresh_pair)(jax.random.split(jax.random.key(9), 400)))
    assert abs(vals.mean()) < 4.5 * vals.std(ddof=1) / np.sqrt(len(vals))


def test_frechet_distance_matches_scipy_sqrtm():
    a, b = two_samples(d=4)
    mu1, mu2 = np.asarray(a.mean(0), np.float64), np.asarray(b.mean(0), np.float64)
    c1, c2 = np.cov(np.asarray(a, np.float64).T), np.cov(np.asarray(b, np.float64).T)
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(c1 + c2 - 2 * np.real(scipy.linalg.sqrtm(c1 @ c2)))
    ours = M.frechet_distance(jnp.asarray(mu1), jnp.asarray(c1), jnp.asarray(mu2), jnp.asarray(c2))
    assert float(ours) == pytest.approx(expected, rel=1e-4)


def test_gaussian_kl_closed_form():
    mu_p, mu_q = np.array([0.0, 1.0]), np.array([1.0, -1.0])
    cp, cq = np.array([[2.0, 0.3], [0.3, 1.0]]), np.array([[1.0, -0.2], [-0.2, 0.5]])
    iq = np.linalg.inv(cq)
    dmu = mu_q - mu_p
    expected = 0.5 * (np.trace(iq @ cp) + dmu @ iq @ dmu - 2 + np.log(np.linalg.det(cq) / np.linalg.det(cp)))
    ours = M.gaussian_kl(*(jnp.asarray(v) for v in (mu_p, cp, mu_q, cq)))
    assert float(ours) == pytest.approx(expected, rel=1e-5)
    assert float(M.gaussian_kl(*(jnp.asarray(v) for v in (mu_p, cp, mu_p, cp)))) == pytest.approx(0, abs=1e-6)


def test_mode_counts_on_a_hand_made_sample():
    src = make_source(C.Ring8Data(radius=2.0, std=0.05))
    means = np.asarray(src.mixture.means)
    # 60 samples on mode 0, 30 on mode 3, 9 inside 3 sigma of mode 5 (radius 0.15), 1 far away.
    pts = np.concatenate(
        [
            np.repeat(means[[0]], 60, 0),
            np.repeat(means[[3]], 30, 0),
            np.repeat(means[[5]] + [0.1, 0.0], 9, 0),
            [[0.0, 0.0]],
        ]
    )
    out = M.mode_stats(jnp.asarray(pts, jnp.float32), src, share=0.1)
    assert float(out["modes"]) == 2  # mode 5 holds 9% < 10%
    assert float(out["hq"]) == pytest.approx(0.99)
    out = M.mode_stats(jnp.asarray(pts, jnp.float32), src, share=0.05)
    assert float(out["modes"]) == 3


def test_real_vs_real_metrics_are_near_their_floor():
    src = make_source(C.Ring8Data())
    real = src.sample(jax.random.key(1), 1000)
    other = src.sample(jax.random.key(2), 1000)
    ref = M.make_reference(KEY, real, 5, 64)
    out = M.sample_metrics(M.SAMPLE_METRICS + M.MODE_METRICS, other, ref, C.EvalConfig(), src)
    assert float(out["modes"]) == 8 and float(out["hq"]) > 0.98
    assert abs(float(out["mmd"])) < 2e-3 and float(out["fd"]) < 0.02
    for name in ("precision", "recall", "coverage"):
        assert float(out[name]) > 0.9, name
    collapsed = jnp.broadcast_to(src.mixture.means[0], (1000, 2))
    worse = M.sample_metrics(M.SAMPLE_METRICS + M.MODE_METRICS, collapsed, ref, C.EvalConfig(), src)
    assert float(worse["modes"]) == 1 and float(worse["recall"]) < 0.2 and float(worse["sw2"]) > 5 * float(out["sw2"])
