"""Self-correction of the synthetic samples before they re-enter training (``correction=``).

Gillman et al. 2024 ("Self-Correcting Self-Consuming Loops for Generative Model Training") let an expert move
each synthetic sample toward the data manifold before it is trained on, and show that enough correction makes the
loop stable. ``correction=toward_truth`` is a toy expert: each synthetic sample moves a fraction gamma of the way to
the truth's most likely point near it (``DataSource.project``): the mean of its nearest component for a mixture (a
Gaussian's mean), the nearest point of the noiseless curve for moons, swiss roll and circles, and for the
supervised family (``data=linear``) the label moves toward w* . x. Moving samples toward modes concentrates the
distribution (docs/theory.md, law 13); moving labels toward the truth's is an exact expert (law 12).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import jax.numpy as jnp

from madloop import config as C
from madloop.data import DataSource
from madloop.types import Data, Knobs


@dataclass(frozen=True)
class NoCorrection(C.CorrectionConfig):
    """The synthetic samples enter the pool as drawn."""


@dataclass(frozen=True)
class TowardTruth(C.CorrectionConfig):
    """Each synthetic sample x becomes x + gamma (p(x) - x), p(x) the truth's most likely point near x.

    Attributes:
        gamma: the correction's strength in [0, 1]: 0 is the identity (bit for bit), 1 replaces each sample by p(x).
            Traced (``sweep.correction.gamma``).
    """

    gamma: float = 0.5


class Correction(NamedTuple):
    """A correction as a pure function.

    Attributes:
        apply: ``apply(x, knobs) -> x'`` for synthetic rows x [n, d'] (d' >= d: a conditional family's label column
            rides along unchanged); ``knobs["gamma"]`` is the traced strength.
    """

    apply: Callable[[Data, Knobs], Data]


def make_correction(cfg: C.CorrectionConfig, source: DataSource) -> Correction:
    """The correction of a validated ``correction`` config, for the data source (its registered ``build``)."""
    return C.option_of("correction", cfg)[1].build(cfg, source)


def no_correction(cfg: NoCorrection, source: DataSource) -> Correction:
    """The identity."""
    del cfg, source

    def apply(x: Data, knobs: Knobs) -> Data:
        del knobs
        return x

    return Correction(apply)


def toward(x: Data, target: Data, gamma: jnp.ndarray | float) -> Data:
    """(1 - gamma) x + gamma target [n, d]: x itself at gamma = 0 and the target at gamma = 1, exactly (x + gamma
    (target - x) would round at gamma = 1)."""
    return jnp.where(gamma == 0, x, (1.0 - gamma) * x + gamma * target)


def toward_truth(cfg: TowardTruth, source: DataSource) -> Correction:
    """Moves each sample a fraction gamma toward ``source.project`` of it (its data columns)."""
    del cfg
    dim, project = source.dim, source.project

    def apply(x: Data, knobs: Knobs) -> Data:
        moved = toward(x[:, :dim], project(x[:, :dim]), knobs["gamma"])
        return moved if x.shape[1] == dim else jnp.concatenate([moved, x[:, dim:]], axis=1)

    return Correction(apply)


def check_toward_truth(c: TowardTruth) -> None:
    """Field checks of ``correction=toward_truth``."""
    if not (C.is_number(c.gamma) and 0 <= c.gamma <= 1):
        raise C.ConfigError("correction.gamma", c.gamma, "must lie in [0, 1] (0 = no correction)")


# The refusal when the truth has no most likely nearby point (an image set).
NEEDS_PROJECTION = "needs a truth with a most likely nearby point (gaussian, ring8, grid25, mixture, moons, swissroll, "
NEEDS_PROJECTION += "circles, linear)"


def fits_toward_truth(c: TowardTruth, cfg: C.Config, parts) -> None:
    """The truth's most likely nearby point is defined."""
    del c, cfg
    if parts.source.project is None:
        raise C.ConfigError("correction", "toward_truth", NEEDS_PROJECTION)


C.register("correction", "none", NoCorrection, build=no_correction)
C.register(
    "correction", "toward_truth", TowardTruth, build=toward_truth, check=check_toward_truth, fits=fits_toward_truth
)
