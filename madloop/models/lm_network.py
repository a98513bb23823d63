"""The causal transformer of ``model=transformer`` (Flax linen): a per-row module, batched with vmap at the call
site."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp


class Block(nn.Module):
    """Pre-LayerNorm block: x + attention(LN(x)), then x + MLP(LN(x)), on one row [L, width]."""

    width: int
    heads: int

    @nn.compact
    def __call__(self, h: jax.Array) -> jax.Array:
        length = h.shape[0]
        mask = jnp.tril(jnp.ones((length, length), bool))
        a = nn.LayerNorm()(h)
        h = h + nn.MultiHeadDotProductAttention(num_heads=self.heads, qkv_features=self.width)(a, a, mask=mask)
        m = nn.LayerNorm()(h)
        return h + nn.Dense(self.width)(nn.gelu(nn.Dense(4 * self.width)(m)))


class CausalLM(nn.Module):
    """Next-token logits [L, V] of one row of L tokens [L] (int): position t sees the tokens before t only.

    Attributes:
        vocab: V (the start symbol is token V of the embedding).
        length: L.
        width, depth, heads: as ``TransformerModel``.
    """

    vocab: int
    length: int
    width: int
    depth: int
    heads: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        inputs = jnp.concatenate([jnp.full((1,), self.vocab, jnp.int32), x[:-1].astype(jnp.int32)])
        h = nn.Embed(self.vocab + 1, self.width)(inputs)
        h = h + self.param("position", nn.initializers.normal(0.02), (self.length, self.width))
        for _ in range(self.depth):
            h = Block(self.width, self.heads)(h)
        return nn.Dense(self.vocab)(nn.LayerNorm()(h))
