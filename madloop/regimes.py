"""Generation g's training set: the regime's real part and the pool policy's synthetic part, at fixed shapes.

Layout of every training set (generation 0 included): ``[real slots (n_real) | synthetic slots (S)]`` with
frequency weights, 0 marking an unused slot, so every generation has the same shapes and the loop scans.
S = n_synth (replace), G * n_synth (accumulate) or the subsample size (accumulate_subsample).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from madloop import config as C
from madloop.data import DataSource
from madloop.types import Data, Key, Weights


def pool_capacity(regime: C.RegimeConfig, generations: int) -> int:
    """Slots P of the synthetic pool buffer: n_synth (replace) or generations * n_synth (accumulate*)."""
    return regime.n_synth if regime.pool == "replace" else generations * regime.n_synth


def synth_slots(regime: C.RegimeConfig, generations: int) -> int:
    """Synthetic slots S of a training set."""
    if regime.pool == "accumulate_subsample":
        return C.subsample_size(regime)
    return pool_capacity(regime, generations)


def empty_pool(regime: C.RegimeConfig, generations: int, dim: int) -> tuple[Data, Weights]:
    """A pool buffer [P, d] of zeros with weights [P] of zeros."""
    p = pool_capacity(regime, generations)
    return jnp.zeros((p, dim), jnp.float32), jnp.zeros((p,), jnp.float32)


def add_to_pool(regime: C.RegimeConfig, pool: Data, pool_w: Weights, synth: Data, g: jax.Array) -> tuple[Data, Weights]:
    """Puts generation g - 1's n_synth samples [n_synth, d] into the pool for generation g (g >= 1).

    replace: the pool becomes these samples. accumulate*: they fill slots [(g-1) n_synth, g n_synth).
    """
    if regime.pool == "replace":
        return synth, jnp.ones_like(pool_w)
    start = (g - 1) * regime.n_synth
    pool = jax.lax.dynamic_update_slice(pool, synth, (start, 0))
    pool_w = jax.lax.dynamic_update_slice(pool_w, jnp.ones((regime.n_synth,), pool_w.dtype), (start,))
    return pool, pool_w


def synthetic_part(regime: C.RegimeConfig, key: Key, pool: Data, pool_w: Weights) -> tuple[Data, Weights]:
    """The synthetic part [S, d], [S] of a training set.

    accumulate_subsample draws S filled slots uniformly without replacement (Gumbel top-k over the filled
    slots); while fewer than S slots are filled, the extra picks are empty slots and keep weight 0.

    References:
        Kazdan et al. 2024, "Collapse or Thrive?", accumulate-subsample.
    """
    if regime.pool != "accumulate_subsample":
        return pool, pool_w
    size = C.subsample_size(regime)
    scores = jnp.where(pool_w > 0, jax.random.gumbel(key, pool_w.shape), -jnp.inf)
    _, idx = jax.lax.top_k(scores, size)
    return pool[idx], pool_w[idx]


@functools.singledispatch
def real_part(regime: C.RegimeConfig, key: Key, real: Data, source: DataSource) -> tuple[Data, Weights]:
    """The real part [n_real, d], [n_real] of generation g's training set (g >= 1), by regime type."""
    raise TypeError(f"unknown regime {type(regime).__name__}")


@real_part.register
def _(regime: C.FullySynthetic, key: Key, real: Data, source: DataSource) -> tuple[Data, Weights]:
    del key, source
    return real, jnp.zeros(real.shape[:1], real.dtype)


@real_part.register
def _(regime: C.SyntheticAugmentation, key: Key, real: Data, source: DataSource) -> tuple[Data, Weights]:
    del key, source
    return real, jnp.ones(real.shape[:1], real.dtype)


@real_part.register
def _(regime: C.FreshData, key: Key, real: Data, source: DataSource) -> tuple[Data, Weights]:
    fresh = source.sample(key, regime.n_real)
    return fresh, jnp.ones(real.shape[:1], real.dtype)


def training_set(
    x_real: Data, w_real: Weights, x_synth: Data, w_synth: Weights, real_weight: jax.Array | float
) -> tuple[Data, Weights]:
    """Concatenates both parts [n_real + S, d] with frequency weights [n_real + S].

    Each present real sample weighs ``real_weight`` times a synthetic one; the weights are then rescaled to
    sum to the number of samples present, so the relative weight never changes the effective sample size.
    Example: 2 real, 2 synthetic, real_weight 3 -> raw (3, 3, 1, 1), sum 8, count 4 -> (1.5, 1.5, .5, .5).
    """
    raw = jnp.concatenate([real_weight * w_real, w_synth])
    count = jnp.sum(w_real > 0) + jnp.sum(w_synth > 0)
    return jnp.concatenate([x_real, x_synth]), raw * (count / jnp.sum(raw))
