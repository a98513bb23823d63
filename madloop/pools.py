"""Synthetic pools as one typed strategy: replace, accumulate, accumulate-subsample, and the statistics pool.

Layout of every training set (generation 0 included): ``[real slots | synthetic slots (S)]`` padded to a fixed
size T with frequency weights, 0 marking an unused slot, so every generation has the same shapes and the loop
scans. S = n_synth (replace), G * n_synth (accumulate) or the subsample size (accumulate_subsample). The pool is
chosen at one place, ``make_pool``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from madloop import config as C
from madloop.types import Data, GenerativeModel, Key, Knobs, Params, Statistics, Weights

# fit(x [T, d], w [T]) -> params: the family's fit of generation g on a training set (the loop closes over the
# keys, the previous parameters and the warm-start switch).
FitFn = Callable[[Data, Weights], Params]


class Pool(NamedTuple):
    """A synthetic pool policy as pure functions.

    Attributes:
        name: the ``regime.pool`` value (``statistics`` for an accumulate pool kept as statistics).
        slots: S, the synthetic slots of a training set (0 for statistics: no training set is built).
        empty: ``empty(d, dtype) -> (pool, pool_w)``: the pool before generation 1 (a buffer [P, d] and weights [P] of
            zeros, or the statistics of no data and weights [0]).
        add: ``add(pool, pool_w, synth, g, count) -> (pool, pool_w)``: generation g - 1's samples [n_synth, d]
            enter the pool for generation g (g >= 1); only the first ``count`` of them get weight.
        train: ``train(key, pool, pool_w, x_real, w_real, knobs, fit) -> params``: generation g's fit on the
            regime's real part and the pool.
        training: ``training(key, pool, pool_w, x_real, w_real, knobs) -> (x [T, d], w [T])``: the training set
            ``train`` fits (``train`` is ``fit(*training(...))``), or None for a pool that fits without one (the
            statistics pool).
    """

    name: str
    slots: int
    empty: Callable[[int, Any], tuple[Any, Weights]]
    add: Callable[..., tuple[Any, Weights]]
    train: Callable[..., Params]
    training: Callable[..., tuple[Data, Weights]] | None = None


def pad(x: Data, w: Weights, size: int) -> tuple[Data, Weights]:
    """Appends zero-weight rows so x [n, d], w [n] become [size, d], [size]."""
    extra = size - x.shape[0]
    return jnp.pad(x, ((0, extra), (0, 0))), jnp.pad(w, (0, extra))


def count_mask(size: int, count: jax.Array | int) -> Weights:
    """Weights [size]: 1 for the first ``count`` slots, 0 after (a count knob as a mask over a static maximum)."""
    return (jnp.arange(size) < count).astype(jnp.zeros(()).dtype)


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


def training_stats(stats: Statistics, x_real: Data, w_real: Weights, pool_stats: Any, real_weight: jax.Array | float):
    """The sufficient statistics of ``training_set(x_real, w_real, pool..., real_weight, size)`` for a pool kept
    as statistics (its samples weigh 1 each): the same weights, so ``stats.fit`` of it equals the fit.

    The real part is weighted ``real_weight`` relative to a synthetic sample, then all weights are rescaled to
    sum to the number of samples present, as ``training_set`` does.
    """
    real = stats.stats(x_real, w_real)
    n_real = jnp.sum(w_real > 0)
    raw = real_weight * real.count + pool_stats.count
    rescale = (n_real + pool_stats.count) / jnp.where(raw > 0, raw, 1.0)
    return stats.merge(stats.scale(real, real_weight * rescale), stats.scale(pool_stats, rescale))


def subsample_size(regime: C.RegimeConfig) -> int:
    """Synthetic slots of an ``accumulate_subsample`` training set: ``subsample``, or ``n_synth`` when null."""
    return regime.subsample if regime.subsample is not None else regime.n_synth


# --------------------------------------------------------------------------------------------- the policies


def _buffer(capacity: int) -> Callable[[int, Any], tuple[Data, Weights]]:
    def empty(dim: int, dtype: Any) -> tuple[Data, Weights]:
        del dtype
        return jnp.zeros((capacity, dim)), jnp.zeros((capacity,))  # the run's precision (x64 under float64)

    return empty


def _sample_pool(name: str, slots: int, empty: Callable, add: Callable, size: int, synthetic: Callable) -> Pool:
    """A pool of samples: its training set [T] is the real part and ``synthetic(key, pool, pool_w, count)``."""

    def training(key: Key, pool: Data, pool_w: Weights, x_real: Data, w_real: Weights, knobs: Knobs):
        x_syn, w_syn = synthetic(key, pool, pool_w, knobs["n_synth"])
        return training_set(x_real, w_real, x_syn, w_syn, knobs["real_weight"], size)

    def train(key: Key, pool: Data, pool_w: Weights, x_real: Data, w_real: Weights, knobs: Knobs, fit: FitFn):
        return fit(*training(key, pool, pool_w, x_real, w_real, knobs))

    return Pool(name, slots, empty, add, train, training)


def replace_pool(regime: C.RegimeConfig, generations: int, size: int) -> Pool:
    """The pool is generation g - 1's samples alone (MAD's and Shumailov et al.'s default)."""
    del generations

    def add(pool, pool_w, synth, g, count):
        del pool, pool_w, g
        return synth, count_mask(regime.n_synth, count)

    def synthetic(key, pool, pool_w, count):
        del key, count
        return pool, pool_w

    return _sample_pool("replace", regime.n_synth, _buffer(regime.n_synth), add, size, synthetic)


