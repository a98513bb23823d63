"""Denoiser networks (Flax linen): per-example modules, batched with vmap at the call site."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp


def time_embedding(t: jax.Array, features: int) -> jax.Array:
    """Sinusoidal features [features] of a diffusion time t in [0, 1] (scaled by 1000, as in DDPM).

    References:
        Vaswani et al. 2017, Sec. 3.5; Ho et al. 2020, Appendix B.
    """
    half = features // 2
    freqs = jnp.exp(-jnp.log(10_000.0) * jnp.arange(half, dtype=jnp.float32) / half)
    angle = 1000.0 * t * freqs
    return jnp.concatenate([jnp.sin(angle), jnp.cos(angle)])


class MLPDenoiser(nn.Module):
    """An MLP denoiser for vectors: [x, emb(t)] -> depth x (Dense(width), SiLU) -> Dense(d).

    Attributes:
        dim: d, the data dimension (the output size).
        width: hidden units per layer.
        depth: hidden layers.
        time_features: sinusoidal features of t.
    """

    dim: int
    width: int
    depth: int
    time_features: int

    @nn.compact
    def __call__(self, x: jax.Array, t: jax.Array) -> jax.Array:
        """x [d], t [] -> the network's prediction [d] (noise or clean sample, per the family's config)."""
        h = jnp.concatenate([x, time_embedding(t, self.time_features)])
        for _ in range(self.depth):
            h = nn.silu(nn.Dense(self.width)(h))
        return nn.Dense(self.dim)(h)
