"""Sampling guidance: plain sampling, or SIMS negative guidance with an auxiliary model fitted inside the loop.

References:
    Alemohammad, Humayun, Agarwal, Collomosse & Baraniuk 2024, "Self-Improving Diffusion Models with Synthetic
    Data" (SIMS; arXiv:2408.16333): negative guidance with an auxiliary model, and distribution control.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from madloop import config as C
from madloop.data import DataSource
from madloop.mixture import Mixture, component_log_prob
from madloop.types import Data, GenerativeModel, Key, Knobs, Params, Weights


class Guided(NamedTuple):
    """A model family with its sampling guidance: what the loop fits and samples.

    Attributes:
        init: ``init(key, x, w) -> params``.
        fit: ``fit(key, params, x, w, warm) -> params`` (for SIMS: the base, then the auxiliary model).
        sample: ``sample(key, params, n, knobs) -> x`` [n, d]: the samples the loop uses (synthetic data and
            evaluation), with sampling bias ``knobs.lam`` and guidance ``knobs.omega``.
        base: ``base(params) -> params`` of the underlying family (for parameter metrics).
    """

    init: Callable[..., Params]
    fit: Callable[..., Params]
    sample: Callable[..., Data]
    base: Callable[[Params], Params]


class SimsParams(NamedTuple):
    """Parameters of a SIMS-guided model: the base model and its auxiliary (fine-tuned on its own samples)."""

    base: Params
    aux: Params


@functools.singledispatch
def make_guidance(cfg: C.GuidanceConfig, model: GenerativeModel, source: DataSource) -> Guided:
    """The guided model for a guidance config."""
    raise TypeError(f"no guidance for {type(cfg).__name__}")


@make_guidance.register
def _(cfg: C.NoGuidance, model: GenerativeModel, source: DataSource) -> Guided:
    del cfg, source

    def sample(key: Key, params: Params, n: int, knobs: Knobs) -> Data:
        return model.sample(key, params, n, knobs.lam)

    return Guided(model.init, model.fit, sample, lambda params: params)


def mode_shares(x: Data, truth: Mixture) -> tuple[jax.Array, jax.Array]:
    """Each sample's most likely truth component [n] (argmax_k log pi_k N(x; mu_k, Sigma_k)) and the share of
    samples per component [K]."""
    mode = jnp.argmax(component_log_prob(truth, x), axis=1)
    return mode, jnp.mean(jax.nn.one_hot(mode, truth.weights.shape[0], dtype=x.dtype), axis=0)


def mode_ratio_weights(x: Data, truth: Mixture, target: jax.Array) -> Weights:
    """Distribution-control weights [n] for x [n, d]: a sample of mode k (its most likely truth component) gets
    weight p_k / target_k, where p [K] is the empirical mode share of x.

    Why: fine-tuned on x with these weights, the auxiliary model's mode shares become a ~ p^2 / target, and the
    SIMS density p_base^(1 + omega) / p_aux^omega has mode shares ~ p^(1 - omega) target^omega, which is the
    target at omega = 1, while the shape within each mode stays the base's. (The idealised density picture:
    guided diffusion samples only approximate it, and a short fine-tune moves a only part of the way, so the best
    omega is found by a sweep.) Over-represented modes are up-weighted, so negative guidance removes their excess.
    """
    mode, share = mode_shares(x, truth)
    return (share / target)[mode]


@make_guidance.register
def _(cfg: C.SimsGuidance, model: GenerativeModel, source: DataSource) -> Guided:
    if model.finetune is None or model.guided_sample is None:
        raise TypeError("guidance=sims needs a family with finetune and guided_sample (model=diffusion)")
    if cfg.control == "modes":
        truth = source.mixture
        target = truth.weights if cfg.target is None else jnp.asarray(cfg.target, jnp.float32)
        target = target / jnp.sum(target)

    def init(key: Key, x: Data, w: Weights) -> SimsParams:
        params = model.init(key, x, w)
        return SimsParams(params, params)

    def fit(key: Key, params: SimsParams, x: Data, w: Weights, warm: bool) -> SimsParams:
        # The base is fitted with the same key as without guidance (common random numbers with guidance=none).
        base = model.fit(key, params.base, x, w, warm)
        k_draw, k_aux = jax.random.split(key)
        # The auxiliary model: the base fine-tuned on n_aux of its own (unbiased) samples.
        x_aux = model.sample(k_draw, base, cfg.n_aux, jnp.float32(1.0))
        if cfg.control == "modes":  # (a conditional family's samples carry a label column: mode by x alone)
            w_aux = mode_ratio_weights(x_aux[:, : truth.means.shape[1]], truth, target)
        else:
            w_aux = jnp.ones((cfg.n_aux,))
        aux = model.finetune(k_aux, base, x_aux, w_aux, cfg.aux_steps)
        return SimsParams(base, aux)

    def sample(key: Key, params: SimsParams, n: int, knobs: Knobs) -> Data:
        return model.guided_sample(key, params.base, params.aux, n, knobs.lam, knobs.omega)

    return Guided(init, fit, sample, lambda params: params.base)
