"""Closed-form laws of the Gaussian loops, for experiments and tests (docs/theory.md derives them)."""

from __future__ import annotations

import numpy as np


def expected_log_det_wishart(d: int, k: int) -> float:
    """E log det W for W ~ Wishart_d(k, I) / k: sum_{i=1..d} psi((k - i + 1) / 2) + d log(2 / k).

    References:
        Bishop 2006, Pattern Recognition and Machine Learning, eq. B.81.
    """
    from scipy.special import digamma

    return float(sum(digamma((k - i + 1) / 2) for i in range(1, d + 1)) + d * np.log(2 / k))


def fresh_data_moments(
    generations: int, lam: float, n_real: int, n_synth: int, d: int
) -> tuple[np.ndarray, np.ndarray]:
    """(E tr Sigma_g / tr Sigma, E ||mu_g - mu||^2) for g = 0..generations of the Gaussian fresh data loop.

    Generation g fits the unbiased Gaussian to n_r fresh real samples of N(mu, Sigma) pooled with n_s samples of
    N(mu_{g-1}, lam Sigma_{g-1}) (replace pool, unit real weight). With N = n_r + n_s, the pooled scatter's
    expectation gives exactly
        E[Sigma_g | g - 1] = (n_r Sigma + n_s lam Sigma_{g-1}) / N + n_r n_s / (N (N - 1)) (mu_{g-1} - mu)(...)^T,
        mu_g - mu = (n_s / N)(mu_{g-1} - mu) + noise,  E||noise||^2 = (n_r tr Sigma + n_s lam tr Sigma_{g-1}) / N^2,
    a linear recursion in (t_g, m_g) from t_0 = 1, m_0 = tr Sigma / n_r (generation 0: an unbiased fit of n_r
    real samples). Without the mean term the fixed point is n_r / (n_r - n_s (lam - 1)); the covariance grows
    without bound ("heat death", Marchi et al. 2024) about when n_s (lam - 1) >= n_r.

    Args:
        generations: G; lam: the sampling bias; n_real, n_synth: n_r, n_s; d: the dimension (truth N(mu, I_d)).

    Returns:
        Two arrays [G + 1]: the expected trace ratio and the expected squared error of the mean.
    """
    n = n_real + n_synth
    t, m = [1.0], [d / n_real]
    for _ in range(generations):
        t_prev, m_prev = t[-1], m[-1]
        t.append((n_real + n_synth * lam * t_prev) / n + n_real * n_synth / (n * (n - 1)) * m_prev / d)
        m.append((n_synth / n) ** 2 * m_prev + (n_real * d + n_synth * lam * d * t_prev) / n**2)
    return np.array(t), np.array(m)


def effective_sample_size(loop_error, n_grid, real_error) -> np.ndarray:
    """The effective sample size n_e of a loop: the real-only sample size whose model is as good as the loop.

    MAD (Alemohammad et al. 2023, eq. 4) defines n_e by equating a distance of the loop's fixed point to the
    truth with the same distance of a model fitted to n_e real samples. Given the real-only error curve
    ``real_error`` [k] at sample sizes ``n_grid`` [k] (increasing n, decreasing error: measured, e.g., by a
    count sweep of ``regime.n_real`` with ``regime.n_synth=0``), this inverts it by linear interpolation of
    log error against log n.

    Args:
        loop_error: the loop's long-run error(s), any shape, in the same distance.
        n_grid: [k] real-only sample sizes, increasing.
        real_error: [k] the real-only model's mean error at each size, decreasing.

    Returns:
        n_e with the shape of ``loop_error``: n_grid[0] where the loop is worse than the smallest real-only fit
        (a lower bound), inf where it is better than the largest (beyond the grid).
    """
    n_grid, real_error = np.asarray(n_grid, float), np.asarray(real_error, float)
    if np.any(np.diff(n_grid) <= 0) or np.any(np.diff(real_error) >= 0):
        raise ValueError("n_grid must increase and real_error must decrease along it")
    x = np.log(np.asarray(loop_error, float))
    # np.interp needs increasing abscissae: interpolate log n against -log error
    log_n = np.interp(-x, -np.log(real_error), np.log(n_grid), left=np.log(n_grid[0]), right=np.inf)
    return np.exp(log_n)
