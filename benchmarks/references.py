"""Reference implementations of the benchmarked loops, of two kinds.

- **Published-script style** (``gaussian_loop``, ``gmm_loop`` with ``restore=False``): a Python loop over seeds and
  generations, one fit and one sampling per seed per generation, with numpy or scikit-learn, as published collapse
  scripts are written. Kept so that the table shows what researchers run today.
- **Competent** (``gaussian_loop_vectorised``, ``gmm_loop`` with ``restore=True``): what a careful user would write
  for the same algorithm: float64 numpy vectorised over seeds (batched square roots, one draw for every seed), an
  accumulating pool kept as the same sufficient statistics madloop keeps (running count, mean and scatter), and a
  scikit-learn loop that really restores the previous model when a fit raises.

All compute the same loops as madloop (tests/test_benchmarks.py checks that they agree statistically on small
cases); the benchmark runner (benchmarks/run.py) times them against madloop in the same run and prints an
agreement column (benchmarks/agreement.py).

Run one seed as its own process (how published sweeps launch them):
    python benchmarks/references.py gaussian --seed 3 --dim 2 --pool replace --generations 1000 --n 100
"""

from __future__ import annotations

import argparse
import copy
import time
import warnings

import numpy as np


def gaussian_loop(seed: int, dim: int, n: int, generations: int, pool: str) -> np.ndarray:
    """One seed of the Gaussian fully synthetic loop with the MLE fit; trace ratios [G + 1] (truth N(0, I)).

    Generation 0 is fitted on n real samples; generation g >= 1 on the n samples drawn from generation g - 1
    (``replace``) or on every sample drawn so far (``accumulate``: the real set is not reused, as in madloop's
    fully synthetic loop).
    """
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dim))
    mean, cov = x.mean(0), np.cov(x.T, bias=True).reshape(dim, dim)
    ratios = np.empty(generations + 1)
    ratios[0] = np.trace(cov) / dim
    buffer = np.empty((generations * n, dim)) if pool == "accumulate" else None
    for g in range(1, generations + 1):
        x = rng.multivariate_normal(mean, cov, size=n)
        if buffer is not None:
            buffer[(g - 1) * n : g * n] = x
            x = buffer[: g * n]
        mean, cov = x.mean(0), np.cov(x.T, bias=True).reshape(dim, dim)
        ratios[g] = np.trace(cov) / dim
    return ratios


Stats = tuple[float, np.ndarray, np.ndarray]  # count, mean [S, d], scatter [S, d, d] about the mean


def stats(x: np.ndarray) -> Stats:
    """Count, mean [S, d] and scatter [S, d, d] of x [S, m, d], per seed."""
    mean = x.mean(axis=1)
    xc = x - mean[:, None, :]
    return float(x.shape[1]), mean, xc.transpose(0, 2, 1) @ xc  # batched BLAS (np.einsum is 10x slower)


def merge_stats(a: Stats, b: Stats) -> Stats:
    """The statistics of the union of two sample sets, per seed (Chan, Golub & LeVeque 1979's pairwise update:
    delta = mean_b - mean_a, mean = mean_a + delta n_b / n, M = M_a + M_b + delta delta^T n_a n_b / n)."""
    (ca, ma, sa), (cb, mb, sb) = a, b
    c = ca + cb
    delta = mb - ma
    return c, ma + delta * (cb / c), sa + sb + np.einsum("si,sj->sij", delta, delta) * (ca * cb / c)


def gaussian_loop_vectorised(
    seed: int, seeds: int, dim: int, n: int, generations: int, pool: str, sqrt: str = "cholesky"
) -> np.ndarray:
    """Every seed of the Gaussian fully synthetic loop (MLE) at once, in float64; trace ratios [seeds, G + 1].

    The same algorithm as ``gaussian_loop`` and as madloop, written the way a competent numpy user would: each
    generation is one batched square root of the [seeds, d, d] covariances, one [seeds, n, d] normal draw and one
    batched scatter matrix. ``accumulate`` keeps the pool of every synthetic sample so far as its sufficient
    statistics (count, mean, scatter), merged with Chan et al.'s pairwise update, exactly as madloop's
    ``loop.stats_pool`` does, so both sides do O(n) work per generation (a full refit on the pool would be a
    different, O(g n) algorithm).

    Args:
        seed: seed of the one numpy generator that draws for every seed.
        seeds: number of independent loops S.
        dim: d. n: samples per generation. generations: G. pool: ``replace`` or ``accumulate``.
        sqrt: ``cholesky`` (batched LAPACK; falls back to ``eigh`` for a generation where some seed's covariance
            is not numerically positive definite) or ``eigh`` (V diag(sqrt(max(w, 0))), exact for any PSD input,
            about 10x slower at d = 10).

    Returns:
        [seeds, G + 1] trace ratios tr(Sigma_g) / d (truth N(0, I)).
    """
    rng = np.random.default_rng(seed)

    def root(cov: np.ndarray) -> np.ndarray:  # [S, d, d] -> F with F F^T = cov
        if sqrt == "cholesky":
            try:
                return np.linalg.cholesky(cov)
            except np.linalg.LinAlgError:  # some seed's covariance is not numerically positive definite
                pass
        w, v = np.linalg.eigh(cov)
        return v * np.sqrt(np.maximum(w, 0.0))[:, None, :]

    count, mean, scatter = stats(rng.standard_normal((seeds, n, dim)))
    cov = scatter / count
    ratios = np.empty((seeds, generations + 1))
    ratios[:, 0] = np.trace(cov, axis1=1, axis2=2) / dim
    pool_stats = None  # accumulate: (count, mean, scatter) of every synthetic sample so far
    for g in range(1, generations + 1):
        x = mean[:, None, :] + rng.standard_normal((seeds, n, dim)) @ root(cov).transpose(0, 2, 1)
        new = stats(x)
        if pool == "accumulate" and pool_stats is not None:
            new = merge_stats(pool_stats, new)
        pool_stats = new
        count, mean, scatter = new
        cov = scatter / count
        ratios[:, g] = np.trace(cov, axis1=1, axis2=2) / dim
    return ratios


