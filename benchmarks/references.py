"""Reference implementations of the benchmarked loops, written the way published collapse scripts are: a Python
loop over seeds and generations, one fit and one sampling per seed per generation, with numpy or scikit-learn.

They compute the same loops as madloop (tests/test_benchmarks.py checks that both agree statistically on small
cases); the benchmark runner (benchmarks/run.py) times them against madloop in the same run.

Run one seed as its own process (how published sweeps launch them):
    python benchmarks/references.py gaussian --seed 3 --dim 2 --pool replace --generations 1000 --n 100
"""

from __future__ import annotations

import argparse
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
) -> np.ndarray:
    """One seed of the GMM fully synthetic loop with scikit-learn's ``GaussianMixture`` (k-means++ init, warm
    start): ``init_iters`` EM iterations at generation 0, ``iters`` per later generation (tol = 0, so every
    iteration runs, as in madloop). Returns the held-out negative log-likelihood per sample [G + 1].

    When a component loses its samples, scikit-learn raises instead of fitting; the loop then keeps the previous
    model for that generation and appends the generation to ``failures``.
    """
    failures = [] if failures is None else failures
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture

    rng = np.random.default_rng(seed)
    gm = GaussianMixture(
        components, max_iter=init_iters, tol=0.0, reg_covar=1e-6, init_params="k-means++", warm_start=True
    )
    gm.set_params(random_state=seed)
    nll = np.empty(generations + 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm.fit(ring8(rng, n))
        nll[0] = -gm.score(heldout)
        gm.set_params(max_iter=iters)
        for g in range(1, generations + 1):
            x, _ = gm.sample(n)
            try:
                gm.fit(x)
            except ValueError:  # a component lost its samples and sklearn cannot factor its covariance:
                failures.append(g)  # keep the previous generation's model (madloop floors it with reg_covar)
            nll[g] = -gm.score(heldout)
    return nll


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
