"""Toy truths in closed form: Gaussian, Gaussian mixtures (ring, grid, random), moons, swiss roll, circles,
Rosenbrock."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from madloop import config as C
from madloop import rng
from madloop.mixture import (
    Mixture,
    component_log_prob,
    mixture_log_prob,
    sample_mixture,
    sample_mixture_labeled,
)
from madloop.precision import float_dtype, on_device
from madloop.tokens import Tokens
from madloop.types import Data, Key

if TYPE_CHECKING:
    from madloop.data.linear import LinearTruth

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


@dataclass(frozen=True)
class RosenbrockData(C.DataConfig):
    """The 2-D Rosenbrock ("banana") density p(x1, x2) ~ exp(-a (x1 - mu)^2 - b (x2 - x1^2)^2), sampled exactly as
    x1 ~ N(mu, 1 / (2a)), x2 | x1 ~ N(x1^2, 1 / (2b)) (Pagani, Wiegand & Nadarajah 2022, Sec. 2).

    The defaults (mu = 0, a = 1/2, b = 1: x1 ~ N(0, 1), x2 | x1 ~ N(x1^2, 1/2)) are those of the Rosenbrock
    sampler by A. Siahkoohi, an author of MAD (Alemohammad et al. 2023), whose flow experiment uses this truth;
    mu = 1, a = 1/20, b = 5 gives Goodman & Weare's (2010) classic exp(-(100 (x2 - x1^2)^2 + (1 - x1)^2) / 20).

    Attributes:
        mu: mean of x1.
        a: precision parameter of x1 (variance 1 / (2a)).
        b: coupling strength: x2's precision about x1^2 is 2b (variance 1 / (2b)).
    """

    mu: float = 0.0
    a: float = 0.5
    b: float = 1.0


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
        log_prob: ``log_prob(x) -> [n]``, the truth's normalised log-density of x [n, d] where it is known (mixtures
            and Rosenbrock in closed form; moons, swiss roll and circles by quadrature along their curve), else None
            (the tail metric and the density verifier need it).
        project: ``project(x) -> [n, d]``, the truth's most likely point near each sample: the mean of its nearest
            component (a Gaussian's mean), the nearest point of a noisy curve's noiseless curve, or [x, w* . x] for
            a linear regression truth; None where undefined (images, Rosenbrock).
        linear: the regression truth of ``data=linear`` (weights, feature variances, label noise), else None.
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
    log_prob: Callable[[Data], jax.Array] | None = None
    project: Callable[[Data], Data] | None = None
    linear: LinearTruth | None = None
    tokens: Tokens | None = None

    @property
    def gaussian(self) -> bool:
        """True when the truth is a single Gaussian."""
        return self.mixture is not None and self.mixture.weights.shape[0] == 1


def _truth_moments(mix: Mixture) -> tuple[jax.Array, jax.Array]:
    """``mixture_moments`` of a truth, computed once in float64 numpy and rounded to the mixture's dtype: no
    program is compiled for it (six small ones in JAX, 0.1 s of a first call), and for a one-component truth the
    covariance is its own, not (cov + m m^T) - m m^T rounded in float32."""
    weights, means, covs = (np.asarray(a, np.float64) for a in (mix.weights, mix.means, mix.covs))
    mean = weights @ means
    second = np.einsum("k,kij->ij", weights, covs + np.einsum("ki,kj->kij", means, means))
    dtype = mix.means.dtype
    return on_device(mean, dtype), on_device(second - np.outer(mean, mean), dtype)


def _mixture_source(mix: Mixture) -> DataSource:
    mean, cov = _truth_moments(mix)
    k = mix.weights.shape[0]
    labeled = functools.partial(_sample_truth_labeled, mix) if k >= 2 else None
    return DataSource(
        mix.means.shape[1],
        functools.partial(_sample_truth, mix),
        mix,
        mean,
        cov,
        k if k >= 2 else 0,
        labeled,
        log_prob=functools.partial(mixture_log_prob, mix),
        project=functools.partial(nearest_mean, mix),
    )


def nearest_mean(mix: Mixture, x: Data) -> Data:
    """[n, d]: the mean of each sample's most likely component in the truth's own metric, without its weights
    (argmax_k log N(x; mu_k, Sigma_k), as ``metrics.mode_assignment``); a Gaussian's mean."""
    log_n = component_log_prob(mix._replace(weights=jnp.ones_like(mix.weights)), x)  # [n, K]
    return mix.means[jnp.argmax(log_n, axis=1)]


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
        on_device(np.full((k,), 1.0 / k) if weights is None else weights, float_dtype()),
        on_device(means, float_dtype()),
        on_device(np.broadcast_to(std**2 * np.eye(d), (k, d, d)), float_dtype()),
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
    dtype = float_dtype()
    mix = Mixture(on_device(np.ones((1,)), dtype), on_device(mean[None], dtype), on_device(cov[None], dtype))
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


