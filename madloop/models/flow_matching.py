"""Conditional flow matching family: a velocity network regressed on straight paths, sampled with an ODE solver.

Paths go from noise at t = 0 to data at t = 1: x_t = (1 - (1 - sigma_min) t) x0 + t x1 with x0 ~ N(0, I) and x1
a data row, and the network v(x_t, t) regresses the path's velocity x1 - (1 - sigma_min) x0 on pairs (x0, x1)
drawn independently or re-paired within each minibatch by an entropic optimal transport plan. Sampling integrates
dx/dt = v(x, t) from t = 0 to 1 with Euler's or Heun's method. Training and sampling are ``lax.scan``s, so a
generation is one compiled function vmappable over seeds, as for ``model=diffusion``.

References:
    Lipman, Chen, Ben-Hamu, Nickel & Le 2023, "Flow Matching for Generative Modeling" (arXiv:2210.02747),
    eqs. 20-23 (the optimal transport conditional path with sigma_min) and the CFM loss, eq. 9.
    Tong, Fatras, Malkin, Huguet, Zhang, Rector-Brooks, Wolf & Bengio 2024, "Improving and generalizing flow-based
    generative models with minibatch optimal transport" (TMLR; arXiv:2302.00482): I-CFM (independent coupling)
    and OT-CFM (minibatch OT coupling), Algorithms 1-3.
    Cuturi 2013, "Sinkhorn Distances"; Peyre & Cuturi 2019, "Computational Optimal Transport", Sec. 4.4
    (log-domain Sinkhorn) and Prop. 4.1 (the entropic plan's cost converges to the OT cost).
    Bertrand, Bose, Duplessis, Jiralerspong & Gidel 2023, "On the Stability of Iterative Retraining of Generative
    Models on their own Data" (arXiv:2310.00429): flow matching retrained on real + lambda x synthetic data.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import jax
import jax.numpy as jnp

from madloop import config as C
from madloop import rng
from madloop.models import denoising as L
from madloop.models import diffusion as D
from madloop.models import training as T
from madloop.precision import as_float_dtype
from madloop.types import Data, GenerativeModel, Guidable, Key, Knobs, Params, Weights


@dataclass(frozen=True)
class FlowMatchingModel(C.ModelConfig):
    """Conditional flow matching (Lipman et al. 2023; Tong et al. 2024) with an MLP or a U-Net velocity network.

    Attributes:
        network: the velocity network: ``mlp`` (vectors or flattened images) or ``unet`` (image sources).
        width: hidden units per layer of the MLP.
        depth: hidden layers of the MLP.
        channels: the U-Net's channels per resolution level (2 x 2 pooling between levels).
        blocks: the U-Net's residual blocks per level.
        time_features: sinusoidal features of the flow time t in [0, 1].
        sigma_min: the width of the path's end at the data (Lipman et al. eq. 20): x_t = (1 - (1 - sigma_min) t)
            x0 + t x1; 0 gives the straight interpolation of I-CFM / rectified flow (x1 - x0 as target).
        coupling: how a minibatch pairs noise with data: ``independent`` (I-CFM, Lipman et al.'s CFM) or ``ot``
            (OT-CFM: the pairs are re-drawn from an entropic optimal transport plan of the minibatch).
        ot_epsilon: the entropic regularisation of the OT plan, relative to the minibatch's mean squared distance.
        ot_iters: Sinkhorn scaling iterations at the final epsilon (fixed), after 10 log-domain iterations in
            which epsilon falls geometrically from the mean cost.
        solver: the ODE solver: ``euler`` (first order, one network evaluation a step) or ``heun`` (Heun's
            second-order method, two evaluations a step).
        sample_steps: even solver steps from t = 0 to t = 1.
        clip: clip the samples to [-1, 1] (the pixel range); null = on for image sources, off for vectors.
        train_steps: optimiser steps of a fit from scratch (generation 0, or each generation without warm start).
        finetune_steps: optimiser steps of a warm-started generation (from the previous generation's weights).
        batch: minibatch size, drawn with probability proportional to the training-set weights.
        lr: AdamW learning rate (a traced knob, ``sweep.model.lr``).
        weight_decay: AdamW weight decay.
        ema: EMA decay of the weights that sample (a traced knob, ``sweep.model.ema``).
        classes: 0 = unconditional; else a class-conditional model over the truth's classes.
        label_dropout: probability that a training label is replaced by the null label (classifier-free guidance).
        bias: how ``bias.lam`` acts: ``temperature`` (the initial noise x0 ~ N(0, lam I)) or ``cfg``
            (classifier-free guidance on the velocity with weight w = 1 / lam - 1; needs classes > 0).
    """

    network: str = "mlp"
    width: int = 128
    depth: int = 3
    channels: list[int] = field(default_factory=lambda: [32, 64])
    blocks: int = 1
    time_features: int = 32
    sigma_min: float = 0.0
    coupling: str = "independent"
    ot_epsilon: float = 0.03
    ot_iters: int = 100
    solver: str = "heun"
    sample_steps: int = 50
    clip: bool | None = None
    train_steps: int = 4000
    finetune_steps: int = 1000
    batch: int = 128
    lr: float = 3e-3
    weight_decay: float = 0.0
    ema: float = 0.995
    classes: int = 0
    label_dropout: float = 0.1
    bias: str = "temperature"


# velocity(x [n, d], t []) -> [n, d]
Velocity = Callable[[Data, jax.Array], Data]


# ------------------------------------------------------------------------------------------- the ODE solvers


def euler_step(velocity: Velocity, x: Data, t: jax.Array, h: jax.Array) -> Data:
    """x + h v(x, t): Euler's method, local error O(h^2), global O(h)."""
    return x + h * velocity(x, t)


def heun_step(velocity: Velocity, x: Data, t: jax.Array, h: jax.Array) -> Data:
    """Heun's method (explicit trapezoid): k1 = v(x, t), k2 = v(x + h k1, t + h), x + h (k1 + k2) / 2; global O(h^2).

    References:
        Hairer, Norsett & Wanner, "Solving Ordinary Differential Equations I", Sec. II.1 (Runge's order-2 family).
    """
    k1 = velocity(x, t)
    k2 = velocity(x + h * k1, t + h)
    return x + 0.5 * h * (k1 + k2)


SOLVERS = {"euler": euler_step, "heun": heun_step}


def integrate(velocity: Velocity, x0: Data, *, steps: int, step: Callable[..., Data]) -> Data:
    """Solves dx/dt = velocity(x, t) from t = 0 (x0 [n, d]) to t = 1 over ``steps`` even steps (a lax.scan).

    Step i starts at t = i / steps (computed so, not accumulated, so the grid is exact at t = 1).
    """
    h = jnp.asarray(1.0 / steps, x0.dtype)

    def body(x: Data, i: jax.Array) -> tuple[Data, None]:
        return step(velocity, x, i.astype(x0.dtype) / steps, h), None

    x, _ = jax.lax.scan(body, x0, jnp.arange(steps))
    return x


def sample_with(velocity: Velocity, key: Key, n: int, dim: int, *, lam: jax.Array, steps: int, step) -> Data:
    """Draws x0 ~ N(0, lam I) [n, d] and integrates the flow to t = 1.

    Sampling bias as a temperature: ``lam`` is the variance of the initial noise. For a Gaussian truth with the
    independent coupling the exact flow map is affine, x1 = m + S^(1/2) x0, so samples are N(m, lam S).
    """
    x0 = jnp.sqrt(lam) * rng.normal(jax.random.fold_in(key, 0), (n, dim))
    return integrate(velocity, x0, steps=steps, step=step)


def guided_velocity(base: Velocity, aux: Velocity, omega: jax.Array) -> Velocity:
    """SIMS's extrapolation on the velocity, (1 + omega) v_base - omega v_aux (omega = 0: ``base`` bit for bit).

    The velocity is affine in the score along a Gaussian path (Lipman et al. 2023, eq. 28 for diffusion paths;
    Zheng et al. 2023 for the straight path), so this is the score extrapolation of SIMS at every t.
    """
    return lambda x, t: D.guided(base(x, t), aux(x, t), omega)


def conditional_path(x0: Data, x1: Data, t: jax.Array, sigma_min: float) -> tuple[Data, Data]:
    """The conditional path's point and velocity (x_t, u_t) [n, d] for noise x0, data x1 [n, d] at times t [n]:
    x_t = (1 - (1 - sigma_min) t) x0 + t x1 and u_t = x1 - (1 - sigma_min) x0 (Lipman et al. eqs. 20-23 written
    from noise at t = 0; sigma_min = 0 is Tong et al.'s I-CFM with sigma = 0)."""
    shrink, tt = 1.0 - sigma_min, t[:, None]
    return (1 - shrink * tt) * x0 + tt * x1, x1 - shrink * x0


# ----------------------------------------------------------------------------------- the minibatch OT coupling


ANNEAL_ITERS = 10  # log-domain Sinkhorn iterations of the epsilon annealing (mean cost -> epsilon x mean cost)


def sinkhorn_log_plan(cost: jax.Array, mask: jax.Array | None, *, epsilon: float, iters: int) -> jax.Array:
    """log pi [n, n]: the entropic OT plan between two uniform sets of n points, by Sinkhorn's iterations.

    ``ANNEAL_ITERS`` iterations run in the log domain on potentials f [n], g [n] (cost units),
    f_i = eps log(1/n) - eps logsumexp_j((g_j - C_ij) / eps), g_j = eps log(1/n) - eps logsumexp_i((f_i - C_ij) / eps),
    while eps falls geometrically from the mean cost to ``epsilon`` x the mean cost (epsilon scaling: a fixed
    budget converges at small epsilon). The potentials are then absorbed into the kernel,
    K_ij = exp((f_i + g_j - C_ij) / eps), and ``iters`` plain scaling iterations u = (1/n) / (K v),
    v = (1/n) / (K^T u) follow at the final eps: the same iteration (u = exp(delta f / eps)), stable because u
    and v stay near 1, and a matrix-vector product instead of n^2 exponentials (measured at n = 128: 50 log-domain
    logsumexps 2.3 ms, 50 matrix-vector products 0.2 ms). The returned plan's columns sum to 1/n exactly and its
    rows to 1/n up to convergence; once converged its cost exceeds the optimal assignment's by at most eps log n
    (its entropy lies between log n and 2 log n).

    Args:
        cost: C [n, n], C_ij the cost of pairing point i of the first set with point j of the second.
        mask: [n, n] bool, pairs allowed (None: all); every row and column must allow a perfect matching (e.g.
            same-label pairs with equal label counts on both sides).
        epsilon: the final regularisation relative to the mean cost (static).
        iters: scaling iterations at the final epsilon (static).

    References:
        Peyre & Cuturi 2019, "Computational Optimal Transport", Remark 4.23 (log domain), Sec. 4.4; Schmitzer
        2019, "Stabilized sparse scaling algorithms for entropy regularized transport problems" (absorption and
        epsilon scaling).
    """
    n = cost.shape[0]
    log_uniform = -jnp.log(jnp.asarray(n, cost.dtype))
    valid = jnp.ones(cost.shape, bool) if mask is None else mask
    scale = jnp.sum(jnp.where(valid, cost, 0.0)) / jnp.sum(valid) + jnp.finfo(cost.dtype).tiny
    cost = jnp.where(valid, cost, jnp.inf)

    def log_step(fg: tuple[jax.Array, jax.Array], k: jax.Array) -> tuple[tuple[jax.Array, jax.Array], None]:
        f, g = fg
        eps = scale * epsilon ** ((k + 1) / ANNEAL_ITERS)
        f = eps * (log_uniform - jax.nn.logsumexp((g[None, :] - cost) / eps, axis=1))
        g = eps * (log_uniform - jax.nn.logsumexp((f[:, None] - cost) / eps, axis=0))
        return (f, g), None

    zeros = jnp.zeros((n,), cost.dtype)
    (f, g), _ = jax.lax.scan(log_step, (zeros, zeros), jnp.arange(ANNEAL_ITERS))
    log_kernel = (f[:, None] + g[None, :] - cost) / (epsilon * scale)
    kernel = jnp.exp(log_kernel)

    def scaling_step(uv: tuple[jax.Array, jax.Array], _) -> tuple[tuple[jax.Array, jax.Array], None]:
        u, v = uv
        u = 1.0 / (n * (kernel @ v))
        return (u, 1.0 / (n * (kernel.T @ u))), None

    ones = jnp.ones((n,), cost.dtype)
    (u, v), _ = jax.lax.scan(scaling_step, (ones, ones), None, length=iters)
    return jnp.log(u)[:, None] + log_kernel + jnp.log(v)[None, :]


def ot_pairing(key: Key, x0: Data, x1: Data, labels: jax.Array | None, *, epsilon: float, iters: int) -> jax.Array:
    """For each data row x1_j, the index [n] of its noise partner, drawn from the entropic OT plan's column j.

    The cost is the squared Euclidean distance (OT-CFM, Tong et al. 2024, Alg. 3). Each data row keeps its place
    (the weighted minibatch is unchanged) and draws its noise from pi(. | j); at small epsilon the plan is close to
    a permutation, the optimal assignment. With ``labels`` [n] (a conditional model) noise i may only pair with data
    of label y_i, the label the independent draw gave it: every class's noise is then a fresh N(0, I) sample,
    independent of the class, as a conditional sampler assumes.
    """
    cost = jnp.sum((x0[:, None, :] - x1[None, :, :]) ** 2, axis=-1)
    mask = None if labels is None else labels[:, None] == labels[None, :]
    log_plan = sinkhorn_log_plan(cost, mask, epsilon=epsilon, iters=iters)
    return jax.random.categorical(key, log_plan.T, axis=-1)


# ---------------------------------------------------------------------------------------------- the family


class FlowMatchingFamily(NamedTuple):
    """The pieces a test or a benchmark may want beside the GenerativeModel.

    ``velocity(net, y)`` is the velocity field for labels y [n] (ignored by an unconditional model; the null label
    C gives a conditional model's unconditional velocity); ``pairs(key, x1, y)`` a minibatch's (x0, x1, y) after
    the coupling; ``train(key, params, x, w, steps, knobs)`` returns (params, losses [steps]).
    """

    model: GenerativeModel
    velocity: Callable[[Params, jax.Array], Velocity]
    loss: Callable[..., jax.Array]
    train: Callable[..., tuple[D.DiffusionParams, jax.Array]]


def flow_matching_family(cfg: FlowMatchingModel, shape: tuple[int, ...] | None = None, scan: Callable | None = None):
    """Builds the family's pure functions for a flow matching config.

    Parameters are ``madloop.models.diffusion.DiffusionParams`` (net, ema, opt, label_freq): the same training
    state, so the shared training scan, warm starts, checkpoints and SIMS fine-tunes treat both families alike.
    Rows, labels in a last column for a conditional model, and the U-Net's image ``shape`` are handled as in
    ``diffusion_family``; the network is diffusion's (``MLPDenoiser`` / ``UNetDenoiser``) with the flow time
    t in [0, 1] as its time input, its output read as the velocity [d].

    Returns:
        a FlowMatchingFamily.
    """
    scan = scan if scan is not None else T.plain_scan
    classes = cfg.classes
    null = jnp.int32(classes)
    tx = T.adamw(cfg.lr, cfg.weight_decay)

    def apply(net: Params, x: Data, t: jax.Array, y: jax.Array) -> Data:
        """The network's velocity [n, d] at x [n, d], times t [n], labels y [n] (per-example module, vmapped)."""
        module = D._network(cfg, x.shape[-1], shape)
        return jax.vmap(lambda xi, ti, yi: module.apply({"params": net}, xi, ti, yi))(x, t, y)

    def velocity(net: Params, y: jax.Array) -> Velocity:
        return lambda x, t: apply(net, x, jnp.broadcast_to(t, x.shape[:1]), y)

    def loss(net: Params, x0: Data, x1: Data, t: jax.Array, y: jax.Array) -> jax.Array:
        """The CFM loss, mean |v(x_t, t) - u_t|^2 over the minibatch's pairs (Lipman et al. eq. 9; the rows were
        drawn in proportion to their weights, so this is the weighted loss)."""
        xt, ut = conditional_path(x0, x1, t, cfg.sigma_min)
        return jnp.mean((apply(net, xt, t, y) - ut) ** 2)

    def train(key: Key, params: D.DiffusionParams, x: Data, w: Weights, steps: int, knobs: Knobs | None = None):
        """``steps`` AdamW steps on minibatches drawn from x [n, d] with probability ~ w; returns (params, losses)."""
        lr, ema_decay = (cfg.lr, cfg.ema) if knobs is None else (knobs["lr"], knobs["ema"])
        rows = T.row_sampler(w)
        data, labels = L.split_labels(x, classes)
        params = params._replace(
            label_freq=L.label_frequencies(x, w, classes), opt=T.with_learning_rate(params.opt, lr)
        )

        def minibatch(i: jax.Array) -> tuple:
            k_idx, k_t, k_noise = jax.random.split(jax.random.fold_in(key, i), 3)
            idx = rows(k_idx, cfg.batch)
            x1, y = data[idx], labels[idx]
            x0 = rng.normal(k_noise, x1.shape)
            if cfg.coupling == "ot":
                pick = ot_pairing(
                    jax.random.fold_in(k_idx, 2),
                    x0,
                    x1,
                    y if classes else None,
                    epsilon=cfg.ot_epsilon,
                    iters=cfg.ot_iters,
                )
                x0 = x0[pick]
            if classes:
                y = L.drop_labels(jax.random.fold_in(k_idx, 1), y, classes, cfg.label_dropout)
            t = jax.random.uniform(k_t, (cfg.batch,), x1.dtype)
            return x0, x1, t, y

        return T.train(tx, loss, minibatch, params, steps, ema=ema_decay, scan=scan)

    def init(key: Key, x: Data, w: Weights) -> D.DiffusionParams:
        data, labels = L.split_labels(x, classes)
        net = D._network(cfg, data.shape[1], shape).init(key, data[0], jnp.zeros(()), labels[0])["params"]
        net = as_float_dtype(net)
        return D.DiffusionParams(net, net, tx.init(net), L.label_frequencies(x, w, classes))

    def fit(key: Key, params: D.DiffusionParams, x: Data, w: Weights, warm: bool, knobs: Knobs) -> D.DiffusionParams:
        return train(key, params, x, w, cfg.finetune_steps if warm else cfg.train_steps, knobs)[0]

    def finetune(
        key: Key, params: D.DiffusionParams, x: Data, w: Weights, steps: int, knobs: Knobs
    ) -> D.DiffusionParams:
        # SIMS's auxiliary model: a copy of the sampling (EMA) weights with a fresh optimiser, `steps` more steps.
        start = D.DiffusionParams(params.ema, params.ema, tx.init(params.ema), params.label_freq)
        return train(key, start, x, w, steps, knobs)[0]

    clip = cfg.clip if cfg.clip is not None else shape is not None
    step = SOLVERS[cfg.solver]

    def conditional(net: Params, y: jax.Array, cfg_weight: jax.Array) -> Velocity:
        """The velocity for labels y, with classifier-free guidance (1 + w) v_cond - w v_uncond when bias=cfg."""
        cond = velocity(net, y)
        if cfg.bias != "cfg":
            return cond
        return guided_velocity(cond, velocity(net, jnp.full_like(y, null)), cfg_weight)

    def draw(key: Key, params: D.DiffusionParams, n: int, lam: jax.Array, make_velocity) -> Data:
        """Samples [n, d] (unconditional) or [n, d + 1] with labels drawn from the training frequencies.

        bias=temperature: lam is the initial noise's variance; bias=cfg: guidance weight w = 1 / lam - 1 on the
        velocity and unit noise (as diffusion's cfg, MAD: lambda = 1 / (1 + w)).
        """
        d = math.prod(shape) if cfg.network == "unet" else D._out_dim(params)
        k_label, k_sample = jax.random.split(key)
        y = L.draw_labels(k_label, params.label_freq, n, classes)
        cfg_weight, temperature = (1.0 / lam - 1.0, jnp.ones_like(lam)) if cfg.bias == "cfg" else (0.0, lam)
        x = sample_with(
            make_velocity(y, cfg_weight), k_sample, n, d, lam=temperature, steps=cfg.sample_steps, step=step
        )
        if clip:
            x = jnp.clip(x, -1.0, 1.0)
        return jnp.concatenate([x, y[:, None].astype(x.dtype)], axis=1) if classes else x

    def sample(key: Key, params: D.DiffusionParams, n: int, knobs: Knobs) -> Data:
        return draw(key, params, n, knobs["lam"], lambda y, w: conditional(params.ema, y, w))

    def guided_sample(key: Key, base: D.DiffusionParams, aux: D.DiffusionParams, n: int, knobs: Knobs) -> Data:
        def make(y: jax.Array, w: jax.Array) -> Velocity:
            return guided_velocity(conditional(base.ema, y, w), conditional(aux.ema, y, w), knobs["omega"])

        return draw(key, base, n, knobs["lam"], make)

    model = GenerativeModel(init, fit, sample, guidance=Guidable(finetune, guided_sample), labelled=classes > 0)
    return FlowMatchingFamily(model, velocity, loss, train)


def build(cfg: FlowMatchingModel, source=None, scan: Callable | None = None) -> GenerativeModel:
    """The registered builder: the family for a data source's event shape, with the engine's training scan."""
    return flow_matching_family(cfg, None if source is None else source.shape, scan).model


def check(m: FlowMatchingModel) -> None:
    """Field checks of ``model=flow_matching``."""
    C.choice("model.network", m.network, ("mlp", "unet"))
    ok = isinstance(m.channels, list | tuple) and len(m.channels) > 0
    if not ok or not all(C.is_int(c) and c >= 1 for c in m.channels):
        raise C.ConfigError("model.channels", m.channels, "must be a non-empty list of integers >= 1 (one per level)")
    for name in ("width", "depth", "blocks", "sample_steps", "train_steps", "finetune_steps", "batch"):
        C.int_at_least(f"model.{name}", getattr(m, name), 1)
    C.int_at_least("model.ot_iters", m.ot_iters, 1)
    C.int_at_least("model.time_features", m.time_features, 2)
    if m.time_features % 2:
        raise C.ConfigError("model.time_features", m.time_features, "must be even (sine and cosine pairs)")
    if not C.is_number(m.sigma_min) or not 0 <= m.sigma_min < 1:
        raise C.ConfigError("model.sigma_min", m.sigma_min, "must lie in [0, 1) (0 = the straight path x1 - x0)")
    C.choice("model.coupling", m.coupling, ("independent", "ot"))
    if not C.is_number(m.ot_epsilon) or not 0 < m.ot_epsilon <= 1:
        raise C.ConfigError("model.ot_epsilon", m.ot_epsilon, "must lie in (0, 1] (relative to the mean cost)")
    C.choice("model.solver", m.solver, tuple(SOLVERS))
    if m.clip is not None and not isinstance(m.clip, bool):
        raise C.ConfigError("model.clip", m.clip, "must be true, false or null (on for images)")
    C.positive("model.lr", m.lr)
    C.non_negative("model.weight_decay", m.weight_decay)
    if not C.is_number(m.ema) or not 0 <= m.ema < 1:
        raise C.ConfigError("model.ema", m.ema, "must lie in [0, 1) (0 = no averaging)")
    C.int_at_least("model.classes", m.classes, 0, " (0 = unconditional)")
    if not C.is_number(m.label_dropout) or not 0 <= m.label_dropout < 1:
        raise C.ConfigError("model.label_dropout", m.label_dropout, "must lie in [0, 1)")
    C.choice("model.bias", m.bias, ("temperature", "cfg"))
    if m.bias == "cfg" and m.classes == 0:
        raise C.ConfigError(
            "model.bias", "cfg", "classifier-free guidance needs a conditional model (model.classes > 0)"
        )
    if m.bias == "cfg" and m.label_dropout == 0:
        raise C.ConfigError("model.label_dropout", 0, "must be > 0 with model.bias=cfg (the unconditional model)")


# D.fits: a conditional model needs the truth's classes, a U-Net an image source its pooling divides.
C.register("model", "flow_matching", FlowMatchingModel, build=build, check=check, fits=D.fits)
