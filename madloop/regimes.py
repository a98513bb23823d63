"""Generation g's training set: the regime's real part and the pool policy's synthetic part, at fixed shapes.

Layout of every training set (generation 0 included): ``[real slots | synthetic slots (S)]`` padded to a fixed
size T with frequency weights, 0 marking an unused slot, so every generation has the same shapes and the loop
scans. S = n_synth (replace), G * n_synth (accumulate) or the subsample size (accumulate_subsample). The real
slots are n_real, except in the fully synthetic loop, which has none after generation 0: there T = max(n_real, S)
and generation 0's real set is padded to T.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from madloop import config as C
from madloop.data import DataSource
from madloop.types import Data, GenerativeModel, Key, Weights


def pool_capacity(regime: C.RegimeConfig, generations: int) -> int:
    """Slots P of the synthetic pool buffer: n_synth (replace) or generations * n_synth (accumulate*)."""
    return regime.n_synth if regime.pool == "replace" else generations * regime.n_synth


def synth_slots(regime: C.RegimeConfig, generations: int) -> int:
    """Synthetic slots S of a training set."""
    if regime.pool == "accumulate_subsample":
        return C.subsample_size(regime)
    return pool_capacity(regime, generations)


def train_size(regime: C.RegimeConfig, generations: int) -> int:
    """T, the fixed number of slots of every training set."""
    s = synth_slots(regime, generations)
    return max(regime.n_real, s) if isinstance(regime, C.FullySynthetic) else regime.n_real + s


def pad(x: Data, w: Weights, size: int) -> tuple[Data, Weights]:
    """Appends zero-weight rows so x [n, d], w [n] become [size, d], [size]."""
    extra = size - x.shape[0]
    return jnp.pad(x, ((0, extra), (0, 0))), jnp.pad(w, (0, extra))


def empty_pool(regime: C.RegimeConfig, generations: int, dim: int) -> tuple[Data, Weights]:
    """A pool buffer [P, d] of zeros with weights [P] of zeros."""
    p = pool_capacity(regime, generations)
    return jnp.zeros((p, dim)), jnp.zeros((p,))  # the run's precision (float64 under loop.precision=float64)


def count_mask(size: int, count: jax.Array | int) -> Weights:
    """Weights [size]: 1 for the first ``count`` slots, 0 after (a count knob as a mask over a static maximum)."""
    return (jnp.arange(size) < count).astype(jnp.zeros(()).dtype)


def add_to_pool(
    regime: C.RegimeConfig, pool: Data, pool_w: Weights, synth: Data, g: jax.Array, count: jax.Array | int
) -> tuple[Data, Weights]:
    """Puts generation g - 1's samples [n_synth, d] into the pool for generation g (g >= 1); only the first
    ``count`` of them get weight (a swept ``n_synth``; ``count = n_synth`` otherwise).

    replace: the pool becomes these samples. accumulate*: they fill slots [(g-1) n_synth, g n_synth).
    """
    synth_w = count_mask(regime.n_synth, count)
    if regime.pool == "replace":
        return synth, synth_w
    start = (g - 1) * regime.n_synth
    pool = jax.lax.dynamic_update_slice(pool, synth, (start, 0))
    pool_w = jax.lax.dynamic_update_slice(pool_w, synth_w, (start,))
    return pool, pool_w


def synthetic_part(
    regime: C.RegimeConfig, key: Key, pool: Data, pool_w: Weights, count: jax.Array | int
) -> tuple[Data, Weights]:
    """The synthetic part [S, d], [S] of a training set.

    accumulate_subsample draws S filled slots uniformly without replacement (Gumbel top-k over the filled
    slots); while fewer than S slots are filled, the extra picks are empty slots and keep weight 0. When the
    subsample size follows n_synth (``regime.subsample`` null), only the first ``count`` picks keep their weight
    (the top-k picks are in random order, so they are a uniform subsample of size ``count``).

    References:
        Kazdan et al. 2024, "Collapse or Thrive?", accumulate-subsample.
    """
    if regime.pool != "accumulate_subsample":
        return pool, pool_w
    size = C.subsample_size(regime)
    scores = jnp.where(pool_w > 0, jax.random.gumbel(key, pool_w.shape), -jnp.inf)
    _, idx = jax.lax.top_k(scores, size)
    keep = count_mask(size, count) if regime.subsample is None else 1.0
    return pool[idx], pool_w[idx] * keep


@functools.singledispatch
def real_part(regime: C.RegimeConfig, key: Key, real: Data, source: DataSource) -> tuple[Data, Weights]:
    """The real part [n_real, d], [n_real] of generation g's training set (g >= 1), by regime type."""
    raise TypeError(f"unknown regime {type(regime).__name__}")


@real_part.register
def _(regime: C.FullySynthetic, key: Key, real: Data, source: DataSource) -> tuple[Data, Weights]:
    del key, source
    return real[:0], jnp.zeros((0,), real.dtype)  # no real slots after generation 0


@real_part.register
def _(regime: C.SyntheticAugmentation, key: Key, real: Data, source: DataSource) -> tuple[Data, Weights]:
    del key, source
    return real, jnp.ones(real.shape[:1], real.dtype)


@real_part.register
def _(regime: C.FreshData, key: Key, real: Data, source: DataSource) -> tuple[Data, Weights]:
    fresh = source.sample(key, regime.n_real)
    return fresh, jnp.ones(real.shape[:1], real.dtype)


def training_set(
    x_real: Data, w_real: Weights, x_synth: Data, w_synth: Weights, real_weight: jax.Array | float, size: int
) -> tuple[Data, Weights]:
    """Concatenates both parts and pads them to [size, d] with frequency weights [size].

    Each present real sample weighs ``real_weight`` times a synthetic one; the weights are then rescaled to
    sum to the number of samples present, so the relative weight never changes the effective sample size.
    Example: 2 real, 2 synthetic, real_weight 3 -> raw (3, 3, 1, 1), sum 8, count 4 -> (1.5, 1.5, .5, .5).
    """
    raw = jnp.concatenate([real_weight * w_real, w_synth])
    count = jnp.sum(w_real > 0) + jnp.sum(w_synth > 0)
    return pad(jnp.concatenate([x_real, x_synth]), raw * (count / jnp.sum(raw)), size)


def training_stats(model: GenerativeModel, x_real: Data, w_real: Weights, pool_stats, real_weight: jax.Array | float):
    """The sufficient statistics of ``training_set(x_real, w_real, pool..., real_weight, size)`` for a pool kept
    as statistics (its samples weigh 1 each): the same weights, so ``model.fit_stats`` of it equals the fit.

    The real part is weighted ``real_weight`` relative to a synthetic sample, then all weights are rescaled to
    sum to the number of samples present, as ``training_set`` does.
    """
    real = model.stats(x_real, w_real)
    n_real = jnp.sum(w_real > 0)
    raw = real_weight * real.count + pool_stats.count
    rescale = (n_real + pool_stats.count) / jnp.where(raw > 0, raw, 1.0)
    return model.merge(model.scale(real, real_weight * rescale), model.scale(pool_stats, rescale))
