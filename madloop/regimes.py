"""The loop families (regimes): the real part of generation g's training set, and the training-set size.

Generation 0 is fitted on real data only. Later generations train on the regime's real part (none in the fully
synthetic loop, the same real set in synthetic augmentation, fresh draws in the fresh data loop) and the pool's
synthetic part (``madloop.pools``). Every training set has T slots: ``n_real + S``, or ``max(n_real, S)`` when later
generations have no real slots (the fully synthetic loop, whose generation 0 is padded to T).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import jax.numpy as jnp

from madloop import config as C
from madloop import pools
from madloop.data import DataSource
from madloop.types import Data, Key, Weights


@dataclass(frozen=True)
class FullySynthetic(C.RegimeConfig):
    """Only generation 0 sees real data."""


@dataclass(frozen=True)
class SyntheticAugmentation(C.RegimeConfig):
    """Generation 0's real set is reused in every generation's training set."""


@dataclass(frozen=True)
class FreshData(C.RegimeConfig):
    """``n_real`` new real samples are drawn for every generation."""


class Regime(NamedTuple):
    """A regime as a pure function.

    Attributes:
        real_slots: whether generations g >= 1 have real slots (all regimes but the fully synthetic loop).
        real_part: ``real_part(key, real, source) -> (x [n_real, d], w [n_real])``: the real part of generation
            g's training set (g >= 1) from generation 0's real set ``real`` [n_real, d] and the (training) source.
    """

    real_slots: bool
    real_part: Callable[[Key, Data, DataSource], tuple[Data, Weights]]


def make_regime(cfg: C.RegimeConfig) -> Regime:
    """The regime of a regime config (its registered option's ``build``)."""
    return C.option_of("regime", cfg)[1].build(cfg)


def _no_real(key: Key, real: Data, source: DataSource) -> tuple[Data, Weights]:
    del key, source
    return real[:0], jnp.zeros((0,), real.dtype)  # no real slots after generation 0


def _same_real(key: Key, real: Data, source: DataSource) -> tuple[Data, Weights]:
    del key, source
    return real, jnp.ones(real.shape[:1], real.dtype)


def fully_synthetic(cfg: FullySynthetic) -> Regime:
    """Later generations train on synthetic data alone."""
    del cfg
    return Regime(False, _no_real)


def synthetic_augmentation(cfg: SyntheticAugmentation) -> Regime:
    """Later generations train on generation 0's real set plus synthetic data."""
    del cfg
    return Regime(True, _same_real)


def fresh_data(cfg: FreshData) -> Regime:
    """Later generations train on ``n_real`` fresh real samples plus synthetic data."""

    def real_part(key: Key, real: Data, source: DataSource) -> tuple[Data, Weights]:
        fresh = source.sample(key, cfg.n_real)
        return fresh, jnp.ones(real.shape[:1], real.dtype)

    return Regime(True, real_part)


def initial_size(r: C.RegimeConfig) -> int:
    """The number of real samples generation 0 is fitted on: ``regime.n_initial``, or ``regime.n_real``."""
    return r.n_real if r.n_initial is None else r.n_initial


def train_size(r: C.RegimeConfig, regime: Regime, synth_slots: int) -> int:
    """T, the fixed number of slots of every training set (generation 0's n_initial samples included)."""
    t = r.n_real + synth_slots if regime.real_slots else max(r.n_real, synth_slots)
    return max(t, initial_size(r))


def smallest_training_set(r: C.RegimeConfig, regime: Regime) -> tuple[int, str]:
    """(the size of the smallest training set a model is fitted on, the field that sets it): generation 0's
    real samples, and in the fully synthetic loop generation 1's synthetic part (the subsample when smaller)."""
    first_synth = min(r.n_synth, pools.synth_slots(r, 1))
    if regime.real_slots:
        size = min(r.n_real, initial_size(r))
    else:  # n_real is never trained on after generation 0 when n_initial is set
        size = min(initial_size(r), first_synth)
    if r.n_initial is not None and r.n_initial == size:
        key = "regime.n_initial"
    else:
        key = "regime.n_real" if r.n_real == size else "regime.n_synth"
    return size, key


def check(r: C.RegimeConfig) -> None:
    """Field checks of every regime."""
    C.choice("regime.pool", r.pool, tuple(pools.POLICIES))
    C.int_at_least("regime.n_real", r.n_real, 1, " (generation 0 is fitted on real data)")
    low = 1 if isinstance(r, FullySynthetic) else 0
    why = " with regime=fully_synthetic (the loop would have no data)" if low else ""
    C.int_at_least("regime.n_synth", r.n_synth, low, why)
    if r.subsample is not None:
        C.int_at_least("regime.subsample", r.subsample, 1)
        if r.pool != "accumulate_subsample":
            raise C.ConfigError("regime.subsample", r.subsample, "only applies to regime.pool=accumulate_subsample")
    C.positive("regime.real_weight", r.real_weight)
    if r.n_initial is not None:
        C.int_at_least("regime.n_initial", r.n_initial, 1, " (null = regime.n_real)")


def fits(r: C.RegimeConfig, cfg: C.Config, parts) -> None:
    """A finite data set holds the real samples a generation draws (distinct images); a swept n_real must act."""
    size = parts.source.size
    if size is not None and r.n_real > size:
        raise C.ConfigError("regime.n_real", r.n_real, f"must be <= the {size} training images of this data set")
    if size is not None and initial_size(r) > size:
        raise C.ConfigError("regime.n_initial", r.n_initial, f"must be <= the {size} training images of this data set")
    synth = cfg.sweep.regime.n_synth
    if synth is not None and isinstance(r, FullySynthetic) and min(synth) < 1:
        raise C.ConfigError("sweep.regime.n_synth", list(synth), "must be a non-empty list of integers >= 1")
    weights = cfg.sweep.regime.real_weight
    if weights is not None and isinstance(r, FullySynthetic):
        raise C.ConfigError(
            "sweep.regime.real_weight",
            list(weights),
            "has no effect in the fully synthetic loop (no real sample is trained on after generation 0)",
        )
    swept = cfg.sweep.regime.n_real
    if swept is not None and r.n_initial is not None and isinstance(r, FullySynthetic):
        raise C.ConfigError(
            "sweep.regime.n_real",
            list(swept),
            "has no effect with regime.n_initial in the fully synthetic loop (generation 0 fits n_initial samples)",
        )


C.register("regime", "fully_synthetic", FullySynthetic, build=fully_synthetic, check=check, fits=fits)
C.register(
    "regime", "synthetic_augmentation", SyntheticAugmentation, build=synthetic_augmentation, check=check, fits=fits
)
C.register("regime", "fresh_data", FreshData, build=fresh_data, check=check, fits=fits)
