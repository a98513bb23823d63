"""madloop.theory's utilities on hand-checkable cases (the laws themselves are tested against the loop in
test_gaussian_laws.py)."""

import numpy as np
import pytest

from madloop import theory
from madloop.theory import effective_sample_size, expected_log_det_wishart, fresh_data_moments


def test_effective_sample_size_inverts_a_power_law_exactly():
    """error(n) = 2 / sqrt(n) is linear in log-log, so interpolation is exact: the loop error 2 / sqrt(30) has
    n_e = 30; errors outside the grid clip to the smallest n (a lower bound) or give inf."""
    n = np.array([5, 10, 20, 50, 100])
    err = 2 / np.sqrt(n)
    got = effective_sample_size(np.array([2 / np.sqrt(30), 2 / np.sqrt(7), 5.0, 0.01]), n, err)
    np.testing.assert_allclose(got[:2], [30, 7], rtol=1e-9)
    np.testing.assert_allclose(got[2], 5, rtol=1e-12)
    assert np.isinf(got[3])
    with pytest.raises(ValueError, match="must decrease"):
        effective_sample_size(0.3, n, err[::-1])


def test_wishart_log_det_mean_in_one_dimension():
    """d = 1: W = chi2_k / k, E log W = psi(k/2) + log(2/k); at k = 2, psi(1) = -Euler's gamma."""
    np.testing.assert_allclose(expected_log_det_wishart(1, 2), -0.5772156649015329, rtol=1e-12)


def test_fresh_data_moments_by_hand():
    """n_r = n_s = 1, lam = 1, d = 1: N = 2, t_1 = (1 + t_0) / 2 + (1 / 2) m_0 = 1 + 1/2 with m_0 = 1, and
    m_1 = m_0 / 4 + (1 + t_0) / 4 = 3/4; without synthetic samples the loop is i.i.d. refitting (t = 1)."""
    t, m = fresh_data_moments(1, 1.0, 1, 1, 1)
    np.testing.assert_allclose(t, [1.0, 1.5])
    np.testing.assert_allclose(m, [1.0, 0.75])
    t, m = fresh_data_moments(5, 0.7, 10, 0, 3)
    np.testing.assert_allclose(t, 1.0)
    np.testing.assert_allclose(m, 0.3)


def test_best_of_k_normal_moments_match_the_known_values():
    # E max of 2 standard normals = 1/sqrt(pi), Var = 1 - 1/pi; E max of 3 = 3 / (2 sqrt(pi)); k = 1 is N(0, 1).
    np.testing.assert_allclose(theory.best_of_k_normal_moments(2), (1 / np.sqrt(np.pi), 1 - 1 / np.pi), atol=1e-9)
    assert abs(theory.best_of_k_normal_moments(3)[0] - 1.5 / np.sqrt(np.pi)) < 1e-9
    np.testing.assert_allclose(theory.best_of_k_normal_moments(1), (0.0, 1.0), atol=1e-9)


def test_pair_choice_moments_run_from_no_choice_to_the_best_of_two_and_match_a_simulation():
    np.testing.assert_allclose(theory.pair_choice_normal_moments(0.0), (0.0, 1.0), atol=1e-12)
    np.testing.assert_allclose(theory.pair_choice_normal_moments(1e7), theory.best_of_k_normal_moments(2), atol=1e-5)
    rng = np.random.default_rng(0)
    x1, x2 = rng.standard_normal((2, 1_000_000))
    kept = np.where(rng.random(x1.shape) < 1 / (1 + np.exp(-(x1 - x2))), x1, x2)  # beta = 1
    mean, var = theory.pair_choice_normal_moments(1.0)
    assert abs(kept.mean() - mean) < 4.5 * kept.std() / 1e3 and abs(kept.var() - var) < 0.005


def test_curated_gaussian_path_collapses_alone_and_settles_with_real_data():
    mu, var = theory.curated_gaussian_path(40, 2, 0.0)
    np.testing.assert_allclose(var, (1 - 1 / np.pi) ** np.arange(41), rtol=1e-9)
    assert mu[1] == pytest.approx(1 / np.sqrt(np.pi)) and np.all(np.diff(mu) > 0)
    # Half real data: the recursion's fixed point (the last steps change by < 1e-6) with a variance above 1.
    mu, var = theory.curated_gaussian_path(200, 2, 0.0, real_share=0.5)
    assert abs(mu[-1] - mu[-2]) < 1e-6 and abs(var[-1] - var[-2]) < 1e-6 and var[-1] > 1
    with pytest.raises(ValueError, match="k = 2 only"):
        theory.curated_gaussian_path(3, 3, 1.0)


