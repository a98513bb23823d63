"""A linear regression truth (``data=linear``): Gaussian features, a true weight vector, Gaussian label noise.

Rows are [x, y] (d + 1 columns): x ~ N(0, diag(variances)), y = x . w* + sigma eps. The supervised family
(``model=linear``) regresses the last column on the others; its synthetic sets are fresh features labelled by the
current model (Dohmatob, Feng & Kempe 2024, "Model Collapse Demystified: The Case of Regression"; Gerstgrasser et
al. 2024, "Is Model Collapse Inevitable?", Sec. 2).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from madloop import config as C
from madloop import rng
from madloop.data.toy import DataSource, check_fields
from madloop.mixture import Mixture, mixture_log_prob
from madloop.precision import float_dtype
from madloop.types import Data, Key


@dataclass(frozen=True)
class LinearData(C.DataConfig):
    """y = x . w* + noise * eps with x ~ N(0, diag(variances)) in ``dim`` dimensions; rows [x, y].

    Attributes:
        dim: d, the number of features.
        noise: sigma > 0, the sd of the label noise.
        weights: w* (d numbers); null = (1, ..., 1) / sqrt(d), so ||w*|| = 1.
        variances: the features' variances (d numbers > 0, a diagonal covariance); null = 1 each (isotropic).
    """

    dim: int = 10
    noise: float = 1.0
    weights: list[float] | None = None
    variances: list[float] | None = None


class LinearTruth(NamedTuple):
    """The regression truth.

    Attributes:
        weights: [d] w*.
        variances: [d] the features' variances (the diagonal of their covariance S).
        noise: sigma, the label noise sd.
        sample: ``sample(key, n, weights, noise) -> [n, d + 1]``: rows [x, x . weights + noise eps] with fresh
            features (``labelled``): the truth's samples and a fitted model's synthetic sets (the same key gives
            the same x and eps).
    """

    weights: jax.Array
    variances: jax.Array
    noise: float
    sample: Callable[..., Data]


def labelled(variances: jax.Array, key: Key, n: int, weights: jax.Array, noise: jax.Array | float) -> Data:
    """[n, d + 1] rows [x, x . weights + noise eps] with fresh features x ~ N(0, diag(variances)) [d]: the truth's
    samples (weights = w*, noise = sigma) and a fitted model's synthetic sets share this draw."""
    k_x, k_y = jax.random.split(key)
    x = rng.normal(k_x, (n, variances.shape[0])) * jnp.sqrt(variances)
    y = x @ weights + noise * rng.normal(k_y, (n,), x.dtype)
    return jnp.concatenate([x, y[:, None]], axis=1)


def true_labels(truth: LinearTruth, rows: Data) -> Data:
    """[n, d + 1]: rows [x, y] with y replaced by the noiseless label w* . x (the truth's most likely point)."""
    d = truth.weights.shape[0]
    return rows.at[:, d].set(rows[:, :d] @ truth.weights)


def linear_truth(cfg: LinearData) -> LinearTruth:
    """The truth of a validated config."""
    d = cfg.dim
    w = np.full(d, 1.0 / math.sqrt(d)) if cfg.weights is None else np.asarray(cfg.weights, float)
    variances = jnp.asarray(np.ones(d) if cfg.variances is None else np.asarray(cfg.variances, float), float_dtype())
    sample = functools.partial(labelled, variances)
    return LinearTruth(jnp.asarray(w, float_dtype()), variances, float(cfg.noise), sample)


def joint_gaussian(truth: LinearTruth) -> Mixture:
    """[x, y] ~ N(0, [[S, S w*], [w*^T S, w*^T S w* + sigma^2]]), S = diag(variances), as a one-component mixture."""
    w, s = np.asarray(truth.weights, float), np.asarray(truth.variances, float)
    d = w.shape[0]
    cov = np.zeros((d + 1, d + 1))
    cov[:d, :d] = np.diag(s)
    cov[:d, d] = cov[d, :d] = s * w
    cov[d, d] = w @ (s * w) + truth.noise**2
    dtype = float_dtype()
    return Mixture(jnp.ones((1,), dtype), jnp.zeros((1, d + 1), dtype), jnp.asarray(cov[None], dtype))


def linear_source(cfg: LinearData) -> DataSource:
    """The regression truth as a data source of [x, y] rows (its joint Gaussian gives the moments and density)."""
    truth = linear_truth(cfg)
    mix = joint_gaussian(truth)

    def sample(key: Key, n: int) -> Data:
        return truth.sample(key, n, truth.weights, truth.noise)

    return DataSource(
        cfg.dim + 1,
        sample,
        mix,
        mix.means[0],
        mix.covs[0],
        log_prob=functools.partial(mixture_log_prob, mix),
        project=functools.partial(true_labels, truth),
        linear=truth,
    )


def check_linear(d: LinearData) -> None:
    """Field checks of ``data=linear``: d weights, d positive variances, a noise sd > 0."""
    check_fields(d)
    C.positive("data.noise", d.noise, " (the label noise sd; the joint density needs it)")
    for key, values, low in (("data.weights", d.weights, None), ("data.variances", d.variances, 0.0)):
        if values is None:
            continue
        v = list(values)
        if len(v) != d.dim or not all(C.is_number(x) and (low is None or x > low) for x in v):
            need = "finite numbers" if low is None else "finite numbers > 0"
            raise C.ConfigError(key, v, f"must be data.dim={d.dim} {need}")


C.register("data", "linear", LinearData, build=linear_source, check=check_linear)
