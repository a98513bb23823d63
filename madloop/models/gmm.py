"""Gaussian mixture family: weighted EM as a scan, k-means++ seeding, warm start, covariance floor."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import jax
import jax.numpy as jnp

from madloop import config as C
from madloop import linalg
from madloop.mixture import Mixture, component_log_prob, mixture_log_prob, mixture_moments, sample_mixture
from madloop.types import Data, Density, GenerativeModel, Key, Knobs, Moments, Weights


@dataclass(frozen=True)
class GMMModel(C.ModelConfig):
    """Gaussian mixture fitted by weighted EM.

    ``init_iters`` EM iterations for a fit from scratch (generation 0, or every generation without warm start),
    ``iters`` per warm-started generation; ``reg_covar`` is added to every component covariance (floor).
    """

    components: int = 8
    init_iters: int = 100
    iters: int = 10
    reg_covar: float = 1e-6
    init: str = "kmeans++"


def kmeans_pp_centers(key: Key, x: Data, w: Weights, k: int) -> jax.Array:
    """k-means++ seeding [k, d] under frequency weights: each next centre is drawn with prob. ~ w * D^2.

    References:
        Arthur & Vassilvitskii 2007, "k-means++: The Advantages of Careful Seeding", Sec. 2.2.
    """
    keys = jax.random.split(key, k)
    first = x[jax.random.categorical(keys[0], jnp.log(w))]
    d2 = jnp.sum((x - first) ** 2, axis=1)

    def pick(d2: jax.Array, key: Key) -> tuple[jax.Array, jax.Array]:
        # If every weighted point already coincides with a centre, fall back to weight-proportional draws.
        score = jnp.where(jnp.sum(w * d2) > 0, w * d2, w)
        centre = x[jax.random.categorical(key, jnp.log(score))]
        return jnp.minimum(d2, jnp.sum((x - centre) ** 2, axis=1)), centre

    _, rest = jax.lax.scan(pick, d2, keys[1:])
    return jnp.concatenate([first[None], rest], axis=0)


def random_centers(key: Key, x: Data, w: Weights, k: int) -> jax.Array:
    """k distinct data points [k, d] drawn without replacement with prob. ~ w (Gumbel top-k)."""
    gumbel = jax.random.gumbel(key, w.shape, dtype=x.dtype)
    _, idx = jax.lax.top_k(jnp.log(w) + gumbel, k)
    return x[idx]


def m_step(x: Data, resp: jax.Array, prev: Mixture, reg_covar: float) -> Mixture:
    """Weighted M-step. resp [n, K] already multiplied by the sample weights.

    A component whose total responsibility falls below 1e-6 of the data keeps its previous mean and
    covariance (its weight goes to ~0), instead of dividing by zero as a plain M-step would.
    """
    nk = jnp.sum(resp, axis=0)  # [K]
    total = jnp.sum(nk)
    alive = nk > 1e-6 * total
    safe = jnp.where(alive, nk, 1.0)
    means = (resp.T @ x) / safe[:, None]
    xc = x[None, :, :] - means[:, None, :]  # [K, n, d]
    covs = jnp.einsum("nk,kni,knj->kij", resp, xc, xc) / safe[:, None, None]
    eye = jnp.eye(x.shape[1], dtype=x.dtype)
    covs = covs + reg_covar * eye
    # reg_covar is lost in rounding when a component spans far modes (entries ~12: float32 spacing ~1e-6): its
    # determinant cancels to 0 and its log-densities are NaN (benchmarks/gmm_torch.py, 256 seeds x 200
    # generations). Such a component (a zero pivot) gets 4x the rank threshold on its diagonal; every other
    # component's covariance is left exactly as it was.
    singular = jnp.any(jnp.diagonal(linalg.pivoted_cholesky(covs).lower, axis1=-2, axis2=-1) <= 0, axis=-1)  # [K]
    floor = 4.0 * linalg.pivot_tolerance(covs)  # [K]
    covs = jnp.where(singular[:, None, None], covs + floor[:, None, None] * eye, covs)
    means = jnp.where(alive[:, None], means, prev.means)
    covs = jnp.where(alive[:, None, None], covs, prev.covs)
    weights = jnp.maximum(nk, jnp.finfo(x.dtype).tiny) / total
    return Mixture(weights / jnp.sum(weights), means, covs)


def em_step(mix: Mixture, x: Data, w: Weights, reg_covar: float) -> Mixture:
    """One EM iteration on x [n, d] with frequency weights w [n].

    References:
        Dempster, Laird & Rubin 1977; Bishop 2006, PRML eqs. 9.23-9.27 (with weighted sums).
    """
    log_r = component_log_prob(mix, x)
    resp = jnp.exp(log_r - jax.nn.logsumexp(log_r, axis=1, keepdims=True)) * w[:, None]
    return m_step(x, resp, mix, reg_covar)


def _init(cfg: GMMModel, key: Key, x: Data, w: Weights) -> Mixture:
    seed = kmeans_pp_centers if cfg.init == "kmeans++" else random_centers
    centres = seed(key, x, w, cfg.components)
    # Hard-assign each point to its nearest centre and take one M-step, as scikit-learn does after seeding.
    d2 = jnp.sum((x[:, None, :] - centres[None]) ** 2, axis=-1)
    resp = jax.nn.one_hot(jnp.argmin(d2, axis=1), cfg.components, dtype=x.dtype) * w[:, None]
    d = x.shape[1]
    prev = Mixture(
        jnp.full((cfg.components,), 1.0 / cfg.components, x.dtype),
        centres,
        jnp.broadcast_to(jnp.eye(d, dtype=x.dtype), (cfg.components, d, d)),
    )
    return m_step(x, resp, prev, cfg.reg_covar)


def _fit(cfg: GMMModel, key: Key, params: Mixture, x: Data, w: Weights, warm: bool | jax.Array, knobs: Knobs):
    del key, knobs
    if isinstance(warm, bool):
        iters = cfg.iters if warm else cfg.init_iters
    else:  # traced (the loop's one fit for every generation): one EM loop is compiled, its count selected
        iters = jnp.where(warm, cfg.iters, cfg.init_iters)
    return jax.lax.fori_loop(0, iters, lambda _, m: em_step(m, x, w, cfg.reg_covar), params)


def _sample(key: Key, params: Mixture, n: int, knobs: Knobs) -> Data:
    return sample_mixture(key, params, n, knobs["lam"])


def gmm_family(cfg: GMMModel, source=None, scan=None) -> GenerativeModel:
    """The Gaussian mixture family: weighted EM, a density and exact moments."""
    del source, scan
    return GenerativeModel(
        init=functools.partial(_init, cfg),
        fit=functools.partial(_fit, cfg),
        sample=_sample,
        density=Density(mixture_log_prob),
        moments=Moments(mixture_moments),
        warm_traced=True,  # EM's iteration count is selected by a traced warm
    )


def check(m: GMMModel) -> None:
    """Field checks of ``model=gmm``."""
    C.int_at_least("model.components", m.components, 1)
    C.int_at_least("model.init_iters", m.init_iters, 1)
    C.int_at_least("model.iters", m.iters, 1)
    if not C.is_number(m.reg_covar) or m.reg_covar < 0:
        raise C.ConfigError("model.reg_covar", m.reg_covar, "must be a finite number >= 0")
    C.choice("model.init", m.init, ("kmeans++", "random"))


def fits(m: GMMModel, cfg: C.Config, parts) -> None:
    """K components need at least K samples in the smallest training set."""
    del cfg
    size = parts.smallest[0]
    if m.components > size:
        raise C.ConfigError("model.components", m.components, f"must be <= the smallest training set ({size} samples)")


C.register("model", "gmm", GMMModel, build=gmm_family, check=check, fits=fits)
