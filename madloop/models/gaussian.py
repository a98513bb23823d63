"""Full-covariance Gaussian family with the MLE or unbiased covariance estimator."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp

from madloop import _xla, linalg
from madloop import config as C
from madloop.mixture import gaussian_log_prob
from madloop.types import Data, Density, GenerativeModel, Key, Knobs, Moments, Statistics, Weights


@dataclass(frozen=True)
class GaussianModel(C.ModelConfig):
    """Full-covariance Gaussian; ``estimator`` = ``mle`` (divide by n) or ``unbiased`` (divide by n - 1)."""

    estimator: str = "mle"


class GaussianParams(NamedTuple):
    """Attributes: mean [d]; cov [d, d]."""

    mean: jax.Array
    cov: jax.Array


def weighted_moments(x: Data, w: Weights, unbiased: bool) -> tuple[jax.Array, jax.Array]:
    """Mean [d] and covariance [d, d] of x [n, d] under frequency weights w [n].

    Frequency weights make a sample of weight 2 count as two copies, so the unbiased estimator divides by
    sum(w) - 1 and the fit equals the fit on duplicated data. Zero weights drop a sample.
    """
    params = _fit_stats(unbiased, gaussian_stats(x, w))
    return params.mean, params.cov


# How the loop's small products are written, measured on the 2-core x86 CPU (jax 0.10.2, the Gaussian fully
# synthetic loop, 1000 seeds x 1000 generations, n = 100; docs/benchmarks.md). XLA's CPU backend runs batched
# dots of d x d factors with [d, n] draws at 3-15 GFLOP/s; the same sums as broadcast products reduced over a
# short axis are loop fusions, and were faster:
# - the factor applied to the draws (L z), for 3 <= d <= 20: 4.4-4.8 s -> 2.5-2.9 s at d = 4, 8.5-9.6 s ->
#   6.7-7.9 s at d = 10; 1.06 s -> 1.11 s at d = 2 and 2x slower at d = 64, which keep the dot. The draws are
#   materialised first (``_xla.materialised``), or XLA computes each normal again for each row of the factor.
# - the weighted mean and scatter, for d <= 4: 1.29 s -> 1.05 s at d = 2, 2.2 s -> 1.44 s at d = 3; slower at
#   d = 10 (8.7 s -> 11 s), which keeps the dots. Their sums run over the n samples, a long axis that XLA reduces
#   in stages, writing the [n, d, d] products to a buffer first (at d = 4 twice the dot path's temporaries; the
#   factor's sums run over the short axis d and write nothing more). So only for n <= ELEMENTWISE_STATS_MAX_N:
#   a large accumulated pool or a KDE's whole training set keeps the dots.
# On other backends (not measured) the dots stay. Either way the sums are the same up to float rounding.
ELEMENTWISE_FACTOR_DIMS = (3, 20)
ELEMENTWISE_STATS_MAX_DIM = 4
ELEMENTWISE_STATS_MAX_N = 2048


def _on_cpu() -> bool:
    return jax.default_backend() == "cpu"


def sample_gaussian(key: Key, params: GaussianParams, n: int, lam: jax.Array | float) -> Data:
    """n samples [n, d] from N(mean, lam * cov); any PSD cov, collapsed (singular) included (pivoted Cholesky).

    The draws are made as z [d, n] and returned as (sqrt(lam) L z)^T: vmapped over 1000 seeds on CPU, draws laid
    out [n, d] with a small d made XLA emit the normal transform over a short innermost axis, 1.7x slower at
    d = 10 and 1.5x at d = 2 (benchmarks/run.py's Gaussian case; jax 0.10.2).
    """
    d = params.mean.shape[0]
    z = jax.random.normal(key, (d, n), dtype=params.mean.dtype)
    # sqrt(lam) scales the d x d factor, not the draws (one fewer pass over the largest array).
    factor = jnp.sqrt(lam) * linalg.sqrt_factor(params.cov)
    lo, hi = ELEMENTWISE_FACTOR_DIMS
    if lo <= d <= hi and _on_cpu():
        z = _xla.materialised(z)
        return params.mean + jnp.sum(factor[:, :, None] * z[None, :, :], axis=1).T
    return params.mean + jnp.einsum("ij,jn->ni", factor, z)


class GaussianStats(NamedTuple):
    """Weighted sufficient statistics (Chan et al.'s pairwise form, stable in float32).

    Attributes:
        count: total weight.
        mean: [d] weighted mean (0 when count is 0).
        scatter: [d, d] weighted scatter about the mean, sum_i w_i (x_i - mean)(x_i - mean)^T.
    """

    count: jax.Array
    mean: jax.Array
    scatter: jax.Array


def gaussian_stats(x: Data, w: Weights) -> GaussianStats:
    """Statistics of x [n, d] under frequency weights w [n]."""
    count = jnp.sum(w)
    safe = jnp.where(count > 0, count, 1.0)
    if x.shape[-1] <= ELEMENTWISE_STATS_MAX_DIM and x.shape[0] <= ELEMENTWISE_STATS_MAX_N and _on_cpu():
        mean = jnp.sum(w[:, None] * x, axis=0) / safe
        xc = x - mean
        return GaussianStats(count, mean, jnp.sum((w[:, None] * xc)[:, :, None] * xc[:, None, :], axis=0))
    mean = (w @ x) / safe
    xc = x - mean
    return GaussianStats(count, mean, (w[:, None] * xc).T @ xc)


def merge_stats(a: GaussianStats, b: GaussianStats) -> GaussianStats:
    """Statistics of the union of two weighted data sets.

    References:
        Chan, Golub & LeVeque 1979, "Updating formulae and a pairwise algorithm for computing sample
        variances": n = n_a + n_b, delta = mean_b - mean_a, mean = mean_a + delta n_b / n,
        M = M_a + M_b + delta delta^T n_a n_b / n.
    """
    count = a.count + b.count
    safe = jnp.where(count > 0, count, 1.0)
    delta = b.mean - a.mean
    mean = a.mean + delta * (b.count / safe)
    scatter = a.scatter + b.scatter + jnp.outer(delta, delta) * (a.count * b.count / safe)
    return GaussianStats(count, mean, scatter)


def scale_stats(s: GaussianStats, c: jax.Array | float) -> GaussianStats:
    """The statistics with every weight multiplied by c."""
    return GaussianStats(s.count * c, s.mean, s.scatter * c)


def _fit_stats(unbiased: bool, s: GaussianStats) -> GaussianParams:
    return GaussianParams(s.mean, s.scatter / (s.count - 1.0 if unbiased else s.count))


def _init(key: Key, x: Data, w: Weights) -> GaussianParams:
    del key, w
    d = x.shape[1]
    return GaussianParams(jnp.zeros((d,), x.dtype), jnp.eye(d, dtype=x.dtype))


def _fit(unbiased: bool, key: Key, params: GaussianParams, x: Data, w: Weights, warm: bool, knobs: Knobs):
    del key, params, warm, knobs  # closed form: no iterations, nothing to warm-start
    return GaussianParams(*weighted_moments(x, w, unbiased))


def _sample(key: Key, params: GaussianParams, n: int, knobs: Knobs) -> Data:
    return sample_gaussian(key, params, n, knobs["lam"])


def _log_prob(params: GaussianParams, x: Data) -> jax.Array:
    return gaussian_log_prob(x, params.mean, linalg.pivoted_cholesky(params.cov))


def _moments(params: GaussianParams) -> tuple[jax.Array, jax.Array]:
    return params.mean, params.cov


def gaussian_family(cfg: GaussianModel, source=None, scan=None) -> GenerativeModel:
    """The Gaussian family: closed-form fit, a density, exact moments and sufficient statistics."""
    del source, scan
    unbiased = cfg.estimator == "unbiased"
    return GenerativeModel(
        init=_init,
        fit=functools.partial(_fit, unbiased),
        sample=_sample,
        density=Density(_log_prob),
        moments=Moments(_moments, gaussian=True),
        statistics=Statistics(gaussian_stats, merge_stats, scale_stats, functools.partial(_fit_stats, unbiased)),
        warm_traced=True,  # closed form: warm is ignored
    )


def check(m: GaussianModel) -> None:
    """Field checks of ``model=gaussian``."""
    C.choice("model.estimator", m.estimator, ("mle", "unbiased"))


def fits(m: GaussianModel, cfg: C.Config, parts) -> None:
    """A covariance needs >= 2 samples in the smallest training set."""
    del m, cfg
    size, key = parts.smallest
    if size < 2:
        raise C.ConfigError(key, size, "must be >= 2 to fit a covariance")


C.register("model", "gaussian", GaussianModel, build=gaussian_family, check=check, fits=fits)
