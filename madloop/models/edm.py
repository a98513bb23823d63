"""EDM family: Karras et al.'s preconditioned denoiser, log-normal noise levels, rho schedule and Heun sampler.

The data are noised in variance-exploding form, x = y + sigma n with n ~ N(0, I), and the model is the denoiser
D(x; sigma) = c_skip x + c_out F(c_in x; c_noise), a network F wrapped in sigma-dependent scalings. Training draws
sigma from the preconditioning's distribution and minimises lambda(sigma) |D(y + sigma n; sigma) - y|^2 on
minibatches of the weighted training set; sampling integrates the probability-flow ODE
dx/dsigma = (x - D(x; sigma)) / sigma from sigma_max to 0 with Heun's method on the rho schedule. Training and
sampling are ``lax.scan``s, so a generation is one compiled function vmappable over seeds, as for
``model=diffusion``.

References:
    Karras, Aittala, Aila & Laine 2022, "Elucidating the Design Space of Diffusion-Based Generative Models"
    (EDM; arXiv:2206.00364): Table 1 (preconditioning, training, schedule), eqs. 2, 5, 7-8, Algorithms 1-2.
    Alemohammad et al. 2024, "Self-Improving Diffusion Models with Synthetic Data" (SIMS; arXiv:2408.16333): the
    guided denoiser (1 + omega) D_base - omega D_aux on an EDM model.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

import jax
import jax.numpy as jnp

from madloop import config as C
from madloop import rng
from madloop.models import denoising as N
from madloop.models import diffusion as D
from madloop.models import training as T
from madloop.precision import as_float_dtype
from madloop.types import Data, GenerativeModel, Guidable, Key, Knobs, Params, Weights

if TYPE_CHECKING:  # Flax loads when a family is built
    from madloop.models.networks import MLPDenoiser, UNetDenoiser


@dataclass(frozen=True)
class EDMModel(C.ModelConfig):
    """EDM (Karras et al. 2022) with an MLP or a U-Net network F; SIMS-guidable like ``model=diffusion``.

    Attributes:
        network: the network F: ``mlp`` (vectors or flattened images) or ``unet`` (image sources).
        width: hidden units per layer of the MLP.
        depth: hidden layers of the MLP.
        channels: the U-Net's channels per resolution level (2 x 2 pooling between levels).
        blocks: the U-Net's residual blocks per level.
        time_features: sinusoidal features of c_noise (fed to the network as it is: Karras's networks take
            c_noise unscaled, the network attribute ``time_scale`` is 1).
        precond: ``edm`` (Table 1's EDM column: c_skip, c_out, c_in from sigma_data, c_noise = ln(sigma) / 4,
            ln sigma ~ N(p_mean, p_std^2) in training) or ``vp`` (Table 1's VP column: c_skip = 1,
            c_out = -sigma, c_in = 1 / sqrt(sigma^2 + 1), c_noise = 999 t(sigma), t ~ U(1e-5, 1) in training,
            lambda = 1 / sigma^2: noise prediction, as Bertrand et al. 2023 used EDM's code).
        sigma_data: the data's standard deviation the EDM preconditioning assumes (0.5 as in Karras et al. for
            images in [-1, 1]; a fitted value would be the training set's sd, kept a field here).
        p_mean: mean of ln sigma in training (``precond=edm``).
        p_std: standard deviation of ln sigma in training (``precond=edm``).
        sigma_min: the smallest noise level of the sampler's schedule.
        sigma_max: the largest noise level: the sampler starts from N(0, lam sigma_max^2 I).
        rho: the schedule's exponent (eq. 5): larger rho spends more steps at small sigma.
        sample_steps: N, the schedule's noise levels above 0: N - 1 Heun steps and a last Euler step to
            sigma = 0, 2N - 1 network evaluations (Algorithm 1). 32 rather than Karras et al.'s 18 (CIFAR-10): with
            the exact denoiser of the 2-D Gaussian in tests/test_edm.py, 18 levels sample a covariance 10% too
            wide, 32 levels 3%.
        s_churn: the stochastic sampler's churn (Algorithm 2): each step in [s_tmin, s_tmax] first raises sigma
            by gamma = min(s_churn / N, sqrt(2) - 1) with fresh noise; 0 = the deterministic sampler.
        s_tmin: churn only at sigma >= s_tmin.
        s_tmax: churn only at sigma <= s_tmax (null = no upper limit).
        s_noise: the churn noise's standard deviation factor (Karras et al.'s S_noise).
        clip_x0: clip the denoiser's output D to [-1, 1] while sampling; null = on for image sources (pixels
            in [-1, 1]), off for vectors.
        train_steps: optimiser steps of a fit from scratch (generation 0, or each generation without warm start).
        finetune_steps: optimiser steps of a warm-started generation.
        batch: minibatch size, drawn with probability proportional to the training-set weights.
        lr: AdamW learning rate, a traced knob (``sweep.model.lr``).
        weight_decay: AdamW weight decay.
        ema: EMA decay of the weights that sample, a traced knob (``sweep.model.ema``); warms up as in
            ``madloop.models.training.train``.
        classes: 0 = unconditional; else a class-conditional model over the truth's components or classes.
        label_dropout: probability that a training label is replaced by the null label (for classifier-free
            guidance).
        bias: how ``bias.lam`` acts: ``temperature`` (the initial noise's variance lam sigma_max^2, and the churn
            noise's) or ``cfg`` (classifier-free guidance with weight w = 1 / lam - 1; needs classes > 0).
    """

    network: str = "mlp"
    width: int = 128
    depth: int = 3
    channels: list[int] = field(default_factory=lambda: [32, 64])
    blocks: int = 1
    time_features: int = 32
    precond: str = "edm"
    sigma_data: float = 0.5
    p_mean: float = -1.2
    p_std: float = 1.2
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    rho: float = 7.0
    sample_steps: int = 32
    s_churn: float = 0.0
    s_tmin: float = 0.0
    s_tmax: float | None = None
    s_noise: float = 1.0
    clip_x0: bool | None = None
    train_steps: int = 4000
    finetune_steps: int = 1000
    batch: int = 128
    lr: float = 5e-3
    weight_decay: float = 0.0
    ema: float = 0.995
    classes: int = 0
    label_dropout: float = 0.1
    bias: str = "temperature"


# ------------------------------------------------------------------------------------ preconditioning (Table 1)


class Preconditioning(NamedTuple):
    """One column of Karras et al.'s Table 1: the network's scalings, and the training noise levels and weights.

    Attributes:
        scalings: ``scalings(sigma) -> (c_skip, c_out, c_in, c_noise)``, each of sigma's shape.
        sample_sigma: ``sample_sigma(key, shape) -> sigma`` the training distribution of noise levels.
        weight: ``weight(sigma) -> lambda(sigma)``, the loss weight.
    """

    scalings: Callable[[jax.Array], tuple[jax.Array, jax.Array, jax.Array, jax.Array]]
    sample_sigma: Callable[[Key, tuple[int, ...]], jax.Array]
    weight: Callable[[jax.Array], jax.Array]


def edm_preconditioning(sigma_data: float = 0.5, p_mean: float = -1.2, p_std: float = 1.2) -> Preconditioning:
    """Table 1's EDM column: c_skip = sd^2 / (sigma^2 + sd^2), c_out = sigma sd / sqrt(sigma^2 + sd^2),
    c_in = 1 / sqrt(sigma^2 + sd^2), c_noise = ln(sigma) / 4; ln sigma ~ N(p_mean, p_std^2) and
    lambda(sigma) = (sigma^2 + sd^2) / (sigma sd)^2, so that lambda c_out^2 = 1 (eq. 8: unit weight on F)."""
    sd2 = sigma_data**2

    def scalings(sigma: jax.Array):
        v = sigma**2 + sd2
        return sd2 / v, sigma * sigma_data / jnp.sqrt(v), 1 / jnp.sqrt(v), jnp.log(sigma) / 4

    def sample_sigma(key: Key, shape: tuple[int, ...]) -> jax.Array:
        return jnp.exp(p_mean + p_std * rng.normal(key, shape))

    def weight(sigma: jax.Array) -> jax.Array:
        return (sigma**2 + sd2) / (sigma * sigma_data) ** 2

    return Preconditioning(scalings, sample_sigma, weight)


# The VP column's constants (Karras et al. Table 1, after Song et al. 2021's VP SDE).
VP_BETA_D, VP_BETA_MIN, VP_M, VP_EPS_T = 19.9, 0.1, 1000, 1e-5


def vp_sigma(t: jax.Array) -> jax.Array:
    """sigma(t) = sqrt(exp(beta_d t^2 / 2 + beta_min t) - 1) (Table 1, VP)."""
    return jnp.sqrt(jnp.expm1(0.5 * VP_BETA_D * t**2 + VP_BETA_MIN * t))


def vp_time(sigma: jax.Array) -> jax.Array:
    """The inverse of ``vp_sigma``: t = (sqrt(beta_min^2 + 2 beta_d ln(sigma^2 + 1)) - beta_min) / beta_d."""
    return (jnp.sqrt(VP_BETA_MIN**2 + 2 * VP_BETA_D * jnp.log1p(sigma**2)) - VP_BETA_MIN) / VP_BETA_D


def vp_preconditioning() -> Preconditioning:
    """Table 1's VP column: c_skip = 1, c_out = -sigma, c_in = 1 / sqrt(sigma^2 + 1), c_noise = (M - 1) t(sigma);
    sigma = sigma(t) with t ~ U(eps_t, 1) and lambda(sigma) = 1 / sigma^2 (then lambda |D - y|^2 = |F - n|^2: the
    network predicts the noise, as DDPM's eps-prediction)."""

    def scalings(sigma: jax.Array):
        one = jnp.ones_like(sigma)
        return one, -sigma, 1 / jnp.sqrt(sigma**2 + 1), (VP_M - 1) * vp_time(sigma)

    def sample_sigma(key: Key, shape: tuple[int, ...]) -> jax.Array:
        return vp_sigma(jax.random.uniform(key, shape, minval=VP_EPS_T, maxval=1.0))

    def weight(sigma: jax.Array) -> jax.Array:
        return 1 / sigma**2

    return Preconditioning(scalings, sample_sigma, weight)


# raw(x_in [n, d], c_noise [n]) -> [n, d]: the network F on a batch.
Raw = Callable[[Data, jax.Array], Data]
# denoise(x [n, d], sigma []) -> D(x; sigma) [n, d]
Denoiser = Callable[[Data, jax.Array], Data]


def precondition(raw: Raw, pre: Preconditioning, x: Data, sigma: jax.Array) -> Data:
    """D(x; sigma) = c_skip x + c_out F(c_in x; c_noise) (eq. 7) for x [n, d] at noise levels sigma [n] or []."""
    c_skip, c_out, c_in, c_noise = pre.scalings(jnp.broadcast_to(sigma, x.shape[:1]))
    return c_skip[:, None] * x + c_out[:, None] * raw(c_in[:, None] * x, c_noise)


def denoising_loss(raw: Raw, pre: Preconditioning, y: Data, sigma: jax.Array, noise: Data) -> jax.Array:
    """The mean of lambda(sigma) |D(y + sigma n; sigma) - y|^2 over the batch and the d coordinates (eq. 2).

    Computed as eq. 8, lambda c_out^2 |F(c_in x; c_noise) - (y - c_skip x) / c_out|^2: the same number without
    the cancellation in D - y at small sigma (where D ~ y and lambda ~ 1 / sigma^2 is large).

    Args:
        raw: the network F on a batch.
        pre: the preconditioning.
        y: [n, d] clean data.
        sigma: [n] noise levels.
        noise: [n, d] standard normal draws (x = y + sigma noise).
    """
    x = y + sigma[:, None] * noise
    c_skip, c_out, c_in, c_noise = pre.scalings(sigma)
    target = (y - c_skip[:, None] * x) / c_out[:, None]
    scale = pre.weight(sigma) * c_out**2
    return jnp.mean(scale[:, None] * (raw(c_in[:, None] * x, c_noise) - target) ** 2)


# --------------------------------------------------------------------------------------- the sampler (Alg. 1-2)


def rho_schedule(steps: int, sigma_min: float, sigma_max: float, rho: float) -> jax.Array:
    """[steps + 1] noise levels sigma_i = (sigma_max^(1/rho) + i / (N - 1) (sigma_min^(1/rho) -
    sigma_max^(1/rho)))^rho for i < N = ``steps`` (>= 2), and sigma_N = 0 (eq. 5)."""
    i = jnp.arange(steps, dtype=jnp.result_type(float))
    a, b = sigma_max ** (1 / rho), sigma_min ** (1 / rho)
    return jnp.append((a + i / (steps - 1) * (b - a)) ** rho, 0.0)


class Churn(NamedTuple):
    """The stochastic sampler's settings (Algorithm 2): gamma_i = min(s_churn / N, sqrt(2) - 1) for sigma_i in
    [s_tmin, s_tmax], else 0; the added noise has standard deviation s_noise sqrt(sigma_hat^2 - sigma_i^2)."""

    s_churn: float
    s_tmin: float = 0.0
    s_tmax: float = math.inf
    s_noise: float = 1.0


def heun_sampler(
    denoise: Denoiser,
    key: Key,
    x_init: Data,
    sigmas: jax.Array,
    *,
    lam: jax.Array | float = 1.0,
    churn: Churn | None = None,
) -> Data:
    """Integrates dx/dsigma = (x - D(x; sigma)) / sigma from x_init [n, d] at sigmas[0] down the schedule
    ``sigmas`` [N + 1] (sigmas[N] = 0): N - 1 Heun steps (a lax.scan), then Euler's step to sigma = 0, which is
    D(x; sigma_{N-1}) (Algorithm 1). With ``churn`` each step first raises sigma_i to sigma_hat = (1 + gamma_i)
    sigma_i with noise of variance lam s_noise^2 (sigma_hat^2 - sigma_i^2) (Algorithm 2; step i's noise from
    fold_in(key, i + 1)). Returns x_0 [n, d].
    """
    steps = sigmas.shape[0] - 1

    def raise_noise(x: Data, i: jax.Array) -> tuple[Data, jax.Array]:
        sigma = sigmas[i]
        if churn is None or churn.s_churn == 0:
            return x, sigma
        gamma = jnp.where((sigma >= churn.s_tmin) & (sigma <= churn.s_tmax), min(churn.s_churn / steps, 2**0.5 - 1), 0)
        sigma_hat = sigma * (1 + gamma)
        eps = churn.s_noise * jnp.sqrt(lam) * rng.normal(jax.random.fold_in(key, i + 1), x.shape)
        return x + jnp.sqrt(sigma_hat**2 - sigma**2) * eps, sigma_hat

    def heun(x: Data, i: jax.Array) -> tuple[Data, None]:
        x_hat, sigma_hat = raise_noise(x, i)
        sigma_next = sigmas[i + 1]
        d = (x_hat - denoise(x_hat, sigma_hat)) / sigma_hat
        x_euler = x_hat + (sigma_next - sigma_hat) * d
        d_next = (x_euler - denoise(x_euler, sigma_next)) / sigma_next
        return x_hat + (sigma_next - sigma_hat) * (0.5 * d + 0.5 * d_next), None

    x, _ = jax.lax.scan(heun, x_init, jnp.arange(steps - 1))
    x_hat, sigma_hat = raise_noise(x, jnp.int32(steps - 1))
    return denoise(x_hat, sigma_hat)  # Euler to 0: x_hat + (0 - sigma_hat) (x_hat - D) / sigma_hat = D


def initial_noise(key: Key, n: int, dim: int, sigma_max: jax.Array | float, lam: jax.Array | float) -> Data:
    """x_N ~ N(0, lam sigma_max^2 I) [n, d] from fold_in(key, 0): the temperature lam scales its variance."""
    return jnp.sqrt(lam) * sigma_max * rng.normal(jax.random.fold_in(key, 0), (n, dim))


# ------------------------------------------------------------------------------------------------ the family


class EDMFamily(NamedTuple):
    """The pieces a test or a benchmark may want beside the GenerativeModel.

    ``denoiser(net, y)`` is D(x; sigma) for labels y [n] (ignored by an unconditional model; the null label C gives
    a conditional model's unconditional denoiser); ``loss(net, y, sigma, noise, labels)`` the training loss;
    ``train(key, params, x, w, steps, knobs)`` returns (params, losses [steps]); ``sigmas`` the sampler's schedule.
    """

    model: GenerativeModel
    denoiser: Callable[[Params, jax.Array], Denoiser]
    loss: Callable[..., jax.Array]
    train: Callable[..., tuple[D.DiffusionParams, jax.Array]]
    sigmas: jax.Array


def _network(cfg: EDMModel, dim: int, shape: tuple[int, ...] | None) -> MLPDenoiser | UNetDenoiser:
    """The network F for rows of d = ``dim`` values (images of ``shape`` for the U-Net); c_noise enters the
    sinusoidal features unscaled (``time_scale=1``), as in Karras et al.'s networks."""
    from madloop.models.networks import MLPDenoiser, UNetDenoiser

    if cfg.network == "unet":
        if shape is None or math.prod(shape) != dim:
            raise ValueError(f"model.network=unet needs the image shape of rows of {dim} values, got {shape}")
        return UNetDenoiser(
            shape=tuple(shape),
            channels=tuple(cfg.channels),
            blocks=cfg.blocks,
            time_features=cfg.time_features,
            classes=cfg.classes,
            time_scale=1.0,
        )
    return MLPDenoiser(
        dim=dim, width=cfg.width, depth=cfg.depth, time_features=cfg.time_features, classes=cfg.classes, time_scale=1.0
    )


# precond -> the Preconditioning of a config
PRECONDITIONINGS: dict[str, Callable[[EDMModel], Preconditioning]] = {
    "edm": lambda m: edm_preconditioning(m.sigma_data, m.p_mean, m.p_std),
    "vp": lambda m: vp_preconditioning(),
}


def edm_family(cfg: EDMModel, shape: tuple[int, ...] | None = None, scan: Callable | None = None) -> EDMFamily:
    """Builds the family's pure functions for an EDM config.

    Rows, labels and parameters are handled as in ``madloop.models.diffusion``: the U-Net reshapes a row to the
    image ``shape``; a conditional model (``cfg.classes = C > 0``) sees rows [x, label] and samples rows with the
    label each was generated for; the parameters are a ``DiffusionParams`` (network, EMA, optimiser state, label
    frequencies). ``scan(step, carry, steps)`` runs a training scan (None: ``jax.lax.scan``).
    """
    scan = scan if scan is not None else T.plain_scan
    pre = PRECONDITIONINGS[cfg.precond](cfg)
    classes = cfg.classes
    tx = T.adamw(cfg.lr, cfg.weight_decay)
    sigmas = rho_schedule(cfg.sample_steps, cfg.sigma_min, cfg.sigma_max, cfg.rho)
    s_tmax = math.inf if cfg.s_tmax is None else cfg.s_tmax
    churn = Churn(cfg.s_churn, cfg.s_tmin, s_tmax, cfg.s_noise) if cfg.s_churn > 0 else None

    def raw(net: Params, y: jax.Array) -> Raw:
        """F on a batch: x_in [n, d], c_noise [n] -> [n, d] for labels y [n] (the per-example module, vmapped)."""

        def apply(x_in: Data, c_noise: jax.Array) -> Data:
            module = _network(cfg, x_in.shape[-1], shape)
            c_noise = jnp.broadcast_to(c_noise, x_in.shape[:1])
            return jax.vmap(lambda xi, ci, yi: module.apply({"params": net}, xi, ci, yi))(x_in, c_noise, y)

        return apply

    def denoiser(net: Params, y: jax.Array) -> Denoiser:
        return lambda x, sigma: precondition(raw(net, y), pre, x, sigma)

    def loss(net: Params, y: Data, sigma: jax.Array, noise: Data, labels: jax.Array) -> jax.Array:
        return denoising_loss(raw(net, labels), pre, y, sigma, noise)

    def train(key: Key, params: D.DiffusionParams, x: Data, w: Weights, steps: int, knobs: Knobs | None = None):
        """``steps`` AdamW steps on minibatches drawn from x [n, d] with probability ~ w; returns (params, losses).

        Each minibatch draws sigma from the preconditioning's training distribution and one noise per row; a
        conditional model's labels are replaced by the null label C with probability ``label_dropout``. The
        learning rate and EMA decay are the traced knobs ``lr`` and ``ema`` (the config's values without knobs).
        """
        lr, ema_decay = (cfg.lr, cfg.ema) if knobs is None else (knobs["lr"], knobs["ema"])
        rows = T.row_sampler(w)
        data, labels = N.split_labels(x, classes)
        freq = N.label_frequencies(x, w, classes)
        params = params._replace(label_freq=freq, opt=T.with_learning_rate(params.opt, lr))

        def minibatch(i: jax.Array) -> tuple:
            k_idx, k_sigma, k_noise, k_drop = jax.random.split(jax.random.fold_in(key, i), 4)
            idx = rows(k_idx, cfg.batch)
            y, lab = data[idx], labels[idx]
            if classes:
                lab = N.drop_labels(k_drop, lab, classes, cfg.label_dropout)
            return y, pre.sample_sigma(k_sigma, (cfg.batch,)), rng.normal(k_noise, y.shape), lab

        return T.train(tx, loss, minibatch, params, steps, ema=ema_decay, scan=scan)

    def init(key: Key, x: Data, w: Weights) -> D.DiffusionParams:
        data, labels = N.split_labels(x, classes)
        net = as_float_dtype(_network(cfg, data.shape[1], shape).init(key, data[0], jnp.zeros(()), labels[0])["params"])
        return D.DiffusionParams(net, net, tx.init(net), N.label_frequencies(x, w, classes))

    def fit(key: Key, params: D.DiffusionParams, x: Data, w: Weights, warm: bool, knobs: Knobs) -> D.DiffusionParams:
        return train(key, params, x, w, cfg.finetune_steps if warm else cfg.train_steps, knobs)[0]

    def finetune(key: Key, params: D.DiffusionParams, x, w, steps: int, knobs: Knobs) -> D.DiffusionParams:
        """SIMS's auxiliary model: a copy of the sampling weights, a fresh optimiser, ``steps`` more steps."""
        start = D.DiffusionParams(params.ema, params.ema, tx.init(params.ema), params.label_freq)
        return train(key, start, x, w, steps, knobs)[0]

    # Images (rows of an image source, in [-1, 1]) clip D unless model.clip_x0 says otherwise.
    clip = cfg.clip_x0 if cfg.clip_x0 is not None else shape is not None

    def run_sampler(denoise: Denoiser, key: Key, n: int, d: int, lam: jax.Array) -> Data:
        """Heun's sampler from x_N ~ N(0, lam sigma_max^2 I) (lam also scales the churn noise, if any)."""
        final = (lambda x, s: jnp.clip(denoise(x, s), -1.0, 1.0)) if clip else denoise
        return heun_sampler(final, key, initial_noise(key, n, d, sigmas[0], lam), sigmas, lam=lam, churn=churn)

    def dim(params: D.DiffusionParams) -> int:
        return math.prod(shape) if cfg.network == "unet" else D._out_dim(params)

    sample, guided_sample = N.guided_sampling(denoiser, run_sampler, dim, classes=classes, bias=cfg.bias)
    model = GenerativeModel(init, fit, sample, guidance=Guidable(finetune, guided_sample), labelled=classes > 0)
    return EDMFamily(model, denoiser, loss, train, sigmas)


def build(cfg: EDMModel, source=None, scan: Callable | None = None) -> GenerativeModel:
    """The registered builder: the family for a data source's event shape, with the engine's training scan."""
    return edm_family(cfg, None if source is None else source.shape, scan).model


# The fields EDM shares with model=diffusion (network, training, labels, bias), checked by diffusion's check.
SHARED_FIELDS = ("network", "width", "depth", "channels", "blocks", "time_features", "clip_x0", "train_steps")
SHARED_FIELDS += ("finetune_steps", "batch", "lr", "weight_decay", "ema", "classes", "label_dropout", "bias")


def check(m: EDMModel) -> None:
    """Field checks of ``model=edm``: the fields shared with ``model=diffusion`` as diffusion checks them (the
    same messages), then the preconditioning, the noise levels and the sampler."""
    D.check(D.DiffusionModel(**{name: getattr(m, name) for name in SHARED_FIELDS}))
    C.choice("model.precond", m.precond, ("edm", "vp"))
    C.int_at_least("model.sample_steps", m.sample_steps, 2, " (N - 1 Heun steps and a last Euler step)")
    for name in ("sigma_data", "p_std", "sigma_min", "rho"):
        C.positive(f"model.{name}", getattr(m, name))
    if not C.is_number(m.p_mean):
        raise C.ConfigError("model.p_mean", m.p_mean, "must be a finite number (the mean of ln sigma)")
    if not C.is_number(m.sigma_max) or m.sigma_max <= m.sigma_min:
        raise C.ConfigError(
            "model.sigma_max", m.sigma_max, f"must be a finite number > model.sigma_min ({m.sigma_min})"
        )
    for name in ("s_churn", "s_tmin", "s_noise"):
        C.non_negative(f"model.{name}", getattr(m, name))
    if m.s_tmax is not None and (not C.is_number(m.s_tmax) or m.s_tmax < m.s_tmin):
        raise C.ConfigError(
            "model.s_tmax", m.s_tmax, f"must be null (no limit) or a number >= model.s_tmin ({m.s_tmin})"
        )


# The checks against the data source (classes, the U-Net's image shape) are diffusion's: the same fields.
C.register("model", "edm", EDMModel, build=build, check=check, fits=D.fits)
