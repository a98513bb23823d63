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
    generations: int,
    lam: float,
    n_real: int,
    n_synth: int,
    d: int,
    n_initial: int | None = None,
    estimator: str = "unbiased",
) -> tuple[np.ndarray, np.ndarray]:
    """(E tr Sigma_g / tr Sigma, E ||mu_g - mu||^2) for g = 0..generations of the Gaussian fresh data loop.

    Generation g fits the Gaussian to n_r fresh real samples of N(mu, Sigma) pooled with n_s samples of
    N(mu_{g-1}, lam Sigma_{g-1}) (replace pool, unit real weight). With N = n_r + n_s, the pooled scatter's
    expectation gives exactly (unbiased estimator)
        E[Sigma_g | g - 1] = (n_r Sigma + n_s lam Sigma_{g-1}) / N + n_r n_s / (N (N - 1)) (mu_{g-1} - mu)(...)^T,
        mu_g - mu = (n_s / N)(mu_{g-1} - mu) + noise,  E||noise||^2 = (n_r tr Sigma + n_s lam tr Sigma_{g-1}) / N^2,
    a linear recursion in (t_g, m_g) from t_0 = 1, m_0 = tr Sigma / n_r (generation 0: an unbiased fit of n_r
    real samples); the MLE (divide by N) multiplies the covariance's expectation by (N - 1) / N, and t_0 by
    (n_0 - 1) / n_0. Without the mean term the fixed point is n_r / (n_r - n_s (lam - 1)); the covariance grows
    without bound ("heat death", Marchi et al. 2024) about when n_s (lam - 1) >= n_r. At lam = 1 the mean error's
    fixed point is ``fresh_data_mean_fixed_point`` (docs/theory.md, law 11).

    Args:
        generations: G; lam: the sampling bias; n_real, n_synth: n_r, n_s; d: the dimension (truth N(mu, I_d)).
        n_initial: generation 0's real samples when they differ from n_r (``regime.n_initial``): m_0 = d / n_0.
            The recursion is a contraction (factor n_s / N on the mean), so every n_0 reaches the same limit.
        estimator: ``unbiased`` (divide by N - 1, the default) or ``mle`` (divide by N), as ``model.estimator``.

    Returns:
        Two arrays [G + 1]: the expected trace ratio and the expected squared error of the mean.
    """
    if estimator not in ("unbiased", "mle"):
        raise ValueError(f"estimator={estimator!r}: must be 'unbiased' or 'mle'")
    n, n0 = n_real + n_synth, n_initial or n_real
    shrink = 1.0 if estimator == "unbiased" else (n - 1) / n  # E MLE = (N - 1) / N E unbiased
    t, m = [1.0 if estimator == "unbiased" else (n0 - 1) / n0], [d / n0]
    for _ in range(generations):
        t_prev, m_prev = t[-1], m[-1]
        t.append(shrink * ((n_real + n_synth * lam * t_prev) / n + n_real * n_synth / (n * (n - 1)) * m_prev / d))
        m.append((n_synth / n) ** 2 * m_prev + (n_real * d + n_synth * lam * d * t_prev) / n**2)
    return np.array(t), np.array(m)


COVARIANCES = ("unbiased", "mle", "known")


def fresh_data_mean_fixed_point(d: int, n_real: int, n_synth: int, covariance: str = "unbiased") -> float:
    """The long-run E ||mu_g - mu||^2 of the Gaussian fresh data loop at sampling bias 1, truth N(mu, I_d).

    The mean is an AR(1) around the truth with factor a = n_s / N (N = n_r + n_s) and per-generation noise of
    variance (n_r tr Sigma + n_s tr Sigma_{g-1}) / N^2, so with the covariance known (Sigma_g = Sigma) the fixed
    point is (d / N) / (1 - a^2) = d N / (n_r (n_r + 2 n_s)). A refitted covariance is lifted by the between-group
    term of the pooled scatter (docs/theory.md, law 7), which feeds back into the mean's noise; solving law 7's
    recursion at its fixed point gives exactly (docs/theory.md, law 11)
        unbiased (divide by N - 1):  d N / (n_r (n_r + 2 n_s) - n_s^2 / (N - 1)),
        mle (divide by N):           d N / (n_r (n_r + 2 n_s) + n_s),
        known:                       d N / (n_r (n_r + 2 n_s)).

    Args:
        d: dimension (tr Sigma = d).
        n_real: n_r fresh real samples per generation, >= 1 (>= 2 for ``unbiased``).
        n_synth: n_s samples of the previous generation per generation, >= 0.
        covariance: ``unbiased`` or ``mle`` (madloop's ``model.estimator``), or ``known`` (the covariance is not
            refitted: the issue's form, and the leading order of the other two).

    References:
        Alemohammad et al. 2023 ("Self-Consuming Generative Models Go MAD"), Sec. 5 (the fresh data loop).
    """
    if covariance not in COVARIANCES:
        raise ValueError(f"covariance={covariance!r}: must be one of {COVARIANCES}")
    n = n_real + n_synth
    denominator = n_real * (n_real + 2 * n_synth)
    if covariance == "unbiased":
        denominator -= n_synth**2 / (n - 1)
    elif covariance == "mle":
        denominator += n_synth
    return d * n / denominator