def _accumulate_add(regime: C.RegimeConfig) -> Callable:
    def add(pool, pool_w, synth, g, count):
        # Generation g - 1's samples fill slots [(g - 1) n_synth, g n_synth).
        start = (g - 1) * regime.n_synth
        pool = jax.lax.dynamic_update_slice(pool, synth, (start, jnp.zeros_like(start)))  # one index type (x64)
        pool_w = jax.lax.dynamic_update_slice(pool_w, count_mask(regime.n_synth, count), (start,))
        return pool, pool_w

    return add


def accumulate_pool(regime: C.RegimeConfig, generations: int, size: int) -> Pool:
    """Every generation's samples stay in the pool (Gerstgrasser et al. 2024): a buffer of G n_synth slots."""

    def synthetic(key, pool, pool_w, count):
        del key, count
        return pool, pool_w

    capacity = generations * regime.n_synth
    return _sample_pool("accumulate", capacity, _buffer(capacity), _accumulate_add(regime), size, synthetic)


def accumulate_subsample_pool(regime: C.RegimeConfig, generations: int, size: int) -> Pool:
    """Every generation's samples stay in the pool and a training set takes a uniform subsample of it.

    A training set draws S filled slots uniformly without replacement (Gumbel top-k over the filled slots);
    while fewer than S slots are filled, the extra picks are empty slots and keep weight 0. When the subsample
    size follows n_synth (``regime.subsample`` null), only the first ``count`` picks keep their weight (the top-k
    picks are in random order, so they are a uniform subsample of size ``count``).

    References:
        Kazdan et al. 2024, "Collapse or Thrive?", accumulate-subsample.
    """
    slots = subsample_size(regime)
    capacity = generations * regime.n_synth
    picks = min(slots, capacity)  # S above the buffer's G n_synth slots: the rest are empty picks of weight 0

    def synthetic(key, pool, pool_w, count):
        keep = count_mask(slots, count) if regime.subsample is None else 1.0
        if picks == 0:
            return jnp.zeros((slots, pool.shape[1]), pool.dtype), jnp.zeros((slots,), pool_w.dtype)
        scores = jnp.where(pool_w > 0, jax.random.gumbel(key, pool_w.shape), -jnp.inf)
        _, idx = jax.lax.top_k(scores, picks)
        x, w = pool[idx], pool_w[idx]
        if picks < slots:
            x = jnp.concatenate([x, jnp.zeros((slots - picks, x.shape[1]), x.dtype)])
            w = jnp.concatenate([w, jnp.zeros((slots - picks,), w.dtype)])
        return x, w * keep

    add = _accumulate_add(regime)
    return _sample_pool("accumulate_subsample", slots, _buffer(capacity), add, size, synthetic)


def statistics_pool(regime: C.RegimeConfig, stats: Statistics) -> Pool:
    """An accumulate pool kept as the family's sufficient statistics: the same fits up to float rounding, O(n)
    time per generation and O(1) memory instead of O(G n); generation 0's training set is the real set alone."""

    def empty(dim: int, dtype: Any):
        return stats.stats(jnp.zeros((0, dim), dtype), jnp.zeros((0,), dtype)), jnp.zeros((0,))

    def add(pool, pool_w, synth, g, count):
        del g
        return stats.merge(pool, stats.stats(synth, count_mask(regime.n_synth, count))), pool_w

    def train(key, pool, pool_w, x_real, w_real, knobs, fit):
        del key, pool_w, fit
        return stats.fit(training_stats(stats, x_real, w_real, pool, knobs["real_weight"]))

    return Pool("statistics", 0, empty, add, train)


class Policy(NamedTuple):
    """A ``regime.pool`` option.

    Attributes:
        make: ``make(regime, generations, train_size) -> Pool``.
        slots: ``slots(regime, generations) -> S``, the synthetic slots of a training set.
        statistics: whether the pool can be kept as a family's sufficient statistics (every sample stays, each
            weighing 1).
    """

    make: Callable[[C.RegimeConfig, int, int], Pool]
    slots: Callable[[C.RegimeConfig, int], int]
    statistics: bool = False


# regime.pool -> its policy; the one place a pool is chosen by name (the statistics pool is chosen by make_pool).
POLICIES: dict[str, Policy] = {
    "replace": Policy(replace_pool, lambda r, g: r.n_synth),
    "accumulate": Policy(accumulate_pool, lambda r, g: g * r.n_synth, statistics=True),
    "accumulate_subsample": Policy(accumulate_subsample_pool, lambda r, g: subsample_size(r)),
}


def synth_slots(regime: C.RegimeConfig, generations: int) -> int:
    """S, the synthetic slots of a training set of a pool of samples."""
    return POLICIES[regime.pool].slots(regime, generations)


def keeps_statistics(cfg: C.Config, model: GenerativeModel, guided: bool) -> bool:
    """Whether the pool is kept as the family's statistics: ``loop.stats_pool``, a pool policy that keeps every
    sample (accumulate), a family with the statistics capability, and no guidance (SIMS fits an auxiliary model on
    samples)."""
    policy = POLICIES[cfg.regime.pool]
    return cfg.loop.stats_pool and policy.statistics and model.statistics is not None and not guided


def make_pool(cfg: C.Config, model: GenerativeModel, train_size: int, guided: bool) -> Pool:
    """The pool of a run: the policy ``regime.pool`` names, or the statistics pool (``keeps_statistics``).

    Args:
        cfg: the validated config.
        model: the model family.
        train_size: T, the slots of every training set (``madloop.regimes.train_size``).
        guided: whether sampling guidance is on.
    """
    if keeps_statistics(cfg, model, guided):
        return statistics_pool(cfg.regime, model.statistics)
    return POLICIES[cfg.regime.pool].make(cfg.regime, cfg.loop.generations, train_size)