def test_fresh_data_mean_fixed_point_by_hand_and_as_the_recursions_limit():
    """n_s = 0 is i.i.d. refitting: d / n_r for every covariance. n_r = n_s = 2, d = 1 (N = 4): known 4 / (2 * 6) = 1/3,
    MLE 4 / (12 + 2) = 2/7, unbiased 4 / (12 - 4/3) = 3/8. Each is the limit of its exact recursion (law 11), and n_e
    tends to 2 n_r - 1, 2 n_r + 1 and 2 n_r."""
    for cov in theory.COVARIANCES:
        assert theory.fresh_data_mean_fixed_point(3, 7, 0, cov) == pytest.approx(3 / 7, rel=1e-12)
    np.testing.assert_allclose(
        [theory.fresh_data_mean_fixed_point(1, 2, 2, c) for c in ("known", "mle", "unbiased")], [1 / 3, 2 / 7, 3 / 8]
    )
    for estimator in ("unbiased", "mle"):
        for n_real, n_synth in ((5, 7), (2, 40), (30, 3)):
            m = fresh_data_moments(4000, 1.0, n_real, n_synth, 3, estimator=estimator)[1][-1]
            assert m == pytest.approx(theory.fresh_data_mean_fixed_point(3, n_real, n_synth, estimator), rel=1e-9)
    for cov, offset in (("unbiased", -1), ("mle", 1), ("known", 0)):
        far = theory.fresh_data_effective_sample_size(10, 10**7, cov)
        assert far == pytest.approx(theory.effective_sample_size_limit(10, cov), abs=1e-4) and 20 + offset == round(far)
    assert theory.fresh_data_effective_sample_size(10, 10, "known") == pytest.approx(15)  # 1.5 n_r at n_s = n_r
    with pytest.raises(ValueError, match="covariance"):
        theory.fresh_data_mean_fixed_point(2, 3, 3, "exact")


def test_fresh_data_moments_mle_by_hand():
    """MLE, n_r = n_s = 1, lam = 1, d = 1, generation 0 from n_0 = 2 real samples: t_0 = 1/2, m_0 = 1/2; N = 2 and
    t_1 = (1/2) ((1 + t_0) / 2 + m_0 / 2) = 1/2, m_1 = m_0 / 4 + (1 + t_0) / 4 = 1/2."""
    t, m = fresh_data_moments(1, 1.0, 1, 1, 1, n_initial=2, estimator="mle")
    np.testing.assert_allclose(t, [0.5, 0.5])
    np.testing.assert_allclose(m, [0.5, 0.5])


def test_augmentation_laws_by_hand():
    """a = r / (w + r); one step of the recursion at n_r = n_s = 2 (N = 4, a = 1/2, MLE, lam = 1):
    delta_1 = 0 + 2 tau_0 / 16 = 1/8 and tau_1 = 2/4 + 2 * 3 / 16 + 0 = 7/8 (tau + delta = 1: the second moment about
    xbar is reproduced); the fixed point n_s / (n_r (n_r + 2 n_s) + n_s) = 2 / 14; hot sampling has none."""
    assert theory.augmentation_autocorrelation(1.0) == 0.5
    assert theory.augmentation_autocorrelation(3.0, lag=2) == pytest.approx(0.5625)
    assert theory.augmentation_autocorrelation(2.0, real_weight=2.0) == 0.5
    t, m = theory.augmentation_moments(60, 2, 2)
    np.testing.assert_allclose([t[1], m[1]], [7 / 8, 1 / 8])
    np.testing.assert_allclose(t + m, 1.0)
    assert m[-1] == pytest.approx(theory.augmentation_mean_variance(2, 2)) == pytest.approx(1 / 7)
    assert theory.augmentation_mean_variance(100, 1600) == pytest.approx(1600 / (100 * 3300 + 1600))
    assert np.isinf(theory.augmentation_mean_variance(2, 100, lam=1.5))


def test_lag1_autocorrelation_recovers_a_noise_free_ar1_and_a_simulated_one():
    """D_t = a^t exactly: the estimate is a with no error; a simulated AR(1) (a = 0.9, 400 paths x 50 steps from 0)
    lands within 4.5 SE of a, and its SE rejects a^2."""
    paths = 0.7 ** np.arange(30)[None, :, None] * np.array([1.0, -2.0])
    est, se = theory.lag1_autocorrelation(np.repeat(paths, 3, axis=0))
    assert est == pytest.approx(0.7, rel=1e-12) and se < 1e-12
    rng = np.random.default_rng(1)
    x = np.zeros((400, 50))
    for t in range(1, 50):
        x[:, t] = 0.9 * x[:, t - 1] + rng.standard_normal(400)
    est, se = theory.lag1_autocorrelation(x)
    assert abs(est - 0.9) < 4.5 * se and abs(est - 0.81) > 4.5 * se