def ring8(rng: np.random.Generator, n: int, radius: float = 2.0, std: float = 0.05) -> np.ndarray:
    """n samples [n, 2] of madloop's ``data=ring8`` (8 equal modes on a circle)."""
    angles = 2 * np.pi * rng.integers(0, 8, n) / 8
    centres = radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    return centres + std * rng.standard_normal((n, 2))


def gmm_loop(
    seed: int,
    n: int,
    generations: int,
    init_iters: int,
    iters: int,
    heldout: np.ndarray,
    components: int = 8,
    failures: list[int] | None = None,
    competent: bool = True,
) -> np.ndarray:
    """One seed of the GMM fully synthetic loop with scikit-learn's ``GaussianMixture`` (k-means++ init, warm
    start): ``init_iters`` EM iterations at generation 0, ``iters`` per later generation (tol = 0, so every
    iteration runs, as in madloop). Returns the held-out negative log-likelihood per sample [G + 1].

    ``competent=False`` is the published-script style (this benchmark's reference until 2026-11), with two faults
    that ``competent=True`` fixes:

    - An integer ``random_state`` makes ``GaussianMixture.sample`` build a new ``RandomState(seed)`` on every call,
      so every generation reuses the same normal draws and component choices. The competent loop passes one
      ``RandomState`` instance, whose stream advances.
    - When a component's covariance cannot be factored, scikit-learn raises, but only after it has overwritten
      ``weights_``, ``means_``, ``covariances_`` and ``precisions_cholesky_`` with the failed iteration's values;
      catching the error carries on from that half-written model. The competent loop deep-copies the model before
      each fit and puts the copy back when the fit raises, so that generation really keeps the previous model.

    Either way each failed generation is appended to ``failures``.
    """
    failures = [] if failures is None else failures
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture

    rng = np.random.default_rng(seed)
    gm = GaussianMixture(
        components, max_iter=init_iters, tol=0.0, reg_covar=1e-6, init_params="k-means++", warm_start=True
    )
    gm.set_params(random_state=np.random.RandomState(seed) if competent else seed)
    nll = np.empty(generations + 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm.fit(ring8(rng, n))
        nll[0] = -gm.score(heldout)
        gm.set_params(max_iter=iters)
        for g in range(1, generations + 1):
            x, _ = gm.sample(n)
            gm, failed = refit_or_keep(gm, x, restore=competent)
            if failed:
                failures.append(g)
            nll[g] = -gm.score(heldout)
    return nll


def refit_or_keep(gm, x: np.ndarray, restore: bool):
    """Refits a warm-started scikit-learn mixture on x [n, d]; returns (the model to carry on with, whether it failed).

    A fit that raises has already overwritten the model's parameters; ``restore=True`` returns a deep copy taken
    before the fit (the previous model, really kept), ``restore=False`` the half-written model (published style).
    (madloop keeps a component that lost its data at its previous mean and covariance with weight ~0 instead.)
    """
    previous = copy.deepcopy(gm) if restore else gm
    try:
        gm.fit(x)
    except ValueError:  # "ill-defined empirical covariance": a component's covariance cannot be factored
        return previous, True
    return gm, False


def main() -> None:
    p = argparse.ArgumentParser(description="one seed of a reference loop, as its own process")
    p.add_argument("loop", choices=["gaussian"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dim", type=int, default=2)
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--generations", type=int, default=1000)
    p.add_argument("--pool", choices=["replace", "accumulate"], default="replace")
    a = p.parse_args()
    t0 = time.perf_counter()
    ratios = gaussian_loop(a.seed, a.dim, a.n, a.generations, a.pool)
    print(f"{ratios[-1]:.6g} {time.perf_counter() - t0:.4f}")


if __name__ == "__main__":
    main()