def fresh_data_effective_sample_size(n_real: int, n_synth: int, covariance: str = "unbiased") -> float:
    """MAD's effective sample size n_e of the Gaussian fresh data loop at sampling bias 1, in the mean's error.

    A Gaussian fitted to n real samples has E ||mean - mu||^2 = tr Sigma / n (with either covariance estimator),
    so n_e = d / ``fresh_data_mean_fixed_point``: n_r (n_r + 2 n_s) / N - n_s^2 / (N (N - 1)) (unbiased),
    n_r (n_r + 2 n_s) / N + n_s / N (mle), n_r (n_r + 2 n_s) / N (known). It rises from n_r at n_s = 0 through
    1.5 n_r at n_s = n_r to ``effective_sample_size_limit`` as n_s -> infinity.

    References:
        Alemohammad et al. 2023, Sec. 5.3, eq. 4 (n_e); docs/theory.md, law 11.
    """
    return 1.0 / fresh_data_mean_fixed_point(1, n_real, n_synth, covariance)


def effective_sample_size_limit(n_real: int, covariance: str = "unbiased") -> float:
    """lim n_e as n_s -> infinity of ``fresh_data_effective_sample_size``: 2 n_r - 1 (unbiased), 2 n_r + 1 (mle),
    2 n_r (known covariance): the loop is worth about twice its fresh real data per generation, never more.

    With many synthetic samples the mean averages the real data of about N / n_r past generations (the real
    noise vanishes) while the synthetic resampling adds a random walk that the factor n_s / N damps: its
    stationary variance n_s tr Sigma / (N^2 (1 - (n_s / N)^2)) tends to tr Sigma / (2 n_r).
    """
    if covariance not in COVARIANCES:
        raise ValueError(f"covariance={covariance!r}: must be one of {COVARIANCES}")
    return 2.0 * n_real + {"unbiased": -1.0, "mle": 1.0, "known": 0.0}[covariance]


def augmentation_autocorrelation(ratio: float, lag: int = 1, real_weight: float = 1.0) -> float:
    """The lag-k autocorrelation at stationarity of a statistic the fit reproduces (the fitted mean, a maximum-
    likelihood exponential family's mean parameters) in the synthetic augmentation loop: (r / (w + r))^k.

    Generation t + 1 is fitted to the fixed real set (n_r samples of weight w) and n_s = r n_r samples of generation
    t. The fit averages the statistic over its training set, so its fluctuation D_t around the fixed point (the
    real set's value, generation 0's fit) obeys D_{t+1} = a D_t + a xi_t, a = n_s / (w n_r + n_s), with xi_t the
    synthetic samples' sampling noise (mean zero given the past): an AR(1) with factor a < 1 for every finite
    ratio (docs/theory.md, law 10).

    Args:
        ratio: r = n_s / n_r, the synthetic-to-real ratio (Bertrand et al.'s lambda).
        lag: k >= 0 generations.
        real_weight: w, ``regime.real_weight`` (1: every sample counts once).

    References:
        Bertrand et al. 2024 ("On the Stability of Iterative Retraining of Generative Models on their own Data",
        ICLR): retraining on real data plus lambda times as much synthetic data; their sufficient condition
        lambda (1 + L eps / alpha) < 1.
    """
    if ratio < 0 or real_weight <= 0 or lag < 0:
        raise ValueError(f"ratio={ratio}, real_weight={real_weight}, lag={lag}: need ratio >= 0, weight > 0, lag >= 0")
    return (ratio / (real_weight + ratio)) ** lag


