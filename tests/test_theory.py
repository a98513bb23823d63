"""madloop.theory's utilities on hand-checkable cases (the laws themselves are tested against the loop in
test_gaussian_laws.py)."""

import numpy as np
import pytest

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
