"""Gaussian-mixture arithmetic shared by the truths (data/) and the GMM family: density, sampling, moments."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from madloop import linalg, rng
from madloop.types import Data, Key


class Mixture(NamedTuple):
    """A Gaussian mixture (a single Gaussian is K = 1).

    Attributes:
        weights: [K] component probabilities (sum to 1).
        means: [K, d].
        covs: [K, d, d] symmetric positive definite.
    """

    weights: jax.Array
    means: jax.Array
    covs: jax.Array


def gaussian_log_prob(x: Data, mean: jax.Array, chol: linalg.PivotedCholesky) -> jax.Array:
    """log N(x; mean, cov) for x [n, d], mean [d] and cov's pivoted Cholesky factorisation chol ([d, d]) -> [n]."""
    d = mean.shape[-1]
    z = linalg.whiten(chol, (x - mean).T)  # [d, n]
    return -0.5 * jnp.sum(z**2, axis=0) - linalg.half_logdet(chol) - 0.5 * d * jnp.log(2 * jnp.pi)


def log_weights(weights: jax.Array) -> jax.Array:
    """log pi_k [K], with a weight below the smallest normal float taken as 0 (log = -inf) on every device.

    A component that EM starves in a collapsing loop ends with a subnormal weight (1e-40 in float32). XLA's CPU
    flushes subnormals to zero (its log is -inf) while a GPU keeps them (-92): on a far held-out point such a
    component with a collapsed covariance can dominate the density, and the same parameters gave a held-out NLL of
    946 on an H100 against 2685 on the CPU (docs/benchmarks.md). Flushing explicitly makes both devices compute the
    CPU's value (which agrees with scikit-learn's loop).
    """
    tiny = jnp.finfo(weights.dtype).tiny
    return jnp.log(jnp.where(weights >= tiny, weights, 0.0))


def component_log_prob(mix: Mixture, x: Data) -> jax.Array:
    """log pi_k + log N(x_i; mu_k, Sigma_k) for x [n, d] -> [n, K]."""
    chol = linalg.pivoted_cholesky(mix.covs)
    per_comp = jax.vmap(gaussian_log_prob, in_axes=(None, 0, 0), out_axes=1)(x, mix.means, chol)
    return log_weights(mix.weights) + per_comp


def mixture_log_prob(mix: Mixture, x: Data) -> jax.Array:
    """log p(x) [n] of a Gaussian mixture."""
    return jax.nn.logsumexp(component_log_prob(mix, x), axis=1)


def sample_mixture(key: Key, mix: Mixture, n: int, lam: jax.Array | float = 1.0) -> Data:
    """Draws n samples [n, d] from the mixture with every covariance scaled by the sampling bias lam.

    References:
        Alemohammad et al. 2023 (MAD), Sec. 2.3: a Gaussian samples from N(mu, lambda Sigma); here, each component.
    """
    return sample_mixture_labeled(key, mix, n, lam)[0]


def sample_mixture_labeled(key: Key, mix: Mixture, n: int, lam: jax.Array | float = 1.0) -> tuple[Data, jax.Array]:
    """``sample_mixture`` (the same draws for the same key) and each sample's component [n] (int32)."""
    k_comp, k_noise = jax.random.split(key)
    comp = jax.random.categorical(k_comp, log_weights(mix.weights), shape=(n,))
    chol = linalg.sqrt_factor(mix.covs)  # [K, d, d]
    z = rng.normal(k_noise, (n, mix.means.shape[1]), mix.means.dtype)
    return mix.means[comp] + jnp.sqrt(lam) * jnp.einsum("nij,nj->ni", chol[comp], z), comp.astype(jnp.int32)


def mixture_moments(mix: Mixture) -> tuple[jax.Array, jax.Array]:
    """Mean [d] and covariance [d, d]: sum_k pi_k (Sigma_k + mu_k mu_k^T) - mu mu^T."""
    mean = mix.weights @ mix.means
    second = jnp.einsum("k,kij->ij", mix.weights, mix.covs + jnp.einsum("ki,kj->kij", mix.means, mix.means))
    return mean, second - jnp.outer(mean, mean)
