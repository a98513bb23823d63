"""Gaussian kernel density estimate with Scott's, Silverman's or a fixed bandwidth factor."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from madloop import config as C
from madloop import linalg, rng
from madloop.mixture import gaussian_log_prob
from madloop.models.gaussian import weighted_moments
from madloop.types import Data, Density, GenerativeModel, Key, Knobs, Moments, Weights


@dataclass(frozen=True)
class KDEModel(C.ModelConfig):
    """Gaussian KDE; ``bandwidth`` = ``scott`` | ``silverman`` | a positive factor (scipy's gaussian_kde)."""

    bandwidth: Any = "scott"


class KDEParams(NamedTuple):
    """Attributes: points [N, d]; weights [N] (sum to 1, 0 = unused slot); kernel: the kernel covariance H's
    pivoted Cholesky factorisation ([d, d] and [d])."""

    points: jax.Array
    weights: jax.Array
    kernel: linalg.PivotedCholesky


def bandwidth_factor(bandwidth: str | float, n_eff: jax.Array, d: int) -> jax.Array:
    """The factor that multiplies the data covariance's square root (scipy.stats.gaussian_kde's convention).

    References:
        Scott 1992, Multivariate Density Estimation, eq. 6.42: n^(-1/(d+4));
        Silverman 1986, Density Estimation, eq. 4.14: (n (d+2) / 4)^(-1/(d+4)).
    """
    if bandwidth == "scott":
        return n_eff ** (-1.0 / (d + 4))
    if bandwidth == "silverman":
        return (n_eff * (d + 2) / 4.0) ** (-1.0 / (d + 4))
    return jnp.asarray(float(bandwidth))


def _init(key: Key, x: Data, w: Weights) -> KDEParams:
    del key
    d = x.shape[1]
    identity = linalg.PivotedCholesky(jnp.eye(d, dtype=x.dtype), jnp.arange(d, dtype=jnp.int32))
    return KDEParams(x, w / jnp.sum(w), identity)


def _fit(cfg: KDEModel, key: Key, params: KDEParams, x: Data, w: Weights, warm: bool, knobs: Knobs) -> KDEParams:
    del key, params, warm, knobs
    # Frequency weights: the effective sample size is sum(w), as for the duplicated data set.
    n_eff = jnp.sum(w)
    _, cov = weighted_moments(x, w, unbiased=True)
    factor = bandwidth_factor(cfg.bandwidth, n_eff, x.shape[1])
    chol = linalg.pivoted_cholesky(cov)
    return KDEParams(x, w / n_eff, chol._replace(lower=factor * chol.lower))


def sample_kde(key: Key, params: KDEParams, n: int, lam: jax.Array | float) -> Data:
    """Picks a training point with probability ~ weight and adds kernel noise of covariance lam * H."""
    k_idx, k_noise = jax.random.split(key)
    # Inverse-CDF draw of the point index: O(n log N), where jax.random.categorical would draw n x N Gumbels.
    # A zero-weight slot has a flat CDF step and is never picked.
    cdf = jnp.cumsum(params.weights)
    u = jax.random.uniform(k_idx, (n,), dtype=cdf.dtype) * cdf[-1]
    idx = jnp.minimum(jnp.searchsorted(cdf, u, side="right"), cdf.shape[0] - 1)
    z = rng.normal(k_noise, (n, params.points.shape[1]), params.points.dtype)
    return params.points[idx] + z @ (jnp.sqrt(lam) * linalg.factor_matrix(params.kernel)).T


def _log_prob(params: KDEParams, x: Data) -> jax.Array:
    # log sum_j w_j N(x; p_j, H) = logsumexp_j [log w_j + log N(x - p_j; 0, H)]
    per_point = jax.vmap(lambda p: gaussian_log_prob(x, p, params.kernel), out_axes=1)(params.points)  # [n, N]
    return jax.nn.logsumexp(per_point + jnp.log(params.weights), axis=1)


def _moments(params: KDEParams) -> tuple[jax.Array, jax.Array]:
    mean = params.weights @ params.points
    xc = params.points - mean
    kernel = linalg.factor_matrix(params.kernel)
    return mean, (params.weights[:, None] * xc).T @ xc + kernel @ kernel.T


def _sample(key: Key, params: KDEParams, n: int, knobs: Knobs) -> Data:
    return sample_kde(key, params, n, knobs["lam"])


def kde_family(cfg: KDEModel, source=None, scan=None) -> GenerativeModel:
    """The KDE family: its rows are its parameters; a density and exact moments."""
    del source, scan
    return GenerativeModel(
        init=_init,
        fit=functools.partial(_fit, cfg),
        sample=_sample,
        density=Density(_log_prob),
        moments=Moments(_moments),
        warm_traced=True,  # closed form: warm is ignored
    )


def check(m: KDEModel) -> None:
    """Field checks of ``model=kde``."""
    bw: Any = m.bandwidth
    if isinstance(bw, str):
        C.choice("model.bandwidth", bw, ("scott", "silverman"))
    else:
        C.positive("model.bandwidth", bw, " or one of scott, silverman")


def fits(m: KDEModel, cfg: C.Config, parts) -> None:
    """The kernel's covariance is the bandwidth factor squared times the data's: >= 2 samples in the smallest
    training set (one sample gave a zero or NaN kernel, and nll of NaN or 4e17 under finite = 1)."""
    del m, cfg
    size, key = parts.smallest
    if size < 2:
        raise C.ConfigError(key, size, "must be >= 2 (the kernel's covariance scales the data's)")


C.register("model", "kde", KDEModel, build=kde_family, check=check, fits=fits)
