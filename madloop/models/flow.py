"""Normalising flow family (GLOW-style): actnorm, an invertible linear mixing and affine coupling, exact likelihood.

A flow is a bijection f from data x [d] to a latent z = f(x) with z ~ N(0, I) under the model, so
log p(x) = log N(f(x); 0, I) + log |det df/dx| (the change of variables) is exact, training is maximum likelihood,
and a sample is f^-1(z). Each of the ``layers`` steps is, data to latent (GLOW, Kingma & Dhariwal 2018, Sec. 3):

1. actnorm: h = (x - loc) exp(-log_scale), log-det -sum(log_scale); loc and log_scale start at the weighted mean
   and log standard deviation of the training data arriving at the layer (data-dependent initialisation).
2. mixing: an invertible linear map h -> P L U h (``mixing=lu``: GLOW's 1 x 1 convolution for vectors, with P the
   fixed reversal, L unit lower triangular, U upper triangular with diagonal exp(log_s), log-det sum(log_s)), or
   the reversal alone (``mixing=permute``, log-det 0). Both start as the reversal, so that successive couplings
   condition on alternate halves (RealNVP's alternating masks).
3. affine coupling: with a = h[:k], b = h[k:], k = d // 2 (odd d: the transformed half is the larger one),
   b -> b exp(s(a)) + t(a), s = clamp tanh(raw / clamp) (a bounded log-scale), (raw, t) from an MLP of a whose last
   layer starts at zero (the coupling starts as the identity); log-det sum(s) (RealNVP, Dinh et al. 2017, eq. 7).

Everything is per example (a row [d]) and vmapped at the call site; the layers are stacked on a leading axis and
walked with ``lax.scan`` (forward) or ``lax.scan(reverse=True)`` (inverse), so compile time does not grow with
``layers``. Image sources are modelled as their flattened rows (an MLP coupling on d = 64 pixels); the pixels are
continuous here (digits' grey levels scaled to [-1, 1] are not dequantised: the likelihood is a density on R^d).

References:
    Dinh, Sohl-Dickstein & Bengio 2017, "Density estimation using Real NVP" (affine coupling, eqs. 4-9).
    Kingma & Dhariwal 2018, "Glow: Generative Flow with Invertible 1x1 Convolutions" (actnorm, LU-parametrised
    invertible 1 x 1 convolution, Sec. 3.1-3.2, Table 1).
    Alemohammad et al. 2023, "Self-Consuming Generative Models Go MAD" (the flow experiment: sampling bias as the
    latent's scale, z ~ N(0, lam I)).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import jax
import jax.numpy as jnp

from madloop import config as C
from madloop import linalg, rng
from madloop.models import training as T
from madloop.types import Data, Density, GenerativeModel, Key, Knobs, Weights

if TYPE_CHECKING:  # Optax loads when a flow family is built
    import optax


@dataclass(frozen=True)
class FlowModel(C.ModelConfig):
    """A GLOW-style normalising flow (actnorm, invertible mixing, affine coupling) trained by maximum likelihood.

    Attributes:
        layers: flow steps (each: actnorm, mixing, affine coupling).
        width: hidden units per layer of each coupling's MLP.
        depth: hidden layers of each coupling's MLP.
        mixing: the invertible linear map between couplings: ``lu`` (a learned P L U, GLOW's 1 x 1 convolution)
            or ``permute`` (the fixed reversal of the coordinates).
        clamp: bound of each coupling's log-scale, s = clamp tanh(raw / clamp) in (-clamp, clamp).
        train_steps: optimiser steps of a fit from scratch (generation 0, or each generation without warm start).
        finetune_steps: optimiser steps of a warm-started generation (from the previous generation's weights).
        batch: minibatch size, drawn with probability proportional to the training-set weights.
        lr: AdamW learning rate (a traced knob, ``sweep.model.lr=[...]``).
        weight_decay: AdamW weight decay.
        ema: EMA decay of the weights that sample and score; within each fit it warms up as
            min(ema, (1 + i) / (10 + i)) at step i. A traced knob (``sweep.model.ema=[...]``).
    """

    layers: int = 8
    width: int = 64
    depth: int = 2
    mixing: str = "lu"
    clamp: float = 2.0
    train_steps: int = 800
    finetune_steps: int = 200
    batch: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.0
    ema: float = 0.99


class LU(NamedTuple):
    """The learned factors of an invertible linear map W = P L U (P the fixed reversal).

    Attributes:
        lower: [d, d] whose strict lower triangle is L's (L has a unit diagonal).
        upper: [d, d] whose strict upper triangle is U's.
        log_s: [d] log of U's diagonal (positive, so W stays invertible and log |det W| = sum(log_s)).
    """

    lower: jax.Array
    upper: jax.Array
    log_s: jax.Array


class FlowLayer(NamedTuple):
    """One flow step's parameters (in ``FlowParams.net`` every leaf has a leading [layers] axis).

    Attributes:
        loc: [d] actnorm shift.
        log_scale: [d] actnorm log-scale (h = (x - loc) exp(-log_scale)).
        mixing: the LU factors (``mixing=lu``) or None (the fixed reversal).
        coupling: the coupling MLP, a tuple of (kernel [in, out], bias [out]) pairs, the last one mapping to
            [2 (d - k)] (raw log-scales, then shifts).
    """

    loc: jax.Array
    log_scale: jax.Array
    mixing: LU | None
    coupling: tuple[tuple[jax.Array, jax.Array], ...]


class FlowParams(NamedTuple):
    """Parameters of the flow family.

    Attributes:
        net: the trained flow (a FlowLayer of stacked [layers, ...] leaves).
        ema: the exponential moving average of ``net``: the flow that samples and scores.
        opt: the optimiser state (AdamW moments and the injected learning rate).
    """

    net: FlowLayer
    ema: FlowLayer
    opt: optax.OptState


# ------------------------------------------------------------------------------------------- one step, one row


def actnorm_forward(layer: FlowLayer, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """h = (x - loc) exp(-log_scale) for x [d]; log-det -sum(log_scale) (GLOW Table 1)."""
    return (x - layer.loc) * jnp.exp(-layer.log_scale), -jnp.sum(layer.log_scale)


def actnorm_inverse(layer: FlowLayer, h: jax.Array) -> jax.Array:
    """x = h exp(log_scale) + loc."""
    return h * jnp.exp(layer.log_scale) + layer.loc


def lu_factors(lu: LU) -> tuple[jax.Array, jax.Array]:
    """L = I + strict_lower(lower) and U = strict_upper(upper) + diag(exp(log_s)), both [d, d]."""
    d = lu.log_s.shape[0]
    lower = jnp.tril(lu.lower, -1) + jnp.eye(d, dtype=lu.lower.dtype)
    upper = jnp.triu(lu.upper, 1) + jnp.diag(jnp.exp(lu.log_s))
    return lower, upper


def mixing_forward(lu: LU | None, h: jax.Array) -> tuple[jax.Array, jax.Array]:
    """h -> P L U h for h [d] (P the reversal), log-det sum(log_s) (GLOW Table 1); the reversal alone for None."""
    if lu is None:
        return h[::-1], jnp.zeros((), h.dtype)
    lower, upper = lu_factors(lu)
    return (lower @ (upper @ h))[::-1], jnp.sum(lu.log_s)


def mixing_inverse(lu: LU | None, y: jax.Array) -> jax.Array:
    """h = U^-1 L^-1 P^T y, with the triangular inverses by forward substitution (``linalg.solve_lower``: plain XLA
    ops; an upper triangular U is solved as the lower triangular J U J, J the reversal)."""
    if lu is None:
        return y[::-1]
    lower, upper = lu_factors(lu)
    eye = jnp.eye(lower.shape[0], dtype=lower.dtype)
    lower_inv = linalg.solve_lower(lower, eye)
    upper_inv = linalg.solve_lower(upper[::-1, ::-1], eye)[::-1, ::-1]
    return upper_inv @ (lower_inv @ y[::-1])


def coupling_net(mlp: tuple[tuple[jax.Array, jax.Array], ...], a: jax.Array) -> jax.Array:
    """The coupling MLP of the conditioning half a [k]: SiLU hidden layers, a linear output [2 (d - k)]."""
    h = a
    for kernel, bias in mlp[:-1]:
        h = jax.nn.silu(h @ kernel + bias)
    kernel, bias = mlp[-1]
    return h @ kernel + bias


def coupling_scale_shift(mlp, a: jax.Array, clamp: float) -> tuple[jax.Array, jax.Array]:
    """(s, t), each [d - k]: the bounded log-scale s = clamp tanh(raw / clamp) and the shift t."""
    raw, shift = jnp.split(coupling_net(mlp, a), 2)
    return clamp * jnp.tanh(raw / clamp), shift


def coupling_forward(mlp, h: jax.Array, clamp: float) -> tuple[jax.Array, jax.Array]:
    """[a, b] -> [a, b exp(s(a)) + t(a)] for h [d], a = h[:d // 2]; log-det sum(s) (RealNVP eqs. 4-6)."""
    k = h.shape[0] // 2
    a, b = h[:k], h[k:]
    s, t = coupling_scale_shift(mlp, a, clamp)
    return jnp.concatenate([a, b * jnp.exp(s) + t]), jnp.sum(s)


def coupling_inverse(mlp, y: jax.Array, clamp: float) -> jax.Array:
    """[a, c] -> [a, (c - t(a)) exp(-s(a))] (RealNVP eq. 8)."""
    k = y.shape[0] // 2
    a, c = y[:k], y[k:]
    s, t = coupling_scale_shift(mlp, a, clamp)
    return jnp.concatenate([a, (c - t) * jnp.exp(-s)])


def step_forward(layer: FlowLayer, x: jax.Array, clamp: float) -> tuple[jax.Array, jax.Array]:
    """One flow step, data to latent, for x [d] (one step's parameters): (h [d], log |det dh/dx| [])."""
    h, ld_norm = actnorm_forward(layer, x)
    h, ld_mix = mixing_forward(layer.mixing, h)
    h, ld_couple = coupling_forward(layer.coupling, h, clamp)
    return h, ld_norm + ld_mix + ld_couple


def step_inverse(layer: FlowLayer, h: jax.Array, clamp: float) -> jax.Array:
    """The inverse of ``step_forward``: latent to data for h [d]."""
    h = coupling_inverse(layer.coupling, h, clamp)
    return actnorm_inverse(layer, mixing_inverse(layer.mixing, h))


def flow_forward(net: FlowLayer, x: jax.Array, clamp: float) -> tuple[jax.Array, jax.Array]:
    """z = f(x) [d] for x [d] through every step (stacked params), and log |det df/dx| []."""

    def body(h: jax.Array, layer: FlowLayer) -> tuple[jax.Array, jax.Array]:
        return step_forward(layer, h, clamp)

    z, log_dets = jax.lax.scan(body, x, net)
    return z, jnp.sum(log_dets)


def flow_inverse(net: FlowLayer, z: jax.Array, clamp: float) -> jax.Array:
    """x = f^-1(z) [d] for z [d]: the steps inverted in reverse order."""

    def body(h: jax.Array, layer: FlowLayer) -> tuple[jax.Array, None]:
        return step_inverse(layer, h, clamp), None

    x, _ = jax.lax.scan(body, z, net, reverse=True)
    return x


def flow_log_prob(net: FlowLayer, x: Data, clamp: float) -> jax.Array:
    """log p(x) [n] for x [n, d]: log N(f(x); 0, I) + log |det df/dx| (the change of variables)."""
    z, log_det = jax.vmap(lambda xi: flow_forward(net, xi, clamp))(x)
    d = x.shape[1]
    return -0.5 * jnp.sum(z**2, axis=1) - 0.5 * d * math.log(2 * math.pi) + log_det


# ------------------------------------------------------------------------------------------- the family


def weighted_scale(h: Data, w: Weights) -> tuple[jax.Array, jax.Array]:
    """Weighted per-coordinate mean [d] and log standard deviation [d] of h [n, d] (frequency weights w [n]).

    A variance below 1e-6 of the largest one (a constant pixel, a collapsed coordinate) is raised to it, so the
    actnorm's log-scale stays finite.
    """
    p = w / jnp.sum(w)
    mean = p @ h
    var = p @ (h - mean) ** 2
    floor = 1e-6 * jnp.max(var) + jnp.finfo(h.dtype).tiny
    return mean, 0.5 * jnp.log(jnp.maximum(var, floor))


class FlowFamily(NamedTuple):
    """The pieces a test or a benchmark may want beside the GenerativeModel.

    ``forward(net, x [d]) -> (z [d], log_det [])`` and ``inverse(net, z [d]) -> x [d]`` walk every step;
    ``step_forward(layer, x)`` and ``step_inverse(layer, h)`` one step (unstacked parameters); ``log_prob(net, x)``
    is [n] for x [n, d]; ``loss(net, x)`` the minibatch objective; ``objective(net, x, w)`` the weighted
    negative log-likelihood per dimension of a whole training set.
    """

    model: GenerativeModel
    forward: Callable[[FlowLayer, jax.Array], tuple[jax.Array, jax.Array]]
    inverse: Callable[[FlowLayer, jax.Array], jax.Array]
    step_forward: Callable[[FlowLayer, jax.Array], tuple[jax.Array, jax.Array]]
    step_inverse: Callable[[FlowLayer, jax.Array], jax.Array]
    log_prob: Callable[[FlowLayer, Data], jax.Array]
    loss: Callable[[FlowLayer, Data], jax.Array]
    objective: Callable[[FlowLayer, Data, Weights], jax.Array]
    train: Callable[..., tuple[FlowParams, jax.Array]]


def flow_family(cfg: FlowModel, scan: Callable | None = None) -> FlowFamily:
    """Builds the family's pure functions for a flow config (any d >= 2; rows of images are flattened).

    ``scan(step, carry, steps)`` runs a training scan (the engine hands in one that reports progress); None is
    ``jax.lax.scan`` over the step indices.
    """
    scan = scan if scan is not None else T.plain_scan
    clamp = float(cfg.clamp)
    tx = T.adamw(cfg.lr, cfg.weight_decay)

    def log_prob(net: FlowLayer, x: Data) -> jax.Array:
        return flow_log_prob(net, x, clamp)

    def loss(net: FlowLayer, x: Data) -> jax.Array:
        """Negative log-likelihood per dimension (nats), averaged over the minibatch x [b, d]."""
        return -jnp.mean(log_prob(net, x)) / x.shape[1]

    def objective(net: FlowLayer, x: Data, w: Weights) -> jax.Array:
        """The weighted negative log-likelihood per dimension of x [n, d], sum_i w_i nll_i / (d sum_i w_i): the
        expectation of ``loss`` over minibatches drawn with probability ~ w, and the loss of the duplicated data."""
        return -jnp.sum(w * log_prob(net, x)) / (jnp.sum(w) * x.shape[1])

    def new_layers(key: Key, d: int, dtype: jnp.dtype) -> FlowLayer:
        """Stacked [layers, ...] steps at the identity: actnorm (0, 0), mixing at the reversal, zero coupling
        output; the coupling's hidden kernels are LeCun-normal (variance 1 / fan-in), cut from one draw."""
        k = d // 2
        sizes = [k] + [cfg.width] * cfg.depth
        shapes = list(zip(sizes[:-1], sizes[1:], strict=True))
        draws = rng.normal(key, (cfg.layers, sum(a * b for a, b in shapes)), dtype)
        mlp, start = [], 0
        for fan_in, fan_out in shapes:
            block = draws[:, start : start + fan_in * fan_out].reshape(cfg.layers, fan_in, fan_out)
            mlp.append((block / math.sqrt(fan_in), jnp.zeros((cfg.layers, fan_out), dtype)))
            start += fan_in * fan_out
        out = 2 * (d - k)
        mlp.append((jnp.zeros((cfg.layers, cfg.width, out), dtype), jnp.zeros((cfg.layers, out), dtype)))
        zeros, square = jnp.zeros((cfg.layers, d), dtype), jnp.zeros((cfg.layers, d, d), dtype)
        lu = LU(square, square, zeros) if cfg.mixing == "lu" else None
        return FlowLayer(zeros, zeros, lu, tuple(mlp))

    def init(key: Key, x: Data, w: Weights) -> FlowParams:
        """Fresh steps with data-dependent actnorm: each step's (loc, log_scale) are the weighted mean and log
        standard deviation of the training data as it arrives at that step (GLOW Sec. 3.1), so every actnorm's
        output starts standardised."""
        net = new_layers(key, x.shape[1], x.dtype)

        def body(h: Data, layer: FlowLayer) -> tuple[Data, tuple[jax.Array, jax.Array]]:
            loc, log_scale = weighted_scale(h, w)
            layer = layer._replace(loc=loc, log_scale=log_scale)
            return jax.vmap(lambda hi: step_forward(layer, hi, clamp)[0])(h), (loc, log_scale)

        _, (loc, log_scale) = jax.lax.scan(body, x, net)
        net = net._replace(loc=loc, log_scale=log_scale)
        return FlowParams(net, net, tx.init(net))

    def train(key: Key, params: FlowParams, x: Data, w: Weights, steps: int, knobs: Knobs | None = None):
        """``steps`` AdamW steps of ``loss`` on minibatches drawn from x [n, d] with probability ~ w; returns
        (params, losses [steps]). lr and the EMA decay are the knobs ``lr``, ``ema`` (the config's without)."""
        lr, ema_decay = (cfg.lr, cfg.ema) if knobs is None else (knobs["lr"], knobs["ema"])
        rows = T.row_sampler(w)
        params = params._replace(opt=T.with_learning_rate(params.opt, lr))

        def minibatch(i: jax.Array) -> tuple[Data]:
            return (x[rows(jax.random.fold_in(key, i), cfg.batch)],)

        return T.train(tx, loss, minibatch, params, steps, ema=ema_decay, scan=scan)

    def fit(key: Key, params: FlowParams, x: Data, w: Weights, warm: bool, knobs: Knobs) -> FlowParams:
        return train(key, params, x, w, cfg.finetune_steps if warm else cfg.train_steps, knobs)[0]

    def sample(key: Key, params: FlowParams, n: int, knobs: Knobs) -> Data:
        """x = f^-1(z), z ~ N(0, lam I) [n, d]: the sampling bias scales the latent (MAD's flow experiment);
        lam = 1 is the model, lam < 1 concentrates the samples on the flow's high-density region."""
        d = params.ema.loc.shape[-1]
        z = jnp.sqrt(knobs["lam"]) * rng.normal(key, (n, d), params.ema.loc.dtype)
        return jax.vmap(lambda zi: flow_inverse(params.ema, zi, clamp))(z)

    def density(params: FlowParams, x: Data) -> jax.Array:
        return log_prob(params.ema, x)

    model = GenerativeModel(init, fit, sample, density=Density(density))
    return FlowFamily(
        model,
        lambda net, x: flow_forward(net, x, clamp),
        lambda net, z: flow_inverse(net, z, clamp),
        lambda layer, x: step_forward(layer, x, clamp),
        lambda layer, h: step_inverse(layer, h, clamp),
        log_prob,
        loss,
        objective,
        train,
    )


def build(cfg: FlowModel, source=None, scan: Callable | None = None) -> GenerativeModel:
    """The registered builder: the family with the engine's training scan (rows of any source, images flattened)."""
    del source
    return flow_family(cfg, scan).model


def check(m: FlowModel) -> None:
    """Field checks of ``model=flow``."""
    for name in ("layers", "width", "depth", "train_steps", "finetune_steps", "batch"):
        C.int_at_least(f"model.{name}", getattr(m, name), 1)
    C.choice("model.mixing", m.mixing, ("lu", "permute"))
    C.positive("model.clamp", m.clamp)
    C.positive("model.lr", m.lr)
    C.non_negative("model.weight_decay", m.weight_decay)
    if not isinstance(m.ema, int | float) or not 0 <= m.ema < 1:
        raise C.ConfigError("model.ema", m.ema, "must lie in [0, 1) (0 = no averaging)")


def fits(m: FlowModel, cfg: C.Config, parts) -> None:
    """A coupling splits the coordinates in two: the data needs d >= 2."""
    del m, cfg
    if parts.source.dim < 2:
        raise C.ConfigError("data.dim", parts.source.dim, "model=flow needs d >= 2 (a coupling splits the coordinates)")


C.register("model", "flow", FlowModel, build=build, check=check, fits=fits)
