"""The supervised family (``model=linear``): least squares (optionally ridge) of a row's label on its features.

Rows are [x, y] (``data=linear``). Fitting is weighted least squares without an intercept; "sampling" a synthetic
set draws fresh features from the truth and labels them with the fitted model plus N(0, lam s^2) noise, s =
``model.noise`` (the truth's sigma by default), lam the sampling bias.

References:
    Dohmatob, Feng & Kempe 2024, "Model Collapse Demystified: The Case of Regression"; Gerstgrasser et al. 2024,
    "Is Model Collapse Inevitable?", Sec. 2 (linear regression under replace and accumulate).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import jax
import jax.numpy as jnp

from madloop import config as C
from madloop import linalg
from madloop.types import Data, GenerativeModel, Key, Knobs, Regression, Statistics, Weights

if TYPE_CHECKING:  # the data floor sits above the families: the truth is handed in with the source
    from madloop.data.linear import LinearTruth


@dataclass(frozen=True)
class LinearModel(C.ModelConfig):
    """Least squares of y on x (no intercept), with a ridge penalty.

    Attributes:
        ridge: r >= 0: w minimises sum_i w_i (y_i - x_i . w)^2 / sum_i w_i + r ||w||^2 (0 = ordinary least squares).
            Static: the statistics pool's fit takes no knobs.
        noise: s, the sd of the synthetic labels' noise; null = the truth's label noise (``data.noise``).
    """

    ridge: float = 0.0
    noise: float | None = None


class LinearParams(NamedTuple):
    """Attributes: weights [d], the fitted w."""

    weights: jax.Array


class LinearStats(NamedTuple):
    """Weighted sufficient statistics of rows [x, y].

    Attributes:
        count: total weight sum_i w_i.
        xtx: [d, d] sum_i w_i x_i x_i^T.
        xty: [d] sum_i w_i y_i x_i.
    """

    count: jax.Array
    xtx: jax.Array
    xty: jax.Array


def solve_psd(a: jax.Array, b: jax.Array) -> jax.Array:
    """x [d] with a x = b for symmetric positive definite a [d, d] (pivoted Cholesky and two triangular solves in
    plain XLA ops: madloop.linalg's reasons for no LAPACK custom calls)."""
    chol = linalg.pivoted_cholesky(a)  # a[perm][:, perm] = L L^T
    z = linalg.whiten(chol, b[:, None])  # L^-1 b[perm]
    # L^T u = z by back substitution: reversing rows and columns makes L^T lower triangular.
    u = linalg.solve_lower(chol.lower.T[::-1, ::-1], z[::-1])[::-1, 0]
    return jnp.zeros_like(u).at[chol.perm].set(u)  # x[perm] = u


def linear_stats(x: Data, w: Weights) -> LinearStats:
    """Statistics of rows x [n, d + 1] under frequency weights w [n]."""
    feats, y = x[:, :-1], x[:, -1]
    wf = w[:, None] * feats
    return LinearStats(jnp.sum(w), wf.T @ feats, wf.T @ y)


def merge_stats(a: LinearStats, b: LinearStats) -> LinearStats:
    """Statistics of the union of two weighted data sets."""
    return LinearStats(a.count + b.count, a.xtx + b.xtx, a.xty + b.xty)


def scale_stats(s: LinearStats, c: jax.Array | float) -> LinearStats:
    """Every weight times c."""
    return LinearStats(s.count * c, s.xtx * c, s.xty * c)


def fit_stats(ridge: float, s: LinearStats) -> LinearParams:
    """w = (X^T W X / n + r I)^-1 X^T W y / n, n = sum w (the normal equations of ``LinearModel``'s objective)."""
    n = jnp.where(s.count > 0, s.count, 1.0)
    d = s.xty.shape[0]
    return LinearParams(solve_psd(s.xtx / n + ridge * jnp.eye(d, dtype=s.xtx.dtype), s.xty / n))


def linear_family(cfg: LinearModel, source=None, scan=None) -> GenerativeModel:
    """The supervised family over the source's regression truth (``data=linear``)."""
    del scan
    truth: LinearTruth = source.linear
    noise = truth.noise if cfg.noise is None else float(cfg.noise)

    def init(key: Key, x: Data, w: Weights) -> LinearParams:
        del key, w
        return LinearParams(jnp.zeros((x.shape[1] - 1,), x.dtype))

    def fit(key: Key, params: LinearParams, x: Data, w: Weights, warm: bool, knobs: Knobs) -> LinearParams:
        del key, params, warm, knobs  # closed form
        return fit_stats(cfg.ridge, linear_stats(x, w))

    def sample(key: Key, params: LinearParams, n: int, knobs: Knobs) -> Data:
        # fresh features labelled by the model; the sampling bias scales the label noise's variance
        return truth.sample(key, n, params.weights, jnp.sqrt(knobs["lam"]) * noise)

    return GenerativeModel(
        init=init,
        fit=fit,
        sample=sample,
        statistics=Statistics(linear_stats, merge_stats, scale_stats, lambda s: fit_stats(cfg.ridge, s)),
        regression=Regression(lambda params: params.weights),
        warm_traced=True,  # closed form: warm is ignored
    )


def check(m: LinearModel) -> None:
    """Field checks of ``model=linear``."""
    C.non_negative("model.ridge", m.ridge, " (0 = ordinary least squares)")
    if m.noise is not None:
        C.non_negative("model.noise", m.noise, " (null = data.noise)")


def fits(m: LinearModel, cfg: C.Config, parts) -> None:
    """A regression truth, and enough samples for least squares without a ridge."""
    del cfg
    if parts.source.linear is None:
        raise C.ConfigError("model", "linear", "needs data=linear (rows [x, y] of a regression truth)")
    d = parts.source.dim - 1
    size, key = parts.smallest
    if m.ridge == 0 and size < d:
        raise C.ConfigError(key, size, f"must be >= data.dim={d} for least squares (or set model.ridge > 0)")


C.register("model", "linear", LinearModel, build=linear_family, check=check, fits=fits)