# ------------------------------------------------------------------- noisy curves: density and projection

CURVE_SPACING = 0.5  # node spacing along a curve, in units of the noise sd (floored at CURVE_MIN_NOISE)
CURVE_MIN_NOISE = 0.005  # below it the nodes stay CURVE_SPACING * 0.005 apart (a coarser quadrature)


class Curve(NamedTuple):
    """A noisy curve's truth as a Gaussian kernel sum over nodes of its noiseless curve: the midpoint rule of
    p(x) = E_t N(x; c(t), s^2 I) over the curve's parameter t.

    Attributes:
        nodes: [M, 2] points c(t_m) at the midpoints t_m of M equal cells of each branch's parameter range.
        log_w: [M] log of each node's probability (the branch's probability over its M_b nodes).
        noise: s, the sd of the isotropic Gaussian noise.
    """

    nodes: jax.Array
    log_w: jax.Array
    noise: float


def curve_nodes(length: float, noise: float) -> int:
    """Nodes on a branch of at most ``length`` (equal parameter cells) so that neighbours lie at most CURVE_SPACING
    noise sds apart: the midpoint rule's error in the density is then of order exp(-2 pi^2 / CURVE_SPACING^2)."""
    return int(math.ceil(length / (CURVE_SPACING * max(noise, CURVE_MIN_NOISE))))


def _moons_curve(noise: float) -> tuple[np.ndarray, np.ndarray]:
    m = curve_nodes(np.pi, noise)  # each half circle has length pi
    t = (np.arange(m) + 0.5) * np.pi / m
    outer = np.stack([np.cos(t), np.sin(t)], axis=1)
    inner = np.stack([1.0 - np.cos(t), 0.5 - np.sin(t)], axis=1)
    return np.concatenate([outer, inner]), np.full(2 * m, 1.0 / (2 * m))


def _swissroll_curve(noise: float) -> tuple[np.ndarray, np.ndarray]:
    # t = 1.5 pi (1 + 2u), u uniform; the speed |dc/dt| = sqrt(1 + t^2) / 5 is at most that at t = 4.5 pi.
    lo, hi = 1.5 * np.pi, 4.5 * np.pi
    m = curve_nodes((hi - lo) * np.sqrt(1 + hi**2) / 5.0, noise)
    t = lo + (np.arange(m) + 0.5) * (hi - lo) / m
    return np.stack([t * np.cos(t), t * np.sin(t)], axis=1) / 5.0, np.full(m, 1.0 / m)


def _circles_curve(factor: float, noise: float) -> tuple[np.ndarray, np.ndarray]:
    m = curve_nodes(2 * np.pi, noise)  # the outer circle's length; the inner one gets the same count
    t = (np.arange(m) + 0.5) * 2 * np.pi / m
    ring = np.stack([np.cos(t), np.sin(t)], axis=1)
    return np.concatenate([ring, factor * ring]), np.full(2 * m, 1.0 / (2 * m))


def _curve(points: tuple[np.ndarray, np.ndarray], noise: float) -> Curve:
    nodes, w = points
    return Curve(on_device(nodes, float_dtype()), on_device(np.log(w), float_dtype()), noise)


def _node_sqdist(curve: Curve, x: Data) -> jax.Array:
    """[n, M] squared distances of x [n, 2] to the nodes (|x|^2 - 2 x.c + |c|^2: a matrix product)."""
    sq = jnp.sum(x**2, axis=1)[:, None] - 2.0 * x @ curve.nodes.T + jnp.sum(curve.nodes**2, axis=1)[None, :]
    return jnp.maximum(sq, 0.0)


CURVE_BLOCK = 1024  # rows of x per [rows, M] distance block (M nodes: up to ~10^4 at the smallest noise)


def curve_log_prob(curve: Curve, x: Data) -> jax.Array:
    """log p(x) [n] of the noisy curve: log sum_m w_m N(x; c_m, s^2 I) (2-D), in blocks of CURVE_BLOCK rows so
    that a large n (the tail metric's 65,536 truth draws) never holds an [n, M] matrix."""
    s2 = curve.noise**2

    def block(xb: Data) -> jax.Array:
        return jax.nn.logsumexp(curve.log_w - 0.5 * _node_sqdist(curve, xb) / s2, axis=1) - jnp.log(2 * jnp.pi * s2)

    n = x.shape[0]
    if n <= CURVE_BLOCK:
        return block(x)
    padded = jnp.concatenate([x, jnp.zeros((-n % CURVE_BLOCK, x.shape[1]), x.dtype)])
    return jax.lax.map(block, padded.reshape(-1, CURVE_BLOCK, x.shape[1])).reshape(-1)[:n]


