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
    """An MLP denoiser for vectors: [x, emb(t), onehot(y)] -> depth x (Dense(width), SiLU) -> Dense(d).

    Attributes:
        dim: d, the data dimension (the output size).
        width: hidden units per layer.
        depth: hidden layers.
        time_features: sinusoidal features of t.
        classes: C class labels (0 = unconditional); label C is the null label of classifier-free guidance.
    """

    dim: int
    width: int
    depth: int
    time_features: int
    classes: int = 0

    @nn.compact
    def __call__(self, x: jax.Array, t: jax.Array, y: jax.Array | None = None) -> jax.Array:
        """x [d], t [], y [] int (a class in 0..C-1, or C for none) -> the prediction [d] (noise or clean sample)."""
        parts = [x, time_embedding(t, self.time_features)]
        if self.classes:
            parts.append(jax.nn.one_hot(y, self.classes + 1, dtype=x.dtype))
        h = jnp.concatenate(parts)
        for _ in range(self.depth):
            h = nn.silu(nn.Dense(self.width)(h))
        return nn.Dense(self.dim)(h)
