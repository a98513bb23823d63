"""Independent float64 numpy references for the validation tier, vectorised over seeds, and the shared
standard-error assertions.

Nothing here imports madloop: each reference is written from the model's definition (docs/theory.md,
DESIGN.md section 1), so a shared bug cannot make both sides agree.
"""

from __future__ import annotations

import numpy as np
from threadpoolctl import threadpool_limits

Z = 4.5  # combined standard errors: with ~50 comparisons per tier, a false alarm below ~3e-4


def psd_sqrt(cov: np.ndarray) -> np.ndarray:
    """Symmetric square roots [..., d, d] of PSD matrices cov [..., d, d] by eigh (negative rounding clipped)."""
    vals, vecs = np.linalg.eigh(0.5 * (cov + np.swapaxes(cov, -1, -2)))
    return (vecs * np.sqrt(np.maximum(vals, 0.0))[..., None, :]) @ np.swapaxes(vecs, -1, -2)


def gaussian_loop(
    d: int,
    n: int,
    generations: int,
    seeds: int,
    *,
    estimator: str = "mle",
    pool: str = "replace",
    regime: str = "fully_synthetic",
    n_real: int | None = None,
    lam: float = 1.0,
    seed: int = 0,
    keep: tuple[int, ...] | None = None,
    sqrt=psd_sqrt,
    dtype=np.float64,
) -> dict[str, np.ndarray]:
    """The Gaussian fully synthetic loop, truth N(0, I_d), vectorised over seeds.

    Generation 0 fits ``n_real`` (default n) real samples; generation g >= 1 draws n samples of
    N(mu_{g-1}, lam Sigma_{g-1}) into the synthetic pool: ``replace`` (the newest n samples), ``accumulate`` (every
    synthetic sample so far) or ``accumulate_subsample`` (n samples drawn uniformly without replacement from the
    accumulated pool). The training set is the pool alone (``fully_synthetic``), the pool with generation 0's real
    set (``synthetic_augmentation``) or with n_real fresh real samples (``fresh_data``), each sample of weight 1.

    Args:
        d, n, generations, seeds: dimension, samples per generation, G, runs.
        estimator: ``mle`` (divide by N) or ``unbiased`` (N - 1).
        pool: replace | accumulate | accumulate_subsample.
        n_real: generation 0's real samples, and the fresh real samples per generation (default n).
        lam: sampling bias.
        seed: numpy seed.
        keep: generations whose statistics are returned (default: all).
        sqrt: the square root used to sample (a deliberately wrong one makes a power check).
        dtype: float64 (the reference) or float32 (a precision power check).

    Returns:
        {"trace": [S, len(keep)] tr Sigma_g / d, "logdet": [S, len(keep)] log det Sigma_g,
         "sqerr": [S, len(keep)] ||mu_g||^2}.
    """
    # One BLAS thread: batched small eigh with OpenBLAS's threads on a shared 2-core machine ran 50x slower.
    with threadpool_limits(1):
        return _gaussian_loop(d, n, generations, seeds, estimator, pool, regime, n_real, lam, seed, keep, sqrt, dtype)


