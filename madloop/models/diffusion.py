"""Denoising diffusion family: VP schedules, epsilon/x0 prediction, AdamW + EMA training, DDPM and DDIM samplers.

Time is continuous, t in [0, 1]: x_t = sqrt(abar(t)) x_0 + sqrt(1 - abar(t)) eps, eps ~ N(0, I). Training draws
t ~ U(T_MIN, 1) and minibatches from the weighted training set; samplers walk an even grid from t = 1 to t = 0.
Everything is a ``lax.scan``, so a generation (train, then sample) is one compiled function vmappable over seeds.

References:
    Ho, Jain & Abbeel 2020, "Denoising Diffusion Probabilistic Models" (DDPM), eqs. 6-7, 11.
    Song, Meng & Ermon 2021, "Denoising Diffusion Implicit Models" (DDIM), eq. 12 with sigma = 0.
    Nichol & Dhariwal 2021, "Improved DDPM", eq. 17 (cosine schedule).
    Song et al. 2021, "Score-Based Generative Modeling through SDEs", eq. 33 (linear VP schedule).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

import jax
import jax.numpy as jnp

from madloop import config as C
from madloop import rng
from madloop.models import denoising as N
from madloop.models import training as T
from madloop.precision import as_float_dtype
from madloop.types import Data, GenerativeModel, Guidable, Key, Knobs, Params, Weights

if TYPE_CHECKING:  # Flax and Optax load when a diffusion family is built (0.4 s of every start-up otherwise)
    import optax

    from madloop.models.networks import MLPDenoiser, UNetDenoiser


@dataclass(frozen=True)
class DiffusionModel(C.ModelConfig):
    """Denoising diffusion model (variance-preserving forward process) with an MLP or a U-Net denoiser.

    Attributes:
        network: the denoiser: ``mlp`` (vectors or flattened images) or ``unet`` (a convolutional U-Net over the
            image shape; needs an image source, data=digits or mnist).
        width: hidden units per layer of the MLP denoiser.
        depth: hidden layers of the MLP denoiser.
        channels: the U-Net's channels per resolution level (2 x 2 pooling between levels): the image side
            must be divisible by 2^(levels - 1).
        blocks: the U-Net's residual blocks per level.
        time_features: sinusoidal features of the diffusion time t.
        schedule: ``cosine`` (Nichol & Dhariwal 2021) or ``linear`` (the VP SDE of Song et al. 2021,
            beta(t) from 0.1 to 20).
        prediction: what the network predicts: ``eps`` (the noise) or ``x0`` (the clean sample).
        sampler: ``ddpm`` (stochastic ancestral) or ``ddim`` (deterministic, eta = 0).
        sample_steps: sampler steps from t = 1 to t = 0.
        clip_x0: clip the sampler's predicted x0 to [-1, 1] on every step (DDPM's image sampler); null = on for
            image sources (data=digits, mnist: pixels in [-1, 1]), off for vectors.
        train_steps: optimiser steps of a fit from scratch (generation 0, or each generation without warm start).
        finetune_steps: optimiser steps of a warm-started generation (from the previous generation's weights).
        batch: minibatch size, drawn with probability proportional to the training-set weights.
        lr: AdamW learning rate: a traced knob (``sweep.model.lr=[...]`` vmaps it), set in the optimiser state
            (optax.inject_hyperparams) at the start of every fit.
        weight_decay: AdamW weight decay.
        ema: EMA decay of the weights that sample; within each fit the decay warms up as
            min(ema, (1 + i) / (10 + i)) at step i. A traced knob (``sweep.model.ema=[...]``).
        classes: 0 = unconditional; else a class-conditional model over this many classes, which must equal the
            truth's number of components (labels are the mixture component a real sample was drawn from, and the
            class a synthetic sample was generated for).
        label_dropout: probability that a training label is replaced by the null label (classifier-free
            guidance needs the unconditional model too; Ho & Salimans 2022).
        bias: how ``bias.lam`` acts: ``temperature`` (the sampler's noise variance) or ``cfg`` (classifier-free
            guidance with weight w = 1 / lam - 1, as in the MAD paper; needs classes > 0).
    """

    network: str = "mlp"
    width: int = 128
    depth: int = 3
    channels: list[int] = field(default_factory=lambda: [32, 64])
    blocks: int = 1
    time_features: int = 32
    schedule: str = "cosine"
    prediction: str = "eps"
    sampler: str = "ddpm"
    sample_steps: int = 100
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


ALPHA_BAR_MIN = 1e-4  # floor of abar(t): keeps x0 = (x - sigma eps) / sqrt(abar) finite at t = 1
T_MIN = 1e-3  # smallest training time
_COSINE_S = 0.008
_BETA_MIN, _BETA_MAX = 0.1, 20.0


def cosine_alpha_bar(t: jax.Array) -> jax.Array:
    """abar(t) = cos^2(pi/2 (t + s) / (1 + s)) / cos^2(pi/2 s / (1 + s)), s = 0.008 (Nichol & Dhariwal eq. 17)."""
    f = jnp.cos(0.5 * math.pi * (t + _COSINE_S) / (1 + _COSINE_S)) ** 2
    f0 = math.cos(0.5 * math.pi * _COSINE_S / (1 + _COSINE_S)) ** 2
    return jnp.clip(f / f0, ALPHA_BAR_MIN, 1.0)


def linear_alpha_bar(t: jax.Array) -> jax.Array:
    """abar(t) = exp(-(b0 t + (b1 - b0) t^2 / 2)), b0 = 0.1, b1 = 20: the VP SDE of Song et al. 2021 (eq. 33)."""
    return jnp.clip(jnp.exp(-(_BETA_MIN * t + 0.5 * (_BETA_MAX - _BETA_MIN) * t**2)), ALPHA_BAR_MIN, 1.0)


SCHEDULES: dict[str, Callable[[jax.Array], jax.Array]] = {"cosine": cosine_alpha_bar, "linear": linear_alpha_bar}


class Prediction(NamedTuple):
    """A denoiser's output at (x_t, t), in both parametrisations (x_t = sqrt(abar) x0 + sqrt(1 - abar) eps).

    Attributes:
        eps: [n, d] predicted noise; the score is -eps / sqrt(1 - abar).
        x0: [n, d] predicted clean sample E[x_0 | x_t].
    """

    eps: jax.Array
    x0: jax.Array


# denoise(x [n, d], t []) -> Prediction
Denoiser = Callable[[Data, jax.Array], Prediction]


def from_eps(x: Data, abar: jax.Array, eps: jax.Array) -> Prediction:
    """Both parametrisations from a noise prediction."""
    return Prediction(eps, (x - jnp.sqrt(1 - abar) * eps) / jnp.sqrt(abar))


def from_x0(x: Data, abar: jax.Array, x0: jax.Array) -> Prediction:
    """Both parametrisations from a clean-sample prediction (abar < 1, i.e. t > 0, as on every sampler step)."""
    return Prediction((x - jnp.sqrt(abar) * x0) / jnp.sqrt(1 - abar), x0)


def guided(base: Prediction, aux: Prediction, omega: jax.Array) -> Prediction:
    """SIMS's extrapolation (1 + omega) base - omega aux, applied to both parametrisations (they are affine in
    the score, so this is the score (1 + omega) s_base - omega s_aux). omega = 0 returns ``base`` bit for bit.

    References:
        Alemohammad et al. 2024, "Self-Improving Diffusion Models with Synthetic Data" (SIMS; arXiv:2408.16333).
    """
    return jax.tree.map(lambda b, a: (1 + omega) * b - omega * a, base, aux)


def ddpm_update(x: Data, pred: Prediction, abar_t, abar_s, noise: Data, lam: jax.Array) -> Data:
    """Ancestral step t -> s < t: a draw from q(x_s | x_t, x0 = pred.x0), noise variance scaled by ``lam``.

    mean = sqrt(abar_s) beta / (1 - abar_t) x0 + sqrt(alpha) (1 - abar_s) / (1 - abar_t) x_t and
    var = beta (1 - abar_s) / (1 - abar_t), with alpha = abar_t / abar_s and beta = 1 - alpha (DDPM eqs. 6-7).
    """
    alpha = abar_t / abar_s
    beta = 1 - alpha
    mean = (jnp.sqrt(abar_s) * beta * pred.x0 + jnp.sqrt(alpha) * (1 - abar_s) * x) / (1 - abar_t)
    var = beta * (1 - abar_s) / (1 - abar_t)
    return mean + jnp.sqrt(lam * var) * noise


def ddim_update(x: Data, pred: Prediction, abar_t, abar_s, noise: Data, lam: jax.Array) -> Data:
    """Deterministic step t -> s: x_s = sqrt(abar_s) x0 + sqrt(1 - abar_s) eps (DDIM eq. 12, sigma = 0)."""
    del x, abar_t, noise, lam
    return jnp.sqrt(abar_s) * pred.x0 + jnp.sqrt(1 - abar_s) * pred.eps


SAMPLERS = {"ddpm": ddpm_update, "ddim": ddim_update}


def reverse_process(
    denoise: Denoiser,
    key: Key,
    x1: Data,
    *,
    alpha_bar: Callable[[jax.Array], jax.Array],
    steps: int,
    update: Callable[..., Data],
    lam: jax.Array,
    clip: float | None = None,
) -> Data:
    """Runs a sampler from x1 [n, d] at t = 1 to t = 0 over ``steps`` even steps (a lax.scan); returns x_0 [n, d].

    Step i goes from t = 1 - i / steps to s = 1 - (i + 1) / steps, with abar(0) = 1 at the last step, so the
    final update returns the denoiser's x0 (DDPM: the posterior at s = 0 has zero variance). With ``clip`` the
    predicted x0 is clipped to [-clip, clip] on every step (and eps recomputed from it), as DDPM's reference
    sampler does for images in [-1, 1]: at large t, x0 = (x - sqrt(1 - abar) eps) / sqrt(abar) magnifies the
    noise prediction's error up to 1 / sqrt(abar) = 100 times.
    """

    def body(x: Data, i: jax.Array) -> tuple[Data, None]:
        t = 1.0 - i / steps
        s = 1.0 - (i + 1) / steps
        abar_t, abar_s = alpha_bar(t), jnp.where(i + 1 == steps, 1.0, alpha_bar(s))
        noise = rng.normal(jax.random.fold_in(key, i + 1), x.shape)
        pred = denoise(x, t)
        if clip is not None:
            pred = from_x0(x, abar_t, jnp.clip(pred.x0, -clip, clip))
        return update(x, pred, abar_t, abar_s, noise, lam), None

    x, _ = jax.lax.scan(body, x1, jnp.arange(steps))
    return x


def sample_with(denoise: Denoiser, key: Key, n: int, dim: int, *, lam: jax.Array, **sampler) -> Data:
    """Draws x1 ~ N(0, lam I) [n, d] and runs ``reverse_process`` (keyword args ``sampler``) from it.

    Sampling bias as a temperature: the initial noise has variance ``lam`` (and so do the ancestral sampler's
    per-step noises). lam = 1 is the model; lam < 1 concentrates samples on high-density regions.
    """
    x1 = jnp.sqrt(lam) * rng.normal(jax.random.fold_in(key, 0), (n, dim))
    return reverse_process(denoise, key, x1, lam=lam, **sampler)


class DiffusionParams(NamedTuple):
    """Parameters of the diffusion family.

    Attributes:
        net: the denoiser's trained weights (a Flax params PyTree).
        ema: the exponential moving average of ``net``: the weights that sample.
        opt: the optimiser state (AdamW moments and the injected learning rate).
        label_freq: [max(C, 1)] class frequencies of the last training set (conditional models draw the labels
            of their samples from it; [1.0] for an unconditional model).
    """

    net: Params
    ema: Params
    opt: optax.OptState
    label_freq: jax.Array


class DiffusionFamily(NamedTuple):
    """The pieces a test or a benchmark may want beside the GenerativeModel.

    ``denoiser(net, y)`` is the denoiser for labels y [n] (ignored by an unconditional model; the null label C
    gives a conditional model's unconditional prediction).
    """

    model: GenerativeModel
    denoiser: Callable[[Params, jax.Array], Denoiser]
    loss: Callable[..., jax.Array]
    train: Callable[..., tuple[DiffusionParams, jax.Array]]


def _network(cfg: DiffusionModel, dim: int, shape: tuple[int, ...] | None) -> MLPDenoiser | UNetDenoiser:
    """The denoiser module for rows of d = ``dim`` values (images of ``shape`` for the U-Net)."""
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
        )
    return MLPDenoiser(dim=dim, width=cfg.width, depth=cfg.depth, time_features=cfg.time_features, classes=cfg.classes)


def diffusion_family(cfg: DiffusionModel, shape: tuple[int, ...] | None = None, scan: Callable | None = None):
    """Builds the family's pure functions for a diffusion config.

    The same schedule, loss, samplers, sampling bias and SIMS code serve every denoiser: the MLP sees a row
    [d]; the U-Net (``model.network=unet``) reshapes the row to the image ``shape`` (h, w, c) and back, so the
    loop, its pools and its metrics keep carrying rows.

    A conditional model (``cfg.classes = C > 0``) sees its data as [n, d + 1]: the samples and, in the last
    column, their class label (as a float); its samples come back the same way, with the class each was generated
    for. The loop moves the label column along with the data (see ``madloop.loop``).

    ``scan(step, carry, steps)`` runs a training scan (the engine hands in one that reports progress); None is
    ``jax.lax.scan`` over the step indices.

    Returns:
        a DiffusionFamily.
    """
    scan = scan if scan is not None else T.plain_scan
    alpha_bar = SCHEDULES[cfg.schedule]
    convert = from_eps if cfg.prediction == "eps" else from_x0
    classes = cfg.classes
    null = jnp.int32(classes)  # the null label of classifier-free guidance
    tx = T.adamw(cfg.lr, cfg.weight_decay)

    def split(x: Data) -> tuple[Data, jax.Array]:
        """Samples [n, d] and labels [n] (zeros for an unconditional model)."""
        return N.split_labels(x, classes)

    def label_freq(x: Data, w: Weights) -> jax.Array:
        return N.label_frequencies(x, w, classes)

    def apply(net: Params, x: Data, t: jax.Array, y: jax.Array) -> jax.Array:
        """The raw network output [n, d] for x [n, d] at times t [n] with labels y [n] (per-example module, vmapped)."""
        module = _network(cfg, x.shape[-1], shape)
        return jax.vmap(lambda xi, ti, yi: module.apply({"params": net}, xi, ti, yi))(x, t, y)

    def denoiser(net: Params, y: jax.Array) -> Denoiser:
        def denoise(x: Data, t: jax.Array) -> Prediction:
            abar = alpha_bar(t)
            return convert(x, abar, apply(net, x, jnp.broadcast_to(t, x.shape[:1]), y))

        return denoise

    def loss(net: Params, x0: Data, t: jax.Array, eps: Data, y: jax.Array) -> jax.Array:
        """Mean squared error at x_t = sqrt(abar) x0 + sqrt(1 - abar) eps: of the noise for eps-prediction
        (Ho et al. eq. 14), of the clean sample weighted by min(SNR, 5) for x0-prediction (Min-SNR weighting,
        Hang et al. 2023; SNR = abar / (1 - abar), so small-t errors, which the sampler amplifies, count).
        """
        abar = alpha_bar(t)[:, None]
        xt = jnp.sqrt(abar) * x0 + jnp.sqrt(1 - abar) * eps
        out = apply(net, xt, t, y)
        if cfg.prediction == "eps":
            return jnp.mean((out - eps) ** 2)
        return jnp.mean(jnp.minimum(abar / (1 - abar), 5.0) * (out - x0) ** 2)

    def train(key: Key, params: DiffusionParams, x: Data, w: Weights, steps: int, knobs: Knobs | None = None):
        """``steps`` AdamW steps on minibatches drawn from x [n, d] with probability ~ w; returns (params, losses).

        A conditional model's labels are replaced by the null label with probability ``label_dropout``. The
        learning rate and EMA decay are the traced knobs ``lr`` and ``ema`` (the config's values without knobs).
        """
        lr, ema_decay = (cfg.lr, cfg.ema) if knobs is None else (knobs["lr"], knobs["ema"])
        rows = T.row_sampler(w)
        data, labels = split(x)
        params = params._replace(label_freq=label_freq(x, w), opt=T.with_learning_rate(params.opt, lr))

        def minibatch(i: jax.Array) -> tuple:
            k_idx, k_t, k_eps = jax.random.split(jax.random.fold_in(key, i), 3)
            k_drop = jax.random.fold_in(k_idx, 1)  # (derived, so unconditional runs keep their draws)
            idx = rows(k_idx, cfg.batch)
            x0, y = data[idx], labels[idx]
            if classes:
                y = jnp.where(jax.random.bernoulli(k_drop, cfg.label_dropout, y.shape), null, y)
            t = jax.random.uniform(k_t, (cfg.batch,), minval=T_MIN, maxval=1.0)
            return x0, t, rng.normal(k_eps, x0.shape), y

        return T.train(tx, loss, minibatch, params, steps, ema=ema_decay, scan=scan)

    def init(key: Key, x: Data, w: Weights) -> DiffusionParams:
        data, labels = split(x)
        net = as_float_dtype(_network(cfg, data.shape[1], shape).init(key, data[0], jnp.zeros(()), labels[0])["params"])
        return DiffusionParams(net, net, tx.init(net), label_freq(x, w))

    def fit(key: Key, params: DiffusionParams, x: Data, w: Weights, warm: bool, knobs: Knobs) -> DiffusionParams:
        return train(key, params, x, w, cfg.finetune_steps if warm else cfg.train_steps, knobs)[0]

    def finetune(key: Key, params: DiffusionParams, x: Data, w: Weights, steps: int, knobs: Knobs) -> DiffusionParams:
        # A copy of the sampling weights with a fresh optimiser state, trained for `steps` more steps.
        start = DiffusionParams(params.ema, params.ema, tx.init(params.ema), params.label_freq)
        return train(key, start, x, w, steps, knobs)[0]

    # Images (rows of an image source, in [-1, 1]) clip the predicted x0 unless model.clip_x0 says otherwise.
    clip = 1.0 if (cfg.clip_x0 if cfg.clip_x0 is not None else shape is not None) else None
    run_sampler = functools.partial(
        sample_with, alpha_bar=alpha_bar, steps=cfg.sample_steps, update=SAMPLERS[cfg.sampler], clip=clip
    )

    def conditional(net: Params, y: jax.Array, cfg_weight: jax.Array) -> Denoiser:
        """The denoiser for labels y, with classifier-free guidance (1 + w) cond - w uncond when bias=cfg."""
        cond = denoiser(net, y)
        if cfg.bias != "cfg":
            return cond
        uncond = denoiser(net, jnp.full_like(y, null))
        return lambda x, t: guided(cond(x, t), uncond(x, t), cfg_weight)

    def draw(key: Key, params: DiffusionParams, n: int, lam: jax.Array, make_denoiser) -> Data:
        """Samples [n, d] (unconditional) or [n, d + 1] with labels drawn from the training frequencies.

        bias=temperature: lam is the sampler's noise variance; bias=cfg: guidance weight w = 1 / lam - 1 and
        unit temperature (MAD, Alemohammad et al. 2023, Sec. 2.3: lambda = 1 / (1 + w)).
        """
        d = math.prod(shape) if cfg.network == "unet" else _out_dim(params)
        if not classes:
            return run_sampler(make_denoiser(jnp.zeros((n,), jnp.int32), 0.0), key, n, d, lam=lam)
        k_label, k_sample = jax.random.split(key)
        y = jax.random.categorical(k_label, jnp.log(params.label_freq), shape=(n,)).astype(jnp.int32)
        cfg_weight, temperature = (1.0 / lam - 1.0, jnp.ones_like(lam)) if cfg.bias == "cfg" else (0.0, lam)
        x = run_sampler(make_denoiser(y, cfg_weight), k_sample, n, d, lam=temperature)
        return jnp.concatenate([x, y[:, None].astype(x.dtype)], axis=1)

    def sample(key: Key, params: DiffusionParams, n: int, knobs: Knobs) -> Data:
        return draw(key, params, n, knobs["lam"], lambda y, w: conditional(params.ema, y, w))

    def guided_sample(key: Key, base: DiffusionParams, aux: DiffusionParams, n: int, knobs: Knobs) -> Data:
        omega = knobs["omega"]

        def make(y, w):
            d_base, d_aux = conditional(base.ema, y, w), conditional(aux.ema, y, w)
            return lambda x, t: guided(d_base(x, t), d_aux(x, t), omega)

        return draw(key, base, n, knobs["lam"], make)

    model = GenerativeModel(init, fit, sample, guidance=Guidable(finetune, guided_sample), labelled=classes > 0)
    return DiffusionFamily(model, denoiser, loss, train)


def _out_dim(params: DiffusionParams) -> int:
    """d, read from the output layer's bias (the last Dense of the MLP denoiser)."""
    last = max((k for k in params.ema if k.startswith("Dense_")), key=lambda k: int(k.split("_")[1]))
    return params.ema[last]["bias"].shape[-1]


def build(cfg: DiffusionModel, source=None, scan: Callable | None = None) -> GenerativeModel:
    """The registered builder: the family for a data source's event shape, with the engine's training scan."""
    return diffusion_family(cfg, None if source is None else source.shape, scan).model


def check(m: DiffusionModel) -> None:
    """Field checks of ``model=diffusion``."""
    C.choice("model.network", m.network, ("mlp", "unet"))
    if m.clip_x0 is not None and not isinstance(m.clip_x0, bool):
        raise C.ConfigError("model.clip_x0", m.clip_x0, "must be true, false or null (on for images)")
    ok = isinstance(m.channels, list | tuple) and len(m.channels) > 0
    if not ok or not all(isinstance(c, int) and not isinstance(c, bool) and c >= 1 for c in m.channels):
        raise C.ConfigError("model.channels", m.channels, "must be a non-empty list of integers >= 1 (one per level)")
    for name in ("width", "depth", "blocks", "sample_steps", "train_steps", "finetune_steps", "batch"):
        C.int_at_least(f"model.{name}", getattr(m, name), 1)
    C.int_at_least("model.time_features", m.time_features, 2)
    if m.time_features % 2:
        raise C.ConfigError("model.time_features", m.time_features, "must be even (sine and cosine pairs)")
    C.choice("model.schedule", m.schedule, ("cosine", "linear"))
    C.choice("model.prediction", m.prediction, ("eps", "x0"))
    C.choice("model.sampler", m.sampler, ("ddpm", "ddim"))
    C.positive("model.lr", m.lr)
    if not isinstance(m.weight_decay, int | float) or not math.isfinite(m.weight_decay) or m.weight_decay < 0:
        raise C.ConfigError("model.weight_decay", m.weight_decay, "must be a finite number >= 0")
    if not isinstance(m.ema, int | float) or not 0 <= m.ema < 1:
        raise C.ConfigError("model.ema", m.ema, "must lie in [0, 1) (0 = no averaging)")
    C.int_at_least("model.classes", m.classes, 0, " (0 = unconditional)")
    if not isinstance(m.label_dropout, int | float) or not 0 <= m.label_dropout < 1:
        raise C.ConfigError("model.label_dropout", m.label_dropout, "must lie in [0, 1)")
    C.choice("model.bias", m.bias, ("temperature", "cfg"))
    if m.bias == "cfg" and m.classes == 0:
        raise C.ConfigError(
            "model.bias", "cfg", "classifier-free guidance needs a conditional model (model.classes > 0)"
        )
    if m.bias == "cfg" and m.label_dropout == 0:
        raise C.ConfigError("model.label_dropout", 0, "must be > 0 with model.bias=cfg (the unconditional model)")


def fits(m: DiffusionModel, cfg: C.Config, parts) -> None:
    """A conditional model needs a labelled truth with as many classes; a U-Net needs images its pooling divides."""
    del cfg
    source = parts.source
    if m.classes:
        if source.classes == 0:
            raise C.ConfigError(
                "model.classes",
                m.classes,
                "needs a labelled truth: a mixture with >= 2 modes (ring8, grid25, mixture) or digits, mnist",
            )
        if m.classes != source.classes:
            raise C.ConfigError(
                "model.classes",
                m.classes,
                f"must be 0 or the truth's number of components or classes ({source.classes})",
            )
    if m.network != "unet":
        return
    if source.shape is None:
        raise C.ConfigError("model.network", "unet", "needs an image source (data=digits, mnist); use mlp for vectors")
    factor = 2 ** (len(m.channels) - 1)
    if source.shape[0] % factor or source.shape[1] % factor:
        raise C.ConfigError(
            "model.channels",
            list(m.channels),
            f"{len(m.channels)} levels pool by {factor}, which must divide the image side {source.shape[0]}",
        )


C.register("model", "diffusion", DiffusionModel, build=build, check=check, fits=fits)
