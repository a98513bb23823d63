"""Toy truths in closed form: Gaussian, Gaussian mixtures (ring, grid, random), moons, swiss roll, circles."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from madloop import config as C
from madloop import rng
from madloop.mixture import Mixture, mixture_moments, sample_mixture, sample_mixture_labeled
from madloop.precision import float_dtype
from madloop.tokens import Tokens
from madloop.types import Data, Key

# ------------------------------------------------------------------------------------------------ schemas


@dataclass(frozen=True)
class GaussianData(C.DataConfig):
    """N(mean, cov) in ``dim`` dimensions; mean defaults to 0, cov to ``scale`` * I."""

    dim: int = 2
    mean: list[float] | None = None
    cov: Any = None  # a d x d nested list (validated in _validate_data)
    scale: float = 1.0


@dataclass(frozen=True)
class Ring8Data(C.DataConfig):
    """``modes`` isotropic Gaussians of std ``std`` evenly spaced on a circle of radius ``radius`` (2-D), with mode
    weights ``weights`` or ``zipf`` (``mode_weights``)."""

    modes: int = 8
    radius: float = 2.0
    std: float = 0.05
    weights: list[float] | None = None  # one positive weight per mode (normalised); None = equal (mode_weights)
    zipf: float = 0.0  # Zipf weights (k + 1)^-zipf over the modes in order; 0 = equal


@dataclass(frozen=True)
class Grid25Data(C.DataConfig):
    """A ``side`` x ``side`` grid of isotropic Gaussians, ``spacing`` apart, centred on 0 (2-D), with mode weights
    ``weights`` or ``zipf`` (``mode_weights``)."""

    side: int = 5
    spacing: float = 2.0
    std: float = 0.05
    weights: list[float] | None = None  # one positive weight per mode (normalised); None = equal (mode_weights)
    zipf: float = 0.0  # Zipf weights (k + 1)^-zipf over the modes in order; 0 = equal


@dataclass(frozen=True)
class MixtureData(C.DataConfig):
    """``components`` isotropic Gaussians with means uniform in [-box, box]^dim drawn from ``layout_seed``, with mode
    weights ``weights`` or ``zipf`` (``mode_weights``)."""

    dim: int = 2
    components: int = 5
    std: float = 0.1
    box: float = 3.0
    layout_seed: int = 0
    weights: list[float] | None = None  # one positive weight per mode (normalised); None = equal (mode_weights)
    zipf: float = 0.0  # Zipf weights (k + 1)^-zipf over the modes in order; 0 = equal


@dataclass(frozen=True)
class MoonsData(C.DataConfig):
    """Two interleaving half circles (as scikit-learn's make_moons) plus isotropic Gaussian noise."""

    noise: float = 0.05


@dataclass(frozen=True)
class SwissRollData(C.DataConfig):
    """The 2-D swiss roll t (cos t, sin t) / 5, t ~ 1.5 pi (1 + 2u), plus isotropic Gaussian noise."""

    noise: float = 0.05


@dataclass(frozen=True)
class CirclesData(C.DataConfig):
    """Two concentric circles of radius 1 and ``factor`` (as make_circles) plus isotropic Gaussian noise."""

    factor: float = 0.5
    noise: float = 0.05


# ------------------------------------------------------------------------------------------- the data source


class DataSource(NamedTuple):
    """A real-data distribution.

    Attributes:
        dim: d.
        sample: ``sample(key, n) -> [n, d]`` (n static).
        mixture: the truth as a Gaussian mixture when it is one (a Gaussian is K = 1), else None.
        mean: [d] true mean where known in closed form, else None.
        cov: [d, d] true covariance where known in closed form, else None.
        classes: number of class labels the source can attach to its samples (0 = none).
        sample_labeled: ``sample_labeled(key, n) -> (x [n, d], labels [n] int32)``, the same x as ``sample``
            for the same key, or None. Mixture truths label a sample by the component it was drawn from.
        shape: the event shape of an image source (h, w, c), whose rows are the flattened images (d = h w c);
            None for vector sources.
        heldout: [m, d] a fixed held-out set for evaluation (finite data sets), or None: the evaluation draws
            ``eval.n`` fresh samples from the truth.
        size: the number of distinct training samples of a finite data set (a generation draws at most this
            many), or None for a distribution.
        classifier: ``classifier() -> madloop.classifier.Classifier`` for a labelled image source: the feature
            classifier of the image metrics, trained (or loaded from its disk cache) on first call; else None.
        tokens: a discrete source's vocabulary, row length and truth chain (``madloop.tokens.Tokens``): its rows
            are token ids stored as floats; None for continuous data.
    """

    dim: int
    sample: Callable[[Key, int], Data]
    mixture: Mixture | None = None
    mean: jax.Array | None = None
    cov: jax.Array | None = None
    classes: int = 0
    sample_labeled: Callable[[Key, int], tuple[Data, jax.Array]] | None = None
    shape: tuple[int, ...] | None = None
    heldout: jax.Array | None = None
    size: int | None = None
    classifier: Callable[[], Any] | None = None
    tokens: Tokens | None = None

    @property
    def gaussian(self) -> bool:
        """True when the truth is a single Gaussian."""
        return self.mixture is not None and self.mixture.weights.shape[0] == 1


def _mixture_source(mix: Mixture) -> DataSource:
    mean, cov = mixture_moments(mix)
    k = mix.weights.shape[0]
    labeled = functools.partial(_sample_truth_labeled, mix) if k >= 2 else None
    return DataSource(
        mix.means.shape[1], functools.partial(_sample_truth, mix), mix, mean, cov, k if k >= 2 else 0, labeled
    )


def _sample_truth(mix: Mixture, key: Key, n: int) -> Data:
    return sample_mixture(key, mix, n)


def _sample_truth_labeled(mix: Mixture, key: Key, n: int) -> tuple[Data, jax.Array]:
    return sample_mixture_labeled(key, mix, n)


WeightedModes = Ring8Data | Grid25Data | MixtureData  # the mixture truths whose modes take weights


def mode_weights(cfg: WeightedModes, k: int) -> np.ndarray:
    """[K] the mode weights of a mixture truth's config, summing to 1: ``cfg.weights`` normalised, or Zipf weights
    w_k ~ (k + 1)^-zipf over the modes in the source's order (0 = equal). The first mode is the heaviest and the last
    the rarest: the tails a collapsing loop erodes first (Shumailov et al. 2024; Dohmatob et al. 2024)."""
    if cfg.weights is not None:
        w = np.asarray(cfg.weights, float)
    else:
        w = (np.arange(k) + 1.0) ** -float(cfg.zipf)
    return w / w.sum()


def _isotropic(means: np.ndarray, std: float, weights: np.ndarray | None = None) -> Mixture:
    k, d = means.shape
    return Mixture(
        jnp.asarray(np.full((k,), 1.0 / k) if weights is None else weights, float_dtype()),
        jnp.asarray(means, float_dtype()),
        jnp.asarray(np.broadcast_to(std**2 * np.eye(d), (k, d, d)), float_dtype()),
    )


def make_source(cfg: C.DataConfig) -> DataSource:
    """Builds the data source of a data config (its registered option's ``build``, by the config's type)."""
    return C.option_of("data", cfg)[1].build(cfg)


def check_fields(d: C.DataConfig) -> None:
    """The checks every source's fields share, by name: counts (dim, components, modes, side) are integers >= 1,
    scales (std, radius, spacing, box, scale) finite and > 0, ``noise`` finite and >= 0."""
    for f in fields(d):
        v = getattr(d, f.name)
        key = f"data.{f.name}"
        if f.name in ("dim", "components", "modes", "side"):
            C.int_at_least(key, v, 1)
        elif f.name in ("std", "radius", "spacing", "box", "scale"):
            C.positive(key, v)
        elif f.name == "noise" and (not math.isfinite(v) or v < 0):
            raise C.ConfigError(key, v, "must be a finite number >= 0")


def gaussian_source(cfg: GaussianData) -> DataSource:
    d = cfg.dim
    mean = np.zeros(d) if cfg.mean is None else np.asarray(cfg.mean, float)
    cov = cfg.scale * np.eye(d) if cfg.cov is None else np.asarray(cfg.cov, float)
    mix = Mixture(
        jnp.ones((1,), float_dtype()), jnp.asarray(mean[None], float_dtype()), jnp.asarray(cov[None], float_dtype())
    )
    return _mixture_source(mix)


def ring8_source(cfg: Ring8Data) -> DataSource:
    angles = 2 * np.pi * np.arange(cfg.modes) / cfg.modes
    means = cfg.radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    return _mixture_source(_isotropic(means, cfg.std, mode_weights(cfg, cfg.modes)))


def grid25_source(cfg: Grid25Data) -> DataSource:
    ticks = (np.arange(cfg.side) - (cfg.side - 1) / 2) * cfg.spacing
    means = np.stack(np.meshgrid(ticks, ticks, indexing="ij"), axis=-1).reshape(-1, 2)
    return _mixture_source(_isotropic(means, cfg.std, mode_weights(cfg, cfg.side**2)))


def mixture_source(cfg: MixtureData) -> DataSource:
    rng = np.random.default_rng(cfg.layout_seed)
    means = rng.uniform(-cfg.box, cfg.box, size=(cfg.components, cfg.dim))
    return _mixture_source(_isotropic(means, cfg.std, mode_weights(cfg, cfg.components)))


def _noisy(shape_fn: Callable[[Key, int], Data], noise: float) -> Callable[[Key, int], Data]:
    def sample(key: Key, n: int) -> Data:
        k_shape, k_noise = jax.random.split(key)
        return shape_fn(k_shape, n) + noise * rng.normal(k_noise, (n, 2))

    return sample


def _moons(key: Key, n: int) -> Data:
    k_t, k_side = jax.random.split(key)
    t = jax.random.uniform(k_t, (n,), maxval=jnp.pi)
    upper = jax.random.bernoulli(k_side, 0.5, (n,))
    outer = jnp.stack([jnp.cos(t), jnp.sin(t)], axis=1)
    inner = jnp.stack([1.0 - jnp.cos(t), 0.5 - jnp.sin(t)], axis=1)
    return jnp.where(upper[:, None], outer, inner)


def _swissroll(key: Key, n: int) -> Data:
    t = 1.5 * jnp.pi * (1.0 + 2.0 * jax.random.uniform(key, (n,)))
    return jnp.stack([t * jnp.cos(t), t * jnp.sin(t)], axis=1) / 5.0


def _circles(factor: float, key: Key, n: int) -> Data:
    k_t, k_side = jax.random.split(key)
    t = jax.random.uniform(k_t, (n,), maxval=2 * jnp.pi)
    radius = jnp.where(jax.random.bernoulli(k_side, 0.5, (n,)), 1.0, factor)
    return radius[:, None] * jnp.stack([jnp.cos(t), jnp.sin(t)], axis=1)


def moons_source(cfg: MoonsData) -> DataSource:
    return DataSource(2, _noisy(_moons, cfg.noise))


def swissroll_source(cfg: SwissRollData) -> DataSource:
    return DataSource(2, _noisy(_swissroll, cfg.noise))


def circles_source(cfg: CirclesData) -> DataSource:
    return DataSource(2, _noisy(functools.partial(_circles, cfg.factor), cfg.noise))


def check_gaussian(d: GaussianData) -> None:
    """Field checks of ``data=gaussian``: a mean of ``dim`` entries and a symmetric positive definite cov."""
    check_fields(d)
    if d.mean is not None and len(d.mean) != d.dim:
        raise C.ConfigError("data.mean", list(d.mean), f"must have data.dim={d.dim} entries")
    if d.cov is not None:
        try:
            cov = np.asarray(d.cov, dtype=float)
        except (TypeError, ValueError):
            raise C.ConfigError("data.cov", d.cov, f"must be a {d.dim}x{d.dim} matrix of numbers") from None
        if cov.shape != (d.dim, d.dim):
            raise C.ConfigError("data.cov", list(map(list, d.cov)), f"must be a {d.dim}x{d.dim} matrix")
        if not np.allclose(cov, cov.T) or np.linalg.eigvalsh(cov).min() <= 0:
            raise C.ConfigError("data.cov", list(map(list, d.cov)), "must be symmetric positive definite")


def check_weighted(d: WeightedModes) -> None:
    """Field checks of a mixture truth with mode weights: ``check_fields``, then K finite positive weights or a
    finite zipf >= 0 (not both)."""
    check_fields(d)
    k = {Ring8Data: lambda: d.modes, Grid25Data: lambda: d.side**2}.get(type(d), lambda: d.components)()
    if not (C.is_number(d.zipf) and math.isfinite(d.zipf) and d.zipf >= 0):
        raise C.ConfigError("data.zipf", d.zipf, "must be a finite number >= 0 (0 = equal weights)")
    if d.weights is None:
        w = mode_weights(d, k)
        if w.min() < 1e-6:
            raise C.ConfigError("data.zipf", d.zipf, f"gives the rarest mode weight {w.min():.2g}; keep it >= 1e-6")
        return
    if d.zipf != 0:
        raise C.ConfigError("data.weights", list(d.weights), "give data.weights or data.zipf, not both")
    w = list(d.weights)
    if len(w) != k:
        raise C.ConfigError("data.weights", w, f"must have one weight per mode ({k})")
    if not all(C.is_number(v) and math.isfinite(v) and v > 0 for v in w):
        raise C.ConfigError("data.weights", w, "must be finite numbers > 0 (normalised to sum to 1)")
    if min(w) / sum(w) < 1e-6:
        raise C.ConfigError("data.weights", w, "normalised, each weight must be >= 1e-6")


def check_circles(d: CirclesData) -> None:
    """Field checks of ``data=circles``: the inner radius is a fraction of the outer one."""
    check_fields(d)
    if not 0 < d.factor < 1:
        raise C.ConfigError("data.factor", d.factor, "must lie in (0, 1) (inner radius / outer radius)")


C.register("data", "gaussian", GaussianData, build=gaussian_source, check=check_gaussian)
C.register("data", "ring8", Ring8Data, build=ring8_source, check=check_weighted)
C.register("data", "grid25", Grid25Data, build=grid25_source, check=check_weighted)
C.register("data", "mixture", MixtureData, build=mixture_source, check=check_weighted)
C.register("data", "moons", MoonsData, build=moons_source, check=check_fields)
C.register("data", "swissroll", SwissRollData, build=swissroll_source, check=check_fields)
C.register("data", "circles", CirclesData, build=circles_source, check=check_circles)
