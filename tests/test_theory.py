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
