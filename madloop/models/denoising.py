"""What the denoising families share: labelled rows, and sampling with classifier-free guidance and SIMS.

A family supplies its denoiser (a function of the network weights and the labels) and its sampler; this module
turns them into ``sample`` and ``guided_sample``: labels drawn from the training frequencies, classifier-free
guidance when ``bias.lam`` acts as a guidance weight, and SIMS's extrapolation between a base and an auxiliary
model. ``model=edm`` uses all of it, ``model=flow_matching`` the labels; ``model=diffusion`` has the same logic
written inline (same keys, same numbers).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from madloop.types import Data, Key, Knobs, Params, Weights

# denoise(x [n, d], noise level []) -> the family's prediction (an array, or a PyTree of arrays)
Denoise = Callable[[Data, jax.Array], Any]


def split_labels(x: Data, classes: int) -> tuple[Data, jax.Array]:
    """Samples [n, d] and int labels [n] of rows [n, d + 1] (label last) for C = ``classes`` > 0; for an
    unconditional model the rows themselves and zeros."""
    if classes:
        return x[:, :-1], x[:, -1].astype(jnp.int32)
    return x, jnp.zeros(x.shape[:1], jnp.int32)


def label_frequencies(x: Data, w: Weights, classes: int) -> jax.Array:
    """[C] weighted class frequencies of labelled rows x [n, d + 1] with weights w [n]; [1.0] when unconditional."""
    if not classes:
        return jnp.ones((1,), w.dtype)
    counts = jnp.sum(w[:, None] * jax.nn.one_hot(split_labels(x, classes)[1], classes, dtype=w.dtype), axis=0)
    return counts / jnp.sum(counts)


def drop_labels(key: Key, y: jax.Array, classes: int, rate: float) -> jax.Array:
    """Labels y [n] each replaced by the null label ``classes`` with probability ``rate`` (classifier-free
    guidance's training, Ho & Salimans 2022)."""
    return jnp.where(jax.random.bernoulli(key, rate, y.shape), jnp.int32(classes), y)


def draw_labels(key: Key, freq: jax.Array, n: int, classes: int) -> jax.Array:
    """n int labels [n] drawn from the class frequencies freq [C] (zeros when unconditional)."""
    if not classes:
        return jnp.zeros((n,), jnp.int32)
    return jax.random.categorical(key, jnp.log(freq), shape=(n,)).astype(jnp.int32)


def extrapolate(base: Any, aux: Any, weight: jax.Array | float) -> Any:
    """(1 + weight) base - weight aux, leaf by leaf: classifier-free guidance (aux = the unconditional prediction)
    and SIMS (aux = the auxiliary model). Affine in the prediction, so the score extrapolates the same way; weight
    0 returns ``base`` bit for bit."""
    return jax.tree.map(lambda b, a: (1 + weight) * b - weight * a, base, aux)


def guided_sampling(
    denoiser: Callable[[Params, jax.Array], Denoise],
    run_sampler: Callable[[Denoise, Key, int, int, jax.Array], Data],
    dim: Callable[[Any], int],
    *,
    classes: int,
    bias: str,
) -> tuple[Callable[..., Data], Callable[..., Data]]:
    """The family's ``sample(key, params, n, knobs)`` and ``guided_sample(key, base, aux, n, knobs)``.

    Parameters are a NamedTuple with ``ema`` (the sampling weights) and ``label_freq``. An unconditional model
    samples [n, d] with temperature ``knobs["lam"]``; a conditional one draws labels y ~ label_freq (from the first
    half of a split key) and returns [n, d + 1], the label last. bias=``cfg``: the denoiser is
    (1 + w) D(x | y) - w D(x | null) with w = 1 / lam - 1 at unit temperature (MAD, Alemohammad et al. 2023,
    Sec. 2.3: lambda = 1 / (1 + w)); bias=``temperature``: lam goes to the sampler. ``guided_sample`` samples with
    (1 + omega) D_base - omega D_aux, omega = ``knobs["omega"]`` (SIMS, Alemohammad et al. 2024).

    Args:
        denoiser: ``denoiser(net, y)`` -> denoise for labels y [n] (C, the null label, for the unconditional one).
        run_sampler: ``run_sampler(denoise, key, n, d, lam) -> x`` [n, d].
        dim: ``dim(params) -> d``, the values per sample.
        classes: C (0 = unconditional).
        bias: ``temperature`` or ``cfg``.
    """
    null = jnp.int32(classes)

    def conditional(net: Params, y: jax.Array, cfg_weight: jax.Array | float) -> Denoise:
        cond = denoiser(net, y)
        if bias != "cfg":
            return cond
        uncond = denoiser(net, jnp.full_like(y, null))
        return lambda x, s: extrapolate(cond(x, s), uncond(x, s), cfg_weight)

    def draw(key: Key, params: Any, n: int, lam: jax.Array, make: Callable[[jax.Array, Any], Denoise]) -> Data:
        d = dim(params)
        if not classes:
            return run_sampler(make(jnp.zeros((n,), jnp.int32), 0.0), key, n, d, lam)
        k_label, k_sample = jax.random.split(key)
        y = draw_labels(k_label, params.label_freq, n, classes)
        cfg_weight, temperature = (1.0 / lam - 1.0, jnp.ones_like(lam)) if bias == "cfg" else (0.0, lam)
        x = run_sampler(make(y, cfg_weight), k_sample, n, d, temperature)
        return jnp.concatenate([x, y[:, None].astype(x.dtype)], axis=1)

    def sample(key: Key, params: Any, n: int, knobs: Knobs) -> Data:
        return draw(key, params, n, knobs["lam"], lambda y, w: conditional(params.ema, y, w))

    def guided_sample(key: Key, base: Any, aux: Any, n: int, knobs: Knobs) -> Data:
        omega = knobs["omega"]

        def make(y: jax.Array, w: Any) -> Denoise:
            d_base, d_aux = conditional(base.ema, y, w), conditional(aux.ema, y, w)
            return lambda x, s: extrapolate(d_base(x, s), d_aux(x, s), omega)

        return draw(key, base, n, knobs["lam"], make)

    return sample, guided_sample