def _gaussian_loop(d, n, generations, seeds, estimator, pool, regime, n_real, lam, seed, keep, sqrt, dtype):
    rng = np.random.default_rng(seed)
    keep = tuple(range(generations + 1)) if keep is None else keep
    out = {k: np.empty((seeds, len(keep)), np.float64) for k in ("trace", "logdet", "sqerr")}
    ddof = 1 if estimator == "unbiased" else 0

    def fit(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # x [S, N, d]
        mean = x.mean(axis=1)
        xc = x - mean[:, None, :]
        return mean, np.swapaxes(xc, 1, 2) @ xc / (x.shape[1] - ddof)

    def record(g: int, mean: np.ndarray, cov: np.ndarray) -> None:
        if g in keep:
            j = keep.index(g)
            out["trace"][:, j] = np.trace(cov, axis1=1, axis2=2) / d
            out["logdet"][:, j] = np.linalg.slogdet(cov.astype(np.float64))[1]
            out["sqerr"][:, j] = np.sum(mean.astype(np.float64) ** 2, axis=1)

    x0 = rng.standard_normal((seeds, n_real or n, d)).astype(dtype)
    mean, cov = fit(x0)
    record(0, mean, cov)
    pool_x = np.empty((seeds, 0, d), dtype)
    for g in range(1, generations + 1):
        z = rng.standard_normal((seeds, n, d)).astype(dtype)
        new = mean[:, None, :] + np.sqrt(dtype(lam)) * z @ np.swapaxes(sqrt(cov), -1, -2)
        if pool == "replace":
            train = new
        else:
            pool_x = np.concatenate([pool_x, new], axis=1)
            train = pool_x
            if pool == "accumulate_subsample" and pool_x.shape[1] > n:
                idx = np.argpartition(rng.random((seeds, pool_x.shape[1])), n, axis=1)[:, :n]
                train = np.take_along_axis(pool_x, idx[:, :, None], axis=1)
        if regime == "synthetic_augmentation":
            train = np.concatenate([x0, train], axis=1)
        elif regime == "fresh_data":
            train = np.concatenate([rng.standard_normal((seeds, n_real or n, d)).astype(dtype), train], axis=1)
        mean, cov = fit(train)
        record(g, mean, cov)
    return out


def mean_se(x: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Mean and its standard error along ``axis``."""
    return x.mean(axis=axis), x.std(axis=axis, ddof=1) / np.sqrt(x.shape[axis])


def median_se(x: np.ndarray, resamples: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Median over axis 0 of x [S, ...] and its bootstrap standard error (fixed seed)."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.shape[0], (resamples, x.shape[0]))
    boot = np.median(x[idx], axis=1)
    return np.median(x, axis=0), boot.std(axis=0, ddof=1)


def z_scores(a: np.ndarray, se_a: np.ndarray, b: np.ndarray, se_b: np.ndarray | float = 0.0) -> np.ndarray:
    """(a - b) / sqrt(se_a^2 + se_b^2)."""
    return (np.asarray(a) - np.asarray(b)) / np.sqrt(np.asarray(se_a) ** 2 + np.asarray(se_b) ** 2)


def agrees(a, se_a, b, se_b=0.0) -> bool:
    """True where every |z| < Z: a and b agree within Z combined standard errors."""
    return bool(np.all(np.abs(z_scores(a, se_a, b, se_b)) < Z))


def describe(label: str, a, se_a, b, se_b=0.0) -> str:
    """A one-line message with both sides and the z-scores, for assertion failures."""
    z = z_scores(a, se_a, b, se_b)
    a, b = np.atleast_1d(a), np.atleast_1d(b)
    got, ref = np.round(a, 3).tolist(), np.round(b, 3).tolist()
    return f"{label}: madloop {got} vs reference {ref}, z {np.round(z, 1).tolist()}"


def kde_trace_law(
    n_real: int, n_synth: int, generations: int, d: int, fully_synthetic: bool, bandwidth_n: int | None = None
) -> np.ndarray:
    """E tr Sigma_g / tr Sigma of the KDE loop with Scott's bandwidth, g = 0..generations (experiments/stability.py
    derives it): with N training samples, the kernel adds h^2 = N^(-2/(d+4)) times the unbiased covariance, so
    E tr S_{g+1} = k [n_r tr C + (n_s - 1) tr S_g + n_r n_s / N (D_g + tr S_g / n_s)] / N, k = 1 + h^2 N / (N - 1),
    D_{g+1} = (n_s / N)^2 (D_g + tr S_g / n_s), E tr C = (n_r - 1) / n_r tr Sigma; n_r = 0 after generation 0 in
    the fully synthetic loop. ``bandwidth_n``: the sample size the bandwidth is computed from (default N, the
    training set's; a power check passes n_r, a plausible bug)."""
    c = (n_real - 1) / n_real
    t = (1.0 + n_real ** (-2.0 / (d + 4)) * n_real / (n_real - 1)) * c
    dev = 0.0
    nr = 0 if fully_synthetic else n_real
    big_n = nr + n_synth
    k = 1.0 + (bandwidth_n or big_n) ** (-2.0 / (d + 4)) * big_n / (big_n - 1)
    out = [t]
    for _ in range(generations):
        between = nr * n_synth / big_n * (dev + t / n_synth)
        t, dev = k * (nr * c + (n_synth - 1) * t + between) / big_n, (n_synth / big_n) ** 2 * (dev + t / n_synth)
        out.append(t)
    return np.asarray(out)


def ring8(rng: np.random.Generator, n: int, radius: float = 2.0, std: float = 0.05) -> np.ndarray:
    """n samples [n, 2] of madloop's ``data=ring8`` (8 equal modes on a circle)."""
    angles = 2 * np.pi * rng.integers(0, 8, n) / 8
    return radius * np.stack([np.cos(angles), np.sin(angles)], axis=1) + std * rng.standard_normal((n, 2))


def sklearn_em_step(x: np.ndarray, weights: np.ndarray, means: np.ndarray, covs: np.ndarray, reg_covar: float):
    """One EM iteration of scikit-learn's GaussianMixture (full covariances) from the given parameters, float64.

    Returns:
        (weights [K], means [K, d], covariances [K, d, d]).
    """
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture

    gm = GaussianMixture(
        len(weights),
        reg_covar=reg_covar,
        max_iter=1,
        tol=0.0,
        weights_init=np.asarray(weights, np.float64) / np.sum(weights, dtype=np.float64),
        means_init=np.asarray(means, np.float64),
        precisions_init=np.linalg.inv(np.asarray(covs, np.float64)),
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm.fit(np.asarray(x, np.float64))
    return gm.weights_, gm.means_, gm.covariances_


def sklearn_gmm_loop(
    seed: int,
    n: int,
    generations: int,
    init_iters: int,
    iters: int,
    heldout: np.ndarray,
    components: int = 8,
    reuse_draws: bool = False,
    keep: tuple[int, ...] | None = None,
) -> np.ndarray:
    """One seed of the GMM fully synthetic loop on the ring of 8 with scikit-learn (k-means++ at generation 0,
    warm start, tol = 0 so every EM iteration runs, as in madloop). A fit that raises puts back a copy of the
    previous model (scikit-learn overwrites the parameters before raising). ``reuse_draws``: the published-script
    fault of an integer random_state, which reuses the same draws every generation (a power check).

    Returns:
        [len(keep)] held-out negative log-likelihood per sample at the generations ``keep`` (default all).
    """
    import copy
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture

    rng = np.random.default_rng(seed)
    state = seed if reuse_draws else np.random.RandomState(seed)
    gm = GaussianMixture(
        components, max_iter=init_iters, tol=0.0, reg_covar=1e-6, init_params="k-means++", warm_start=True
    )
    gm.set_params(random_state=state)
    keep = tuple(range(generations + 1)) if keep is None else keep
    nll = np.full(len(keep), np.nan)
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm.fit(ring8(rng, n))
        if 0 in keep:
            nll[keep.index(0)] = -gm.score(heldout)
        gm.set_params(max_iter=iters)
        for g in range(1, generations + 1):
            x, _ = gm.sample(n)
            previous = copy.deepcopy(gm)
            try:
                gm.fit(x)
            except ValueError:  # a covariance that cannot be factored: keep the previous model
                gm = previous
            if g in keep:  # scoring 1000 held-out points is most of a generation's cost
                nll[keep.index(g)] = -gm.score(heldout)
    return nll


def symlog(x: np.ndarray) -> np.ndarray:
    """sign(x) log(1 + |x|): the held-out NLL reaches 1e5 on collapsed seeds."""
    return np.sign(x) * np.log1p(np.abs(x))
