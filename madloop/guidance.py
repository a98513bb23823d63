"""Sampling guidance: plain sampling, or SIMS negative guidance with an auxiliary model fitted inside the loop.

References:
    Alemohammad, Humayun, Agarwal, Collomosse & Baraniuk 2024, "Self-Improving Diffusion Models with Synthetic
    Data" (SIMS; arXiv:2408.16333): negative guidance with an auxiliary model, and distribution control.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp

from madloop import config as C
from madloop.data import DataSource
from madloop.mixture import Mixture, component_log_prob
from madloop.precision import float_dtype
from madloop.types import Data, GenerativeModel, Key, Knobs, Params, Weights


@dataclass(frozen=True)
class NoGuidance(C.GuidanceConfig):
    """Plain sampling from the fitted model."""


@dataclass(frozen=True)
class SimsGuidance(C.GuidanceConfig):
    """SIMS negative guidance (Alemohammad et al. 2024) for diffusion models.

    After each generation's base model is fitted, ``n_aux`` samples are drawn from it and a copy is fine-tuned
    on them for ``aux_steps`` steps (the auxiliary model); sampling then uses
    ``(1 + omega) s_base - omega s_aux``.

    Attributes:
        omega: guidance strength (>= 0; 0 is the base model exactly). Traced, so it can be vmapped.
        n_aux: synthetic samples the auxiliary model is fine-tuned on.
        aux_steps: fine-tuning steps of the auxiliary model.
        control: ``none`` (fine-tune on all n_aux samples, as in the paper's self-improvement) or ``modes``
            (distribution control: fine-tune on the samples weighted by share / target of their mode, so the
            auxiliary model over-represents what the base over-represents and negative guidance moves the mode
            proportions toward the target; see ``madloop.guidance.mode_ratio_weights``).
        target: mode weights for ``control=modes``, one per component of the truth, all > 0 (normalised);
            null = the truth's own weights.
    """

    omega: float = 1.0
    n_aux: int = 1024
    aux_steps: int = 300
    control: str = "none"
    target: list[float] | None = None


class Guided(NamedTuple):
    """A model family with its sampling guidance: what the loop fits and samples.

    Attributes:
        init: ``init(key, x, w) -> params``.
        fit: ``fit(key, params, x, w, warm, knobs) -> params`` (for SIMS: the base, then the auxiliary model).
        sample: ``sample(key, params, n, knobs) -> x`` [n, d]: the samples the loop uses (synthetic data and
            evaluation), with sampling bias ``knobs.lam`` and guidance ``knobs.omega``.
        base: ``base(params) -> params`` of the underlying family (for parameter metrics).
        warm_traced: ``fit`` takes ``warm`` as a traced bool (``GenerativeModel.warm_traced``).
    """

    init: Callable[..., Params]
    fit: Callable[..., Params]
    sample: Callable[..., Data]
    base: Callable[[Params], Params]
    warm_traced: bool = False


class SimsParams(NamedTuple):
    """Parameters of a SIMS-guided model: the base model and its auxiliary (fine-tuned on its own samples)."""

    base: Params
    aux: Params


def make_guidance(cfg: C.GuidanceConfig, model: GenerativeModel, source: DataSource) -> Guided:
    """The guided model for a guidance config (its registered option's ``build``)."""
    return C.option_of("guidance", cfg)[1].build(cfg, model, source)


def plain(cfg: NoGuidance, model: GenerativeModel, source: DataSource) -> Guided:
    """Sampling from the fitted model itself."""
    del cfg, source
    return Guided(model.init, model.fit, model.sample, lambda params: params, model.warm_traced)


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


def sims(cfg: SimsGuidance, model: GenerativeModel, source: DataSource) -> Guided:
    """SIMS: each generation fits the base, then fine-tunes a copy on its own samples (the auxiliary model), and
    samples with the extrapolated score (1 + omega) s_base - omega s_aux."""
    if model.guidance is None:
        raise TypeError(f"guidance=sims needs a family with the guidance capability ({guidable()})")
    finetune, guided_sample = model.guidance
    if cfg.control == "modes":
        truth = source.mixture
        target = truth.weights if cfg.target is None else jnp.asarray(cfg.target, float_dtype())
        target = target / jnp.sum(target)

    def init(key: Key, x: Data, w: Weights) -> SimsParams:
        params = model.init(key, x, w)
        return SimsParams(params, params)

    def fit(key: Key, params: SimsParams, x: Data, w: Weights, warm: bool, knobs: Knobs) -> SimsParams:
        # The base is fitted with the same key as without guidance (common random numbers with guidance=none).
        base = model.fit(key, params.base, x, w, warm, knobs)
        k_draw, k_aux = jax.random.split(key)
        # The auxiliary model: the base fine-tuned on n_aux of its own (unbiased) samples.
        x_aux = model.sample(k_draw, base, cfg.n_aux, {**knobs, "lam": jnp.float32(1.0)})
        if cfg.control == "modes":  # (a conditional family's samples carry a label column: mode by x alone)
            w_aux = mode_ratio_weights(x_aux[:, : truth.means.shape[1]], truth, target)
        else:
            w_aux = jnp.ones((cfg.n_aux,))
        aux = finetune(k_aux, base, x_aux, w_aux, cfg.aux_steps, knobs)
        return SimsParams(base, aux)

    def sample(key: Key, params: SimsParams, n: int, knobs: Knobs) -> Data:
        return guided_sample(key, params.base, params.aux, n, knobs)

    return Guided(init, fit, sample, lambda params: params.base, model.warm_traced)  # warm reaches model.fit alone


def check_sims(g: SimsGuidance) -> None:
    """Field checks of ``guidance=sims``."""
    C.non_negative("guidance.omega", g.omega, " (0 = the base model)")
    C.int_at_least("guidance.n_aux", g.n_aux, 1)
    C.int_at_least("guidance.aux_steps", g.aux_steps, 1)
    C.choice("guidance.control", g.control, ("none", "modes"))
    if g.control == "none" and g.target is not None:
        raise C.ConfigError("guidance.target", list(g.target), "only applies to guidance.control=modes")


def guidable() -> str:
    """``model=a|b``: the registered model families whose default build has the guidance capability."""
    return f"model={'|'.join(C.options_built_with('model', lambda m: m.guidance is not None))}"


def fits_sims(g: SimsGuidance, cfg: C.Config, parts) -> None:
    """SIMS needs a family it can guide; distribution control needs a mixture truth (and a target per mode)."""
    del cfg
    if parts.model.guidance is None:
        raise C.ConfigError("guidance", "sims", f"needs {guidable()} (a family with a sampler SIMS can guide)")
    if g.control == "none":
        return
    mix = parts.source.mixture
    if mix is None or mix.weights.shape[0] < 2:
        raise C.ConfigError(
            "guidance.control", "modes", "needs a mixture truth with >= 2 modes (ring8, grid25, mixture)"
        )
    k = mix.weights.shape[0]
    if g.target is not None:
        t = list(g.target)
        if len(t) != k or any(not C.is_number(v) or v <= 0 for v in t):
            raise C.ConfigError("guidance.target", t, f"must be {k} finite weights > 0, one per mode of the truth")


C.register("guidance", "none", NoGuidance, build=plain)
C.register("guidance", "sims", SimsGuidance, build=sims, check=check_sims, fits=fits_sims)