def _augmentation_map(n_real: int, n_synth: int, estimator: str, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """(A [2, 2], c [2]) of the linear recursion x_{t+1} = A x_t + c in x_t = (tau_t, delta_t), law 10."""
    if estimator not in ("unbiased", "mle"):
        raise ValueError(f"estimator={estimator!r}: must be 'unbiased' or 'mle'")
    n = n_real + n_synth
    scale = n / (n - 1) if estimator == "unbiased" else 1.0  # unbiased = N / (N - 1) x MLE
    a = n_synth / n
    big_a = np.array(
        [
            [scale * lam * n_synth * (n - 1) / n**2, scale * n_real * n_synth / n**2],
            [lam * n_synth / n**2, a**2],
        ]
    )
    return big_a, np.array([scale * n_real / n, 0.0])


def augmentation_moments(
    generations: int, n_real: int, n_synth: int, estimator: str = "mle", lam: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """(E[tr Sigma_t | X] / tr S, E[||mu_t - xbar||^2 | X] / tr S) for t = 0..generations of the Gaussian synthetic
    augmentation loop, given its fixed real set X (n_r samples, mean xbar, maximum-likelihood covariance S).

    Generation t + 1 fits X pooled with n_s samples of N(mu_t, lam Sigma_t) (unit weights, N = n_r + n_s,
    a = n_s / N). With tau_t = E tr Sigma_t and delta_t = E ||mu_t - xbar||^2, the pooled scatter gives exactly
        delta_{t+1} = a^2 delta_t + lam n_s tau_t / N^2,
        tau_{t+1} = c [n_r tr S / N + lam n_s (N - 1) / N^2 tau_t + n_r n_s / N^2 delta_t],
    with c = 1 (MLE) or N / (N - 1) (unbiased), from delta_0 = 0 (generation 0's mean is xbar) and tau_0 = tr S
    (MLE) or n_r / (n_r - 1) tr S (unbiased). Both are linear in tr S, so the ratios are exact given X.

    Args:
        generations: G.
        n_real, n_synth: n_r, n_s.
        estimator: ``mle`` or ``unbiased`` (``model.estimator``).
        lam: the sampling bias.

    Returns:
        Two arrays [G + 1]: the expected trace and squared mean deviation, over tr S.

    References:
        docs/theory.md, law 10; Bertrand et al. 2024 (the loop they call iterative retraining on mixed data).
    """
    big_a, c = _augmentation_map(n_real, n_synth, estimator, lam)
    x = np.array([1.0 if estimator == "mle" else n_real / (n_real - 1), 0.0])
    out = [x]
    for _ in range(generations):
        x = big_a @ x + c
        out.append(x)
    out = np.asarray(out)
    return out[:, 0], out[:, 1]


def augmentation_mean_variance(n_real: int, n_synth: int, estimator: str = "mle", lam: float = 1.0) -> float:
    """The stationary E[||mu_t - xbar||^2 | X] / tr S of the Gaussian synthetic augmentation loop (law 10): the
    fixed point of ``augmentation_moments``' recursion, inf where it has none (its spectral radius >= 1).

    It is lam n_s tau / (n_r (n_r + 2 n_s)) with tau the stationary E tr Sigma_t / tr S; for the MLE at lam = 1
    the second moment about xbar is reproduced by the fit, tau + delta = 1, and
        n_s / (n_r (n_r + 2 n_s) + n_s)  ->  1 / (2 n_r + 1)  as n_s -> infinity,
    bounded for every ratio (the same for a GMM fitted by EM, whose M-step reproduces both moments).
    """
    big_a, c = _augmentation_map(n_real, n_synth, estimator, lam)
    if np.max(np.abs(np.linalg.eigvals(big_a))) >= 1.0:
        return float("inf")
    return float(np.linalg.solve(np.eye(2) - big_a, c)[1])


def effective_sample_size(loop_error, n_grid, real_error) -> np.ndarray:
    """The effective sample size n_e of a loop: the real-only sample size whose model is as good as the loop.

    MAD (Alemohammad et al. 2023, Sec. 5.3, eq. 4) defines n_e by equating a distance of the loop's fixed point to the
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


def _normal_quadrature(points: int = 4001, width: float = 12.0) -> tuple[np.ndarray, np.ndarray]:
    """Nodes z and trapezoid weights w with sum_i w_i f(z_i) ~ E f(Z), Z ~ N(0, 1) (error far below 1e-9 for the
    smooth, polynomially bounded integrands used here)."""
    z = np.linspace(-width, width, points)
    w = np.exp(-0.5 * z**2) / np.sqrt(2 * np.pi) * (z[1] - z[0])
    w[[0, -1]] *= 0.5
    return z, w


def best_of_k_normal_moments(k: int) -> tuple[float, float]:
    """(mean, variance) of the maximum of k iid N(0, 1): k-choice curation at temperature -> 0 under a reward
    increasing in x (e.g. k = 2: 1 / sqrt(pi) and 1 - 1 / pi).

    The maximum has density k phi(z) Phi(z)^(k - 1); its moments are computed by quadrature.
    """
    from scipy.special import ndtr

    z, w = _normal_quadrature()
    dens = k * ndtr(z) ** (k - 1)
    mean = float(np.sum(w * dens * z))
    return mean, float(np.sum(w * dens * z**2) - mean**2)


def pair_choice_normal_moments(beta: float) -> tuple[float, float]:
    """(mean, variance) of the sample kept by 2-choice curation of N(0, 1) samples under the reward beta z: of
    X1, X2 ~ N(0, 1), X1 is kept with probability sigmoid(beta (X1 - X2)).

    With D = X1 - X2 and S = X1 + X2 (independent N(0, 2)), the kept sample's mean is E[D sigmoid(beta D)] and,
    by the symmetry sigmoid(u) + sigmoid(-u) = 1, its second moment is exactly 1 (docs/theory.md, law 8). beta -> inf
    gives ``best_of_k_normal_moments(2)``; beta = 0 gives N(0, 1).
    """
    from scipy.special import expit

    z, w = _normal_quadrature()
    d = np.sqrt(2.0) * z
    mean = float(np.sum(w * d * expit(beta * d)))
    return mean, 1.0 - mean**2


def curated_gaussian_path(
    generations: int, k: int, temperature: float, real_share: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """(mu_g, sigma_g^2) for g = 0..generations of a 1-D Gaussian refitted (with infinitely many samples) to its own
    k-choice-curated samples under the linear reward r(x) = x, from the truth N(0, 1) at generation 0 (Ferbach et
    al. 2024's setting in one dimension), optionally mixed with real data.

    Generation g's kept samples are mu + sigma Z with Z the kept sample of N(0, 1) under the reward (sigma / T) z:
    mean c = mu_g + sigma_g m and variance sigma_g^2 v, where (m, v) are ``best_of_k_normal_moments(k)`` at
    temperature 0 and ``pair_choice_normal_moments(sigma_g / T)`` for k = 2. A training set with a share a of
    real samples (fresh or a fixed set: the same in this limit) is the mixture a N(0, 1) + (1 - a) curated:
        mu_{g+1} = (1 - a) c,  sigma_{g+1}^2 = a + (1 - a) sigma_g^2 v + a (1 - a) c^2.
    With a = 0, sigma_g^2 = v^g -> 0 at temperature 0 (an unbiased refit of n samples has exactly this
    expectation) and the mean climbs to a finite limit, m / (1 - sqrt(v)) (3.24 for k = 2); with a > 0 both
    settle at a fixed point (Ferbach et al., Thm. 2.4).

    Args:
        generations: G.
        k: candidates per kept sample.
        temperature: of the choice; 0 keeps the best of k (any k), > 0 needs k = 2.
        real_share: the share a of real samples in every training set after generation 0, in [0, 1).
    """
    if temperature > 0 and k != 2:
        raise ValueError(f"k={k}: the curated law at a temperature > 0 is implemented for k = 2 only")
    if not 0 <= real_share < 1:
        raise ValueError(f"real_share={real_share}: must lie in [0, 1)")
    a = real_share
    mu, var = [0.0], [1.0]
    for _ in range(generations):
        s = np.sqrt(var[-1])
        m, v = best_of_k_normal_moments(k) if temperature == 0 else pair_choice_normal_moments(s / temperature)
        c = mu[-1] + s * m
        mu.append((1 - a) * c)
        var.append(a + (1 - a) * var[-1] * v + a * (1 - a) * c**2)
    return np.asarray(mu), np.asarray(var)


def pool_moments(
    generations: int, n_real: int, n_synth: int, d: int, pool: str, lam: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """(E tr Sigma_g / tr Sigma, E ||mu_g - mu||^2 / tr Sigma) for g = 0..generations of the Gaussian fully
    synthetic loop with the unbiased estimator and a ``replace`` or ``accumulate`` pool (exact).

    Generation 0 fits n_r real samples; generation j >= 1 adds n = n_s samples of N(mu_{j-1}, lam Sigma_{j-1})
    with mean a_j = mu_{j-1} + e_j, E[e_j e_j^T | past] = lam Sigma_{j-1} / n (docs/theory.md, law 9).
    - replace: generation g fits only the newest n samples: t_g = lam t_{g-1}, M_g = M_{g-1} + lam t_{g-1} / n.
    - accumulate: generation g fits all g n synthetic samples, so mu_g = mu_{g-1} + e_g / g and
      M_g = M_{g-1} + lam t_{g-1} / (n g^2); the pooled scatter's within-generation part has expectation
      (n - 1) lam sum_j t_{j-1} and its between-generation part n (sum_j E||a_j||^2 - g M_g), so
      t_g = (n lam sum_j t_{j-1} + n sum_j M_{j-1} - n g M_g) / (g n - 1), j = 1..g,
    where t_g = E tr Sigma_g / tr Sigma and M_g = E ||mu_g - mu||^2 / tr Sigma. At lam = 1 the accumulated mean's
    error stays below (1 / n_r + (pi^2 / 6) / n) tr Sigma (Gerstgrasser et al. 2024's bounded error), where
    replace's grows as (1 / n_r + g / n) tr Sigma.

    Args:
        generations: G.
        n_real: n_r, generation 0's real samples.
        n_synth: n, synthetic samples per generation.
        d: dimension (unused by the normalised moments; kept for the call's readability).
        pool: ``replace`` or ``accumulate``.
        lam: sampling bias (the samples' covariance is lam Sigma_{g-1}).
    """
    del d
    if pool not in ("replace", "accumulate"):
        raise ValueError(f"pool={pool!r}: the law is implemented for replace and accumulate")
    n = n_synth
    t, m = [1.0], [1.0 / n_real]
    for g in range(1, generations + 1):
        if pool == "replace":
            m.append(m[-1] + lam * t[-1] / n)
            t.append(lam * t[-1])
        else:
            m.append(m[-1] + lam * t[g - 1] / (n * g**2))
            within = n * lam * sum(t[:g])
            between = n * sum(m[:g]) - n * g * m[g]
            t.append((within + between) / (g * n - 1))
    return np.asarray(t), np.asarray(m)


def lag1_autocorrelation(deviations: np.ndarray) -> tuple[float, float]:
    """The lag-1 autocorrelation of paths about their known fixed point, pooled over runs, and its standard error.

    For D_{t+1} = a D_t + noise with noise of mean zero given the past (law 10's AR(1)), E[D_{t+1} . D_t] =
    a E||D_t||^2 at every t, stationary or not, so the pooled regression through the fixed point,
    sum_{s,t} D_{s,t+1} . D_{s,t} / sum_{s,t} ||D_{s,t}||^2, estimates a without a burn-in and without the
    -(1 + 3 a) / T bias of an autocorrelation about each path's own mean. Its standard error treats runs as
    independent (the delta method for a ratio of per-run sums).

    Args:
        deviations: [S, T] or [S, T, k] paths minus their fixed point (S runs, T generations, k coordinates).

    Returns:
        (estimate, standard error).
    """
    dev = np.asarray(deviations, np.float64)
    dev = dev.reshape(dev.shape[0], dev.shape[1], -1)
    num = np.sum(dev[:, 1:] * dev[:, :-1], axis=(1, 2))  # [S]
    den = np.sum(dev[:, :-1] ** 2, axis=(1, 2))
    est = num.sum() / den.sum()
    s = num.shape[0]
    se = np.sqrt(np.sum((num - est * den) ** 2) * s / (s - 1)) / den.sum()
    return float(est), float(se)


# ------------------------------------------------------------------------ the supervised loop (docs/theory.md law 12)

REGRESSION_LOOPS = (
    ("fully_synthetic", "replace"),
    ("fully_synthetic", "accumulate"),
    ("synthetic_augmentation", "accumulate"),
    ("fresh_data", "replace"),
)


def ols_variance(n: int, d: int) -> float:
    """E tr (X^T X)^-1 = d / (n - d - 1) for X [n, d] with iid N(0, 1) entries (the inverse Wishart's mean): the
    expected excess risk of least squares on n samples with unit label noise, for any feature covariance."""
    if n <= d + 1:
        return float("inf")
    return d / (n - d - 1)


def fresh_contraction(d: int, n_real: int, n_synth: int) -> float:
    """c = E tr(B A^-2 B) / d for B = X_s^T X_s (n_s rows), A = B + X_r^T X_r (n_r more rows), iid N(0, 1) rows:
    the factor by which the fresh data loop carries generation g - 1's excess risk into generation g (law 12).

    Write X = Q A^(1/2) with Q [N, d] uniform on the Stiefel manifold and independent of A (N = n_r + n_s), so
    B = A^(1/2) U A^(1/2) with U = Q_s^T Q_s independent of A, and tr(B A^-2 B) = tr(U A^-1 U A). Wishart's mixed
    moment E[A_ab (A^-1)_ce] = (N d_ab d_ce - d_ac d_be - d_ae d_bc) / (N - d - 1) gives
    E tr(B A^-2 B) = ((N - 1) E tr U^2 - E (tr U)^2) / (N - d - 1), and H = Q Q^T, the projection onto a uniform
    d-dimensional subspace, has E H_kk^2 = d (d + 2) / (N (N + 2)), E H_kl^2 = d (N - d) / (N (N + 2) (N - 1)) and
    E H_kk H_ll = d (d N + d - 2) / (N (N - 1) (N + 2)) (k != l), with tr U^2 = sum_{k,l in s} H_kl^2 and
    tr U = sum_{k in s} H_kk.
    """
    n, s = n_real + n_synth, n_synth
    h_kk2 = d * (d + 2) / (n * (n + 2))
    h_kl2 = d * (n - d) / (n * (n + 2) * (n - 1))
    h_kk_ll = d * (d * n + d - 2) / (n * (n - 1) * (n + 2))
    tr_u2 = s * h_kk2 + s * (s - 1) * h_kl2
    tr_u_sq = s * h_kk2 + s * (s - 1) * h_kk_ll
    return ((n - 1) * tr_u2 - tr_u_sq) / (d * (n - d - 1))


def regression_test_error(
    generations: int,
    d: int,
    n_real: int,
    n_synth: int,
    loop: str = "fully_synthetic",
    pool: str = "replace",
    noise: float = 1.0,
    synth_noise: float | None = None,
    lam: float = 1.0,
    gamma: float = 0.0,
) -> np.ndarray:
    """E[(w_g - w*)^T S (w_g - w*)] for g = 0..generations: the expected excess risk (``test_error``) of least
    squares in the supervised loop, exact for Gaussian features of any covariance S (docs/theory.md, law 12).

    Generation 0 fits n_r real rows (labels x . w* + N(0, sigma^2)); a synthetic set is n_s fresh features labelled
    x . w_{g-1} + N(0, tau^2), tau^2 = lam s^2, then moved a fraction gamma toward x . w* (``correction``). With
    v(n) = d / (n - d - 1) and m_0 = sigma^2 v(n_r):
    - fully synthetic, replace: m_g = (1 - gamma)^2 (m_{g-1} + tau^2 v(n_s)); at gamma = 0,
      m_g = sigma^2 v(n_r) + g tau^2 v(n_s) (Dohmatob et al.'s linear growth, (g + 1) sigma^2 d / (T - d - 1)).
    - fully synthetic, accumulate: m_g = m_{g-1} + tau^2 v(g n_s) / g.
    - synthetic augmentation, accumulate (the real rows stay): m_g = m_{g-1} + tau^2 (n_s / N_g) v(N_g),
      N_g = n_r + g n_s; at n_r = n_s = T, m_g = sigma^2 sum_{i=1..g+1} d / (i (i T - d - 1)), below
      Gerstgrasser et al.'s sigma^2 d / (T - d - 1) pi^2 / 6 (``regression_accumulate_bound``).
    - fresh data, replace: m_g = (1 - gamma)^2 c m_{g-1} + (sigma^2 n_r + (1 - gamma)^2 tau^2 n_s) v(N) / N,
      N = n_r + n_s, c = ``fresh_contraction(d, n_r, n_s)``.

    Args:
        generations: G.
        d: features.
        n_real, n_synth: n_r, n_s.
        loop, pool: one of ``REGRESSION_LOOPS`` (the others have no closed form here).
        noise: sigma, the real labels' noise sd (``data.noise``).
        synth_noise: s, the synthetic labels' noise sd (``model.noise``); None = sigma.
        lam: the sampling bias (scales the synthetic noise's variance).
        gamma: the correction's strength (``correction=toward_truth``); replace pools only.

    Returns:
        [G + 1] the expected test error (with S = I, also the expected weight error ||w_g - w*||^2).
    """
    if (loop, pool) not in REGRESSION_LOOPS:
        raise ValueError(f"loop={loop!r}, pool={pool!r}: the law covers {REGRESSION_LOOPS}")
    if gamma != 0 and pool != "replace":
        raise ValueError(f"gamma={gamma}: the corrected law covers replace pools")
    sigma2 = noise**2
    tau2 = lam * (noise if synth_noise is None else synth_noise) ** 2
    keep = (1.0 - gamma) ** 2
    m = [sigma2 * ols_variance(n_real, d)]
    n = n_real + n_synth
    c = fresh_contraction(d, n_real, n_synth) if loop == "fresh_data" else 0.0
    for g in range(1, generations + 1):
        if loop == "fully_synthetic" and pool == "replace":
            m.append(keep * (m[-1] + tau2 * ols_variance(n_synth, d)))
        elif loop == "fully_synthetic":
            m.append(m[-1] + tau2 * ols_variance(g * n_synth, d) / g)
        elif loop == "synthetic_augmentation":
            n_g = n_real + g * n_synth
            m.append(m[-1] + tau2 * n_synth / n_g * ols_variance(n_g, d))
        else:
            m.append(keep * c * m[-1] + (sigma2 * n_real + keep * tau2 * n_synth) * ols_variance(n, d) / n)
    return np.asarray(m)


def regression_accumulate_bound(d: int, n: int, noise: float = 1.0) -> float:
    """Gerstgrasser et al. 2024's bound on the accumulating loop's test error, sigma^2 d / (n - d - 1) pi^2 / 6.

    sigma^2 d / (n - d - 1) sum_{i <= g + 1} 1 / i^2 is exact when every generation reuses one design matrix
    (generation i's pool is then i copies of X); with fresh features each term d / (i (i n - d - 1)) is smaller,
    since i n - d - 1 >= i (n - d - 1) (law 12).
    """
    return noise**2 * ols_variance(n, d) * np.pi**2 / 6


def corrected_gaussian_moments(
    generations: int, n_real: int, n_synth: int, gamma: float, lam: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """(E tr Sigma_g / tr Sigma, E ||mu_g - mu||^2 / tr Sigma) for g = 0..generations of the Gaussian fully synthetic
    replace loop (unbiased estimator) whose samples move a fraction gamma toward the truth's mean
    (``correction=toward_truth``; docs/theory.md, law 13).

    A sample x ~ N(mu_{g-1}, lam Sigma_{g-1}) becomes x + gamma (mu - x) ~ N(mu + (1 - gamma)(mu_{g-1} - mu),
    (1 - gamma)^2 lam Sigma_{g-1}), so with k = (1 - gamma)^2:
        t_g = k lam t_{g-1} = (k lam)^g,    M_g = k (M_{g-1} + lam t_{g-1} / n_s),    M_0 = 1 / n_r.
    The mean is pulled to the truth's (M_g -> 0 for any gamma > 0 at lam <= 1) while the covariance shrinks by k per
    generation: the toy expert concentrates the distribution, the opposite of Gillman et al.'s stability.
    """
    k = (1.0 - gamma) ** 2
    t, m = [1.0], [1.0 / n_real]
    for _ in range(generations):
        m.append(k * (m[-1] + lam * t[-1] / n_synth))
        t.append(k * lam * t[-1])
    return np.asarray(t), np.asarray(m)


# ------------------------------------------------------------------------------------------- discrete laws

CATEGORICAL_REGIMES = ("fully_synthetic", "fresh_data", "synthetic_augmentation")


def categorical_moments(
    probs: np.ndarray,
    generations: int,
    n_real: int,
    n_synth: int,
    regime: str,
    smoothing: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """(E q_g [G + 1, V], E sum_v q_{g,v}^2 [G + 1]) of the categorical loop, exactly (docs/theory.md, law 14).

    Generation g fits q_g = c raw_g + u with raw_g the token frequencies of its training set of N tokens and
    additive smoothing alpha (c = N / (N + alpha V), u = alpha / (N + alpha V); alpha = 0 is the MLE). Generation 0
    fits n_r real tokens a ~ Mult(n_r, p) / n_r; generation g >= 1 adds n_s tokens b ~ Mult(n_s, q_{g-1}) / n_s
    (replace pool, sampling bias 1, unit real weight) to the regime's real part:
    - fully synthetic: raw = b (N = n_s). With alpha = 0, 1 - E sum q_g^2 = (1 - 1/n_s)(1 - E sum q_{g-1}^2):
      the heterozygosity of the Wright-Fisher model decays by (1 - 1/n) per generation, and E q_g = E q_0.
    - fresh data: raw = (n_r a_g + n_s b) / N with a_g fresh each generation (N = n_r + n_s); the cross term
      E sum a_g q_{g-1} = p . E q_{g-1}.
    - synthetic augmentation: a_g = a, generation 0's real set; the cross term X_g = E sum a q_g has its own
      recursion X_g = c (n_r A + n_s X_{g-1}) / N + u, A = E sum a^2 = sum p^2 + (1 - sum p^2) / n_r.
    In each, E sum raw^2 = (n_r^2 A + 2 n_r n_s X + n_s^2 s + n_s (1 - s)) / N^2 with s = E sum q_{g-1}^2 and
    sum q^2 = c^2 sum raw^2 + 2 c u + V u^2 (raw sums to 1).

    Args:
        probs: [V] the truth p.
        generations: G.
        n_real, n_synth: n_r (generation 0's tokens, and the real part's), n_s.
        regime: ``fully_synthetic``, ``fresh_data`` or ``synthetic_augmentation``.
        smoothing: alpha >= 0.

    References:
        Fisher 1930; Wright 1931 (the Wright-Fisher model: heterozygosity decays by 1 - 1/N per generation).
        Seddik et al. 2024, "How Bad is Training on Synthetic Data?", Sec. 3 (the categorical loop).
    """
    if regime not in CATEGORICAL_REGIMES:
        raise ValueError(f"regime={regime!r}: must be one of {CATEGORICAL_REGIMES}")
    p = np.asarray(probs, np.float64)
    v = p.shape[0]
    sp = float(p @ p)
    big_a = sp + (1 - sp) / n_real

    def smooth(n: int) -> tuple[float, float]:
        return n / (n + smoothing * v), smoothing / (n + smoothing * v)

    c0, u0 = smooth(n_real)
    m, s, x = [c0 * p + u0], [c0**2 * big_a + 2 * c0 * u0 + v * u0**2], [c0 * big_a + u0]
    n_r = 0 if regime == "fully_synthetic" else n_real
    n = n_r + n_synth
    c, u = smooth(n)
    for _ in range(generations):
        m_prev, s_prev, x_prev = m[-1], s[-1], x[-1]
        cross = x_prev if regime == "synthetic_augmentation" else float(p @ m_prev)
        raw_sq = (n_r**2 * big_a + 2 * n_r * n_synth * cross + n_synth**2 * s_prev + n_synth * (1 - s_prev)) / n**2
        m.append(c * (n_r * p + n_synth * m_prev) / n + u)
        s.append(c**2 * raw_sq + 2 * c * u + v * u**2)
        x.append(c * (n_r * big_a + n_synth * x_prev) / n + u)
    return np.asarray(m), np.asarray(s)


def wright_fisher_heterozygosity(probs: np.ndarray, generations: int, n: int) -> np.ndarray:
    """E[1 - sum q_g^2] for g = 0..G of the fully synthetic categorical MLE loop with n tokens per generation
    (generation 0 fitted on n real tokens): (1 - 1/n)^(g + 1) (1 - sum p^2)."""
    p = np.asarray(probs, np.float64)
    return (1 - 1 / n) ** (np.arange(generations + 1) + 1) * (1 - p @ p)


def temperature_map(probs: np.ndarray, temperature: float) -> np.ndarray:
    """p^(1 / T) / Z, the deterministic temperature map of a categorical law (zeros stay zero), in float64 with
    the largest entry factored out (no underflow at small T). As T -> 0 it tends to the uniform law on the argmax
    set; as T -> infinity to the uniform law on the support of p; T = 1 is the identity. Its entropy rises with T.
    """
    p = np.asarray(probs, np.float64)
    on = p > 0
    logs = np.where(on, np.log(np.where(on, p, 1.0)), -np.inf) / temperature
    w = np.where(on, np.exp(logs - logs[on].max()), 0.0)
    return w / w.sum()


def truncate(probs: np.ndarray, top_k: int = 0, top_p: float = 1.0) -> np.ndarray:
    """A categorical law after top-k (the k largest; ties toward the lower index; 0 = all) and then top-p (the
    smallest prefix of the largest whose mass reaches p; 1 = all), renormalised: the sampler's truncation, written
    with a Python loop over the sorted law as a reference for ``madloop.tokens.biased_log_probs``."""
    p = np.asarray(probs, np.float64)
    order = sorted(range(len(p)), key=lambda i: (-p[i], i))
    keep = order[:top_k] if 0 < top_k < len(p) else order
    mass = sum(p[i] for i in keep)
    if top_p < 1:
        kept, acc = [], 0.0
        for i in keep:
            kept.append(i)
            acc += p[i] / mass
            if acc >= top_p:
                break
        keep = kept
    out = np.zeros_like(p)
    out[keep] = p[keep]
    return out / out.sum()


def tempered_fresh_data_map(probs: np.ndarray, lam: float, n_real: int, n_synth: int, generations: int) -> np.ndarray:
    """[G + 1, V] the mean-field (infinitely many tokens, same mixing shares) path of the categorical fresh data
    loop sampled at temperature lam: q_0 = p, q_g = (n_r p + n_s temperature_map(q_{g-1}, lam)) / (n_r + n_s).

    Not the expectation of the finite loop (the temperature map is not linear), but its deterministic skeleton:
    without fresh data (n_r = 0) q_g ~ p^(lam^-g), which tends to the uniform law on the support for lam > 1 (heat
    death: Marchi et al. 2024) and to the argmax for lam < 1; fresh data pull it to a fixed point near p.
    """
    p = np.asarray(probs, np.float64)
    out = [p]
    for _ in range(generations):
        out.append((n_real * p + n_synth * temperature_map(out[-1], lam)) / (n_real + n_synth))
    return np.asarray(out)