def curve_project(curve: Curve, x: Data) -> Data:
    """[n, 2]: the nearest node of the noiseless curve (its nearest point, to half the node spacing)."""
    return curve.nodes[jnp.argmin(_node_sqdist(curve, x), axis=1)]


def _curve_source(sample: Callable[[Key, int], Data], curve: Curve) -> DataSource:
    log_prob = functools.partial(curve_log_prob, curve) if curve.noise > 0 else None  # noise 0: no density
    return DataSource(2, sample, log_prob=log_prob, project=functools.partial(curve_project, curve))


def moons_source(cfg: MoonsData) -> DataSource:
    return _curve_source(_noisy(_moons, cfg.noise), _curve(_moons_curve(cfg.noise), cfg.noise))


def swissroll_source(cfg: SwissRollData) -> DataSource:
    return _curve_source(_noisy(_swissroll, cfg.noise), _curve(_swissroll_curve(cfg.noise), cfg.noise))


def circles_source(cfg: CirclesData) -> DataSource:
    sample = _noisy(functools.partial(_circles, cfg.factor), cfg.noise)
    return _curve_source(sample, _curve(_circles_curve(cfg.factor, cfg.noise), cfg.noise))


def rosenbrock_moments(mu: float, a: float, b: float) -> tuple[np.ndarray, np.ndarray]:
    """The Rosenbrock truth's mean [2] and covariance [2, 2] in closed form (float64).

    With x1 ~ N(mu, v1), v1 = 1 / (2a), and x2 = x1^2 + e, e ~ N(0, v2), v2 = 1 / (2b) independent of x1:
    E x2 = mu^2 + v1; Var x2 = Var(x1^2) + v2 = 4 mu^2 v1 + 2 v1^2 + v2; Cov(x1, x2) = E[x1^3] - mu E[x1^2] = 2 mu v1.
    """
    v1, v2 = 1.0 / (2 * a), 1.0 / (2 * b)
    mean = np.array([mu, mu**2 + v1])
    cov = np.array([[v1, 2 * mu * v1], [2 * mu * v1, 4 * mu**2 * v1 + 2 * v1**2 + v2]])
    return mean, cov


def _rosenbrock(mu: float, a: float, b: float, key: Key, n: int) -> Data:
    e = rng.normal(key, (n, 2))
    x1 = mu + e[:, 0] / math.sqrt(2 * a)
    return jnp.stack([x1, x1**2 + e[:, 1] / math.sqrt(2 * b)], axis=1)


def _rosenbrock_log_prob(mu: float, a: float, b: float, x: Data) -> jax.Array:
    # log N(x1; mu, 1/(2a)) + log N(x2; x1^2, 1/(2b)): the product of the two conditionals, so normalised.
    log_norm = 0.5 * math.log(a / math.pi) + 0.5 * math.log(b / math.pi)
    return log_norm - a * (x[:, 0] - mu) ** 2 - b * (x[:, 1] - x[:, 0] ** 2) ** 2


def rosenbrock_source(cfg: RosenbrockData) -> DataSource:
    mean, cov = rosenbrock_moments(cfg.mu, cfg.a, cfg.b)
    params = (float(cfg.mu), float(cfg.a), float(cfg.b))
    return DataSource(
        2,
        functools.partial(_rosenbrock, *params),
        mean=on_device(mean, float_dtype()),
        cov=on_device(cov, float_dtype()),
        log_prob=functools.partial(_rosenbrock_log_prob, *params),
    )


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
        # Equal weights put 1 / K on every mode, and a Zipf law less on its rarest: more than 10^6 modes cannot
        # pass, so refuse them by their own field before building K weights (10^9 of them took a minute).
        if k > 1_000_000:
            field = {Ring8Data: "modes", Grid25Data: "side"}.get(type(d), "components")
            why = f"gives {k} modes, each of weight <= 1/{k}; keep it <= 10^6 modes"
            raise C.ConfigError(f"data.{field}", getattr(d, field), why)
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


def check_rosenbrock(d: RosenbrockData) -> None:
    """Field checks of ``data=rosenbrock``: a finite mu, precisions a, b > 0, and closed-form moments that float32
    holds (|entries| < 1e30)."""
    if not C.is_number(d.mu):
        raise C.ConfigError("data.mu", d.mu, "must be a finite number")
    C.positive("data.a", d.a)
    C.positive("data.b", d.b)
    try:
        mean, cov = rosenbrock_moments(d.mu, d.a, d.b)
        ok = bool(np.all(np.abs(mean) < 1e30) and np.all(np.abs(cov) < 1e30))
    except OverflowError:  # Python's float power raises where a product would give inf
        ok = False
    if not ok:
        raise C.ConfigError("data.a", d.a, f"with data.mu={d.mu}, data.b={d.b} gives moments beyond float32's range")


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
C.register("data", "rosenbrock", RosenbrockData, build=rosenbrock_source, check=check_rosenbrock)
